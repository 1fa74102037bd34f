//! General matrix multiply: C ← α·op(A)·op(B) + β·C on row-major slices.
//!
//! The fast version hands blocks of C's rows to rayon threads, each of which calls
//! matrixmultiply's single-threaded sgemm/dgemm (its `threading` feature stays off, so
//! there is exactly one level of parallelism). Small problems run on the calling thread.

use std::ops::Range;

use rayon::prelude::*;

use crate::check::{check_len, threads};
use crate::{Float, KernelError};

/// Problems with fewer multiply-adds than this run on the calling thread.
const PARALLEL_MIN_MULADDS: usize = 1 << 18;

/// Row blocks handed to threads hold a multiple of this many rows (the tallest
/// matrixmultiply microkernel, AVX-512 sgemm, is 16 rows high).
const ROW_BLOCK_ALIGN: usize = 16;

/// C (m×n, row-major, contiguous) ← alpha·op(A)·op(B) + beta·C.
///
/// op(A) is m×k: A is stored row-major m×k, or k×m when `trans_a` (then op(A) = Aᵀ).
/// Likewise op(B) is k×n: B is stored k×n, or n×k when `trans_b`. When `beta` is zero,
/// C is only written, never read (NaNs already in C do not propagate).
///
/// Large problems split C into row blocks computed on rayon's threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    trans_a: bool,
    b: &[T],
    trans_b: bool,
    beta: T,
    c: &mut [T],
) -> Result<(), KernelError> {
    gemm_threaded(true, m, k, n, alpha, a, trans_a, b, trans_b, beta, c)
}

/// [`gemm`], with row-block parallelism only when `allow_parallel` (callers that are
/// already running on every thread pass `false`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_threaded<T: Float>(
    allow_parallel: bool,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    trans_a: bool,
    b: &[T],
    trans_b: bool,
    beta: T,
    c: &mut [T],
) -> Result<(), KernelError> {
    check_gemm_args("gemm", m, k, n, a.len(), trans_a, b.len(), trans_b, c.len())?;
    let blocks = if allow_parallel {
        parallel_row_blocks(m, k, n)
    } else {
        1
    };
    if blocks <= 1 {
        return gemm_rows(0..m, m, k, n, alpha, a, trans_a, b, trans_b, beta, c);
    }
    let rows_per_block = m.div_ceil(blocks).next_multiple_of(ROW_BLOCK_ALIGN);
    c.par_chunks_mut(rows_per_block * n)
        .enumerate()
        .try_for_each(|(block, c_block)| {
            let first_row = block * rows_per_block;
            let rows = first_row..first_row + c_block.len() / n;
            gemm_rows(rows, m, k, n, alpha, a, trans_a, b, trans_b, beta, c_block)
        })
}

/// How many row blocks to split an m×k×n product into (1 = run inline).
fn parallel_row_blocks(m: usize, k: usize, n: usize) -> usize {
    let threads = threads();
    let muladds = m.saturating_mul(k).saturating_mul(n);
    if threads < 2 || muladds < PARALLEL_MIN_MULADDS {
        return 1;
    }
    threads.min(m / ROW_BLOCK_ALIGN).max(1)
}

/// Checks the three slice lengths of a gemm call against m, k, n.
#[allow(clippy::too_many_arguments)]
fn check_gemm_args(
    kernel: &str,
    m: usize,
    k: usize,
    n: usize,
    a_len: usize,
    trans_a: bool,
    b_len: usize,
    trans_b: bool,
    c_len: usize,
) -> Result<(), KernelError> {
    let a_dims = if trans_a { [k, m] } else { [m, k] };
    let b_dims = if trans_b { [n, k] } else { [k, n] };
    check_len(kernel, "A", a_len, &a_dims)?;
    check_len(kernel, "B", b_len, &b_dims)?;
    check_len(kernel, "C", c_len, &[m, n])
}

