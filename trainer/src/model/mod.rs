//! The networks the trainer builds.

pub mod cnn;
pub mod vgg16;
