//! Run image-classification ONNX models through ONNX Runtime (`ort`) or the pure-Rust tract engine.
//!
//! ```no_run
//! use runtime::{Classifier, EngineChoice};
//!
//! let mut classifier = Classifier::builder().engine(EngineChoice::Auto).build_from_file("models/cnn.onnx")?;
//! let prediction = classifier.classify_file("cat.png")?;
//! println!("{} ({:.1} %) via {}", prediction.label, 100.0 * prediction.probability, classifier.engine_name());
//! # Ok::<(), runtime::Error>(())
//! ```
//!
//! A run on the crate's own 3-class test model, with tract (8x8 images: one red, one blue):
//!
//! ```
//! use runtime::{Classifier, EngineChoice};
//!
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_classifier.onnx");
//! let mut classifier = Classifier::builder().engine(EngineChoice::Tract).build_from_file(model)?;
//! assert_eq!(classifier.info().input.shape_text(), "[batch, 3, 8, 8]");
//! let plane = 8 * 8;
//! let mut planar = vec![0u8; 2 * 3 * plane];
//! planar[..plane].fill(230); // image 0: red plane full
//! planar[3 * plane + 2 * plane..].fill(230); // image 1: blue plane full
//! let predictions = classifier.classify_planar(&planar)?;
//! assert_eq!(predictions.len(), 2);
//! for p in &predictions {
//!     assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
//!     println!("{} ({:.1} %)", p.label, 100.0 * p.probability);
//! }
//! # Ok::<(), runtime::Error>(())
//! ```
//!
//! The library's core is the classifier, its builder, preprocessing, the engines, [`Prediction`],
//! [`Error`] and the output rows: it starts no process, opens no network connection, writes no
//! file and looks for ONNX Runtime only where its caller says
//! ([`ClassifierBuilder::ort_library`], `ORT_DYLIB_PATH`, next to the executable). The `tools`
//! feature (on by default, with the CLI) adds what the command line, the trainer and the tests
//! use: data sets ([`data`]), verification against the trainer ([`verify`]), folder runs
//! ([`batch`]), fetching ONNX Runtime through pip ([`pip`], [`ort_library::fetch`]) and atomic
//! file writes. An app or a wasm page depends on the core alone:
//! `runtime = { path = "...", default-features = false }` (add `features = ["ort"]` for ONNX
//! Runtime).

#![warn(missing_docs)]

#[cfg(feature = "tools")]
pub mod batch;
#[cfg(feature = "tools")]
pub mod data;
mod engine;
mod model_info;
pub mod output;
#[cfg(feature = "tools")]
pub mod pip;
pub mod preprocess;
#[cfg(feature = "tools")]
pub mod verify;

pub use engine::ort_library;
pub use engine::{EngineChoice, Provider};
pub use model_info::{ModelInfo, TensorInfo, MAX_CLASSES};
pub use preprocess::{ChannelOrder, InputConfig, Layout, MetadataError};

use std::path::{Path, PathBuf};

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
        source: preprocess::ImageError,
    },
    /// The input handed to a call does not fit the model (its size, its batch).
    #[error("input: {0}")]
    Input(String),
    /// A data set could not be read.
    #[cfg(feature = "tools")]
    #[error(transparent)]
    Data(#[from] data::DataError),
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One image's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class.
    pub class: usize,
    /// Its name (the index as text when the model carries no class names).
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// All class probabilities.
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// The `k` most probable classes, most probable first: `(class, probability)`.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            self.probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k.max(1));
        ranked
    }
}

/// Options for building a [`Classifier`].
#[derive(Debug, Clone, Default)]
pub struct ClassifierBuilder {
    engine: EngineChoice,
    threads: engine::Threads,
    input_config: Option<InputConfig>,
    providers: Option<Vec<Provider>>,
    ort_library: Option<PathBuf>,
}

impl ClassifierBuilder {
    /// Which engine runs the model (default: [`EngineChoice::Auto`], ONNX Runtime with tract as fallback).
    pub fn engine(mut self, engine: EngineChoice) -> Self {
        self.engine = engine;
        self
    }

    /// ONNX Runtime's execution providers, in order of preference (default:
    /// [`Provider::DEFAULT`], CUDA where it really runs, else the CPU). The first that registers
    /// and loads the model runs it; [`Classifier::provider`] says which. Leave out
    /// [`Provider::Cpu`] to make a GPU mandatory.
    pub fn providers(mut self, providers: impl Into<Vec<Provider>>) -> Self {
        self.providers = Some(providers.into());
        self
    }

