//! The CLI says which engine ran and why, and reports bad models without panicking.

use std::path::Path;
use std::process::Command;

fn runtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
}

#[test]
fn classify_without_onnxruntime_says_it_used_tract() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("pixel.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]))
        .save(&image)
        .unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx");
    let out = runtime()
        .env("ORT_DYLIB_PATH", dir.path().join("missing.so"))
        .arg("classify")
        .arg(&model)
        .arg(&image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("using tract") && stderr.contains("missing.so"),
        "{stderr}"
    );
    assert!(stderr.contains("engine: tract"), "{stderr}");
    assert!(stdout.contains("pixel.png"), "{stdout}");
}

#[test]
fn corrupt_model_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken.onnx");
    std::fs::write(&model, [0x08u8, 0xff, 0xff, 0x12, 0x99]).unwrap();
    let out = runtime().args(["info"]).arg(&model).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.onnx") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
