//! The runtime's command line: classify images, evaluate on a labelled set, verify engines.
//!
//! Steps to run:
//! 1. `cargo run --release -p runtime -- fetch-ort` (once; fetches ONNX Runtime through pip).
//! 2. `cargo run --release -p runtime -- classify models/cnn.onnx some/images/`
//! 3. `cargo run --release -p runtime -- evaluate models/cnn.onnx data/standin`

use anyhow::Context;
use clap::{Parser, Subcommand};
use runtime::data::CifarSplit;
use runtime::verify::{ReferencePredictions, VerifyReport};
use runtime::{Classifier, EngineChoice};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "runtime",
    version,
    about = "Run image-classification ONNX models with ONNX Runtime or tract"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files, or every image under folders.
    Classify {
        model: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// auto (ONNX Runtime, else tract), ort or tract.
        #[arg(long, default_value = "auto")]
        engine: EngineChoice,
        /// Classes to show per image.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
    },
    /// Accuracy, per-class accuracy and confusion matrix on a labelled set.
    Evaluate {
        model: PathBuf,
        /// A CIFAR-10 binary folder or file, or an image folder.
        data: PathBuf,
        #[arg(long, default_value = "auto")]
        engine: EngineChoice,
        /// Evaluate on the training split instead of the test split.
        #[arg(long)]
        train_split: bool,
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
    /// Run the test set through each engine and compare with the trainer's predictions
    /// (`<model>.burn.json`); writes `<model>.verify.json`.
    Verify {
        model: PathBuf,
        /// The data set the trainer's predictions were made on (default: the one they name).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
    /// Print what a model file says about itself.
    Info { model: PathBuf },
    /// Fetch the ONNX Runtime shared library through pip into the project folder.
    FetchOrt {
        /// Folder to put it in (default: runtime/onnxruntime/ of this project).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn load(model: &Path, engine: EngineChoice) -> anyhow::Result<Classifier> {
    let classifier = Classifier::builder()
        .engine(engine)
        .build_from_file(model)?;
    if let Some(why) = classifier.fallback_reason() {
        eprintln!("{why}");
    }
    eprintln!(
        "engine: {} (provider {})",
        classifier.engine_name(),
        classifier.provider()
    );
    Ok(classifier)
}

/// Image files under `path` (itself when a file), sorted, without following symlinked folders.
fn collect_images(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() && !path.is_symlink() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return;
            }
        };
        entries.sort();
        for entry in entries {
            collect_images(&entry, out);
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify {
            model,
            paths,
            engine,
            top_k,
        } => {
            let mut classifier = load(&model, engine)?;
            let mut files = Vec::new();
            for p in &paths {
                collect_images(p, &mut files);
            }
            let mut failed = 0;
            for file in &files {
                match classifier.classify_file(file) {
                    Ok(p) => {
                        let mut ranked: Vec<(usize, f32)> =
                            p.probabilities.iter().copied().enumerate().collect();
                        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                        let names = classifier.info().classes.clone().unwrap_or_default();
                        let top: Vec<String> = ranked
                            .iter()
                            .take(top_k.max(1))
                            .map(|&(i, prob)| {
                                let name = names.get(i).cloned().unwrap_or_else(|| i.to_string());
                                format!("{name} {:.2} %", 100.0 * prob)
                            })
                            .collect();
                        println!("{}\t{}", file.display(), top.join(", "));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e}");
                    }
                }
            }
            eprintln!("{} classified, {failed} failed", files.len() - failed);
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Command::Evaluate {
            model,
            data,
            engine,
            train_split,
            batch,
        } => {
            let mut classifier = load(&model, engine)?;
            let split = if train_split {
                CifarSplit::Train
            } else {
                CifarSplit::Test
            };
            let (set, report) =
                runtime::data::load(&data, split, classifier.input_config().height)?;
            for (file, reason) in &report.skipped {
                eprintln!("skipped {}: {reason}", file.display());
            }
            let eval = runtime::verify::evaluate(&mut classifier, &set, batch)?;
            print!("{}", eval.report());
        }
        Command::Verify { model, data, batch } => {
            let reference_path = ReferencePredictions::path_for(&model);
            let reference = ReferencePredictions::load(&reference_path)?;
            let data = data.unwrap_or_else(|| reference.data.clone());
            let side = runtime::ModelInfo::from_bytes(
                &std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?,
                &model,
            )?
            .input_config
            .map_or(32, |c| c.height);
            let (set, _) = runtime::data::load(&data, CifarSplit::Test, side)?;
            let report = runtime::verify::verify(
                &model,
                &set,
                &reference,
                &[EngineChoice::Ort, EngineChoice::Tract],
                batch,
            )?;
            let path = VerifyReport::path_for(&model);
            runtime::write_atomic(&path, &serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{}", report.table());
            println!("wrote {}", path.display());
        }
        Command::Info { model } => {
            let bytes =
                std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let info = runtime::ModelInfo::from_bytes(&bytes, &model)?;
            println!("input  {} {:?}", info.input.name, info.input.shape);
            println!("output {} {:?}", info.output.name, info.output.shape);
            let mut keys: Vec<_> = info.metadata.iter().collect();
            keys.sort();
            for (k, v) in keys {
                println!("{k}: {v}");
            }
        }
        Command::FetchOrt { dir } => {
            let path = runtime::ort_library::fetch(dir.as_deref()).map_err(anyhow::Error::msg)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
