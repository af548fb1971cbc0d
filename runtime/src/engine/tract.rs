//! The pure-Rust engine: tract, on the CPU.

use super::Engine;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// Input shapes whose plans are kept at once.
const MAX_PLANS: usize = 4;

/// The name of tract's worker threads (`runtime-tract-0`, ...): they run only work that a
/// [`guarded`] call started, whose panics it catches.
const POOL: &str = "runtime-tract";

#[cfg(feature = "threads")]
fn executor(threads: Option<usize>) -> Executor {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n > 1 {
        Executor::multithread_with_name(n, POOL)
    } else {
        Executor::SingleThread
    }
}

#[cfg(not(feature = "threads"))]
fn executor(_: Option<usize>) -> Executor {
    Executor::SingleThread
}

/// Runs `f`, turning a panic inside tract into an error: some malformed graphs (a transpose
/// whose permutation names axes the tensor lacks, found by fuzzing) make tract index out of
/// bounds instead of returning an error. Where panics abort (WebAssembly), this cannot help.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.with(|depth| depth.set(depth.get() + 1));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|depth| depth.set(depth.get() - 1));
    outcome.unwrap_or_else(|payload| {
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

/// The newest operator set (domain `ai.onnx`) tract reads: the last one of the newest ONNX IR
/// version its ONNX schema has (ONNX's release table, docs/Versioning.md in the ONNX repository:
/// IR 3 went with operator sets up to 8, IR 4 with 9, 5 with 10, 6 with 11, 7 with 14, 8 with
/// 18, 9 with 20, 10 with 22, 11 with 23). tract 0.23's schema is IR 8: operator sets to 18, the
/// range its own load warning says it is tested against.
pub(crate) fn newest_opset() -> i64 {
    match tract_onnx::pb::Version::IrVersion as i32 {
        ..=3 => 8,
        4 => 9,
        5 => 10,
        6 => 11,
        7 => 14,
        8 => 18,
        9 => 20,
        10 => 22,
        _ => 23,
    }
}

thread_local! {
    /// How many [`guarded`] calls this thread is inside.
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether a panic on this thread now is one that a [`guarded`] call will catch and report as
/// an error: the thread is inside one, or is one of tract's workers.
pub(crate) fn panic_is_caught() -> bool {
    GUARDED.with(|depth| depth.get() > 0)
        || std::thread::current()
            .name()
            .and_then(|name| name.strip_prefix(POOL))
            .is_some_and(|rest| rest.starts_with('-'))
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