    /// The ONNX Runtime shared library to load (default: the file named by `ORT_DYLIB_PATH`,
    /// else a `libonnxruntime.so*` next to the executable). A process loads ONNX Runtime once:
    /// the first classifier that loads it decides which library later ones use.
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Threads an engine may use within one run (default: the engine's own choice).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads.per_run = Some(threads);
        self
    }

    /// Whether ONNX Runtime's idle threads may spin waiting for the next run (default: yes, the
    /// lowest latency). Turn it off when other threads share the cores between runs, as image
    /// decoding does in [`batch::classify_files`].
    pub fn spin_wait(mut self, spin: bool) -> Self {
        self.threads.spin = spin;
        self
    }

    /// Preprocessing to use instead of what the model's metadata says (or for a model without
    /// such metadata, where the default is pixels scaled to `[0, 1]` at the input's fixed size).
    pub fn input_config(mut self, config: InputConfig) -> Self {
        self.input_config = Some(config);
        self
    }

    /// Loads the model file at `path`.
    ///
    /// # Errors
    /// `Error::Io` when the file cannot be read; otherwise as
    /// [`ClassifierBuilder::build_from_bytes`].
    pub fn build_from_file(self, path: impl AsRef<Path>) -> Result<Classifier> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.build_from_bytes(&bytes, path)
    }

    /// Loads a model from memory; `name` only names it in errors.
    ///
    /// # Errors
    /// `Error::BadModel` when the bytes are not an image classifier or a value in its metadata is
    /// unusable (the field named); `Error::Input` for an unusable
    /// [`ClassifierBuilder::input_config`]; `Error::OrtUnavailable` or `Error::Engine` when the
    /// engine asked for cannot load it.
    pub fn build_from_bytes(self, bytes: &[u8], name: impl AsRef<Path>) -> Result<Classifier> {
        let name = name.as_ref();
        let info = ModelInfo::from_bytes(bytes, name)?;
        let config = match (&self.input_config, &info.input_config) {
            (Some(c), _) => {
                c.validate()
                    .map_err(|e| Error::Input(format!("input config: {e}")))?;
                c.clone()
            }
            (None, Some(c)) => c.clone(),
            (None, None) => {
                let guessed = info.guessed_input_config().ok_or_else(|| Error::BadModel {
                    path: name.to_path_buf(),
                    reason: format!(
                        "input {:?} of shape {} is not an image batch with 3 channels and a fixed size",
                        info.input.name,
                        info.input.shape_text()
                    ),
                })?;
                guessed.validate().map_err(|e| Error::BadModel {
                    path: name.to_path_buf(),
                    reason: format!("input {:?}: {e}", info.input.name),
                })?;
                guessed
            }
        };
        let providers = self.providers.as_deref().unwrap_or(Provider::DEFAULT);
        let (engine, notes) = engine::load(
            self.engine,
            bytes,
            name,
            self.threads,
            providers,
            self.ort_library.as_deref(),
        )?;
        let fallback = (!notes.is_empty()).then(|| notes.join("\n"));
        Ok(Classifier {
            engine,
            info,
            config,
            fallback,
        })
    }
}

/// A loaded model, ready to classify images.
pub struct Classifier {
    engine: Box<dyn engine::Engine>,
    info: ModelInfo,
    config: InputConfig,
    fallback: Option<String>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("engine", &self.engine.name())
            .field("provider", &self.engine.provider())
            .field("input", &self.info.input)
            .finish()
    }
}

impl Classifier {
    /// Starts a [`ClassifierBuilder`].
    pub fn builder() -> ClassifierBuilder {
        ClassifierBuilder::default()
    }

    /// `"ort"` or `"tract"`.
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// The execution provider that runs the model (e.g. `"cpu"`).
    pub fn provider(&self) -> String {
        self.engine.provider()
    }

    /// Why the engine or execution provider asked for first is not the one running, if it is not
    /// (one line per engine or provider passed over).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The preprocessing applied to images.
    pub fn input_config(&self) -> &InputConfig {
        &self.config
    }

    /// Runs a prepared input tensor (laid out as [`Classifier::input_config`] says) and returns the
    /// model's first output as it is, with its shape: for models that are not classifiers, such as
    /// feature extractors.
    ///
    /// # Errors
    /// `Error::Input` when `input` is not `batch` images of the model's shape; `Error::Engine` when
    /// the engine fails.
    pub fn run_raw(&mut self, input: &[f32], batch: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = self.config.shape(batch);
        if input.len() != shape.iter().product::<usize>() {
            return Err(Error::Input(format!(
                "{} values do not make a batch of shape {shape:?}",
                input.len()
            )));
        }
        self.engine.run(input, &shape)
    }

