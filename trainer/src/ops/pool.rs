//! Max pooling for training, fast on the CPU.
//!
//! Burn 0.21's CPU backend pools through a general 3-D kernel that computes every window's bounds
//! and indices element by element; on the CNN that was about an eighth of a training step. Here
//! an unpadded max pool (the models' 2x2, stride 2) runs plane by plane on all cores and keeps,
//! for the backward pass, where each maximum came from. Other pools and other backends (CUDA)
//! take Burn's path.

use super::{tensor, values, zeros};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use std::sync::Arc;

/// A backend whose max pools the models call through [`forward`].
pub trait PoolBackend: Backend {
    /// An unpadded, undilated max pool; by default Burn's.
    fn max_pool2d_valid(
        x: Tensor<Self, 4>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Tensor<Self, 4> {
        burn::tensor::module::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false)
    }
}

/// Applies `pool` to `x` (`[N, C, H, W]`), as `pool.forward(x)` does.
pub fn forward<B: PoolBackend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let plain = matches!(pool.padding, PaddingConfig2d::Valid)
        && pool.dilation == [1, 1]
        && !pool.ceil_mode;
    if plain {
        B::max_pool2d_valid(x, pool.kernel_size, pool.stride)
    } else {
        pool.forward(x)
    }
}

/// The pool's shape: input `[N, C, H, W]`, kernel, stride, output side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    input: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    output: [usize; 2],
}

impl Shape {
    fn new(input: [usize; 4], kernel: [usize; 2], stride: [usize; 2]) -> Option<Self> {
        let [.., h, w] = input;
        // Positions within a plane are kept as `u32`.
        let plane_fits = h.checked_mul(w).is_some_and(|n| n <= u32::MAX as usize);
        if kernel.contains(&0)
            || stride.contains(&0)
            || kernel[0] > h
            || kernel[1] > w
            || !plane_fits
        {
            return None;
        }
        let output = [
            (h - kernel[0]) / stride[0] + 1,
            (w - kernel[1]) / stride[1] + 1,
        ];
        Some(Shape {
            input,
            kernel,
            stride,
            output,
        })
    }

