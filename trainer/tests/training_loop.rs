//! The training loop's own numbers: running loss and accuracy, early stopping, the kept epoch,
//! and its progress in a log.

mod common;

use trainer::device::{cpu_device, Cpu};
use trainer::model::cnn::CnnConfig;
use trainer::pipeline::{self, DataSource};
use trainer::standin::{self, StandinConfig};
use trainer::train::{self, Keep, TrainConfig};

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
        &Default::default(),
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

/// The CNN trained on a 300-image stand-in (test: 100 others) with `config`.
/// Returns the run and the test labels.
fn trained(
    config: TrainConfig,
) -> (
    train::Trained<trainer::model::cnn::Cnn<burn::backend::Flex>>,
    Vec<u8>,
) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let standin = StandinConfig {
        train: 300,
        test: 100,
        seed: 8,
    };
    let data = standin::write(dir.path(), standin).expect("the stand-in");
    let splits = pipeline::load_data(&DataSource::Path(data), 32, (None, None)).expect("data");
    let run = train::train_cnn::<Cpu>(
        &cpu_device(),
        "cpu",
        &splits.train,
        &splits.test,
        &CnnConfig::default(),
        &TrainConfig {
            batch_size: 50,
            ..config
        },
        &Default::default(),
    )
    .expect("training");
    (run, splits.test.labels)
}

#[test]
fn patience_stops_a_run_whose_validation_loss_no_longer_improves() {
    // A learning rate of 0: the validation loss of epoch 1 is never beaten.
    let (run, _) = trained(TrainConfig {
        epochs: 8,
        learning_rate: 0.0,
        patience: Some(2),
        keep: Keep::Best,
        ..TrainConfig::default()
    });
    let h = &run.history;
    assert_eq!(h.epochs.len(), 3, "{:?}", h.epochs);
    assert!(h.stopped_early);
    assert_eq!((h.best_epoch, h.kept_epoch), (Some(1), Some(1)));
    // Patience running out at the last epoch is no early stop.
    let (run, _) = trained(TrainConfig {
        epochs: 3,
        learning_rate: 0.0,
        patience: Some(2),
        ..TrainConfig::default()
    });
    assert_eq!(run.history.epochs.len(), 3);
    assert!(!run.history.stopped_early);
}

#[test]
fn the_kept_model_is_the_best_or_the_last_epoch_as_asked() {
    // RMSprop at 0.02 overshoots: the validation loss gets worse after the first epochs.
    for keep in [Keep::Best, Keep::Last] {
        let (run, labels) = trained(TrainConfig {
            epochs: 4,
            learning_rate: 0.02,
            keep,
            ..TrainConfig::default()
        });
        let h = &run.history;
        let best = h
            .epochs
            .iter()
            .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
            .unwrap();
        assert_eq!(h.best_epoch, Some(best.epoch));
        assert_ne!(best.epoch, 4, "the last epoch is the best: {:?}", h.epochs);
        let kept = match keep {
            Keep::Best => best,
            Keep::Last => h.epochs.last().unwrap(),
        };
        assert_eq!(h.kept_epoch, Some(kept.epoch));
        // The returned logits are the kept model's: their loss is that epoch's validation loss.
        let (loss, _) = train::loss_and_accuracy(&run.test_logits, &labels, 10);
        assert!((loss - kept.val_loss).abs() < 1e-9, "{loss} vs {kept:?}");
    }
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
