//! The training loop's own numbers: running loss and accuracy, and its progress in a log.

mod common;

use trainer::backend::{cpu_device, Cpu};
use trainer::data::standin::{self, StandinConfig};
use trainer::model::cnn::CnnConfig;
use trainer::pipeline::{self, DataSource};
use trainer::train::{self, TrainConfig};

#[test]
fn running_loss_and_accuracy_match_an_evaluation_of_the_same_model() {
    // Without dropout and with a learning rate of 0 the model does not change during the epoch,
    // so the sums the loop keeps on the device must equal an evaluation on the same images.
    let dir = tempfile::tempdir().unwrap();
    let config = StandinConfig {
        train: 300,
        test: 10,
        seed: 5,
    };
    let data = standin::write(dir.path(), config).unwrap();
    let splits = pipeline::load_data(&DataSource::Path(data), 32, (None, None)).unwrap();
    let set = &splits.train;
    let trained = train::train_cnn::<Cpu>(
        &cpu_device(),
        "cpu",
        set,
        set,
        &CnnConfig {
            dropout_conv: 0.0,
            dropout_dense: 0.0,
            ..CnnConfig::default()
        },
        &TrainConfig {
            epochs: 1,
            // 300 images: 9 full batches and one of 12.
            batch_size: 32,
            learning_rate: 0.0,
            ..TrainConfig::default()
        },
        false,
    )
    .unwrap();
    let epoch = &trained.history.epochs[0];
    assert!(epoch.train_loss > 0.5, "{epoch:?}");
    assert!(
        (epoch.train_loss - epoch.val_loss).abs() < 1e-4,
        "{epoch:?}"
    );
    assert!(
        (epoch.train_accuracy - epoch.val_accuracy).abs() < 1e-9,
        "{epoch:?}"
    );
    assert!(epoch.images_per_second > 0.0);
}

#[test]
fn progress_in_a_log_is_lines() {
    // stderr is a pipe here, as in a log file: no bar, a line as each loop starts, a summary after.
    let dir = tempfile::tempdir().unwrap();
    let out = common::train_cli(dir.path(), (200, 50), &["--device", "cpu", "--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for line in [
        "epoch 1/2: 0/2 batches (0 s)",
        "epoch 2/2: 0/2 batches (0 s)",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "no {line:?} in\n{stderr}"
        );
    }
    let summaries = stderr
        .lines()
        .filter(|l| l.starts_with("epoch ") && l.contains("val_acc"))
        .count();
    assert_eq!(summaries, 2, "{stderr}");
    // indicatif's bar would have drawn with carriage returns.
    assert!(!stderr.contains('\r'), "{stderr:?}");

    let quiet = common::train_cli(
        dir.path(),
        (200, 50),
        &["--device", "cpu", "--epochs", "1", "--quiet"],
    );
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(quiet.status.success(), "{stderr}");
    assert!(!stderr.contains("epoch 1/1"), "{stderr}");
}
