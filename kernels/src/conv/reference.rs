//! Direct-loop convolution kernels, obviously correct and slow: the yardstick for
//! the fast ones. Same contracts as the functions in [`crate::conv`].

use super::Conv2dGeometry;
use crate::check::check_len;
use crate::{Float, KernelError};

/// One term of the convolution sum: output `y[n][co][oh][ow]` gets
/// `x[n][ci][ih][iw] · w[co][ci % cin_g][ki][kj]`. Indices are flat offsets.
struct Term {
    x: usize,
    w: usize,
    y: usize,
}

/// Calls `visit` for every term of the convolution sum (taps in the padding skipped).
fn for_each_term(g: &Conv2dGeometry, mut visit: impl FnMut(Term)) {
    let cin_g = g.in_channels / g.groups;
    let cout_g = g.out_channels / g.groups;
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            let group = co / cout_g;
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let y = ((n * g.out_channels + co) * g.out_h + oh) * g.out_w + ow;
                    for c in 0..cin_g {
                        let ci = group * cin_g + c;
                        for ki in 0..g.kernel_h {
                            let Some(ih) =
                                tap(oh, ki, g.stride[0], g.dilation[0], g.padding[0], g.in_h)
                            else {
                                continue;
                            };
                            for kj in 0..g.kernel_w {
                                let Some(iw) =
                                    tap(ow, kj, g.stride[1], g.dilation[1], g.padding[1], g.in_w)
                                else {
                                    continue;
                                };
                                let x = ((n * g.in_channels + ci) * g.in_h + ih) * g.in_w + iw;
                                let w = ((co * cin_g + c) * g.kernel_h + ki) * g.kernel_w + kj;
                                visit(Term { x, w, y });
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The input coordinate `o·stride + k·dilation − pad`, if it lies in `0..size`.
fn tap(
    o: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    size: usize,
) -> Option<usize> {
    (o * stride + k * dilation)
        .checked_sub(pad)
        .filter(|&i| i < size)
}

/// Reference [`crate::conv::conv2d_forward`].
pub fn conv2d_forward<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d (reference)";
    g.check_lens(
        KERNEL,
        ("input", x.len()),
        Some(("weight", w.len())),
        ("output", y.len()),
    )?;
    if let Some(bias) = bias {
        check_len(KERNEL, "bias", bias.len(), &[g.out_channels])?;
    }
    y.fill(T::ZERO);
    for_each_term(g, |t| y[t.y] += x[t.x] * w[t.w]);
    if let Some(bias) = bias {
        let plane = g.out_h * g.out_w;
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias[(i / plane) % g.out_channels];
        }
    }
    Ok(())
}

/// Reference [`crate::conv::conv2d_input_grad`].
pub fn conv2d_input_grad<T: Float>(
    g: &Conv2dGeometry,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_input_grad (reference)";
    g.check_lens(
        KERNEL,
        ("input gradient", dx.len()),
        Some(("weight", w.len())),
        ("output gradient", dy.len()),
    )?;
    dx.fill(T::ZERO);
    for_each_term(g, |t| dx[t.x] += dy[t.y] * w[t.w]);
    Ok(())
}

/// Reference [`crate::conv::conv2d_weight_grad`].
pub fn conv2d_weight_grad<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_weight_grad (reference)";
    g.check_lens(
        KERNEL,
        ("input", x.len()),
        Some(("weight gradient", dw.len())),
        ("output gradient", dy.len()),
    )?;
    dw.fill(T::ZERO);
    for_each_term(g, |t| dw[t.w] += dy[t.y] * x[t.x]);
    Ok(())
}

/// Reference [`crate::conv::conv2d_bias_grad`].
pub fn conv2d_bias_grad<T: Float>(
    g: &Conv2dGeometry,
    dy: &[T],
    db: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_bias_grad (reference)";
    g.validate(KERNEL)?;
    check_len(KERNEL, "output gradient", dy.len(), &g.output_dims())?;
    check_len(KERNEL, "bias gradient", db.len(), &[g.out_channels])?;
    db.fill(T::ZERO);
    let plane = g.out_h * g.out_w;
    for (i, v) in dy.iter().enumerate() {
        db[(i / plane) % g.out_channels] += *v;
    }
    Ok(())
}
