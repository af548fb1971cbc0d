//! The runtime's command line: classify images, evaluate on a labelled set, verify engines.
//!
//! Steps to run:
//! 1. `cargo run --release -p runtime -- fetch-ort` (once; fetches ONNX Runtime through pip).
//! 2. `cargo run --release -p runtime -- classify models/cnn.onnx some/images/`
//! 3. `cargo run --release -p runtime -- evaluate models/cnn.onnx data/standin`

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use runtime::batch::{self, classify_files, collect_files, BatchOptions, Shard};
use runtime::data::CifarSplit;
use runtime::quantize::{Calibration, KeepFloat, Method, QuantizeOptions, Variant};
use runtime::result_rows::{header, row, Format, RowContext};
use runtime::verify::TestImages;
use runtime::{ChannelOrder, InputOverrides, Layout};
use runtime::{Classifier, EngineChoice, Provider};
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
    /// Classify image files, or every image under folders (recursively).
    ///
    /// Exit status: 0 when every file was classified, 1 when any failed (each is reported).
    Classify(ClassifyArgs),
    /// Write a Triton Inference Server model repository entry for an ONNX file:
    /// `REPO/<name>/config.pbtxt`, `REPO/<name>/1/model.onnx` and `labels.txt` from its classes.
    TritonRepo {
        /// The ONNX model.
        model: PathBuf,
        /// The repository folder (Triton's `--model-repository`).
        repo: PathBuf,
        /// The model's name in the repository (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// The largest batch Triton forms (0: no batching).
        #[arg(long, default_value_t = runtime::triton::TritonOptions::default().max_batch_size)]
        max_batch_size: usize,
        /// Let Triton batch single requests, waiting at most this many microseconds.
        #[arg(long, value_name = "MICROSECONDS")]
        dynamic_batching: Option<u64>,
    },
    /// Accuracy, per-class accuracy and confusion matrix on a labelled set.
    Evaluate {
        /// The ONNX model.
        model: PathBuf,
        /// A CIFAR-10 binary folder or file, or an image folder.
        data: PathBuf,
        #[arg(long, default_value = "auto")]
        engine: EngineChoice,
        #[command(flatten)]
        providers: ProviderArgs,
        /// Evaluate on the training split instead of the test split.
        #[arg(long)]
        train_split: bool,
        #[arg(long, default_value_t = 256, value_parser = batch_size)]
        batch: usize,
    },
    /// Run the test set through each engine and compare with the trainer's predictions
    /// (`<model>.burn.json`, or for a quantized variant the float32 file's); writes
    /// `<model>.verify.json`. Exits non-zero when an engine does not run or disagrees with them
    /// beyond the tolerance (a variant's own: see docs/quantization.md).
    Verify {
        /// The exported model; its `<name>.burn.json` must lie beside it.
        model: PathBuf,
        /// The data set the trainer's predictions were made on (default: the one they name).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        providers: ProviderArgs,
        #[arg(long, default_value_t = 256, value_parser = batch_size)]
        batch: usize,
        /// Largest probability difference from the trainer's that still counts as agreement
        /// (every image's top-1 class must agree as well).
        #[arg(long, default_value_t = runtime::verify::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// The engines to run, comma-separated (ort, tract).
        #[arg(long, value_delimiter = ',', default_value = "ort,tract")]
        engines: Vec<EngineChoice>,
    },
    /// Time the model on generated inputs: images/s per batch size (median of the runs, after
    /// one warm-up run), and the process's peak memory.
    Bench {
        /// The ONNX model.
        model: PathBuf,
        /// ort or tract (auto: ONNX Runtime, else tract).
        #[arg(long, default_value = "auto")]
        engine: EngineChoice,
        #[command(flatten)]
        providers: ProviderArgs,
        /// Batch sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,32,256", value_parser = batch_size)]
        batch: Vec<usize>,
        /// Timed runs per batch size.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Threads the engine may use (default: the engine's own choice, all cores).
        #[arg(long, value_parser = thread_count)]
        threads: Option<usize>,
        /// table or jsonl.
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Write smaller variants of a float32 model beside it (`<name>.<variant>.onnx`): int8
    /// weights (about 4x smaller, runs wherever the model runs), int8 static (QDQ: integer
    /// kernels in ONNX Runtime, activations calibrated on training images) or float16 weights
    /// (2x smaller). The model file itself is only read.
    Quantize(QuantizeArgs),
    /// Print what a model file says about itself.
    Info {
        /// The ONNX model.
        model: PathBuf,
    },
    /// Fetch the ONNX Runtime shared library through pip into the project folder.
    FetchOrt {
        /// Folder to put it in (default: runtime/onnxruntime/ of this project).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ClassifyArgs {
    /// The ONNX model.
    model: PathBuf,
    /// Image files, and folders to walk for images.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// auto (ONNX Runtime, else tract), ort or tract.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    #[command(flatten)]
    providers: ProviderArgs,
    /// Classes to show per image.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Images per model run.
    #[arg(long, default_value_t = 32, value_parser = batch_size)]
    batch: usize,
    /// Threads decoding images (default: all cores).
    #[arg(long, value_parser = thread_count)]
    threads: Option<usize>,
    /// table, csv or jsonl.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Write the results to this file (atomically: complete or not at all) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Only shard K of N (`K/N`, K from 1): a contiguous share of the files in path order, the
    /// same on every machine; the outputs of shards 1 to N, concatenated, are the unsharded
    /// run's (only shard 1 writes the header).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    #[command(flatten)]
    input: InputArgs,
}

#[derive(Args)]
struct QuantizeArgs {
    /// The float32 ONNX model.
    model: PathBuf,
    /// Variants to write, comma-separated: int8-weights, int8-static, fp16, or all.
    #[arg(long, value_delimiter = ',', default_value = "int8-weights")]
    variant: Vec<String>,
    /// Training images to calibrate int8-static on: a CIFAR-10 folder or file, or an image
    /// folder (its `train/` part where it has one).
    #[arg(long, value_name = "DATA")]
    calibration: Option<PathBuf>,
    /// How many calibration images, spread evenly over the set.
    #[arg(long, default_value_t = runtime::quantize::DEFAULT_CALIBRATION_IMAGES)]
    calibration_images: usize,
    /// How activation ranges are chosen: mse (least quantization error), minmax, percentile or
    /// percentile-P.
    #[arg(long, default_value_t = runtime::quantize::DEFAULT_METHOD)]
    calibration_method: Method,
    /// Conv, Gemm and MatMul nodes int8-static leaves in float, comma-separated node names;
    /// `first` and `last` name the first and last such nodes, `none` quantizes them all
    /// (default: last).
    #[arg(long, value_delimiter = ',')]
    keep_float: Option<Vec<String>>,
    /// The engine that runs calibration: auto (ONNX Runtime, else tract), ort or tract.
    #[arg(long, default_value = "auto")]
    engine: EngineChoice,
    /// Write to this file instead of beside the model (one variant only).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
}

fn quantize(args: &QuantizeArgs) -> anyhow::Result<()> {
    let variants =
        Variant::parse_list(&args.variant).map_err(|e| anyhow::anyhow!("--variant: {e}"))?;
    if variants.is_empty() {
        anyhow::bail!("--variant names no variant: nothing to write");
    }
    if args.output.is_some() && variants.len() > 1 {
        anyhow::bail!("--output names one file: ask for one variant");
    }
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let info = runtime::ModelInfo::from_bytes(&bytes, &args.model)?;
    let calibration = match (&args.calibration, variants.contains(&Variant::Int8Static)) {
        (Some(data), true) => {
            let side = info
                .input_config
                .as_ref()
                .map_or(runtime::data::CIFAR_SIDE, |c| c.height);
            let (set, report) = runtime::data::load(data, CifarSplit::Train, side)?;
            for (file, reason) in &report.skipped {
                eprintln!("skipped {}: {reason}", file.display());
            }
            Some((set, data.clone()))
        }
        _ => None,
    };
    // Looked for once: the search may ask a Python interpreter.
    let ort_library = runtime::ort_library::locate().ok();
    for variant in variants {
        let mut options = QuantizeOptions::new(variant);
        options.overrides = args.input.overrides();
        if let Some(names) = &args.keep_float {
            options.keep_float = KeepFloat::parse(names);
        }
        options.engine = args.engine;
        options.ort_library = ort_library.clone();
        options.calibration = calibration.as_ref().map(|(set, name)| Calibration {
            set,
            name: name.clone(),
            images: args.calibration_images,
            method: args.calibration_method,
        });
        let made = runtime::quantize::quantize(&bytes, &args.model, &options)?;
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| variant.path_for(&args.model));
        runtime::write_atomic(&path, &made.bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} ({}: {:.2} MB, {:.1}x smaller than {}): {}",
            path.display(),
            variant,
            made.bytes.len() as f64 / 1e6,
            bytes.len() as f64 / made.bytes.len() as f64,
            args.model.display(),
            made.summary
        );
    }
    Ok(())
}

