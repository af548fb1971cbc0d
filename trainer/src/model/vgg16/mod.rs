//! VGG16 transfer learning: the convolutional base comes from a public VGG16 ONNX file.

pub mod features;
pub mod source;
pub mod transfer;
