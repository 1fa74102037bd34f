//! Pointwise nonlinearities: `Relu`, `LeakyRelu`, `Prelu`, `Tanh`, `Sigmoid`, `Exp`, `Log`.
//!
//! Kink conventions (shared by VJP and JVP, as in PyTorch): relu'(0) = 0, and leaky_relu
//! and prelu take the negative-side slope at exactly 0 — the derivative is 1 where x > 0
//! and the slope elsewhere, zero included.

use super::{
    check_jvp, check_output, check_vjp, expect_inputs, map_tensor, unary_jvp, unary_vjp,
    zip_tensors,
};
use crate::tape::{Linearity, Op, Saved};
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::elementwise::map_with_tangent;
use mho_kernels::Float;

/// Which value a pointwise op's derivative is computed from.
#[derive(Clone, Copy)]
enum SlopeFrom {
    /// The input x (relu, leaky relu, log).
    Input,
    /// The output y = f(x) (tanh, sigmoid, exp), saving a recomputation.
    Output,
}

/// The tensor a pointwise derivative reads.
fn slope_source<'a, T: Float>(
    from: SlopeFrom,
    x: &'a Tensor<T>,
    y: &'a Tensor<T>,
) -> &'a Tensor<T> {
    match from {
        SlopeFrom::Input => x,
        SlopeFrom::Output => y,
    }
}

/// VJP of a pointwise op: g ⊙ slope(source).
fn pointwise_vjp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    g: &Tensor<T>,
    needs: &[bool],
    from: SlopeFrom,
    slope: impl Fn(T) -> T + Sync,
) -> Result<Vec<Option<Tensor<T>>>> {
    unary_vjp(name, x, y, g, needs)?;
    if !needs[0] {
        return Ok(vec![None]);
    }
    let dx = zip_tensors(g, slope_source(from, x[0], y), |g, s| g * slope(s))?;
    Ok(vec![Some(dx)])
}

/// JVP of a pointwise op: t ⊙ slope(source).
fn pointwise_jvp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    t: &[Option<&Tensor<T>>],
    from: SlopeFrom,
    slope: impl Fn(T) -> T + Sync,
) -> Result<Tensor<T>> {
    unary_jvp(name, x, y, t)?;
    match t[0] {
        Some(t) => zip_tensors(t, slope_source(from, x[0], y), |t, s| t * slope(s)),
        None => Ok(Tensor::zeros(y.shape())),
    }
}

/// Implements `Op` for a pointwise op from its name, its [`Linearity`], its function, and
/// its derivative as a function of the input or of the output (`SlopeFrom`).
macro_rules! pointwise_op {
    (
        $ty:ty, $name:literal, $lin:ident,
        |$s:ident, $v:ident| $f:expr,
        $from:ident, |$sd:ident, $a:ident| $d:expr
    ) => {
        impl<T: Float> Op<T> for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
                expect_inputs($name, x, 1)?;
                let $s = self;
                map_tensor(x[0], |$v: T| $f)
            }

            fn vjp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                g: &Tensor<T>,
                needs: &[bool],
            ) -> Result<Vec<Option<Tensor<T>>>> {
                let $sd = self;
                pointwise_vjp($name, x, y, g, needs, SlopeFrom::$from, |$a: T| $d)
            }

            fn jvp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                t: &[Option<&Tensor<T>>],
            ) -> Result<Tensor<T>> {
                let $sd = self;
                pointwise_jvp($name, x, y, t, SlopeFrom::$from, |$a: T| $d)
            }

            fn forward_and_jvp(
                &self,
                x: &[&Tensor<T>],
                t: &[Option<&Tensor<T>>],
            ) -> Result<(Tensor<T>, Option<Saved>, Tensor<T>)> {
                expect_inputs($name, x, 1)?;
                let Some(tx) = t.first().copied().flatten() else {
                    let y = self.forward(x)?;
                    let ty = self.jvp(x, &y, t)?;
                    return Ok((y, None, ty));
                };
                check_jvp($name, x, t, 1)?;
                let $s = self;
                let value = |$v: T| $f;
                let $sd = self;
                let slope = |$a: T| $d;
                let mut y = Tensor::for_overwrite(x[0].shape());
                let mut ty = Tensor::for_overwrite(x[0].shape());
                // The same arithmetic as `forward` then `jvp`, in one pass.
                let kernel = map_with_tangent(
                    x[0].data(),
                    tx.data(),
                    y.data_mut(),
                    ty.data_mut(),
                    |v: T, tv: T| {
                        let out = value(v);
                        let source = match SlopeFrom::$from {
                            SlopeFrom::Input => v,
                            SlopeFrom::Output => out,
                        };
                        (out, tv * slope(source))
                    },
                );
                kernel.map_err(|e| crate::Error::from(e).context($name))?;
                Ok((y, None, ty))
            }

            fn linearity(&self) -> Linearity {
                Linearity::$lin
            }
        }
    };
}

/// max(x, 0), with relu'(0) = 0 (NaN stays NaN, as in PyTorch).
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;

/// 1 where x > 0, else `negative` (relu: 0; leaky relu and prelu: their slope).
#[inline]
fn step<T: Float>(x: T, negative: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else {
        negative
    }
}

/// max(v, 0), NaN kept: the ReLU's value (also [`super::Conv2dRelu`]'s).
#[inline]
pub(super) fn relu<T: Float>(v: T) -> T {
    if v > T::ZERO || v.is_nan() {
        v
    } else {
        T::ZERO
    }
}

/// relu'(x): 1 where x > 0, else 0 (relu'(0) = 0, and 0 at NaN). The same at relu(x), which
/// is > 0 exactly where x is ([`super::Conv2dRelu`] reads it off its output).
#[inline]
pub(super) fn relu_slope<T: Float>(x: T) -> T {
    step(x, T::ZERO)
}

