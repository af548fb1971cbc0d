//! 2-D convolution for training: on the CPU, forward and both gradients as large matrix
//! products ([`cpu`]); on CUDA, Burn's own (CubeCL's kernels, unchanged).
//!
//! Burn 0.21's CPU backend (`flex`) has its own forward convolution but leaves the gradients to
//! Burn's generic versions: the input gradient as a transposed convolution and the weight
//! gradient as a convolution over swapped axes, narrow products and layout copies that cost
//! several times the forward pass. [`ConvBackend`] is Burn's backend-extension pattern: the
//! models call [`forward`] instead of `Conv2d::forward`, which on `Autodiff<Flex>` records one
//! operation whose backward pass runs [`cpu::backward`], and on `Flex` alone runs
//! [`cpu::forward`]. Other backends and cases (grouped convolutions, other float types) take
//! Burn's path.

pub mod cpu;
pub mod gemm;
pub mod transpose;

use super::{tensor, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, Flex};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use cpu::Geometry;

/// Passes of the CPU kernels so far, in this process.
static FORWARD_PASSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static BACKWARD_PASSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many forward and backward passes the CPU kernels ([`cpu::forward`], [`cpu::backward`])
/// have run in this process: a caller can tell that they, not Burn's fallback, computed a
/// result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuPasses {
    pub forward: usize,
    pub backward: usize,
}

/// The passes so far (see [`CpuPasses`]).
pub fn cpu_passes() -> CpuPasses {
    use std::sync::atomic::Ordering::Relaxed;
    CpuPasses {
        forward: FORWARD_PASSES.load(Relaxed),
        backward: BACKWARD_PASSES.load(Relaxed),
    }
}

/// A backend whose convolutions the models call through [`forward`].
pub trait ConvBackend: Backend {
    /// `conv2d` with one group, followed by a ReLU when `relu`; by default Burn's two.
    fn conv2d_one_group(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: PaddedConvOptions<2>,
        relu: bool,
    ) -> Tensor<Self, 4> {
        burn_conv(x, weight, bias, options, relu)
    }
}

/// Burn's own `conv2d`, then its ReLU when `relu`.
fn burn_conv<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
    relu: bool,
) -> Tensor<B, 4> {
    relu_if(burn::tensor::module::conv2d(x, weight, bias, options), relu)
}

/// Burn's ReLU of `y` when `relu`, else `y`.
fn relu_if<B: Backend>(y: Tensor<B, 4>, relu: bool) -> Tensor<B, 4> {
    if relu {
        burn::tensor::activation::relu(y)
    } else {
        y
    }
}

/// Applies `conv` to `x` (`[N, C_in, H, W]`), as `conv.forward(x)` does, through the backend's
/// fastest convolution.
pub fn forward<B: ConvBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    run(conv, x, false)
}

/// `relu(conv.forward(x))`, with the ReLU applied inside the convolution's own passes on the CPU
/// (its mask too, in the backward pass): two passes over the output fewer.
pub fn forward_relu<B: ConvBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    run(conv, x, true)
}

fn run<B: ConvBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>, relu: bool) -> Tensor<B, 4> {
    if conv.groups != 1 {
        return relu_if(conv.forward(x), relu);
    }
    let [_, _, height, width] = x.dims();
    let ((top, bottom), (left, right)) = padding(
        &conv.padding,
        [height, width],
        conv.kernel_size,
        conv.stride,
    );
    let options =
        PaddedConvOptions::asymmetric(conv.stride, [top, left], [bottom, right], conv.dilation, 1);
    let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
    B::conv2d_one_group(x, weight, bias, options, relu)
}

/// `(before, after)` padding of each axis, as `Conv2d::forward` computes it ("same": the output
/// as large as the input divided by the stride, the odd pixel after; the kernel's dilation is not
/// counted, as in Burn).
fn padding(
    config: &PaddingConfig2d,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    let same = |axis: usize| {
        let out = input[axis].div_ceil(stride[axis]);
        let total = if out > 0 {
            ((out - 1) * stride[axis] + kernel[axis]).saturating_sub(input[axis])
        } else {
            0
        };
        (total / 2, total - total / 2)
    };
    match *config {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (same(0), same(1)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    }
}

/// The geometry of a convolution of `x` by `weight`, when the CPU kernels take it (`f32`, sizes
/// that fit).
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &PaddedConvOptions<2>,
) -> Option<Geometry> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.options.groups != 1 {
        return None;
    }
    let dims = |t: &FlexTensor| -> Option<[usize; 4]> { t.shape().as_slice().try_into().ok() };
    let pad = options.options.padding;
    Geometry::new(
        dims(x)?,
        dims(weight)?,
        options.options.stride,
        options.options.dilation,
        pad,
        options.padding_end.unwrap_or(pad),
    )
}

