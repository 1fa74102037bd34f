//! `Embedding`: rows of a weight table picked by integer indices.

use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::{Linearity, Op};
use crate::tensor::{checked_numel, Tensor};
use crate::{ensure, Result};
use mho_kernels::Float;

/// Looks up rows of the weight table: input `[weight: [num, dim]]`, output of shape
/// `index_shape + [dim]` whose row `p` is `weight[indices[p]]`. The indices are fixed (no
/// gradient); the weight gets one (rows used several times accumulate).
#[derive(Clone, Debug)]
pub struct Embedding {
    /// Row indices into the weight, row-major over `index_shape`.
    pub indices: Vec<usize>,
    /// The shape of the index array (e.g. `[batch, seq_len]`).
    pub index_shape: Vec<usize>,
}

impl Embedding {
    /// The output shape and the row length `dim`, or an error naming the bad index/shape.
    fn geometry(&self, weight: &[usize]) -> Result<(Vec<usize>, usize)> {
        ensure!(
            weight.len() == 2,
            "embedding: weight {weight:?} must be [num_embeddings, dim]"
        );
        let n = checked_numel(&self.index_shape)?;
        ensure!(
            n == self.indices.len(),
            "embedding: index_shape {:?} holds {n} indices, got {}",
            self.index_shape,
            self.indices.len()
        );
        if let Some((p, &i)) = self
            .indices
            .iter()
            .enumerate()
            .find(|(_, &i)| i >= weight[0])
        {
            crate::bail!("embedding: index {i} (position {p}) out of range for weight {weight:?}");
        }
        let mut shape = self.index_shape.clone();
        shape.push(weight[1]);
        Ok((shape, weight[1]))
    }

    /// Gathers rows of `table` (rows of length `dim`).
    fn gather<T: Float>(&self, table: &[T], dim: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(self.indices.len() * dim);
        for &i in &self.indices {
            out.extend_from_slice(&table[i * dim..(i + 1) * dim]);
        }
        out
    }
}

impl<T: Float> Op<T> for Embedding {
    fn name(&self) -> &'static str {
        "embedding"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("embedding", x, 1)?;
        let (shape, dim) = self.geometry(x[0].shape())?;
        Tensor::new(shape, self.gather(x[0].data(), dim))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("embedding", x, needs, 1)?;
        let (shape, dim) = self.geometry(x[0].shape())?;
        check_output("embedding", y, Some(g), &shape)?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        let mut dw = Tensor::zeros(x[0].shape());
        let table = dw.data_mut();
        for (p, &i) in self.indices.iter().enumerate() {
            let src = &g.data()[p * dim..(p + 1) * dim];
            for (d, &s) in table[i * dim..(i + 1) * dim].iter_mut().zip(src) {
                *d += s;
            }
        }
        Ok(vec![Some(dw)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("embedding", x, t, 1)?;
        let (shape, dim) = self.geometry(x[0].shape())?;
        check_output("embedding", y, None, &shape)?;
        match t[0] {
            Some(t) => Tensor::new(shape, self.gather(t.data(), dim)),
            None => Ok(Tensor::zeros(&shape)),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
