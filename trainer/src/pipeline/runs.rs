//! The two training runs, the CNN's and VGG16's: their settings, the training and export on the
//! chosen backend, and the files written beside each model.

use super::*;

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
pub(super) fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
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

pub(super) fn train_and_export_keeping_checkpoints(
    run: &TrainRun,
    splits: &Splits,
) -> Result<Artifacts> {
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
    device::dispatch(run.device, Work(run, splits, &model))
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
pub(super) fn source_name(path: &std::path::Path, bytes: &[u8]) -> String {
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

pub(super) fn train_vgg16_keeping_checkpoints(
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
    device::dispatch(run.device, Work(run, splits, &base, &config))
}

/// What `<name>.config.json` holds: how the model was made.
#[derive(Serialize)]
pub(super) struct MadeWith<'a, R> {
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
pub(super) struct DataUsed<'a> {
    source: &'a Path,
    standin: bool,
    train_images: usize,
    test_images: usize,
    train_fingerprint: String,
    test_fingerprint: String,
}

/// A run whose files [`save`] writes: into `models_dir`, named `name.*`, with the run itself as
/// `name.config.json`.
pub(super) trait RunFiles: Serialize {
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

pub(super) fn save<M, R: RunFiles>(
    run: &R,
    splits: &Splits,
    onnx_bytes: &[u8],
    trained: Trained<M>,
    producer: &str,
) -> Result<Artifacts> {
    let (dir, name) = (run.models_dir(), run.name());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let onnx = dir.join(format!("{name}.onnx"));
    save::write_file(&onnx, onnx_bytes)?;
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
    save::as_one_write(|| predictions.save(&reference))?;
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
    save::write_file(&config, &serde_json::to_vec_pretty(&made_with)?)?;
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
