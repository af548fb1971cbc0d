//! NVIDIA Triton Inference Server model repositories for this project's ONNX files.
//!
//! [`write_repository`] lays out `REPO/<name>/config.pbtxt`, `REPO/<name>/1/model.onnx` and, when the
//! model names its classes, `REPO/<name>/labels.txt`, for Triton's ONNX Runtime backend
//! (`platform: "onnxruntime_onnx"`). The input and output names and dims come from the ONNX file; the
//! batch dimension is left out of `dims`, as Triton requires when `max_batch_size` is above 0.
//! The data types are the tensors' own (models built here take the preprocessed float tensor,
//! whose metadata says how to make it from pixels).

use crate::error::{Error, Result};
use crate::model_info::{ModelInfo, TensorInfo};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How the repository's model is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonOptions {
    /// The model's name in the repository (default: the file's stem).
    pub name: Option<String>,
    /// The largest batch Triton forms (the model's batch dimension must be symbolic; a model with
    /// a fixed batch is written with `max_batch_size: 0` and its full dims).
    pub max_batch_size: usize,
    /// Let Triton gather single requests into batches, waiting at most this many microseconds.
    pub dynamic_batching: Option<u64>,
}

impl Default for TritonOptions {
    fn default() -> Self {
        TritonOptions {
            name: None,
            max_batch_size: 32,
            dynamic_batching: None,
        }
    }
}

/// What [`write_repository`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonModel {
    /// `REPO/<name>`.
    pub dir: PathBuf,
    /// The model's name in the repository.
    pub name: String,
    /// The `config.pbtxt` text.
    pub config: String,
}

/// A name Triton takes for a folder: letters, digits, `_`, `-`, `.`, not starting with `.`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::TritonName(name.to_string()))
    }
}

/// Triton's name for an ONNX element type (`TensorProto.DataType`).
fn triton_type(elem_type: i32) -> Option<&'static str> {
    use tract_onnx::pb::tensor_proto::DataType;
    Some(match DataType::try_from(elem_type).ok()? {
        DataType::Float => "TYPE_FP32",
        DataType::Uint8 => "TYPE_UINT8",
        DataType::Int8 => "TYPE_INT8",
        DataType::Uint16 => "TYPE_UINT16",
        DataType::Int16 => "TYPE_INT16",
        DataType::Int32 => "TYPE_INT32",
        DataType::Int64 => "TYPE_INT64",
        DataType::String => "TYPE_STRING",
        DataType::Bool => "TYPE_BOOL",
        DataType::Float16 => "TYPE_FP16",
        DataType::Double => "TYPE_FP64",
        DataType::Uint32 => "TYPE_UINT32",
        DataType::Uint64 => "TYPE_UINT64",
        DataType::Bfloat16 => "TYPE_BF16",
        _ => return None,
    })
}

/// One tensor's `config.pbtxt` entry; `batched` leaves out its first dimension.
fn tensor_entry(
    tensor: &TensorInfo,
    batched: bool,
    label_file: Option<&str>,
    path: &Path,
) -> Result<String> {
    let data_type = triton_type(tensor.elem_type).ok_or_else(|| Error::BadModel {
        path: path.to_path_buf(),
        reason: format!(
            "tensor {:?} has ONNX element type {}, which Triton has no type for",
            tensor.name, tensor.elem_type
        ),
    })?;
    let dims: Vec<String> = tensor
        .shape
        .iter()
        .skip(usize::from(batched))
        .map(|d| d.map_or_else(|| "-1".to_string(), |d| d.to_string()))
        .collect();
    let mut entry = format!(
        "  {{\n    name: \"{}\"\n    data_type: {data_type}\n    dims: [ {} ]\n",
        tensor.name.replace('\\', "\\\\").replace('"', "\\\""),
        dims.join(", ")
    );
    if let Some(file) = label_file {
        let _ = writeln!(entry, "    label_filename: \"{file}\"");
    }
    entry.push_str("  }");
    Ok(entry)
}

/// The `config.pbtxt` of `info` served as `name`: the tensors' names, types and dims as the
/// model declares them.
///
/// # Errors
/// When a tensor's element type has no Triton type.
pub fn config_text(info: &ModelInfo, name: &str, options: &TritonOptions) -> Result<String> {
    // Triton batches along the first dimension when it is symbolic in both tensors.
    let batched = options.max_batch_size > 0
        && info.input.shape.first() == Some(&None)
        && info.output.shape.first() == Some(&None);
    let labels = info.classes.as_ref().map(|_| LABELS);
    let mut text = format!(
        "name: \"{name}\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: {}\ninput [\n{}\n]\noutput [\n{}\n]\n",
        if batched { options.max_batch_size } else { 0 },
        tensor_entry(&info.input, batched, None, &info.path)?,
        tensor_entry(&info.output, batched, labels, &info.path)?,
    );
    if let (Some(delay), true) = (options.dynamic_batching, batched) {
        let _ = writeln!(
            text,
            "dynamic_batching {{\n  max_queue_delay_microseconds: {delay}\n}}"
        );
    }
    Ok(text)
}

const LABELS: &str = "labels.txt";

/// Writes a Triton model repository entry for the ONNX file `model` into `repo`: its folder is
/// replaced whole (each file is written atomically).
///
/// # Errors
/// When the model cannot be read or is not an image classifier, the name is not usable, or a file
/// cannot be written.
pub fn write_repository(model: &Path, repo: &Path, options: &TritonOptions) -> Result<TritonModel> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let bytes = std::fs::read(model).map_err(io(model))?;
    let info = ModelInfo::from_bytes(&bytes, model)?;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_name(&name)?;
    let dir = repo.join(&name);
    let config = config_text(&info, &name, options)?;
    let write =
        |path: PathBuf, bytes: &[u8]| crate::files::write_atomic(&path, bytes).map_err(io(&path));
    write(dir.join("1").join("model.onnx"), &bytes)?;
    if let Some(classes) = &info.classes {
        write(dir.join(LABELS), (classes.join("\n") + "\n").as_bytes())?;
    } else if dir.join(LABELS).exists() {
        std::fs::remove_file(dir.join(LABELS)).map_err(io(&dir.join(LABELS)))?;
    }
    write(dir.join("config.pbtxt"), config.as_bytes())?;
    Ok(TritonModel { dir, name, config })
}
