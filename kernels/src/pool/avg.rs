//! Average pooling, forward and backward, with PyTorch's divisor rules.

use rayon::prelude::*;

use super::window::{worth_parallel, AvgSpan};
use super::Pool2dGeometry;
use crate::check::check_len;
use crate::{Float, KernelError};

/// Checks an average-pool call: consistent geometry without dilation, and the lengths.
fn check_avg(
    g: &Pool2dGeometry,
    kernel: &str,
    input_len: usize,
    output_len: usize,
) -> Result<(), KernelError> {
    g.validate(kernel)?;
    if g.dilation != [1, 1] {
        return Err(crate::kernel_err!(
            "{kernel}: average pooling has no dilation (PyTorch's avg_pool2d), got dilation {:?}",
            g.dilation
        ));
    }
    let input_name = if kernel.ends_with("backward") {
        "input gradient"
    } else {
        "input"
    };
    let output_name = if kernel.ends_with("backward") {
        "output gradient"
    } else {
        "output"
    };
    check_len(kernel, input_name, input_len, &g.input_dims())?;
    check_len(kernel, output_name, output_len, &g.output_dims())
}

/// The windows of both axes and, per output, the divisor.
struct AvgWindows {
    rows: Vec<AvgSpan>,
    cols: Vec<AvgSpan>,
    count_include_pad: bool,
}

impl AvgWindows {
    fn new(g: &Pool2dGeometry, count_include_pad: bool) -> Self {
        Self {
            rows: AvgSpan::all(g.out_h, g.stride[0], g.padding[0], g.kernel[0], g.in_h),
            cols: AvgSpan::all(g.out_w, g.stride[1], g.padding[1], g.kernel[1], g.in_w),
            count_include_pad,
        }
    }

    /// PyTorch's divisor: with `count_include_pad` the window clipped to the padded
    /// input, else the number of input elements in it.
    fn divisor<T: Float>(&self, row: &AvgSpan, col: &AvgSpan) -> T {
        let count = if self.count_include_pad {
            row.padded_len * col.padded_len
        } else {
            row.inside.len() * col.inside.len()
        };
        T::from_f64(count as f64)
    }
}

/// Average pooling with PyTorch's divisor rules for `count_include_pad` and
/// `ceil_mode` (windows are clipped to input+padding; with `count_include_pad` the
/// divisor is the clipped-to-padded-input window size; without, the number of real
/// input elements). No divisor override; the geometry's dilation must be 1. A window
/// with no input element gives 0. `y` is overwritten.
pub fn avg_pool2d_forward<T: Float>(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    x: &[T],
    y: &mut [T],
) -> Result<(), KernelError> {
    check_avg(g, "avg_pool2d", x.len(), y.len())?;
    let windows = AvgWindows::new(g, count_include_pad);
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    let plane = |(p, y_plane): (usize, &mut [T])| {
        let x_plane = &x[p * in_plane..][..in_plane];
        let mut outputs = y_plane.iter_mut();
        for row in &windows.rows {
            for col in &windows.cols {
                let Some(y) = outputs.next() else { return };
                if row.inside.is_empty() || col.inside.is_empty() {
                    *y = T::ZERO;
                    continue;
                }
                let mut sum = T::ZERO;
                for ih in row.inside.clone() {
                    for &v in &x_plane[ih * g.in_w..][col.inside.clone()] {
                        sum += v;
                    }
                }
                *y = sum / windows.divisor::<T>(row, col);
            }
        }
    };
    if worth_parallel(g.batch * g.channels, y.len() * g.kernel[0] * g.kernel[1]) {
        y.par_chunks_mut(out_plane).enumerate().for_each(plane);
    } else {
        y.chunks_mut(out_plane).enumerate().for_each(plane);
    }
    Ok(())
}

/// The adjoint of [`avg_pool2d_forward`]: each output's gradient divided by its
/// divisor is added to every input element of its window (dx overwritten).
pub fn avg_pool2d_backward<T: Float>(
    g: &Pool2dGeometry,
    count_include_pad: bool,
    dy: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    check_avg(g, "avg_pool2d_backward", dx.len(), dy.len())?;
    let windows = AvgWindows::new(g, count_include_pad);
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    let plane = |(p, dx_plane): (usize, &mut [T])| {
        dx_plane.fill(T::ZERO);
        let mut grads = dy[p * out_plane..][..out_plane].iter();
        for row in &windows.rows {
            for col in &windows.cols {
                let Some(&d) = grads.next() else { return };
                if row.inside.is_empty() || col.inside.is_empty() {
                    continue;
                }
                let share = d / windows.divisor::<T>(row, col);
                for ih in row.inside.clone() {
                    for v in &mut dx_plane[ih * g.in_w..][col.inside.clone()] {
                        *v += share;
                    }
                }
            }
        }
    };
    if worth_parallel(g.batch * g.channels, dy.len() * g.kernel[0] * g.kernel[1]) {
        dx.par_chunks_mut(in_plane).enumerate().for_each(plane);
    } else {
        dx.chunks_mut(in_plane).enumerate().for_each(plane);
    }
    Ok(())
}
