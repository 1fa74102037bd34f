//! Max pooling with argmax, forward and backward.

use rayon::prelude::*;

use super::window::{worth_parallel, Taps};
use super::Pool2dGeometry;
use crate::check::check_len;
use crate::simd::vectorized;
use crate::{Float, KernelError};

/// The `argmax` entry of a max-pool window that holds no input element at all (only
/// possible with dilation, e.g. taps straddling a small input): its output is −∞, and
/// [`max_pool2d_backward`] sends it no gradient.
pub const NO_ARGMAX: usize = usize::MAX;

/// Max pooling. `argmax[o]` = flat index into `x` (over the whole NCHW buffer) of the
/// chosen element. Padding counts as −∞. Ties go to the FIRST index in row-major
/// window scan order (as PyTorch). A NaN in the window wins (as PyTorch, whose scan
/// takes every NaN it meets: with several NaNs the last one is chosen). A window with
/// no input element (see [`NO_ARGMAX`]) gives −∞. `y` and `argmax` are overwritten.
pub fn max_pool2d_forward<T: Float>(
    g: &Pool2dGeometry,
    x: &[T],
    y: &mut [T],
    argmax: &mut [usize],
) -> Result<(), KernelError> {
    const KERNEL: &str = "max_pool2d";
    g.validate(KERNEL)?;
    check_len(KERNEL, "input", x.len(), &g.input_dims())?;
    check_len(KERNEL, "output", y.len(), &g.output_dims())?;
    check_len(KERNEL, "argmax", argmax.len(), &g.output_dims())?;
    let rows = Taps::all(
        g.out_h,
        g.stride[0],
        g.padding[0],
        g.dilation[0],
        g.kernel[0],
        g.in_h,
    );
    let cols = Taps::all(
        g.out_w,
        g.stride[1],
        g.padding[1],
        g.dilation[1],
        g.kernel[1],
        g.in_w,
    );
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    // The common 2×2, stride 2 window lying wholly inside the input gets straight-line code.
    let two_by_two = g.kernel == [2, 2]
        && g.stride == [2, 2]
        && g.padding == [0, 0]
        && g.dilation == [1, 1]
        && 2 * g.out_h <= g.in_h
        && 2 * g.out_w <= g.in_w;
    // Tasks of whole planes, at least ~4096 outputs each: small planes (8×8 images) would
    // otherwise cost more in task overhead than in comparisons.
    let per_task = (4096 / out_plane.max(1)).max(1);
    let group = |(t, (y_group, argmax_group)): (usize, (&mut [T], &mut [usize]))| {
        let outputs = y_group
            .chunks_mut(out_plane)
            .zip(argmax_group.chunks_mut(out_plane));
        vectorized(
            #[inline(always)]
            || {
                for (i, (y_plane, argmax_plane)) in outputs.enumerate() {
                    let p = t * per_task + i;
                    let x_plane = &x[p * in_plane..][..in_plane];
                    if two_by_two {
                        max_plane_2x2(g, x_plane, p * in_plane, y_plane, argmax_plane);
                    } else {
                        max_plane(
                            g,
                            &rows,
                            &cols,
                            x_plane,
                            p * in_plane,
                            y_plane,
                            argmax_plane,
                        );
                    }
                }
            },
        )
    };
    let planes = g.batch * g.channels;
    let chunk = out_plane * per_task;
    if worth_parallel(
        planes.div_ceil(per_task),
        y.len() * g.kernel[0] * g.kernel[1],
    ) {
        y.par_chunks_mut(chunk)
            .zip(argmax.par_chunks_mut(chunk))
            .enumerate()
            .for_each(group);
    } else {
        y.chunks_mut(chunk)
            .zip(argmax.chunks_mut(chunk))
            .enumerate()
            .for_each(group);
    }
    Ok(())
}

