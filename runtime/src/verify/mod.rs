//! Agreement between engines and the trainer's own predictions, and accuracy on a labelled set
//! ([`evaluate()`]).

mod evaluate;

pub use evaluate::{evaluate, Evaluation};

use crate::classifier::ClassifierBuilder;
use crate::data::Dataset;
use crate::engine::{EngineChoice, Provider};
use crate::error::{Error, Result};
use crate::model_info::ModelInfo;
use crate::quantize::{keys, Variant};
use crate::scores::{argmax, softmax_rows};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest difference of probabilities between an engine and the reference that still counts
/// as agreement.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// What a quantized variant may differ from the float32 model's reference and still pass: its
/// own bounds, where the float32 file must agree on every image within [`DEFAULT_TOLERANCE`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// The largest probability difference from the reference, where one is bounded.
    pub max_prob_diff: Option<f64>,
    /// The least share of images whose top-1 class equals the reference's.
    pub min_top1_agreement: f64,
    /// The most the accuracy may fall below the reference's (a fraction: 0.003 is 0.3 points).
    pub max_accuracy_drop: f64,
    /// The least share of images on which the engines give the same top-1 class.
    pub min_engine_agreement: f64,
}

impl Tolerance {
    /// A float32 export: every top-1 class as the reference's, probabilities within `diff`.
    pub fn exact(diff: f64) -> Self {
        Tolerance {
            max_prob_diff: Some(diff),
            min_top1_agreement: 1.0,
            max_accuracy_drop: 0.0,
            min_engine_agreement: 1.0,
        }
    }

    /// A variant's documented bounds (`docs/quantization.md` has what they were chosen from).
    pub fn for_variant(variant: Variant) -> Self {
        match variant {
            Variant::Fp16 => Tolerance {
                max_prob_diff: Some(1e-2),
                min_top1_agreement: 0.995,
                max_accuracy_drop: 0.001,
                min_engine_agreement: 0.995,
            },
            Variant::Int8Weights => Tolerance {
                max_prob_diff: None,
                min_top1_agreement: 0.98,
                max_accuracy_drop: 0.003,
                min_engine_agreement: 0.995,
            },
            Variant::Int8Static => Tolerance {
                max_prob_diff: None,
                min_top1_agreement: 0.95,
                max_accuracy_drop: 0.01,
                min_engine_agreement: 0.95,
            },
        }
    }
}

/// The reference predictions for `model`: `<name>.burn.json` beside it, or for a quantized
/// variant, the float32 file's (its metadata names that file).
///
/// # Errors
/// When the model file cannot be read or is not a model.
pub fn reference_path(model: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(model).map_err(|source| Error::Io {
        path: model.to_path_buf(),
        source,
    })?;
    let info = ModelInfo::from_bytes(&bytes, model)?;
    Ok(match info.metadata.get(keys::SOURCE) {
        Some(source) if Variant::of(&info.metadata).is_some() => {
            ReferencePredictions::path_for(&model.with_file_name(source))
        }
        _ => ReferencePredictions::path_for(model),
    })
}

/// The trainer's own predictions on a test set, saved next to the exported model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferencePredictions {
    /// What produced them, e.g. `burn (flex, cpu)`.
    pub producer: String,
    /// The data set they were made on.
    pub data: PathBuf,
    /// [`Dataset::fingerprint`] of that set.
    pub fingerprint: String,
    /// The side its images were loaded at (the model may take them resized).
    #[serde(default = "cifar_side")]
    pub side: usize,
    /// Images evaluated.
    pub samples: usize,
    /// Classes per prediction.
    #[serde(rename = "classes")]
    pub num_classes: usize,
    /// `samples x classes` logits, row-major.
    pub logits: Vec<f32>,
}

fn cifar_side() -> usize {
    32
}

