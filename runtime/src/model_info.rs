//! What a model file says about itself, read from its ONNX protobuf without running it.

use crate::error::{Error, Result};
use crate::preprocess::{keys, InputConfig, Layout};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// The most classes a model may name or output.
pub const MAX_CLASSES: usize = 100_000;

/// A float32 initializer's dimensions and values.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatTensor {
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A float32 initializer read from `raw_data` or `float_data`; `Ok(None)` for a tensor of another
/// type.
///
/// # Errors
/// Values stored in an external file, a negative dimension, dimensions whose product overflows,
/// or a number of stored values other than that product: each named with the tensor.
pub fn float_initializer(t: &pb::TensorProto) -> Result<Option<FloatTensor>, String> {
    const FLOAT: i32 = 1;
    if t.data_type != FLOAT {
        return Ok(None);
    }
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(format!(
            "initializer {:?} lives in an external data file, which is not read here",
            t.name
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("initializer {:?}: dimension {d}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("initializer {:?}: dimensions {dims:?} overflow", t.name))?;
    let stored = if t.raw_data.is_empty() {
        t.float_data.len()
    } else {
        t.raw_data.len() / 4
    };
    if stored != n || !t.raw_data.len().is_multiple_of(4) {
        return Err(format!(
            "initializer {:?}: {stored} values for dimensions {dims:?}",
            t.name
        ));
    }
    let values = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    Ok(Some(FloatTensor { dims, values }))
}

/// One input or output: its name and shape (`None` for a symbolic dimension such as the batch).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name in the graph.
    pub name: String,
    /// Its dimensions, `None` where symbolic.
    pub shape: Vec<Option<usize>>,
    /// Its element type as ONNX numbers them (`TensorProto.DataType`: 1 float, 2 uint8, 10
    /// float16, ...); 0 where the file does not say.
    pub elem_type: i32,
    /// The names of the symbolic dimensions (`batch`), where the file gives them.
    symbols: Vec<Option<String>>,
}

impl TensorInfo {
    /// The shape as people write it: `[batch, 3, 32, 32]`, `?` for an unnamed symbolic size.
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(v) => v.to_string(),
                None => self
                    .symbols
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "?".into()),
            })
            .collect();
        format!("[{}]", dims.join(", "))
    }
}

/// The parts of a model file the runtime needs before it runs anything.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The file the model came from (or the name it was given).
    pub path: std::path::PathBuf,
    /// The image input.
    pub input: TensorInfo,
    /// The first output (the class scores).
    pub output: TensorInfo,
    /// `metadata_props` of the model.
    pub metadata: HashMap<String, String>,
    /// Class names from the metadata, if present.
    pub classes: Option<Vec<String>>,
    /// Preprocessing from the metadata, if present.
    pub input_config: Option<InputConfig>,
    /// Whether the output already holds probabilities (softmax in the graph).
    pub outputs_probabilities: bool,
    /// The version of ONNX's operator set (domain `ai.onnx`) the graph is written in, when the
    /// file declares it.
    pub opset: Option<i64>,
}

fn tensor_info(value: &pb::ValueInfoProto) -> TensorInfo {
    use pb::tensor_shape_proto::dimension::Value;
    let (dims, elem_type) = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => (
            t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]),
            t.elem_type,
        ),
        _ => (&[][..], 0),
    };
    let (shape, symbols) = dims
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) if *v > 0 => (usize::try_from(*v).ok(), None),
            Some(Value::DimParam(name)) if !name.is_empty() => {
                (None, Some(name.chars().take(64).collect()))
            }
            _ => (None, None),
        })
        .unzip();
    TensorInfo {
        name: value.name.clone(),
        shape,
        elem_type,
        symbols,
    }
}

/// Node attributes the ONNX specification constrains and that an engine trusts: a `Transpose`'s
/// `perm` must be a permutation of `0..rank` (tract, given `[1, 3, 1, 2]`, allocated without
/// bound; given an axis past the rank, it panicked: both found by fuzzing).
/// Subgraphs (the bodies of `If`, `Loop`, `Scan`) are checked the same way, to a nesting depth of
/// [`MAX_GRAPH_DEPTH`].
fn check_nodes(graph: &pb::GraphProto) -> Result<(), String> {
    check_nodes_at(graph, 0)
}

