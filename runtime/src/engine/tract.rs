//! The pure-Rust engine: tract, on the CPU.

use super::Engine;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// Input shapes whose plans are kept at once.
const MAX_PLANS: usize = 4;

#[cfg(not(target_family = "wasm"))]
fn executor(threads: Option<usize>) -> Executor {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n > 1 {
        Executor::multithread_with_name(n, "tract")
    } else {
        Executor::SingleThread
    }
}

#[cfg(target_family = "wasm")]
fn executor(_: Option<usize>) -> Executor {
    Executor::SingleThread
}

/// Runs `f`, turning a panic inside tract into an error: some malformed graphs (a transpose
/// whose permutation names axes the tensor lacks, found by fuzzing) make tract index out of
/// bounds instead of returning an error. Where panics abort (WebAssembly), this cannot help.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("tract cannot run this graph (it failed inside: {why})"),
        })
    })
}

pub(crate) struct TractEngine {
    /// The model as read, with its symbolic dimensions (the batch, usually).
    model: InferenceModel,
    /// One plan per input shape, optimised for that shape: tract plans a fixed shape better
    /// than a symbolic one.
    plans: HashMap<Vec<usize>, Arc<TypedRunnableModel>>,
    executor: Executor,
    /// The model's file, for errors.
    path: std::path::PathBuf,
}

impl TractEngine {
    /// `threads`: threads for tract's matrix products (default: all cores; 1 runs them on the
    /// calling thread, as WebAssembly does).
    pub(crate) fn load(bytes: &[u8], path: &Path, threads: Option<usize>) -> Result<Self> {
        let fail = |e: TractError| Error::Engine {
            engine: "tract",
            reason: format!("{}: {e:#}", path.display()),
            source: Some(e.into()),
        };
        guarded(path, || {
            let model = tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .map_err(fail)?;
            // Typing the whole graph checks every operator and shape now, at load time.
            model.clone().into_typed().map_err(fail)?;
            Ok(TractEngine {
                model,
                plans: HashMap::new(),
                executor: executor(threads),
                path: path.to_path_buf(),
            })
        })
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn provider(&self) -> String {
        "cpu".into()
    }

    fn run_all(&mut self, input: &[f32], shape: &[usize]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let path = self.path.clone();
        guarded(&path, || self.run_unguarded(input, shape))
    }
}

impl TractEngine {
    fn run_unguarded(
        &mut self,
        input: &[f32],
        shape: &[usize],
    ) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let fail = |e: TractError| Error::Engine {
            engine: "tract",
            reason: format!("{e:#}"),
            source: Some(e.into()),
        };
        let tensor = Tensor::from_shape(shape, input).map_err(fail)?;
        let plan = match self.plans.get(shape) {
            Some(plan) => plan.clone(),
            None => {
                let plan = self
                    .model
                    .clone()
                    .with_input_fact(0, f32::fact(shape).into())
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(fail)?;
                // Each plan holds its own packed weights: keep a few shapes (a run's batch size
                // and its last, smaller batch), not every shape ever seen.
                if self.plans.len() >= MAX_PLANS {
                    self.plans.clear();
                }
                self.plans.insert(shape.to_vec(), plan.clone());
                plan
            }
        };
        let outputs =
            multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(tensor.into())))
                .map_err(fail)?;
        outputs
            .iter()
            .map(|out| {
                let view = out.to_plain_array_view::<f32>().map_err(fail)?;
                Ok((view.shape().to_vec(), view.iter().copied().collect()))
            })
            .collect()
    }
}
