//! `Softmax` and `LogSoftmax` along one axis, computed stably (shifted by the maximum).

use super::{check_axis, check_jvp, check_output, check_vjp, expect_inputs, split_at_axis};
use crate::tape::Op;
use crate::tensor::Tensor;
use crate::Result;
use mho_kernels::Float;

/// softmax(x)_j = e^{x_j} / Σ_k e^{x_k} along axis `dim` (which counts the batch axis).
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    /// The axis normalised over.
    pub dim: usize,
}

/// log_softmax(x)_j = x_j − log Σ_k e^{x_k} along axis `dim` (which counts the batch axis).
#[derive(Clone, Copy, Debug)]
pub struct LogSoftmax {
    /// The axis normalised over.
    pub dim: usize,
}

/// The lanes of a tensor along one axis: lane (o, i) holds elements
/// `(o·len + j)·inner + i` for j in 0..len.
#[derive(Clone, Copy)]
struct Lanes {
    outer: usize,
    len: usize,
    inner: usize,
}

impl Lanes {
    fn new(name: &str, shape: &[usize], dim: usize) -> Result<Self> {
        check_axis(name, shape, dim)?;
        let (outer, len, inner) = split_at_axis(shape, dim);
        Ok(Lanes { outer, len, inner })
    }

    /// Calls `f(lane)` for every lane.
    fn for_each(&self, mut f: impl FnMut(Lane)) {
        for o in 0..self.outer {
            for i in 0..self.inner {
                f(Lane {
                    start: o * self.len * self.inner + i,
                    stride: self.inner,
                    len: self.len,
                });
            }
        }
    }
}

/// One lane: flat indices `start + j·stride` for j in 0..len.
#[derive(Clone, Copy)]
struct Lane {
    start: usize,
    stride: usize,
    len: usize,
}

impl Lane {
    /// The lane's flat indices, in order.
    fn indices(self) -> impl Iterator<Item = usize> {
        (0..self.len).map(move |j| self.start + j * self.stride)
    }
}

/// Writes softmax (or log-softmax when `log`) of every lane of `x` into `y`.
fn normalise<T: Float>(lanes: Lanes, x: &[T], y: &mut [T], log: bool) {
    lanes.for_each(|lane| {
        let max = lane
            .indices()
            .fold(T::ZERO - T::max_value(), |m, k| m.max(x[k]));
        // An all −∞ (or +∞) lane has no finite shift; 0 keeps IEEE semantics.
        let shift = if max.is_finite() { max } else { T::ZERO };
        let total: T = lane.indices().map(|k| (x[k] - shift).exp()).sum();
        if log {
            let log_total = total.ln();
            for k in lane.indices() {
                y[k] = x[k] - shift - log_total;
            }
        } else {
            for k in lane.indices() {
                y[k] = (x[k] - shift).exp() / total;
            }
        }
    });
}

/// The softmax Jacobian (symmetric) applied to `v`: p ⊙ (v − ⟨p, v⟩) per lane.
fn softmax_jacobian<T: Float>(lanes: Lanes, p: &[T], v: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; p.len()];
    lanes.for_each(|lane| {
        let dot: T = lane.indices().map(|k| p[k] * v[k]).sum();
        for k in lane.indices() {
            out[k] = p[k] * (v[k] - dot);
        }
    });
    out
}

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("softmax", x, 1)?;
        let lanes = Lanes::new("softmax", x[0].shape(), self.dim)?;
        let mut y = Tensor::zeros(x[0].shape());
        normalise(lanes, x[0].data(), y.data_mut(), false);
        Ok(y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("softmax", x, needs, 1)?;
        let lanes = Lanes::new("softmax", x[0].shape(), self.dim)?;
        check_output("softmax", y, Some(g), x[0].shape())?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        let dx = softmax_jacobian(lanes, y.data(), g.data());
        Ok(vec![Some(Tensor::new(y.shape().to_vec(), dx)?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("softmax", x, t, 1)?;
        let lanes = Lanes::new("softmax", x[0].shape(), self.dim)?;
        check_output("softmax", y, None, x[0].shape())?;
        let Some(t) = t[0] else {
            return Ok(Tensor::zeros(y.shape()));
        };
        Tensor::new(
            y.shape().to_vec(),
            softmax_jacobian(lanes, y.data(), t.data()),
        )
    }
}

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("log_softmax", x, 1)?;
        let lanes = Lanes::new("log_softmax", x[0].shape(), self.dim)?;
        let mut y = Tensor::zeros(x[0].shape());
        normalise(lanes, x[0].data(), y.data_mut(), true);
        Ok(y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("log_softmax", x, needs, 1)?;
        let lanes = Lanes::new("log_softmax", x[0].shape(), self.dim)?;
        check_output("log_softmax", y, Some(g), x[0].shape())?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        // Jᵀ·g = g − p·Σg per lane, with p = e^y the softmax.
        let (ys, gs) = (y.data(), g.data());
        let mut dx = vec![T::ZERO; ys.len()];
        lanes.for_each(|lane| {
            let total: T = lane.indices().map(|k| gs[k]).sum();
            for k in lane.indices() {
                dx[k] = gs[k] - ys[k].exp() * total;
            }
        });
        Ok(vec![Some(Tensor::new(y.shape().to_vec(), dx)?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("log_softmax", x, t, 1)?;
        let lanes = Lanes::new("log_softmax", x[0].shape(), self.dim)?;
        check_output("log_softmax", y, None, x[0].shape())?;
        let Some(t) = t[0] else {
            return Ok(Tensor::zeros(y.shape()));
        };
        // J·t = t − ⟨p, t⟩ per lane.
        let (ys, ts) = (y.data(), t.data());
        let mut out = vec![T::ZERO; ys.len()];
        lanes.for_each(|lane| {
            let dot: T = lane.indices().map(|k| ys[k].exp() * ts[k]).sum();
            for k in lane.indices() {
                out[k] = ts[k] - dot;
            }
        });
        Tensor::new(y.shape().to_vec(), out)
    }
}
