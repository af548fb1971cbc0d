//! ONNX Runtime through `ort`, with the shared library loaded at run time.

use super::{ort_library, Engine, Provider, Settings};
use crate::error::{Error, Result};
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The process's one ONNX Runtime environment and the library it came from, once one loaded.
/// A failure is not kept: a later builder may name a library that exists.
static ENVIRONMENT: OnceLock<(Environment, String)> = OnceLock::new();
/// Held while the environment is being made, so that two threads do not both load a library.
static LOADING: Mutex<()> = Mutex::new(());

/// Loads the library (`library`, else [`ort_library::find`]'s) and builds the environment, once
/// per process: ONNX Runtime cannot be loaded twice, so a later, different `library` is not
/// loaded and the first one keeps running models.
fn environment(library: Option<&Path>) -> Result<&'static (Environment, String)> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _loading = LOADING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let lib = match library {
        Some(path) if path.is_file() => path.to_path_buf(),
        Some(path) => {
            return Err(Error::OrtUnavailable(format!(
                "{} is not a file",
                path.display()
            )))
        }
        None => ort_library::find().map_err(|e| Error::OrtUnavailable(e.to_string()))?,
    };
    let env = ort::init_from(&lib)
        .map_err(|e| Error::OrtUnavailable(format!("{}: {e:?}", lib.display())))?
        .with_name("runtime")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::OrtUnavailable(format!("{}: {e}", lib.display())))?;
    Ok(ENVIRONMENT.get_or_init(|| (env, lib.display().to_string())))
}

/// The newest operator set (domain `ai.onnx`) the loaded ONNX Runtime knows, as it says itself:
/// given a model that imports another domain only, it assumes the newest `ai.onnx` set it has
/// and reports it for the session. `None` where it would not say (then its own refusal, at
/// load time, stands).
fn newest_opset(env: &Environment) -> Option<i64> {
    static NEWEST: OnceLock<Option<i64>> = OnceLock::new();
    *NEWEST.get_or_init(|| {
        let session = Session::builder(env)
            .ok()?
            .commit_from_memory(&opset_probe())
            .ok()?;
        session.opset_for_domain("").map(i64::from)
    })
}

/// An empty model (its input is its output) that imports the `ai.onnx.ml` domain only.
fn opset_probe() -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    let value = pb::ValueInfoProto {
        name: "x".into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![pb::tensor_shape_proto::Dimension {
                        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(1)),
                        ..Default::default()
                    }],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: "ai.onnx.ml".into(),
            version: 3,
        }],
        graph: Some(pb::GraphProto {
            name: "opset_probe".into(),
            input: vec![value.clone()],
            output: vec![value],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

pub(crate) struct OrtEngine {
    session: Session,
    input: String,
    provider: Provider,
}

/// Builds a session on the first of `providers` that really registers and loads the model.
/// ort falls back to the CPU silently when a provider cannot be registered, so each GPU
/// provider is registered on its own builder, with failures as errors, and committed; only a
/// session that was built with it counts as running on it. Returns the session, its provider
/// and why each provider before it was passed over.
fn build_session(
    env: &Environment,
    bytes: &[u8],
    settings: Settings,
    providers: &[Provider],
) -> std::result::Result<(Session, Provider, Vec<String>), String> {
    let builder = || -> ort::Result<SessionBuilder> {
        let mut b = Session::builder(env)?;
        if let Some(n) = settings.per_run {
            b = b.with_intra_threads(n)?;
        }
        if !settings.spin {
            b = b.with_intra_op_spinning(false)?;
        }
        if settings.fold_quantized_weights {
            // Without its QDQ fusion, ONNX Runtime's constant folding takes DequantizeLinear
            // of constant weights too.
            b = b.with_config_entry("session.disable_quant_qdq", "1")?;
        }
        Ok(b)
    };
    let mut passed_over = Vec::new();
    for &provider in providers {
        let attempt = (|| -> std::result::Result<Session, String> {
            let mut b = builder().map_err(|e| e.to_string())?;
            let (available, dispatch) = match provider {
                Provider::Cpu => return b.commit_from_memory(bytes).map_err(|e| e.to_string()),
                Provider::Cuda => (ep::CUDA::is_available(), ep::CUDA::default().build()),
                Provider::TensorRt => (
                    ep::TensorRT::is_available(),
                    ep::TensorRT::default().build(),
                ),
            };
            if !available.map_err(|e| e.to_string())? {
                return Err("not in this ONNX Runtime build (a GPU build, e.g. PyPI's onnxruntime-gpu, has it)".into());
            }
            dispatch
                .error_on_failure()
                .register(&mut b)
                .map_err(|e| format!("could not be registered: {e}"))?;
            b.commit_from_memory(bytes)
                .map_err(|e| format!("could not load the model: {e}"))
        })();
        match attempt {
            Ok(session) => return Ok((session, provider, passed_over)),
            Err(why) => passed_over.push(format!("{provider}: {why}")),
        }
    }
    Err(passed_over.join("; "))
}

impl OrtEngine {
    /// Loads `bytes` on the first usable provider of `providers`; also returns why earlier ones
    /// were passed over.
    pub(crate) fn load(
        (bytes, opset): (&[u8], Option<i64>),
        path: &Path,
        settings: Settings,
        providers: &[Provider],
        library: Option<&Path>,
    ) -> Result<(Self, Vec<String>)> {
        let (env, _) = environment(library)?;
        if let Some(known) = newest_opset(env) {
            super::check_opset("ort", opset, known, path)?;
        }
        let (session, provider, passed_over) = build_session(env, bytes, settings, providers)
            .map_err(|why| Error::Engine {
                engine: "ort",
                reason: format!(
                    "{}: no execution provider of {} could run it: {why}",
                    path.display(),
                    providers
                        .iter()
                        .map(Provider::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                source: None,
            })?;
        let input = session
            .inputs()
            .first()
            .map(|i| i.name().to_string())
            .ok_or_else(|| Error::BadModel {
                path: path.to_path_buf(),
                reason: "the model has no input".into(),
            })?;
        Ok((
            OrtEngine {
                session,
                input,
                provider,
            },
            passed_over,
        ))
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn provider(&self) -> String {
        self.provider.to_string()
    }

    fn run_all(&mut self, input: &[f32], shape: &[usize]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let fail = |e: ort::Error| Error::Engine {
            engine: "ort",
            reason: e.to_string(),
            source: Some(Box::new(e)),
        };
        let tensor = TensorRef::from_array_view((shape.to_vec(), input)).map_err(fail)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(fail)?;
        (0..outputs.len())
            .map(|i| {
                let (out_shape, values) = outputs[i].try_extract_tensor::<f32>().map_err(fail)?;
                let out_shape = out_shape.iter().map(|&d| d.max(0) as usize).collect();
                Ok((out_shape, values.to_vec()))
            })
            .collect()
    }
}
