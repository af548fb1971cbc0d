//! Dropout for training, with a mask that is cheap to draw on the CPU.
//!
//! Burn's `Dropout` draws a Bernoulli tensor element by element through its generic sampler and
//! then multiplies twice (by the mask, then by `1 / keep`); on the CPU that was about a sixth of
//! the CNN's training time. Here the mask is drawn from a SplitMix64 stream (seeded by one draw
//! from the backend's own generator, so `Backend::seed` still decides every mask and a run is
//! repeatable) with `1 / keep` already in it: one multiplication forward, one backward. Other
//! backends (CUDA) keep drawing the mask on the device, as Burn does.

use crate::rng::Rng;
use burn::backend::{Autodiff, Flex};
use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::Distribution;

/// A backend that can draw dropout masks.
pub trait MaskBackend: Backend {
    /// A tensor of `shape` whose elements are `1 / keep` with probability `keep`, else 0.
    fn keep_mask<const D: usize>(
        shape: [usize; D],
        keep: f64,
        device: &Self::Device,
    ) -> Tensor<Self, D> {
        Tensor::random(shape, Distribution::Bernoulli(keep), device).mul_scalar(1.0 / keep)
    }
}

impl MaskBackend for Flex {
    fn keep_mask<const D: usize>(
        shape: [usize; D],
        keep: f64,
        device: &Self::Device,
    ) -> Tensor<Self, D> {
        // 64 bits from the backend's generator: four draws of 16.
        let draws =
            Tensor::<Flex, 1, Int>::random([4], Distribution::Uniform(0.0, 65536.0), device);
        let seed = draws
            .into_data()
            .iter::<i64>()
            .fold(0u64, |seed, v| (seed << 16) | (v as u64 & 0xffff));
        let values = mask(shape.iter().product(), keep, seed);
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> MaskBackend
    for Autodiff<Flex, C>
{
    fn keep_mask<const D: usize>(
        shape: [usize; D],
        keep: f64,
        device: &Self::Device,
    ) -> Tensor<Self, D> {
        // A constant of the graph: its gradient is never needed.
        Tensor::from_inner(Flex::keep_mask(shape, keep, device))
    }
}

#[cfg(feature = "cuda")]
impl MaskBackend for burn::backend::Cuda {}

#[cfg(feature = "cuda")]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> MaskBackend
    for Autodiff<burn::backend::Cuda, C>
{
}

/// Mask values drawn per part, in parallel (even, so that each part starts on a whole draw).
const MASK_PART: usize = 1 << 15;

/// `n` mask values: `1 / keep` with probability `keep` (to 2⁻³²), else 0. Value `i` comes from
/// half of draw `i / 2` of one SplitMix64 stream; the parts are drawn in parallel, each from its
/// place in the stream, so the mask does not depend on the number of threads.
fn mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    use rayon::prelude::*;
    let threshold = (keep.clamp(0.0, 1.0) * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut values = super::zeros(n);
    values
        .par_chunks_mut(MASK_PART)
        .enumerate()
        .for_each(|(part, values)| {
            let mut rng = Rng::new(seed);
            rng.skip((part * MASK_PART / 2) as u64);
            for pair in values.chunks_mut(2) {
                let bits = rng.next();
                for (v, half) in pair.iter_mut().zip([bits & 0xffff_ffff, bits >> 32]) {
                    *v = if half < threshold { scale } else { 0.0 };
                }
            }
        });
    values
}

/// Applies `dropout` to `x` while training (on an autodiff backend); the identity otherwise, as
/// `Dropout::forward`.
pub fn forward<B: MaskBackend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    if !B::ad_enabled(&x.device()) || dropout.prob == 0.0 {
        return x;
    }
    let mask = B::keep_mask(x.dims(), 1.0 - dropout.prob, &x.device());
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_asked_share_scaled_and_repeat_with_the_seed() {
        let m = mask(100_001, 0.75, 9);
        assert_eq!(m.len(), 100_001);
        let kept = m.iter().filter(|v| **v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        assert!(m
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
        assert_eq!(m, mask(100_001, 0.75, 9));
        assert_ne!(m, mask(100_001, 0.75, 10));
        // Drawn in parts, the mask is the one stream's, draw after draw.
        let mut rng = Rng::new(9);
        let serial: Vec<f32> = (0..m.len().div_ceil(2))
            .flat_map(|_| {
                let bits = rng.next();
                [bits & 0xffff_ffff, bits >> 32]
            })
            .take(m.len())
            .map(|half| {
                if half < (0.75 * 4_294_967_296.0) as u64 {
                    (1.0 / 0.75f64) as f32
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(m, serial);
    }

    #[test]
    fn dropout_is_the_identity_outside_training_and_scales_the_mean_within() {
        let device = Default::default();
        let dropout = burn::nn::DropoutConfig::new(0.5).init();
        let x = Tensor::<Flex, 2>::ones([200, 500], &device);
        let same = forward(&dropout, x.clone());
        assert_eq!(same.into_data(), x.clone().into_data());
        let trained = forward(&dropout, Tensor::<Autodiff<Flex>, 2>::from_inner(x));
        let mean = trained.inner().mean().into_scalar();
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    }
}
