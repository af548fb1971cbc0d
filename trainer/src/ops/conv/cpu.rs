//! 2-D convolution and both of its gradients on the CPU, as large matrix products.
//!
//! Everything is NCHW `f32`. Images are taken in groups of `g` (so that one product has at least
//! [`TARGET_COLUMNS`] columns even when the maps are small, as in VGG16's block 5); a group's
//! receptive fields are unfolded into a `K x g*HW` matrix (`K = C_in * kh * kw`, im2col) that
//! stays in cache, and then:
//! - forward: `Y = W · col` (`C_out x K` times `K x g*HW`), plus the bias;
//! - weight gradient: `dW += dY · colᵀ`, one product per group;
//! - input gradient: `dcol = Wᵀ · dY`, folded back onto the input (col2im);
//! - bias gradient: the sum of `dY` over images and positions.
//!
//! With stride 1 (all of the two models' convolutions) the unfolding is done on a grid: the image
//! is copied once into a zero-padded plane `Hp x Wp`, and a kernel tap's row of the matrix is then
//! one contiguous slice of that plane, `OH` grid rows of `Wp` (the padded width) from the tap's
//! offset on. The `Wp - OW` extra columns of each grid row are computed and dropped (the output's
//! gradient is zero there), which costs at most a fifth more columns ([`Geometry::grid`]) and
//! saves a copy call per output row: on 13- to 32-wide maps that was most of the unfolding's time.
//!
//! On such a grid with at least eight input channels and no horizontal dilation the weight
//! gradient, and with at least 32 input and output channels the forward pass, are computed from a
//! channels-last copy of the padded image instead, with no unfolded matrix ([`channels_last`]).
//!
//! Groups run in parallel on rayon's pool. The weight and bias gradients are summed per fixed
//! range of groups and then in range order, so the result does not depend on the thread count
//! or on scheduling: the same inputs give the same bits.
//!
//! The file holds one algorithm, the grouped forward and backward passes with their fixed-order
//! sums (about 700 lines with its tests' 170); the unfolding is in [`unfold`], the channels-last
//! products in [`channels_last`].

mod channels_last;
mod unfold;

use super::gemm::{matmul, Mat, MatMut, Threads};
use super::transpose::Kernel;
use crate::ops::zeros;
use rayon::prelude::*;
use unfold::*;

/// Columns a product should have at least; smaller maps are taken several images at a time.
const TARGET_COLUMNS: usize = 512;
/// At most this many partial weight gradients are kept (and summed in order).
const MAX_PARTIALS: usize = 16;
/// ... and at most this many bytes of them.
const PARTIAL_BYTES: usize = 64 << 20;

