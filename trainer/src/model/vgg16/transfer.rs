//! The article's transfer model: VGG16's base (imported), then Flatten, Dense 256 sigmoid,
//! Dropout 0.5 and Dense `classes` (softmax in the loss and in the exported graph).

use super::features::{self, Vgg16Features, CONVS};
use super::source::{SourceLayout, Vgg16Base};
use crate::error::ConfigError;
use crate::model::Logits;
use crate::ops::{dropout, Kernels};
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use runtime::{ChannelOrder, InputConfig, Layout};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How much of the base is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Freeze {
    /// Nothing: every convolution trains.
    None,
    /// Blocks 1 to 4 (Keras' `layers[:15]`, through `block4_pool`), as the article does.
    #[default]
    Block4,
    /// The whole base: only the dense head trains.
    All,
}

impl Freeze {
    /// How many of the 13 convolutions are frozen.
    pub fn frozen_convs(self) -> usize {
        match self {
            Freeze::None => 0,
            Freeze::Block4 => 10,
            Freeze::All => CONVS,
        }
    }

    /// Side of the feature map where the frozen part ends, for an input of side `side`.
    pub fn feature_side(self, side: usize) -> usize {
        let pools = match self {
            Freeze::None => 0,
            Freeze::Block4 => 4,
            Freeze::All => 5,
        };
        side >> pools
    }

    /// What the frozen part gives per image at input side `side`: channels, height, width.
    pub fn feature_dims(self, side: usize) -> [usize; 3] {
        let s = self.feature_side(side);
        [self.feature_channels(), s, s]
    }

    /// Channels where the frozen part ends.
    pub fn feature_channels(self) -> usize {
        match self {
            Freeze::None => 3,
            Freeze::Block4 | Freeze::All => 512,
        }
    }
}

impl FromStr for Freeze {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Freeze::None),
            "block4" | "article" => Ok(Freeze::Block4),
            "all" => Ok(Freeze::All),
            other => Err(format!(
                "unknown freeze point {other:?}: expected block4 (the article's), all or none"
            )),
        }
    }
}

/// The input side by default: CIFAR-10's own 32 pixels.
pub const DEFAULT_SIDE: usize = 32;
/// The dropout between the two dense layers by default (the article's).
pub const DEFAULT_DROPOUT: f64 = 0.5;

/// The transfer model's shape and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vgg16Config {
    /// How many classes (`classes` in the files, as before).
    #[serde(rename = "classes")]
    pub num_classes: usize,
    /// Input side in pixels: 32 (CIFAR-10's own) or larger, upscaled.
    pub side: usize,
    pub hidden: usize,
    pub dropout: f64,
    pub freeze: Freeze,
    /// The VGG16 file the base came from: its name and SHA-256 (`vgg16.onnx (sha256 ...)`).
    pub source: String,
    pub source_layout: SourceLayout,
}

impl Vgg16Config {
    /// The article's model for `classes` classes at `side` pixels, from `base`.
    pub fn new(base: &Vgg16Base, source: &str, num_classes: usize, side: usize) -> Self {
        Vgg16Config {
            num_classes,
            side,
            hidden: 256,
            dropout: DEFAULT_DROPOUT,
            freeze: Freeze::default(),
            source: source.to_string(),
            source_layout: base.layout,
        }
    }

    /// Side of the map after block 5.
    pub fn feature_side(&self) -> usize {
        self.side >> 5
    }

    /// What the source network expects of its input: Keras' VGG16 ("caffe" mode: BGR, 0..255,
    /// minus the ImageNet mean per channel) or the ONNX Model Zoo / torchvision one (RGB scaled
    /// to 0..1, then ImageNet mean and standard deviation). The exported model is always NCHW.
    pub fn input_config(&self) -> InputConfig {
        let (channel_order, scale, mean, std) = match self.source_layout {
            SourceLayout::Nhwc => (ChannelOrder::Bgr, 1.0, [103.939, 116.779, 123.68], [1.0; 3]),
            SourceLayout::Nchw => (
                ChannelOrder::Rgb,
                1.0 / 255.0,
                [0.485, 0.456, 0.406],
                [0.229, 0.224, 0.225],
            ),
        };
        InputConfig {
            height: self.side,
            width: self.side,
            layout: Layout::Nchw,
            channel_order,
            scale,
            mean,
            std,
        }
    }