    fn planes(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_dims(&self) -> [usize; 4] {
        [self.input[0], self.input[1], self.output[0], self.output[1]]
    }
}

/// The pooled values and, for each, its index within its input plane.
fn pool_forward(shape: &Shape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let [.., h, w] = shape.input;
    let [oh, ow] = shape.output;
    let (plane_in, plane_out) = (h * w, oh * ow);
    let mut out = zeros(shape.planes() * plane_out);
    let mut from = vec![0u32; shape.planes() * plane_out];
    out.par_chunks_mut(plane_out)
        .zip(from.par_chunks_mut(plane_out))
        .zip(x.par_chunks(plane_in))
        .for_each(|((out, from), plane)| {
            if shape.kernel == [2, 2] && shape.stride == [2, 2] {
                pool_plane_2x2(plane, w, out, from, ow);
                return;
            }
            for y in 0..oh {
                for xo in 0..ow {
                    let (y0, x0) = (y * shape.stride[0], xo * shape.stride[1]);
                    let mut best = (f32::NEG_INFINITY, y0 * w + x0);
                    for ky in 0..shape.kernel[0] {
                        let row = (y0 + ky) * w;
                        for kx in 0..shape.kernel[1] {
                            let v = plane[row + x0 + kx];
                            // NaN wins, as it propagates through `max`.
                            if v > best.0 || v.is_nan() {
                                best = (v, row + x0 + kx);
                            }
                        }
                    }
                    out[y * ow + xo] = best.0;
                    from[y * ow + xo] = best.1 as u32;
                }
            }
        });
    (out, from)
}

/// The 2x2, stride-2 pool of one plane of width `w` (the models' pools), two input rows at a time.
/// The first of equal values wins; NaN does not propagate here.
fn pool_plane_2x2(plane: &[f32], w: usize, out: &mut [f32], from: &mut [u32], ow: usize) {
    for (y, (out, from)) in out
        .chunks_exact_mut(ow)
        .zip(from.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = &plane[2 * y * w..2 * y * w + 2 * ow];
        let bottom = &plane[(2 * y + 1) * w..(2 * y + 1) * w + 2 * ow];
        let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (xo, ((o, f), (p, q))) in out.iter_mut().zip(from.iter_mut()).zip(pairs).enumerate() {
            let (mut best, mut at) = (p[0], 0);
            if p[1] > best {
                (best, at) = (p[1], 1);
            }
            if q[0] > best {
                (best, at) = (q[0], w);
            }
            if q[1] > best {
                (best, at) = (q[1], w + 1);
            }
            *o = best;
            *f = (2 * y * w + 2 * xo + at) as u32;
        }
    }
}

/// The input gradient: each output gradient added to where its maximum came from.
fn pool_backward(shape: &Shape, from: &[u32], grad: &[f32]) -> Vec<f32> {
    let [.., h, w] = shape.input;
    let plane_out = shape.output[0] * shape.output[1];
    let mut dx = zeros(shape.planes() * h * w);
    dx.par_chunks_mut(h * w)
        .zip(from.par_chunks(plane_out))
        .zip(grad.par_chunks(plane_out))
        .for_each(|((dx, from), grad)| {
            for (&i, &g) in from.iter().zip(grad) {
                dx[i as usize] += g;
            }
        });
    dx
}

fn flex_shape(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> Option<Shape> {
    if x.dtype() != DType::F32 {
        return None;
    }
    let dims: [usize; 4] = x.shape().as_slice().try_into().ok()?;
    Shape::new(dims, kernel, stride)
}

impl PoolBackend for Flex {
    fn max_pool2d_valid(
        x: Tensor<Self, 4>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Tensor<Self, 4> {
        let primitive = x.clone().into_primitive().tensor();
        let Some(shape) = flex_shape(&primitive, kernel, stride) else {
            return burn::tensor::module::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false);
        };
        let (out, _) = pool_forward(&shape, values(&primitive.to_contiguous()));
        Tensor::from_primitive(TensorPrimitive::Float(tensor(out, shape.output_dims())))
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// Where each maximum came from, and the shape.
    type State = (Arc<Vec<u32>>, Shape);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (from, shape) = ops.state;
        if let Some(node) = node {
            let dx = pool_backward(&shape, &from, values(&grad));
            grads.register::<Flex>(node.id, tensor(dx, shape.input));
        }
    }
}

impl<C: CheckpointStrategy> PoolBackend for Autodiff<Flex, C> {
    fn max_pool2d_valid(
        x: Tensor<Self, 4>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Tensor<Self, 4> {
        let xp = x.clone().into_primitive().tensor();
        let Some(shape) = flex_shape(&xp.primitive, kernel, stride) else {
            return burn::tensor::module::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false);
        };
        let (out, from) = pool_forward(&shape, values(&xp.primitive.to_contiguous()));
        let out = tensor(out, shape.output_dims());
        let out = match MaxPoolBackward
            .prepare::<C>([xp.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(from), shape), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}

#[cfg(feature = "cuda")]
impl PoolBackend for burn::backend::Cuda {}

#[cfg(feature = "cuda")]
impl<C: CheckpointStrategy> PoolBackend for Autodiff<burn::backend::Cuda, C> {}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    /// Values and both gradients equal Burn's (random inputs: no ties between window values).
    #[test]
    fn max_pool_and_its_gradient_match_burn() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        for (dims, kernel, stride) in [
            ([3, 4, 32, 30], [2, 2], [2, 2]),
            ([2, 3, 15, 15], [2, 2], [2, 2]),
            ([2, 5, 9, 7], [3, 2], [2, 1]),
        ] {
            let pool = MaxPool2dConfig::new(kernel).with_strides(stride).init();
            let x0 = Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let x = Tensor::<B, 4>::from_inner(x0.clone()).require_grad();
                let y = if ours {
                    forward(&pool, x.clone())
                } else {
                    pool.forward(x.clone())
                };
                let probe = Tensor::<B, 4>::from_inner(
                    Tensor::<Flex, 4>::random(y.dims(), Distribution::Default, &device) + 0.5,
                );
                (x, y, probe)
            };
            let (x_ref, y_ref, probe) = run(false);
            let (x_ours, y_ours, _) = run(true);
            assert_eq!(
                y_ours.clone().inner().into_data(),
                y_ref.clone().inner().into_data()
            );
            let g_ref = (y_ref * probe.clone()).sum().backward();
            let g_ours = (y_ours * probe).sum().backward();
            let (a, b) = (
                x_ours.grad(&g_ours).expect("gradient"),
                x_ref.grad(&g_ref).expect("reference gradient"),
            );
            assert_eq!(
                a.into_data(),
                b.into_data(),
                "{dims:?} {kernel:?} {stride:?}"
            );
        }
    }
}
