//! ONNX Runtime through `ort`, with the shared library loaded at run time.

use super::{ort_library, Engine};
use crate::{Error, Result};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::sync::OnceLock;

/// The process's one ONNX Runtime environment, or why it could not be made.
/// A failure is kept too, so a missing library is looked for once, not once per model.
static ENVIRONMENT: OnceLock<Result<(Environment, String), String>> = OnceLock::new();

/// Loads the library and builds the environment once per process.
fn environment() -> Result<&'static (Environment, String)> {
    ENVIRONMENT
        .get_or_init(|| {
            let lib = ort_library::find()?;
            let env = ort::init_from(&lib)
                .map_err(|e| format!("{}: {e:?}", lib.display()))?
                .with_name("runtime")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("{}: {e}", lib.display()))?;
            Ok((env, lib.display().to_string()))
        })
        .as_ref()
        .map_err(|e| Error::OrtUnavailable(e.clone()))
}

pub(crate) struct OrtEngine {
    session: Session,
    input: String,
}

impl OrtEngine {
    pub(crate) fn load(bytes: &[u8], path: &Path, threads: Option<usize>) -> Result<Self> {
        let (env, _) = environment()?;
        let fail = |e: ort::Error| Error::Engine {
            engine: "ort",
            reason: format!("{}: {e}", path.display()),
        };
        let session = (|| -> ort::Result<Session> {
            let mut builder = Session::builder(env)?;
            if let Some(n) = threads {
                builder = builder.with_intra_threads(n)?;
            }
            builder.commit_from_memory(bytes)
        })()
        .map_err(fail)?;
        let input = session
            .inputs()
            .first()
            .map(|i| i.name().to_string())
            .ok_or_else(|| Error::BadModel {
                path: path.to_path_buf(),
                reason: "the model has no input".into(),
            })?;
        Ok(OrtEngine { session, input })
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn provider(&self) -> String {
        "cpu".into()
    }

    fn run(&mut self, input: &[f32], shape: &[usize]) -> Result<(Vec<usize>, Vec<f32>)> {
        let fail = |e: ort::Error| Error::Engine {
            engine: "ort",
            reason: e.to_string(),
        };
        let tensor = TensorRef::from_array_view((shape.to_vec(), input)).map_err(fail)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(fail)?;
        let (out_shape, values) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        let out_shape = out_shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok((out_shape, values.to_vec()))
    }
}
