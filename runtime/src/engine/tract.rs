//! The pure-Rust engine: tract, on the CPU.

use super::Engine;
use crate::{Error, Result};
use std::path::Path;
use tract_onnx::prelude::*;

pub(crate) struct TractEngine {
    plan: Arc<TypedRunnableModel>,
}

impl TractEngine {
    pub(crate) fn load(bytes: &[u8], path: &Path) -> Result<Self> {
        let fail = |e: TractError| Error::Engine {
            engine: "tract",
            reason: format!("{}: {e:#}", path.display()),
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(fail)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(fail)?;
        Ok(TractEngine { plan })
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn provider(&self) -> String {
        "cpu".into()
    }

    fn run(&mut self, input: &[f32], shape: &[usize]) -> Result<(Vec<usize>, Vec<f32>)> {
        let fail = |e: TractError| Error::Engine {
            engine: "tract",
            reason: format!("{e:#}"),
        };
        let tensor = Tensor::from_shape(shape, input).map_err(fail)?;
        let outputs = self.plan.run(tvec!(tensor.into())).map_err(fail)?;
        let out = outputs.first().ok_or_else(|| Error::Engine {
            engine: "tract",
            reason: "the model produced no output".into(),
        })?;
        let view = out.to_plain_array_view::<f32>().map_err(fail)?;
        Ok((view.shape().to_vec(), view.iter().copied().collect()))
    }
}
