//! The engines that run a model: ONNX Runtime (`ort`, optional) and tract (always there).

#[cfg(feature = "ort")]
mod onnxruntime;
pub mod ort_library;
mod tract;

use crate::error::{Error, Result};
use std::path::Path;

/// A panic hook, as `std::panic::set_hook` takes it.
pub type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static>;

/// The panic hook for a program that embeds the runtime
/// (`std::panic::set_hook(runtime::panic_hook(std::panic::take_hook()))`): some malformed graphs
/// make tract panic, and the runtime turns those panics into an [`Error`] that names the file and
/// the problem; this hook keeps them off stderr, so that the error is all the user sees. Every
/// other panic goes to `previous`. The library itself never changes the hook.
pub fn panic_hook(previous: PanicHook) -> PanicHook {
    Box::new(move |info| {
        if !tract::panic_is_caught() {
            previous(info);
        }
    })
}

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

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// NVIDIA CUDA (needs a GPU build of ONNX Runtime, CUDA and cuDNN).
    Cuda,
    /// NVIDIA TensorRT (as CUDA, plus TensorRT; building its engines takes a while per model).
    TensorRt,
    /// ONNX Runtime's own CPU kernels, in every build.
    Cpu,
}

impl Provider {
    /// The default preference: CUDA where it really runs, else the CPU. TensorRT is used only
    /// when asked for, as it compiles an engine for each model when the model is loaded.
    pub const DEFAULT: &'static [Provider] = &[Provider::Cuda, Provider::Cpu];
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
            Provider::Cpu => "cpu",
        })
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cuda" | "gpu" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            "cpu" => Ok(Provider::Cpu),
            other => Err(format!(
                "unknown execution provider {other:?}: expected cuda, tensorrt or cpu"
            )),
        }
    }
}

/// One way of running a model.
pub(crate) trait Engine: Send {
    fn name(&self) -> &'static str;
    /// The execution provider that actually runs the model.
    fn provider(&self) -> String;
    /// Runs one input tensor of `shape`; returns every output's shape and values, in the graph's
    /// order (calibration reads inner tensors made outputs).
    fn run_all(&mut self, input: &[f32], shape: &[usize]) -> Result<Vec<(Vec<usize>, Vec<f32>)>>;
    /// Runs one input tensor of `shape`; returns the first output's shape and values.
    fn run(&mut self, input: &[f32], shape: &[usize]) -> Result<(Vec<usize>, Vec<f32>)> {
        let mut outputs = self.run_all(input, shape)?;
        if outputs.is_empty() {
            return Err(Error::Engine {
                engine: self.name(),
                reason: "the model produced no output".into(),
                source: None,
            });
        }
        Ok(outputs.swap_remove(0))
    }
}

/// How an engine runs a model: the machine's threads, and how it treats quantized weights.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Threads within one run (default: the engine's own choice, all cores).
    pub per_run: Option<usize>,
    /// Whether ONNX Runtime's idle threads spin waiting for work (lowest latency) or sleep
    /// (leaving the cores to other work, such as decoding the next images).
    #[cfg_attr(not(feature = "ort"), allow(dead_code))]
    pub spin: bool,
    /// Whether the model's int8 weights feed float operators only (the int8-weights variant):
    /// ONNX Runtime then folds their dequantization into float constants once, at load time,
    /// instead of keeping it for integer kernels that would not run, which dequantized every
    /// weight on every run. tract folds constants always.
    #[cfg_attr(not(feature = "ort"), allow(dead_code))]
    pub fold_quantized_weights: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            per_run: None,
            spin: true,
            fold_quantized_weights: false,
        }
    }
}

/// Refuses a model whose operator set (`opset`, domain `ai.onnx`) is newer than the newest the
/// engine knows (`known`, as the engine itself tells): run as an older set, its operators could
/// mean something else.
fn check_opset(engine: &'static str, opset: Option<i64>, known: i64, path: &Path) -> Result<()> {
    match opset {
        Some(v) if v > known => Err(Error::Engine {
            engine,
            reason: format!(
                "{}: the model is written in ONNX operator set {v}; {} knows operator sets up to {known} (export the model at opset {known} or lower{})",
                path.display(),
                match engine {
                    "ort" => "this ONNX Runtime",
                    _ => "tract",
                },
                match engine {
                    "ort" => ", or use a newer ONNX Runtime",
                    _ => ", or run it on ONNX Runtime",
                }
            ),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Loads the engine asked for, with ONNX Runtime (from `ort_library`, else where
/// [`ort_library::find`] looks) on the first usable provider of `providers`. Also returns notes
/// for the user: why ONNX Runtime (under `Auto`) or a provider was passed over.
pub(crate) fn load(
    choice: EngineChoice,
    model: (&[u8], Option<i64>),
    path: &Path,
    settings: Settings,
    providers: &[Provider],
    ort_library: Option<&Path>,
) -> Result<(Box<dyn Engine>, Vec<String>)> {
    let (bytes, opset) = model;
    let load_tract = || -> Result<Box<dyn Engine>> {
        check_opset("tract", opset, tract::newest_opset(), path)?;
        Ok(Box::new(tract::TractEngine::load(
            bytes,
            path,
            settings.per_run,
        )?))
    };
    let load_ort = || load_ort(model, path, settings, providers, ort_library);
    match choice {
        EngineChoice::Tract => Ok((load_tract()?, Vec::new())),
        EngineChoice::Ort => load_ort(),
        EngineChoice::Auto => match load_ort() {
            Ok(loaded) => Ok(loaded),
            // A model ONNX Runtime refuses is refused by tract too, with its own message.
            Err(Error::OrtUnavailable(reason)) => Ok((
                load_tract()?,
                vec![format!(
                    "ONNX Runtime is not available ({reason}); using tract"
                )],
            )),
            Err(e) => Err(e),
        },
    }
}

#[cfg(feature = "ort")]
fn load_ort(
    model: (&[u8], Option<i64>),
    path: &Path,
    settings: Settings,
    providers: &[Provider],
    library: Option<&Path>,
) -> Result<(Box<dyn Engine>, Vec<String>)> {
    let (engine, notes) = onnxruntime::OrtEngine::load(model, path, settings, providers, library)?;
    let notes = notes
        .into_iter()
        .map(|n| format!("execution provider {n}"))
        .collect();
    Ok((Box::new(engine), notes))
}

#[cfg(not(feature = "ort"))]
fn load_ort(
    _: (&[u8], Option<i64>),
    _: &Path,
    _: Settings,
    _: &[Provider],
    _: Option<&Path>,
) -> Result<(Box<dyn Engine>, Vec<String>)> {
    Err(Error::OrtUnavailable(
        "this build has no ONNX Runtime support (the `ort` feature is off)".into(),
    ))
}
