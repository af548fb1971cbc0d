//! The layers the models train with, where Burn 0.21's CPU backend is slow: convolution
//! ([`conv`]), dropout ([`dropout`]) and max pooling ([`pool`]). Each is a backend trait with
//! Burn's own operation as its default (what CUDA runs) and a CPU implementation on `Flex` and
//! `Autodiff<Flex>` (Burn's backend-extension pattern: a recorded operation with its own backward
//! pass). The models call `ops::conv::forward(&layer, x)` and the like instead of
//! `layer.forward(x)`. And the CNN's optimiser step ([`rmsprop`]): a Burn `SimpleOptimizer`, one
//! parallel pass on `Flex`, Burn's `RmsProp` on other backends.

pub mod conv;
pub mod dropout;
pub mod pool;
pub mod rmsprop;

/// A backend with the models' layers: [`conv::ConvBackend`], [`dropout::MaskBackend`] and
/// [`pool::PoolBackend`].
pub trait Kernels: conv::ConvBackend + dropout::MaskBackend + pool::PoolBackend {}

impl<B: conv::ConvBackend + dropout::MaskBackend + pool::PoolBackend> Kernels for B {}

use burn_flex::FlexTensor;

/// The values of a contiguous `f32` flex tensor (see `FlexTensor::to_contiguous`).
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a contiguous f32 tensor has a slice")
}

/// `len` zeros, written by all of rayon's threads: a layer's output or input gradient is tens of
/// megabytes, and zeroing it on the calling thread alone leaves the other cores idle.
fn zeros(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    (0..len).into_par_iter().map(|_| 0.0).collect()
}

/// A flex tensor holding `values` in `shape`.
fn tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(values, shape))
}
