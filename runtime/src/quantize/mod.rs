//! Smaller, faster variants of a classifier's ONNX file: int8 weights, int8 static (QDQ) and
//! float16 weights. Each variant is a complete, standard ONNX file with the same input, output,
//! classes and preprocessing as the float32 file it came from, plus metadata saying what it is
//! ([`keys`]). The float32 file is only read.
//!
//! ```no_run
//! use runtime::quantize::{quantize, QuantizeOptions, Variant};
//! use std::path::Path;
//!
//! let path = Path::new("models/cnn.onnx");
//! let bytes = std::fs::read(path)?;
//! let int8 = quantize(&bytes, path, &QuantizeOptions::new(Variant::Int8Weights))?;
//! runtime::write_atomic(&Variant::Int8Weights.path_for(path), &int8.bytes)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod calibrate;
mod graph;
mod qdq;

pub use calibrate::Method;
pub use qdq::KeepFloat;

use crate::classifier::ClassifierBuilder;
use crate::data::Dataset;
use crate::engine::EngineChoice;
use crate::error::{Error, Result};
use crate::model_info::ModelInfo;
use crate::preprocess::{InputConfig, InputOverrides};
use calibrate::Observed;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tract_onnx::pb;

/// Metadata keys a variant carries beside the float32 file's own.
pub mod keys {
    /// `int8-weights`, `int8-static` or `fp16` ([`super::Variant`]).
    pub const VARIANT: &str = crate::preprocess::keys::QUANTIZATION_VARIANT;
    /// The float32 file's name.
    pub const SOURCE: &str = "quantized_from";
    /// The float32 file's SHA-256, in hex.
    pub const SOURCE_SHA256: &str = "quantized_from_sha256";
    /// How the values were quantized, in words.
    pub const METHOD: &str = "quantization_method";
    /// The calibration images' data set (int8 static only).
    pub const CALIBRATION_DATA: &str = "calibration_data";
    /// How many calibration images (int8 static only).
    pub const CALIBRATION_IMAGES: &str = "calibration_images";
    /// The quantizable nodes left in float, comma-separated (int8 static only).
    pub const FLOAT_NODES: &str = "quantization_float_nodes";
}

/// The calibration images the int8 static variant uses when none are asked for.
pub const DEFAULT_CALIBRATION_IMAGES: usize = 200;

/// The most calibration images.
pub const MAX_CALIBRATION_IMAGES: usize = 100_000;

/// Which variant of a float32 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Per-output-channel symmetric int8 weights behind `DequantizeLinear`; float compute. About
    /// 4x smaller; runs wherever the float32 file runs.
    Int8Weights,
    /// int8 weights and uint8 activations calibrated on images, in the QDQ layout that ONNX
    /// Runtime's CPU provider runs on integer kernels.
    Int8Static,
    /// float16 weights with a `Cast` to float32: half the size, float32 inputs and outputs.
    Fp16,
}

impl Variant {
    /// Every variant, in the order the pipeline writes them.
    pub const ALL: [Variant; 3] = [Variant::Int8Weights, Variant::Int8Static, Variant::Fp16];

    /// Its name in files, flags and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Int8Weights => crate::preprocess::keys::INT8_WEIGHTS,
            Variant::Int8Static => "int8-static",
            Variant::Fp16 => "fp16",
        }
    }

    /// The variant's file beside the float32 one: `models/cnn.onnx` -> `models/cnn.int8-weights.onnx`.
    pub fn path_for(self, fp32: &Path) -> PathBuf {
        let stem = fp32
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        fp32.with_file_name(format!("{stem}.{}.onnx", self.name()))
    }

    /// Variants named in a list (`int8-weights`, `int8-static`, `fp16`, `all`; `none` names
    /// none), each once, in the order first named.
    ///
    /// # Errors
    /// A name that is none of these.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Variant>, String> {
        let mut out: Vec<Variant> = Vec::new();
        for name in names.iter().map(|n| n.as_ref().trim()) {
            let named = match name.to_ascii_lowercase().as_str() {
                "all" => Variant::ALL.to_vec(),
                "none" | "" => Vec::new(),
                other => vec![other.parse()?],
            };
            for v in named {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    /// The variant a model's metadata declares, if any.
    pub fn of(metadata: &HashMap<String, String>) -> Option<Variant> {
        metadata.get(keys::VARIANT)?.parse().ok()
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown variant {s:?}: expected int8-weights, int8-static or fp16")
            })
    }
}

