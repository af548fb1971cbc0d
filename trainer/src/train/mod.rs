//! The training loop: batches, optimiser steps, per-epoch evaluation, history, checkpoints and
//! resume, early stopping; the CNN's training here, VGG16's (with its frozen-feature cache) in
//! [`vgg16`].

mod config;
mod history;
mod run;
pub mod vgg16;

pub use config::*;
pub use history::*;
pub use run::fit;

use crate::checkpoint::{self, Checkpoints, Position};
use crate::device::TrainBackend;
use crate::error::{positive, rate, ConfigError};
use crate::error::{CheckpointError, Error, Result};
use crate::model::cnn::{Cnn, CnnConfig};
use crate::ops::{self, Kernels};
use crate::progress::Progress;
use crate::rng::Rng;
use burn::module::AutodiffModule;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use runtime::data::Dataset;
use runtime::InputConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use crate::error::Stopped;

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
    pub num_classes: usize,
    /// The input tensor of the training samples with these indices.
    pub batch: &'a dyn Fn(&[usize]) -> Tensor<B, 4>,
    /// Test-set logits of a model.
    pub evaluate: &'a dyn Fn(&M) -> Vec<f32>,
    /// Fingerprint of the training and test data (a checkpoint of other data is not resumed).
    pub data: String,
    /// Progress, checkpoints and stopping.
    pub control: &'a Control,
}

impl<'a, B: Backend, M> Fit<'a, B, M> {
    /// A run on the `(train, test)` data sets: their labels, class count and fingerprint, with
    /// `batch` and `evaluate` giving the model's inputs and the test-set logits.
    pub fn on_sets(
        device: &'a B::Device,
        config: &'a TrainConfig,
        (train, test): (&'a Dataset, &'a Dataset),
        batch: &'a dyn Fn(&[usize]) -> Tensor<B, 4>,
        evaluate: &'a dyn Fn(&M) -> Vec<f32>,
        control: &'a Control,
    ) -> Self {
        Fit {
            device,
            config,
            train_labels: &train.labels,
            test_labels: &test.labels,
            num_classes: test.classes.len(),
            batch,
            evaluate,
            data: data_fingerprint(train, test),
            control,
        }
    }
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
pub fn loss_and_accuracy(logits: &[f32], labels: &[u8], num_classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0;
    for (row, &label) in logits.chunks_exact(num_classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row
            .iter()
            .map(|&v| f64::from(v - max).exp())
            .sum::<f64>()
            .ln();
        loss += log_sum - f64::from(row[usize::from(label)] - max);
        if runtime::scores::argmax(row) == usize::from(label) {
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

/// Checks what every training run needs: its settings, and data in both sets.
pub fn check_sets(train: &Dataset, test: &Dataset, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    if train.is_empty() {
        return Err(Error::Data("the training set is empty".into()));
    }
    if test.is_empty() {
        return Err(Error::Data("the test set is empty".into()));
    }
    Ok(())
}

/// The fingerprint of a run's data, as its checkpoints record it.
pub fn data_fingerprint(train: &Dataset, test: &Dataset) -> String {
    format!("train {}, test {}", train.fingerprint(), test.fingerprint())
}

/// Trains the CNN on `train`, evaluating on `test` after each epoch.
pub fn train_cnn<B: TrainBackend>(
    device: &B::Device,
    device_name: &str,
    train: &Dataset,
    test: &Dataset,
    model_config: &CnnConfig,
    config: &TrainConfig,
    control: &Control,
) -> Result<Trained<Cnn<B::InnerBackend>>> {
    check_sets(train, test, config)?;
    model_config.validate()?;
    if train.side != model_config.side || test.side != model_config.side {
        return Err(Error::Data(format!(
            "the model takes {0}x{0} images but the data holds {1}x{1}",
            model_config.side, train.side
        )));
    }
    let _turn = take_turn();
    B::seed(device, config.seed);
    let model: Cnn<B> = model_config.init(device);
    let mut history = History {
        train_images: train.len(),
        test_images: test.len(),
        ..History::new(serde_json::to_value(model_config)?, config, device_name)
    };
    let input = InputConfig::unit_rgb(train.side);
    let batch = |indices: &[usize]| images_of::<B>(train, indices, &input, device);
    let evaluate = |m: &Cnn<B::InnerBackend>| predict(m, test, config.eval_batch_size, device);
    let run = Fit::on_sets(device, config, (train, test), &batch, &evaluate, control);
    let (model, test_logits) = fit(model, &run, &mut history)?;
    Ok(Trained {
        model,
        history,
        test_logits,
    })
}
