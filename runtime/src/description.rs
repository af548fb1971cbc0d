//! What a loaded [`Classifier`] says about itself, in one value: for a user interface, a log
//! line or a caller in another language (as JSON).

use crate::classifier::Classifier;
use crate::preprocess::{keys, InputConfig};
use serde::Serialize;

/// The model a [`Classifier`] runs, how images are prepared for it, and what runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    /// The model's file (or the name it was given).
    pub model: String,
    /// The engine that runs it: `ort` or `tract`.
    pub engine: String,
    /// The execution provider that runs it (`cpu`, `cuda`, ...).
    pub provider: String,
    /// The input tensor's name.
    pub input_name: String,
    /// The input tensor's shape as the file declares it, e.g. `[batch, 32, 32, 3]`.
    pub input_shape: String,
    /// How images are prepared for it: size, layout, channel order, scale, mean, std (at the
    /// top level of the JSON, beside the other fields).
    #[serde(flatten)]
    pub input: InputConfig,
    /// How many classes the model tells apart, where the file says.
    pub num_classes: Option<usize>,
    /// The class names, where the file has them.
    pub classes: Option<Vec<String>>,
    /// The quantized variant (`int8-weights`, `int8-static`, `fp16`), where the file is one.
    pub variant: Option<String>,
    /// The ONNX operator set the graph is written in, where the file declares it.
    pub opset: Option<i64>,
    /// Whether the model's output already holds probabilities (softmax in the graph); otherwise
    /// the runtime applies softmax to its scores.
    pub outputs_probabilities: bool,
}

impl Description {
    /// The description as one line of JSON.
    pub fn to_json(&self) -> String {
        // Every field is a string, number, list or null: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Classifier {
    /// What the model is, how images are prepared for it, and what runs it.
    pub fn describe(&self) -> Description {
        let info = self.info();
        Description {
            model: info.path.display().to_string(),
            engine: self.engine_name().to_string(),
            provider: self.provider(),
            input_name: info.input.name.clone(),
            input_shape: info.input.shape_text(),
            input: self.input_config().clone(),
            num_classes: info.num_classes(),
            classes: info.classes.clone(),
            variant: info.metadata.get(keys::QUANTIZATION_VARIANT).cloned(),
            opset: info.opset,
            outputs_probabilities: info.outputs_probabilities,
        }
    }
}
