//! What a model file says about itself, read from its ONNX protobuf without running it.

use crate::preprocess::{keys, InputConfig, Layout};
use crate::{Error, Result};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// One input or output: its name and shape (`None` for a symbolic dimension such as the batch).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<Option<usize>>,
}

/// The parts of a model file the runtime needs before it runs anything.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub input: TensorInfo,
    pub output: TensorInfo,
    /// `metadata_props` of the model.
    pub metadata: HashMap<String, String>,
    /// Class names from the metadata, if present.
    pub classes: Option<Vec<String>>,
    /// Preprocessing from the metadata, if present.
    pub input_config: Option<InputConfig>,
    /// Whether the output already holds probabilities (softmax in the graph).
    pub outputs_probabilities: bool,
}

fn shape_of(value: &pb::ValueInfoProto) -> Vec<Option<usize>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Vec::new();
    };
    t.shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

impl ModelInfo {
    /// Parses the model's protobuf. `path` only names the model in errors.
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
        let classes = match metadata.get(keys::CLASSES) {
            Some(json) => Some(serde_json::from_str::<Vec<String>>(json).map_err(|e| {
                bad(format!(
                    "metadata {}: not a JSON list of names ({e})",
                    keys::CLASSES
                ))
            })?),
            None => None,
        };
        let input_config = InputConfig::from_metadata(&metadata).map_err(bad)?;
        // Our metadata says; otherwise a graph whose output comes out of a Softmax gives probabilities.
        let outputs_probabilities = match metadata.get(keys::OUTPUT) {
            Some(o) => o == "probabilities",
            None => graph
                .node
                .iter()
                .any(|n| n.op_type == "Softmax" && n.output.contains(&output.name)),
        };
        let info = ModelInfo {
            input: TensorInfo {
                name: input.name.clone(),
                shape: shape_of(input),
            },
            output: TensorInfo {
                name: output.name.clone(),
                shape: shape_of(output),
            },
            metadata,
            classes,
            input_config,
            outputs_probabilities,
        };
        if info.input.shape.len() != 4 {
            return Err(bad(format!(
                "input {:?} has rank {}; an image classifier takes a rank-4 image batch",
                info.input.name,
                info.input.shape.len()
            )));
        }
        Ok(info)
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
    /// layout, pixels scaled to `[0, 1]`. `None` unless the input is a 3-channel image batch of
    /// fixed height and width.
    pub fn guessed_input_config(&self) -> Option<InputConfig> {
        let layout = self.image_layout()?;
        let s = &self.input.shape;
        let (h, w) = match layout {
            Layout::Nchw => (s[2]?, s[3]?),
            Layout::Nhwc => (s[1]?, s[2]?),
        };
        Some(InputConfig {
            height: h,
            width: w,
            layout,
            ..InputConfig::unit_rgb(h)
        })
    }
}
