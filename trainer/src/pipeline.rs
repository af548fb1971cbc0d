//! The whole path in one call: data, training, export, reference predictions, verification.

use crate::backend::{self, DeviceChoice};
use crate::data::standin::{self, StandinConfig};
use crate::export;
use crate::model::cnn::CnnConfig;
use crate::train::{self, TrainConfig, Trained};
use anyhow::{bail, Context};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use runtime::data::{CifarSplit, Dataset};
use runtime::verify::{ReferencePredictions, VerifyReport};
use runtime::EngineChoice;
use std::path::{Path, PathBuf};

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// `<data>/cifar-10-batches-bin` when present, else the stand-in generated into `<data>/standin`.
    Default {
        data_dir: PathBuf,
        standin: StandinConfig,
    },
    /// A CIFAR folder or file, or an image folder, given explicitly.
    Path(PathBuf),
}

/// The loaded splits and where they came from.
pub struct Splits {
    pub source: PathBuf,
    pub standin: bool,
    pub train: Dataset,
    pub test: Dataset,
}

/// Loads (generating the stand-in when needed) the training and test splits.
pub fn load_data(
    source: &DataSource,
    side: usize,
    limits: (Option<usize>, Option<usize>),
) -> anyhow::Result<Splits> {
    let (path, standin) = match source {
        DataSource::Path(p) => (p.clone(), false),
        DataSource::Default { data_dir, standin } => {
            let real = data_dir.join("cifar-10-batches-bin");
            if real.is_dir() {
                (real, false)
            } else {
                let dir = data_dir.join("standin");
                let stamp = dir.join("standin.json");
                let wanted = format!(
                    "{{\"train\":{},\"test\":{},\"seed\":{}}}",
                    standin.train, standin.test, standin.seed
                );
                let current = std::fs::read_to_string(&stamp).unwrap_or_default();
                let out = dir.join("cifar-10-batches-bin");
                if current != wanted || !out.join("test_batch.bin").is_file() {
                    eprintln!(
                        "no CIFAR-10 in {}: generating the stand-in ({} train, {} test images) in {}",
                        real.display(),
                        standin.train,
                        standin.test,
                        out.display()
                    );
                    standin::write(&dir, *standin)?;
                    export::write_file(&stamp, wanted.as_bytes())?;
                }
                (out, true)
            }
        }
    };
    let load = |split| -> anyhow::Result<Dataset> {
        let (set, report) = runtime::data::load(&path, split, side)?;
        for (file, reason) in &report.skipped {
            eprintln!("skipped {}: {reason}", file.display());
        }
        Ok(set)
    };
    let mut train = load(CifarSplit::Train)?;
    let mut test = load(CifarSplit::Test)?;
    if train.classes != test.classes {
        bail!(
            "{}: the training and test splits name different classes ({:?} vs {:?})",
            path.display(),
            train.classes,
            test.classes
        );
    }
    if let Some(n) = limits.0 {
        train.truncate(n);
    }
    if let Some(n) = limits.1 {
        test.truncate(n);
    }
    Ok(Splits {
        source: path,
        standin,
        train,
        test,
    })
}

/// Options of a training run.
#[derive(Debug, Clone)]
pub struct TrainRun {
    pub name: String,
    pub models_dir: PathBuf,
    pub model: CnnConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    pub show_progress: bool,
}

/// The files a training run wrote.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub onnx: PathBuf,
    pub reference: PathBuf,
    pub history: PathBuf,
    pub curves: PathBuf,
    pub final_accuracy: f64,
}

/// Trains the CNN on `splits`, exports it and saves Burn's own test-set predictions beside it.
pub fn train_and_export(run: &TrainRun, splits: &Splits) -> anyhow::Result<Artifacts> {
    let mut model = run.model.clone();
    model.classes = splits.train.classes.len();
    model.side = splits.train.side;
    match run.device {
        DeviceChoice::Cpu => train_on::<backend::Cpu>(
            run,
            splits,
            &model,
            &backend::cpu_device(),
            "burn (flex, cpu)",
        ),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => train_on::<backend::Cuda>(
            run,
            splits,
            &model,
            &burn::backend::cuda::CudaDevice::default(),
            "burn (cuda)",
        ),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda => {
            bail!("this trainer was built without CUDA support: rebuild with `--features cuda`")
        }
    }
}

fn train_on<B: AutodiffBackend>(
    run: &TrainRun,
    splits: &Splits,
    model: &CnnConfig,
    device: &B::Device,
    producer: &str,
) -> anyhow::Result<Artifacts> {
    let trained = train::train_cnn::<B>(
        device,
        producer,
        &splits.train,
        &splits.test,
        model,
        &run.train,
        run.show_progress,
    )?;
    save(run, splits, model, trained, producer)
}

fn save<B: Backend>(
    run: &TrainRun,
    splits: &Splits,
    model_config: &CnnConfig,
    trained: Trained<B>,
    producer: &str,
) -> anyhow::Result<Artifacts> {
    let dir = &run.models_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let onnx = dir.join(format!("{}.onnx", run.name));
    let bytes = export::cnn_to_onnx(&trained.model, model_config, &splits.train.classes);
    export::write_file(&onnx, &bytes)?;
    let reference = ReferencePredictions::path_for(&onnx);
    ReferencePredictions {
        producer: producer.to_string(),
        data: splits.source.clone(),
        fingerprint: splits.test.fingerprint(),
        samples: splits.test.len(),
        classes: splits.test.classes.len(),
        logits: trained.test_logits,
    }
    .save(&reference)?;
    let history = dir.join(format!("{}.history.json", run.name));
    train::save_history(&trained.history, &history)?;
    let curves = dir.join(format!("{}.curves.png", run.name));
    crate::plot::plot_history(&trained.history, &curves)?;
    Ok(Artifacts {
        onnx,
        reference,
        history,
        curves,
        final_accuracy: trained
            .history
            .epochs
            .last()
            .map_or(0.0, |e| e.val_accuracy),
    })
}

/// Makes sure ONNX Runtime's library can be found, fetching it through pip when it cannot.
/// Returns a note for the user when it is still missing (the ort row of the table says why).
pub fn ensure_onnxruntime() -> Option<String> {
    if runtime::ort_library::find().is_ok() {
        return None;
    }
    eprintln!(
        "fetching ONNX Runtime {} through pip into {}",
        runtime::ort_library::ORT_VERSION,
        runtime::ort_library::project_dir().display()
    );
    runtime::ort_library::fetch(None).err()
}

/// Runs the test split through ort and tract, compares with Burn's predictions and writes
/// `<model>.verify.json`.
pub fn verify(onnx: &Path, test: &Dataset, batch: usize) -> anyhow::Result<VerifyReport> {
    let reference = ReferencePredictions::load(&ReferencePredictions::path_for(onnx))?;
    let report = runtime::verify::verify(
        onnx,
        test,
        &reference,
        &[EngineChoice::Ort, EngineChoice::Tract],
        batch,
    )?;
    let path = VerifyReport::path_for(onnx);
    export::write_file(&path, &serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}