/// The shape of one convolution: sizes, stride, padding (which may differ on each side) and
/// dilation. One group of channels (`groups == 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Padding before (top, left); the output size already accounts for the padding after.
    pub pad: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl Geometry {
    /// The geometry of a convolution with padding `pad_begin` before and `pad_end` after each
    /// axis, or `None` when the kernel does not fit or a size is zero.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        dilation: [usize; 2],
        pad_begin: [usize; 2],
        pad_end: [usize; 2],
    ) -> Option<Self> {
        let [batch, in_channels, h, w] = x;
        let [out_channels, w_in, kh, kw] = weight;
        // Positions within a plane are kept as `u32` (see `tap_table`).
        if w_in != in_channels
            || h.checked_mul(w).is_none_or(|n| n > u32::MAX as usize)
            || [batch, in_channels, out_channels, h, w, kh, kw].contains(&0)
            || stride.contains(&0)
            || dilation.contains(&0)
        {
            return None;
        }
        let out = |axis: usize, size: usize, k: usize| -> Option<usize> {
            let span = dilation[axis].checked_mul(k - 1)? + 1;
            let padded = size + pad_begin[axis] + pad_end[axis];
            padded.checked_sub(span).map(|room| room / stride[axis] + 1)
        };
        Some(Geometry {
            batch,
            in_channels,
            out_channels,
            input: [h, w],
            kernel: [kh, kw],
            stride,
            dilation,
            pad: pad_begin,
            output: [out(0, h, kh)?, out(1, w, kw)?],
        })
    }

    fn in_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn out_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Rows of the unfolded matrix: one per input channel and kernel tap.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_plane()
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.taps()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_plane()
    }

    /// The padded grid, for a convolution with stride 1 whose padded rows are at most a fifth
    /// wider than its output rows.
    fn grid(&self) -> Option<Grid> {
        let [oh, ow] = self.output;
        let [kh, kw] = self.kernel;
        let [dh, dw] = self.dilation;
        let width = ow + (kw - 1) * dw;
        (self.stride == [1, 1] && width * 5 <= ow * 6).then(|| Grid {
            width,
            height: oh + (kh - 1) * dh,
            // The last tap's slice runs past the plane's last row by this much.
            slack: (kw - 1) * dw,
        })
    }

    /// Columns of the unfolded matrix per image: output positions, or grid positions.
    fn columns(&self) -> usize {
        match self.grid() {
            Some(grid) => self.output[0] * grid.width,
            None => self.out_plane(),
        }
    }

    /// Images per group.
    fn group(&self) -> usize {
        TARGET_COLUMNS.div_ceil(self.columns()).clamp(1, self.batch)
    }

    /// For output index `o` along `axis` and kernel tap `t`, the input index, if inside.
    fn source(&self, axis: usize, o: usize, t: usize) -> Option<usize> {
        (o * self.stride[axis] + t * self.dilation[axis])
            .checked_sub(self.pad[axis])
            .filter(|&i| i < self.input[axis])
    }

    /// The output indices along `axis` whose input index for tap `t` is inside: `lo..hi`.
    fn inside(&self, axis: usize, t: usize) -> (usize, usize) {
        let n = self.output[axis];
        let lo = (0..n).find(|&o| self.source(axis, o, t).is_some());
        match lo {
            None => (0, 0),
            Some(lo) => {
                let hi = (lo..n)
                    .find(|&o| self.source(axis, o, t).is_none())
                    .unwrap_or(n);
                (lo, hi)
            }
        }
    }
}

/// Floats of working memory a thread keeps between calls (64 MiB).
const KEPT_SCRATCH: usize = 16 << 20;

thread_local! {
    /// Each thread's working memory (unfolded images, products), kept between calls.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's working memory (contents unspecified: `f` writes
/// before it reads).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            let result = f(&mut buffer[..len]);
            // Large images (VGG16 at 224 pixels) need hundreds of MB: not kept between calls.
            if buffer.len() > KEPT_SCRATCH {
                *buffer = Vec::new();
            }
            result
        }
        // Already in use further up this thread's stack (a nested call): a buffer of its own.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// The sum of `values` in a fixed order that vectorises: sixteen running sums, then theirs.
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = values.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Enough groups to share out run in parallel, each product on one thread; a few are run one
/// after another, each product on all threads.
fn threads_for(groups: usize) -> Threads {
    if groups >= 4 {
        Threads::One
    } else {
        Threads::All
    }
}

/// The groups of images, as index ranges.
fn groups(geo: &Geometry) -> Vec<(usize, usize)> {
    let g = geo.group();
    (0..geo.batch)
        .step_by(g)
        .map(|start| (start, (start + g).min(geo.batch)))
        .collect()
}

/// The distance between rows of the unfolded columns: the grid's width, or the output's.
fn row_width(geo: &Geometry) -> usize {
    geo.grid().map_or(geo.output[1], |grid| grid.width)
}