impl ReferencePredictions {
    /// The file beside `model` (`models/cnn.onnx` -> `models/cnn.burn.json`).
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("burn.json")
    }

    /// Writes the predictions to `path` atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        crate::files::write_atomic(path, &json).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and checks a predictions file.
    ///
    /// # Errors
    /// When the file cannot be read or [`ReferencePredictions::from_bytes`] refuses it.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and checks a predictions file's bytes; `path` names it in errors.
    ///
    /// # Errors
    /// When it is not such a JSON document, or a field is unusable: no classes or more than
    /// [`MAX_CLASSES`](crate::MAX_CLASSES), no samples, an image side outside
    /// `1..=`[`MAX_INPUT_SIDE`](crate::preprocess::MAX_INPUT_SIDE), logits that are not
    /// `samples x classes` finite numbers.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let preds: Self = serde_json::from_slice(bytes).map_err(|e| Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("not a predictions file ({e})"),
        })?;
        let bad = |reason: String| Error::BadModel {
            path: path.to_path_buf(),
            reason,
        };
        if preds.num_classes == 0 || preds.num_classes > crate::model_info::MAX_CLASSES {
            return Err(bad(format!(
                "classes: {} (1 to {} expected)",
                preds.num_classes,
                crate::model_info::MAX_CLASSES
            )));
        }
        if preds.samples == 0 {
            return Err(bad("samples: 0, no predictions to compare with".into()));
        }
        if preds.side == 0 || preds.side > crate::preprocess::MAX_INPUT_SIDE {
            return Err(bad(format!("side: {} is not an image side", preds.side)));
        }
        if Some(preds.logits.len()) != preds.samples.checked_mul(preds.num_classes) {
            return Err(bad(format!(
                "logits: {} values for {} samples of {} classes",
                preds.logits.len(),
                preds.samples,
                preds.num_classes
            )));
        }
        if let Some(i) = preds.logits.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "logits: value {i} is {}, not a score",
                preds.logits[i]
            )));
        }
        Ok(preds)
    }
}

/// How one engine did against the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineCheck {
    /// `ort` or `tract`.
    pub engine: String,
    /// The execution provider that actually ran (`None` when the engine could not run).
    pub provider: Option<String>,
    /// Images evaluated.
    pub samples: usize,
    /// Its accuracy on the labels, when it ran.
    pub accuracy: Option<f64>,
    /// Fraction of images whose top-1 class equals the reference's.
    pub top1_agreement: Option<f64>,
    /// Largest |p_engine - p_reference| over all images and classes.
    pub max_abs_prob_diff: Option<f64>,
    /// Seconds it took, when it ran.
    pub seconds: Option<f64>,
    /// Why the engine did not run, when it did not.
    pub error: Option<String>,
    /// Why the execution providers asked for before the one that ran were passed over (one line
    /// each), when any were: a GPU provider that could not be registered, say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_over: Option<String>,
}

/// The `models/<name>.verify.json` report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The model file verified.
    pub model: PathBuf,
    /// The data set the predictions were made on.
    pub data: PathBuf,
    /// Images evaluated.
    pub samples: usize,
    /// What made the reference predictions (e.g. `burn (flex, cpu)`).
    pub reference: String,
    /// The reference's accuracy on the same images.
    pub reference_accuracy: f64,
    /// One check per engine.
    pub engines: Vec<EngineCheck>,
    /// The quantized variant verified (`None`: a float32 export).
    #[serde(default)]
    pub variant: Option<String>,
    /// Share of images on which the first two engines that ran give the same top-1 class.
    #[serde(default)]
    pub engine_agreement: Option<f64>,
}

