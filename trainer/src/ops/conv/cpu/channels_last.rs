//! The weight gradient, and the forward pass of wide convolutions, on a channels-last copy of the
//! padded grid, with no unfolded matrix at all.
//!
//! The image is copied once, transposed, into a zero-padded grid of positions with its `C`
//! channels side by side (`(Hp*Wp + slack) x C`). For kernel row `ty`, the unfolded rows of the
//! `kw` taps of that row are then a strided view of this copy: grid position `j`'s values are the
//! `kw*C` consecutive floats from `(j + ty*dh*Wp)*C` on (`dh` the vertical dilation), so the view is an `n x kw*C` matrix whose
//! rows are `C` apart (they overlap, which a read-only operand may). A convolution is `kh`
//! products over such views instead of one over a `C*kh*kw x n` matrix written out first:
//! - weight gradient: `dW_ty += dY · V_ty` (`C_out x n` times `n x kw*C`), one product per image,
//!   kernel row and block of [`UNPACKED_ROWS`] output channels, into the weight gradient held as
//!   `C_out x kh x kw x C` (taps before channels), which [`taps_last`] turns back into Burn's
//!   order at the end. The unfolded matrix of the NCHW path is never written, and where each
//!   product runs on one thread (the CNN's case: many groups of images, each on its own thread)
//!   and `kw*C` is a multiple of the vector width (16 floats on AVX-512), `gemm` reads the view as
//!   it is, without packing it either.
//! - forward: `Yᵀ += V_ty · W_ty` (`n x kw*C` times `kw*C x C_out`), with the weight in the same
//!   taps-first order ([`taps_first`]); the product is channels-last too, and is transposed into
//!   the NCHW output row by row. `gemm` computes it transposed, with the output channels along
//!   its microkernel's vectors and a depth of `kw*C`, so it pays from [`FORWARD_MIN_CHANNELS`] of
//!   each on.
//!
//! Taken for a stride-1 grid ([`Geometry::grid`]) with no horizontal dilation and at least
//! [`MIN_CHANNELS`] input channels; the rest stays on the NCHW path.

use super::{Geometry, Grid};
use crate::ops::conv::gemm::{matmul, Mat, MatMut, Threads};
use crate::ops::conv::transpose::{transpose, Kernel};

/// Input channels from which the weight gradient is computed channels-last. Measured per
/// 100 images (2 cores, AVX-512): 3 -> 32 channels (the CNN's conv1) 2.4 ms against 4.5 ms
/// channels-last, 8 -> 32 on 32x32 maps 5.0 against 4.4, 32 -> 32 (conv2) 13.7 against 7.8.
const MIN_CHANNELS: usize = 8;
/// Output channels of one weight-gradient product. On one thread, `gemm` reads the view as it is
/// only while the product is at most 8 of its microkernel's columns wide (6 on AVX-512 and AVX2:
/// 48) and packs it first beyond that (16 columns, 96, when it splits a product over threads). Measured per 100 images: 64 -> 64 (the CNN's conv4) 6.3 ms in
/// one product against 5.8 in blocks of 48 (6.1 in blocks of 32); 32 -> 64 (conv3) 4.2 against 3.8.
const UNPACKED_ROWS: usize = 48;
/// Input and output channels from which the forward pass is run channels-last. Measured as
/// above: 16 -> 16 on 32x32 maps 4.1 ms against 4.9, 8 -> 32 3.8 against 4.3, 32 -> 16 8.4
/// against 8.6; 32 -> 32 (conv2) 10.7 against 8.1, 64 -> 64 (conv4) 7.9 against 5.8.
const FORWARD_MIN_CHANNELS: usize = 32;

/// The grid, when the weight gradient is computed channels-last.
pub(super) fn weight_grid(geo: &Geometry) -> Option<Grid> {
    geo.grid()
        .filter(|_| geo.dilation[1] == 1 && geo.in_channels >= MIN_CHANNELS)
}

/// The grid, when the forward pass is run channels-last.
pub(super) fn forward_grid(geo: &Geometry) -> Option<Grid> {
    weight_grid(geo).filter(|_| geo.in_channels.min(geo.out_channels) >= FORWARD_MIN_CHANNELS)
}

/// Copies image `image` of the batch `x` (`C x H x W`) into its channels-last padded grid
/// (`grid.plane() x C`, zero around the image) at the start of `scratch`, and returns that part.
pub(super) fn pad_image<'a>(
    geo: &Geometry,
    grid: Grid,
    x: &[f32],
    image: usize,
    scratch: &'a mut [f32],
    kernel: Kernel,
) -> &'a [f32] {
    let c = geo.in_channels;
    let [h, w] = geo.input;
    let [top, left] = geo.pad;
    let image = &x[image * c * h * w..][..c * h * w];
    let out = &mut scratch[..grid.plane() * c];
    let row_len = grid.width * c;
    let right = (grid.width - left - w) * c;
    out[..top * row_len].fill(0.0);
    out[(top + h) * row_len..].fill(0.0);
    for y in 0..h {
        let row = &mut out[(top + y) * row_len..(top + y + 1) * row_len];
        row[..left * c].fill(0.0);
        row[row_len - right..].fill(0.0);
        transpose(
            kernel,
            &image[y * w..],
            (c, w),
            h * w,
            &mut row[left * c..],
            c,
        );
    }
    out
}

