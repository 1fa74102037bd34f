//! The differentiable ops. Each op is a small struct implementing [`crate::tape::Op`]:
//! forward value, VJP and JVP side by side in one file.
//!
//! # Conventions
//!
//! - Shapes, layouts and input orders follow PyTorch: NCHW images, NCL sequences, Linear
//!   weight `[out, in]`, Conv weight `[out, in/groups, kh, kw]`; axis and dim fields count
//!   the batch axis.
//! - Subgradients at kinks are shared by VJP and JVP, so the dot-product identity
//!   ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩ holds exactly, kinks included:
//!   relu'(0) = 0; leaky_relu and prelu take the negative-side slope at exactly 0
//!   (x > 0 → 1, else slope), as PyTorch does; max-pool ties go to the first index in
//!   row-major window order (the kernel's argmax), and VJP and JVP both use it.
//! - Bad shapes or parameters are `Err` whose message names the op and the shapes, never a
//!   panic — in `forward`, `vjp` and `jvp` alike.
//! - `forward` needs no tape (inference calls it directly). `vjp` returns `None` for every
//!   input whose `needs` flag is false and does none of its work; `jvp` treats a `None`
//!   tangent as zero and skips its terms.
//! - Index-valued arguments (embedding indices, targets, gathered columns) are op fields,
//!   not inputs: they get no gradient.
//! - Window ops take explicit parameters: PyTorch's default pooling stride (= kernel) is
//!   the caller's to fill in. Conv and pool ops also accept unbatched inputs (`[C, H, W]`,
//!   `[C, L]`) as PyTorch does; `Dropout` is `Identity` (inference only).
//! - NaN and ±∞ follow IEEE arithmetic (relu keeps NaN, as PyTorch); they are not errors.
//! - Each op reports its [`crate::tape::Linearity`]: affine (arithmetic with constants,
//!   reductions, shape ops, linear, conv, average pooling, batch norm, embedding),
//!   piecewise linear (relu, leaky relu, prelu, max pooling, conv2d + relu fused) or smooth
//!   (the rest).

pub mod activation;
pub mod arith;
pub mod conv;
pub mod embedding;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod select;
pub mod shape;
pub mod softmax;

pub use activation::{Exp, LeakyRelu, Log, Prelu, Relu, Sigmoid, Tanh};
pub use arith::{Add, AddScalar, Div, Mul, MulScalar, Neg, Sub};
pub use conv::{Conv1d, Conv2d, Conv2dRelu};
pub use embedding::Embedding;
pub use linear::{Linear, MatMul};
pub use loss::CrossEntropy;
pub use norm::BatchNorm;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool1d, MaxPool2d};
pub use reduce::{Mean, Sum, SumAxis};
pub use select::{GatherRows, Select};
pub use shape::{Concat, Dropout, Flatten, Identity, Permute, Reshape};
pub use softmax::{LogSoftmax, Softmax};

use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::{elementwise, Float};

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

/// Checks the arguments of a VJP call: `n` inputs and one `needs` flag per input.
pub(crate) fn check_vjp<T: Float>(
    name: &str,
    inputs: &[&Tensor<T>],
    needs: &[bool],
    n: usize,
) -> Result<()> {
    expect_inputs(name, inputs, n)?;
    ensure!(
        needs.len() == n,
        "{name}: vjp got {} needs flag(s) for {n} input(s)",
        needs.len()
    );
    Ok(())
}

/// Checks the arguments of a JVP call: `n` inputs, one tangent slot per input, and every
/// given tangent shaped like its input.
pub(crate) fn check_jvp<T: Float>(
    name: &str,
    inputs: &[&Tensor<T>],
    tangents: &[Option<&Tensor<T>>],
    n: usize,
) -> Result<()> {
    expect_inputs(name, inputs, n)?;
    ensure!(
        tangents.len() == n,
        "{name}: jvp got {} tangent(s) for {n} input(s)",
        tangents.len()
    );
    for (i, (x, t)) in inputs.iter().zip(tangents).enumerate() {
        if let Some(t) = t {
            ensure!(
                t.shape() == x.shape(),
                "{name}: tangent of input {i} has shape {:?}, the input {:?}",
                t.shape(),
                x.shape()
            );
        }
    }
    Ok(())
}

/// Checks that the output handed to a VJP/JVP (and the output gradient, if any) have the
/// shape the forward pass produces.
pub(crate) fn check_output<T: Float>(
    name: &str,
    output: &Tensor<T>,
    grad_output: Option<&Tensor<T>>,
    expected: &[usize],
) -> Result<()> {
    ensure!(
        output.shape() == expected,
        "{name}: output of shape {:?}, expected {expected:?}",
        output.shape()
    );
    if let Some(g) = grad_output {
        ensure!(
            g.shape() == expected,
            "{name}: output gradient of shape {:?}, expected {expected:?}",
            g.shape()
        );
    }
    Ok(())
}

/// Checks a unary elementwise op's VJP arguments.
pub(crate) fn unary_vjp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    g: &Tensor<T>,
    needs: &[bool],
) -> Result<()> {
    check_vjp(name, x, needs, 1)?;
    check_output(name, y, Some(g), x[0].shape())
}

/// Checks a unary elementwise op's JVP arguments.
pub(crate) fn unary_jvp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    t: &[Option<&Tensor<T>>],
) -> Result<()> {
    check_jvp(name, x, t, 1)?;
    check_output(name, y, None, x[0].shape())
}

/// f applied to every element (on rayon's threads for long tensors).
pub(crate) fn map_tensor<T: Float>(a: &Tensor<T>, f: impl Fn(T) -> T + Sync) -> Result<Tensor<T>> {
    let mut out = Tensor::for_overwrite(a.shape());
    elementwise::map(a.data(), out.data_mut(), f)?;
    Ok(out)
}

/// f applied to every pair of elements of two same-shape tensors (on rayon's threads for
/// long tensors).
pub(crate) fn zip_tensors<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor<T>> {
    ensure!(
        a.shape() == b.shape(),
        "elementwise: shapes {:?} and {:?} differ",
        a.shape(),
        b.shape()
    );
    let mut out = Tensor::for_overwrite(a.shape());
    elementwise::zip_map(a.data(), b.data(), out.data_mut(), f)?;
    Ok(out)
}

/// The sizes around an axis of a row-major shape: (elements before it, its length,
/// elements after it), so element (o, j, i) sits at `(o·len + j)·inner + i`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Checks `axis` is an axis of a tensor of the given shape.
pub(crate) fn check_axis(name: &str, shape: &[usize], axis: usize) -> Result<()> {
    ensure!(
        axis < shape.len(),
        "{name}: axis {axis} out of range for shape {shape:?} (rank {})",
        shape.len()
    );
    Ok(())
}
