//! The runtime's errors: each says which file or engine was involved.

use crate::preprocess::{ImageError, MetadataError};
#[cfg(feature = "tools")]
use std::path::Path;
use std::path::PathBuf;

/// Errors of the runtime. Each says which file or engine was involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A model file that cannot be used, or a value in it that cannot.
    #[error("{path}: not a usable model: {reason}")]
    BadModel {
        /// The model file (or the name it was given).
        path: PathBuf,
        /// Why, naming the field where one is at fault.
        reason: String,
    },
    /// An engine failed to load or run the model.
    #[error("{engine}: {reason}")]
    Engine {
        /// `ort` or `tract`.
        engine: &'static str,
        /// What went wrong.
        reason: String,
        /// The engine's own error, where it gave one (its text is part of `reason` too).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// ONNX Runtime's library could not be found or loaded; the text says where it was looked for.
    #[error("ONNX Runtime is not available: {0}")]
    OrtUnavailable(String),
    /// An image file could not be used.
    #[error("{path}: {source}")]
    Image {
        /// The image file (or the name it was given).
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: ImageError,
    },
    /// Values handed to [`Classifier::run_tensor`](crate::Classifier::run_tensor) that do not
    /// make a batch of the model's input shape.
    #[error("input: {values} values do not make a batch of shape {shape:?}")]
    InputShape {
        /// How many values were given.
        values: usize,
        /// The shape of the batch they were meant to make (batch, then the model's input).
        shape: [usize; 4],
    },
    /// Pixels handed to [`Classifier::classify_planar`](crate::Classifier::classify_planar) that
    /// are not a whole number of images of the model's size.
    #[error("input: {bytes} bytes is not a whole number of {height}x{width} RGB images")]
    NotWholeImages {
        /// How many bytes were given.
        bytes: usize,
        /// The model's input height.
        height: usize,
        /// The model's input width.
        width: usize,
    },
    /// Pixels handed to [`Classifier::classify_rgb8`](crate::Classifier::classify_rgb8) whose
    /// sizes are unusable or do not fit in the buffer.
    #[error("pixels: {0}")]
    Pixels(String),
    /// A preprocessing given to the builder (a whole input configuration or overrides of the
    /// model's) that cannot be used.
    #[error("input config: {0}")]
    InputConfig(#[source] MetadataError),
    /// A model and a data set (or reference predictions made on one) that do not fit each other:
    /// their class counts, their images' shape, the set the references were made on.
    #[cfg(feature = "tools")]
    #[error("{0}")]
    DataMismatch(String),
    /// Calibration images for the int8 static variant that are missing or unusable.
    #[cfg(feature = "tools")]
    #[error("{name}: calibration data: {reason}")]
    Calibration {
        /// The data set (or, when none was given, the model).
        name: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name that Triton does not take for a model.
    #[cfg(feature = "tools")]
    #[error("{0:?} is not a Triton model name (letters, digits, _ - . only)")]
    TritonName(String),
    /// A data set could not be read.
    #[cfg(feature = "tools")]
    #[error(transparent)]
    Data(#[from] DataError),
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "tools")]
/// Errors from reading a data set. Each names the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// A CIFAR file whose length is not a whole number of records.
    #[error("{path}: {len} bytes is not a whole number of {record}-byte CIFAR records (the record at byte offset {offset} is truncated)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// Bytes per record.
        record: usize,
        /// Where the last, partial record starts.
        offset: u64,
    },
    /// A record whose label names no class.
    #[error("{path}: byte offset {offset}: label {label} is out of range (the set has {classes} classes)")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The label byte.
        label: u8,
        /// How many classes there are.
        classes: usize,
    },
    /// A file or folder that is not a usable data set.
    #[error("{path}: {message}")]
    Invalid {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

#[cfg(feature = "tools")]
impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
