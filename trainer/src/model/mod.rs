//! The networks the trainer builds.

pub mod cnn;
