//! Data for training: the readers live in `runtime::data` (so the runtime can evaluate on the same
//! files); the generated CIFAR-10 stand-in lives here.

pub mod standin;

pub use runtime::data::{load, CifarSplit, Dataset};
