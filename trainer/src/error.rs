//! The trainer's errors (a leaf: it imports no other module of the crate).
//!
//! [`Error`] is what the library's calls return; each variant says which file, setting or stage
//! was involved. A bad setting is a [`ConfigError`]: each configuration struct checks itself
//! (`validate`) once, where the library takes it in, and names the field that is wrong; the
//! binaries map flags onto the structs and add nothing.

use std::path::PathBuf;

/// What the trainer's calls return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting that cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Data that cannot be trained on (both sets, or one, as a whole).
    #[error("{0}")]
    Data(String),
    /// A data set that could not be read.
    #[error(transparent)]
    DataSet(#[from] runtime::data::DataError),
    /// A VGG16 file that cannot be used.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A checkpoint that could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint made with other data or settings than the run resuming from it.
    #[error("{path} was made with {what}: {hint}")]
    OtherRun {
        path: PathBuf,
        /// Which data or settings differ, and how.
        what: String,
        hint: &'static str,
    },
    /// A run stopped on request.
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// The pipeline stopped on request between two stages, before `next`.
    #[error("stopped before {next}")]
    StoppedBefore { next: String },
    /// The public VGG16 could not be fetched.
    #[error("{0}\n(name another VGG16 ONNX file instead)")]
    Vgg16Fetch(#[source] runtime::wheel::FetchError),
    /// CUDA could not be used, or failed during the run.
    #[error("{0}")]
    Cuda(String),
    /// The training curves could not be drawn.
    #[error("drawing {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    /// ONNX Runtime, tract or a data reader of the runtime failed (verification).
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// A JSON file (history, configuration) could not be made.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `Result` with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error of `source` on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A run stopped on request (its caller's stop flag).
#[derive(Debug, thiserror::Error)]
#[error("stopped {}{}", at_text(self.epoch, self.batch), self.checkpoint.as_ref().map_or_else(|| " (no checkpoint)".to_string(), |p| format!(": checkpoint {}", p.display())))]
pub struct Stopped {
    /// Epochs done when it stopped.
    pub epoch: usize,
    /// Batches of the next epoch done when it stopped (epoch 0, batch 0: before training began).
    pub batch: usize,
    /// The checkpoint written on the way out.
    pub checkpoint: Option<PathBuf>,
}

/// `after epoch E`, or `epoch E+1, batch B` within one.
pub fn at_text(epoch: usize, batch: usize) -> String {
    if batch == 0 {
        format!("after epoch {epoch}")
    } else {
        format!("epoch {}, batch {batch}", epoch + 1)
    }
}

/// What went wrong with checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot encode the {what} record: {reason}")]
    Encode { what: String, reason: String },
}

/// Why a file is not a usable VGG16.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a VGG16 convolutional base: {reason}")]
    NotVgg16 { path: PathBuf, reason: String },
}

/// A setting that cannot be used: which field (`train.batch_size`, `model.dropout_conv`, ...) and
/// why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A rate in `[0, 1)` (dropout), else the error for `field`.
pub fn rate(field: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("{value} is not in [0, 1)")))
    }
}

/// At least 1, else the error for `field`.
pub fn positive(field: &str, value: usize) -> Result<(), ConfigError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be at least 1"))
    }
}
