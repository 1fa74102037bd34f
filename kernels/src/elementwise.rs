//! Elementwise helpers: maps, axpy and dot products on slices.
//!
//! Long slices (at least 2^16 elements) are processed on rayon in fixed chunks, so
//! results never depend on the thread count. The dot product sums in a fixed
//! pairwise tree over blocks (error growing like log n rather than n).

use std::ops::Range;

use rayon::prelude::*;

use crate::check::check_len;
use crate::simd::vectorized;
use crate::{Float, KernelError};

/// Slices at least this long are processed in parallel.
const PARALLEL_MIN_LEN: usize = 1 << 16;

/// Elements per parallel job.
const CHUNK_LEN: usize = 1 << 14;

/// Leaf size of the pairwise summation tree (a leaf sums with several lanes).
const SUM_LEAF_LEN: usize = 1 << 9;

/// Checks that `b` (named `what`) has as many elements as the first slice.
fn check_same_len(
    kernel: &str,
    what: &str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    check_len(kernel, what, got, &[expected])
}

/// y[i] ← f(x[i]) (y overwritten).
pub fn map<T: Float>(x: &[T], y: &mut [T], f: impl Fn(T) -> T + Sync) -> Result<(), KernelError> {
    check_same_len("map", "output", x.len(), y.len())?;
    let apply = |(yc, xc): (&mut [T], &[T])| {
        vectorized(
            #[inline(always)]
            || yc.iter_mut().zip(xc).for_each(|(y, x)| *y = f(*x)),
        )
    };
    if x.len() >= PARALLEL_MIN_LEN {
        y.par_chunks_mut(CHUNK_LEN)
            .zip(x.par_chunks(CHUNK_LEN))
            .for_each(apply);
    } else {
        apply((y, x));
    }
    Ok(())
}

/// y[i] ← f(a[i], b[i]) (y overwritten).
pub fn zip_map<T: Float>(
    a: &[T],
    b: &[T],
    y: &mut [T],
    f: impl Fn(T, T) -> T + Sync,
) -> Result<(), KernelError> {
    check_same_len("zip_map", "second operand", a.len(), b.len())?;
    check_same_len("zip_map", "output", a.len(), y.len())?;
    let apply = |((yc, ac), bc): ((&mut [T], &[T]), &[T])| {
        vectorized(
            #[inline(always)]
            || {
                yc.iter_mut()
                    .zip(ac.iter().zip(bc))
                    .for_each(|(y, (a, b))| *y = f(*a, *b))
            },
        );
    };
    if a.len() >= PARALLEL_MIN_LEN {
        y.par_chunks_mut(CHUNK_LEN)
            .zip(a.par_chunks(CHUNK_LEN))
            .zip(b.par_chunks(CHUNK_LEN))
            .for_each(apply);
    } else {
        apply(((y, a), b));
    }
    Ok(())
}

/// (y[i], ty[i]) ← f(x[i], t[i]): a pointwise function and its tangent in one pass over
/// the input and its tangent (y and ty overwritten).
pub fn map_with_tangent<T: Float>(
    x: &[T],
    t: &[T],
    y: &mut [T],
    ty: &mut [T],
    f: impl Fn(T, T) -> (T, T) + Sync,
) -> Result<(), KernelError> {
    check_same_len("map_with_tangent", "tangent", x.len(), t.len())?;
    check_same_len("map_with_tangent", "output", x.len(), y.len())?;
    check_same_len("map_with_tangent", "output tangent", x.len(), ty.len())?;
    let apply = |y: &mut [T], ty: &mut [T], x: &[T], t: &[T]| {
        vectorized(
            #[inline(always)]
            || {
                for (((y, ty), &x), &t) in y.iter_mut().zip(ty.iter_mut()).zip(x).zip(t) {
                    (*y, *ty) = f(x, t);
                }
            },
        )
    };
    if x.len() >= PARALLEL_MIN_LEN {
        y.par_chunks_mut(CHUNK_LEN)
            .zip(ty.par_chunks_mut(CHUNK_LEN))
            .zip(x.par_chunks(CHUNK_LEN))
            .zip(t.par_chunks(CHUNK_LEN))
            .for_each(|(((y, ty), x), t)| apply(y, ty, x, t));
    } else {
        apply(y, ty, x, t);
    }
    Ok(())
}

/// y ← y + alpha·x.
pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) -> Result<(), KernelError> {
    check_same_len("axpy", "y", x.len(), y.len())?;
    let apply = |(yc, xc): (&mut [T], &[T])| {
        vectorized(
            #[inline(always)]
            || yc.iter_mut().zip(xc).for_each(|(y, x)| *y += alpha * *x),
        )
    };
    if x.len() >= PARALLEL_MIN_LEN {
        y.par_chunks_mut(CHUNK_LEN)
            .zip(x.par_chunks(CHUNK_LEN))
            .for_each(apply);
    } else {
        apply((y, x));
    }
    Ok(())
}