/// ONNX Runtime's execution providers.
#[derive(Args, Debug, Clone)]
struct ProviderArgs {
    /// ONNX Runtime execution providers in order of preference: cuda, tensorrt, cpu
    /// (comma-separated). The first that really runs the model is used and reported; leave out
    /// cpu to make a GPU mandatory. Default: cuda,cpu.
    #[arg(long = "provider", value_delimiter = ',', default_value = "cuda,cpu")]
    list: Vec<Provider>,
}

/// Preprocessing for models that carry none in their metadata (or to override it).
#[derive(Args, Clone, Default)]
struct InputArgs {
    /// Input size: `N` or `HxW`.
    #[arg(long, value_parser = InputOverrides::parse_size)]
    size: Option<(usize, usize)>,
    /// Input layout: nchw or nhwc.
    #[arg(long)]
    layout: Option<Layout>,
    /// Multiplier for 0..255 pixel values (e.g. 0.00392157 for 1/255).
    #[arg(long)]
    scale: Option<f32>,
    /// Per-channel means, `r,g,b` (in the model's channel order), subtracted after scaling.
    #[arg(long, value_parser = InputOverrides::parse_triple)]
    mean: Option<[f32; 3]>,
    /// Per-channel standard deviations, `r,g,b`.
    #[arg(long, value_parser = InputOverrides::parse_triple)]
    std: Option<[f32; 3]>,
    /// Feed channels in BGR order.
    #[arg(long)]
    bgr: bool,
}