/// Subgraphs nested deeper than this are refused.
const MAX_GRAPH_DEPTH: usize = 16;

fn check_nodes_at(graph: &pb::GraphProto, depth: usize) -> Result<(), String> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(format!("subgraphs nested more than {MAX_GRAPH_DEPTH} deep"));
    }
    for node in &graph.node {
        for attribute in &node.attribute {
            for sub in attribute.g.iter().chain(&attribute.graphs) {
                check_nodes_at(sub, depth + 1)?;
            }
        }
        if node.op_type != "Transpose" {
            continue;
        }
        let Some(perm) = node.attribute.iter().find(|a| a.name == "perm") else {
            continue;
        };
        let mut sorted = perm.ints.clone();
        sorted.sort_unstable();
        if !sorted.iter().copied().eq(0..sorted.len() as i64) {
            return Err(format!(
                "node {:?}: Transpose perm {:?} is not a permutation of the axes",
                node.name, perm.ints
            ));
        }
    }
    Ok(())
}

/// The class names in the metadata, if any: 1 to [`MAX_CLASSES`] of them, as many as the output
/// has values an image where that size is fixed (`outputs`).
fn class_names(
    metadata: &HashMap<String, String>,
    outputs: Option<usize>,
    output: &str,
) -> std::result::Result<Option<Vec<String>>, String> {
    let Some(json) = metadata.get(keys::CLASSES) else {
        return Ok(None);
    };
    let names = serde_json::from_str::<Vec<String>>(json)
        .map_err(|e| format!("metadata {}: not a JSON list of names ({e})", keys::CLASSES))?;
    if names.is_empty() || names.len() > MAX_CLASSES {
        return Err(format!(
            "metadata {}: {} names (a classifier has 1 to {MAX_CLASSES} classes)",
            keys::CLASSES,
            names.len()
        ));
    }
    if let Some(n) = outputs.filter(|&n| n != names.len()) {
        return Err(format!(
            "metadata {}: {} class names, but output {output:?} has {n} values an image",
            keys::CLASSES,
            names.len()
        ));
    }
    Ok(Some(names))
}

/// Whether the output holds probabilities: our metadata says; otherwise a graph whose output
/// comes out of a Softmax gives them.
fn gives_probabilities(
    metadata: &HashMap<String, String>,
    graph: &pb::GraphProto,
    output: &str,
) -> std::result::Result<bool, String> {
    match metadata.get(keys::OUTPUT).map(String::as_str) {
        Some("probabilities") => Ok(true),
        Some("logits") => Ok(false),
        Some(other) => Err(format!(
            "metadata {}: {other:?} is neither \"probabilities\" nor \"logits\"",
            keys::OUTPUT
        )),
        None => Ok(graph
            .node
            .iter()
            .any(|n| n.op_type == "Softmax" && n.output.iter().any(|o| o == output))),
    }
}