/// The images the int8 static variant calibrates its activations on.
#[derive(Debug, Clone)]
pub struct Calibration<'a> {
    /// The set the images come from (its training split, usually).
    pub set: &'a Dataset,
    /// What the set is, for the variant's metadata and errors (its path).
    pub name: PathBuf,
    /// How many images to take, spread evenly over the set (all of them when it has fewer).
    pub images: usize,
    /// How an activation's observed values become its range.
    pub method: Method,
}

/// The calibration method the int8 static variant uses unless told otherwise: measured best on
/// both models (`docs/quantization.md`).
pub const DEFAULT_METHOD: Method = Method::Mse;

/// What [`quantize`] makes and how.
#[derive(Debug, Clone)]
pub struct QuantizeOptions<'a> {
    /// The variant to write.
    pub variant: Variant,
    /// Preprocessing for a model that carries none in its metadata (or to override it); the
    /// variant's metadata then carries the result.
    pub overrides: InputOverrides,
    /// The calibration images (the int8 static variant needs them).
    pub calibration: Option<Calibration<'a>>,
    /// The quantizable nodes the int8 static variant leaves in float.
    pub keep_float: KeepFloat,
    /// The engine that runs calibration (auto: ONNX Runtime, else tract).
    pub engine: EngineChoice,
    /// ONNX Runtime's library for calibration, where the caller knows it.
    pub ort_library: Option<PathBuf>,
}

impl QuantizeOptions<'_> {
    /// The defaults for `variant`: no overrides, no calibration images, the last quantizable
    /// node (the one that writes the class scores) kept in float (measured:
    /// `docs/quantization.md`).
    pub fn new(variant: Variant) -> Self {
        QuantizeOptions {
            variant,
            overrides: InputOverrides::default(),
            calibration: None,
            keep_float: KeepFloat {
                first: false,
                last: true,
                names: Vec::new(),
            },
            engine: EngineChoice::Auto,
            ort_library: None,
        }
    }
}

/// A variant's file and what went into it.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The ONNX file.
    pub bytes: Vec<u8>,
    /// Which variant.
    pub variant: Variant,
    /// One line on what was done (weights converted, nodes kept float, the calibration engine).
    pub summary: String,
}

/// The calibration images: `n` spread evenly over the set, at the model's size.
fn calibration_images(cal: &Calibration, config: &InputConfig) -> Result<Dataset> {
    let bad = |reason: String| Error::Calibration {
        name: cal.name.clone(),
        reason,
    };
    if cal.set.is_empty() {
        return Err(bad("no images".into()));
    }
    if cal.images == 0 || cal.images > MAX_CALIBRATION_IMAGES {
        return Err(bad(format!(
            "{} calibration images asked for (1 to {MAX_CALIBRATION_IMAGES})",
            cal.images
        )));
    }
    if config.height != config.width {
        return Err(bad(format!(
            "the model takes {}x{} images; a data set of square images needs a square input",
            config.height, config.width
        )));
    }
    let n = cal.images.min(cal.set.len());
    let mut picked = Dataset {
        side: cal.set.side,
        pixels: Vec::with_capacity(n * cal.set.image_len()),
        labels: Vec::with_capacity(n),
        classes: cal.set.classes.clone(),
    };
    for k in 0..n {
        let i = k * cal.set.len() / n;
        picked.pixels.extend_from_slice(cal.set.image(i));
        picked.labels.push(cal.set.labels[i]);
    }
    if n > 1 && (1..n).all(|i| picked.image(i) == picked.image(0)) {
        return Err(bad(format!(
            "all {n} calibration images are the same image: their ranges would fit that image only"
        )));
    }
    Ok(if picked.side == config.height {
        picked
    } else {
        picked.resized(config.height)
    })
}

/// Each calibrated activation's `(lo, hi)` range, by tensor name.
type Ranges = HashMap<String, (f32, f32)>;