/// Kernel row `ty`'s view of a channels-last grid: `n x kw*C`, rows `C` apart.
fn view<'a>(geo: &Geometry, grid: Grid, padded: &'a [f32], ty: usize) -> Mat<'a> {
    let c = geo.in_channels;
    Mat {
        data: &padded[grid.offset(geo, ty, 0) * c..],
        rows: geo.output[0] * grid.width,
        cols: geo.kernel[1] * c,
        row_stride: c,
        col_stride: 1,
    }
}

/// Adds one image's weight gradient onto `dw` (`C_out x kh x kw x C`): `dy` is its output
/// gradient on the grid (`C_out x OH*Wp`, rows `dy_stride` apart, zero on the grid's extra
/// columns) and `padded` its channels-last grid ([`pad_image`]).
pub(super) fn add_weight_gradient(
    geo: &Geometry,
    grid: Grid,
    padded: &[f32],
    dy: &[f32],
    dy_stride: usize,
    dw: &mut [f32],
    threads: Threads,
) {
    let (co, n) = (geo.out_channels, geo.output[0] * grid.width);
    let row = geo.kernel[1] * geo.in_channels;
    for first in (0..co).step_by(UNPACKED_ROWS) {
        let rows = UNPACKED_ROWS.min(co - first);
        let dy = Mat {
            data: &dy[first * dy_stride..],
            rows,
            cols: n,
            row_stride: dy_stride,
            col_stride: 1,
        };
        for ty in 0..geo.kernel[0] {
            let dst = MatMut {
                data: &mut dw[first * geo.kernel[0] * row + ty * row..],
                rows,
                cols: row,
                row_stride: geo.kernel[0] * row,
            };
            matmul(dst, true, dy, view(geo, grid, padded, ty), threads);
        }
    }
}

/// One image's output, before the bias: `out` (`C_out x OH x OW`) from its channels-last grid
/// `padded`, through `product` (`OH*Wp x C_out` floats of working memory). `weight` is
/// `kh x kw x C x C_out` ([`taps_first`]).
pub(super) fn forward_image(
    geo: &Geometry,
    grid: Grid,
    padded: &[f32],
    weight: &[f32],
    product: &mut [f32],
    out: &mut [f32],
    (kernel, threads): (Kernel, Threads),
) {
    let (co, [oh, ow]) = (geo.out_channels, geo.output);
    let n = oh * grid.width;
    let row = geo.kernel[1] * geo.in_channels;
    for ty in 0..geo.kernel[0] {
        matmul(
            MatMut::rows(&mut product[..n * co], n, co),
            ty > 0,
            view(geo, grid, padded, ty),
            Mat::rows(&weight[ty * row * co..(ty + 1) * row * co], row, co),
            threads,
        );
    }
    for r in 0..oh {
        transpose(
            kernel,
            &product[r * grid.width * co..],
            (ow, co),
            co,
            &mut out[r * ow..],
            oh * ow,
        );
    }
}

/// Burn's weight order `C_out x C x kh x kw` as `kh x kw x C x C_out`, the forward pass's.
pub(super) fn taps_first(geo: &Geometry, weight: &[f32]) -> Vec<f32> {
    let (co, c, taps) = (
        geo.out_channels,
        geo.in_channels,
        geo.kernel[0] * geo.kernel[1],
    );
    let mut out = vec![0.0; weight.len()];
    for o in 0..co {
        for i in 0..c {
            for t in 0..taps {
                out[(t * c + i) * co + o] = weight[(o * c + i) * taps + t];
            }
        }
    }
    out
}

/// A weight gradient held as `C_out x kh x kw x C` back in Burn's order, `C_out x C x kh x kw`.
pub(super) fn taps_last(geo: &Geometry, dw: &mut [f32]) {
    let (c, taps) = (geo.in_channels, geo.kernel[0] * geo.kernel[1]);
    let mut block = vec![0.0; c * taps];
    for filter in dw.chunks_exact_mut(c * taps) {
        for t in 0..taps {
            for i in 0..c {
                block[i * taps + t] = filter[t * c + i];
            }
        }
        filter.copy_from_slice(&block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_orders_round_trip() {
        let geo = Geometry::new([1, 3, 8, 8], [5, 3, 2, 3], [1, 1], [1, 1], [0, 0], [0, 0])
            .expect("geometry");
        let w: Vec<f32> = (0..geo.weight_len()).map(|v| v as f32).collect();
        let first = taps_first(&geo, &w);
        // Output channel 4, input channel 2, tap (1, 2): Burn's index 4*18 + 2*6 + 5.
        assert_eq!(first[(5 * 3 + 2) * 5 + 4], w[4 * 18 + 2 * 6 + 5]);
        // taps_last undoes `C_out x taps x C`.
        let mut held: Vec<f32> = vec![0.0; w.len()];
        for o in 0..5 {
            for t in 0..6 {
                for i in 0..3 {
                    held[(o * 6 + t) * 3 + i] = w[(o * 3 + i) * 6 + t];
                }
            }
        }
        taps_last(&geo, &mut held);
        assert_eq!(held, w);
    }
}
