//! Reading VGG16's convolutional base from ONNX files of both layouts; refusing other graphs.

use std::path::{Path, PathBuf};
use trainer::model::vgg16::source::{SourceError, SourceLayout, Vgg16Base};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn keras_tf2onnx_layout() {
    let base = Vgg16Base::from_file(&fixture("vgg_like_nhwc.onnx")).unwrap();
    assert_eq!(base.layout, SourceLayout::Nhwc);
    assert_eq!(base.convs.len(), 13);
    assert_eq!(base.source_size, Some((32, 32)));
    assert_eq!(base.convs[0].dims, [4, 3, 3, 3]);
    assert_eq!(base.convs[12].dims, [16, 16, 3, 3]);
    assert_eq!(base.convs[0].name, "functional/block1_conv1");
    assert_eq!(base.features_output, "functional/block5_pool/out");
    // Input transpose, 13 x (Conv, Relu), 5 pools; nothing of the classifier.
    assert_eq!(base.kept_nodes.len(), 1 + 26 + 5);
    assert!(!base.has_vgg16_widths());
}

#[test]
fn model_zoo_layout() {
    let base = Vgg16Base::from_file(&fixture("vgg_like_nchw.onnx")).unwrap();
    assert_eq!(base.layout, SourceLayout::Nchw);
    assert_eq!(base.convs.len(), 13);
    assert_eq!(base.kept_nodes.len(), 26 + 5);
    assert_eq!(base.convs[4].dims, [8, 8, 3, 3]);
    assert_eq!(base.convs[4].weight.len(), 8 * 8 * 9);
    assert_eq!(base.convs[4].bias.len(), 8);
}

#[test]
fn other_graphs_are_refused_with_the_reason() {
    for (name, expect) in [
        ("resnet_like.onnx", "blocks"),
        ("no_conv.onnx", "no convolution"),
    ] {
        let err = Vgg16Base::from_file(&fixture(name)).unwrap_err();
        assert!(matches!(err, SourceError::NotVgg16 { .. }), "{name}: {err}");
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(expect), "{text}");
    }
    let bytes = std::fs::read(fixture("vgg_like_nchw.onnx")).unwrap();
    let err = Vgg16Base::from_bytes(&bytes[..bytes.len() / 3], Path::new("cut.onnx")).unwrap_err();
    assert!(err.to_string().contains("cut.onnx"), "{err}");
    let err = Vgg16Base::from_file(Path::new("/nonexistent/vgg16.onnx")).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }));
}
