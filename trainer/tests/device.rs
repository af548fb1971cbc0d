//! Device choice without a usable GPU: `auto` trains on the CPU, `cuda` is a clear error.

use std::process::Command;
use trainer::backend::{self, Device, DeviceChoice};

#[test]
fn auto_falls_back_to_the_cpu_and_cuda_says_why_not() {
    let probe = backend::probe_cuda();
    if probe.is_ok() {
        // A machine where CUDA runs: auto picks it.
        assert_eq!(backend::resolve(DeviceChoice::Auto).unwrap(), Device::Cuda);
        return;
    }
    assert_eq!(backend::resolve(DeviceChoice::Auto).unwrap(), Device::Cpu);
    assert_eq!(backend::resolve(DeviceChoice::Cpu).unwrap(), Device::Cpu);
    let err = backend::resolve(DeviceChoice::Cuda)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CUDA is not usable"), "{err}");
    assert!("auto".parse::<DeviceChoice>() == Ok(DeviceChoice::Auto));
    assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("tpu"));

    // The CLI: a clear error, no panic, and no training started.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "train",
            "--device",
            "cuda",
            "--standin-train",
            "10",
            "--standin-test",
            "10",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--models")
        .arg(dir.path().join("models"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CUDA is not usable") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!dir.path().join("models/cnn.onnx").exists());
}
