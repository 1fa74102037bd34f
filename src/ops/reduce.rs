//! Reductions: `Sum` and `Mean` of all elements (to shape `[]`), `SumAxis` along one axis.

use super::{check_axis, check_jvp, check_output, check_vjp, expect_inputs, split_at_axis};
use crate::tape::{Linearity, Op};
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// The sum of all elements, a zero-dimensional tensor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sum;

/// The mean of all elements, a zero-dimensional tensor (an error for an empty input).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mean;

/// The sum along `axis`, which is dropped from the shape, or kept with length 1 when
/// `keepdim`.
#[derive(Clone, Copy, Debug)]
pub struct SumAxis {
    /// The axis summed over.
    pub axis: usize,
    /// Keep the summed axis with length 1.
    pub keepdim: bool,
}

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("sum", x, 1)?;
        Ok(Tensor::scalar(x[0].data().iter().copied().sum()))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("sum", x, needs, 1)?;
        check_output("sum", y, Some(g), &[])?;
        Ok(vec![
            needs[0].then(|| Tensor::full(x[0].shape(), g.data()[0]))
        ])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("sum", x, t, 1)?;
        check_output("sum", y, None, &[])?;
        Ok(Tensor::scalar(
            t[0].map_or(T::ZERO, |t| t.data().iter().copied().sum()),
        ))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

impl Mean {
    /// 1 / (number of elements), or an error for an empty input.
    fn scale<T: Float>(x: &Tensor<T>) -> Result<T> {
        ensure!(
            !x.is_empty(),
            "mean: input of shape {:?} has no elements",
            x.shape()
        );
        Ok(T::ONE / T::from_f64(x.len() as f64))
    }
}

impl<T: Float> Op<T> for Mean {
    fn name(&self) -> &'static str {
        "mean"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("mean", x, 1)?;
        let scale = Mean::scale(x[0])?;
        Ok(Tensor::scalar(
            x[0].data().iter().copied().sum::<T>() * scale,
        ))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("mean", x, needs, 1)?;
        check_output("mean", y, Some(g), &[])?;
        let scale = Mean::scale(x[0])?;
        Ok(vec![
            needs[0].then(|| Tensor::full(x[0].shape(), g.data()[0] * scale))
        ])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("mean", x, t, 1)?;
        check_output("mean", y, None, &[])?;
        let scale = Mean::scale(x[0])?;
        Ok(Tensor::scalar(t[0].map_or(T::ZERO, |t| {
            t.data().iter().copied().sum::<T>() * scale
        })))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

impl SumAxis {
    /// The output shape for an input shape, or an error when the axis is out of range.
    fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        check_axis("sum_axis", shape, self.axis)?;
        let mut out = shape.to_vec();
        if self.keepdim {
            out[self.axis] = 1;
        } else {
            out.remove(self.axis);
        }
        Ok(out)
    }

    /// Sums `x` (of shape `shape`) along the axis.
    fn reduce<T: Float>(&self, shape: &[usize], x: &[T]) -> Vec<T> {
        let (outer, len, inner) = split_at_axis(shape, self.axis);
        let mut out = vec![T::ZERO; outer * inner];
        for o in 0..outer {
            let acc = &mut out[o * inner..(o + 1) * inner];
            for j in 0..len {
                let row = &x[(o * len + j) * inner..(o * len + j + 1) * inner];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        out
    }
}

impl<T: Float> Op<T> for SumAxis {
    fn name(&self) -> &'static str {
        "sum_axis"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("sum_axis", x, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        Tensor::new(shape, self.reduce(x[0].shape(), x[0].data()))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("sum_axis", x, needs, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("sum_axis", y, Some(g), &shape)?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        // Broadcast g back along the summed axis.
        let (outer, len, inner) = split_at_axis(x[0].shape(), self.axis);
        let mut dx = Vec::with_capacity(x[0].len());
        for o in 0..outer {
            let row = &g.data()[o * inner..(o + 1) * inner];
            for _ in 0..len {
                dx.extend_from_slice(row);
            }
        }
        Ok(vec![Some(Tensor::new(x[0].shape().to_vec(), dx)?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("sum_axis", x, t, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("sum_axis", y, None, &shape)?;
        match t[0] {
            Some(t) => Tensor::new(shape, self.reduce(x[0].shape(), t.data())),
            None => Ok(Tensor::zeros(&shape)),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
