//! Pooling with PyTorch's rules on the kernels: `MaxPool2d`, `MaxPool1d`, `AvgPool2d`,
//! `AdaptiveAvgPool2d`. Inputs are NCHW (NCL for 1-d), or unbatched `[C, H, W]` (`[C, L]`).
//!
//! Max pooling: padding counts as −∞ and ties go to the first index in row-major window
//! order. VJP and JVP both recompute the argmax from the input (so they agree exactly,
//! ties included): VJP scatters the output gradient to it, JVP gathers the input tangent
//! from it. A window holding no input element (possible with dilation) outputs −∞ and
//! passes no gradient or tangent. Average pooling is linear: its JVP is the forward map.

use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::{Linearity, Op, Saved};
use crate::tensor::Tensor;
use crate::{bail, Error, Result};
use mho_kernels::pool::{
    adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
    avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward, AdaptivePool2dGeometry,
    Pool2dGeometry, NO_ARGMAX,
};
use mho_kernels::{Float, KernelError};
use rayon::prelude::*;

/// 2-d max pooling over NCHW planes.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window size `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]` (PyTorch's default is the kernel size).
    pub stride: [usize; 2],
    /// Implicit −∞ padding on each side; at most half the dilated window.
    pub padding: [usize; 2],
    /// Spacing between window taps.
    pub dilation: [usize; 2],
    /// Round the output size up rather than down.
    pub ceil_mode: bool,
}

/// 1-d max pooling over NCL rows.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool1d {
    /// Window length.
    pub kernel: usize,
    /// Stride (PyTorch's default is the kernel size).
    pub stride: usize,
    /// Implicit −∞ padding on each side; at most half the dilated window.
    pub padding: usize,
    /// Spacing between window taps.
    pub dilation: usize,
    /// Round the output size up rather than down.
    pub ceil_mode: bool,
}

/// 2-d average pooling over NCHW planes.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window size `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]` (PyTorch's default is the kernel size).
    pub stride: [usize; 2],
    /// Implicit zero padding on each side; at most half the window.
    pub padding: [usize; 2],
    /// Round the output size up rather than down.
    pub ceil_mode: bool,
    /// Divide by the whole window, padding included (else by the input elements only).
    pub count_include_pad: bool,
}

/// Average pooling to a fixed output size `[OH, OW]` with PyTorch's bins.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d {
    /// The output size `[height, width]`.
    pub output_size: [usize; 2],
}

/// An input's planes: batch, channels, spatial size `[h, w]` (h = 1 for 1-d), and whether
/// the input had a batch axis.
struct Planes {
    batch: usize,
    channels: usize,
    hw: [usize; 2],
    batched: bool,
    spatial: usize,
}

impl Planes {
    /// Reads the planes of an input with `spatial` (1 or 2) spatial axes.
    fn of(name: &str, shape: &[usize], spatial: usize) -> Result<Self> {
        let batched = shape.len() == spatial + 2;
        if !batched && shape.len() != spatial + 1 {
            let layout = if spatial == 2 {
                "[N, C, H, W]"
            } else {
                "[N, C, L]"
            };
            bail!("{name}: input {shape:?} must be {layout} (or unbatched)");
        }
        let s = if batched { &shape[1..] } else { shape };
        let hw = if spatial == 2 {
            [s[1], s[2]]
        } else {
            [1, s[1]]
        };
        Ok(Planes {
            batch: if batched { shape[0] } else { 1 },
            channels: s[0],
            hw,
            batched,
            spatial,
        })
    }

    /// The output shape for an output plane of `[oh, ow]`.
    fn out_shape(&self, [oh, ow]: [usize; 2]) -> Vec<usize> {
        let mut out = if self.batched {
            vec![self.batch]
        } else {
            vec![]
        };
        out.push(self.channels);
        if self.spatial == 2 {
            out.push(oh);
        }
        out.push(ow);
        out
    }
}

/// Maps a kernel error into the op's error, naming the input shape.
fn kernel<R>(name: &str, shape: &[usize], r: std::result::Result<R, KernelError>) -> Result<R> {
    r.map_err(|e| Error::from(e).context(format!("{name}: input {shape:?}")))
}

/// A validated max pooling: the kernel geometry and the output shape.
struct MaxPlan {
    geometry: Pool2dGeometry,
    out_shape: Vec<usize>,
}

impl MaxPlan {
    /// Runs the forward kernel: (output, argmax).
    fn run<T: Float>(&self, name: &str, x: &Tensor<T>) -> Result<(Tensor<T>, Vec<usize>)> {
        // The kernel overwrites every element of both.
        let mut y = Tensor::for_overwrite(&self.out_shape);
        let mut argmax = crate::buffers::take_for_overwrite(y.len());
        kernel(
            name,
            x.shape(),
            max_pool2d_forward(&self.geometry, x.data(), y.data_mut(), &mut argmax),
        )?;
        Ok((y, argmax))
    }

