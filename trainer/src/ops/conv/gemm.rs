//! Matrix products on strided `f32` slices: a bounds-checked, safe front for the `gemm` crate.
//!
//! `gemm` (the crate burn-flex's own matmul and convolution use) takes raw pointers and strides so
//! that transposed and sliced operands need no copy; that is what the convolution passes need. This
//! module checks every operand's extent against its slice before the call, and takes the
//! destination as `&mut` with unit column stride so that no two elements alias. It is one of the
//! workspace's two `unsafe` blocks (the other sets an option of the binaries' allocator).
//!
//! `gemm` picks its kernel when first called, from what the CPU has: AVX-512 (with the `x86-v4`
//! feature, on by default here), AVX2 with FMA, or portable code; [`kernel`] says which.

/// A read-only `rows x cols` matrix inside a slice: element `(i, j)` is at
/// `i * row_stride + j * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix (rows `cols` apart).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view, no copy.
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        extent(self.rows, self.cols, self.row_stride, self.col_stride)
            .is_some_and(|end| end <= self.data.len())
    }
}

/// A writable row-major `rows x cols` matrix, rows `row_stride >= cols` apart.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }
}

/// One past the last element a matrix touches, or `None` on overflow; `Some(0)` when empty.
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

/// Whether a product may split its work over the rayon pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread (the caller runs several products in parallel).
    One,
    /// On rayon's pool.
    All,
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`.
///
/// # Panics
/// When the shapes do not chain (`lhs` is `m x k`, `rhs` `k x n`, `dst` `m x n`), or an operand
/// reaches past its slice, or `dst`'s rows overlap: programming errors, checked before any memory
/// is touched.
pub fn matmul(dst: MatMut<'_>, accumulate: bool, lhs: Mat<'_>, rhs: Mat<'_>, threads: Threads) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert!(
        lhs.rows == m && rhs.rows == k && rhs.cols == n,
        "matmul: {}x{} · {}x{} into {m}x{n}",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    assert!(
        lhs.fits() && rhs.fits(),
        "matmul: an operand leaves its slice"
    );
    assert!(
        (m <= 1 || dst.row_stride >= n)
            && extent(m, n, dst.row_stride, 1).is_some_and(|end| end <= dst.data.len()),
        "matmul: the destination leaves its slice or its rows overlap"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride.max(1)).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(0),
    };
    let stride = |s: usize| isize::try_from(s).expect("a stride within a slice fits isize");
    // SAFETY: every element `gemm` reads or writes lies within the slices, as checked above
    // (`extent` of each operand <= its length); `dst` is borrowed mutably, so it aliases neither
    // operand, and its elements are distinct (unit column stride, rows at least `n` apart).
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            stride(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The instruction set `gemm` runs on this CPU: `avx512f`, `avx2+fma` or `portable` on x86-64,
/// `neon` on 64-bit ARM.
pub fn kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    let kernel = if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512f"
    } else if std::arch::is_x86_feature_detected!("fma") {
        "avx2+fma"
    } else {
        "portable"
    };
    #[cfg(target_arch = "aarch64")]
    let kernel = "neon";
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let kernel = "portable";
    kernel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_with_transposed_operands_and_accumulation_match_a_naive_loop() {
        let (m, n, k) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(m, n, k, &a, &b);
        // b stored transposed, read through a view
        let mut bt = vec![0.0; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        let mut c = vec![1.0; m * n];
        matmul(
            MatMut::rows(&mut c, m, n),
            true,
            Mat::rows(&a, m, k),
            Mat::rows(&bt, n, k).t(),
            Threads::All,
        );
        for (got, want) in c.iter().zip(&want) {
            assert!((got - (want + 1.0)).abs() < 1e-5, "{got} vs {}", want + 1.0);
        }
    }

    #[test]
    #[should_panic(expected = "leaves its slice")]
    fn an_operand_past_its_slice_is_refused() {
        let a = vec![0.0; 5];
        let mut c = vec![0.0; 4];
        matmul(
            MatMut::rows(&mut c, 2, 2),
            false,
            Mat::rows(&a, 2, 3),
            Mat::rows(&a, 3, 2),
            Threads::One,
        );
    }
}
