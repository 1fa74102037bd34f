//! `BatchNorm` in its inference form, with running statistics as inputs.

use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::{Linearity, Op};
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// Inference-time batch normalisation over channel axis 1:
/// y = (x − mean) / sqrt(var + eps) · weight + bias.
///
/// Inputs `[x, running_mean, running_var, weight, bias]`, x of rank 2 (`[N, C]`), 3
/// (`[N, C, L]`) or 4 (`[N, C, H, W]`), the others of shape `[C]`. Every input is
/// differentiable (the running statistics too, for completeness).
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm {
    /// Added to the variance before the square root (PyTorch's default is 1e-5).
    pub eps: f64,
}

/// Input positions.
const X: usize = 0;
const MEAN: usize = 1;
const VAR: usize = 2;
const WEIGHT: usize = 3;
const BIAS: usize = 4;

/// The per-channel constants of a batch norm: x's element `i` belongs to channel
/// `(i / inner) % channels`.
struct Channels<T> {
    channels: usize,
    inner: usize,
    /// 1 / sqrt(var + eps) per channel.
    inv_std: Vec<T>,
}

impl BatchNorm {
    fn channels<T: Float>(&self, x: &[&Tensor<T>]) -> Result<Channels<T>> {
        let shape = x[X].shape();
        ensure!(
            (2..=4).contains(&shape.len()),
            "batch_norm: input {shape:?} must have rank 2, 3 or 4"
        );
        let c = shape[1];
        for (i, what) in [
            (MEAN, "running_mean"),
            (VAR, "running_var"),
            (WEIGHT, "weight"),
            (BIAS, "bias"),
        ] {
            ensure!(
                x[i].shape() == [c],
                "batch_norm: {what} {:?} does not match the {c} channels of input {shape:?}",
                x[i].shape()
            );
        }
        let eps = T::from_f64(self.eps);
        Ok(Channels {
            channels: c,
            inner: shape[2..].iter().product(),
            inv_std: x[VAR]
                .data()
                .iter()
                .map(|&v| T::ONE / (v + eps).sqrt())
                .collect(),
        })
    }
}

impl<T: Float> Channels<T> {
    /// Calls `f(channel, range)` for every contiguous block of x's elements in one channel.
    fn for_each_block(&self, len: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
        if self.inner == 0 || self.channels == 0 {
            return;
        }
        for (block, start) in (0..len).step_by(self.inner).enumerate() {
            f(block % self.channels, start..start + self.inner);
        }
    }
}

impl<T: Float> Op<T> for BatchNorm {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("batch_norm", x, 5)?;
        let ch = self.channels(x)?;
        let (mean, w, b) = (x[MEAN].data(), x[WEIGHT].data(), x[BIAS].data());
        let xs = x[X].data();
        let mut y = vec![T::ZERO; xs.len()];
        ch.for_each_block(xs.len(), |c, r| {
            let scale = ch.inv_std[c] * w[c];
            let shift = b[c] - mean[c] * scale;
            for i in r {
                y[i] = xs[i] * scale + shift;
            }
        });
        Tensor::new(x[X].shape().to_vec(), y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("batch_norm", x, needs, 5)?;
        let ch = self.channels(x)?;
        check_output("batch_norm", y, Some(g), x[X].shape())?;
        let (xs, gs) = (x[X].data(), g.data());
        let (mean, w) = (x[MEAN].data(), x[WEIGHT].data());
        let c = ch.channels;
        let mut dx = needs[X].then(|| vec![T::ZERO; xs.len()]);
        // Per channel: Σg, Σg·(x − mean).
        let need_sums = needs[MEAN] || needs[VAR] || needs[WEIGHT] || needs[BIAS];
        let mut sum_g = vec![T::ZERO; c];
        let mut sum_gx = vec![T::ZERO; c];
        ch.for_each_block(xs.len(), |k, r| {
            if let Some(dx) = dx.as_mut() {
                let scale = ch.inv_std[k] * w[k];
                for i in r.clone() {
                    dx[i] = gs[i] * scale;
                }
            }
            if need_sums {
                for i in r {
                    sum_g[k] += gs[i];
                    sum_gx[k] += gs[i] * (xs[i] - mean[k]);
                }
            }
        });
        let half = T::from_f64(0.5);
        let per_channel = |f: &dyn Fn(usize) -> T| Tensor::new(vec![c], (0..c).map(f).collect());
        let s = &ch.inv_std;
        Ok(vec![
            dx.map(|d| Tensor::new(x[X].shape().to_vec(), d))
                .transpose()?,
            needs[MEAN]
                .then(|| per_channel(&|k| -w[k] * s[k] * sum_g[k]))
                .transpose()?,
            needs[VAR]
                .then(|| per_channel(&|k| -half * w[k] * s[k] * s[k] * s[k] * sum_gx[k]))
                .transpose()?,
            needs[WEIGHT]
                .then(|| per_channel(&|k| s[k] * sum_gx[k]))
                .transpose()?,
            needs[BIAS]
                .then(|| per_channel(&|k| sum_g[k]))
                .transpose()?,
        ])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("batch_norm", x, t, 5)?;
        let ch = self.channels(x)?;
        check_output("batch_norm", y, None, x[X].shape())?;
        let xs = x[X].data();
        let (mean, w) = (x[MEAN].data(), x[WEIGHT].data());
        let half = T::from_f64(0.5);
        let at = |i: usize, k: usize| t[i].map_or(T::ZERO, |t| t.data()[k]);
        let mut out = vec![T::ZERO; xs.len()];
        ch.for_each_block(xs.len(), |k, r| {
            let s = ch.inv_std[k];
            // dy = s·w·(dx − dmean) − ½·s³·w·(x − mean)·dvar + s·(x − mean)·dw + db.
            let shift = -s * w[k] * at(MEAN, k) + at(BIAS, k);
            let per_centered = -half * s * s * s * w[k] * at(VAR, k) + s * at(WEIGHT, k);
            let scale_tx = s * w[k];
            for i in r {
                let tx = t[X].map_or(T::ZERO, |t| t.data()[i]);
                out[i] = scale_tx * tx + per_centered * (xs[i] - mean[k]) + shift;
            }
        });
        Tensor::new(y.shape().to_vec(), out)
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
