//! Checkpoints and resume, through the `trainer` binary as a user runs it: a run killed (SIGKILL)
//! at random points and resumed gives the same ONNX file and history as an uninterrupted run; a
//! Ctrl-C stops after a checkpoint with status 130 and no partial file; a second Ctrl-C stops at
//! once, still without partial files; a checkpoint of other settings is refused, a damaged one
//! skipped for the one before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn trainer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.env_remove("RUST_BACKTRACE");
    command
}

/// A CIFAR-format stand-in of 600 training and 100 test images: 6 batches of 100 per epoch.
fn data(dir: &Path) -> PathBuf {
    let out = trainer()
        .args([
            "data",
            "--standin-train",
            "600",
            "--standin-test",
            "100",
            "--out",
        ])
        .arg(dir.join("data"))
        .output()
        .expect("the trainer runs");
    assert!(out.status.success(), "{out:?}");
    dir.join("data/cifar-10-batches-bin")
}

/// Replaces the test split of `data` with its first 100 training images, each labelled as the
/// next class: the better the model learns the training set, the worse its validation loss, so
/// that the best epoch is the first, not the last.
fn mislabel_test_split(data: &Path) {
    use runtime::data::{read_cifar_dir, write_cifar_file, CifarSplit};
    let mut test = read_cifar_dir(data, CifarSplit::Train).expect("the training split");
    test.truncate(100);
    let classes = test.classes.len() as u8;
    for label in &mut test.labels {
        *label = (*label + 1) % classes;
    }
    write_cifar_file(&data.join("test_batch.bin"), &test).expect("writing the test split");
}

/// `trainer train` of the CNN for 3 epochs, checkpointing every 2 batches, into `models`.
fn cnn(data: &Path, models: &Path, extra: &[&str]) -> Command {
    cnn_epochs(data, models, 3, extra)
}

fn cnn_epochs(data: &Path, models: &Path, epochs: usize, extra: &[&str]) -> Command {
    let mut command = trainer();
    command
        .args([
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--epochs",
            &epochs.to_string(),
        ])
        .args(["--checkpoint-every", "2", "--keep-checkpoints", "--data"])
        .arg(data)
        .arg("--models-dir")
        .arg(models)
        .args(extra);
    command
}

