//! Trains the CIFAR-10 classifiers in Burn and exports them to ONNX.
//!
//! The module graph has no cycle; each module imports only modules below it (see
//! `ARCHITECTURE.md`, checked by `tests/tests/architecture.rs`).
//!
//! - [`onnx_graph`]: building ONNX graphs (shared by the exporter and the VGG16 graph surgery);
//!   [`save`]: writing outputs atomically; [`error`]: the errors of every call.
//! - [`standin`]: the generated CIFAR-10 stand-in (readers are `runtime::data`); [`checkpoint`]:
//!   a run's checkpoints on disk.
//! - [`ops`]: the convolution, dropout and max pooling the models train with (fast on the CPU).
//! - [`model`]: the networks.
//! - [`train`]: the model-agnostic training loop (checkpoints, resume, early stopping), history
//!   and summary, with each model's training beside it ([`train::vgg16`]: the transfer model with
//!   its frozen-feature cache); [`plot`]: the curves; [`progress`]: bars on a terminal, lines in a
//!   log.
//! - [`export`]: ONNX files from trained weights.
//! - [`pipeline`]: data, training, export and verification in one call.

pub mod allocator;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod export;
pub mod model;
pub mod onnx_graph;
pub mod ops;
pub mod pipeline;
pub mod plot;
pub mod progress;
mod rng;
pub mod save;
pub mod standin;
pub mod train;