/// Runs the calibration images through `model` with `tensors` as extra outputs and returns each
/// tensor's range by `method`, and the engine that ran.
fn calibrate(
    model: &pb::ModelProto,
    path: &Path,
    tensors: &[String],
    images: &Dataset,
    config: &InputConfig,
    options: &QuantizeOptions,
    method: Method,
) -> Result<(Ranges, String)> {
    let declared: Vec<String> = model
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(|v| v.name.clone()).collect())
        .unwrap_or_default();
    let graph_outputs = declared.len();
    // The image input is observed as it is fed; inner tensors become extra outputs.
    let input_name = model
        .graph
        .as_ref()
        .and_then(|g| g.input.first())
        .map(|v| v.name.clone());
    let inner: Vec<String> = tensors
        .iter()
        .filter(|t| Some(*t) != input_name.as_ref() && !declared.contains(t))
        .cloned()
        .collect();
    // Where each tensor's values are: the fed input, or an output of the probe.
    let index: HashMap<&String, usize> = declared
        .iter()
        .chain(&inner)
        .enumerate()
        .map(|(i, t)| (t, i))
        .collect();
    let probe = graph::with_outputs(model, &inner);
    let mut builder = ClassifierBuilder::default()
        .engine(options.engine)
        .input_config(config.clone());
    if let Some(lib) = &options.ort_library {
        builder = builder.ort_library(lib);
    }
    let mut classifier = builder.build_from_bytes(&probe.encode_to_vec(), path)?;
    let mut observed = vec![Observed::default(); tensors.len()];
    let passes = if method == Method::MinMax { 1 } else { 2 };
    // Every calibrated activation of a batch is held at once: VGG16 at 224x224 has about 60 MB of
    // them an image.
    const BATCH: usize = 8;
    for pass in 0..passes {
        for chunk in images.pixels.chunks(BATCH * images.image_len()) {
            let batch = chunk.len() / images.image_len();
            let input = config.tensor_from_planar(chunk);
            let outputs = classifier.run_all(&input, batch)?;
            if outputs.len() != graph_outputs + inner.len() {
                return Err(Error::BadModel {
                    path: path.to_path_buf(),
                    reason: format!(
                        "calibration: {} outputs where {} were asked for",
                        outputs.len(),
                        graph_outputs + inner.len()
                    ),
                });
            }
            for (o, t) in observed.iter_mut().zip(tensors) {
                let values = match index.get(t) {
                    _ if Some(t) == input_name.as_ref() => input.as_slice(),
                    Some(&i) => outputs[i].1.as_slice(),
                    None => &[],
                };
                if pass == 0 {
                    o.extend_range(values);
                } else {
                    o.count(values);
                }
            }
        }
    }
    let engine = format!("{} ({})", classifier.engine_name(), classifier.provider());
    let ranges = tensors
        .iter()
        .cloned()
        .zip(observed.iter().map(|o| o.range(method)))
        .collect();
    Ok((ranges, engine))
}

