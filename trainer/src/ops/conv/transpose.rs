//! Matrix transposes for layout changes (NCHW to channels-last and back), in 8 x 8 tiles.
//!
//! With AVX2 (chosen at run time, through `pulp`'s safe wrappers of the instructions) a tile is
//! eight loads, 24 shuffles and eight stores; elsewhere it is moved element by element. Edges
//! narrower than a tile are covered by a last tile that overlaps the one before it (a transpose
//! may write an element twice), so every tile is a full one when both sides are at least 8.

/// How tiles are moved.
#[derive(Debug, Clone, Copy)]
pub enum Kernel {
    /// Element by element, on any CPU.
    Portable,
    /// AVX2 shuffles.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx2(pulp::x86::V3),
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return Kernel::Avx2(simd);
        }
        Kernel::Portable
    }

    /// Every kernel this CPU runs, the portable one first.
    pub fn all() -> Vec<Self> {
        let mut all = vec![Kernel::Portable];
        if !matches!(Self::detect(), Kernel::Portable) {
            all.push(Self::detect());
        }
        all
    }
}

const T: usize = 8;

/// `dst[j * dst_stride + i] = src[i * src_stride + j]` for `i < rows`, `j < cols`.
///
/// # Panics
/// When a slice is too short for the shape and strides.
pub fn transpose(
    kernel: Kernel,
    src: &[f32],
    (rows, cols): (usize, usize),
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        src.len() > (rows - 1) * src_stride + cols - 1
            && dst.len() > (cols - 1) * dst_stride + rows - 1,
        "transpose: a slice is shorter than its shape"
    );
    if rows < T || cols < T {
        for i in 0..rows {
            for j in 0..cols {
                dst[j * dst_stride + i] = src[i * src_stride + j];
            }
        }
        return;
    }
    let shape = (rows, cols, src_stride, dst_stride);
    match kernel {
        Kernel::Portable => tiles(shape, src, dst, |s, d| {
            tile_portable(s, src_stride, d, dst_stride)
        }),
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Kernel::Avx2(simd) => simd.vectorize(
            #[inline(always)]
            || {
                tiles(shape, src, dst, |s, d| {
                    avx2::tile(simd, s, src_stride, d, dst_stride)
                })
            },
        ),
    }
}

/// Runs `tile` on each tile's corner in `src` and in `dst`, destination rows outermost. Along a
/// side of `n >= T` the origins are every `T`, the last one moved back to end at `n`.
#[inline(always)]
fn tiles(
    (rows, cols, src_stride, dst_stride): (usize, usize, usize, usize),
    src: &[f32],
    dst: &mut [f32],
    mut tile: impl FnMut(&[f32], &mut [f32]),
) {
    let origins = |n: usize| (0..n.div_ceil(T)).map(move |t| (t * T).min(n - T));
    for j in origins(cols) {
        for i in origins(rows) {
            tile(&src[i * src_stride + j..], &mut dst[j * dst_stride + i..]);
        }
    }
}

#[inline(always)]
fn tile_portable(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize) {
    let mut tile = [[0.0f32; T]; T];
    for (a, row) in tile.iter_mut().enumerate() {
        row.copy_from_slice(&src[a * src_stride..a * src_stride + T]);
    }
    for b in 0..T {
        for (d, row) in dst[b * dst_stride..b * dst_stride + T]
            .iter_mut()
            .zip(&tile)
        {
            *d = row[b];
        }
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod avx2 {
    use super::T;
    use pulp::x86::V3;
    #[cfg(target_arch = "x86")]
    use std::arch::x86::__m256;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::__m256;

    #[inline(always)]
    fn load(src: &[f32]) -> __m256 {
        let row: [f32; T] = src[..T].try_into().expect("eight values");
        pulp::cast(row)
    }

    #[inline(always)]
    fn store(dst: &mut [f32], v: __m256) {
        let row: [f32; T] = pulp::cast(v);
        dst[..T].copy_from_slice(&row);
    }

    /// One 8 x 8 tile: pairs of rows interleaved, then pairs of pairs, then 128-bit halves.
    #[inline(always)]
    pub(super) fn tile(
        simd: V3,
        src: &[f32],
        src_stride: usize,
        dst: &mut [f32],
        dst_stride: usize,
    ) {
        let avx = simd.avx;
        let r: [__m256; T] = std::array::from_fn(|a| load(&src[a * src_stride..]));
        let lo = |a: usize| avx._mm256_unpacklo_ps(r[a], r[a + 1]);
        let hi = |a: usize| avx._mm256_unpackhi_ps(r[a], r[a + 1]);
        let t = [lo(0), hi(0), lo(2), hi(2), lo(4), hi(4), lo(6), hi(6)];
        let s = [
            avx._mm256_shuffle_ps::<0x44>(t[0], t[2]),
            avx._mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            avx._mm256_shuffle_ps::<0x44>(t[1], t[3]),
            avx._mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            avx._mm256_shuffle_ps::<0x44>(t[4], t[6]),
            avx._mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            avx._mm256_shuffle_ps::<0x44>(t[5], t[7]),
            avx._mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        for b in 0..4 {
            store(
                &mut dst[b * dst_stride..],
                avx._mm256_permute2f128_ps::<0x20>(s[b], s[b + 4]),
            );
            store(
                &mut dst[(b + 4) * dst_stride..],
                avx._mm256_permute2f128_ps::<0x31>(s[b], s[b + 4]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_transposes_every_shape() {
        for kernel in Kernel::all() {
            for (rows, cols) in [
                (8, 8),
                (3, 5),
                (17, 9),
                (32, 13),
                (1, 20),
                (64, 15),
                (9, 30),
            ] {
                let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
                let mut dst = vec![-1.0; cols * (rows + 2)];
                transpose(kernel, &src, (rows, cols), cols, &mut dst, rows + 2);
                for i in 0..rows {
                    for j in 0..cols {
                        assert_eq!(dst[j * (rows + 2) + i], src[i * cols + j], "{kernel:?}");
                    }
                }
                // The gaps between the destination's rows are left alone.
                assert!(dst
                    .chunks_exact(rows + 2)
                    .all(|r| r[rows..] == [-1.0, -1.0]));
            }
        }
    }

    #[test]
    #[should_panic(expected = "shorter than its shape")]
    fn a_short_slice_is_refused() {
        let mut dst = vec![0.0; 63];
        transpose(Kernel::Portable, &[0.0; 64], (8, 8), 8, &mut dst, 8);
    }
}