impl InputArgs {
    fn overrides(&self) -> InputOverrides {
        InputOverrides {
            size: self.size,
            layout: self.layout,
            scale: self.scale,
            mean: self.mean,
            std: self.std,
            channel_order: self.bgr.then_some(ChannelOrder::Bgr),
        }
    }
}

/// `--batch`: images per model run, from 1 to [`batch::MAX_BATCH`].
fn batch_size(s: &str) -> Result<usize, String> {
    let n = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    batch::check_count("a batch", n, batch::MAX_BATCH)
}

/// `--threads`: from 1 to [`batch::MAX_THREADS`].
fn thread_count(s: &str) -> Result<usize, String> {
    let n = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    batch::check_count("threads", n, batch::MAX_THREADS)
}

fn load(
    model: &Path,
    engine: EngineChoice,
    providers: &ProviderArgs,
    input: &InputArgs,
    threads: Option<usize>,
    spin_wait: bool,
) -> anyhow::Result<Classifier> {
    let mut builder = Classifier::builder()
        .engine(engine)
        .providers(providers.list.clone())
        .spin_wait(spin_wait);
    // The CLI also finds ONNX Runtime in the project's copy and a Python package.
    if let Ok(library) = runtime::ort_library::locate() {
        builder = builder.ort_library(library);
    }
    if let Some(n) = threads {
        builder = builder.threads(n);
    }
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let builder = builder.input_overrides(input.overrides());
    let classifier = builder.build_from_bytes(&bytes, model)?;
    if let Some(why) = classifier.fallback_reason() {
        eprintln!("{why}");
    }
    let variant = classifier
        .info()
        .metadata
        .get(runtime::metadata_keys::QUANTIZATION_VARIANT);
    let variant = match (variant.map(String::as_str), classifier.engine_name()) {
        (None, _) => String::new(),
        // tract has no integer convolution: it computes the quantized graph in float.
        (Some(v @ "int8-static"), "tract") => format!(", variant {v} (computed in float by tract)"),
        (Some(v), _) => format!(", variant {v}"),
    };
    eprintln!(
        "engine: {} (provider {}){variant}",
        classifier.engine_name(),
        classifier.provider()
    );
    Ok(classifier)
}

/// [`load`] with the model's own preprocessing, for runs that have the cores to themselves.
fn load_as_is(
    model: &Path,
    engine: EngineChoice,
    providers: &ProviderArgs,
    threads: Option<usize>,
) -> anyhow::Result<Classifier> {
    load(
        model,
        engine,
        providers,
        &InputArgs::default(),
        threads,
        true,
    )
}