/// Σ a[i]·b[i], accumulated in `T` by a fixed pairwise tree over blocks (the same
/// rounding whatever the thread count).
pub fn dot<T: Float>(a: &[T], b: &[T]) -> Result<T, KernelError> {
    check_same_len("dot", "second operand", a.len(), b.len())?;
    Ok(pairwise(0..a.len(), &|r: Range<usize>| {
        dot_leaf(&a[r.clone()], &b[r])
    }))
}

/// Σ x[i] by the same pairwise tree as [`dot`], on the calling thread.
pub(crate) fn sum_blocked<T: Float>(x: &[T]) -> T {
    pairwise_serial(0..x.len(), &|r: Range<usize>| sum_leaf(&x[r]))
}

/// Sums `leaf` over a fixed binary split of `range` into leaves of at most
/// [`SUM_LEAF_LEN`], the two halves of large ranges on different threads.
fn pairwise<T: Float>(range: Range<usize>, leaf: &(impl Fn(Range<usize>) -> T + Sync)) -> T {
    if range.len() < PARALLEL_MIN_LEN {
        return pairwise_serial(range, leaf);
    }
    let mid = split_point(&range);
    let (left, right) = rayon::join(
        || pairwise(range.start..mid, leaf),
        || pairwise(mid..range.end, leaf),
    );
    left + right
}

/// [`pairwise`] on the calling thread (the same tree, so the same result).
fn pairwise_serial<T: Float>(range: Range<usize>, leaf: &impl Fn(Range<usize>) -> T) -> T {
    if range.len() <= SUM_LEAF_LEN {
        return leaf(range);
    }
    let mid = split_point(&range);
    pairwise_serial(range.start..mid, leaf) + pairwise_serial(mid..range.end, leaf)
}

/// Where the tree splits a range longer than one leaf: about half way, on a leaf
/// boundary, strictly inside the range.
fn split_point(range: &Range<usize>) -> usize {
    range.start + (range.len() / 2).next_multiple_of(SUM_LEAF_LEN)
}

/// Lanes of the leaf sums (independent accumulators the compiler can vectorise).
const LANES: usize = 8;

/// Σ a[i]·b[i] over one leaf, in [`LANES`] interleaved partial sums.
fn dot_leaf<T: Float>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::ZERO; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len().min(b.len()));
    for (ac, bc) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for i in 0..LANES {
            lanes[i] += ac[i] * bc[i];
        }
    }
    let tail: T = a_tail
        .iter()
        .zip(b_tail)
        .map(|(x, y)| *x * *y)
        .fold(T::ZERO, |s, v| s + v);
    combine_lanes(lanes) + tail
}

/// Σ x[i] over one leaf, in [`LANES`] interleaved partial sums.
fn sum_leaf<T: Float>(x: &[T]) -> T {
    let mut lanes = [T::ZERO; LANES];
    let body = x.chunks_exact(LANES);
    let tail: T = body.remainder().iter().fold(T::ZERO, |s, v| s + *v);
    for c in body {
        for i in 0..LANES {
            lanes[i] += c[i];
        }
    }
    combine_lanes(lanes) + tail
}

/// Adds the lanes pairwise.
fn combine_lanes<T: Float>(l: [T; LANES]) -> T {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Plain sequential versions, the yardstick for the fast ones.
pub mod reference {
    use crate::check::check_len;
    use crate::{Float, KernelError};

    /// Reference [`super::map`].
    pub fn map<T: Float>(
        x: &[T],
        y: &mut [T],
        f: impl Fn(T) -> T + Sync,
    ) -> Result<(), KernelError> {
        check_len("map (reference)", "output", y.len(), &[x.len()])?;
        for i in 0..x.len() {
            y[i] = f(x[i]);
        }
        Ok(())
    }

    /// Reference [`super::zip_map`].
    pub fn zip_map<T: Float>(
        a: &[T],
        b: &[T],
        y: &mut [T],
        f: impl Fn(T, T) -> T + Sync,
    ) -> Result<(), KernelError> {
        check_len("zip_map (reference)", "second operand", b.len(), &[a.len()])?;
        check_len("zip_map (reference)", "output", y.len(), &[a.len()])?;
        for i in 0..a.len() {
            y[i] = f(a[i], b[i]);
        }
        Ok(())
    }

    /// Reference [`super::axpy`].
    pub fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) -> Result<(), KernelError> {
        check_len("axpy (reference)", "y", y.len(), &[x.len()])?;
        for i in 0..x.len() {
            y[i] += alpha * x[i];
        }
        Ok(())
    }

    /// Reference [`super::dot`]: one running sum, left to right.
    pub fn dot<T: Float>(a: &[T], b: &[T]) -> Result<T, KernelError> {
        check_len("dot (reference)", "second operand", b.len(), &[a.len()])?;
        let mut sum = T::ZERO;
        for i in 0..a.len() {
            sum += a[i] * b[i];
        }
        Ok(sum)
    }
}