/// Computes the rows `rows` of C (passed as `c_rows`, `rows.len()`×n) on this thread.
#[allow(clippy::too_many_arguments)]
fn gemm_rows<T: Float>(
    rows: Range<usize>,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    trans_a: bool,
    b: &[T],
    trans_b: bool,
    beta: T,
    c_rows: &mut [T],
) -> Result<(), KernelError> {
    // Re-checked here (cheaply) so that the unsafe call below relies on nothing but
    // this function's own checks.
    let a_dims = if trans_a { [k, m] } else { [m, k] };
    let b_dims = if trans_b { [n, k] } else { [k, n] };
    check_len("gemm", "A", a.len(), &a_dims)?;
    check_len("gemm", "B", b.len(), &b_dims)?;
    if rows.start > rows.end || rows.end > m {
        return Err(crate::kernel_err!(
            "gemm: row block {rows:?} outside 0..{m}"
        ));
    }
    check_len("gemm", "C row block", c_rows.len(), &[rows.len(), n])?;
    if rows.is_empty() || n == 0 {
        return Ok(());
    }
    if k == 0 {
        scale_by_beta(beta, c_rows);
        return Ok(());
    }
    // Strides of op(A) and op(B) as stored; all of m, k, n are at most a slice length
    // here (k, m ≤ a.len() and n ≤ b.len() because k ≥ 1 and rows ≥ 1), and slice
    // lengths never exceed isize::MAX, so the casts are lossless.
    let (a_block, rsa, csa) = if trans_a {
        (&a[rows.start..], 1, m as isize)
    } else {
        (&a[rows.start * k..], k as isize, 1)
    };
    let (rsb, csb) = if trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the elements matrixmultiply addresses are, for i < rows.len(), p < k, j < n:
    // - op(A)[i][p]: non-transposed at (rows.start + i)·k + p ≤ rows.end·k − 1 ≤ m·k − 1;
    //   transposed at rows.start + i + p·m ≤ (m − 1) + (k − 1)·m = m·k − 1. Offsets are
    //   taken from `a_block`, which starts at rows.start·k (resp. rows.start) of `a`,
    //   and a.len() == m·k was checked above, so every address lies inside `a`.
    // - op(B)[p][j]: p·n + j ≤ k·n − 1, or j·k + p ≤ n·k − 1, and b.len() == k·n.
    // - C[i][j]: i·n + j ≤ rows.len()·n − 1 and c_rows.len() == rows.len()·n.
    // `c_rows` is a unique borrow, so it cannot alias `a` or `b`.
    unsafe {
        T::gemm_raw(
            rows.len(),
            k,
            n,
            alpha,
            a_block.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c_rows.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    Ok(())
}

/// C ← β·C, with β = 0 writing zeros (so NaNs in C do not survive).
fn scale_by_beta<T: Float>(beta: T, c: &mut [T]) {
    if beta == T::ZERO {
        c.fill(T::ZERO);
    } else {
        c.iter_mut().for_each(|v| *v *= beta);
    }
}

/// Plain triple-loop gemm, the yardstick for the fast one.
pub mod reference {
    use crate::{Float, KernelError};

    /// C ← alpha·op(A)·op(B) + beta·C by the definition; same contract as
    /// [`super::gemm`] (including: `beta == 0` never reads C).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: Float>(
        m: usize,
        k: usize,
        n: usize,
        alpha: T,
        a: &[T],
        trans_a: bool,
        b: &[T],
        trans_b: bool,
        beta: T,
        c: &mut [T],
    ) -> Result<(), KernelError> {
        super::check_gemm_args(
            "gemm (reference)",
            m,
            k,
            n,
            a.len(),
            trans_a,
            b.len(),
            trans_b,
            c.len(),
        )?;
        let a_at = |i: usize, p: usize| if trans_a { a[p * m + i] } else { a[i * k + p] };
        let b_at = |p: usize, j: usize| if trans_b { b[j * k + p] } else { b[p * n + j] };
        for i in 0..m {
            for j in 0..n {
                let mut sum = T::ZERO;
                for p in 0..k {
                    sum += a_at(i, p) * b_at(p, j);
                }
                let old = c[i * n + j];
                c[i * n + j] = if beta == T::ZERO {
                    alpha * sum
                } else {
                    alpha * sum + beta * old
                };
            }
        }
        Ok(())
    }
}
