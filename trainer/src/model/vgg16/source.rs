//! Reading the convolutional base out of a VGG16 ONNX file: Keras/tf2onnx graphs (NHWC input,
//! a Transpose to NCHW, `block1_conv1 .. block5_pool`) and Model Zoo / torchvision graphs (NCHW
//! input, `features.N`), with their classifier left behind.

use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// Output channels of VGG16's thirteen convolutions, block by block.
pub const VGG16_BLOCKS: [&[usize]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256],
    &[512, 512, 512],
    &[512, 512, 512],
];

pub use crate::error::SourceError;

/// How the source graph takes its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceLayout {
    /// `[N, H, W, 3]`, transposed to NCHW inside the graph (Keras through tf2onnx).
    Nhwc,
    /// `[N, 3, H, W]` (ONNX Model Zoo, torchvision).
    Nchw,
}

/// One convolution's weights, `[out, in, kh, kw]` and `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// The node's name in the source graph.
    pub name: String,
    pub dims: [usize; 4],
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The convolutional base found in a source graph: VGG16's shape (five blocks of 2, 2, 3, 3 and 3
/// convolutions, each block ending in a 2x2 max pool), any widths.
#[derive(Debug, Clone)]
pub struct Vgg16Base {
    pub layout: SourceLayout,
    /// The 13 convolutions in order.
    pub convs: Vec<ConvWeights>,
    /// The input's fixed height and width in the source graph, if fixed.
    pub source_size: Option<(usize, usize)>,
    /// Names of the nodes kept (input transpose, convolutions, activations, pools), in order.
    pub kept_nodes: Vec<String>,
    /// The output of the last pool (`block5_pool`).
    pub features_output: String,
}

/// A float tensor's dimensions and values; `None` for another type, or for a shape that
/// describes no weights (a zero size, an overflowing product, a count other than the values
/// stored), which would size later allocations.
fn tensor_values(t: &pb::TensorProto) -> Option<(Vec<usize>, Vec<f32>)> {
    runtime::float_initializer(t)
        .ok()
        .flatten()
        .filter(|w| !w.values.is_empty())
        .map(|w| (w.dims, w.values))
}

fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// The graph's constant tensors by name: initializers, and the outputs of Constant nodes (some
/// exporters use them); tensors that are not `f32` or describe no weights are left out.
fn constant_tensors(graph: &pb::GraphProto) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut weights = HashMap::new();
    for t in &graph.initializer {
        if let Some(v) = tensor_values(t) {
            weights.insert(t.name.clone(), v);
        }
    }
    for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
        if let (Some(out), Some(t)) = (
            n.output.first(),
            n.attribute.iter().find_map(|a| a.t.as_ref()),
        ) {
            if let Some(v) = tensor_values(t) {
                weights.insert(out.clone(), v);
            }
        }
    }
    weights
}

/// An input's dimensions, `None` where not a fixed positive size.
fn fixed_dims(input: &pb::ValueInfoProto) -> Vec<Option<usize>> {
    use pb::tensor_shape_proto::dimension::Value;
    match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Value::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A Conv node of the chain as VGG16 weights: constant weight and bias, 3x3, stride 1, padded.
fn vgg_conv(
    node: &pb::NodeProto,
    weights: &HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<ConvWeights, String> {
    let name = &node.name;
    let Some((wd, wv)) = node.input.get(1).and_then(|n| weights.get(n)) else {
        return Err(format!("convolution {name:?} has no constant weight"));
    };
    let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => weights
            .get(b)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("convolution {name:?} has no constant bias"))?,
        None => vec![0.0; wd.first().copied().unwrap_or(0)],
    };
    let [o, i, kh, kw] = wd[..] else {
        return Err(format!("convolution {name:?} weight has shape {wd:?}"));
    };
    let pads = attr_ints(node, "pads").unwrap_or_default();
    let same = pads == [1, 1, 1, 1]
        || node
            .attribute
            .iter()
            .any(|a| a.name == "auto_pad" && a.s.starts_with(b"SAME"));
    let strides_ok = attr_ints(node, "strides").is_none_or(|s| s.iter().all(|&v| v == 1));
    if (kh, kw) != (3, 3) || !same || !strides_ok || bias.len() != o {
        return Err(format!(
            "convolution {name:?} is not a 3x3, stride-1, padded VGG convolution"
        ));
    }
    Ok(ConvWeights {
        name: name.clone(),
        dims: [o, i, kh, kw],
        weight: wv.clone(),
        bias,
    })
}

