//! End-to-end tests of the pipeline live in `tests/`; this library holds what they share.

use std::path::{Path, PathBuf};

/// Makes ONNX Runtime available to this test process (found, or fetched through pip) and
/// returns its library, for [`runtime::ClassifierBuilder::ort_library`].
pub fn ensure_onnxruntime() -> PathBuf {
    if let Some(why) = trainer::pipeline::ensure_onnxruntime() {
        panic!("ONNX Runtime is needed by this test and could not be fetched: {why}");
    }
    runtime::ort_library::locate().expect("ONNX Runtime, just found or fetched")
}

/// Whether a file exists and is not empty.
pub fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
