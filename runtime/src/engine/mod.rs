//! The engines that run a model: ONNX Runtime (`ort`, optional) and tract (always there).

#[cfg(feature = "ort")]
mod onnxruntime;
pub mod ort_library;
mod tract;

use crate::{Error, Result};
use std::path::Path;

/// Which engine runs a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineChoice {
    /// ONNX Runtime when its library loads, else tract.
    #[default]
    Auto,
    /// ONNX Runtime only; an error when it cannot be loaded.
    Ort,
    /// tract only (pure Rust, CPU).
    Tract,
}

impl std::str::FromStr for EngineChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EngineChoice::Auto),
            "ort" | "onnxruntime" => Ok(EngineChoice::Ort),
            "tract" => Ok(EngineChoice::Tract),
            other => Err(format!(
                "unknown engine {other:?}: expected auto, ort or tract"
            )),
        }
    }
}

/// One way of running a model.
pub(crate) trait Engine: Send {
    fn name(&self) -> &'static str;
    /// The execution provider that actually runs the model.
    fn provider(&self) -> String;
    /// Runs one input tensor of `shape`; returns the first output's shape and values.
    fn run(&mut self, input: &[f32], shape: &[usize]) -> Result<(Vec<usize>, Vec<f32>)>;
}

/// Loads the engine asked for. With `Auto`, returns why ONNX Runtime was not used when it was not.
pub(crate) fn load(
    choice: EngineChoice,
    bytes: &[u8],
    path: &Path,
    threads: Option<usize>,
) -> Result<(Box<dyn Engine>, Option<String>)> {
    match choice {
        EngineChoice::Tract => Ok((Box::new(tract::TractEngine::load(bytes, path)?), None)),
        EngineChoice::Ort => Ok((load_ort(bytes, path, threads)?, None)),
        EngineChoice::Auto => match load_ort(bytes, path, threads) {
            Ok(engine) => Ok((engine, None)),
            // A model ONNX Runtime refuses is refused by tract too, with its own message.
            Err(Error::OrtUnavailable(reason)) => Ok((
                Box::new(tract::TractEngine::load(bytes, path)?),
                Some(format!(
                    "ONNX Runtime is not available ({reason}); using tract"
                )),
            )),
            Err(e) => Err(e),
        },
    }
}

#[cfg(feature = "ort")]
fn load_ort(bytes: &[u8], path: &Path, threads: Option<usize>) -> Result<Box<dyn Engine>> {
    Ok(Box::new(onnxruntime::OrtEngine::load(
        bytes, path, threads,
    )?))
}

#[cfg(not(feature = "ort"))]
fn load_ort(_: &[u8], _: &Path, _: Option<usize>) -> Result<Box<dyn Engine>> {
    Err(Error::OrtUnavailable(
        "this build has no ONNX Runtime support (the `ort` feature is off)".into(),
    ))
}
