//! Plain-loop pooling kernels that follow the definitions tap by tap: the yardstick
//! for the fast ones. Same contracts as the functions in [`crate::pool`].

use super::geometry::adaptive_bin;
use super::{AdaptivePool2dGeometry, Pool2dGeometry, NO_ARGMAX};
use crate::check::check_len;
use crate::{Float, KernelError};

/// Position of tap `j` of window `o` in padded coordinates (the input occupies
/// `pad .. pad + input`).
fn padded_tap(o: usize, j: usize, stride: usize, dilation: usize) -> usize {
    o * stride + j * dilation
}

/// The input coordinate of a padded position, if it lies in the input.
fn unpad(pos: usize, pad: usize, input: usize) -> Option<usize> {
    pos.checked_sub(pad).filter(|&i| i < input)
}

/// Calls `visit(plane, oh, ow, output index)` for every output of a pooling.
fn for_each_output(
    planes: usize,
    out_h: usize,
    out_w: usize,
    mut visit: impl FnMut(usize, usize, usize, usize),
) {
    for p in 0..planes {
        for oh in 0..out_h {
            for ow in 0..out_w {
                visit(p, oh, ow, (p * out_h + oh) * out_w + ow);
            }
        }
    }
}

/// Checks geometry and the two slice lengths of a pooling call.
fn check(
    g: &Pool2dGeometry,
    kernel: &str,
    input_len: usize,
    output_len: usize,
) -> Result<(), KernelError> {
    g.validate(kernel)?;
    check_len(kernel, "input", input_len, &g.input_dims())?;
    check_len(kernel, "output", output_len, &g.output_dims())
}

/// Reference [`crate::pool::max_pool2d_forward`].
pub fn max_pool2d_forward<T: Float>(
    g: &Pool2dGeometry,
    x: &[T],
    y: &mut [T],
    argmax: &mut [usize],
) -> Result<(), KernelError> {
    const KERNEL: &str = "max_pool2d (reference)";
    check(g, KERNEL, x.len(), y.len())?;
    check_len(KERNEL, "argmax", argmax.len(), &g.output_dims())?;
    for_each_output(g.batch * g.channels, g.out_h, g.out_w, |p, oh, ow, o| {
        let mut max = T::from_f64(f64::NEG_INFINITY);
        let mut best = None;
        for i in 0..g.kernel[0] {
            let Some(ih) = unpad(
                padded_tap(oh, i, g.stride[0], g.dilation[0]),
                g.padding[0],
                g.in_h,
            ) else {
                continue;
            };
            for j in 0..g.kernel[1] {
                let Some(iw) = unpad(
                    padded_tap(ow, j, g.stride[1], g.dilation[1]),
                    g.padding[1],
                    g.in_w,
                ) else {
                    continue;
                };
                let index = (p * g.in_h + ih) * g.in_w + iw;
                let v = x[index];
                // The first input tap is the default; strictly greater values and NaNs win.
                if best.is_none() || v > max || v.is_nan() {
                    best = Some(index);
                }
                if v > max || v.is_nan() {
                    max = v;
                }
            }
        }
        y[o] = max;
        argmax[o] = best.unwrap_or(NO_ARGMAX);
    });
    Ok(())
}

/// Reference [`crate::pool::max_pool2d_backward`].
pub fn max_pool2d_backward<T: Float>(
    g: &Pool2dGeometry,
    dy: &[T],
    argmax: &[usize],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "max_pool2d_backward (reference)";
    check(g, KERNEL, dx.len(), dy.len())?;
    check_len(KERNEL, "argmax", argmax.len(), &g.output_dims())?;
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    dx.fill(T::ZERO);
    for (o, (&index, &d)) in argmax.iter().zip(dy).enumerate() {
        if index == NO_ARGMAX {
            continue;
        }
        let plane = o / out_plane;
        if index / in_plane != plane || index >= dx.len() {
            return Err(crate::kernel_err!(
                "{KERNEL}: argmax[{o}] = {index} lies outside its plane {plane}"
            ));
        }
        dx[index] += d;
    }
    Ok(())
}

/// One average-pool window along one axis: the input taps inside it and the number of
/// its taps inside the padded input.
fn avg_axis(
    o: usize,
    stride: usize,
    pad: usize,
    kernel: usize,
    input: usize,
) -> (Vec<usize>, usize) {
    let padded: Vec<usize> = (0..kernel)
        .map(|j| padded_tap(o, j, stride, 1))
        .filter(|&pos| pos < input + 2 * pad)
        .collect();
    let inside = padded
        .iter()
        .filter_map(|&pos| unpad(pos, pad, input))
        .collect();
    (inside, padded.len())
}

