//! Pointwise nonlinearities.

use super::expect_inputs;
use crate::tape::Op;
use crate::tensor::Tensor;
use crate::Result;
use mho_kernels::Float;

/// max(x, 0), with relu'(0) = 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relu;

impl Relu {
    /// The derivative used by both VJP and JVP: 1 where x > 0, else 0.
    #[inline]
    fn slope<T: Float>(x: T) -> T {
        if x > T::ZERO {
            T::ONE
        } else {
            T::ZERO
        }
    }
}

impl<T: Float> Op<T> for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("relu", x, 1)?;
        Ok(x[0].map(|v| if v > T::ZERO { v } else { T::ZERO }))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        _y: &Tensor<T>,
        g: &Tensor<T>,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        Ok(vec![Some(g.zip_map(x[0], |g, v| g * Self::slope(v))?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], _y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        match t[0] {
            Some(t) => t.zip_map(x[0], |t, v| t * Self::slope(v)),
            None => Ok(Tensor::zeros(x[0].shape())),
        }
    }
}