    /// The argmax the forward pass saved for `x` (when it is one of this plan's size),
    /// or the argmax computed afresh.
    fn argmax<'s, T: Float>(
        &self,
        name: &str,
        x: &Tensor<T>,
        saved: Option<&'s Saved>,
    ) -> Result<std::borrow::Cow<'s, [usize]>> {
        let out_len: usize = self.out_shape.iter().product();
        match saved.and_then(|s| s.downcast_ref::<Vec<usize>>()) {
            Some(argmax) if argmax.len() == out_len => Ok(std::borrow::Cow::Borrowed(argmax)),
            _ => Ok(std::borrow::Cow::Owned(self.run(name, x)?.1)),
        }
    }
}

impl MaxPool2d {
    fn plan(&self, shape: &[usize]) -> Result<MaxPlan> {
        let p = Planes::of("max_pool2d", shape, 2)?;
        let g = Pool2dGeometry::new(
            p.batch,
            p.channels,
            p.hw,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        );
        let geometry = kernel("max_pool2d", shape, g)?;
        let out_shape = p.out_shape([geometry.out_h, geometry.out_w]);
        Ok(MaxPlan {
            geometry,
            out_shape,
        })
    }
}

impl MaxPool1d {
    fn plan(&self, shape: &[usize]) -> Result<MaxPlan> {
        let p = Planes::of("max_pool1d", shape, 1)?;
        let g = Pool2dGeometry::pool1d(
            p.batch,
            p.channels,
            p.hw[1],
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        );
        let geometry = kernel("max_pool1d", shape, g)?;
        let out_shape = p.out_shape([geometry.out_h, geometry.out_w]);
        Ok(MaxPlan {
            geometry,
            out_shape,
        })
    }
}

/// Implements `Op` for a max pooling struct with a `plan(shape)` method.
macro_rules! max_pool_op {
    ($ty:ty, $name:literal) => {
        impl<T: Float> Op<T> for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
                Ok(self.forward_saving(x)?.0)
            }

            fn forward_saving(&self, x: &[&Tensor<T>]) -> Result<(Tensor<T>, Option<Saved>)> {
                expect_inputs($name, x, 1)?;
                let (y, argmax) = self.plan(x[0].shape())?.run($name, x[0])?;
                Ok((y, Some(Box::new(argmax))))
            }

            fn vjp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                g: &Tensor<T>,
                needs: &[bool],
            ) -> Result<Vec<Option<Tensor<T>>>> {
                self.vjp_with(x, y, g, needs, None)
            }

            fn vjp_with(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                g: &Tensor<T>,
                needs: &[bool],
                saved: Option<&Saved>,
            ) -> Result<Vec<Option<Tensor<T>>>> {
                check_vjp($name, x, needs, 1)?;
                let plan = self.plan(x[0].shape())?;
                check_output($name, y, Some(g), &plan.out_shape)?;
                if !needs[0] {
                    return Ok(vec![None]);
                }
                let argmax = plan.argmax($name, x[0], saved)?;
                // The kernel zeroes dx before scattering into it.
                let mut dx = Tensor::for_overwrite(x[0].shape());
                let r = max_pool2d_backward(&plan.geometry, g.data(), &argmax, dx.data_mut());
                kernel($name, x[0].shape(), r)?;
                Ok(vec![Some(dx)])
            }

            fn jvp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                t: &[Option<&Tensor<T>>],
            ) -> Result<Tensor<T>> {
                self.jvp_with(x, y, t, None)
            }

            fn jvp_with(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                t: &[Option<&Tensor<T>>],
                saved: Option<&Saved>,
            ) -> Result<Tensor<T>> {
                check_jvp($name, x, t, 1)?;
                let plan = self.plan(x[0].shape())?;
                check_output($name, y, None, &plan.out_shape)?;
                let Some(t) = t[0] else {
                    return Ok(Tensor::zeros(&plan.out_shape));
                };
                let argmax = plan.argmax($name, x[0], saved)?;
                let td = t.data();
                let mut out = Tensor::for_overwrite(&plan.out_shape);
                let gather = |(o, a): (&mut [T], &[usize])| {
                    for (o, &i) in o.iter_mut().zip(a) {
                        *o = if i == NO_ARGMAX { T::ZERO } else { td[i] };
                    }
                };
                const CHUNK: usize = 1 << 14;
                if argmax.len() >= 4 * CHUNK {
                    out.data_mut()
                        .par_chunks_mut(CHUNK)
                        .zip(argmax.par_chunks(CHUNK))
                        .for_each(gather);
                } else {
                    gather((out.data_mut(), &argmax));
                }
                Ok(out)
            }

            fn linearity(&self) -> Linearity {
                Linearity::PiecewiseLinear
            }
        }
    };
}

max_pool_op!(MaxPool2d, "max_pool2d");
max_pool_op!(MaxPool1d, "max_pool1d");

/// A pooling kernel's result.
type KernelResult = std::result::Result<(), KernelError>;

/// A linear pooling op (average pooling): a kernel geometry planned from the input shape,
/// and forward and backward kernels over it. Its JVP is its forward map on the tangent.
trait LinearPool {
    /// The op's name, for errors.
    const NAME: &'static str;
    /// The kernel geometry.
    type Geometry;

