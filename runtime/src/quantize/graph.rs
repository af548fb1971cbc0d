//! Rewriting an ONNX graph into its weight-only variants (int8 weights, fp16), and what every
//! rewrite shares (the operators the quantizer knows, tensors, nodes, fresh names, per-channel
//! `DequantizeLinear`); the static variant's activations are in [`super::qdq`]. On tract-onnx's
//! protobuf types. Each
//! rewrite keeps the graph's inputs, outputs and every tensor name a consumer reads: a weight
//! `w` becomes `w_quantized` (or `w_fp16`) and a `DequantizeLinear` (or `Cast`) node whose
//! output is `w` again.

use super::calibrate::{self, symmetric_int8};
use crate::model_info::FloatTensor;
use std::collections::{HashMap, HashSet};
use tract_onnx::pb;

const FLOAT: i32 = 1;
pub(super) const UINT8: i32 = 2;
const INT8: i32 = 3;
pub(super) const INT32: i32 = 6;
const FLOAT16: i32 = 10;

/// The lowest opset whose `DequantizeLinear` takes per-channel scales (`axis`).
pub const MIN_INT8_OPSET: i64 = 13;

/// Operators whose weight the int8 variants quantize: `Conv`'s `W`, `Gemm`'s `B`, `MatMul`'s
/// constant right-hand side.
const QUANTIZABLE: &[&str] = &["Conv", "Gemm", "MatMul"];

/// Operators that only move or select values: in the static variant their output keeps their
/// input's quantization, so that ONNX Runtime runs them on the integers.
pub(super) const DATA_MOVEMENT: &[&str] = &[
    "MaxPool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Identity",
];

/// Operators left as they are, in float.
const FLOAT_OPS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Erf",
    "Gelu",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
    "Dropout",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Exp",
    "Neg",
    "Min",
    "Max",
    "Clip",
    "Concat",
    "Split",
    "Slice",
    "Pad",
    "Shape",
    "Gather",
    "Constant",
    "Cast",
    "ReduceMean",
    "ReduceMax",
    "ReduceSum",
];

/// Operators that say a model is quantized already.
const QUANTIZED_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "QGemm",
    "QLinearAdd",
];

/// Checks that every node is an operator the quantizer knows and that the model is not quantized
/// already; for the int8 variants, that the opset has per-channel `DequantizeLinear`.
pub fn check(model: &pb::ModelProto, int8: bool) -> Result<(), String> {
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    for node in &graph.node {
        let op = node.op_type.as_str();
        if QUANTIZED_OPS.contains(&op) {
            return Err(format!(
                "the model is quantized already (node {:?} is a {op})",
                node.name
            ));
        }
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
        if !standard
            || !(QUANTIZABLE.contains(&op)
                || DATA_MOVEMENT.contains(&op)
                || FLOAT_OPS.contains(&op))
        {
            let domain = if standard {
                String::new()
            } else {
                format!(" of domain {:?}", node.domain)
            };
            return Err(format!(
                "node {:?}: operator {op}{domain} is not one the quantizer knows (it knows {}, {}, {})",
                node.name,
                QUANTIZABLE.join(", "),
                DATA_MOVEMENT.join(", "),
                FLOAT_OPS.join(", ")
            ));
        }
    }
    for t in &graph.initializer {
        if matches!(t.data_type, INT8 | UINT8 | FLOAT16) {
            return Err(format!(
                "the model is quantized already (initializer {:?} holds {} values)",
                t.name,
                if t.data_type == FLOAT16 {
                    "float16"
                } else {
                    "8-bit"
                }
            ));
        }
    }
    if int8 {
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(1, |o| o.version);
        if opset < MIN_INT8_OPSET {
            return Err(format!(
                "opset {opset}: the int8 variants need opset {MIN_INT8_OPSET} or newer (per-channel DequantizeLinear); convert the model first"
            ));
        }
    }
    Ok(())
}