/// The forward pass on flex tensors, or `None` when the CPU kernels do not take this case.
fn flex_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &PaddedConvOptions<2>,
    relu: bool,
) -> Option<FlexTensor> {
    let geo = geometry(x, weight, options)?;
    if bias.is_some_and(|b| b.dtype() != DType::F32) {
        return None;
    }
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let bias = bias.map(FlexTensor::to_contiguous);
    let bias = bias.as_ref().map(values);
    let out = cpu::forward(&geo, values(&x), values(&weight), bias, relu);
    FORWARD_PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(tensor(
        out,
        [geo.batch, geo.out_channels, geo.output[0], geo.output[1]],
    ))
}

fn float<B: Backend>(t: Tensor<B, 4>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

/// The convolution (and ReLU) on `Flex`: the CPU kernels, or Burn's where they do not apply.
fn flex_conv(
    x: Tensor<Flex, 4>,
    weight: Tensor<Flex, 4>,
    bias: Option<Tensor<Flex, 1>>,
    options: PaddedConvOptions<2>,
    relu: bool,
) -> Tensor<Flex, 4> {
    let bias_t = bias.clone().map(|b| b.into_primitive().tensor());
    let (xp, wp) = (float(x.clone()), float(weight.clone()));
    match flex_forward(&xp, &wp, bias_t.as_ref(), &options, relu) {
        Some(out) => Tensor::from_primitive(TensorPrimitive::Float(out)),
        None => burn_conv(x, weight, bias, options, relu),
    }
}

impl ConvBackend for Flex {
    fn conv2d_one_group(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: PaddedConvOptions<2>,
        relu: bool,
    ) -> Tensor<Self, 4> {
        flex_conv(x, weight, bias, options, relu)
    }
}

/// The recorded convolution: its backward pass computes the gradients that are needed (the
/// input's only when the input is itself trained or comes from trained layers).
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    /// The input and weight as saved for the backward pass, the geometry, and the output when a
    /// ReLU was applied in the forward pass (its mask is the output's positive values).
    type State = (NodeId, NodeId, Geometry, Option<FlexTensor>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_state, weight_state, geo, relu_output) = ops.state;
        let x = checkpointer
            .retrieve_node_output::<FlexTensor>(x_state)
            .to_contiguous();
        let weight = checkpointer
            .retrieve_node_output::<FlexTensor>(weight_state)
            .to_contiguous();
        let wanted = cpu::Wanted {
            input: node_x.is_some(),
            weight: node_weight.is_some(),
            bias: node_bias.is_some(),
        };
        let relu_output = relu_output.map(|y| y.to_contiguous());
        let out = cpu::backward(
            &geo,
            values(&x),
            values(&weight),
            values(&grad),
            relu_output.as_ref().map(values),
            wanted,
        );
        BACKWARD_PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dims = |t: &FlexTensor| t.shape();
        if let (Some(node), Some(dx)) = (node_x, out.input) {
            grads.register::<Flex>(node.id, tensor(dx, dims(&x)));
        }
        if let (Some(node), Some(dw)) = (node_weight, out.weight) {
            grads.register::<Flex>(node.id, tensor(dw, dims(&weight)));
        }
        if let (Some(node), Some(db)) = (node_bias, out.bias) {
            grads.register::<Flex>(node.id, tensor(db, [geo.out_channels]));
        }
    }
}

/// The recorded convolution (and ReLU) on `Autodiff<Flex>`, or Burn's where the CPU kernels do
/// not apply.
fn autodiff_conv<C: CheckpointStrategy>(
    x: Tensor<Autodiff<Flex, C>, 4>,
    weight: Tensor<Autodiff<Flex, C>, 4>,
    bias: Option<Tensor<Autodiff<Flex, C>, 1>>,
    options: PaddedConvOptions<2>,
    relu: bool,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let (xp, wp) = (float(x.clone()), float(weight.clone()));
    let Some(geo) = geometry(&xp.primitive, &wp.primitive, &options) else {
        return burn_conv(x, weight, bias, options, relu);
    };
    // Without a bias, a constant zero one (not tracked, so no gradient is computed for it).
    let bias = bias.unwrap_or_else(|| Tensor::zeros([geo.out_channels], &x.device()));
    let bp = bias.into_primitive().tensor();
    let forward = || {
        flex_forward(
            &xp.primitive,
            &wp.primitive,
            Some(&bp.primitive),
            &options,
            relu,
        )
        .expect("the geometry was accepted above")
    };
    let out = match Conv2dBackward
        .prepare::<C>([xp.node.clone(), wp.node.clone(), bp.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&xp);
            let weight_state = prep.checkpoint(&wp);
            let out = forward();
            let relu_output = relu.then(|| out.clone());
            prep.finish((x_state, weight_state, geo, relu_output), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward()),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn conv2d_one_group(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: PaddedConvOptions<2>,
        relu: bool,
    ) -> Tensor<Self, 4> {
        autodiff_conv(x, weight, bias, options, relu)
    }
}

#[cfg(feature = "cuda")]
impl ConvBackend for burn::backend::Cuda {}

#[cfg(feature = "cuda")]
impl<C: CheckpointStrategy> ConvBackend for Autodiff<burn::backend::Cuda, C> {}
