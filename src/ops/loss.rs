//! `CrossEntropy`: the mean negative log-likelihood of target classes under softmax.

use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::Op;
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::Float;

/// loss = (1/N) Σ_n −log_softmax(x)`[n, targets[n]]` for logits x of shape `[N, K]` — PyTorch's
/// `cross_entropy` with `reduction='mean'`. The targets are fixed (no gradient).
#[derive(Clone, Debug)]
pub struct CrossEntropy {
    /// The target class of each example.
    pub targets: Vec<usize>,
}

impl CrossEntropy {
    /// (N, K), or an error for a bad shape or target.
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize)> {
        ensure!(
            shape.len() == 2,
            "cross_entropy: logits {shape:?} must be [N, K]"
        );
        let (n, k) = (shape[0], shape[1]);
        ensure!(n > 0, "cross_entropy: logits {shape:?} hold no examples");
        ensure!(
            self.targets.len() == n,
            "cross_entropy: {} targets for logits {shape:?}",
            self.targets.len()
        );
        if let Some((row, &t)) = self.targets.iter().enumerate().find(|(_, &t)| t >= k) {
            bail!("cross_entropy: target {t} (example {row}) out of range for logits {shape:?}");
        }
        Ok((n, k))
    }
}

/// Per row of `x` (`[N, K]`): its softmax into `p`, and log Σ_k e^{x_k}.
fn row_softmax<T: Float>(row: &[T], p: &mut [T]) -> T {
    let max = row.iter().fold(T::ZERO - T::max_value(), |m, &v| m.max(v));
    let shift = if max.is_finite() { max } else { T::ZERO };
    let mut total = T::ZERO;
    for (pk, &v) in p.iter_mut().zip(row) {
        *pk = (v - shift).exp();
        total += *pk;
    }
    for pk in p.iter_mut() {
        *pk /= total;
    }
    shift + total.ln()
}

impl<T: Float> Op<T> for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("cross_entropy", x, 1)?;
        let (n, k) = self.dims(x[0].shape())?;
        let mut p = vec![T::ZERO; k];
        let mut total = T::ZERO;
        for (row, &t) in x[0].data().chunks_exact(k).zip(&self.targets) {
            total += row_softmax(row, &mut p) - row[t];
        }
        Ok(Tensor::scalar(total / T::from_f64(n as f64)))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("cross_entropy", x, needs, 1)?;
        let (n, k) = self.dims(x[0].shape())?;
        check_output("cross_entropy", y, Some(g), &[])?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        // ∂loss/∂x[n, :] = (softmax(x[n, :]) − onehot(t_n)) / N.
        let scale = g.data()[0] / T::from_f64(n as f64);
        let mut dx = vec![T::ZERO; n * k];
        for ((row, d), &t) in x[0]
            .data()
            .chunks_exact(k)
            .zip(dx.chunks_exact_mut(k))
            .zip(&self.targets)
        {
            row_softmax(row, d);
            d[t] -= T::ONE;
            for v in d.iter_mut() {
                *v *= scale;
            }
        }
        Ok(vec![Some(Tensor::new(x[0].shape().to_vec(), dx)?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("cross_entropy", x, t, 1)?;
        let (n, k) = self.dims(x[0].shape())?;
        check_output("cross_entropy", y, None, &[])?;
        let Some(tx) = t[0] else {
            return Ok(Tensor::scalar(T::ZERO));
        };
        // d loss = (1/N) Σ_n (⟨softmax(x[n, :]), tx[n, :]⟩ − tx[n, t_n]).
        let mut p = vec![T::ZERO; k];
        let mut total = T::ZERO;
        for ((row, trow), &target) in x[0]
            .data()
            .chunks_exact(k)
            .zip(tx.data().chunks_exact(k))
            .zip(&self.targets)
        {
            row_softmax(row, &mut p);
            let dot: T = p.iter().zip(trow).map(|(&a, &b)| a * b).sum();
            total += dot - trow[target];
        }
        Ok(Tensor::scalar(total / T::from_f64(n as f64)))
    }
}
