//! Convolutions in PyTorch's layouts on the kernels' im2col + gemm: `Conv2d` (NCHW input,
//! weight `[out, in/groups, kh, kw]`) and `Conv1d` (NCL input, weight `[out, in/groups, k]`,
//! run as a 2-d convolution of height 1). Unbatched inputs (`[C, H, W]`, `[C, L]`) are
//! accepted as PyTorch does.
//!
//! VJP: input, weight and bias gradients from the kernels, each only when needed.
//! JVP: conv(tx, w) + conv(x, tw) + tb, only the terms whose tangent is given.
//!
//! `Conv2dRelu` is `Conv2d` then `Relu` in one node, for the attribution sweep: the ReLU
//! (and the JVP's mask) is applied to each output image right after the convolution
//! writes it, while it is in cache, and the pre-activation is never stored. Its value,
//! VJP and JVP equal those of the two ops in sequence bit for bit.

use super::activation::{relu, relu_slope};
use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::{Linearity, Op};
use crate::tensor::Tensor;
use crate::{ensure, Error, Result};
use mho_kernels::conv::{
    conv2d_bias_grad, conv2d_forward, conv2d_forward_then, conv2d_input_grad, conv2d_weight_grad,
    Conv2dGeometry,
};
use mho_kernels::simd::vectorized;
use mho_kernels::Float;

/// 2-d convolution: inputs `[x: [N, C_in, H, W], w: [C_out, C_in/groups, kh, kw]]`, plus
/// `b: [C_out]` when `bias`; output `[N, C_out, OH, OW]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    /// Stride `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Zero padding on each side, `[vertical, horizontal]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[vertical, horizontal]`.
    pub dilation: [usize; 2],
    /// Channel groups; must divide C_in and C_out.
    pub groups: usize,
    /// Whether a bias vector is the third input.
    pub bias: bool,
}

/// 1-d convolution: inputs `[x: [N, C_in, L], w: [C_out, C_in/groups, k]]`, plus
/// `b: [C_out]` when `bias`; output `[N, C_out, OL]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv1d {
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups; must divide C_in and C_out.
    pub groups: usize,
    /// Whether a bias vector is the third input.
    pub bias: bool,
}

/// A convolution's validated geometry and its output shape.
struct ConvPlan {
    geometry: Conv2dGeometry,
    out_shape: Vec<usize>,
}

/// The batch size and the per-example shape of a possibly unbatched input whose batched
/// rank is `rank`, or an error.
fn split_batch<'a>(
    name: &str,
    x: &'a [usize],
    rank: usize,
    layout: &str,
) -> Result<(usize, &'a [usize], bool)> {
    if x.len() == rank {
        Ok((x[0], &x[1..], true))
    } else if x.len() + 1 == rank {
        Ok((1, x, false))
    } else {
        crate::bail!("{name}: input {x:?} must be {layout} (or unbatched)")
    }
}

/// Validates a convolution's shapes (spatial rank 1 or 2) and builds its geometry.
fn plan<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    bias: bool,
    spatial: usize,
    params: (&[usize], &[usize], &[usize], usize),
) -> Result<ConvPlan> {
    let (xs, ws) = (x[0].shape(), x[1].shape());
    let layout = if spatial == 2 {
        "[N, C, H, W]"
    } else {
        "[N, C, L]"
    };
    let (batch, per_example, batched) = split_batch(name, xs, spatial + 2, layout)?;
    ensure!(
        ws.len() == spatial + 2,
        "{name}: weight {ws:?} must have rank {} ([out, in/groups, kernel...])",
        spatial + 2
    );
    let (stride, padding, dilation, groups) = params;
    ensure!(groups >= 1, "{name}: groups must be at least 1, got 0");
    let (channels, out_channels) = (per_example[0], ws[0]);
    let expected = ws[1].saturating_mul(groups);
    ensure!(
        expected == channels,
        "{name}: input {xs:?} has {channels} channels, weight {ws:?} expects {expected} (groups {groups})"
    );
    ensure!(
        out_channels % groups == 0,
        "{name}: weight {ws:?} has {out_channels} output channels, not divisible by groups {groups}"
    );
    if bias {
        ensure!(
            x[2].shape() == [out_channels],
            "{name}: bias {:?} does not match the {out_channels} output channels of weight {ws:?}",
            x[2].shape()
        );
    }
    // Conv1d runs as a 2-d convolution of height 1.
    let pad2 = |v: &[usize], fill: usize| {
        if spatial == 2 {
            [v[0], v[1]]
        } else {
            [fill, v[0]]
        }
    };
    let in_hw = pad2(&per_example[1..], 1);
    let kernel = pad2(&ws[2..], 1);
    let geometry = Conv2dGeometry::new(
        batch,
        channels,
        in_hw,
        out_channels,
        kernel,
        pad2(stride, 1),
        pad2(padding, 0),
        pad2(dilation, 1),
        groups,
    )
    .map_err(|e| Error::from(e).context(format!("{name}: input {xs:?}, weight {ws:?}")))?;
    let mut out_shape = if batched { vec![batch] } else { vec![] };
    out_shape.push(out_channels);
    if spatial == 2 {
        out_shape.push(geometry.out_h);
    }
    out_shape.push(geometry.out_w);
    Ok(ConvPlan {
        geometry,
        out_shape,
    })
}

