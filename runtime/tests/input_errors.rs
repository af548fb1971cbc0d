//! Input that does not fit the model is refused with an error a caller can match on, carrying the
//! numbers that were wrong, not only a sentence.

mod common;

use runtime::{Classifier, EngineChoice, Error, InputOverrides};

#[test]
fn pixels_that_are_not_whole_images_say_how_many_bytes_and_what_size() {
    let mut classifier = common::tiny_on_tract();
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
    let mut classifier = common::tiny_on_tract();
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
    let err = Classifier::builder()
        .engine(EngineChoice::Tract)
        .input_overrides(InputOverrides {
            std: Some([1.0, 0.0, 1.0]),
            ..InputOverrides::default()
        })
        .build_from_file(common::tiny())
        .unwrap_err();
    match &err {
        Error::InputConfig(e) => assert!(e.to_string().contains("std"), "{e}"),
        other => panic!("expected InputConfig, got {other:?}"),
    }
}