impl VerifyReport {
    /// The report's path beside `model`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("verify.json")
    }

    /// Writes the report beside its model ([`VerifyReport::path_for`]), atomically; returns where.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self) -> Result<PathBuf> {
        let path = Self::path_for(&self.model);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        crate::files::write_atomic(&path, &json).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The bounds this report is judged by: the variant's own, else [`Tolerance::exact`] with
    /// `diff`.
    pub fn tolerance(&self, diff: f64) -> Tolerance {
        self.variant
            .as_deref()
            .and_then(|v| v.parse().ok())
            .map_or(Tolerance::exact(diff), Tolerance::for_variant)
    }

    /// Whether every engine ran and agrees with the reference within [`VerifyReport::tolerance`].
    pub fn all_agree(&self, tolerance: f64) -> bool {
        self.problems(tolerance).is_empty()
    }

    /// One sentence per engine that did not run or falls outside [`VerifyReport::tolerance`] (a
    /// float32 file: a top-1 class differs, or a probability by more than `tolerance`; a variant:
    /// its own bounds), and one when the engines disagree with each other; empty when all pass.
    pub fn problems(&self, tolerance: f64) -> Vec<String> {
        let t = self.tolerance(tolerance);
        let model = self.model.display();
        let mut problems: Vec<String> = self
            .engines
            .iter()
            .filter_map(|e| match (&e.error, e.top1_agreement, e.max_abs_prob_diff, e.accuracy) {
                (Some(err), _, _, _) => Some(format!("{} did not run on {model}: {err}", e.engine)),
                (None, Some(top1), Some(diff), Some(acc))
                    if top1 >= t.min_top1_agreement
                        && t.max_prob_diff.is_none_or(|max| diff <= max)
                        && self.reference_accuracy - acc <= t.max_accuracy_drop + 1e-9 =>
                {
                    None
                }
                (None, top1, diff, acc) => Some(format!(
                    "{} disagrees with {} on {model}: top-1 agreement {:.2} % (at least {:.2} %), max probability difference {:.2e} ({}), accuracy {:.2} % against {:.2} % (at most {:.2} points lower)",
                    e.engine,
                    self.reference,
                    100.0 * top1.unwrap_or(0.0),
                    100.0 * t.min_top1_agreement,
                    diff.unwrap_or(f64::NAN),
                    t.max_prob_diff.map_or("not bounded".into(), |m| format!("at most {m:.0e}")),
                    100.0 * acc.unwrap_or(0.0),
                    100.0 * self.reference_accuracy,
                    100.0 * t.max_accuracy_drop
                )),
            })
            .collect();
        if let Some(a) = self
            .engine_agreement
            .filter(|&a| a < t.min_engine_agreement)
        {
            problems.push(format!(
                "the engines disagree with each other on {model}: top-1 agreement {:.2} % (at least {:.2} %)",
                100.0 * a,
                100.0 * t.min_engine_agreement
            ));
        }
        problems
    }

    /// The rows of [`VerifyReport::table`] (the reference, then each engine) without their
    /// leading `| `: `engine | provider | accuracy | agreement | max diff | seconds |`.
    pub fn rows(&self) -> Vec<String> {
        let reference = format!(
            "{} | - | {:.2} % | (reference) | - | - |",
            self.reference,
            100.0 * self.reference_accuracy
        );
        let engines = self.engines.iter().map(|e| match &e.error {
            Some(err) => format!("{} | - | not run: {err} | | | |", e.engine),
            None => format!(
                "{} | {} | {:.2} % | {:.2} % | {:.2e} | {:.2} |",
                e.engine,
                e.provider.as_deref().unwrap_or("-"),
                100.0 * e.accuracy.unwrap_or(0.0),
                100.0 * e.top1_agreement.unwrap_or(0.0),
                e.max_abs_prob_diff.unwrap_or(f64::NAN),
                e.seconds.unwrap_or(0.0)
            ),
        });
        // A variant is compared with the float32 file's reference, shown on that file's rows.
        let reference = self.variant.is_none().then_some(reference);
        reference.into_iter().chain(engines).collect()
    }

    /// A table with one row per engine.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} on {} images of {}\n",
            self.model.display(),
            self.samples,
            self.data.display()
        );
        s += "| engine | provider | accuracy | top-1 agreement | max abs diff prob | seconds |\n";
        s += "|---|---|---|---|---|---|\n";
        for row in self.rows() {
            s += &format!("| {row}\n");
        }
        for line in self.notes() {
            s += &format!("{line}\n");
        }
        s
    }

    /// The lines printed under the table: how often the engines agree with each other (for a
    /// variant), then why providers were passed over (where any were).
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.engines_line().into_iter().collect();
        notes.extend(self.passed_over_lines());
        notes
    }

    /// One line per engine that runs on another provider than the first asked for, saying why
    /// each before it was passed over.
    fn passed_over_lines(&self) -> Vec<String> {
        let name = self
            .model
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.engines
            .iter()
            .filter_map(|e| {
                let why = e.passed_over.as_deref()?;
                let ran = e.provider.as_deref().unwrap_or("-");
                let why = why.replace('\n', "; ");
                Some(format!(
                    "{name}: {} ran on {ran}; passed over: {why}",
                    e.engine
                ))
            })
            .collect()
    }

    /// How often the engines agree with each other, for a variant (a float32 export agrees with
    /// the reference on every image, so its engines agree too).
    fn engines_line(&self) -> Option<String> {
        let variant = self.variant.as_deref()?;
        let a = self.engine_agreement?;
        let name = self.model.file_name()?.to_string_lossy();
        Some(format!(
            "{name} ({variant}): ort and tract give the same top-1 class on {:.2} % of the images",
            100.0 * a
        ))
    }
}