/// Each convolution takes the channels the one before it gives (3 for the first).
fn check_channels(convs: &[ConvWeights]) -> Result<(), String> {
    let mut in_channels = 3;
    for c in convs {
        if c.dims[1] != in_channels {
            return Err(format!(
                "convolution {:?} takes {} channels, not {in_channels}",
                c.name, c.dims[1]
            ));
        }
        in_channels = c.dims[0];
    }
    Ok(())
}

impl Vgg16Base {
    /// Reads and checks the base of the VGG16 graph in `path`.
    pub fn from_file(path: &Path) -> Result<Self, SourceError> {
        let bytes = std::fs::read(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// [`Vgg16Base::from_file`] on bytes in memory; `path` only names the file in errors.
    // Over 80 lines: one walk along the graph's main chain, its state (layout, convolutions,
    // pools, blocks) in locals that each short match arm updates; the checks are helpers.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, SourceError> {
        let fail = |reason: String| SourceError::NotVgg16 {
            path: path.to_path_buf(),
            reason,
        };
        let model =
            pb::ModelProto::decode(bytes).map_err(|e| fail(format!("not an ONNX file ({e})")))?;
        let graph = model
            .graph
            .ok_or_else(|| fail("the model has no graph".into()))?;
        let weights = constant_tensors(&graph);
        let input = graph
            .input
            .iter()
            .find(|i| !weights.contains_key(&i.name))
            .ok_or_else(|| fail("the graph has no image input".into()))?;
        let dims = fixed_dims(input);
        if dims.len() != 4 {
            return Err(fail(format!(
                "input {:?} is not a rank-4 image batch",
                input.name
            )));
        }
        // Consumers of each tensor, to walk the main chain from the input.
        let mut consumers: HashMap<&str, Vec<&pb::NodeProto>> = HashMap::new();
        for n in &graph.node {
            for i in &n.input {
                consumers.entry(i.as_str()).or_default().push(n);
            }
        }
        let mut layout = SourceLayout::Nchw;
        let mut current = input.name.clone();
        let mut convs = Vec::new();
        let mut kept = Vec::new();
        let mut pools = 0;
        let mut block_sizes = Vec::new();
        let mut features_output = None;
        // Shape-reading side branches (tf2onnx's flatten chain) are not part of the chain.
        let next_of = |tensor: &str| {
            consumers
                .get(tensor)
                .and_then(|c| c.iter().find(|n| n.op_type != "Shape").copied())
        };
        let mut steps = 0;
        while let Some(next) = next_of(current.as_str()) {
            // Each node is passed at most once on a chain; more steps mean the graph loops.
            steps += 1;
            if steps > graph.node.len() {
                return Err(fail(format!(
                    "the graph loops back on itself at node {:?}",
                    next.name
                )));
            }
            match next.op_type.as_str() {
                "Transpose" if convs.is_empty() && kept.is_empty() => {
                    if attr_ints(next, "perm").as_deref() != Some(&[0, 3, 1, 2]) {
                        return Err(fail(format!(
                            "input transpose {:?} is not NHWC to NCHW",
                            next.name
                        )));
                    }
                    layout = SourceLayout::Nhwc;
                }
                "Conv" => convs.push(vgg_conv(next, &weights).map_err(fail)?),
                "Relu" => {}
                "MaxPool" => {
                    let k = attr_ints(next, "kernel_shape").unwrap_or_default();
                    let s = attr_ints(next, "strides").unwrap_or_default();
                    if k != [2, 2] || s != [2, 2] {
                        return Err(fail(format!(
                            "pool {:?} is not a 2x2, stride-2 max pool",
                            next.name
                        )));
                    }
                    pools += 1;
                    block_sizes.push(convs.len() - block_sizes.iter().sum::<usize>());
                    features_output = next.output.first().cloned();
                }
                _ => break,
            }
            kept.push(next.name.clone());
            current = next.output.first().cloned().unwrap_or_default();
            if pools == 5 {
                break;
            }
        }
        if convs.is_empty() {
            return Err(fail("no convolution follows the input".into()));
        }
        let per_block: Vec<usize> = VGG16_BLOCKS.iter().map(|b| b.len()).collect();
        if block_sizes != per_block {
            return Err(fail(format!(
                "expected 5 blocks of {per_block:?} convolutions, each ending in a max pool; found blocks of {block_sizes:?}"
            )));
        }
        check_channels(&convs).map_err(fail)?;
        let source_size = match layout {
            SourceLayout::Nhwc => dims[1].zip(dims[2]),
            SourceLayout::Nchw => dims[2].zip(dims[3]),
        };
        Ok(Vgg16Base {
            layout,
            convs,
            source_size,
            kept_nodes: kept,
            features_output: features_output.unwrap_or_default(),
        })
    }
}

impl Vgg16Base {
    /// Whether the widths are VGG16's own ([`VGG16_BLOCKS`]), as the Burn model needs.
    pub fn has_vgg16_widths(&self) -> bool {
        let expected = VGG16_BLOCKS.iter().flat_map(|b| b.iter().copied());
        self.convs.iter().map(|c| c.dims[0]).eq(expected)
    }
}

/// The file name the skeleton's weights point to (see [`features_skeleton`]).
pub const SKELETON_WEIGHTS: &str = "vgg16_features.bin";

/// Where a features graph takes its weights from.
enum WeightSource<'a> {
    /// The values of a source graph, stored in the graph.
    Inline(&'a [ConvWeights]),
    /// Placeholders in an external-data file, for code generation.
    External(&'a str),
}

/// The normalised convolutional base: input `input` `[batch, 3, height, width]` (NCHW, every
/// dimension symbolic), 13 convolutions with their ReLUs and 5 max pools named `blockB_convC` and
/// `blockB_pool`, output `features`. The original classifier and any layout transpose are gone.
fn features_graph(widths: &[usize], weights: WeightSource) -> Vec<u8> {
    use crate::onnx_graph::{Attr, Dim, GraphBuilder};
    let mut g = GraphBuilder::default();
    let mut x = "input".to_string();
    let mut in_channels = 3;
    let mut index = 0;
    let mut offset = 0;
    for (b, block) in VGG16_BLOCKS.iter().enumerate() {
        for c in 0..block.len() {
            let out_channels = widths[index];
            let name = format!("block{}_conv{}", b + 1, c + 1);
            let dims = [out_channels, in_channels, 3, 3];
            let (w, bias) = (format!("{name}.weight"), format!("{name}.bias"));
            match &weights {
                WeightSource::Inline(convs) => {
                    g.weight(&w, &dims, convs[index].weight.clone());
                    g.weight(&bias, &[out_channels], convs[index].bias.clone());
                }
                WeightSource::External(file) => {
                    offset += g.external_weight(&w, &dims, file, offset);
                    offset += g.external_weight(&bias, &[out_channels], file, offset);
                }
            }
            let conv = g.node(
                "Conv",
                &name,
                &[&x, &w, &bias],
                vec![
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                    ("strides", Attr::Ints(vec![1, 1])),
                ],
            );
            x = g.node("Relu", &format!("{name}_relu"), &[&conv], vec![]);
            in_channels = out_channels;
            index += 1;
        }
        x = g.node(
            "MaxPool",
            &format!("block{}_pool", b + 1),
            &[&x],
            vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        );
    }
    g.finish_graph(
        "vgg16_features",
        (
            "input",
            &[
                Dim::Named("batch"),
                Dim::Fixed(3),
                Dim::Named("height"),
                Dim::Named("width"),
            ],
        ),
        (
            &x,
            "features",
            &[
                Dim::Named("batch"),
                Dim::Fixed(in_channels),
                Dim::Named("features_height"),
                Dim::Named("features_width"),
            ],
        ),
        Vec::new(),
    )
}

/// The graph burn-onnx generates `Vgg16Features` from: VGG16's base with its own widths, its
/// weights left in [`SKELETON_WEIGHTS`] (filled with zeros at build time; the real ones are loaded
/// at run time from the user's file). `trainer/onnx/vgg16_features.onnx` is this graph.
pub fn features_skeleton() -> Vec<u8> {
    let widths: Vec<usize> = VGG16_BLOCKS
        .iter()
        .flat_map(|b| b.iter().copied())
        .collect();
    features_graph(&widths, WeightSource::External(SKELETON_WEIGHTS))
}

impl Vgg16Base {
    /// The base cut out of the source graph and normalised (see [`features_skeleton`]), with the
    /// source's weights: a standalone ONNX file that maps NCHW images to `block5_pool` features.
    pub fn features_graph(&self) -> Vec<u8> {
        let widths: Vec<usize> = self.convs.iter().map(|c| c.dims[0]).collect();
        features_graph(&widths, WeightSource::Inline(&self.convs))
    }
}
