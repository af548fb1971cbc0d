//! Receptive fields unfolded into a matrix's columns (im2col) and folded back (col2im): per image,
//! or on the zero-padded grid that stride-1 convolutions use, with the tap tables of small maps.

use super::*;

/// `dst = src` for the short rows of a feature map, in eight-wide moves (a call of `memcpy` per
/// row cost more than the copy).
#[inline(always)]
pub(super) fn copy_row(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    if n < 8 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        return;
    }
    let mut eight = |at: usize| {
        let s: [f32; 8] = src[at..at + 8].try_into().expect("eight values");
        let d: &mut [f32; 8] = (&mut dst[at..at + 8]).try_into().expect("eight values");
        *d = s;
    };
    let mut at = 0;
    while at + 8 <= n {
        eight(at);
        at += 8;
    }
    if at < n {
        // The last eight again, overlapping what is already copied.
        eight(n - 8);
    }
}

/// Unfolds one image (`C x H x W`) into columns `first..first + HW` of `col` (rows `ld` apart).
pub(super) fn im2col(geo: &Geometry, image: &[f32], col: &mut [f32], ld: usize, first: usize) {
    if geo.output[1] < 8 {
        return im2col_small(geo, image, col, ld, first);
    }
    let [oh, ow] = geo.output;
    let [kh, kw] = geo.kernel;
    let plane = geo.in_plane();
    let width = geo.input[1];
    let stride = geo.stride[1];
    let spans: Vec<(usize, usize)> = (0..kw).map(|tx| geo.inside(1, tx)).collect();
    for c in 0..geo.in_channels {
        let channel = &image[c * plane..(c + 1) * plane];
        for ty in 0..kh {
            for (tx, &(lo, hi)) in spans.iter().enumerate() {
                let row = (c * kh + ty) * kw + tx;
                let dst = &mut col[row * ld + first..row * ld + first + oh * ow];
                for (y, out) in dst.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = geo.source(0, y, ty) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo < hi {
                        let ix = lo * stride + tx * geo.dilation[1] - geo.pad[1];
                        let src = &channel[iy * width..(iy + 1) * width];
                        if stride == 1 {
                            copy_row(&mut out[lo..hi], &src[ix..ix + hi - lo]);
                        } else {
                            for (o, v) in
                                out[lo..hi].iter_mut().zip(src[ix..].iter().step_by(stride))
                            {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds columns `first..first + HW` of `col` back onto one image's gradient (the transpose of
/// [`im2col`]).
pub(super) fn col2im(geo: &Geometry, col: &[f32], ld: usize, first: usize, image: &mut [f32]) {
    if geo.output[1] < 8 {
        return col2im_small(geo, col, ld, first, image);
    }
    let [oh, ow] = geo.output;
    let [kh, kw] = geo.kernel;
    let plane = geo.in_plane();
    let width = geo.input[1];
    let stride = geo.stride[1];
    let spans: Vec<(usize, usize)> = (0..kw).map(|tx| geo.inside(1, tx)).collect();
    for c in 0..geo.in_channels {
        let channel = &mut image[c * plane..(c + 1) * plane];
        for ty in 0..kh {
            for (tx, &(lo, hi)) in spans.iter().enumerate() {
                let row = (c * kh + ty) * kw + tx;
                let src = &col[row * ld + first..row * ld + first + oh * ow];
                if lo >= hi {
                    continue;
                }
                for (y, values) in src.chunks_exact(ow).enumerate() {
                    let Some(iy) = geo.source(0, y, ty) else {
                        continue;
                    };
                    let ix = lo * stride + tx * geo.dilation[1] - geo.pad[1];
                    let dst = &mut channel[iy * width..(iy + 1) * width];
                    if stride == 1 {
                        for (d, v) in dst[ix..ix + hi - lo].iter_mut().zip(&values[lo..hi]) {
                            *d += *v;
                        }
                    } else {
                        for (d, v) in dst[ix..].iter_mut().step_by(stride).zip(&values[lo..hi]) {
                            *d += *v;
                        }
                    }
                }
            }
        }
    }
}

/// The zero-padded plane of a stride-1 convolution (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grid {
    /// Padded width `Wp`: the distance between grid rows.
    pub(super) width: usize,
    /// Padded height `Hp`.
    pub(super) height: usize,
    /// Zeros after each padded plane, read by the last taps' slices.
    pub(super) slack: usize,
}

impl Grid {
    /// Floats per channel of the padded image.
    pub(super) fn plane(&self) -> usize {
        self.height * self.width + self.slack
    }

    /// Where kernel tap `(ty, tx)`'s slice of a channel's plane starts.
    pub(super) fn offset(&self, geo: &Geometry, ty: usize, tx: usize) -> usize {
        ty * geo.dilation[0] * self.width + tx * geo.dilation[1]
    }
}

/// Copies one image (`C x H x W`) into its zero-padded planes `padded` (`C x grid.plane()`).
pub(super) fn pad(geo: &Geometry, grid: Grid, image: &[f32], padded: &mut [f32]) {
    let [h, w] = geo.input;
    let [top, left] = geo.pad;
    for (channel, plane) in image
        .chunks_exact(h * w)
        .zip(padded.chunks_exact_mut(grid.plane()))
    {
        plane.fill(0.0);
        for (row, src) in channel.chunks_exact(w).enumerate() {
            let at = (top + row) * grid.width + left;
            plane[at..at + w].copy_from_slice(src);
        }
    }
}

/// Unfolds one padded image into columns `first..first + OH*Wp` of `col` (rows `ld` apart): one
/// slice copy per channel and tap.
pub(super) fn unfold_grid(
    geo: &Geometry,
    grid: Grid,
    padded: &[f32],
    col: &mut [f32],
    ld: usize,
    first: usize,
) {
    let n = geo.output[0] * grid.width;
    let [kh, kw] = geo.kernel;
    for (c, plane) in padded.chunks_exact(grid.plane()).enumerate() {
        for ty in 0..kh {
            for tx in 0..kw {
                let row = (c * kh + ty) * kw + tx;
                let from = grid.offset(geo, ty, tx);
                col[row * ld + first..row * ld + first + n].copy_from_slice(&plane[from..from + n]);
            }
        }
    }
}

/// Adds columns `first..first + OH*Wp` of `col` onto one image's padded gradient planes (the
/// transpose of [`unfold_grid`]); `padded` starts at zero.
pub(super) fn fold_grid(
    geo: &Geometry,
    grid: Grid,
    col: &[f32],
    ld: usize,
    first: usize,
    padded: &mut [f32],
) {
    let n = geo.output[0] * grid.width;
    let [kh, kw] = geo.kernel;
    for (c, plane) in padded.chunks_exact_mut(grid.plane()).enumerate() {
        for ty in 0..kh {
            for tx in 0..kw {
                let row = (c * kh + ty) * kw + tx;
                let from = grid.offset(geo, ty, tx);
                let src = &col[row * ld + first..row * ld + first + n];
                for (d, v) in plane[from..from + n].iter_mut().zip(src) {
                    *d += *v;
                }
            }
        }
    }
}

/// The inside of padded planes (`C x grid.plane()`) written to an image (`C x H x W`).
pub(super) fn crop(geo: &Geometry, grid: Grid, padded: &[f32], image: &mut [f32]) {
    let [h, w] = geo.input;
    let [top, left] = geo.pad;
    for (channel, plane) in image
        .chunks_exact_mut(h * w)
        .zip(padded.chunks_exact(grid.plane()))
    {
        for (row, dst) in channel.chunks_exact_mut(w).enumerate() {
            let at = (top + row) * grid.width + left;
            dst.copy_from_slice(&plane[at..at + w]);
        }
    }
}

/// Unfolds image `image` of the batch `x` into columns `first..` of `col`, through `padded` on a
/// grid.
pub(super) fn unfold(
    geo: &Geometry,
    x: &[f32],
    image: usize,
    col: &mut [f32],
    ld: usize,
    first: usize,
    padded: &mut [f32],
) {
    let image_in = geo.in_channels * geo.in_plane();
    let image = &x[image * image_in..(image + 1) * image_in];
    match geo.grid() {
        Some(grid) => {
            pad(geo, grid, image, padded);
            unfold_grid(geo, grid, padded, col, ld, first);
        }
        None => im2col(geo, image, col, ld, first),
    }
}

/// Folds columns `first..` of `col` onto one image's input gradient `dx` (zero before), through
/// `padded` on a grid.
pub(super) fn fold(
    geo: &Geometry,
    col: &[f32],
    ld: usize,
    first: usize,
    dx: &mut [f32],
    padded: &mut [f32],
) {
    match geo.grid() {
        Some(grid) => {
            padded.fill(0.0);
            fold_grid(geo, grid, col, ld, first, padded);
            crop(geo, grid, padded, dx);
        }
        None => col2im(geo, col, ld, first, dx),
    }
}

/// Floats of the padded planes of one image ([`unfold`], [`fold`]); none without a grid.
pub(super) fn padded_len(geo: &Geometry) -> usize {
    geo.grid().map_or(0, |grid| geo.in_channels * grid.plane())
}

/// Where each kernel tap reads for each output position, within one channel: `kh*kw x OH*OW`
/// input indices, [`PADDING`] where the tap falls on padding.
pub(super) fn tap_table(geo: &Geometry) -> Vec<u32> {
    let [oh, ow] = geo.output;
    let [kh, kw] = geo.kernel;
    let mut table = Vec::with_capacity(kh * kw * oh * ow);
    for ty in 0..kh {
        for tx in 0..kw {
            for y in 0..oh {
                for x in 0..ow {
                    table.push(match (geo.source(0, y, ty), geo.source(1, x, tx)) {
                        (Some(iy), Some(ix)) => (iy * geo.input[1] + ix) as u32,
                        _ => PADDING,
                    });
                }
            }
        }
    }
    table
}

pub(super) const PADDING: u32 = u32::MAX;

/// [`im2col`] for maps with short rows (VGG16's last blocks at 32x32): one gather per element
/// through a table, instead of a copy per row segment.
pub(super) fn im2col_small(
    geo: &Geometry,
    image: &[f32],
    col: &mut [f32],
    ld: usize,
    first: usize,
) {
    let hw = geo.out_plane();
    let plane = geo.in_plane();
    let table = tap_table(geo);
    let taps = geo.kernel[0] * geo.kernel[1];
    for (c, channel) in image.chunks_exact(plane).enumerate() {
        for (t, row) in table.chunks_exact(hw).enumerate() {
            let at = (c * taps + t) * ld + first;
            for (d, &i) in col[at..at + hw].iter_mut().zip(row) {
                *d = if i == PADDING {
                    0.0
                } else {
                    channel[i as usize]
                };
            }
        }
    }
}

/// [`col2im`] for maps with short rows, through the same table.
pub(super) fn col2im_small(
    geo: &Geometry,
    col: &[f32],
    ld: usize,
    first: usize,
    image: &mut [f32],
) {
    let hw = geo.out_plane();
    let plane = geo.in_plane();
    let table = tap_table(geo);
    let taps = geo.kernel[0] * geo.kernel[1];
    for (c, channel) in image.chunks_exact_mut(plane).enumerate() {
        for (t, row) in table.chunks_exact(hw).enumerate() {
            let at = (c * taps + t) * ld + first;
            for (v, &i) in col[at..at + hw].iter().zip(row) {
                if i != PADDING {
                    channel[i as usize] += v;
                }
            }
        }
    }
}
