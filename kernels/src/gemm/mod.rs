//! General matrix multiply: C ← α·op(A)·op(B) + β·C on row-major slices.
//!
//! The fast version hands blocks of C's rows (or, when C has few rows, of its
//! columns) to rayon threads, each of which runs a single-threaded gemm (exactly one
//! level of parallelism). Small problems run on the calling thread. Every element of C
//! is computed by the same arithmetic whichever way the work is split.
//!
//! The single-threaded f32 gemm is this module's own BLIS-style blocked gemm
//! ([`blocked`](self) driver, packing, and an AVX-512 or AVX2 + FMA micro-kernel chosen
//! at run time), or matrixmultiply's sgemm on CPUs with neither; f64 uses
//! matrixmultiply's dgemm. [`gemm_with`] runs one chosen [`Kernel`], for tests.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_pack;
mod blocked;
mod kernel;
mod pack;
mod portable;

pub(crate) use kernel::sgemm_raw_best;
pub use kernel::Kernel;

use std::ops::Range;

use rayon::prelude::*;

use crate::check::{check_len, threads};
use crate::{Float, KernelError};

/// Problems with fewer multiply-adds than this run on the calling thread.
/// (Measured: a 32×27×1024 product, 0.9M multiply-adds, ran at 47 GFLOP/s split over two
/// threads against 113 on one; 64×288×256, 4.7M, gains 1.2× from the split.)
const PARALLEL_MIN_MULADDS: usize = 1 << 21;

/// Products below this many multiply-adds (2²⁶: up to about 0.3 ms here) called from
/// outside rayon's pool run their first row block on the calling thread
/// ([`crate::parallel::try_for_each`]): sgemm 256 ran 15% faster so, while sgemm 1024 ran
/// 7% slower (paired runs, docs/benchmarks.md, stop 12).
const SHORT_MULADDS: usize = 1 << 26;

/// Blocks of C handed to threads have a multiple of this many rows (or columns): the
/// largest matrixmultiply microkernel, AVX-512 sgemm, is 16×16, and the AVX-512 kernel
/// here is 12×32 (row blocks of 16 leave a 4-row edge tile, handled by its own kernel).
const BLOCK_ALIGN: usize = 16;

/// Elements of op(B) (4 MiB of f32) from which a product with more than twice as many
/// columns as rows splits its columns over the threads ([`Split::plan`]).
const COLUMN_SPLIT_MIN_B: usize = 1 << 20;

/// C (m×n, row-major, contiguous) ← alpha·op(A)·op(B) + beta·C.
///
/// op(A) is m×k: A is stored row-major m×k, or k×m when `trans_a` (then op(A) = Aᵀ).
/// Likewise op(B) is k×n: B is stored k×n, or n×k when `trans_b`. When `beta` is zero,
/// C is only written, never read (NaNs already in C do not propagate).
///
/// Large problems split C into row (or column) blocks computed on rayon's threads.
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

