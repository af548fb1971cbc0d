//! End-to-end tests of the pipeline live in `tests/`; this library holds what they share.

use std::path::{Path, PathBuf};

/// Makes ONNX Runtime available to this test process (found, or fetched through pip) and
/// returns its library, for [`runtime::ClassifierBuilder::ort_library`].
pub fn ensure_onnxruntime() -> PathBuf {
    trainer::pipeline::ensure_onnxruntime().unwrap_or_else(|why| {
        panic!("ONNX Runtime is needed by this test and could not be fetched: {why}")
    })
}

/// Whether a file exists and is not empty.
pub fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
