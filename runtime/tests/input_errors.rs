//! Input that does not fit the model is refused with an error a caller can match on, carrying the
//! numbers that were wrong, not only a sentence.

use runtime::{Classifier, EngineChoice, Error, InputOverrides};
use std::path::Path;

fn tiny() -> Classifier {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx");
    Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(model)
        .expect("the test model loads")
}

#[test]
fn pixels_that_are_not_whole_images_say_how_many_bytes_and_what_size() {
    let mut classifier = tiny();
    let err = classifier
        .classify_planar(&[0u8; 3 * 8 * 8 + 1])
        .unwrap_err();
    match &err {
        Error::NotWholeImages {
            bytes,
            height,
            width,
        } => assert_eq!((*bytes, *height, *width), (193, 8, 8)),
        other => panic!("expected NotWholeImages, got {other:?}"),
    }
    assert!(err.to_string().contains("193 bytes"), "{err}");
    assert!(matches!(
        classifier.classify_planar(&[]),
        Err(Error::NotWholeImages { bytes: 0, .. })
    ));
}

#[test]
fn a_tensor_that_is_not_the_batch_names_the_shape_it_should_make() {
    let mut classifier = tiny();
    let err = classifier.run_tensor(&[0.0; 3 * 8 * 8], 2).unwrap_err();
    match err {
        Error::InputShape { values, shape } => {
            assert_eq!(values, 192);
            assert_eq!(shape.iter().product::<usize>(), 2 * 192);
            assert_eq!(shape[0], 2);
        }
        other => panic!("expected InputShape, got {other:?}"),
    }
}

#[test]
fn unusable_overrides_are_an_input_config_error_naming_the_field() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx");
    let err = Classifier::builder()
        .engine(EngineChoice::Tract)
        .input_overrides(InputOverrides {
            std: Some([1.0, 0.0, 1.0]),
            ..InputOverrides::default()
        })
        .build_from_file(model)
        .unwrap_err();
    match &err {
        Error::InputConfig(e) => assert!(e.to_string().contains("std"), "{e}"),
        other => panic!("expected InputConfig, got {other:?}"),
    }
}

#[test]
fn size_and_triple_syntax_is_checked() {
    assert_eq!(InputOverrides::parse_size("24x40"), Ok((24, 40)));
    assert!(InputOverrides::parse_size("0").is_err());
    assert_eq!(
        InputOverrides::parse_triple("0.5,0.5,0.5"),
        Ok([0.5, 0.5, 0.5])
    );
    assert!(InputOverrides::parse_triple("1,2").is_err());
}
