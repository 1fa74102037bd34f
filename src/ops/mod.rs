//! The differentiable ops. Each op is a small struct implementing [`crate::tape::Op`]:
//! forward value, VJP and JVP side by side in one place.
//!
//! Subgradient conventions (shared by VJP and JVP): relu'(0) = 0, leaky_relu'(0) and
//! prelu'(0) take the negative-side slope, max ties go to the first index.

pub mod activation;
pub mod arith;

pub use activation::Relu;
pub use arith::{Add, Mul};

use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// Checks an op got exactly `n` inputs.
pub(crate) fn expect_inputs<T: Float>(name: &str, inputs: &[&Tensor<T>], n: usize) -> Result<()> {
    ensure!(
        inputs.len() == n,
        "{name}: expects {n} input(s), got {}",
        inputs.len()
    );
    Ok(())
}

/// Checks two tensors have the same shape.
pub(crate) fn same_shape<T: Float>(name: &str, a: &Tensor<T>, b: &Tensor<T>) -> Result<()> {
    ensure!(
        a.shape() == b.shape(),
        "{name}: shapes {:?} and {:?} differ",
        a.shape(),
        b.shape()
    );
    Ok(())
}