impl ModelInfo {
    /// Parses the model's protobuf. `path` only names the model in errors.
    ///
    /// # Errors
    /// `Error::BadModel` when the bytes are not an ONNX image classifier (one rank-4 input, an
    /// output of at most [`MAX_CLASSES`] classes) or a metadata value is unusable, naming the
    /// field.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadModel {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        let model =
            pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model ({e})")))?;
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| bad("the model has no graph".into()))?;
        check_nodes(graph).map_err(bad)?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        // Older exporters list weights among the inputs too; the real input is the one without an initializer.
        let inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(bad(format!(
                "expected one image input, found {}",
                inputs.len()
            )));
        };
        let output = graph
            .output
            .first()
            .ok_or_else(|| bad("the graph has no output".into()))?;
        let metadata: HashMap<String, String> = model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        let input = tensor_info(input);
        let output = tensor_info(output);
        if input.shape.len() != 4 {
            return Err(bad(format!(
                "input {:?} has rank {}; an image classifier takes a rank-4 image batch",
                input.name,
                input.shape.len()
            )));
        }
        let outputs = output.shape.last().copied().flatten();
        if outputs.is_some_and(|n| n > MAX_CLASSES) {
            return Err(bad(format!(
                "output {:?} of shape {} has more than {MAX_CLASSES} classes",
                output.name,
                output.shape_text()
            )));
        }
        let classes = class_names(&metadata, outputs, &output.name).map_err(bad)?;
        let input_config =
            InputConfig::from_metadata(&metadata).map_err(|e| bad(format!("metadata {e}")))?;
        // ONNX's standard image keys are checked in every model; they set the preprocessing
        // only where this project's keys are absent (see `guessed_input_config`).
        InputConfig::unit_rgb(1)
            .apply_standard_metadata(&metadata)
            .map_err(|e| bad(format!("metadata {e}")))?;
        let outputs_probabilities =
            gives_probabilities(&metadata, graph, &output.name).map_err(bad)?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version);
        Ok(ModelInfo {
            path: path.to_path_buf(),
            input,
            output,
            metadata,
            classes,
            input_config,
            outputs_probabilities,
            opset,
        })
    }

    /// Number of classes the model outputs, when known.
    pub fn num_classes(&self) -> Option<usize> {
        self.output
            .shape
            .last()
            .copied()
            .flatten()
            .or_else(|| self.classes.as_ref().map(Vec::len))
    }

    /// The layout the input's shape implies: three channels first (`NCHW`) or last (`NHWC`).
    pub fn image_layout(&self) -> Option<Layout> {
        let s = &self.input.shape;
        match (s[1], s[3]) {
            (Some(3), _) => Some(Layout::Nchw),
            (_, Some(3)) => Some(Layout::Nhwc),
            _ => None,
        }
    }

    /// Preprocessing for a model without this project's metadata: the input's own size and
    /// layout, and what ONNX's standard image keys say (pixels scaled to `[0, 1]`, RGB, where
    /// they say nothing). `None` unless the input is a 3-channel image batch of fixed height
    /// and width.
    pub fn guessed_input_config(&self) -> Option<InputConfig> {
        let layout = self.image_layout()?;
        let s = &self.input.shape;
        let (h, w) = match layout {
            Layout::Nchw => (s[2]?, s[3]?),
            Layout::Nhwc => (s[1]?, s[2]?),
        };
        let mut config = InputConfig {
            height: h,
            width: w,
            layout,
            ..InputConfig::unit_rgb(h)
        };
        // Checked when the model was read.
        config.apply_standard_metadata(&self.metadata).ok()?;
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(dims: &[i64], raw: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: "w".into(),
            dims: dims.to_vec(),
            data_type: 1,
            raw_data: raw.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn float_initializers_read_whole_or_not_at_all() {
        let w = float_initializer(&floats(&[2, 1], &[1.5, -2.0]))
            .unwrap()
            .unwrap();
        assert_eq!((w.dims, w.values), (vec![2, 1], vec![1.5, -2.0]));
        let listed = pb::TensorProto {
            float_data: vec![3.0],
            raw_data: Vec::new(),
            ..floats(&[1], &[])
        };
        assert_eq!(
            float_initializer(&listed).unwrap().unwrap().values,
            vec![3.0]
        );
        for (dims, why) in [
            (vec![3, 1], "2 values for dimensions [3, 1]"),
            (vec![-2], "dimension -2"),
            (vec![i64::MAX, i64::MAX], "overflow"),
        ] {
            let err = float_initializer(&floats(&dims, &[1.0, 2.0])).unwrap_err();
            assert!(err.contains("\"w\"") && err.contains(why), "{err}");
        }
        let external = pb::TensorProto {
            data_location: Some(pb::tensor_proto::DataLocation::External as i32),
            ..floats(&[2], &[])
        };
        assert!(float_initializer(&external)
            .unwrap_err()
            .contains("external data"));
        let ints = pb::TensorProto {
            data_type: 7,
            ..floats(&[2], &[])
        };
        assert_eq!(float_initializer(&ints), Ok(None));
    }
}
