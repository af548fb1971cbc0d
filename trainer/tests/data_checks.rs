//! Data sets that would train into a plausible-looking but meaningless model: refused, or warned
//! about where a user may mean it.

use runtime::data::Dataset;
use trainer::pipeline::{load_data, DataSource};

/// `labels.len()` noise images, each made from its number in `images`, with the given labels:
/// the same number gives the same pixels.
fn images(images: std::ops::Range<usize>, labels: &[u8]) -> Dataset {
    assert_eq!(images.len(), labels.len());
    let len = 3 * 32 * 32;
    Dataset {
        side: 32,
        pixels: (images.start * len..images.end * len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect(),
        labels: labels.to_vec(),
        classes: ["cat", "dog", "fox"].map(String::from).to_vec(),
    }
}

/// `set` as the CIFAR batch file `dir/name`, with its class list.
fn write(dir: &std::path::Path, name: &str, set: &Dataset) -> std::path::PathBuf {
    runtime::data::write_meta(dir, &set.classes).expect("writing the class list");
    let path = dir.join(name);
    runtime::data::write_cifar_file(&path, set).expect("writing the batch");
    path
}

/// A CIFAR batch file of `labels.len()` images with the given labels, and a class list.
fn cifar_file(dir: &std::path::Path, name: &str, labels: &[u8]) -> std::path::PathBuf {
    write(dir, name, &images(0..labels.len(), labels))
}

#[test]
fn a_training_set_of_one_class_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    cifar_file(dir.path(), "data_batch_1.bin", &[1, 1, 1, 1]);
    cifar_file(dir.path(), "test_batch.bin", &[0, 1, 2]);
    let err = load_data(
        &DataSource::Path(dir.path().to_path_buf()),
        32,
        (None, None),
    )
    .err()
    .expect("one class to learn")
    .to_string();
    assert!(err.contains("one class") && err.contains("dog"), "{err}");
}

#[test]
fn a_test_set_that_is_the_training_set_is_a_warning() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = cifar_file(dir.path(), "test_batch.bin", &[0, 1, 2, 0]);
    // The whole file, and the file cut to different lengths for each split: the test images
    // are still all training images.
    for limits in [(None, None), (Some(3), Some(2))] {
        let splits = load_data(&DataSource::Path(file.clone()), 32, limits).expect("a batch file");
        let warnings = &splits.warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("the test set is the training set"),
            "{warnings:?}"
        );
        assert_eq!(splits.test_images_in_training, splits.test.len());
    }

    // Separate splits: no warning.
    let other = tempfile::tempdir().expect("a temporary folder");
    write(
        other.path(),
        "data_batch_1.bin",
        &images(0..4, &[0, 1, 2, 0]),
    );
    write(other.path(), "test_batch.bin", &images(4..6, &[2, 1]));
    let splits = load_data(
        &DataSource::Path(other.path().to_path_buf()),
        32,
        (None, None),
    )
    .expect("two splits");
    assert!(splits.warnings.is_empty(), "{:?}", splits.warnings);
    assert_eq!(splits.test_images_in_training, 0);
}

/// Two of three test images are training images (one of them under another label): the
/// warning gives the count.
#[test]
fn test_images_copied_from_the_training_set_are_counted() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    write(dir.path(), "data_batch_1.bin", &images(0..4, &[0, 1, 2, 0]));
    let mut test = images(2..5, &[2, 1, 1]);
    test.labels[0] = 1;
    write(dir.path(), "test_batch.bin", &test);
    let splits = load_data(
        &DataSource::Path(dir.path().to_path_buf()),
        32,
        (None, None),
    )
    .expect("two splits");
    assert_eq!(splits.test_images_in_training, 2);
    assert_eq!(splits.warnings.len(), 1, "{:?}", splits.warnings);
    assert!(
        splits.warnings[0].contains("2 of the 3 test images are also training images"),
        "{:?}",
        splits.warnings
    );
}

/// `trainer train --data data_batch_1.bin` with limits: the warning on stderr and the count in
/// the history.
#[test]
fn the_overlap_is_printed_and_written_into_the_history() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let labels: Vec<u8> = (0..30).map(|i| i % 3).collect();
    let file = cifar_file(dir.path(), "data_batch_1.bin", &labels);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "--quiet", "--device", "cpu", "--epochs", "1"])
        .args([
            "--batch-size",
            "8",
            "--train-limit",
            "24",
            "--test-limit",
            "6",
        ])
        .arg("--data")
        .arg(&file)
        .arg("--models-dir")
        .arg(dir.path().join("models"))
        .output()
        .expect("the trainer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING") && stderr.contains("the test set is the training set"),
        "{stderr}"
    );
    let history: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("models/cnn.history.json")).expect("the history"),
    )
    .expect("JSON");
    assert_eq!(history["test_images_in_training"], 6, "{history}");
    assert!(
        history["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("the test set is the training set")),
        "{history}"
    );
}
