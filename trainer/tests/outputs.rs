//! What a run leaves on disk: files with the permissions the user's umask gives, as any other
//! program's (the data it generates, the models, their variants and side files), and no
//! checkpoints once it has finished unless asked for them.

#[cfg(unix)]
#[test]
fn a_pipeline_run_writes_with_the_umask_mode() {
    use std::os::unix::fs::PermissionsExt;
    let ort = runtime::ort_library::locate().unwrap_or_else(|why| {
        runtime::ort_library::fetch(None)
            .unwrap_or_else(|e| panic!("ONNX Runtime missing ({why}) and fetch failed: {e}"))
    });
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 027 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_trainer"))
        .args(["pipeline", "--models-to-train", "cnn", "--quantize", "all"])
        .args([
            "--epochs",
            "1",
            "--standin-train",
            "200",
            "--standin-test",
            "40",
        ])
        .args(["--calibration-images", "16", "--device", "cpu", "--quiet"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--models-dir")
        .arg(dir.path().join("models"))
        .env("ORT_DYLIB_PATH", &ort)
        .output()
        .expect("the trainer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("its metadata");
            let mode = meta.permissions().mode() & 0o777;
            let expected = if meta.is_dir() {
                stack.push(path.clone());
                0o750
            } else {
                0o640
            };
            assert_eq!(mode, expected, "{}: mode {mode:o}", path.display());
            seen += 1;
        }
    }
    // The models, three variants, their reports, the data: all looked at; no checkpoints left.
    let models = dir.path().join("models");
    assert!(!models.join("cnn.checkpoints").exists());
    for name in [
        "cnn.onnx",
        "cnn.int8-static.onnx",
        "cnn.fp16.verify.json",
        "cnn.history.json",
        "cnn.curves.png",
    ] {
        assert!(models.join(name).is_file(), "{name} was not written");
    }
    assert!(seen > 20, "{seen} files and folders");
}

/// `--keep-checkpoints` keeps a finished run's checkpoints, and says where they are.
#[test]
fn checkpoints_are_kept_when_asked() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let train = |keep: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
        command
            .args([
                "train",
                "--epochs",
                "1",
                "--standin-train",
                "100",
                "--standin-test",
                "20",
            ])
            .args(["--device", "cpu", "--quiet", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--models-dir")
            .arg(dir.path().join("models"));
        if keep {
            command.arg("--keep-checkpoints");
        }
        let out = command.output().expect("the trainer runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let checkpoints = dir.path().join("models/cnn.checkpoints");
    let said = train(true);
    assert!(checkpoints.join("epoch-0001-batch-000000").is_dir());
    assert!(said.contains("kept the checkpoints in"), "{said}");
    // Without the flag, a finished run removes them (also those of an earlier run).
    train(false);
    assert!(!checkpoints.exists());
}
