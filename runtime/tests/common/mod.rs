//! What several of the runtime's test files share.

#![allow(dead_code)]

use runtime::{Classifier, EngineChoice};
use std::path::{Path, PathBuf};

/// The committed 3-class fixture model (8x8 images).
pub fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx")
}

/// The tiny model on tract.
pub fn tiny_on_tract() -> Classifier {
    Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(tiny())
        .expect("the test model loads")
}

/// ONNX Runtime's library for this test process: found, or fetched through pip. A test that
/// needs it fails when neither works, so that ONNX Runtime's half of a test is never skipped.
pub fn ensure_ort() -> PathBuf {
    runtime::ort_library::locate().unwrap_or_else(|why| {
        runtime::ort_library::fetch(None)
            .unwrap_or_else(|e| panic!("ONNX Runtime missing ({why}) and fetch failed: {e}"))
    })
}

/// Both engines, by name, each loading `bytes` as `name`.
pub fn load_on_each_engine(
    bytes: &[u8],
    name: &str,
) -> Vec<(&'static str, Result<Classifier, runtime::Error>)> {
    let ort = ensure_ort();
    vec![
        (
            "ort",
            Classifier::builder()
                .engine(EngineChoice::Ort)
                .ort_library(&ort)
                .build_from_bytes(bytes, name),
        ),
        (
            "tract",
            Classifier::builder()
                .engine(EngineChoice::Tract)
                .build_from_bytes(bytes, name),
        ),
    ]
}