fn classify(args: &ClassifyArgs) -> anyhow::Result<bool> {
    let mut options = BatchOptions {
        batch: args.batch,
        ..BatchOptions::default()
    };
    if let Some(n) = args.threads {
        options.decode_threads = n.max(1);
    }
    let (format, output, top_k) = (args.format, args.output.as_deref(), args.top_k);
    // Decoding threads share the cores with the model: ONNX Runtime's threads sleep between runs.
    let mut classifier = load(
        &args.model,
        args.engine,
        &args.providers,
        &args.input,
        None,
        false,
    )?;
    let list = collect_files(&args.paths);
    let list = match args.shard {
        Some(shard) => list.shard(shard),
        None => list,
    };
    let first = args.shard.is_none_or(|shard| shard.is_first());
    let ctx = RowContext {
        classes: classifier.info().classes.clone().unwrap_or_default(),
        top_k,
        engine: classifier.engine_name().to_string(),
        provider: classifier.provider(),
    };
    let total = list.files.len() + list.errors.len();
    let bar = ProgressBar::new(list.files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files {per_sec} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // With --output the rows are kept and written at the end in one atomic step; on stdout
    // they stream.
    let mut kept = String::new();
    let mut out = |line: String| {
        if output.is_some() {
            kept.push_str(&line);
            kept.push('\n');
        } else {
            bar.suspend(|| println!("{line}"));
        }
    };
    if let Some(h) = header(format, &ctx).filter(|_| first) {
        out(h);
    }
    let mut failed = 0;
    for outcome in &list.errors {
        failed += 1;
        out(row(format, outcome, &ctx));
    }
    classify_files(&mut classifier, &list.files, options, |outcome| {
        if outcome.result.is_err() {
            failed += 1;
        }
        bar.inc(1);
        out(row(format, &outcome, &ctx));
    });
    bar.finish_and_clear();
    if let Some(path) = output {
        runtime::write_atomic(path, kept.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "{} files: {} classified, {failed} failed{}",
        total,
        total - failed,
        if list.skipped > 0 {
            format!(
                ", {} files in folders skipped (not image names)",
                list.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(failed == 0)
}

/// The input the benchmarks feed, the same in every engine and in the Python peer
/// (`tests/bench/peers.py`): a fixed pattern in `[-1, 1)`, no randomness to seed.
fn bench(
    classifier: &mut Classifier,
    batches: &[usize],
    runs: usize,
    format: Format,
) -> anyhow::Result<()> {
    let timings = runtime::bench::time_batches(classifier, batches, runs)?;
    let (engine, provider) = (classifier.engine_name(), classifier.provider());
    let peak_rss_mib = runtime::bench::peak_rss_kib().map(|k| k as f64 / 1024.0);
    match format {
        Format::Jsonl => {
            for t in timings {
                let row = serde_json::json!({
                    "engine": engine,
                    "provider": provider,
                    "batch": t.batch,
                    "runs": t.runs,
                    "median_seconds": t.median_seconds,
                    "images_per_second": t.images_per_second(),
                    "peak_rss_mib": peak_rss_mib,
                });
                println!("{row}");
            }
        }
        _ => {
            println!("| engine | batch | median ms | images/s |");
            println!("|---|---|---|---|");
            for t in timings {
                println!(
                    "| {engine} ({provider}) | {} | {:.3} | {:.1} |",
                    t.batch,
                    1e3 * t.median_seconds,
                    t.images_per_second()
                );
            }
            if let Some(mib) = peak_rss_mib {
                println!("peak memory (RSS): {mib:.1} MiB");
            }
        }
    }
    Ok(())
}

// Over 80 lines: one short arm per subcommand, each mapping its flags onto library calls.
fn main() -> anyhow::Result<()> {
    std::panic::set_hook(runtime::panic_hook(std::panic::take_hook()));
    let cli = Cli::parse();
    match cli.command {
        Command::Classify(args) => {
            if !classify(&args)? {
                std::process::exit(1);
            }
        }
        Command::Evaluate {
            model,
            data,
            engine,
            providers,
            train_split,
            batch,
        } => {
            let mut classifier = load_as_is(&model, engine, &providers, None)?;
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
        Command::Verify {
            model,
            data,
            providers,
            batch,
            tolerance,
            engines,
        } => {
            let report = runtime::verify::verify_model(
                &model,
                TestImages::Read(data.as_deref()),
                &engines,
                &providers.list,
                batch,
            )?;
            let path = report.save()?;
            println!("{}", report.table());
            println!("wrote {}", path.display());
            let problems = report.problems(tolerance);
            if !problems.is_empty() {
                anyhow::bail!("verification failed: {}", problems.join("; "));
            }
        }
        Command::Bench {
            model,
            engine,
            providers,
            batch,
            runs,
            threads,
            format,
        } => {
            let mut classifier = load_as_is(&model, engine, &providers, threads)?;
            bench(&mut classifier, &batch, runs, format)?;
        }
        Command::TritonRepo {
            model,
            repo,
            name,
            max_batch_size,
            dynamic_batching,
        } => {
            let options = runtime::triton::TritonOptions {
                name,
                max_batch_size,
                dynamic_batching,
            };
            let made = runtime::triton::write_repository(&model, &repo, &options)?;
            print!("{}", made.config);
            eprintln!("wrote {}", made.dir.display());
        }
        Command::Info { model } => {
            let bytes =
                std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let info = runtime::ModelInfo::from_bytes(&bytes, &model)?;
            println!("input  {} {}", info.input.name, info.input.shape_text());
            println!("output {} {}", info.output.name, info.output.shape_text());
            let mut keys: Vec<_> = info.metadata.iter().collect();
            keys.sort();
            for (k, v) in keys {
                println!("{k}: {v}");
            }
        }
        Command::Quantize(args) => quantize(&args)?,
        Command::FetchOrt { dir } => {
            let path = runtime::ort_library::fetch(dir.as_deref())?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