    /// Runs a prepared input tensor and returns `[batch, classes]` probabilities.
    ///
    /// # Errors
    /// As [`Classifier::run_raw`]; also when the output is not `[batch, classes]` finite scores, or
    /// its size differs from the model's class names.
    pub fn run_tensor(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        let (out_shape, mut values) = self.run_raw(input, batch)?;
        let classes = out_shape.last().copied().unwrap_or(0);
        if out_shape.first() != Some(&batch) || classes == 0 || values.len() != batch * classes {
            return Err(Error::Engine {
                engine: self.engine.name(),
                reason: format!("output of shape {out_shape:?} for a batch of {batch}"),
                source: None,
            });
        }
        // A symbolic output size is known only now: the class names must still match it.
        if let Some(names) = self.info.classes.as_ref().filter(|n| n.len() != classes) {
            return Err(Error::BadModel {
                path: self.info.path.clone(),
                reason: format!(
                    "metadata {}: {} class names, but the model outputs {classes} values an image",
                    preprocess::keys::CLASSES,
                    names.len()
                ),
            });
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::Engine {
                engine: self.engine.name(),
                reason: format!("the model output {bad}, not a score"),
                source: None,
            });
        }
        if !self.info.outputs_probabilities {
            preprocess::softmax_rows(&mut values, classes);
        }
        Ok(values)
    }

    /// Classifies planar RGB images (`C,H,W` bytes each) already at the model's size.
    ///
    /// # Errors
    /// `Error::Input` when the bytes are not whole images of the model's size; otherwise as
    /// [`Classifier::run_tensor`].
    pub fn classify_planar(&mut self, planar: &[u8]) -> Result<Vec<Prediction>> {
        let per_image = 3 * self.config.height * self.config.width;
        if planar.is_empty() || !planar.len().is_multiple_of(per_image) {
            return Err(Error::Input(format!(
                "{} bytes is not a whole number of {}x{} RGB images",
                planar.len(),
                self.config.height,
                self.config.width
            )));
        }
        let batch = planar.len() / per_image;
        let probs = self.run_tensor(&self.config.tensor_from_planar(planar), batch)?;
        let classes = probs.len() / batch;
        Ok(probs
            .chunks_exact(classes)
            .map(|row| self.prediction(row))
            .collect())
    }

    /// Decodes, resizes and classifies one image file.
    ///
    /// # Errors
    /// `Error::Image` (naming the file) when it cannot be read or decoded; otherwise as
    /// [`Classifier::run_tensor`].
    pub fn classify_file(&mut self, path: impl AsRef<Path>) -> Result<Prediction> {
        let path = path.as_ref();
        let img = preprocess::decode_image(path);
        self.classify_decoded(img, path)
    }

    /// Decodes, resizes and classifies one image held in memory (any format [`classify_file`]
    /// reads); `name` only names it in errors.
    ///
    /// [`classify_file`]: Classifier::classify_file
    ///
    /// # Errors
    /// As [`Classifier::classify_file`].
    pub fn classify_bytes(&mut self, bytes: &[u8], name: impl AsRef<Path>) -> Result<Prediction> {
        let img = preprocess::decode_image_bytes(bytes);
        self.classify_decoded(img, name.as_ref())
    }

    /// Resizes and classifies one decoded image; `name` names it in errors.
    fn classify_decoded(
        &mut self,
        img: Result<image::DynamicImage, preprocess::ImageError>,
        name: &Path,
    ) -> Result<Prediction> {
        let img = img.map_err(|source| Error::Image {
            path: name.to_path_buf(),
            source,
        })?;
        let planar = preprocess::fit_planar(&img, self.config.height, self.config.width);
        let mut predictions = self.classify_planar(&planar)?;
        predictions
            .pop()
            .ok_or_else(|| Error::Input("no prediction".into()))
    }

    fn prediction(&self, row: &[f32]) -> Prediction {
        let class = preprocess::argmax(row);
        let label = self
            .info
            .classes
            .as_ref()
            .and_then(|c| c.get(class).cloned())
            .unwrap_or_else(|| class.to_string());
        Prediction {
            class,
            label,
            probability: row[class],
            probabilities: row.to_vec(),
        }
    }
}

#[cfg(feature = "tools")]
/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
/// reader never sees a half-written file and an interrupted write leaves the old file in place.
///
/// # Errors
/// When the folder cannot be made or the file cannot be written or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