/// Runs `set` through one engine and compares its probabilities with the reference's
/// (`ref_probs`, `samples x classes`); an engine that cannot run is a check with its error.
fn check_engine(
    model: &Path,
    set: &Dataset,
    ref_probs: &[f32],
    choice: EngineChoice,
    providers: &[Provider],
    ort_library: Option<&Path>,
    batch: usize,
) -> (EngineCheck, Option<Vec<usize>>) {
    let classes = set.classes.len();
    let mut builder = ClassifierBuilder::default()
        .engine(choice)
        .providers(providers);
    if let Some(library) = ort_library {
        builder = builder.ort_library(library);
    }
    let run = builder.build_from_file(model).and_then(|mut c| {
        let eval = evaluate(&mut c, set, batch)?;
        let passed_over = c.fallback_reason().map(str::to_string);
        Ok((eval, c.engine_name(), c.provider(), passed_over))
    });
    match run {
        Ok((eval, engine, provider, passed_over)) => {
            let top1: Vec<usize> = eval
                .probabilities
                .chunks_exact(classes)
                .map(argmax)
                .collect();
            let agree = eval
                .probabilities
                .chunks_exact(classes)
                .zip(ref_probs.chunks_exact(classes))
                .filter(|(a, b)| argmax(a) == argmax(b))
                .count();
            let max_diff = eval
                .probabilities
                .iter()
                .zip(ref_probs)
                .map(|(a, b)| f64::from((a - b).abs()))
                .fold(0.0, f64::max);
            let check = EngineCheck {
                engine: engine.to_string(),
                provider: Some(provider),
                samples: eval.samples,
                accuracy: Some(eval.accuracy),
                top1_agreement: Some(agree as f64 / set.len().max(1) as f64),
                max_abs_prob_diff: Some(max_diff),
                seconds: Some(eval.seconds),
                error: None,
                passed_over,
            };
            (check, Some(top1))
        }
        Err(e) => (
            EngineCheck {
                engine: match choice {
                    EngineChoice::Ort => "ort",
                    EngineChoice::Tract => "tract",
                    EngineChoice::Auto => "auto",
                }
                .to_string(),
                provider: None,
                samples: 0,
                accuracy: None,
                top1_agreement: None,
                max_abs_prob_diff: None,
                seconds: None,
                error: Some(e.to_string()),
                passed_over: None,
            },
            None,
        ),
    }
}