fn finish(command: &mut Command) -> Output {
    let out = command.output().expect("the trainer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A history without what differs between any two runs (timings).
fn history(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h: serde_json::Value = serde_json::from_str(&text).expect("history JSON");
    h.as_object_mut()
        .expect("an object")
        .remove("setup_seconds");
    for epoch in h["epochs"].as_array_mut().expect("epochs") {
        let epoch = epoch.as_object_mut().expect("an epoch");
        epoch.remove("seconds");
        epoch.remove("images_per_second");
    }
    h
}

fn assert_same_run(reference: &Path, resumed: &Path, name: &str) {
    let onnx = |dir: &Path| std::fs::read(dir.join(format!("{name}.onnx"))).expect("an ONNX file");
    assert!(
        onnx(reference) == onnx(resumed),
        "{name}.onnx differs from the uninterrupted run's"
    );
    let file = format!("{name}.history.json");
    assert_eq!(
        history(&reference.join(&file)),
        history(&resumed.join(&file))
    );
}

/// Milliseconds in `0..n`, different for each call and each test run (printed, so that a failure
/// can be replayed by hand).
fn random_ms(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

fn wait_for(path: &Path, child: &mut Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if path.exists() {
            return true;
        }
        if child.try_wait().expect("the child's status").is_some() {
            return path.exists();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The newest finished checkpoint in `dir`, if any (what `--resume` must continue from).
fn newest_checkpoint(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("epoch-"))
        .map(|e| e.path())
        .max()
}

/// A `--resume` run's log names the checkpoint it continued from: the newest when it started.
/// With `finished` false the run may have been killed before it said where it resumed from,
/// but it must never have started over while a checkpoint was there.
fn assert_resumed_from(log: &str, newest: Option<&Path>, finished: bool) {
    match newest {
        Some(path) => {
            let said = format!("resuming from {} (", path.display());
            assert!(!log.contains("no checkpoint"), "started over: {log}");
            assert!(
                log.contains(&said) || (!finished && !log.contains("resuming from")),
                "expected {said:?} in: {log}"
            );
        }
        None => assert!(
            !log.contains("resuming from") && (!finished || log.contains("no checkpoint")),
            "{log}"
        ),
    }
}

/// Runs `command` with its stderr captured until `stop` says to kill it; its log.
fn run_until(mut command: Command, stop: impl FnOnce(&mut Child)) -> String {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trainer starts");
    stop(&mut child);
    let _ = child.kill();
    let out = child.wait_with_output().expect("the trainer ends");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files a stopped run must not leave: outputs, temporary files.
fn partial_files(models: &Path, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![models.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !file.starts_with(".tmp-") {
                stack.push(entry.path());
            } else if file.starts_with(".tmp-")
                || file.starts_with(&format!("{name}."))
                || file.ends_with(".features")
            {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

/// After a stop: no partial file in `models`, and `--resume` (with `args`) ends as `reference`.
fn resumed_without_leftovers(data: &Path, models: &Path, args: &[&str], reference: &Path) {
    let leftovers = partial_files(models, "cnn");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    finish(&mut cnn(data, models, &[args, &["--resume"]].concat()));
    assert_same_run(reference, models, "cnn");
}

/// Runs `command` until checkpoint `at` appears, then sends it `signals` (`INT`, `TERM`) in turn;
/// how it ended, with its stderr.
fn interrupt(mut command: Command, at: &Path, signals: &[&str]) -> Output {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trainer starts");
    assert!(wait_for(at, &mut child), "{} never appeared", at.display());
    for name in signals {
        signal(&child, name);
    }
    child.wait_with_output().expect("the trainer ends")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn a_cnn_run_killed_anywhere_and_resumed_is_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let reference = dir.path().join("reference");
    finish(&mut cnn(&data, &reference, &[]));

    let models = dir.path().join("killed");
    let checkpoints = models.join("cnn.checkpoints");
    // Killed just after a mid-epoch checkpoint, just after an epoch's, then at random times
    // (anywhere: a batch, an evaluation, a checkpoint being written, the export).
    let mut first = cnn(&data, &models, &[])
        .spawn()
        .expect("the trainer starts");
    assert!(wait_for(
        &checkpoints.join("epoch-0000-batch-000004"),
        &mut first
    ));
    first.kill().expect("kill");
    first.wait().expect("wait");
    let newest = newest_checkpoint(&checkpoints).expect("a checkpoint");
    assert!(newest.ends_with("epoch-0000-batch-000004"), "{newest:?}");
    let log = run_until(cnn(&data, &models, &["--resume"]), |child| {
        assert!(wait_for(
            &checkpoints.join("epoch-0001-batch-000000"),
            child
        ));
    });
    assert_resumed_from(&log, Some(&newest), true);
    let mut delays = Vec::new();
    for _ in 0..3 {
        let delay = 200 + random_ms(1500);
        delays.push(delay);
        let newest = newest_checkpoint(&checkpoints);
        let log = run_until(cnn(&data, &models, &["--resume"]), |_| {
            std::thread::sleep(Duration::from_millis(delay));
        });
        assert_resumed_from(&log, newest.as_deref(), false);
    }
    eprintln!("killed after {delays:?} ms");
    // Killed as the last checkpoint appears: in the export that follows it.
    let newest = newest_checkpoint(&checkpoints);
    let log = run_until(cnn(&data, &models, &["--resume"]), |child| {
        assert!(wait_for(
            &checkpoints.join("epoch-0003-batch-000000"),
            child
        ));
    });
    assert_resumed_from(&log, newest.as_deref(), false);
    // The last resume continues from the end of training: it only exports.
    let last = checkpoints.join("epoch-0003-batch-000000");
    let out = finish(&mut cnn(&data, &models, &["--resume"]));
    assert_resumed_from(&String::from_utf8_lossy(&out.stderr), Some(&last), true);
    assert_same_run(&reference, &models, "cnn");
    // The newest two checkpoints are kept, and the run's end is the newest.
    let mut kept: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[1], "epoch-0003-batch-000000");

    // A damaged newest checkpoint: the one before is used, with a notice, to the same end.
    std::fs::write(checkpoints.join(&kept[1]).join("model.mpk"), b"torn").unwrap();
    std::fs::remove_file(models.join("cnn.onnx")).unwrap();
    let out = finish(&mut cnn(&data, &models, &["--resume"]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("is damaged"), "{log}");
    assert!(log.contains(&format!(
        "resuming from {}",
        checkpoints.join(&kept[0]).display()
    )));
    assert_same_run(&reference, &models, "cnn");

    // Other settings are refused, naming what changed; more epochs are not other settings.
    let out = cnn(&data, &models, &["--resume", "--lr", "0.001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("other settings") && log.contains("learning_rate"),
        "{log}"
    );
    let out = finish(&mut cnn_epochs(&data, &models, 4, &["--resume"]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("after epoch 3"), "{log}");
    assert_eq!(
        history(&models.join("cnn.history.json"))["epochs"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // Fewer epochs than the checkpoint has done: refused, not a model past what was asked.
    let out = cnn_epochs(&data, &models, 2, &["--resume"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("past the 2 epochs"), "{log}");
}

#[test]
fn ctrl_c_stops_after_a_checkpoint_with_130_and_a_second_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    mislabel_test_split(&data);
    // Keeping the best epoch: a checkpoint within epoch 3 carries the best model so far (epoch
    // 1's, as the test split is built) besides the current one.
    let keep_best = [
        "--lr",
        "0.003",
        "--dropout-conv",
        "0",
        "--dropout-dense",
        "0",
        "--keep",
        "best",
    ];
    let reference = dir.path().join("reference");
    finish(&mut cnn(&data, &reference, &keep_best));
    let run = history(&reference.join("cnn.history.json"));
    let losses: Vec<f64> = run["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| e["val_loss"].as_f64().expect("a validation loss"))
        .collect();
    let lowest = 1
        + (0..losses.len())
            .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
            .expect("three epochs");
    assert!(lowest < 3, "the last epoch is the best: {losses:?}");
    assert_eq!(run["best_epoch"], lowest, "{run}");
    assert_eq!(run["kept_epoch"], lowest, "{run}");
    // The exported model is that epoch's: its test predictions are those of a run that stopped
    // there.
    let stopped_there = dir.path().join("stopped-there");
    finish(&mut cnn_epochs(&data, &stopped_there, lowest, &keep_best));
    let logits = |dir: &Path| -> serde_json::Value {
        let text = std::fs::read(dir.join("cnn.burn.json")).expect("the predictions");
        serde_json::from_slice::<serde_json::Value>(&text).expect("JSON")["logits"].clone()
    };
    assert_eq!(logits(&reference), logits(&stopped_there));

    let models = dir.path().join("interrupted");
    let out = interrupt(
        cnn(&data, &models, &keep_best),
        &models.join("cnn.checkpoints/epoch-0002-batch-000002"),
        &["INT"],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{log}");
    assert!(log.contains("--resume"), "{log}");
    let newest = std::fs::read_dir(models.join("cnn.checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert!(newest.join("best.mpk").is_file(), "{}", newest.display());
    resumed_without_leftovers(&data, &models, &keep_best, &reference);

    // SIGTERM as Ctrl-C; then a second signal before the batch ends stops at once.
    let models = dir.path().join("twice");
    let out = interrupt(
        cnn(&data, &models, &keep_best),
        &models.join("cnn.checkpoints/epoch-0000-batch-000002"),
        &["TERM", "INT"],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{log}");
    // At once: the first signal's checkpoint after the batch was never written.
    assert!(
        log.contains("stopping now; the last checkpoint stays"),
        "{log}"
    );
    assert!(!log.contains("stopped ("), "{log}");
    let newest = newest_checkpoint(&models.join("cnn.checkpoints")).expect("a checkpoint");
    assert!(newest.ends_with("epoch-0000-batch-000002"), "{newest:?}");
    resumed_without_leftovers(&data, &models, &keep_best, &reference);
}

#[test]
fn a_vgg16_run_killed_in_its_frozen_pass_or_its_epochs_and_resumed_is_the_uninterrupted_run() {
    let out = trainer()
        .arg("fetch-vgg16")
        .output()
        .expect("the trainer runs");
    assert!(out.status.success(), "{out:?}");
    let vgg16 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let run = |models: &Path, extra: &[&str]| {
        let mut command = trainer();
        command
            .args([
                "train-vgg16",
                "--quiet",
                "--device",
                "cpu",
                "--vgg-epochs",
                "2",
            ])
            .args([
                "--train-limit",
                "300",
                "--test-limit",
                "50",
                "--checkpoint-every",
                "4",
                "--keep-checkpoints",
            ])
            .args(["--vgg16", &vgg16, "--data"])
            .arg(&data)
            .arg("--models-dir")
            .arg(models)
            .args(extra);
        command
    };
    let reference = dir.path().join("reference");
    finish(&mut run(&reference, &[]));

    let models = dir.path().join("killed");
    let cache = models.join("cache");
    // Killed in the frozen-feature pass (before its cache is written), ...
    let mut child = run(&models, &[]).spawn().expect("starts");
    let start = Instant::now();
    while !cache.exists() && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let frozen_pass = start.elapsed();
    let _ = child.kill();
    child.wait().unwrap();
    // (the cache folder appears when the first split's file is written: the test split's was not)
    let cached = std::fs::read_dir(&cache).map_or(0, |d| d.count());
    assert!(
        cached < 2,
        "killed after {frozen_pass:?}, {cached} cache files"
    );
    // ... then in the middle of the first epoch, then at a random time.
    let mut child = run(&models, &["--resume"]).spawn().expect("starts");
    assert!(wait_for(
        &models.join("vgg16.checkpoints/epoch-0000-batch-000004"),
        &mut child
    ));
    let _ = child.kill();
    child.wait().unwrap();
    let checkpoints = models.join("vgg16.checkpoints");
    let newest = newest_checkpoint(&checkpoints).expect("a checkpoint");
    assert!(newest.ends_with("epoch-0000-batch-000004"), "{newest:?}");
    let delay = 300 + random_ms(2000);
    eprintln!("killed after {delay} ms");
    let log = run_until(run(&models, &["--resume"]), |_| {
        std::thread::sleep(Duration::from_millis(delay));
    });
    assert_resumed_from(&log, Some(&newest), false);
    let newest = newest_checkpoint(&checkpoints).expect("a checkpoint");
    let out = finish(&mut run(&models, &["--resume"]));
    assert_resumed_from(&String::from_utf8_lossy(&out.stderr), Some(&newest), true);
    assert_same_run(&reference, &models, "vgg16");
}