/// The forward pass of the images `first..end` into their outputs `out`.
#[allow(clippy::too_many_arguments)]
fn forward_group(
    geo: &Geometry,
    x: &[f32],
    weight: &[f32],
    channels_last: Option<(Grid, &[f32])>,
    bias: Option<&[f32]>,
    relu: bool,
    (first, end): (usize, usize),
    out: &mut [f32],
    threads: Threads,
) {
    let (k, n, co) = (geo.taps(), geo.columns(), geo.out_channels);
    let hw = geo.out_plane();
    let (ow, width) = (geo.output[1], row_width(geo));
    let image_out = co * hw;
    let cols = (end - first) * n;
    // The unfolded matrix only on the NCHW path.
    let col_len = if channels_last.is_some() { 0 } else { k * cols };
    with_scratch(col_len + co * cols + padded_len(geo), |scratch| {
        let (col, rest) = scratch.split_at_mut(col_len);
        let (y, padded) = rest.split_at_mut(co * cols);
        if let Some((grid, weight)) = channels_last {
            let kernel = Kernel::detect();
            for (image, out) in (first..end).zip(out.chunks_exact_mut(image_out)) {
                let padded = channels_last::pad_image(geo, grid, x, image, padded, kernel);
                channels_last::forward_image(geo, grid, padded, weight, y, out, (kernel, threads));
            }
        } else {
            for (j, image) in (first..end).enumerate() {
                unfold(geo, x, image, col, cols, j * n, padded);
            }
            let weight = Mat::rows(weight, co, k);
            if n == hw && end - first == 1 {
                let dst = MatMut::rows(out, co, hw);
                matmul(dst, false, weight, Mat::rows(col, k, cols), threads);
            } else {
                let dst = MatMut::rows(y, co, cols);
                matmul(dst, false, weight, Mat::rows(col, k, cols), threads);
                for (j, image) in out.chunks_exact_mut(image_out).enumerate() {
                    for (c, plane) in image.chunks_exact_mut(hw).enumerate() {
                        let src = &y[c * cols + j * n..c * cols + (j + 1) * n];
                        if n == hw {
                            plane.copy_from_slice(src);
                        } else {
                            let rows = plane.chunks_exact_mut(ow).zip(src.chunks_exact(width));
                            for (dst, row) in rows {
                                dst.copy_from_slice(&row[..ow]);
                            }
                        }
                    }
                }
            }
        }
        // The bias, then the ReLU, in one pass while the group is in cache.
        if bias.is_some() || relu {
            for image in out.chunks_exact_mut(image_out) {
                for (c, plane) in image.chunks_exact_mut(hw).enumerate() {
                    let b = bias.map_or(0.0, |b| b[c]);
                    if relu {
                        plane.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
                    } else {
                        plane.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
        }
    });
}

/// Forward pass: `x` is `N x C_in x H x W`, `weight` `C_out x C_in x kh x kw`; returns
/// `N x C_out x OH x OW`, with the ReLU applied when `relu` (on each group while it is in cache,
/// instead of a pass of its own over the whole output).
pub fn forward(
    geo: &Geometry,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), geo.input_len(), "conv2d: input size");
    assert_eq!(weight.len(), geo.weight_len(), "conv2d: weight size");
    assert!(
        bias.is_none_or(|b| b.len() == geo.out_channels),
        "conv2d: bias size"
    );
    let image_out = geo.out_channels * geo.out_plane();
    let g = geo.group();
    let mut out = zeros(geo.output_len());
    let groups = groups(geo);
    let threads = threads_for(groups.len());
    let taps_first =
        channels_last::forward_grid(geo).map(|grid| (grid, channels_last::taps_first(geo, weight)));
    let run = |range, out: &mut [f32]| {
        forward_group(
            geo,
            x,
            weight,
            taps_first.as_ref().map(|(grid, w)| (*grid, w.as_slice())),
            bias,
            relu,
            range,
            out,
            threads,
        )
    };
    match threads {
        Threads::One => out
            .par_chunks_mut(g * image_out)
            .zip(groups)
            .for_each(|(out, range)| run(range, out)),
        Threads::All => {
            for (out, range) in out.chunks_mut(g * image_out).zip(groups) {
                run(range, out);
            }
        }
    }
    out
}

/// Which gradients to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients of a convolution, those that were asked for.
#[derive(Debug, Default)]
pub struct Gradients {
    pub input: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

/// Copies `src` into `dst`; where a ReLU followed the convolution, only where its output
/// `relu_output` is positive (its gradient is zero elsewhere).
fn copy_grad(dst: &mut [f32], src: &[f32], relu_output: Option<&[f32]>) {
    match relu_output {
        None => dst.copy_from_slice(src),
        Some(y) => {
            let n = dst.len();
            let (src, y) = (&src[..n], &y[..n]);
            // Branch-free, so that it vectorises: the gradient's bits, or all of them cleared.
            for ((d, s), y) in dst.iter_mut().zip(src).zip(y) {
                let keep = u32::from(*y > 0.0).wrapping_neg();
                *d = f32::from_bits(s.to_bits() & keep);
            }
        }
    }
}

/// The output gradient of the images `first..end` as one `C_out x g*n` matrix, in `scratch`
/// (zero on the grid's extra columns, and where the ReLU's output `relu_output` is not
/// positive), or `grad`'s own slice when one image fills it as it is.
fn group_output_grad<'a>(
    geo: &Geometry,
    grad: &'a [f32],
    relu_output: Option<&[f32]>,
    (first, end): (usize, usize),
    scratch: &'a mut [f32],
) -> &'a [f32] {
    let (n, co, hw) = (geo.columns(), geo.out_channels, geo.out_plane());
    let (ow, width) = (geo.output[1], row_width(geo));
    let image_out = co * hw;
    let cols = (end - first) * n;
    if n == hw && end - first == 1 && relu_output.is_none() {
        return &grad[first * image_out..(first + 1) * image_out];
    }
    for (j, image) in (first..end).enumerate() {
        for c in 0..co {
            let at = image * image_out + c * hw;
            let src = &grad[at..at + hw];
            let y = relu_output.map(|y| &y[at..at + hw]);
            let dst = &mut scratch[c * cols + j * n..c * cols + (j + 1) * n];
            if n == hw {
                copy_grad(dst, src, y);
            } else {
                for (row, (d, s)) in dst
                    .chunks_exact_mut(width)
                    .zip(src.chunks_exact(ow))
                    .enumerate()
                {
                    copy_grad(&mut d[..ow], s, y.map(|y| &y[row * ow..(row + 1) * ow]));
                    d[ow..].fill(0.0);
                }
            }
        }
    }
    scratch
}