/// [`gemm`], splitting the work over rayon's threads only when `allow_parallel`
/// (callers that already run on every thread pass `false`).
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
    let ops = Operands {
        m,
        k,
        n,
        alpha,
        a,
        trans_a,
        b,
        trans_b,
        beta,
    };
    match Split::plan(allow_parallel, m, k, n) {
        Split::Inline => ops.block(0..m, 0..n, c),
        Split::Rows(rows_per_block) => {
            let mut blocks: Vec<(usize, &mut [T])> =
                c.chunks_mut(rows_per_block * n).enumerate().collect();
            // Short products (a few hundred microseconds at most) keep the calling thread
            // working instead of handing everything to the pool.
            let short = m.saturating_mul(k).saturating_mul(n) < SHORT_MULADDS;
            crate::parallel::try_for_each(&mut blocks, short, |(block, c_block)| {
                let first = *block * rows_per_block;
                ops.block(first..first + c_block.len() / n, 0..n, c_block)
            })
        }
        Split::Cols(cols_per_block) => {
            // Column blocks of C are strided, so each thread computes its block into a
            // contiguous buffer (copying C in first when beta reads it), and the
            // blocks are copied back afterwards: O(m·n) extra work against O(m·n·k).
            let blocks: Vec<Range<usize>> = (0..n)
                .step_by(cols_per_block)
                .map(|j| j..(j + cols_per_block).min(n))
                .collect();
            let c_in: &[T] = c;
            let computed = blocks
                .par_iter()
                .map(|cols| {
                    let mut block = vec![T::ZERO; m * cols.len()];
                    if beta != T::ZERO {
                        for (dst, src) in
                            block.chunks_exact_mut(cols.len()).zip(c_in.chunks_exact(n))
                        {
                            dst.copy_from_slice(&src[cols.clone()]);
                        }
                    }
                    ops.block(0..m, cols.clone(), &mut block).map(|()| block)
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (cols, block) in blocks.iter().zip(&computed) {
                for (dst, src) in c.chunks_exact_mut(n).zip(block.chunks_exact(cols.len())) {
                    dst[cols.clone()].copy_from_slice(src);
                }
            }
            Ok(())
        }
    }
}

/// [`gemm`] for f32 with a chosen single-threaded implementation, on the calling
/// thread (for tests and benchmarks); an error if this CPU cannot run `kernel`.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
) -> Result<(), KernelError> {
    check_gemm_args(
        "gemm_with",
        m,
        k,
        n,
        a.len(),
        trans_a,
        b.len(),
        trans_b,
        c.len(),
    )?;
    if !kernel.is_available() {
        return Err(crate::kernel_err!(
            "gemm_with: kernel {kernel:?} is not available on this CPU"
        ));
    }
    let ops = Operands {
        m,
        k,
        n,
        alpha,
        a,
        trans_a,
        b,
        trans_b,
        beta,
    };
    ops.block_with(0..m, 0..n, c, kernel.raw())
}

/// How a gemm call is spread over threads.
enum Split {
    /// On the calling thread.
    Inline,
    /// Row blocks of C of this many rows (the last may be shorter).
    Rows(usize),
    /// Column blocks of C of this many columns (when C has too few rows to split).
    Cols(usize),
}

impl Split {
    fn plan(allow_parallel: bool, m: usize, k: usize, n: usize) -> Self {
        let threads = threads();
        let muladds = m.saturating_mul(k).saturating_mul(n);
        if !allow_parallel || threads < 2 || muladds < PARALLEL_MIN_MULADDS {
            return Split::Inline;
        }
        let block_len = |len: usize| {
            len.div_ceil(threads.min(len / BLOCK_ALIGN))
                .next_multiple_of(BLOCK_ALIGN)
        };
        // A large op(B) with few rows of C (a linear layer's weight against a batch of
        // 50–100 path points): split the columns, so that each thread packs or reads
        // only its part of B instead of all of it (the CIFAR network's 4096→256 layer:
        // 2 × 100 rows ran 21% faster, its input gradient 18%). Smaller or square
        // products keep the row split (with a 1.2 MB B, a 32 × 288 × 1024 conv-shaped
        // product ran 42% slower split by columns).
        if n >= 2 * BLOCK_ALIGN && n > 2 * m && k.saturating_mul(n) >= COLUMN_SPLIT_MIN_B {
            Split::Cols(block_len(n))
        } else if m >= 2 * BLOCK_ALIGN {
            Split::Rows(block_len(m))
        } else if n >= 2 * BLOCK_ALIGN {
            Split::Cols(block_len(n))
        } else {
            Split::Inline
        }
    }
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

/// A single-threaded gemm on raw strided matrices with the signature and the safety
/// contract of [`Float::gemm_raw`].
pub(crate) type RawGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

/// The inputs of one gemm call: C ← alpha·op(A)·op(B) + beta·C with op(A) m×k and
/// op(B) k×n.
#[derive(Clone, Copy)]
struct Operands<'a, T> {
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &'a [T],
    trans_a: bool,
    b: &'a [T],
    trans_b: bool,
    beta: T,
}