    /// Checks that `base` has VGG16's widths (the sizes and rates are checked with the run's
    /// configuration).
    pub fn check(&self, base: &Vgg16Base) -> Result<(), ConfigError> {
        if !base.has_vgg16_widths() {
            return Err(ConfigError::new(
                "vgg16.source",
                format!(
                    "{}: its convolutions have widths {:?}, not VGG16's",
                    self.source,
                    base.convs.iter().map(|c| c.dims[0]).collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }

    /// Builds the model: the base's weights from `base` (frozen as configured), a fresh head with
    /// Keras' initialisation (Glorot-uniform weights, zero biases).
    pub fn init<B: Backend>(&self, base: &Vgg16Base, device: &B::Device) -> Vgg16Transfer<B> {
        let glorot = Initializer::XavierUniform { gain: 1.0 };
        let dense = |d_in: usize, d_out: usize| {
            let mut l = LinearConfig::new(d_in, d_out)
                .with_initializer(glorot.clone())
                .init(device);
            l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
            l
        };
        let flat = 512 * self.feature_side() * self.feature_side();
        let base_model = features::freeze(
            features::load::<B>(base, device),
            self.freeze.frozen_convs(),
        );
        Vgg16Transfer {
            features: base_model,
            dense1: dense(flat, self.hidden),
            dense2: dense(self.hidden, self.num_classes),
            dropout: DropoutConfig::new(self.dropout).init(),
            start: 0,
        }
    }
}

/// The transfer model. `forward` returns logits.
#[derive(Module, Debug)]
pub struct Vgg16Transfer<B: Backend> {
    pub features: Vgg16Features<B>,
    pub dense1: Linear<B>,
    pub dense2: Linear<B>,
    dropout: Dropout,
    /// The convolution [`Logits::logits`] starts at: 0 for images, the frozen count for cached
    /// frozen features.
    #[module(skip)]
    start: usize,
}

impl<B: Kernels> Vgg16Transfer<B> {
    /// `[N, 3, H, W]` preprocessed images to `[N, classes]` logits.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_from(x, 0)
    }

    /// Logits from the activations before convolution `start` (after its block's pool).
    pub fn forward_from(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 2> {
        let x = features::forward_range(&self.features, x, start, CONVS);
        let x: Tensor<B, 2> = x.flatten(1, 3);
        let x = burn::tensor::activation::sigmoid(self.dense1.forward(x));
        self.dense2.forward(dropout::forward(&self.dropout, x))
    }

    /// The activations after the first `to` convolutions (and their pools).
    pub fn features_until(&self, x: Tensor<B, 4>, to: usize) -> Tensor<B, 4> {
        features::forward_range(&self.features, x, 0, to)
    }

    /// The same model, whose [`Logits::logits`] takes the activations before convolution `start`.
    pub fn starting_at(mut self, start: usize) -> Self {
        self.start = start;
        self
    }
}

impl<B: Backend> Vgg16Transfer<B> {
    /// Keras-style summary rows (layer, output shape, parameters) and the frozen parameter count.
    pub fn summary(&self, config: &Vgg16Config) -> (Vec<(String, String, usize)>, usize) {
        let mut rows = Vec::new();
        let mut frozen = 0;
        let mut side = config.side;
        let convs = features::convs(&self.features);
        let mut block = 1;
        let mut in_block = 1;
        for (i, conv) in convs.iter().enumerate() {
            let params = conv.weight.shape().num_elements()
                + conv.bias.as_ref().map_or(0, |b| b.shape().num_elements());
            let [channels, ..] = conv.weight.dims();
            let tag = if i < config.freeze.frozen_convs() {
                frozen += params;
                " frozen"
            } else {
                ""
            };
            rows.push((
                format!("block{block}_conv{in_block} (Conv2D){tag}"),
                format!("(None, {channels}, {side}, {side})"),
                params,
            ));
            in_block += 1;
            if features::ends_block(i) {
                side /= 2;
                rows.push((
                    format!("block{block}_pool (MaxPool2D)"),
                    format!("(None, {channels}, {side}, {side})"),
                    0,
                ));
                block += 1;
                in_block = 1;
            }
        }
        let flat = 512 * side * side;
        let dense = |l: &Linear<B>| {
            l.weight.shape().num_elements()
                + l.bias.as_ref().map_or(0, |b| b.shape().num_elements())
        };
        rows.push(("flatten".into(), format!("(None, {flat})"), 0));
        rows.push((
            "dense1 (Dense, sigmoid)".into(),
            format!("(None, {})", config.hidden),
            dense(&self.dense1),
        ));
        rows.push((
            format!("dropout {}", config.dropout),
            format!("(None, {})", config.hidden),
            0,
        ));
        rows.push((
            "dense2 (Dense)".into(),
            format!("(None, {})", config.num_classes),
            dense(&self.dense2),
        ));
        rows.push((
            "softmax".into(),
            format!("(None, {})", config.num_classes),
            0,
        ));
        (rows, frozen)
    }
}

impl<B: Kernels> Logits<B> for Vgg16Transfer<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_from(x, self.start)
    }
}
