//! What a classifier says about itself, and the two ways in beside files: RGB rows in memory and
//! the prepared input tensor. Each must agree with classifying the same image encoded as a PNG.

mod common;

use runtime::Error;
use std::io::Cursor;

#[test]
fn describes_the_tiny_model_from_its_file() {
    let classifier = common::tiny_on_tract();
    let d = classifier.describe();
    assert_eq!((d.input.height, d.input.width), (8, 8));
    assert_eq!(d.engine, "tract");
    assert_eq!(d.num_classes, Some(3));
    assert_eq!(d.input_shape, classifier.info().input.shape_text());
    assert_eq!(d.classes, classifier.info().classes);
    let json: serde_json::Value = serde_json::from_str(&d.to_json()).expect("valid JSON");
    // The preprocessing sits at the top level, beside the other fields.
    assert_eq!(json["layout"], "NCHW");
    assert_eq!(json["height"], 8);
    assert_eq!(json["channel_order"], "RGB");
    assert!(json["model"]
        .as_str()
        .is_some_and(|m| m.ends_with("tiny_classifier.onnx")));
}

#[test]
fn rgb8_rows_and_the_prepared_tensor_classify_as_the_encoded_image_does() {
    let mut classifier = common::tiny_on_tract();
    let (w, h) = (13, 9);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
    let image = image::RgbImage::from_raw(w as u32, h as u32, pixels.clone()).expect("whole image");
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG encodes");

    let encoded = classifier
        .classify_bytes(&png, "x.png")
        .expect("PNG classifies");
    let packed = classifier
        .classify_rgb8(&pixels, w, h, 3 * w)
        .expect("packed rows classify");
    // Rows 5 bytes apart more than their pixels, the padding filled with a value that would show.
    let stride = 3 * w + 5;
    let mut padded = vec![0xAA; stride * h];
    for y in 0..h {
        padded[y * stride..y * stride + 3 * w].copy_from_slice(&pixels[y * 3 * w..(y + 1) * 3 * w]);
    }
    let last_row_end = stride * (h - 1) + 3 * w;
    let strided = classifier
        .classify_rgb8(&padded[..last_row_end], w, h, stride)
        .expect("padded rows classify");
    assert_eq!(encoded.probabilities, packed.probabilities);
    assert_eq!(encoded.probabilities, strided.probabilities);

    let input = classifier
        .prepare_bytes(&png, "x.png")
        .expect("PNG prepares");
    assert_eq!(input.len(), 3 * 8 * 8);
    let probabilities = classifier.run_tensor(&input, 1).expect("the tensor runs");
    assert_eq!(probabilities, encoded.probabilities);

    // Two prepared images in one run: the answers each gets alone.
    let reversed: Vec<u8> = pixels.iter().rev().copied().collect();
    let alone = classifier
        .classify_rgb8(&reversed, w, h, 3 * w)
        .expect("reversed rows classify");
    // Different answers, so that rows swapped or repeated in the batch would show.
    assert_ne!(alone.probabilities, encoded.probabilities);
    let mut other = Vec::new();
    image::RgbImage::from_raw(w as u32, h as u32, reversed)
        .expect("whole image")
        .write_to(&mut Cursor::new(&mut other), image::ImageFormat::Png)
        .expect("PNG encodes");
    let mut both = input.clone();
    both.extend(
        classifier
            .prepare_bytes(&other, "y.png")
            .expect("PNG prepares"),
    );
    let batch = classifier
        .classify_tensor(&both, 2)
        .expect("two images run");
    assert_eq!(batch.len(), 2);
    for (got, want) in batch.iter().zip([&encoded, &alone]) {
        assert_eq!(got.class, want.class);
        for (a, b) in got.probabilities.iter().zip(&want.probabilities) {
            assert!((a - b).abs() <= 1e-6, "{a} against {b} alone");
        }
    }
}

#[test]
fn unusable_pixel_buffers_are_errors_naming_the_problem() {
    let mut classifier = common::tiny_on_tract();
    let (w, h) = (4, 3);
    let pixels = vec![7u8; 3 * w * h];
    let cases: [(&[u8], usize, usize, usize, &str); 5] = [
        (&pixels[..3 * w * h - 1], w, h, 3 * w, "too few"),
        (&pixels, w, h, 3 * w - 1, "stride"),
        (&pixels, 0, h, 0, "each side"),
        (&pixels, w, 0, 3 * w, "each side"),
        (&pixels, w, h, usize::MAX, "too few"),
    ];
    for (buffer, width, height, stride, part) in cases {
        match classifier.classify_rgb8(buffer, width, height, stride) {
            Err(Error::Pixels(why)) => assert!(why.contains(part), "{why:?} lacks {part:?}"),
            other => panic!("{width}x{height}, stride {stride}: {other:?}"),
        }
    }
    assert!(matches!(
        classifier.prepare_bytes(b"not an image", "notes.png"),
        Err(Error::Image { path, .. }) if path.ends_with("notes.png")
    ));
}