/// Maps a kernel error into the op's error.
fn kernel<R>(name: &str, r: std::result::Result<R, mho_kernels::KernelError>) -> Result<R> {
    r.map_err(|e| Error::from(e).context(name))
}

/// Writes `bias[c]` over every output plane of channel c.
fn fill_bias<T: Float>(y: &mut [T], bias: &[T], plane: usize) {
    if plane == 0 || bias.is_empty() {
        return;
    }
    for (i, p) in y.chunks_exact_mut(plane).enumerate() {
        p.fill(bias[i % bias.len()]);
    }
}

fn forward<T: Float>(name: &str, x: &[&Tensor<T>], bias: bool, p: &ConvPlan) -> Result<Tensor<T>> {
    // The kernel overwrites every output element.
    let mut y = Tensor::for_overwrite(&p.out_shape);
    let b = bias.then(|| x[2].data());
    kernel(
        name,
        conv2d_forward(&p.geometry, x[0].data(), x[1].data(), b, y.data_mut()),
    )?;
    Ok(y)
}

fn vjp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    g: &Tensor<T>,
    needs: &[bool],
    p: &ConvPlan,
) -> Result<Vec<Option<Tensor<T>>>> {
    let geo = &p.geometry;
    let mut grads = Vec::with_capacity(x.len());
    grads.push(if needs[0] {
        let mut dx = Tensor::for_overwrite(x[0].shape()); // the kernel overwrites it
        kernel(
            name,
            conv2d_input_grad(geo, g.data(), x[1].data(), dx.data_mut()),
        )?;
        Some(dx)
    } else {
        None
    });
    grads.push(if needs[1] {
        let mut dw = Tensor::for_overwrite(x[1].shape()); // the kernel overwrites it
        kernel(
            name,
            conv2d_weight_grad(geo, x[0].data(), g.data(), dw.data_mut()),
        )?;
        Some(dw)
    } else {
        None
    });
    if x.len() == 3 {
        grads.push(if needs[2] {
            let mut db = Tensor::zeros(x[2].shape());
            kernel(name, conv2d_bias_grad(geo, g.data(), db.data_mut()))?;
            Some(db)
        } else {
            None
        });
    }
    Ok(grads)
}

fn jvp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    t: &[Option<&Tensor<T>>],
    p: &ConvPlan,
) -> Result<Tensor<T>> {
    let geo = &p.geometry;
    let tb = t.get(2).copied().flatten().map(Tensor::data);
    // The first convolution computed (or the bias fill) overwrites every element.
    let mut out = if t[0].is_some() || t[1].is_some() || tb.is_some() {
        Tensor::for_overwrite(&p.out_shape)
    } else {
        Tensor::zeros(&p.out_shape)
    };
    // The bias tangent rides along with the first convolution computed.
    let mut bias_done = false;
    if let Some(tx) = t[0] {
        kernel(
            name,
            conv2d_forward(geo, tx.data(), x[1].data(), tb, out.data_mut()),
        )?;
        bias_done = true;
    }
    if let Some(tw) = t[1] {
        if bias_done {
            let mut term = vec![T::ZERO; out.len()];
            kernel(
                name,
                conv2d_forward(geo, x[0].data(), tw.data(), None, &mut term),
            )?;
            for (o, v) in out.data_mut().iter_mut().zip(term) {
                *o += v;
            }
        } else {
            kernel(
                name,
                conv2d_forward(geo, x[0].data(), tw.data(), tb, out.data_mut()),
            )?;
            bias_done = true;
        }
    }
    if let (false, Some(tb)) = (bias_done, tb) {
        fill_bias(out.data_mut(), tb, geo.out_h * geo.out_w);
    }
    Ok(out)
}

