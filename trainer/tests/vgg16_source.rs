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

/// `trainer/onnx/vgg16_features.onnx`, which the build feeds to burn-onnx, is what the graph
/// surgery makes. `UPDATE_SKELETON=1` rewrites it.
#[test]
fn committed_skeleton_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/vgg16_features.onnx");
    let fresh = trainer::model::vgg16::source::features_skeleton();
    if std::env::var_os("UPDATE_SKELETON").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    assert!(
        committed == fresh,
        "{} is stale: rerun this test with UPDATE_SKELETON=1",
        path.display()
    );
    assert!(
        committed.len() < 16 << 10,
        "the skeleton must not hold weights"
    );
}

/// Runs an ONNX graph in tract on one input; `output` picks an intermediate tensor.
fn run_tract(
    bytes: &[u8],
    input: tract_onnx::prelude::Tensor,
    output: Option<&str>,
) -> tract_onnx::prelude::Tensor {
    use tract_onnx::prelude::*;
    let run = || -> TractResult<Tensor> {
        let mut model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes))?;
        model.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), input.shape()))?;
        if let Some(name) = output {
            model.select_outputs_by_name([name])?;
        }
        let plan = model.into_optimized()?.into_runnable()?;
        let mut out = plan.run(tvec!(input.clone().into()))?;
        Ok(out.remove(0).into_tensor())
    };
    run().expect("tract runs the graph")
}

fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 255.0 - 120.0
        })
        .collect()
}

/// The cut, normalised graph computes what the original computes at its last pool, in both
/// source layouts, and its height and width are free.
#[test]
fn cut_graph_matches_the_original_intermediate_output() {
    use tract_onnx::prelude::*;
    for (name, nhwc) in [("vgg_like_nhwc.onnx", true), ("vgg_like_nchw.onnx", false)] {
        let original = std::fs::read(fixture(name)).unwrap();
        let base = Vgg16Base::from_bytes(&original, Path::new(name)).unwrap();
        let cut = base.features_graph();
        let nchw =
            tract_ndarray::Array4::from_shape_vec((2, 3, 32, 32), pseudo_random(6144, 7)).unwrap();
        let original_input = if nhwc {
            nchw.clone()
                .permuted_axes([0, 2, 3, 1])
                .as_standard_layout()
                .to_owned()
        } else {
            nchw.clone()
        };
        let expected = run_tract(
            &original,
            original_input.into_tensor(),
            Some(&base.features_output),
        );
        let got = run_tract(&cut, nchw.into_tensor(), None);
        assert_eq!(got.shape(), expected.shape(), "{name}");
        let (a, b) = (
            got.to_plain_array_view::<f32>().unwrap(),
            expected.to_plain_array_view::<f32>().unwrap(),
        );
        let max_diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(max_diff < 1e-3, "{name}: max abs diff {max_diff}");
        assert!(a.iter().any(|&v| v != 0.0), "{name}: all-zero features");
        // Another size runs too: the cut graph's height and width are symbolic.
        let other = run_tract(
            &cut,
            tract_ndarray::Array4::from_shape_vec((1, 3, 64, 96), pseudo_random(18432, 3))
                .unwrap()
                .into_tensor(),
            None,
        );
        assert_eq!(&other.shape()[2..], &[2, 3], "{name}");
    }
}

/// The NCHW fixture with `change` applied to its protobuf.
fn altered(change: impl Fn(&mut tract_onnx::pb::ModelProto)) -> Vec<u8> {
    use prost::Message;
    let bytes = std::fs::read(fixture("vgg_like_nchw.onnx")).expect("the fixture");
    let mut model = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("an ONNX model");
    change(&mut model);
    model.encode_to_vec()
}

/// Shapes that describe no weights (a zero size beside a huge one, a product that overflows,
/// a negative size) and a chain that loops: each an error naming the file, never a panic, a
/// huge allocation or a hang.
#[test]
fn hostile_weights_and_loops_are_refused() {
    let first_conv = |model: &mut tract_onnx::pb::ModelProto| {
        let graph = model.graph.as_mut().expect("a graph");
        let conv = graph
            .node
            .iter_mut()
            .find(|n| n.op_type == "Conv")
            .expect("a convolution");
        // No bias: its size would come from the weight's shape.
        conv.input.truncate(2);
        let weight = conv.input[1].clone();
        graph
            .initializer
            .iter_mut()
            .find(|t| t.name == weight)
            .expect("the weight")
            .clone()
    };
    let set_weight = |dims: Vec<i64>| {
        altered(move |model| {
            let name = first_conv(model).name;
            let graph = model.graph.as_mut().expect("a graph");
            let t = graph
                .initializer
                .iter_mut()
                .find(|t| t.name == name)
                .expect("the weight");
            t.dims = dims.clone();
            t.raw_data.clear();
            t.float_data.clear();
        })
    };
    let cases = [
        ("zero size", set_weight(vec![1 << 40, 0, 3, 3])),
        ("overflow", set_weight(vec![1 << 32, 1 << 32, 1, 1])),
        ("negative", set_weight(vec![-4, -3, 3, 3])),
        (
            "loop",
            altered(|model| {
                let graph = model.graph.as_mut().expect("a graph");
                let relu = graph
                    .node
                    .iter_mut()
                    .find(|n| n.op_type == "Relu")
                    .expect("a ReLU");
                relu.output[0] = relu.input[0].clone();
            }),
        ),
    ];
    for (what, bytes) in cases {
        let err = Vgg16Base::from_bytes(&bytes, Path::new("hostile.onnx"))
            .expect_err(what)
            .to_string();
        assert!(err.contains("hostile.onnx"), "{what}: {err}");
    }
}