impl<T: Float> Operands<'_, T> {
    /// Computes the block `rows` × `cols` of C on this thread; `c_block` holds that
    /// block, contiguous and row-major (`rows.len()` × `cols.len()`).
    fn block(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        c_block: &mut [T],
    ) -> Result<(), KernelError> {
        self.block_with(rows, cols, c_block, T::gemm_raw)
    }

    /// [`Self::block`] computed by `raw`.
    fn block_with(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        c_block: &mut [T],
        raw: RawGemm<T>,
    ) -> Result<(), KernelError> {
        let Self {
            m,
            k,
            n,
            alpha,
            a,
            trans_a,
            b,
            trans_b,
            beta,
        } = *self;
        // Re-checked here (cheaply) so that the unsafe call below relies on nothing but
        // this function's own checks.
        let a_dims = if trans_a { [k, m] } else { [m, k] };
        let b_dims = if trans_b { [n, k] } else { [k, n] };
        check_len("gemm", "A", a.len(), &a_dims)?;
        check_len("gemm", "B", b.len(), &b_dims)?;
        if rows.start > rows.end || rows.end > m || cols.start > cols.end || cols.end > n {
            return Err(crate::kernel_err!(
                "gemm: block {rows:?} x {cols:?} outside {m}x{n}"
            ));
        }
        check_len("gemm", "C block", c_block.len(), &[rows.len(), cols.len()])?;
        if rows.is_empty() || cols.is_empty() {
            return Ok(());
        }
        if k == 0 {
            scale_by_beta(beta, c_block);
            return Ok(());
        }
        // Strides of op(A) and op(B) as stored. Here k ≥ 1 and the blocks are not
        // empty, so m, k ≤ a.len() and n ≤ b.len(); slice lengths never exceed
        // isize::MAX, so the casts are lossless.
        let (a_block, rsa, csa) = if trans_a {
            (&a[rows.start..], 1, m as isize)
        } else {
            (&a[rows.start * k..], k as isize, 1)
        };
        let (b_block, rsb, csb) = if trans_b {
            (&b[cols.start * k..], 1, k as isize)
        } else {
            (&b[cols.start..], n as isize, 1)
        };
        // SAFETY: `raw` has the contract of `Float::gemm_raw`. For i < rows.len(),
        // p < k, j < cols.len(), it addresses
        // - op(A)[i][p] at (rows.start + i)·k + p ≤ rows.end·k − 1 ≤ m·k − 1, or
        //   transposed at rows.start + i + p·m ≤ (m − 1) + (k − 1)·m = m·k − 1;
        // - op(B)[p][j] at p·n + cols.start + j ≤ (k − 1)·n + n − 1 = k·n − 1, or
        //   transposed at (cols.start + j)·k + p ≤ (n − 1)·k + k − 1 = n·k − 1;
        // (offsets counted from the start of `a` and `b`; `a_block` and `b_block` start
        // exactly at the first offsets), and a.len() == m·k, b.len() == k·n were checked
        // above, so every read lies inside `a` and `b`;
        // - C[i][j] at i·cols.len() + j ≤ rows.len()·cols.len() − 1, and that is
        //   c_block.len(), checked above.
        // `c_block` is a unique borrow, so it cannot alias `a` or `b`.
        unsafe {
            raw(
                rows.len(),
                k,
                cols.len(),
                alpha,
                a_block.as_ptr(),
                rsa,
                csa,
                b_block.as_ptr(),
                rsb,
                csb,
                beta,
                c_block.as_mut_ptr(),
                cols.len() as isize,
                1,
            );
        }
        Ok(())
    }
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
