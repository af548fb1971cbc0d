//! VGG16 transfer learning: the convolutional base comes from a public VGG16 ONNX file.

pub mod source;