/// Implements `Op` for a convolution struct with a `plan` method.
macro_rules! conv_op {
    ($ty:ty, $name:literal) => {
        impl<T: Float> Op<T> for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
                expect_inputs($name, x, self.inputs())?;
                let p = self.plan(x)?;
                forward($name, x, self.bias, &p)
            }

            fn vjp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                g: &Tensor<T>,
                needs: &[bool],
            ) -> Result<Vec<Option<Tensor<T>>>> {
                check_vjp($name, x, needs, self.inputs())?;
                let p = self.plan(x)?;
                check_output($name, y, Some(g), &p.out_shape)?;
                vjp($name, x, g, needs, &p)
            }

            fn jvp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                t: &[Option<&Tensor<T>>],
            ) -> Result<Tensor<T>> {
                check_jvp($name, x, t, self.inputs())?;
                let p = self.plan(x)?;
                check_output($name, y, None, &p.out_shape)?;
                jvp($name, x, t, &p)
            }

            fn linearity(&self) -> Linearity {
                Linearity::Affine
            }
        }
    };
}

impl Conv2d {
    pub(super) fn inputs(&self) -> usize {
        2 + usize::from(self.bias)
    }

    fn plan<T: Float>(&self, x: &[&Tensor<T>]) -> Result<ConvPlan> {
        let params = (
            &self.stride[..],
            &self.padding[..],
            &self.dilation[..],
            self.groups,
        );
        plan("conv2d", x, self.bias, 2, params)
    }
}

impl Conv1d {
    fn inputs(&self) -> usize {
        2 + usize::from(self.bias)
    }

    fn plan<T: Float>(&self, x: &[&Tensor<T>]) -> Result<ConvPlan> {
        let params = (
            &[self.stride][..],
            &[self.padding][..],
            &[self.dilation][..],
            self.groups,
        );
        plan("conv1d", x, self.bias, 1, params)
    }
}

conv_op!(Conv2d, "conv2d");
conv_op!(Conv1d, "conv1d");

/// `Conv2d` followed by ReLU, as one op: inputs as [`Conv2d`]'s, output
/// max(conv2d(x, w) + b, 0) (NaN kept, as [`super::Relu`]). The ReLU's derivative,
/// 1 where the pre-activation is > 0 and else 0 (relu'(0) = 0), is read off the output:
/// the output is > 0 exactly where the pre-activation is.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dRelu {
    /// The convolution.
    pub conv: Conv2d,
}

impl<T: Float> Op<T> for Conv2dRelu {
    fn name(&self) -> &'static str {
        "conv2d_relu"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        const NAME: &str = "conv2d_relu";
        expect_inputs(NAME, x, self.conv.inputs())?;
        let p = self.conv.plan(x)?;
        let mut y = Tensor::for_overwrite(&p.out_shape); // the kernel overwrites it
        let b = self.conv.bias.then(|| x[2].data());
        let then = |_: usize, images: &mut [T]| {
            vectorized(
                #[inline(always)]
                || images.iter_mut().for_each(|v| *v = relu(*v)),
            )
        };
        kernel(
            NAME,
            conv2d_forward_then(
                &p.geometry,
                x[0].data(),
                x[1].data(),
                b,
                y.data_mut(),
                &then,
            ),
        )?;
        Ok(y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        const NAME: &str = "conv2d_relu";
        check_vjp(NAME, x, needs, self.conv.inputs())?;
        let p = self.conv.plan(x)?;
        check_output(NAME, y, Some(g), &p.out_shape)?;
        // ReLU's VJP, then the convolution's.
        let masked = super::zip_tensors(g, y, |g, y| g * relu_slope(y))?;
        let grads = vjp(NAME, x, &masked, needs, &p);
        // Back to the buffer pool: a layer-sized temporary freed to the allocator costs
        // its page faults again on the next call.
        masked.recycle();
        grads
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        const NAME: &str = "conv2d_relu";
        check_jvp(NAME, x, t, self.conv.inputs())?;
        let p = self.conv.plan(x)?;
        check_output(NAME, y, None, &p.out_shape)?;
        let (tx, others) = (t[0], t[1..].iter().any(Option::is_some));
        match tx {
            // Only the input's tangent (the attribution sweep's case): the mask is
            // applied to each image as the convolution writes it.
            Some(tx) if !others => {
                let mut out = Tensor::for_overwrite(&p.out_shape); // overwritten
                let image = p.geometry.output_len() / p.geometry.batch.max(1);
                let then = |first: usize, images: &mut [T]| {
                    let ys = &y.data()[first * image..][..images.len()];
                    vectorized(
                        #[inline(always)]
                        || {
                            for (o, &v) in images.iter_mut().zip(ys) {
                                *o *= relu_slope(v);
                            }
                        },
                    )
                };
                kernel(
                    NAME,
                    conv2d_forward_then(
                        &p.geometry,
                        tx.data(),
                        x[1].data(),
                        None,
                        out.data_mut(),
                        &then,
                    ),
                )?;
                Ok(out)
            }
            // The convolution's JVP, then ReLU's.
            _ => {
                let pre = jvp(NAME, x, t, &p)?;
                let out = super::zip_tensors(&pre, y, |t, y| t * relu_slope(y));
                pre.recycle();
                out
            }
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::PiecewiseLinear
    }
}