/// Reads a float initializer ([`crate::model_info::float_initializer`]) whose values are all
/// finite (a quantized NaN or infinity would be a plausible-looking number); `Ok(None)` for other
/// types.
pub fn float_tensor(t: &pb::TensorProto) -> Result<Option<FloatTensor>, String> {
    let Some(w) = crate::model_info::float_initializer(t)? else {
        return Ok(None);
    };
    if let Some(v) = w.values.iter().find(|v| !v.is_finite()) {
        return Err(format!("initializer {:?} holds {v}, not a weight", t.name));
    }
    Ok(Some(w))
}

pub(super) fn tensor(
    name: &str,
    data_type: i32,
    dims: &[usize],
    raw_data: Vec<u8>,
) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        raw_data,
        ..Default::default()
    }
}

pub(super) fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, FLOAT, dims, raw)
}

pub(super) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    axis: Option<i64>,
) -> pb::NodeProto {
    use pb::attribute_proto::AttributeType;
    let attribute = axis
        .map(|a| pb::AttributeProto {
            name: if op == "Cast" { "to" } else { "axis" }.into(),
            r#type: AttributeType::Int as i32,
            i: a,
            ..Default::default()
        })
        .into_iter()
        .collect();
    pb::NodeProto {
        name: name.to_string(),
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

/// Names not yet used in a graph.
pub(super) struct Names(HashSet<String>);

impl Names {
    pub(super) fn of(graph: &pb::GraphProto) -> Self {
        let mut used: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        used.extend(
            graph
                .input
                .iter()
                .chain(&graph.output)
                .map(|v| v.name.clone()),
        );
        for n in &graph.node {
            used.insert(n.name.clone());
            used.extend(n.input.iter().chain(&n.output).cloned());
        }
        Names(used)
    }

    pub(super) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.0.contains(&name) {
            i += 1;
            name = format!("{base}_{i}");
        }
        self.0.insert(name.clone());
        name
    }
}

fn int_attr(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

fn float_attr(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

/// A quantizable node's constant weight: the node, the initializer and its output-channel axis.
#[derive(Debug, Clone)]
pub struct WeightUse {
    /// Index of the node in the graph.
    pub node: usize,
    /// The weight initializer's name.
    pub weight: String,
    /// Its output-channel axis.
    pub axis: usize,
    /// A float bias initializer with one value per output channel, added as the node computes
    /// (Conv's `B`; Gemm's `C` with `alpha = beta = 1`).
    pub bias: Option<String>,
}

/// The weights of `Conv`, `Gemm` and `MatMul` nodes that are float initializers: `Conv`'s along
/// axis 0, `Gemm`'s along the output axis of `B` (`transB`), `MatMul`'s 2-D `B` along axis 1.
pub fn weight_uses(graph: &pb::GraphProto) -> Vec<WeightUse> {
    let mut inits: HashMap<&str, &pb::TensorProto> = HashMap::new();
    for t in &graph.initializer {
        inits.insert(t.name.as_str(), t);
    }
    let float_init = |name: &str| inits.get(name).filter(|t| t.data_type == FLOAT);
    let mut uses = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        let Some(weight) = n.input.get(1).filter(|w| float_init(w).is_some()) else {
            continue;
        };
        let rank = float_init(weight).map_or(0, |t| t.dims.len());
        let axis = match (n.op_type.as_str(), rank) {
            ("Conv", r) if r >= 3 => 0,
            ("Gemm", 2) => usize::from(int_attr(n, "transB", 0) == 0),
            ("MatMul", 2) => 1,
            _ => continue,
        };
        let channels = float_init(weight).map_or(0, |t| t.dims[axis]);
        let plain_gemm = n.op_type != "Gemm"
            || (float_attr(n, "alpha", 1.0) == 1.0 && float_attr(n, "beta", 1.0) == 1.0);
        let bias = n
            .input
            .get(2)
            .filter(|_| n.op_type != "MatMul" && plain_gemm)
            .filter(|b| float_init(b).is_some_and(|t| t.dims == [channels]))
            .cloned();
        uses.push(WeightUse {
            node: i,
            weight: weight.clone(),
            axis,
            bias,
        });
    }
    // One axis per initializer: a weight shared along two axes stays float.
    let mut axes: HashMap<String, HashSet<usize>> = HashMap::new();
    for u in &uses {
        axes.entry(u.weight.clone()).or_default().insert(u.axis);
    }
    uses.retain(|u| axes[&u.weight].len() == 1);
    uses
}

/// Takes the initializer `name` out of the graph (and out of its inputs, where an old exporter
/// listed it there).
pub(super) fn take_initializer(graph: &mut pb::GraphProto, name: &str) -> Option<pb::TensorProto> {
    let i = graph.initializer.iter().position(|t| t.name == name)?;
    graph.input.retain(|v| v.name != name);
    Some(graph.initializer.remove(i))
}

/// Replaces the float initializer `name` by per-channel int8 values and a `DequantizeLinear`
/// node that gives `name` back; returns the node and the channel scales.
pub(super) fn dequantized_weight(
    graph: &mut pb::GraphProto,
    names: &mut Names,
    name: &str,
    axis: usize,
) -> Result<Option<(pb::NodeProto, Vec<f32>)>, String> {
    let Some(init) = take_initializer(graph, name) else {
        return Ok(None);
    };
    // An empty tensor has nothing to quantize (and its dimensions bound nothing).
    let Some(w) = float_tensor(&init)?.filter(|w| !w.values.is_empty()) else {
        graph.initializer.push(init);
        return Ok(None);
    };
    let (q, scales) = symmetric_int8(&w.values, &w.dims, axis);
    let stored = Stored {
        data_type: INT8,
        dims: &w.dims,
        raw: q.iter().map(|&v| v as u8).collect(),
        zero_point_bytes: 1,
    };
    let dq = per_channel_dequantize(graph, names, name, stored, &scales, axis);
    Ok(Some((dq, scales)))
}

/// Integer values of a tensor as they are stored: their type, dimensions, little-endian bytes,
/// and the bytes of one zero point of that type.
pub(super) struct Stored<'a> {
    pub(super) data_type: i32,
    pub(super) dims: &'a [usize],
    pub(super) raw: Vec<u8>,
    pub(super) zero_point_bytes: usize,
}

/// Adds `values`, one scale per channel along `axis` and zero zero points as initializers, and
/// returns the `DequantizeLinear` node that gives the float tensor `name` back.
pub(super) fn per_channel_dequantize(
    graph: &mut pb::GraphProto,
    names: &mut Names,
    name: &str,
    values: Stored,
    scales: &[f32],
    axis: usize,
) -> pb::NodeProto {
    let (qn, sn, zn) = (
        names.fresh(&format!("{name}_quantized")),
        names.fresh(&format!("{name}_scale")),
        names.fresh(&format!("{name}_zero_point")),
    );
    let channels = [scales.len()];
    let zeros = vec![0; values.zero_point_bytes * scales.len()];
    graph
        .initializer
        .push(tensor(&qn, values.data_type, values.dims, values.raw));
    graph.initializer.push(f32_tensor(&sn, &channels, scales));
    graph
        .initializer
        .push(tensor(&zn, values.data_type, &channels, zeros));
    let dq_name = names.fresh(&format!("{name}_DequantizeLinear"));
    node(
        "DequantizeLinear",
        &dq_name,
        &[&qn, &sn, &zn],
        name,
        Some(negative_axis(axis, values.dims.len())),
    )
}

/// `axis` counted from the end (`-rank..0`), as ONNX allows: an attribute of 0 would be left out
/// of the file by the protobuf encoder (proto3 defaults), which some readers (OpenCV's DNN
/// module) refuse, and an absent `axis` means 1 to the rest.
fn negative_axis(axis: usize, rank: usize) -> i64 {
    axis as i64 - rank as i64
}

/// The int8-weights variant: every weight of [`weight_uses`] as per-channel symmetric int8 with a
/// `DequantizeLinear` in front of its node; compute stays float. Returns how many weights.
pub fn int8_weights(model: &mut pb::ModelProto) -> Result<usize, String> {
    let graph = model.graph.as_mut().ok_or("the model has no graph")?;
    let uses = weight_uses(graph);
    let mut names = Names::of(graph);
    let mut dq_nodes = Vec::new();
    let mut done = HashSet::new();
    for u in &uses {
        if !done.insert(u.weight.clone()) {
            continue;
        }
        if let Some((dq, _)) = dequantized_weight(graph, &mut names, &u.weight, u.axis)? {
            dq_nodes.push(dq);
        }
    }
    let count = dq_nodes.len();
    if count == 0 {
        return Err("no Conv, Gemm or MatMul node has a constant float weight to quantize".into());
    }
    dq_nodes.append(&mut graph.node);
    graph.node = dq_nodes;
    Ok(count)
}

/// Initializers with fewer values stay float32 in the fp16 variant (scalars, shape constants).
const MIN_FP16_VALUES: usize = 16;

/// The fp16 variant: every float initializer of at least [`MIN_FP16_VALUES`] values stored as
/// float16 with a `Cast` back to float32 in front of its consumers. Returns how many tensors
/// were converted and how many values saturated at the float16 range.
pub fn fp16_weights(model: &mut pb::ModelProto) -> Result<(usize, usize), String> {
    let graph = model.graph.as_mut().ok_or("the model has no graph")?;
    let mut names = Names::of(graph);
    let candidates: Vec<String> = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT)
        .map(|t| t.name.clone())
        .collect();
    let (mut casts, mut saturated) = (Vec::new(), 0);
    for name in candidates {
        let Some(init) = take_initializer(graph, &name) else {
            continue;
        };
        let Some(w) = float_tensor(&init)?.filter(|w| w.values.len() >= MIN_FP16_VALUES) else {
            graph.initializer.push(init);
            continue;
        };
        let mut raw = Vec::with_capacity(2 * w.values.len());
        for &v in &w.values {
            let (h, clipped) = calibrate::to_f16(v);
            saturated += usize::from(clipped);
            raw.extend_from_slice(&h.to_bits().to_le_bytes());
        }
        let stored = names.fresh(&format!("{name}_fp16"));
        graph
            .initializer
            .push(tensor(&stored, FLOAT16, &w.dims, raw));
        let cast_name = names.fresh(&format!("{name}_Cast"));
        casts.push(node(
            "Cast",
            &cast_name,
            &[&stored],
            &name,
            Some(i64::from(FLOAT)),
        ));
    }
    let count = casts.len();
    if count == 0 {
        return Err("no float initializer to store as float16".into());
    }
    casts.append(&mut graph.node);
    graph.node = casts;
    Ok((count, saturated))
}

/// A copy of the model that also outputs `tensors` (as float), for calibration.
pub fn with_outputs(model: &pb::ModelProto, tensors: &[String]) -> pb::ModelProto {
    let mut model = model.clone();
    if let Some(graph) = model.graph.as_mut() {
        let present: HashSet<String> = graph.output.iter().map(|v| v.name.clone()).collect();
        for t in tensors.iter().filter(|t| !present.contains(*t)) {
            // No type: each engine infers it (tract cannot plan an output declared without a
            // shape).
            graph.output.push(pb::ValueInfoProto {
                name: t.clone(),
                ..Default::default()
            });
        }
    }
    model
}

/// Sets (or adds) `metadata_props` entries.
pub fn set_metadata(model: &mut pb::ModelProto, entries: &[(String, String)]) {
    for (key, value) in entries {
        match model.metadata_props.iter_mut().find(|p| &p.key == key) {
            Some(p) => p.value = value.clone(),
            None => model.metadata_props.push(pb::StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            }),
        }
    }
}
