//! What a pipeline run leaves on disk takes the permissions the user's umask gives, as files made
//! by any other program would: the data it generates, the models, their variants and side files,
//! the checkpoints.

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
    // The models, three variants, their reports, the checkpoints, the data: all looked at.
    let models = dir.path().join("models");
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
