//! The whole path in one call: data, training, export, reference predictions, verification.

use crate::device::TrainBackend;
use crate::device::{self, DeviceChoice, OnBackend};
use crate::error::{rate, ConfigError};
use crate::error::{Error, Result};
use crate::export;
use crate::model::cnn::CnnConfig;
use crate::model::vgg16::source::Vgg16Base;
use crate::model::vgg16::transfer::{Freeze, Vgg16Config, DEFAULT_DROPOUT, DEFAULT_SIDE};
use crate::save;
use crate::standin::{self, StandinConfig};
use crate::train::vgg16::{self as vgg16_training, CacheOptions, CacheReport};
use crate::train::{self, CheckpointPlan, Control, TrainConfig, Trained};
use runtime::data::{CifarSplit, Dataset};
use runtime::quantize::{Calibration, QuantizeOptions, Variant};
use runtime::verify::{ReferencePredictions, TestImages, VerifyReport};
use runtime::{EngineChoice, Provider};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

mod data;
mod driving;
mod fetch;
mod runs;
mod verify;

pub use data::*;
pub use driving::*;
pub use fetch::*;
pub use runs::*;
pub use verify::*;

/// How the exported files are verified.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Images per engine call.
    pub batch: usize,
    /// ONNX Runtime's execution providers, in order of preference; the one that ran is reported.
    pub providers: Vec<Provider>,
    /// The largest difference of a probability from Burn's that an engine may show.
    pub tolerance: f64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            batch: 256,
            providers: vec![Provider::Cuda, Provider::Cpu],
            tolerance: runtime::verify::DEFAULT_TOLERANCE,
        }
    }
}

/// The smaller variants written beside each exported file.
#[derive(Debug, Clone)]
pub struct QuantizeConfig {
    /// Which variants (none: only the float32 files).
    pub variants: Vec<Variant>,
    /// Training images the int8 static variant is calibrated on.
    pub calibration_images: usize,
}

impl Default for QuantizeConfig {
    /// No variants: writing and verifying all three adds about a third to the pipeline's time.
    fn default() -> Self {
        QuantizeConfig {
            variants: Vec::new(),
            calibration_images: runtime::quantize::DEFAULT_CALIBRATION_IMAGES,
        }
    }
}

/// The whole job after the data: the models to train and export, then their verification.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub cnn: Option<TrainRun>,
    pub vgg16: Option<Vgg16Run>,
    pub verify: VerifyConfig,
    pub quantize: QuantizeConfig,
    /// Checked between the stages: when set, the pipeline stops before the next one.
    pub stop: Option<Arc<AtomicBool>>,
}

/// What the pipeline made and found.
#[derive(Debug)]
pub struct PipelineReport {
    /// Each trained model's files, in the order trained (CNN, then VGG16).
    pub artifacts: Vec<Artifacts>,
    /// What the VGG16 run's frozen-feature cache did.
    pub cache: Option<CacheReport>,
    /// Each quantized variant written: its file, size and what was done.
    pub variants: Vec<(PathBuf, u64, String)>,
    /// Each exported file's verification by ort and tract against Burn, each variant's after it.
    pub verified: Vec<VerifyReport>,
    /// Why the verification did not pass (empty when every engine ran and agreed with Burn within
    /// the tolerance).
    pub problems: Vec<String>,
    /// Why ONNX Runtime could not be fetched, when it could not (its rows then say "not run").
    pub ort_missing: Option<String>,
}

/// Trains and exports the configured models on `splits` (the CNN, then VGG16), then verifies
/// each exported file with ort and tract against Burn's predictions. Every configuration is
/// checked before anything trains.
///
/// # Errors
/// A bad setting (before anything runs), a training or export failure, [`crate::train::Stopped`]
/// or [`Error::StoppedBefore`] when stopped, a verification that could not run at all. A verification
/// that ran and disagreed is not an error: see [`PipelineReport::problems`].
pub fn run(config: &PipelineConfig, splits: &Splits) -> Result<PipelineReport> {
    if let Some(run) = &config.cnn {
        run.validate()?;
    }
    if let Some(run) = &config.vgg16 {
        run.validate()?;
    }
    if let (Some(cnn), Some(vgg16)) = (&config.cnn, &config.vgg16) {
        if cnn.name == vgg16.name {
            return Err(ConfigError::new(
                "vgg16.name",
                format!(
                    "{:?} is the CNN's name too: their files would overwrite each other",
                    vgg16.name
                ),
            )
            .into());
        }
    }
    crate::error::positive("verify.batch", config.verify.batch)?;
    let stop_before = |next: &str| -> Result<()> {
        if config
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst))
        {
            return Err(Error::StoppedBefore { next: next.into() });
        }
        Ok(())
    };
    // Each run's checkpoints stay until the whole job is done: a --resume after a stop in a later
    // stage continues from them instead of training the model again.
    let mut artifacts = Vec::new();
    let mut finish = Vec::new();
    let mut cache = None;
    if let Some(run) = &config.cnn {
        artifacts.push(train_and_export_keeping_checkpoints(run, splits)?);
        finish.push((&run.driving, &run.models_dir, &run.name));
    }
    if let Some(run) = &config.vgg16 {
        stop_before("training VGG16")?;
        let (made, report) = train_vgg16_keeping_checkpoints(run, splits)?;
        artifacts.push(made);
        finish.push((&run.driving, &run.models_dir, &run.name));
        cache = Some(report);
    }
    stop_before("the verification")?;
    let ort = ensure_onnxruntime();
    let ort_missing = ort.as_ref().err().map(|why| why.to_string());
    let mut verified = Vec::new();
    let mut variants = Vec::new();
    for made in &artifacts {
        let mut files = vec![made.onnx.clone()];
        let bytes = if config.quantize.variants.is_empty() {
            Vec::new()
        } else {
            std::fs::read(&made.onnx).map_err(|e| Error::io(&made.onnx, e))?
        };
        for &variant in &config.quantize.variants {
            stop_before(&format!(
                "writing {}",
                variant.path_for(&made.onnx).display()
            ))?;
            let source = VariantSource {
                path: &made.onnx,
                bytes: &bytes,
                ort_library: ort.as_deref().ok(),
            };
            let (path, size, summary) = write_variant(&source, variant, splits, &config.quantize)?;
            files.push(path.clone());
            variants.push((path, size, summary));
        }
        for file in files {
            stop_before(&format!("verifying {}", file.display()))?;
            verified.push(verify(
                &file,
                &splits.test,
                &config.verify.providers,
                config.verify.batch,
            )?);
        }
    }
    let problems = verified
        .iter()
        .flat_map(|r| r.problems(config.verify.tolerance))
        .collect();
    for (made, (driving, models_dir, name)) in artifacts.iter_mut().zip(finish) {
        made.checkpoints = driving.finish(models_dir, name)?;
    }
    Ok(PipelineReport {
        artifacts,
        cache,
        variants,
        verified,
        problems,
        ort_missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_after_a_cuda_failure_resumes_from_the_checkpoints() {
        let driving = Driving {
            checkpoints: Some(Checkpointing {
                every: 5,
                resume: false,
                keep: false,
            }),
            ..Driving::default()
        };
        let plan = |rerun| {
            driving
                .control(Path::new("models"), "cnn", rerun)
                .checkpoints
                .unwrap()
        };
        assert!(!plan(false).resume);
        assert!(plan(true).resume);
        assert_eq!(plan(true).dir, Path::new("models/cnn.checkpoints"));
        assert_eq!(plan(true).every, 5);
    }
}
