//! What the trainer's integration tests share.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `trainer train ARGS` on a generated stand-in of `train` and `test` images, with its data
/// and models under `dir`; stderr is a pipe, as in a log.
pub fn train_cli(dir: &Path, (train, test): (usize, usize), args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .arg("train")
        .args(args)
        .args(["--standin-train", &train.to_string()])
        .args(["--standin-test", &test.to_string()])
        .arg("--data-dir")
        .arg(dir)
        // The older name of --models-dir, which users have in scripts.
        .arg("--models")
        .arg(dir.join("models"))
        .output()
        .expect("the trainer runs")
}