/// The input gradients of a range of groups into `dx` (when wanted; the range's own images),
/// and their weight and bias gradients added to `partial` (when wanted).
#[allow(clippy::too_many_arguments)]
fn backward_range(
    geo: &Geometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    relu_output: Option<&[f32]>,
    wanted: Wanted,
    range: &[(usize, usize)],
    mut dx: Option<&mut [f32]>,
    partial: Option<&mut [f32]>,
    channels_last_weight: Option<Grid>,
    threads: Threads,
) {
    let (k, n, co) = (geo.taps(), geo.columns(), geo.out_channels);
    let image_in = geo.in_channels * geo.in_plane();
    let (mut dw, mut db) = match partial {
        Some(p) => {
            let (dw, db) = p.split_at_mut(geo.weight_len());
            (Some(dw), Some(db))
        }
        None => (None, None),
    };
    let base = range.first().map_or(0, |r| r.0);
    for &(first, end) in range {
        let cols = (end - first) * n;
        // The unfolded matrix for an NCHW weight gradient, its gradient for a folded input
        // gradient; neither on the other paths.
        let by_taps = geo.grid().filter(|_| end - first == 1);
        let unfolded = wanted.weight && channels_last_weight.is_none();
        let col_len = if unfolded { k * cols } else { 0 };
        let dcol_len = if dx.is_some() && by_taps.is_none() {
            k * cols
        } else {
            0
        };
        with_scratch(
            col_len + dcol_len + co * cols + padded_len(geo),
            |scratch| {
                let (col, rest) = scratch.split_at_mut(col_len);
                let (dcol, rest) = rest.split_at_mut(dcol_len);
                let (dy, padded) = rest.split_at_mut(co * cols);
                let dy = group_output_grad(geo, grad, relu_output, (first, end), dy);
                if let (true, Some(db)) = (wanted.bias, db.as_deref_mut()) {
                    for (b, row) in db.iter_mut().zip(dy.chunks_exact(cols)) {
                        *b += sum(row);
                    }
                }
                if let (Some(dw), Some(grid)) = (dw.as_deref_mut(), channels_last_weight) {
                    let kernel = Kernel::detect();
                    for (j, image) in (first..end).enumerate() {
                        let padded = channels_last::pad_image(geo, grid, x, image, padded, kernel);
                        let dy = &dy[j * n..];
                        channels_last::add_weight_gradient(
                            geo, grid, padded, dy, cols, dw, threads,
                        );
                    }
                } else if let (true, Some(dw)) = (wanted.weight, dw.as_deref_mut()) {
                    for (j, image) in (first..end).enumerate() {
                        unfold(geo, x, image, col, cols, j * n, padded);
                    }
                    matmul(
                        MatMut::rows(dw, co, k),
                        true,
                        Mat::rows(dy, co, cols),
                        Mat::rows(col, k, cols).t(),
                        threads,
                    );
                }
                if let Some(dx) = dx.as_deref_mut() {
                    if let Some(grid) = by_taps {
                        let local = first - base;
                        let dx = &mut dx[local * image_in..(local + 1) * image_in];
                        fold_by_taps(geo, grid, weight, dy, dx, padded, threads);
                        return;
                    }
                    matmul(
                        MatMut::rows(dcol, k, cols),
                        false,
                        Mat::rows(weight, co, k).t(),
                        Mat::rows(dy, co, cols),
                        threads,
                    );
                    for (j, image) in (first..end).enumerate() {
                        let local = image - base;
                        fold(
                            geo,
                            dcol,
                            cols,
                            j * n,
                            &mut dx[local * image_in..(local + 1) * image_in],
                            padded,
                        );
                    }
                }
            },
        );
    }
}

