//! RMSprop (the article's CNN optimiser) with its step as one parallel pass on the CPU.
//!
//! Burn's `RmsProp` runs a step as seven tensor operations, each a pass of its own over the
//! parameter, and on the CPU backend each of them on one thread: for the CNN's 1.25 million
//! parameters, most of a step's single-threaded time. [`RmsProp`] is a `SimpleOptimizer` (Burn's
//! extension point for optimisers) that, on `Flex` with `f32` tensors, computes the new parameter
//! and the new square average in one pass on all threads, with the same operations in the same
//! order (so the same bits); on other backends and for the settings it does not cover (momentum,
//! centering, weight decay), it runs Burn's. Its state is Burn's `RmsPropState`, so checkpoints
//! written with either read with both.

use super::{tensor, values};
use burn::optim::{
    CenteredState, LearningRate, RmsPropConfig, RmsPropState, SimpleOptimizer, SquareAvgState,
};
use burn::prelude::*;
use burn::tensor::{DType, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use std::any::{Any, TypeId};

/// RMSprop without momentum, centering or weight decay: `s = alpha*s + (1 - alpha)*g²`, then
/// `p -= lr * g / (sqrt(s) + epsilon)`.
#[derive(Clone)]
pub struct RmsProp {
    alpha: f32,
    epsilon: f32,
    /// Burn's, with the same settings, for the backends without the fused step.
    burn: burn::optim::RmsProp,
}

impl RmsProp {
    /// The optimiser of Burn's `RmsPropConfig` with `alpha` and `epsilon`, momentum 0.
    pub fn new(alpha: f32, epsilon: f32) -> Self {
        let burn = RmsPropConfig::new()
            .with_alpha(alpha)
            .with_epsilon(epsilon)
            .with_momentum(0.0)
            .build();
        RmsProp {
            alpha,
            epsilon,
            burn,
        }
    }

    /// One step on flex tensors: the new parameter and square average, or `None` when a tensor is
    /// not `f32`.
    fn flex_step(
        &self,
        lr: LearningRate,
        param: &FlexTensor,
        grad: &FlexTensor,
        square_avg: Option<&FlexTensor>,
    ) -> Option<(FlexTensor, FlexTensor)> {
        let all_f32 = [Some(param), Some(grad), square_avg]
            .into_iter()
            .flatten()
            .all(|t| t.dtype() == DType::F32);
        if !all_f32 || param.shape() != grad.shape() {
            return None;
        }
        let (param_c, grad_c) = (param.to_contiguous(), grad.to_contiguous());
        let square_c = square_avg.map(FlexTensor::to_contiguous);
        let (p, g) = (values(&param_c), values(&grad_c));
        let s = square_c.as_ref().map(values);
        if s.is_some_and(|s| s.len() != p.len()) {
            return None;
        }
        let (alpha, epsilon) = (self.alpha, self.epsilon);
        // As Burn computes it: `lr` as the element type, each operation rounded in turn.
        let lr = lr as f32;
        let (new_p, new_s): (Vec<f32>, Vec<f32>) = (0..p.len())
            .into_par_iter()
            .with_min_len(1 << 14)
            .map(|i| {
                let square = (g[i] * g[i]) * (1.0 - alpha);
                let s = match s {
                    Some(s) => s[i] * alpha + square,
                    None => square,
                };
                let step = (g[i] / (s.sqrt() + epsilon)) * lr;
                (p[i] - step, s)
            })
            .unzip();
        let shape = param.shape();
        Some((tensor(new_p, shape.clone()), tensor(new_s, shape)))
    }

    /// The fused step on `Flex`, or `None` for Burn's: another backend, another element type, or
    /// a state from a run with momentum or centering.
    fn fused_step<B: Backend, const D: usize>(
        &self,
        lr: LearningRate,
        tensor: &Tensor<B, D>,
        grad: &Tensor<B, D>,
        state: Option<&RmsPropState<B, D>>,
    ) -> Option<(Tensor<B, D>, Option<RmsPropState<B, D>>)> {
        let flex = TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>();
        if !flex || state.is_some_and(|s| s.momentum.is_some() || s.centered.grad_avg.is_some()) {
            return None;
        }
        let square_avg = match state {
            Some(state) => Some(as_flex(&state.square_avg.square_avg)?),
            None => None,
        };
        let (p, s) = self.flex_step(lr, &as_flex(tensor)?, &as_flex(grad)?, square_avg.as_ref())?;
        let s: Tensor<B, D> = from_flex(s)?;
        let state = RmsPropState::new(
            SquareAvgState::new(s.clone()),
            CenteredState::new(None, s),
            None,
        );
        Some((from_flex(p)?, Some(state)))
    }
}

/// `t`'s primitive as a flex tensor, when `B` is `Flex` and `t` is not quantized.
fn as_flex<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<FlexTensor> {
    match t.clone().into_primitive() {
        TensorPrimitive::Float(primitive) => (&primitive as &dyn Any)
            .downcast_ref::<FlexTensor>()
            .cloned(),
        TensorPrimitive::QFloat(_) => None,
    }
}

/// A flex tensor as `B`'s tensor, when `B` is `Flex`.
fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Option<Tensor<B, D>> {
    let primitive = (Box::new(t) as Box<dyn Any>)
        .downcast::<B::FloatTensorPrimitive>()
        .ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(*primitive)))
}

impl<B: Backend> SimpleOptimizer<B> for RmsProp {
    type State<const D: usize> = RmsPropState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let fused = self.fused_step(lr, &tensor, &grad, state.as_ref());
        match fused {
            Some(out) => out,
            None => self.burn.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <burn::optim::RmsProp as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn t(values: Vec<f32>) -> Tensor<Flex, 2> {
        Tensor::from_data(TensorData::new(values, [3, 5]), &Default::default())
    }

    /// Three steps from no state: the same bits as Burn's `RmsProp`, parameter and state.
    #[test]
    fn the_fused_step_is_burns_step_bit_for_bit() {
        let ours = RmsProp::new(0.9, 1e-6);
        let burns = ours.burn.clone();
        let start = t((0..15).map(|i| (i as f32 * 0.37).sin()).collect());
        let (mut p_ours, mut p_burn) = (start.clone(), start.clone());
        let (mut s_ours, mut s_burn) = (None, None);
        for step in 0..3 {
            let grad = t((0..15)
                .map(|i| ((i * 7 + step) as f32 * 0.11).cos() * 0.01)
                .collect());
            // The fused path runs (not Burn's step under another name).
            assert!(ours
                .fused_step(1e-3, &p_ours, &grad, s_ours.as_ref())
                .is_some());
            (p_ours, s_ours) = ours.step(1e-3, p_ours, grad.clone(), s_ours);
            (p_burn, s_burn) = burns.step(1e-3, p_burn, grad, s_burn);
            let bits = |t: &Tensor<Flex, 2>| -> Vec<u32> {
                t.to_data()
                    .to_vec::<f32>()
                    .expect("f32 values")
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&p_ours), bits(&p_burn), "parameter after step {step}");
            let (so, sb): (&RmsPropState<Flex, 2>, &RmsPropState<Flex, 2>) = (
                s_ours.as_ref().expect("a state"),
                s_burn.as_ref().expect("a state"),
            );
            assert_eq!(
                bits(&so.square_avg.square_avg),
                bits(&sb.square_avg.square_avg)
            );
            assert_eq!(bits(&so.centered.avg), bits(&sb.centered.avg));
            assert!(so.momentum.is_none() && so.centered.grad_avg.is_none());
        }
        // The steps moved the parameter.
        assert_ne!(p_ours.to_data(), start.to_data());
    }
}
