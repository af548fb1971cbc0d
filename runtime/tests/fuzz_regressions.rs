//! Replays the fuzz targets' seeds and every input a fuzz run found a bug with
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the targets' own code, on
//! stable Rust: each must return (an error is fine), none may panic. The models go through
//! ONNX Runtime as well as tract.

mod common;

#[allow(dead_code)]
#[path = "../../fuzz/src/runtime_targets.rs"]
mod targets;

#[path = "../../fuzz/src/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn image_bytes() {
    replay("image_bytes", targets::image_bytes);
}

#[test]
fn model_bytes() {
    replay("model_bytes", targets::model_bytes);
}

#[test]
fn model_bytes_on_onnx_runtime() {
    let library = common::ensure_ort();
    replay("model_bytes", |data| {
        targets::model_bytes_on(
            data,
            runtime::Classifier::builder()
                .engine(runtime::EngineChoice::Ort)
                .ort_library(&library),
        );
    });
}

#[test]
fn cifar_file() {
    replay("cifar_file", targets::cifar_file);
}

#[test]
fn burn_json() {
    replay("burn_json", targets::burn_json);
}

#[test]
fn image_folder() {
    replay("image_folder", targets::image_folder);
}