/// The input gradient of one image on a grid, without unfolding: each kernel tap's product
/// `W_tapᵀ · dY` (`C_in x C_out` times `C_out x OH*Wp`) is added straight onto the tap's slice of
/// the padded gradient planes, which stay in cache, instead of a `K x OH*Wp` matrix written out
/// and folded back in a second pass.
fn fold_by_taps(
    geo: &Geometry,
    grid: Grid,
    weight: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    padded: &mut [f32],
    threads: Threads,
) {
    let (k, co, ci) = (geo.taps(), geo.out_channels, geo.in_channels);
    let n = geo.output[0] * grid.width;
    let [kh, kw] = geo.kernel;
    let plane = grid.plane();
    padded.fill(0.0);
    for ty in 0..kh {
        for tx in 0..kw {
            let tap = ty * kw + tx;
            let from = grid.offset(geo, ty, tx);
            // W_tap: `C_out x C_in`, element (o, i) at o*K + i*kh*kw + tap.
            let w_tap = Mat {
                data: &weight[tap..],
                rows: co,
                cols: ci,
                row_stride: k,
                col_stride: kh * kw,
            };
            let dst = MatMut {
                data: &mut padded[from..],
                rows: ci,
                cols: n,
                row_stride: plane,
            };
            matmul(
                dst,
                true,
                w_tap.t(),
                Mat::rows(&dy[..co * n], co, n),
                threads,
            );
        }
    }
    crop(geo, grid, padded, dx);
}

