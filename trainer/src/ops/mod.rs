//! The layers the models train with, where Burn 0.21's CPU backend is slow: convolution
//! ([`conv`]), dropout ([`dropout`]) and max pooling ([`pool`]). Each is a backend trait with
//! Burn's own operation as its default (what CUDA runs) and a CPU implementation on `Flex` and
//! `Autodiff<Flex>` (Burn's backend-extension pattern: a recorded operation with its own backward
//! pass). The models call `ops::conv::forward(&layer, x)` and the like instead of
//! `layer.forward(x)`.

pub mod conv;
pub mod dropout;
pub mod pool;

/// A backend with the models' layers: [`conv::ConvBackend`], [`dropout::MaskBackend`] and
/// [`pool::PoolBackend`].
pub trait Kernels: conv::ConvBackend + dropout::MaskBackend + pool::PoolBackend {}

impl<B: conv::ConvBackend + dropout::MaskBackend + pool::PoolBackend> Kernels for B {}
