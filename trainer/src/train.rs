//! The training loop: batches, optimiser steps, per-epoch evaluation, history and curves.

use crate::backend::TrainBackend;
use crate::model::cnn::{Cnn, CnnConfig};
use crate::ops::Kernels;
use crate::progress::Progress;
use crate::rng::Rng;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, RmsPropConfig, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use runtime::data::Dataset;
use runtime::InputConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The optimiser and its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optim {
    /// RMSprop without momentum. `rho` is Keras' moving-average factor. Burn adds `epsilon`
    /// outside the square root, Keras inside: 1e-7 inside is about 3e-4 outside.
    RmsProp { rho: f32, epsilon: f32 },
    /// SGD with (undampened, Keras-style) momentum.
    Sgd { momentum: f64 },
}

/// Optimiser and schedule; the defaults are the article's CNN settings (RMSprop 1e-4, batch 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: Optim,
    pub seed: u64,
    /// Batch size used for evaluation (no effect on results).
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 100,
            learning_rate: 1e-4,
            optimizer: Optim::RmsProp {
                rho: 0.9,
                epsilon: 3e-4,
            },
            seed: 42,
            eval_batch_size: 500,
        }
    }
}

impl TrainConfig {
    /// The article's VGG16 settings: SGD 1e-4 with momentum 0.9, batch 32, 3 epochs.
    pub fn vgg16() -> Self {
        TrainConfig {
            epochs: 3,
            batch_size: 32,
            learning_rate: 1e-4,
            optimizer: Optim::Sgd { momentum: 0.9 },
            ..TrainConfig::default()
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Everything a training run produced besides the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// The model's configuration, as the model records it.
    pub model: serde_json::Value,
    pub train: TrainConfig,
    pub device: String,
    pub train_images: usize,
    pub test_images: usize,
    /// Seconds spent before the first epoch (e.g. computing the frozen-feature cache).
    #[serde(default)]
    pub setup_seconds: f64,
    pub epochs: Vec<EpochRecord>,
    /// What the user should know about the data (e.g. the test set is the training set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A trained model on the inner (non-autodiff) backend, its history and its test-set logits.
pub struct Trained<M> {
    pub model: M,
    pub history: History,
    /// `test images x classes` logits of the final model.
    pub test_logits: Vec<f32>,
}

pub use crate::model::Logits;

/// What the training loop needs besides the model and the optimiser.
pub struct Fit<'a, B: Backend, M> {
    pub device: &'a B::Device,
    pub config: &'a TrainConfig,
    pub train_labels: &'a [u8],
    pub test_labels: &'a [u8],
    pub classes: usize,
    /// The input tensor of the training samples with these indices.
    pub batch: &'a dyn Fn(&[usize]) -> Tensor<B, 4>,
    /// Test-set logits of a model.
    pub evaluate: &'a dyn Fn(&M) -> Vec<f32>,
    pub show_progress: bool,
}

/// Builds the `[n, 3, height, width]` input tensor of planar images, preprocessed as `config`
/// says (its layout must be NCHW).
pub fn images_tensor<B: Backend>(
    planar: &[u8],
    config: &InputConfig,
    device: &B::Device,
) -> Tensor<B, 4> {
    let n = planar.len() / (3 * config.height * config.width);
    let values = config.tensor_from_planar(planar);
    Tensor::from_data(
        TensorData::new(values, [n, 3, config.height, config.width]),
        device,
    )
}

/// The images of `set` at `indices` as one preprocessed input tensor.
pub fn images_of<B: Backend>(
    set: &Dataset,
    indices: &[usize],
    input: &InputConfig,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut pixels = Vec::with_capacity(indices.len() * set.image_len());
    for &i in indices {
        pixels.extend_from_slice(set.image(i));
    }
    images_tensor::<B>(&pixels, input, device)
}

/// Logits of `model` on every image of `set`, in batches.
pub fn predict<B: Kernels>(
    model: &Cnn<B>,
    set: &Dataset,
    batch: usize,
    device: &B::Device,
) -> Vec<f32> {
    let input = InputConfig::unit_rgb(set.side);
    in_batches(set.len(), batch, |chunk| {
        model.forward(images_of::<B>(set, chunk, &input, device))
    })
}

/// What `run` gives for the samples `0..len`, asked for in batches of `batch` indices, read back
/// and concatenated in order.
pub fn in_batches<B: Backend, const D: usize>(
    len: usize,
    batch: usize,
    mut run: impl FnMut(&[usize]) -> Tensor<B, D>,
) -> Vec<f32> {
    let indices: Vec<usize> = (0..len).collect();
    let mut values = Vec::new();
    for chunk in indices.chunks(batch.max(1)) {
        values.extend(run(chunk).into_data().iter::<f32>());
    }
    values
}

/// Mean cross-entropy and accuracy of `logits` against `labels`.
pub fn loss_and_accuracy(logits: &[f32], labels: &[u8], classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row
            .iter()
            .map(|&v| f64::from(v - max).exp())
            .sum::<f64>()
            .ln();
        loss += log_sum - f64::from(row[usize::from(label)] - max);
        if runtime::preprocess::argmax(row) == usize::from(label) {
            correct += 1;
        }
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Burn's CPU backend draws from one process-wide generator; two runs interleaving their draws
/// would each lose reproducibility, so runs in one process take turns: hold this while training.
pub fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Trains `model` with the optimiser the configuration names, appending each epoch to `history`.
/// Returns the trained model, ready for inference, and its test-set logits (the last epoch's
/// evaluation; after no epoch at all, an evaluation of the untrained model).
pub fn fit<B, M>(
    model: M,
    fit: &Fit<B, M::InnerModule>,
    history: &mut History,
) -> (M::InnerModule, Vec<f32>)
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Logits<B>,
{
    match fit.config.optimizer {
        Optim::RmsProp { rho, epsilon } => {
            let optim = RmsPropConfig::new()
                .with_alpha(rho)
                .with_epsilon(epsilon)
                .with_momentum(0.0)
                .init::<B, M>();
            fit_with(model, optim, fit, history)
        }
        Optim::Sgd { momentum } => {
            let momentum = (momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
            });
            let optim = SgdConfig::new().with_momentum(momentum).init::<B, M>();
            fit_with(model, optim, fit, history)
        }
    }
}

fn fit_with<B, M, O>(
    mut model: M,
    mut optim: O,
    fit: &Fit<B, M::InnerModule>,
    history: &mut History,
) -> (M::InnerModule, Vec<f32>)
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Logits<B>,
    O: Optimizer<M, B>,
{
    let config = fit.config;
    let loss_fn = CrossEntropyLossConfig::new().init(fit.device);
    let mut rng = Rng::new(config.seed);
    let mut order: Vec<usize> = (0..fit.train_labels.len()).collect();
    let steps = order.len().div_ceil(config.batch_size);
    let mut test_logits = None;
    for epoch in 1..=config.epochs {
        let start = Instant::now();
        rng.shuffle(&mut order);
        let mut progress = Progress::new(
            fit.show_progress,
            format!("epoch {epoch}/{}", config.epochs),
            steps as u64,
            "batches",
        );
        // The running sums stay on the device: reading them every batch would make the host wait
        // for the GPU each step. They are read when the progress shows them and once an epoch.
        let zero = || Tensor::<B::InnerBackend, 1>::zeros([1], fit.device);
        let (mut loss_sum, mut correct, mut seen) = (zero(), zero(), 0usize);
        let read = |sum: &Tensor<B::InnerBackend, 1>, seen: usize| {
            sum.clone().into_scalar().elem::<f64>() / seen.max(1) as f64
        };
        for batch in order.chunks(config.batch_size) {
            let labels: Vec<i64> = batch
                .iter()
                .map(|&i| i64::from(fit.train_labels[i]))
                .collect();
            let x = (fit.batch)(batch);
            let y =
                Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch.len()]), fit.device);
            let logits = model.logits(x);
            let hits = logits
                .clone()
                .inner()
                .argmax(1)
                .equal(y.clone().inner().reshape([batch.len(), 1]))
                .float()
                .sum();
            let loss = loss_fn.forward(logits, y);
            loss_sum = loss_sum + loss.clone().inner().mul_scalar(batch.len() as f32);
            correct = correct + hits;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
            seen += batch.len();
            progress.advance(1, || {
                format!(
                    "loss {:.4} acc {:.1} %",
                    read(&loss_sum, seen),
                    100.0 * read(&correct, seen)
                )
            });
        }
        progress.finish();
        let (train_loss, train_accuracy) = (read(&loss_sum, seen), read(&correct, seen));
        // Whatever is still queued on the device belongs to this epoch's time.
        let _ = B::sync(fit.device);
        let train_seconds = start.elapsed().as_secs_f64();
        let logits = (fit.evaluate)(&model.valid());
        let (val_loss, val_accuracy) = loss_and_accuracy(&logits, fit.test_labels, fit.classes);
        let record = EpochRecord {
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds.max(1e-9),
        };
        if fit.show_progress {
            eprintln!(
                "epoch {epoch}/{}: loss {:.4} acc {:.2} % | val_loss {:.4} val_acc {:.2} % | {:.1} s ({:.0} images/s)",
                config.epochs,
                record.train_loss,
                100.0 * record.train_accuracy,
                record.val_loss,
                100.0 * record.val_accuracy,
                record.seconds,
                record.images_per_second
            );
        }
        history.epochs.push(record);
        test_logits = Some(logits);
    }
    let model = model.valid();
    let test_logits = test_logits.unwrap_or_else(|| (fit.evaluate)(&model));
    (model, test_logits)
}

