//! The classifier: a model file loaded into an engine, with its preprocessing.

use crate::engine::{self, EngineChoice, Provider};
use crate::error::{Error, Result};
use crate::model_info::ModelInfo;
use crate::prediction::Prediction;
use crate::preprocess::{self, InputConfig, InputOverrides};
use std::path::{Path, PathBuf};

/// Options for building a [`Classifier`].
#[derive(Debug, Clone, Default)]
pub struct ClassifierBuilder {
    engine: EngineChoice,
    settings: engine::Settings,
    input_config: Option<InputConfig>,
    overrides: InputOverrides,
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
        self.settings.per_run = Some(threads);
        self
    }

    /// Whether ONNX Runtime's idle threads may spin waiting for the next run (default: yes, the
    /// lowest latency). Turn it off when other threads share the cores between runs, as image
    /// decoding does in `batch::classify_files`.
    pub fn spin_wait(mut self, spin: bool) -> Self {
        self.settings.spin = spin;
        self
    }

    /// Preprocessing to use instead of what the model's metadata says (or for a model without
    /// such metadata, where the default is pixels scaled to `[0, 1]` at the input's fixed size).
    pub fn input_config(mut self, config: InputConfig) -> Self {
        self.input_config = Some(config);
        self
    }

    /// Settings to put over the model's own preprocessing (or over what its input shape
    /// implies); for a model whose shape does not fix its size and that carries no
    /// preprocessing, `size` says it. Ignored when [`ClassifierBuilder::input_config`] is given.
    pub fn input_overrides(mut self, overrides: InputOverrides) -> Self {
        self.overrides = overrides;
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

    /// For a model whose shape leaves the size open and that carries no preprocessing: the size
    /// of the overrides, in the layout they or the model's shape say, with what the ONNX standard
    /// image metadata says (else RGB scaled to 0..1).
    fn sized_by_overrides(&self, info: &ModelInfo) -> Option<InputConfig> {
        let (height, width) = self.overrides.size?;
        let layout = self.overrides.layout.or_else(|| info.image_layout())?;
        let mut config = InputConfig {
            height,
            width,
            layout,
            ..InputConfig::unit_rgb(height)
        };
        // Checked when the model was read.
        config.apply_standard_metadata(&info.metadata).ok()?;
        Some(config)
    }

    /// The preprocessing a model gets: the builder's [`ClassifierBuilder::input_config`], else the
    /// model's metadata with the overrides applied, else what its shape says with the overrides.
    pub(crate) fn resolve_input_config(
        &self,
        info: &ModelInfo,
        name: &Path,
    ) -> Result<InputConfig> {
        let config = match (&self.input_config, &info.input_config) {
            (Some(c), _) => {
                c.validate().map_err(Error::InputConfig)?;
                c.clone()
            }
            (None, Some(c)) => self
                .overrides
                .apply(c.clone())
                .map_err(Error::InputConfig)?,
            (None, None) => {
                let base = info
                    .guessed_input_config()
                    .or_else(|| self.sized_by_overrides(info))
                    .ok_or_else(|| Error::BadModel {
                        path: name.to_path_buf(),
                        reason: format!(
                            "input {:?} of shape {} is not an image batch with 3 channels and a fixed size (input overrides with a size, and a layout where the shape does not say it, fix that)",
                            info.input.name,
                            info.input.shape_text()
                        ),
                    })?;
                // The base comes from the model's shape: what fails here is the model's.
                self.overrides.apply(base).map_err(|e| Error::BadModel {
                    path: name.to_path_buf(),
                    reason: format!("input {:?}: {e}", info.input.name),
                })?
            }
        };
        Ok(config)
    }

    /// Loads a model from memory; `name` only names it in errors.
    ///
    /// # Errors
    /// `Error::BadModel` when the bytes are not an image classifier or a value in its metadata is
    /// unusable (the field named); `Error::InputConfig` for an unusable
    /// [`ClassifierBuilder::input_config`]; `Error::OrtUnavailable` or `Error::Engine` when the
    /// engine asked for cannot load it.
    pub fn build_from_bytes(self, bytes: &[u8], name: impl AsRef<Path>) -> Result<Classifier> {
        let name = name.as_ref();
        let info = ModelInfo::from_bytes(bytes, name)?;
        let config = self.resolve_input_config(&info, name)?;
        let providers = self.providers.as_deref().unwrap_or(Provider::DEFAULT);
        let settings = engine::Settings {
            fold_quantized_weights: info
                .metadata
                .get(preprocess::keys::QUANTIZATION_VARIANT)
                .map(String::as_str)
                == Some(preprocess::keys::INT8_WEIGHTS),
            ..self.settings
        };
        let (engine, notes) = engine::load(
            self.engine,
            (bytes, info.opset),
            name,
            settings,
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
    /// `Error::InputShape` when `input` is not `batch` images of the model's shape; `Error::Engine` when
    /// the engine fails.
    pub fn run_raw(&mut self, input: &[f32], batch: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = self.batch_shape(input, batch)?;
        self.engine.run(input, &shape)
    }

    /// The input shape of `batch` images, when `input` holds that many values.
    fn batch_shape(&self, input: &[f32], batch: usize) -> Result<[usize; 4]> {
        let shape = self.config.shape(batch);
        if input.len() != shape.iter().product::<usize>() {
            return Err(Error::InputShape {
                values: input.len(),
                shape,
            });
        }
        Ok(shape)
    }

    /// Runs a prepared input tensor and returns every output of the model as it is.
    #[cfg(feature = "tools")]
    pub(crate) fn run_all(
        &mut self,
        input: &[f32],
        batch: usize,
    ) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let shape = self.batch_shape(input, batch)?;
        self.engine.run_all(input, &shape)
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
            crate::scores::softmax_rows(&mut values, classes);
        }
        Ok(values)
    }

    /// Classifies planar RGB images (`C,H,W` bytes each) already at the model's size.
    ///
    /// # Errors
    /// `Error::NotWholeImages` when the bytes are not whole images of the model's size; otherwise as
    /// [`Classifier::run_tensor`].
    pub fn classify_planar(&mut self, planar: &[u8]) -> Result<Vec<Prediction>> {
        let per_image = 3 * self.config.height * self.config.width;
        if planar.is_empty() || !planar.len().is_multiple_of(per_image) {
            return Err(Error::NotWholeImages {
                bytes: planar.len(),
                height: self.config.height,
                width: self.config.width,
            });
        }
        let batch = planar.len() / per_image;
        self.classify_tensor(&self.config.tensor_from_planar(planar), batch)
    }

    /// Classifies a prepared input tensor of `batch` images (as [`Classifier::prepare_bytes`]
    /// gives them, one after the other): one prediction an image.
    ///
    /// # Errors
    /// As [`Classifier::run_tensor`].
    pub fn classify_tensor(&mut self, input: &[f32], batch: usize) -> Result<Vec<Prediction>> {
        let probs = self.run_tensor(input, batch)?;
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

    /// Classifies one image given as 8-bit RGB pixels in memory: `height` rows of `width` pixels,
    /// each row starting `stride` bytes after the previous one (`stride >= 3 * width`; the bytes
    /// between rows are not read). It is resized as [`classify_file`] resizes a decoded file.
    ///
    /// [`classify_file`]: Classifier::classify_file
    ///
    /// # Errors
    /// `Error::Pixels` when the sizes are zero, larger than [`MAX_INPUT_SIDE`](crate::MAX_INPUT_SIDE),
    /// or do not fit in `pixels`; otherwise as [`Classifier::run_tensor`].
    pub fn classify_rgb8(
        &mut self,
        pixels: &[u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Prediction> {
        let img = rgb8_image(pixels, width, height, stride)?;
        self.classify_decoded(Ok(img), Path::new("pixels"))
    }

    /// The input tensor [`classify_bytes`] runs for one encoded image (decoded, resized and
    /// normalised as the model's preprocessing says, in its layout): to run the same input through
    /// another engine, or to inspect it.
    ///
    /// [`classify_bytes`]: Classifier::classify_bytes
    ///
    /// # Errors
    /// `Error::Image` (naming `name`) when the bytes are not an image this runtime decodes.
    pub fn prepare_bytes(&self, bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<f32>> {
        let planar = self.fit(preprocess::decode_image_bytes(bytes), name.as_ref())?;
        Ok(self.config.tensor_from_planar(&planar))
    }

    /// One decoded image resized to the model's input, as planar RGB; `name` names it in errors.
    fn fit(
        &self,
        img: Result<image::DynamicImage, preprocess::ImageError>,
        name: &Path,
    ) -> Result<Vec<u8>> {
        let img = img.map_err(|source| Error::Image {
            path: name.to_path_buf(),
            source,
        })?;
        Ok(preprocess::fit_planar(
            &img,
            self.config.height,
            self.config.width,
        ))
    }

    /// Resizes and classifies one decoded image; `name` names it in errors.
    fn classify_decoded(
        &mut self,
        img: Result<image::DynamicImage, preprocess::ImageError>,
        name: &Path,
    ) -> Result<Prediction> {
        let planar = self.fit(img, name)?;
        let mut predictions = self.classify_planar(&planar)?;
        predictions.pop().ok_or_else(|| Error::Engine {
            engine: self.engine_name(),
            reason: format!("{}: the model gave no prediction", name.display()),
            source: None,
        })
    }

    fn prediction(&self, row: &[f32]) -> Prediction {
        let class = crate::scores::argmax(row);
        let class_name = self
            .info
            .classes
            .as_ref()
            .and_then(|c| c.get(class).cloned())
            .unwrap_or_else(|| class.to_string());
        Prediction {
            class,
            class_name,
            probability: row[class],
            probabilities: row.to_vec(),
        }
    }
}

/// Copies strided 8-bit RGB rows into an image, checking every size first.
fn rgb8_image(
    pixels: &[u8],
    width: usize,
    height: usize,
    stride: usize,
) -> Result<image::DynamicImage> {
    let bad = |reason: String| Err(Error::Pixels(reason));
    let max = preprocess::MAX_INPUT_SIDE;
    if width == 0 || height == 0 || width > max || height > max {
        return bad(format!(
            "{width}x{height} pixels: each side must be 1 to {max}"
        ));
    }
    let row = 3 * width;
    if stride < row {
        return bad(format!(
            "a stride of {stride} bytes is shorter than a row of {width} RGB pixels ({row} bytes)"
        ));
    }
    // Sides are at most MAX_INPUT_SIDE, so this cannot overflow unless the stride is absurd.
    let needed = stride
        .checked_mul(height - 1)
        .and_then(|n| n.checked_add(row));
    match needed {
        Some(needed) if needed <= pixels.len() => {}
        _ => {
            return bad(format!(
                "{} bytes are too few for {height} rows of {width} RGB pixels {stride} bytes apart",
                pixels.len()
            ))
        }
    }
    let mut packed = Vec::with_capacity(row * height);
    for y in 0..height {
        packed.extend_from_slice(&pixels[y * stride..y * stride + row]);
    }
    // `packed` holds exactly width * height RGB pixels, so the buffer always fits.
    image::RgbImage::from_raw(width as u32, height as u32, packed)
        .map(image::DynamicImage::ImageRgb8)
        .ok_or_else(|| Error::Pixels(format!("{width}x{height} pixels do not make an image")))
}
