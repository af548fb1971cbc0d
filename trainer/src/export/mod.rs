//! Writing trained Burn models as standard ONNX files (burn-onnx imports ONNX but cannot export).
//!
//! Conventions of every exported file: input `input` (`[batch, 3, H, W]`, symbolic batch),
//! output `probabilities` (`[batch, classes]`, softmax applied in the graph), opset 13, and
//! `metadata_props` naming the classes and the preprocessing ([`runtime::InputConfig`]).

pub use crate::onnx_graph::OPSET;
use crate::onnx_graph::{Attr, GraphBuilder};

use crate::model::cnn::{Cnn, CnnConfig};
use crate::model::vgg16::features;
use crate::model::vgg16::transfer::{Vgg16Config, Vgg16Transfer};
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::prelude::*;
use runtime::InputConfig;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Emits a Conv node; `same` pads like Burn's `PaddingConfig2d::Same` (extra row/column at the end).
fn conv<B: Backend>(
    g: &mut GraphBuilder,
    name: &str,
    input: &str,
    conv: &Conv2d<B>,
    same: bool,
) -> String {
    let [o, i, kh, kw] = conv.weight.dims();
    let w = g.weight(
        &format!("{name}.weight"),
        &[o, i, kh, kw],
        values(conv.weight.val()),
    );
    let mut inputs = vec![input.to_string(), w];
    if let Some(b) = &conv.bias {
        inputs.push(g.weight(&format!("{name}.bias"), &[o], values(b.val())));
    }
    let pads = if same {
        let (t, l) = ((kh - 1) / 2, (kw - 1) / 2);
        vec![t as i64, l as i64, (kh - 1 - t) as i64, (kw - 1 - l) as i64]
    } else {
        vec![0; 4]
    };
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    g.node(
        "Conv",
        name,
        &refs,
        vec![
            ("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64])),
            ("pads", Attr::Ints(pads)),
            ("strides", Attr::Ints(vec![1, 1])),
        ],
    )
}

/// Emits a Gemm node for a Burn `Linear` (weight stored `[in, out]`).
fn dense<B: Backend>(g: &mut GraphBuilder, name: &str, input: &str, linear: &Linear<B>) -> String {
    let [d_in, d_out] = linear.weight.dims();
    let w = g.weight(
        &format!("{name}.weight"),
        &[d_in, d_out],
        values(linear.weight.val()),
    );
    let mut inputs = vec![input.to_string(), w];
    if let Some(b) = &linear.bias {
        inputs.push(g.weight(&format!("{name}.bias"), &[d_out], values(b.val())));
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    g.node("Gemm", name, &refs, vec![])
}

fn max_pool(g: &mut GraphBuilder, name: &str, input: &str) -> String {
    g.node(
        "MaxPool",
        name,
        &[input],
        vec![
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    )
}

/// The ONNX bytes of a trained CNN.
pub fn cnn_to_onnx<B: Backend>(model: &Cnn<B>, config: &CnnConfig, classes: &[String]) -> Vec<u8> {
    let mut g = GraphBuilder::default();
    let x = conv(&mut g, "conv1", "input", &model.conv1, true);
    let x = g.node("Relu", "relu1", &[&x], vec![]);
    let x = conv(&mut g, "conv2", &x, &model.conv2, false);
    let x = g.node("Relu", "relu2", &[&x], vec![]);
    let x = max_pool(&mut g, "pool1", &x);
    let x = conv(&mut g, "conv3", &x, &model.conv3, true);
    let x = g.node("Relu", "relu3", &[&x], vec![]);
    let x = conv(&mut g, "conv4", &x, &model.conv4, false);
    let x = g.node("Relu", "relu4", &[&x], vec![]);
    let x = max_pool(&mut g, "pool2", &x);
    let x = g.node("Flatten", "flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let x = dense(&mut g, "dense1", &x, &model.dense1);
    let x = g.node("Relu", "relu5", &[&x], vec![]);
    let x = dense(&mut g, "dense2", &x, &model.dense2);
    let x = g.node("Softmax", "softmax", &[&x], vec![("axis", Attr::Int(-1))]);
    let extra = vec![(
        "model".to_string(),
        serde_json::to_string(config).unwrap_or_default(),
    )];
    g.finish(
        "cnn",
        &x,
        &InputConfig::unit_rgb(config.side),
        classes,
        extra,
    )
}

/// The ONNX bytes of a trained VGG16 transfer model: the whole network (base, head, softmax).
pub fn vgg16_to_onnx<B: Backend>(
    model: &Vgg16Transfer<B>,
    config: &Vgg16Config,
    classes: &[String],
) -> Vec<u8> {
    let mut g = GraphBuilder::default();
    let mut x = "input".to_string();
    let (mut block, mut in_block) = (1, 1);
    for (i, c) in features::convs(&model.features).into_iter().enumerate() {
        let name = format!("block{block}_conv{in_block}");
        x = conv(&mut g, &name, &x, c, true);
        x = g.node("Relu", &format!("{name}_relu"), &[&x], vec![]);
        in_block += 1;
        if features::ends_block(i) {
            x = max_pool(&mut g, &format!("block{block}_pool"), &x);
            block += 1;
            in_block = 1;
        }
    }
    let x = g.node("Flatten", "flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let x = dense(&mut g, "dense1", &x, &model.dense1);
    let x = g.node("Sigmoid", "sigmoid", &[&x], vec![]);
    let x = dense(&mut g, "dense2", &x, &model.dense2);
    let x = g.node("Softmax", "softmax", &[&x], vec![("axis", Attr::Int(-1))]);
    let extra = vec![(
        "model".to_string(),
        serde_json::to_string(config).unwrap_or_default(),
    )];
    g.finish("vgg16_transfer", &x, &config.input_config(), classes, extra)
}