pointwise_op!(
    Relu,
    "relu",
    PiecewiseLinear,
    |_op, v| relu(v),
    Input,
    |_op, x| relu_slope(x)
);

/// x where x > 0, else `negative_slope`·x; the derivative at 0 is `negative_slope`.
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu {
    /// The slope for x ≤ 0 (PyTorch's default is 0.01).
    pub negative_slope: f64,
}

pointwise_op!(
    LeakyRelu,
    "leaky_relu",
    PiecewiseLinear,
    |op, v| v * step(v, T::from_f64(op.negative_slope)),
    Input,
    |op, x| step(x, T::from_f64(op.negative_slope))
);

/// tanh(x); the derivative 1 − y² is taken from the output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

pointwise_op!(
    Tanh,
    "tanh",
    Smooth,
    |_op, v| v.tanh(),
    Output,
    |_op, y| T::ONE - y * y
);

/// The logistic function 1 / (1 + e^−x), evaluated without overflow; derivative y(1 − y).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;

/// 1 / (1 + e^−x) without overflow for large |x|.
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

pointwise_op!(
    Sigmoid,
    "sigmoid",
    Smooth,
    |_op, v| sigmoid(v),
    Output,
    |_op, y| y * (T::ONE - y)
);

/// eˣ; the derivative is the output itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exp;

pointwise_op!(Exp, "exp", Smooth, |_op, v| v.exp(), Output, |_op, y| y);

/// The natural logarithm (NaN for negative inputs, −∞ at 0, as IEEE); derivative 1/x.
#[derive(Clone, Copy, Debug, Default)]
pub struct Log;

pointwise_op!(Log, "log", Smooth, |_op, v| v.ln(), Input, |_op, x| T::ONE
    / x);

/// Parametric relu: x where x > 0, else a·x with a learned slope a. Inputs `[x, weight]`;
/// the weight holds one slope shared by all channels, or one per channel (axis 1 of x),
/// as PyTorch's `PReLU(num_parameters)`. The derivative at x = 0 is the slope.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prelu;

/// How a prelu weight maps onto x's elements: element `i` uses slope
/// `(i / inner) % channels` (channels = 1 for a shared slope).
struct PreluLayout {
    channels: usize,
    inner: usize,
}

impl PreluLayout {
    fn new<T: Float>(x: &Tensor<T>, w: &Tensor<T>) -> Result<Self> {
        ensure!(
            w.ndim() <= 1,
            "prelu: weight {:?} must be a vector (input {:?})",
            w.shape(),
            x.shape()
        );
        if w.len() == 1 {
            return Ok(PreluLayout {
                channels: 1,
                inner: 1,
            });
        }
        ensure!(
            x.ndim() >= 2 && x.shape()[1] == w.len(),
            "prelu: weight {:?} needs 1 element or one per channel (axis 1) of input {:?}",
            w.shape(),
            x.shape()
        );
        Ok(PreluLayout {
            channels: w.len(),
            inner: x.shape()[2..].iter().product(),
        })
    }

    /// The slope index of flat element `i` of x.
    #[inline]
    fn channel(&self, i: usize) -> usize {
        if self.channels == 1 {
            0
        } else {
            (i / self.inner) % self.channels
        }
    }
}

impl<T: Float> Op<T> for Prelu {
    fn name(&self) -> &'static str {
        "prelu"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("prelu", x, 2)?;
        let layout = PreluLayout::new(x[0], x[1])?;
        let w = x[1].data();
        let data = x[0]
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v > T::ZERO {
                    v
                } else {
                    w[layout.channel(i)] * v
                }
            })
            .collect();
        Tensor::new(x[0].shape().to_vec(), data)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("prelu", x, needs, 2)?;
        let layout = PreluLayout::new(x[0], x[1])?;
        check_output("prelu", y, Some(g), x[0].shape())?;
        let (xs, w, gs) = (x[0].data(), x[1].data(), g.data());
        let dx = if needs[0] {
            let data = (0..xs.len())
                .map(|i| {
                    if xs[i] > T::ZERO {
                        gs[i]
                    } else {
                        gs[i] * w[layout.channel(i)]
                    }
                })
                .collect();
            Some(Tensor::new(x[0].shape().to_vec(), data)?)
        } else {
            None
        };
        let dw = if needs[1] {
            let mut dw = Tensor::zeros(x[1].shape());
            let acc = dw.data_mut();
            for i in 0..xs.len() {
                if xs[i] <= T::ZERO {
                    acc[layout.channel(i)] += gs[i] * xs[i];
                }
            }
            Some(dw)
        } else {
            None
        };
        Ok(vec![dx, dw])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("prelu", x, t, 2)?;
        let layout = PreluLayout::new(x[0], x[1])?;
        check_output("prelu", y, None, x[0].shape())?;
        let (xs, w) = (x[0].data(), x[1].data());
        let data = (0..xs.len())
            .map(|i| {
                let c = layout.channel(i);
                let positive = xs[i] > T::ZERO;
                let from_x = t[0].map_or(T::ZERO, |tx| {
                    if positive {
                        tx.data()[i]
                    } else {
                        w[c] * tx.data()[i]
                    }
                });
                let from_w = match t[1] {
                    Some(tw) if !positive => tw.data()[c] * xs[i],
                    _ => T::ZERO,
                };
                from_x + from_w
            })
            .collect();
        Tensor::new(y.shape().to_vec(), data)
    }

    fn linearity(&self) -> Linearity {
        Linearity::PiecewiseLinear
    }
}