/// [`max_plane`] for 2×2 windows at stride 2, no padding or dilation, every window inside
/// the input: the same scan order and rule (start from −∞, take strictly greater values and
/// NaNs), unrolled.
#[inline(always)]
fn max_plane_2x2<T: Float>(
    g: &Pool2dGeometry,
    x_plane: &[T],
    base: usize,
    y_plane: &mut [T],
    argmax_plane: &mut [usize],
) {
    let w = g.in_w;
    let out_w = g.out_w;
    for oh in 0..g.out_h {
        let top = 2 * oh * w;
        // The two input rows of this output row, cut to the 2·OW columns the windows read.
        let upper = &x_plane[top..top + 2 * out_w];
        let lower = &x_plane[top + w..top + w + 2 * out_w];
        let y_row = &mut y_plane[oh * out_w..(oh + 1) * out_w];
        let a_row = &mut argmax_plane[oh * out_w..(oh + 1) * out_w];
        let windows = upper.chunks_exact(2).zip(lower.chunks_exact(2));
        for (ow, ((y, argmax), (u, l))) in y_row.iter_mut().zip(a_row).zip(windows).enumerate() {
            // Starting from −∞, the first tap is always the running max (a −∞ first tap
            // leaves max = −∞ and the first index either way). Later taps are taken when
            // strictly greater or NaN, as selects rather than branches: random data would
            // mispredict half of them.
            let (mut max, mut offset) = (u[0], 0);
            for (v, off) in [(u[1], 1), (l[0], w), (l[1], w + 1)] {
                let take = v > max || v.is_nan();
                max = if take { v } else { max };
                offset = if take { off } else { offset };
            }
            *y = max;
            *argmax = base + top + 2 * ow + offset;
        }
    }
}

/// Max pooling of one plane; `base` is the plane's offset in the whole input.
fn max_plane<T: Float>(
    g: &Pool2dGeometry,
    rows: &[Taps],
    cols: &[Taps],
    x_plane: &[T],
    base: usize,
    y_plane: &mut [T],
    argmax_plane: &mut [usize],
) {
    let [dh, dw] = g.dilation;
    let neg_inf = T::from_f64(f64::NEG_INFINITY);
    let mut outputs = y_plane.iter_mut().zip(argmax_plane.iter_mut());
    for row in rows {
        for col in cols {
            let Some((y, argmax)) = outputs.next() else {
                return;
            };
            if row.count == 0 || col.count == 0 {
                *y = neg_inf;
                *argmax = NO_ARGMAX;
                continue;
            }
            // As PyTorch: start from −∞ at the first tap, take strictly greater values
            // and NaNs.
            let mut best = row.first * g.in_w + col.first;
            let mut max = neg_inf;
            // Plain index loops: windows are tiny (2×2, 3×3), so iterator set-up per
            // window would cost more than the comparisons.
            for a in 0..row.count {
                let row_start = (row.first + a * dh) * g.in_w + col.first;
                for b in 0..col.count {
                    let index = row_start + b * dw;
                    let v = x_plane[index];
                    if v > max || v.is_nan() {
                        max = v;
                        best = index;
                    }
                }
            }
            *y = max;
            *argmax = base + best;
        }
    }
}

/// dx ← scatter-add of dy at argmax (dx overwritten first with zeros).
///
/// `argmax` is what [`max_pool2d_forward`] produced: every entry must be
/// [`NO_ARGMAX`] or an index inside its own (n, c) plane of `dx`, else an error.
pub fn max_pool2d_backward<T: Float>(
    g: &Pool2dGeometry,
    dy: &[T],
    argmax: &[usize],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "max_pool2d_backward";
    g.validate(KERNEL)?;
    check_len(KERNEL, "output gradient", dy.len(), &g.output_dims())?;
    check_len(KERNEL, "argmax", argmax.len(), &g.output_dims())?;
    check_len(KERNEL, "input gradient", dx.len(), &g.input_dims())?;
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    let plane = |(p, dx_plane): (usize, &mut [T])| {
        vectorized(
            #[inline(always)]
            || {
                let base = p * in_plane;
                dx_plane.fill(T::ZERO);
                let dy_plane = &dy[p * out_plane..][..out_plane];
                let argmax_plane = &argmax[p * out_plane..][..out_plane];
                for (o, (&index, &d)) in argmax_plane.iter().zip(dy_plane).enumerate() {
                    if index == NO_ARGMAX {
                        continue;
                    }
                    match index.checked_sub(base).and_then(|i| dx_plane.get_mut(i)) {
                        Some(slot) => *slot += d,
                        None => {
                            return Err(crate::kernel_err!(
                                "{KERNEL}: argmax[{}] = {index} lies outside its plane {base}..{}",
                                p * out_plane + o,
                                base + in_plane
                            ))
                        }
                    }
                }
                Ok(())
            },
        )
    };
    if worth_parallel(g.batch * g.channels, dx.len() + dy.len()) {
        dx.par_chunks_mut(in_plane).enumerate().try_for_each(plane)
    } else {
        dx.chunks_mut(in_plane).enumerate().try_for_each(plane)
    }
}
