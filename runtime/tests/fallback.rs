//! Without an ONNX Runtime library, `auto` falls back to tract and says why; `ort` is an error.
//! (Its own test binary: the library is loaded once per process.)

use runtime::{Classifier, EngineChoice, Error};
use std::path::Path;

#[test]
fn missing_onnxruntime_falls_back_to_tract_with_a_reason() {
    let missing = std::env::temp_dir().join("no-such-dir/libonnxruntime.so.1.31.1");
    std::env::set_var(runtime::ort_library::ENV_VAR, &missing);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx");

    let err = Classifier::builder()
        .engine(EngineChoice::Ort)
        .build_from_file(&model)
        .unwrap_err();
    assert!(matches!(err, Error::OrtUnavailable(_)), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");

    let mut classifier = Classifier::builder()
        .engine(EngineChoice::Auto)
        .build_from_file(&model)
        .unwrap();
    assert_eq!(classifier.engine_name(), "tract");
    let reason = classifier
        .fallback_reason()
        .expect("a reason for the fallback");
    assert!(
        reason.contains("ORT_DYLIB_PATH") && reason.contains("tract"),
        "{reason}"
    );
    let predictions = classifier.classify_planar(&[128u8; 3 * 8 * 8]).unwrap();
    assert_eq!(predictions.len(), 1);
    let sum: f32 = predictions[0].probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5);
}