/// Checks what every training run needs.
pub fn check_sets(train: &Dataset, test: &Dataset, config: &TrainConfig) -> anyhow::Result<()> {
    anyhow::ensure!(!train.is_empty(), "the training set is empty");
    anyhow::ensure!(!test.is_empty(), "the test set is empty");
    anyhow::ensure!(config.batch_size > 0, "the batch size must be at least 1");
    anyhow::ensure!(
        config.eval_batch_size > 0,
        "the evaluation batch size must be at least 1"
    );
    Ok(())
}

/// Trains the CNN on `train`, evaluating on `test` after each epoch.
pub fn train_cnn<B: TrainBackend>(
    device: &B::Device,
    device_name: &str,
    train: &Dataset,
    test: &Dataset,
    model_config: &CnnConfig,
    config: &TrainConfig,
    show_progress: bool,
) -> anyhow::Result<Trained<Cnn<B::InnerBackend>>> {
    check_sets(train, test, config)?;
    anyhow::ensure!(
        train.side == model_config.side && test.side == model_config.side,
        "the model takes {0}x{0} images but the data holds {1}x{1}",
        model_config.side,
        train.side
    );
    let _turn = take_turn();
    B::seed(device, config.seed);
    let model: Cnn<B> = model_config.init(device);
    let mut history = History {
        model: serde_json::to_value(model_config)?,
        train: config.clone(),
        device: device_name.to_string(),
        train_images: train.len(),
        test_images: test.len(),
        setup_seconds: 0.0,
        epochs: Vec::new(),
        warnings: Vec::new(),
    };
    let input = InputConfig::unit_rgb(train.side);
    let batch = |indices: &[usize]| images_of::<B>(train, indices, &input, device);
    let evaluate = |m: &Cnn<B::InnerBackend>| predict(m, test, config.eval_batch_size, device);
    let (model, test_logits) = fit(
        model,
        &Fit {
            device,
            config,
            train_labels: &train.labels,
            test_labels: &test.labels,
            classes: test.classes.len(),
            batch: &batch,
            evaluate: &evaluate,
            show_progress,
        },
        &mut history,
    );
    Ok(Trained {
        model,
        history,
        test_logits,
    })
}

/// A Keras-style `model.summary()` table.
/// `frozen` of the parameters are not trained.
pub fn format_summary(name: &str, rows: &[(String, String, usize)], frozen: usize) -> String {
    let total: usize = rows.iter().map(|r| r.2).sum();
    let mut s = format!("Model: \"{name}\"\n");
    let line = "_".repeat(72);
    s += &format!(
        "{line}\n{:<34}{:<24}{:>14}\n{}\n",
        "Layer",
        "Output shape",
        "Param #",
        "=".repeat(72)
    );
    for (layer, shape, params) in rows {
        s += &format!("{layer:<34}{shape:<24}{params:>14}\n");
    }
    s += &format!(
        "{}\nTotal params: {total}\nTrainable params: {}\nNon-trainable params: {frozen}\n{line}\n",
        "=".repeat(72),
        total.saturating_sub(frozen)
    );
    s
}

/// Saves the history as pretty JSON, atomically.
pub fn save_history(history: &History, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::files::write_file(path, &json)
}
