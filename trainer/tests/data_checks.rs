//! Data sets that would train into a plausible-looking but meaningless model: refused, or warned
//! about where a user may mean it.

use runtime::data::Dataset;
use trainer::pipeline::{load_data, DataSource};

/// A CIFAR batch file of `labels.len()` images with the given labels, and a class list.
fn cifar_file(dir: &std::path::Path, name: &str, labels: &[u8]) -> std::path::PathBuf {
    let classes: Vec<String> = ["cat", "dog", "fox"].map(String::from).to_vec();
    let set = Dataset {
        side: 32,
        pixels: (0..labels.len() * 3 * 32 * 32)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect(),
        labels: labels.to_vec(),
        classes: classes.clone(),
    };
    runtime::data::write_meta(dir, &classes).expect("writing the class list");
    let path = dir.join(name);
    runtime::data::write_cifar_file(&path, &set).expect("writing the batch");
    path
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
    let splits = load_data(&DataSource::Path(file), 32, (None, None)).expect("a single batch file");
    let warnings = &splits.warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("test images are the training images"));

    // Separate splits: no warning.
    let other = tempfile::tempdir().expect("a temporary folder");
    cifar_file(other.path(), "data_batch_1.bin", &[0, 1, 2, 0]);
    cifar_file(other.path(), "test_batch.bin", &[2, 1]);
    let splits = load_data(
        &DataSource::Path(other.path().to_path_buf()),
        32,
        (None, None),
    )
    .expect("two splits");
    assert!(splits.warnings.is_empty());
}