    /// The kernel geometry and the output shape for an input shape.
    fn plan(&self, shape: &[usize]) -> Result<(Self::Geometry, Vec<usize>)>;

    /// Runs the forward kernel: x → y.
    fn forward_kernel<T: Float>(&self, g: &Self::Geometry, x: &[T], y: &mut [T]) -> KernelResult;

    /// Runs the backward kernel: dy → dx.
    fn backward_kernel<T: Float>(&self, g: &Self::Geometry, dy: &[T], dx: &mut [T])
        -> KernelResult;
}

/// A linear pooling's forward map.
fn linear_apply<P: LinearPool, T: Float>(op: &P, x: &Tensor<T>) -> Result<Tensor<T>> {
    let (g, out_shape) = op.plan(x.shape())?;
    let mut y = Tensor::zeros(&out_shape);
    let r = op.forward_kernel(&g, x.data(), y.data_mut());
    kernel(P::NAME, x.shape(), r)?;
    Ok(y)
}

/// A linear pooling's VJP: the backward kernel on the output gradient.
fn linear_vjp<P: LinearPool, T: Float>(
    op: &P,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    g: &Tensor<T>,
    needs: &[bool],
) -> Result<Vec<Option<Tensor<T>>>> {
    check_vjp(P::NAME, x, needs, 1)?;
    let (geometry, out_shape) = op.plan(x[0].shape())?;
    check_output(P::NAME, y, Some(g), &out_shape)?;
    if !needs[0] {
        return Ok(vec![None]);
    }
    let mut dx = Tensor::zeros(x[0].shape());
    let r = op.backward_kernel(&geometry, g.data(), dx.data_mut());
    kernel(P::NAME, x[0].shape(), r)?;
    Ok(vec![Some(dx)])
}

/// A linear pooling's JVP: the forward map on the tangent.
fn linear_jvp<P: LinearPool, T: Float>(
    op: &P,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    t: &[Option<&Tensor<T>>],
) -> Result<Tensor<T>> {
    check_jvp(P::NAME, x, t, 1)?;
    let (_, out_shape) = op.plan(x[0].shape())?;
    check_output(P::NAME, y, None, &out_shape)?;
    match t[0] {
        Some(t) => linear_apply(op, t),
        None => Ok(Tensor::zeros(&out_shape)),
    }
}

impl LinearPool for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";
    type Geometry = Pool2dGeometry;

    fn plan(&self, shape: &[usize]) -> Result<(Pool2dGeometry, Vec<usize>)> {
        let p = Planes::of("avg_pool2d", shape, 2)?;
        let g = Pool2dGeometry::new(
            p.batch,
            p.channels,
            p.hw,
            self.kernel,
            self.stride,
            self.padding,
            [1, 1],
            self.ceil_mode,
        );
        let g = kernel("avg_pool2d", shape, g)?;
        Ok((g, p.out_shape([g.out_h, g.out_w])))
    }

    fn forward_kernel<T: Float>(&self, g: &Self::Geometry, x: &[T], y: &mut [T]) -> KernelResult {
        avg_pool2d_forward(g, self.count_include_pad, x, y)
    }

    fn backward_kernel<T: Float>(
        &self,
        g: &Self::Geometry,
        dy: &[T],
        dx: &mut [T],
    ) -> KernelResult {
        avg_pool2d_backward(g, self.count_include_pad, dy, dx)
    }
}

impl<T: Float> Op<T> for AvgPool2d {
    fn name(&self) -> &'static str {
        "avg_pool2d"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("avg_pool2d", x, 1)?;
        linear_apply(self, x[0])
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        linear_vjp(self, x, y, g, needs)
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        linear_jvp(self, x, y, t)
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

impl LinearPool for AdaptiveAvgPool2d {
    const NAME: &'static str = "adaptive_avg_pool2d";
    type Geometry = AdaptivePool2dGeometry;

    fn plan(&self, shape: &[usize]) -> Result<(AdaptivePool2dGeometry, Vec<usize>)> {
        let p = Planes::of("adaptive_avg_pool2d", shape, 2)?;
        let g = AdaptivePool2dGeometry::new(p.batch, p.channels, p.hw, self.output_size);
        let g = kernel("adaptive_avg_pool2d", shape, g)?;
        Ok((g, p.out_shape([g.out_h, g.out_w])))
    }

    fn forward_kernel<T: Float>(&self, g: &Self::Geometry, x: &[T], y: &mut [T]) -> KernelResult {
        adaptive_avg_pool2d_forward(g, x, y)
    }

    fn backward_kernel<T: Float>(
        &self,
        g: &Self::Geometry,
        dy: &[T],
        dx: &mut [T],
    ) -> KernelResult {
        adaptive_avg_pool2d_backward(g, dy, dx)
    }
}

impl<T: Float> Op<T> for AdaptiveAvgPool2d {
    fn name(&self) -> &'static str {
        "adaptive_avg_pool2d"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("adaptive_avg_pool2d", x, 1)?;
        linear_apply(self, x[0])
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        linear_vjp(self, x, y, g, needs)
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        linear_jvp(self, x, y, t)
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