/// The taps and divisor of average-pool output (oh, ow).
fn avg_window(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    oh: usize,
    ow: usize,
) -> (Vec<usize>, Vec<usize>, usize) {
    let (rows, padded_rows) = avg_axis(oh, g.stride[0], g.padding[0], g.kernel[0], g.in_h);
    let (cols, padded_cols) = avg_axis(ow, g.stride[1], g.padding[1], g.kernel[1], g.in_w);
    let divisor = if count_include_pad {
        padded_rows * padded_cols
    } else {
        rows.len() * cols.len()
    };
    (rows, cols, divisor)
}

/// Fails unless the dilation is 1 (average pooling has none).
fn check_no_dilation(g: &Pool2dGeometry, kernel: &str) -> Result<(), KernelError> {
    if g.dilation == [1, 1] {
        Ok(())
    } else {
        Err(crate::kernel_err!(
            "{kernel}: average pooling has no dilation, got {:?}",
            g.dilation
        ))
    }
}

/// Reference [`crate::pool::avg_pool2d_forward`].
pub fn avg_pool2d_forward<T: Float>(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    x: &[T],
    y: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "avg_pool2d (reference)";
    check(g, KERNEL, x.len(), y.len())?;
    check_no_dilation(g, KERNEL)?;
    for_each_output(g.batch * g.channels, g.out_h, g.out_w, |p, oh, ow, o| {
        let (rows, cols, divisor) = avg_window(g, count_include_pad, oh, ow);
        let mut sum = T::ZERO;
        for &ih in &rows {
            for &iw in &cols {
                sum += x[(p * g.in_h + ih) * g.in_w + iw];
            }
        }
        y[o] = if rows.is_empty() || cols.is_empty() {
            T::ZERO
        } else {
            sum / T::from_f64(divisor as f64)
        };
    });
    Ok(())
}

/// Reference [`crate::pool::avg_pool2d_backward`].
pub fn avg_pool2d_backward<T: Float>(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    dy: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "avg_pool2d_backward (reference)";
    check(g, KERNEL, dx.len(), dy.len())?;
    check_no_dilation(g, KERNEL)?;
    dx.fill(T::ZERO);
    for_each_output(g.batch * g.channels, g.out_h, g.out_w, |p, oh, ow, o| {
        let (rows, cols, divisor) = avg_window(g, count_include_pad, oh, ow);
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        let share = dy[o] / T::from_f64(divisor as f64);
        for &ih in &rows {
            for &iw in &cols {
                dx[(p * g.in_h + ih) * g.in_w + iw] += share;
            }
        }
    });
    Ok(())
}

/// Checks geometry and the two slice lengths of an adaptive pooling call.
fn check_adaptive(
    g: &AdaptivePool2dGeometry,
    kernel: &str,
    input_len: usize,
    output_len: usize,
) -> Result<(), KernelError> {
    g.validate(kernel)?;
    check_len(kernel, "input", input_len, &g.input_dims())?;
    check_len(kernel, "output", output_len, &g.output_dims())
}

/// Reference [`crate::pool::adaptive_avg_pool2d_forward`].
pub fn adaptive_avg_pool2d_forward<T: Float>(
    g: &AdaptivePool2dGeometry,
    x: &[T],
    y: &mut [T],
) -> Result<(), KernelError> {
    check_adaptive(g, "adaptive_avg_pool2d (reference)", x.len(), y.len())?;
    for_each_output(g.batch * g.channels, g.out_h, g.out_w, |p, oh, ow, o| {
        let rows = adaptive_bin(oh, g.out_h, g.in_h);
        let cols = adaptive_bin(ow, g.out_w, g.in_w);
        let mut sum = T::ZERO;
        for ih in rows.clone() {
            for iw in cols.clone() {
                sum += x[(p * g.in_h + ih) * g.in_w + iw];
            }
        }
        y[o] = sum / T::from_f64(rows.len() as f64) / T::from_f64(cols.len() as f64);
    });
    Ok(())
}

/// Reference [`crate::pool::adaptive_avg_pool2d_backward`].
pub fn adaptive_avg_pool2d_backward<T: Float>(
    g: &AdaptivePool2dGeometry,
    dy: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    check_adaptive(
        g,
        "adaptive_avg_pool2d_backward (reference)",
        dx.len(),
        dy.len(),
    )?;
    dx.fill(T::ZERO);
    for_each_output(g.batch * g.channels, g.out_h, g.out_w, |p, oh, ow, o| {
        let rows = adaptive_bin(oh, g.out_h, g.in_h);
        let cols = adaptive_bin(ow, g.out_w, g.in_w);
        let share = dy[o] / T::from_f64(rows.len() as f64) / T::from_f64(cols.len() as f64);
        for ih in rows {
            for iw in cols.clone() {
                dx[(p * g.in_h + ih) * g.in_w + iw] += share;
            }
        }
    });
    Ok(())
}
