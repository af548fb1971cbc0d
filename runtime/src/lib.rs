//! Run image-classification ONNX models through ONNX Runtime (`ort`) or the pure-Rust tract engine.
//!
//! ```no_run
//! use runtime::{Classifier, EngineChoice};
//!
//! let mut classifier = Classifier::builder().engine(EngineChoice::Auto).build_from_file("models/cnn.onnx")?;
//! let prediction = classifier.classify_file("cat.png")?;
//! println!("{} ({:.1} %) via {}", prediction.class_name, 100.0 * prediction.probability, classifier.engine_name());
//! # Ok::<(), runtime::Error>(())
//! ```
//!
//! A run on the crate's own 3-class test model, with tract (8x8 images: one red, one blue):
//!
//! ```
//! use runtime::{Classifier, EngineChoice};
//!
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_classifier.onnx");
//! let mut classifier = Classifier::builder().engine(EngineChoice::Tract).build_from_file(model)?;
//! assert_eq!(classifier.info().input.shape_text(), "[batch, 3, 8, 8]");
//! let plane = 8 * 8;
//! let mut planar = vec![0u8; 2 * 3 * plane];
//! planar[..plane].fill(230); // image 0: red plane full
//! planar[3 * plane + 2 * plane..].fill(230); // image 1: blue plane full
//! let predictions = classifier.classify_planar(&planar)?;
//! assert_eq!(predictions.len(), 2);
//! for p in &predictions {
//!     assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
//!     println!("{} ({:.1} %)", p.class_name, 100.0 * p.probability);
//! }
//! # Ok::<(), runtime::Error>(())
//! ```
//!
//! The library's core is the classifier, its builder, the model's preprocessing ([`InputConfig`],
//! its [`metadata_keys`] and the [`InputOverrides`] a caller puts over them), the engines,
//! [`Prediction`], [`Error`] and the output rows ([`result_rows`]): it starts no process, opens no network connection, writes no
//! file and looks for ONNX Runtime only where its caller says
//! ([`ClassifierBuilder::ort_library`], `ORT_DYLIB_PATH`, next to the executable). The `tools`
//! feature (on by default, with the CLI) adds what the command line, the trainer and the tests
//! use: data sets ([`data`]), verification against the trainer ([`verify`]), folder runs
//! ([`batch`]), decoding many images ([`images`]), softmax and argmax over raw outputs
//! ([`scores`]), fetching ONNX Runtime through pip ([`wheel`], [`ort_library::fetch`]) and atomic
//! file writes. An app or a wasm page depends on the core alone:
//! `runtime = { path = "...", default-features = false }` (add `features = ["threads"]` for
//! tract's matrix products on every core, `"ort"` for ONNX Runtime).

#![warn(missing_docs)]

#[cfg(feature = "tools")]
pub mod batch;
#[cfg(feature = "tools")]
pub mod bench;
mod classifier;
#[cfg(feature = "tools")]
pub mod data;
mod description;
mod engine;
mod error;
#[cfg(feature = "tools")]
mod files;
mod model_info;
mod prediction;
mod preprocess;
#[cfg(feature = "tools")]
pub mod quantize;
pub mod result_rows;
#[cfg(feature = "tools")]
pub mod scores;
#[cfg(not(feature = "tools"))]
mod scores;
#[cfg(feature = "tools")]
pub mod triton;
#[cfg(feature = "tools")]
pub mod verify;
#[cfg(feature = "tools")]
pub mod wheel;

pub use classifier::{Classifier, ClassifierBuilder};
pub use description::Description;
pub use error::{Error, Result};
#[cfg(feature = "tools")]
pub use files::write_atomic;
pub use prediction::Prediction;

pub use engine::ort_library;
pub use engine::{panic_hook, EngineChoice, PanicHook, Provider};
pub use model_info::{float_initializer, FloatTensor, ModelInfo, TensorInfo, MAX_CLASSES};
/// Decoding image files within bounds and fitting them to a model's input size: what
/// [`Classifier`] does to each file, for tools that prepare many images themselves.
#[cfg(feature = "tools")]
pub use preprocess::decode as images;
pub use preprocess::keys as metadata_keys;
pub use preprocess::{
    ChannelOrder, ImageError, InputConfig, InputOverrides, Layout, MetadataError, MAX_INPUT_SIDE,
};