/// The test images a model is verified on.
#[derive(Debug, Clone, Copy)]
pub enum TestImages<'a> {
    /// A set already in memory (the trainer's test split).
    Loaded(&'a Dataset),
    /// The test split of the data set at this path, or of the one the reference predictions
    /// name when `None`.
    Read(Option<&'a Path>),
}

/// Verifies the model file `model` against the trainer's predictions beside it
/// ([`reference_path`]: its own, or for a quantized variant the float32 file's) on `images`, with
/// each of `engines` (ONNX Runtime on the first usable of `providers`). Save the report with
/// [`VerifyReport::save`]; judge it with [`VerifyReport::problems`].
///
/// # Errors
/// When the predictions or the data cannot be read, or do not belong together (see [`verify`]).
pub fn verify_model(
    model: &Path,
    images: TestImages,
    engines: &[EngineChoice],
    providers: &[Provider],
    batch: usize,
) -> Result<VerifyReport> {
    let reference = ReferencePredictions::load(&reference_path(model)?)?;
    let read;
    let set = match images {
        TestImages::Loaded(set) => set,
        TestImages::Read(data) => {
            let data = data.unwrap_or(&reference.data);
            read = crate::data::load(data, crate::data::CifarSplit::Test, reference.side)?.0;
            &read
        }
    };
    verify(model, set, &reference, engines, providers, batch)
}

/// Runs `set` through each engine in `engines` (ONNX Runtime on the first usable of `providers`)
/// and compares with the reference predictions.
pub fn verify(
    model: &Path,
    set: &Dataset,
    reference: &ReferencePredictions,
    engines: &[EngineChoice],
    providers: &[Provider],
    batch: usize,
) -> Result<VerifyReport> {
    // A model trained with a test limit was evaluated on the first `samples` images.
    let subset;
    let set = if set.len() > reference.samples {
        let mut first = set.clone();
        first.truncate(reference.samples);
        subset = first;
        &subset
    } else {
        set
    };
    if reference.num_classes != set.classes.len() {
        return Err(Error::DataMismatch(format!(
            "the reference predictions have {} classes, the set {} has {}",
            reference.num_classes,
            reference.data.display(),
            set.classes.len()
        )));
    }
    if reference.fingerprint != set.fingerprint() || reference.samples != set.len() {
        return Err(Error::DataMismatch(format!(
            "the reference predictions were made on {} ({} images, fingerprint {}), not on this set ({} images, fingerprint {})",
            reference.data.display(),
            reference.samples,
            reference.fingerprint,
            set.len(),
            set.fingerprint()
        )));
    }
    let mut ref_probs = reference.logits.clone();
    softmax_rows(&mut ref_probs, reference.num_classes);
    let reference_eval =
        Evaluation::from_scores(ref_probs.clone(), &set.labels, &set.classes, 0.0)?;
    // Looked for once: the search may ask a Python interpreter.
    let ort_library = crate::engine::ort_library::locate().ok();
    let (checks, top1s): (Vec<_>, Vec<_>) = engines
        .iter()
        .map(|&choice| {
            let library = ort_library.as_deref();
            check_engine(model, set, &ref_probs, choice, providers, library, batch)
        })
        .unzip();
    let ran: Vec<&Vec<usize>> = top1s.iter().flatten().collect();
    let engine_agreement = match ran.as_slice() {
        [a, b, ..] => Some(
            a.iter().zip(b.iter()).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64,
        ),
        _ => None,
    };
    let variant = std::fs::read(model)
        .ok()
        .and_then(|bytes| ModelInfo::from_bytes(&bytes, model).ok())
        .and_then(|info| Variant::of(&info.metadata))
        .map(|v| v.name().to_string());
    Ok(VerifyReport {
        model: model.to_path_buf(),
        data: reference.data.clone(),
        samples: set.len(),
        reference: reference.producer.clone(),
        reference_accuracy: reference_eval.accuracy,
        engines: checks,
        variant,
        engine_agreement,
    })
}
