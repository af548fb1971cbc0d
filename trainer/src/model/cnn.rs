//! The seed CNN of the article: Conv32-Conv32-Pool-Conv64-Conv64-Pool, Dense512, Dense10.

use crate::error::{rate, ConfigError};
use crate::ops::{conv, dropout, pool, Kernels};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The CNN's shape and dropout rates; the defaults are the article's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// How many classes (`classes` in the files, as before).
    #[serde(rename = "classes")]
    pub num_classes: usize,
    /// Input side in pixels (32 for CIFAR-10).
    pub side: usize,
    pub dropout_conv: f64,
    pub dropout_dense: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        CnnConfig {
            num_classes: 10,
            side: 32,
            dropout_conv: 0.25,
            dropout_dense: 0.5,
        }
    }
}

impl CnnConfig {
    /// Checks the dropout rates (in `[0, 1)`) and the side (at least 10 pixels, for a feature map
    /// after the two pools).
    ///
    /// # Errors
    /// The first setting out of range, by its field (`model.dropout_conv`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        rate("model.dropout_conv", self.dropout_conv)?;
        rate("model.dropout_dense", self.dropout_dense)?;
        if self.side < 10 {
            return Err(ConfigError::new(
                "model.side",
                format!("{0}x{0} images are too small for two 3x3 convolutions and two pools (10x10 at least)", self.side),
            ));
        }
        Ok(())
    }

    /// Side of the feature map after the convolutional stack.
    pub fn feature_side(&self) -> usize {
        // same conv, valid 3x3 (-2), pool /2, same conv, valid 3x3 (-2), pool /2
        ((self.side - 2) / 2 - 2) / 2
    }

    /// Builds the network with Keras' initialisation (Glorot-uniform weights, zero biases).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Cnn<B> {
        let glorot = Initializer::XavierUniform { gain: 1.0 };
        let conv = |channels: [usize; 2], padding: PaddingConfig2d| {
            let mut c = Conv2dConfig::new(channels, [3, 3])
                .with_padding(padding)
                .with_initializer(glorot.clone())
                .init(device);
            c.bias = Some(Param::from_tensor(Tensor::zeros([channels[1]], device)));
            c
        };
        let dense = |d_in: usize, d_out: usize| {
            let mut l = LinearConfig::new(d_in, d_out)
                .with_initializer(glorot.clone())
                .init(device);
            l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
            l
        };
        let flat = 64 * self.feature_side() * self.feature_side();
        Cnn {
            conv1: conv([3, 32], PaddingConfig2d::Same),
            conv2: conv([32, 32], PaddingConfig2d::Valid),
            conv3: conv([32, 64], PaddingConfig2d::Same),
            conv4: conv([64, 64], PaddingConfig2d::Valid),
            dense1: dense(flat, 512),
            dense2: dense(512, self.num_classes),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout_conv: DropoutConfig::new(self.dropout_conv).init(),
            dropout_dense: DropoutConfig::new(self.dropout_dense).init(),
            relu: Relu::new(),
        }
    }
}

/// The network. `forward` returns logits; softmax is applied by the loss and by the exported graph.
#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub conv3: Conv2d<B>,
    pub conv4: Conv2d<B>,
    pub dense1: Linear<B>,
    pub dense2: Linear<B>,
    pool: MaxPool2d,
    dropout_conv: Dropout,
    dropout_dense: Dropout,
    relu: Relu,
}

impl<B: Kernels> Cnn<B> {
    /// `[N, 3, H, W]` images to `[N, classes]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = conv::forward_relu(&self.conv1, x);
        let x = conv::forward_relu(&self.conv2, x);
        let x = dropout::forward(&self.dropout_conv, pool::forward(&self.pool, x));
        let x = conv::forward_relu(&self.conv3, x);
        let x = conv::forward_relu(&self.conv4, x);
        let x = dropout::forward(&self.dropout_conv, pool::forward(&self.pool, x));
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = dropout::forward(
            &self.dropout_dense,
            self.relu.forward(self.dense1.forward(x)),
        );
        self.dense2.forward(x)
    }
}

impl<B: Backend> Cnn<B> {
    /// Keras-style summary rows: layer, output shape, parameters.
    pub fn summary(&self, config: &CnnConfig) -> Vec<(String, String, usize)> {
        let conv_params = |c: &Conv2d<B>| {
            c.weight.shape().num_elements()
                + c.bias.as_ref().map_or(0, |b| b.shape().num_elements())
        };
        let dense_params = |l: &Linear<B>| {
            l.weight.shape().num_elements()
                + l.bias.as_ref().map_or(0, |b| b.shape().num_elements())
        };
        let s = config.side;
        let p1 = (s - 2) / 2;
        let f = config.feature_side();
        let shape = |c: usize, h: usize| format!("(None, {c}, {h}, {h})");
        vec![
            (
                "conv1 (Conv2D 3x3 same)".into(),
                shape(32, s),
                conv_params(&self.conv1),
            ),
            ("relu".into(), shape(32, s), 0),
            (
                "conv2 (Conv2D 3x3 valid)".into(),
                shape(32, s - 2),
                conv_params(&self.conv2),
            ),
            ("relu".into(), shape(32, s - 2), 0),
            ("max_pool 2x2".into(), shape(32, p1), 0),
            (format!("dropout {}", config.dropout_conv), shape(32, p1), 0),
            (
                "conv3 (Conv2D 3x3 same)".into(),
                shape(64, p1),
                conv_params(&self.conv3),
            ),
            ("relu".into(), shape(64, p1), 0),
            (
                "conv4 (Conv2D 3x3 valid)".into(),
                shape(64, p1 - 2),
                conv_params(&self.conv4),
            ),
            ("relu".into(), shape(64, p1 - 2), 0),
            ("max_pool 2x2".into(), shape(64, f), 0),
            (format!("dropout {}", config.dropout_conv), shape(64, f), 0),
            ("flatten".into(), format!("(None, {})", 64 * f * f), 0),
            (
                "dense1 (Dense)".into(),
                "(None, 512)".into(),
                dense_params(&self.dense1),
            ),
            ("relu".into(), "(None, 512)".into(), 0),
            (
                format!("dropout {}", config.dropout_dense),
                "(None, 512)".into(),
                0,
            ),
            (
                "dense2 (Dense)".into(),
                format!("(None, {})", config.num_classes),
                dense_params(&self.dense2),
            ),
            (
                "softmax".into(),
                format!("(None, {})", config.num_classes),
                0,
            ),
        ]
    }
}