/// Writes the variant `options.variant` of the float32 model `bytes` (`path` names it in errors
/// and in the variant's metadata) and returns its bytes.
///
/// # Errors
/// `Error::BadModel` naming the file when the model is not an image classifier, carries no
/// preprocessing and none is given, is quantized already, has an operator the quantizer does not
/// know, or has nothing to quantize; `Error::Calibration` when the int8 static variant has no usable
/// calibration images (none, all the same image, a non-square model); engine errors from
/// calibration.
pub fn quantize(bytes: &[u8], path: &Path, options: &QuantizeOptions) -> Result<Quantized> {
    let bad = |reason: String| Error::BadModel {
        path: path.to_path_buf(),
        reason,
    };
    let info = ModelInfo::from_bytes(bytes, path)?;
    if let Some(v) = info.metadata.get(keys::VARIANT) {
        return Err(bad(format!(
            "the model is quantized already (its metadata says {v})"
        )));
    }
    if info.input_config.is_none() && options.overrides.is_empty() {
        return Err(bad(
            "the model carries no preprocessing metadata (input_size, scale, mean, ...) and none was given: say how images become its input (--size, --scale, --mean, --std, --layout, --bgr)".into(),
        ));
    }
    let config = ClassifierBuilder::default()
        .input_overrides(options.overrides.clone())
        .resolve_input_config(&info, path)?;
    let mut model =
        pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model ({e})")))?;
    let variant = options.variant;
    graph::check(&model, variant != Variant::Fp16).map_err(bad)?;
    let source = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut meta = config.to_metadata();
    meta.extend([
        (keys::VARIANT.to_string(), variant.name().to_string()),
        (keys::SOURCE.to_string(), source),
        (keys::SOURCE_SHA256.to_string(), hex(&Sha256::digest(bytes))),
    ]);
    let summary = match variant {
        Variant::Int8Weights => {
            let n = graph::int8_weights(&mut model).map_err(bad)?;
            meta.push((
                keys::METHOD.into(),
                "weights: per-output-channel symmetric int8 (scale max|w|/127, zero point 0) behind DequantizeLinear; float compute".into(),
            ));
            format!("{n} weight tensors as int8")
        }
        Variant::Fp16 => {
            let (n, saturated) = graph::fp16_weights(&mut model).map_err(bad)?;
            meta.push((
                keys::METHOD.into(),
                "weights: float16 behind Cast to float32; float32 compute, inputs and outputs"
                    .into(),
            ));
            let clipped = if saturated > 0 {
                format!(" ({saturated} values saturated at ±65504)")
            } else {
                String::new()
            };
            format!("{n} tensors as float16{clipped}")
        }
        Variant::Int8Static => {
            let cal = options.calibration.as_ref().ok_or_else(|| {
                Error::Calibration {
                    name: path.to_path_buf(),
                    reason: "the int8-static variant needs calibration images (a data set of training images)".into(),
                }
            })?;
            let images = calibration_images(cal, &config)?;
            let graph = model
                .graph
                .as_ref()
                .ok_or_else(|| bad("the model has no graph".into()))?;
            let plan = qdq::static_plan(graph, &options.keep_float).map_err(bad)?;
            let (ranges, engine) = calibrate(
                &model,
                path,
                &plan.calibrated,
                &images,
                &config,
                options,
                cal.method,
            )?;
            qdq::apply_static(&mut model, &plan, &ranges).map_err(bad)?;
            meta.extend([
                (
                    keys::METHOD.into(),
                    format!(
                        "QDQ: weights per-output-channel symmetric int8, biases int32, activations per-tensor uint8 calibrated by {}",
                        cal.method
                    ),
                ),
                (keys::CALIBRATION_DATA.into(), cal.name.display().to_string()),
                (keys::CALIBRATION_IMAGES.into(), images.len().to_string()),
                (keys::FLOAT_NODES.into(), plan.kept_float.join(",")),
            ]);
            format!(
                "{} nodes on int8, {} activations calibrated on {} images by {} with {engine}; in float: {}",
                plan.quantized.len(),
                plan.calibrated.len(),
                images.len(),
                cal.method,
                if plan.kept_float.is_empty() { "none".into() } else { plan.kept_float.join(", ") }
            )
        }
    };
    graph::set_metadata(&mut model, &meta);
    let bytes = model.encode_to_vec();
    // The variant must read back as the same classifier.
    ModelInfo::from_bytes(&bytes, path)?;
    Ok(Quantized {
        bytes,
        variant,
        summary,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_lists_expand_all_drop_none_and_repeats() {
        assert_eq!(
            Variant::parse_list(&["fp16", "all", "FP16"]),
            Ok(vec![
                Variant::Fp16,
                Variant::Int8Weights,
                Variant::Int8Static
            ])
        );
        assert_eq!(Variant::parse_list(&["none"]), Ok(Vec::new()));
        assert!(Variant::parse_list(&["int4"]).is_err());
    }

    #[test]
    fn keep_float_lists_name_first_last_and_nodes() {
        let keep = KeepFloat::parse(&["last", "conv3"]);
        assert_eq!(
            keep,
            KeepFloat {
                first: false,
                last: true,
                names: vec!["conv3".into()],
            }
        );
        assert_eq!(KeepFloat::parse(&["none"]), KeepFloat::default());
    }
}
