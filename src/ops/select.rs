//! Picking elements: `GatherRows` (one column per row, e.g. each example's target output)
//! and `Select` (one index along an axis, which is dropped).

use super::{check_axis, check_jvp, check_output, check_vjp, expect_inputs, split_at_axis};
use crate::tape::{Linearity, Op};
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::Float;

/// `y[n] = x[n, indices[n]]` for x of shape `[N, K]`: picks one output per example (the
/// attribution target). The indices are fixed (no gradient).
#[derive(Clone, Debug)]
pub struct GatherRows {
    /// The column picked in each row; one per row.
    pub indices: Vec<usize>,
}

/// The slice at `index` along `axis`, with the axis dropped (like `x.select(axis, index)`).
#[derive(Clone, Copy, Debug)]
pub struct Select {
    /// The axis indexed.
    pub axis: usize,
    /// The position along the axis.
    pub index: usize,
}

impl GatherRows {
    /// The row length K, or an error for a bad shape or index.
    fn columns(&self, shape: &[usize]) -> Result<usize> {
        ensure!(
            shape.len() == 2,
            "gather_rows: input {shape:?} must be [N, K]"
        );
        ensure!(
            self.indices.len() == shape[0],
            "gather_rows: {} indices for input {shape:?} ({} rows)",
            self.indices.len(),
            shape[0]
        );
        if let Some((n, &k)) = self
            .indices
            .iter()
            .enumerate()
            .find(|(_, &k)| k >= shape[1])
        {
            bail!("gather_rows: index {k} (row {n}) out of range for input {shape:?}");
        }
        Ok(shape[1])
    }

    fn gather<T: Float>(&self, x: &[T], k: usize) -> Vec<T> {
        self.indices
            .iter()
            .enumerate()
            .map(|(n, &i)| x[n * k + i])
            .collect()
    }
}

impl<T: Float> Op<T> for GatherRows {
    fn name(&self) -> &'static str {
        "gather_rows"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("gather_rows", x, 1)?;
        let k = self.columns(x[0].shape())?;
        Tensor::new(vec![self.indices.len()], self.gather(x[0].data(), k))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("gather_rows", x, needs, 1)?;
        let k = self.columns(x[0].shape())?;
        check_output("gather_rows", y, Some(g), &[self.indices.len()])?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        let mut dx = Tensor::zeros(x[0].shape());
        let d = dx.data_mut();
        for (n, (&i, &gn)) in self.indices.iter().zip(g.data()).enumerate() {
            d[n * k + i] = gn;
        }
        Ok(vec![Some(dx)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("gather_rows", x, t, 1)?;
        let k = self.columns(x[0].shape())?;
        let shape = [self.indices.len()];
        check_output("gather_rows", y, None, &shape)?;
        match t[0] {
            Some(t) => Tensor::new(shape.to_vec(), self.gather(t.data(), k)),
            None => Ok(Tensor::zeros(&shape)),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

impl Select {
    /// The output shape, or an error for a bad axis or index.
    fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        check_axis("select", shape, self.axis)?;
        ensure!(
            self.index < shape[self.axis],
            "select: index {} out of range for axis {} of input {shape:?}",
            self.index,
            self.axis
        );
        let mut out = shape.to_vec();
        out.remove(self.axis);
        Ok(out)
    }

    /// Copies the selected slice out of `x` (of shape `shape`).
    fn pick<T: Float>(&self, x: &[T], shape: &[usize]) -> Vec<T> {
        let (outer, len, inner) = split_at_axis(shape, self.axis);
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            let at = (o * len + self.index) * inner;
            out.extend_from_slice(&x[at..at + inner]);
        }
        out
    }
}

impl<T: Float> Op<T> for Select {
    fn name(&self) -> &'static str {
        "select"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("select", x, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        Tensor::new(shape, self.pick(x[0].data(), x[0].shape()))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("select", x, needs, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("select", y, Some(g), &shape)?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        let (outer, len, inner) = split_at_axis(x[0].shape(), self.axis);
        let mut dx = Tensor::zeros(x[0].shape());
        let d = dx.data_mut();
        for o in 0..outer {
            let at = (o * len + self.index) * inner;
            d[at..at + inner].copy_from_slice(&g.data()[o * inner..(o + 1) * inner]);
        }
        Ok(vec![Some(dx)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("select", x, t, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("select", y, None, &shape)?;
        match t[0] {
            Some(t) => Tensor::new(shape, self.pick(t.data(), x[0].shape())),
            None => Ok(Tensor::zeros(&shape)),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
