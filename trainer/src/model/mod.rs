//! The networks the trainer builds.

pub mod cnn;
pub mod vgg16;

use crate::ops::Kernels;
use burn::prelude::*;

/// A network the training loop can train: inputs (images or cached features) to logits.
pub trait Logits<B: Backend> {
    /// `[N, ...]` inputs to `[N, classes]` logits.
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 2>;
}

impl<B: Kernels> Logits<B> for cnn::Cnn<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(x)
    }
}
