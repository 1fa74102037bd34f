//! Elementwise arithmetic on tensors of the same shape.

use super::{expect_inputs, same_shape};
use crate::tape::Op;
use crate::tensor::Tensor;
use crate::Result;
use mho_kernels::Float;

/// a + b.
#[derive(Clone, Copy, Debug, Default)]
pub struct Add;

impl<T: Float> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("add", x, 2)?;
        x[0].zip_map(x[1], |a, b| a + b)
    }

    fn vjp(
        &self,
        _x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        Ok(needs.iter().map(|&n| n.then(|| g.clone())).collect())
    }

    fn jvp(&self, _x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        let mut out = Tensor::zeros(y.shape());
        for ti in t.iter().flatten() {
            out.add_assign(ti)?;
        }
        Ok(out)
    }
}

/// a ⊙ b (elementwise product).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mul;

impl<T: Float> Op<T> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("mul", x, 2)?;
        same_shape("mul", x[0], x[1])?;
        x[0].zip_map(x[1], |a, b| a * b)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let da = if needs[0] { Some(g.zip_map(x[1], |g, b| g * b)?) } else { None };
        let db = if needs[1] { Some(g.zip_map(x[0], |g, a| g * a)?) } else { None };
        Ok(vec![da, db])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        let mut out = Tensor::zeros(y.shape());
        if let Some(ta) = t[0] {
            out.add_assign(&ta.zip_map(x[1], |ta, b| ta * b)?)?;
        }
        if let Some(tb) = t[1] {
            out.add_assign(&tb.zip_map(x[0], |tb, a| tb * a)?)?;
        }
        Ok(out)
    }
}
