//! The trainer's command line.
//!
//! Steps to run:
//! 1. `cargo run --release -p trainer -- pipeline`: data (stand-in unless `data/cifar-10-batches-bin`
//!    exists), training, export to `models/cnn.onnx`, verification with ort and tract.
//! 2. `cargo run --release -p trainer -- train --help` for the knobs of a training run alone.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use trainer::backend::DeviceChoice;
use trainer::data::standin::{self, StandinConfig};
use trainer::model::cnn::CnnConfig;
use trainer::pipeline::{self, DataSource, TrainRun};
use trainer::train::{format_summary, TrainConfig};

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
    /// Train the CNN, export it to ONNX and save Burn's test-set predictions beside it.
    Train(TrainArgs),
    /// Data, training, export, then verification of the exported model with ort and tract.
    Pipeline {
        #[command(flatten)]
        train: TrainArgs,
        /// Batch size for the engines' verification runs.
        #[arg(long, default_value_t = 256)]
        verify_batch: usize,
    },
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

#[derive(Args, Clone)]
struct TrainArgs {
    /// Data: a CIFAR-10 binary folder or file, or an image folder (`<class>/*.png`, or `train/` and
    /// `test/` of those). Default: `data/cifar-10-batches-bin`, else the generated stand-in.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Root folder for the default data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    #[command(flatten)]
    standin: StandinArgs,
    /// Where the model and its side files go.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Base name of the written files.
    #[arg(long, default_value = "cnn")]
    name: String,
    /// Where to train: cpu or cuda (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long = "lr", default_value_t = TrainConfig::default().learning_rate)]
    learning_rate: f64,
    /// RMSprop's moving-average factor (Keras `rho`).
    #[arg(long, default_value_t = TrainConfig::default().rho)]
    rho: f32,
    /// RMSprop's epsilon (added outside the square root).
    #[arg(long, default_value_t = TrainConfig::default().epsilon)]
    epsilon: f32,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Dropout after each convolution block.
    #[arg(long, default_value_t = CnnConfig::default().dropout_conv)]
    dropout_conv: f64,
    /// Dropout before the last dense layer.
    #[arg(long, default_value_t = CnnConfig::default().dropout_dense)]
    dropout_dense: f64,
    /// Use only the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl TrainArgs {
    fn source(&self) -> DataSource {
        match &self.data {
            Some(p) => DataSource::Path(p.clone()),
            None => DataSource::Default {
                data_dir: self.data_dir.clone(),
                standin: self.standin.config(),
            },
        }
    }

    fn run(&self) -> TrainRun {
        TrainRun {
            name: self.name.clone(),
            models_dir: self.models.clone(),
            model: CnnConfig {
                dropout_conv: self.dropout_conv,
                dropout_dense: self.dropout_dense,
                ..CnnConfig::default()
            },
            train: TrainConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.learning_rate,
                rho: self.rho,
                epsilon: self.epsilon,
                seed: self.seed,
                ..TrainConfig::default()
            },
            device: self.device,
            show_progress: !self.quiet,
        }
    }
}

fn train(args: &TrainArgs) -> anyhow::Result<(pipeline::Splits, pipeline::Artifacts)> {
    let run = args.run();
    anyhow::ensure!(
        (0.0..1.0).contains(&run.model.dropout_conv)
            && (0.0..1.0).contains(&run.model.dropout_dense),
        "dropout rates must be in [0, 1)"
    );
    let splits = pipeline::load_data(
        &args.source(),
        run.model.side,
        (args.train_limit, args.test_limit),
    )?;
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
    let mut config = run.model.clone();
    config.classes = splits.train.classes.len();
    let summary_model = config.init::<burn::backend::Flex>(&trainer::backend::cpu_device());
    eprintln!(
        "{}",
        format_summary(&run.name, &summary_model.summary(&config))
    );
    let artifacts = pipeline::train_and_export(&run, &splits)?;
    println!(
        "wrote {} (test accuracy {:.2} %), {}, {}, {}",
        artifacts.onnx.display(),
        100.0 * artifacts.final_accuracy,
        artifacts.reference.display(),
        artifacts.history.display(),
        artifacts.curves.display()
    );
    Ok((splits, artifacts))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Data { out, standin } => {
            let dir = standin::write(&out, standin.config())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", dir.display());
        }
        Command::Train(args) => {
            train(&args)?;
        }
        Command::Pipeline {
            train: args,
            verify_batch,
        } => {
            let (splits, artifacts) = train(&args)?;
            if let Some(why) = pipeline::ensure_onnxruntime() {
                eprintln!(
                    "ONNX Runtime could not be fetched ({why}); ort will be reported as not run"
                );
            }
            let report = pipeline::verify(&artifacts.onnx, &splits.test, verify_batch)?;
            println!("\n{}", report.table());
            println!(
                "wrote {}",
                runtime::verify::VerifyReport::path_for(&artifacts.onnx).display()
            );
            let not_run: Vec<&str> = report
                .engines
                .iter()
                .filter(|e| e.error.is_some())
                .map(|e| e.engine.as_str())
                .collect();
            if !not_run.is_empty() {
                anyhow::bail!(
                    "verification incomplete: {} did not run (see the table above)",
                    not_run.join(" and ")
                );
            }
            if !report.all_agree(1e-4) {
                anyhow::bail!(
                    "the engines do not all agree with Burn within 1e-4 (see the table above)"
                );
            }
        }
    }
    Ok(())
}