/// Backward pass: the gradients with respect to the input, the weight and the bias, given the
/// forward inputs and `grad` (the gradient of the output, `N x C_out x OH x OW`). When a ReLU
/// followed the convolution ([`forward`] with `relu`), `relu_output` is its output and `grad` the
/// gradient of that: it is masked on the way in.
pub fn backward(
    geo: &Geometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    relu_output: Option<&[f32]>,
    wanted: Wanted,
) -> Gradients {
    assert_eq!(x.len(), geo.input_len(), "conv2d backward: input size");
    assert_eq!(
        weight.len(),
        geo.weight_len(),
        "conv2d backward: weight size"
    );
    assert_eq!(
        grad.len(),
        geo.output_len(),
        "conv2d backward: gradient size"
    );
    assert!(
        relu_output.is_none_or(|y| y.len() == geo.output_len()),
        "conv2d backward: ReLU output size"
    );
    let image_in = geo.in_channels * geo.in_plane();
    let co = geo.out_channels;
    let g = geo.group();
    let groups = groups(geo);
    // Fixed ranges of groups, each with its own partial weight and bias gradients.
    let partial_len = geo.weight_len() + co;
    let ranges = groups
        .len()
        .min(MAX_PARTIALS)
        .min((PARTIAL_BYTES / (4 * partial_len)).max(1));
    let per_range = groups.len().div_ceil(ranges);
    let threads = threads_for(groups.len());
    let sums = wanted.weight || wanted.bias;
    let mut dx = wanted.input.then(|| zeros(geo.input_len()));
    // The grid of a channels-last weight gradient, held taps first until the end.
    let channels_last_weight = channels_last::weight_grid(geo).filter(|_| wanted.weight);

    let run = |range: &[(usize, usize)], dx: Option<&mut [f32]>, partial: Option<&mut [f32]>| {
        backward_range(
            geo,
            x,
            weight,
            grad,
            relu_output,
            wanted,
            range,
            dx,
            partial,
            channels_last_weight,
            threads,
        );
    };

    let ranges: Vec<&[(usize, usize)]> = groups.chunks(per_range).collect();
    let mut partials = vec![0.0f32; if sums { ranges.len() * partial_len } else { 0 }];
    let mut dx_parts: Vec<Option<&mut [f32]>> = match dx.as_deref_mut() {
        Some(dx) => dx.chunks_mut(per_range * g * image_in).map(Some).collect(),
        None => Vec::new(),
    };
    dx_parts.resize_with(ranges.len(), || None);
    let mut partial_parts: Vec<Option<&mut [f32]>> =
        partials.chunks_mut(partial_len.max(1)).map(Some).collect();
    partial_parts.resize_with(ranges.len(), || None);
    let work = ranges.into_iter().zip(dx_parts).zip(partial_parts);
    match threads {
        Threads::One => work
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(|((range, dx), partial)| run(range, dx, partial)),
        Threads::All => work.for_each(|((range, dx), partial)| run(range, dx, partial)),
    }

    let mut total = if partials.len() == partial_len {
        partials
    } else {
        let mut total = vec![0.0f32; partial_len];
        for partial in partials.chunks_exact(partial_len) {
            total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
        }
        total
    };
    let db = total.split_off(geo.weight_len());
    if channels_last_weight.is_some() {
        channels_last::taps_last(geo, &mut total);
    }
    Gradients {
        input: dx,
        weight: wanted.weight.then_some(total),
        bias: wanted.bias.then_some(db),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    /// A direct six-loop convolution, the definition itself.
    fn naive_forward(geo: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let [oh, ow] = geo.output;
        let [kh, kw] = geo.kernel;
        let [h, wd] = geo.input;
        let mut out = vec![0.0; geo.output_len()];
        for n in 0..geo.batch {
            for o in 0..geo.out_channels {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut sum = 0.0;
                        for c in 0..geo.in_channels {
                            for ty in 0..kh {
                                for tx in 0..kw {
                                    let iy = (y * geo.stride[0] + ty * geo.dilation[0]) as isize
                                        - geo.pad[0] as isize;
                                    let ix = (xo * geo.stride[1] + tx * geo.dilation[1]) as isize
                                        - geo.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((n * geo.in_channels + c) * h + iy as usize) * wd
                                        + ix as usize;
                                    let wi = ((o * geo.in_channels + c) * kh + ty) * kw + tx;
                                    sum += x[xi] * w[wi];
                                }
                            }
                        }
                        out[((n * geo.out_channels + o) * oh + y) * ow + xo] = sum;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn forward_matches_the_definition() {
        for (x, w, stride, dilation, pad_begin, pad_end) in [
            ([2, 3, 7, 6], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
            ([3, 2, 9, 5], [5, 2, 3, 2], [2, 1], [1, 2], [0, 2], [1, 0]),
            ([40, 3, 2, 2], [2, 3, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
            // On the padded grid: one image, then groups of three.
            ([1, 3, 9, 20], [4, 3, 3, 3], [1, 1], [1, 1], [1, 2], [0, 1]),
            ([7, 2, 12, 16], [3, 2, 3, 5], [1, 1], [2, 1], [2, 0], [2, 4]),
        ] {
            let geo = Geometry::new(x, w, stride, dilation, pad_begin, pad_end).expect("geometry");
            let xs = values(geo.input_len(), 1);
            let ws = values(geo.weight_len(), 2);
            let got = forward(&geo, &xs, &ws, None, false);
            let want = naive_forward(&geo, &xs, &ws);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{geo:?}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn stride_one_on_wide_maps_is_unfolded_on_a_grid() {
        let geo = |x, w, stride, pad: [usize; 2]| {
            Geometry::new(x, w, stride, [1, 1], pad, pad).expect("geometry")
        };
        // The CNN's four convolutions.
        for (x, w, pad) in [
            ([2, 3, 32, 32], [32, 3, 3, 3], [1, 1]),
            ([2, 32, 32, 32], [32, 32, 3, 3], [0, 0]),
            ([2, 32, 15, 15], [64, 32, 3, 3], [1, 1]),
            ([2, 64, 15, 15], [64, 64, 3, 3], [0, 0]),
        ] {
            let g = geo(x, w, [1, 1], pad).grid().expect("a grid");
            assert_eq!(g.width, x[3] + 2 * pad[1]);
            assert_eq!(g.height, x[2] + 2 * pad[0]);
        }
        // Strided, or padding as wide as the map: row by row.
        assert!(geo([1, 3, 32, 32], [4, 3, 3, 3], [2, 2], [1, 1])
            .grid()
            .is_none());
        assert!(geo([1, 3, 2, 2], [4, 3, 3, 3], [1, 1], [1, 1])
            .grid()
            .is_none());
    }

    /// The CNN's conv2 to conv4 take the channels-last paths, conv1 (3 input channels) the NCHW
    /// one: the gradient tests of those shapes check the path they are meant to.
    #[test]
    fn the_cnn_convolutions_take_the_channels_last_paths_from_conv2_on() {
        let geo = |x, w, pad: usize| {
            Geometry::new(x, w, [1, 1], [1, 1], [pad, pad], [pad, pad]).expect("geometry")
        };
        let conv1 = geo([2, 3, 32, 32], [32, 3, 3, 3], 1);
        assert!(channels_last::weight_grid(&conv1).is_none());
        assert!(channels_last::forward_grid(&conv1).is_none());
        for (x, w, pad) in [
            ([2, 32, 32, 32], [32, 32, 3, 3], 0),
            ([2, 32, 15, 15], [64, 32, 3, 3], 1),
            ([2, 64, 15, 15], [64, 64, 3, 3], 0),
        ] {
            let g = geo(x, w, pad);
            assert_eq!(channels_last::weight_grid(&g), g.grid());
            assert!(channels_last::forward_grid(&g).is_some());
        }
        // Horizontal dilation stays NCHW.
        let dilated = Geometry::new(
            [1, 32, 12, 30],
            [32, 32, 3, 3],
            [1, 1],
            [1, 2],
            [1, 2],
            [1, 2],
        )
        .expect("geometry");
        assert!(dilated.grid().is_some() && channels_last::weight_grid(&dilated).is_none());
    }

    #[test]
    fn sizes_that_do_not_fit_have_no_geometry() {
        assert!(
            Geometry::new([1, 3, 2, 2], [4, 3, 3, 3], [1, 1], [1, 1], [0, 0], [0, 0]).is_none()
        );
        assert!(
            Geometry::new([1, 3, 8, 8], [4, 2, 3, 3], [1, 1], [1, 1], [0, 0], [0, 0]).is_none()
        );
        assert!(
            Geometry::new([1, 3, 8, 8], [4, 3, 3, 3], [0, 1], [1, 1], [0, 0], [0, 0]).is_none()
        );
        assert!(
            Geometry::new([0, 3, 8, 8], [4, 3, 3, 3], [1, 1], [1, 1], [0, 0], [0, 0]).is_none()
        );
    }

    /// Gradients summed over many groups are the same bits on one thread and on several.
    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let geo = Geometry::new(
            [50, 8, 12, 12],
            [16, 8, 3, 3],
            [1, 1],
            [1, 1],
            [1, 1],
            [1, 1],
        )
        .expect("geometry");
        let (x, w, dy) = (
            values(geo.input_len(), 3),
            values(geo.weight_len(), 4),
            values(geo.output_len(), 5),
        );
        let all = Wanted {
            input: true,
            weight: true,
            bias: true,
        };
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| backward(&geo, &x, &w, &dy, None, all))
        };
        let (one, four) = (on(1), on(4));
        assert_eq!(one.weight, four.weight);
        assert_eq!(one.bias, four.bias);
        assert_eq!(one.input, four.input);
        assert!(one.weight.is_some_and(|dw| dw.iter().any(|v| *v != 0.0)));
    }
}
