//! Elementwise arithmetic: two tensors of the same shape (`Add`, `Sub`, `Mul`, `Div`), a
//! tensor and a scalar (`AddScalar`, `MulScalar`), and negation (`Neg`).

use super::{
    check_jvp, check_output, check_vjp, expect_inputs, map_tensor, same_shape, unary_jvp,
    unary_vjp, zip_tensors,
};
use crate::tape::{Linearity, Op};
use crate::tensor::Tensor;
use crate::Result;
use mho_kernels::Float;

/// Checks a binary elementwise op's inputs: two tensors of one shape.
fn binary<T: Float>(name: &str, x: &[&Tensor<T>]) -> Result<()> {
    expect_inputs(name, x, 2)?;
    same_shape(name, x[0], x[1])
}

/// Checks a binary elementwise op's VJP arguments.
fn binary_vjp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    g: &Tensor<T>,
    needs: &[bool],
) -> Result<()> {
    check_vjp(name, x, needs, 2)?;
    same_shape(name, x[0], x[1])?;
    check_output(name, y, Some(g), x[0].shape())
}

/// Checks a binary elementwise op's JVP arguments.
fn binary_jvp<T: Float>(
    name: &str,
    x: &[&Tensor<T>],
    y: &Tensor<T>,
    t: &[Option<&Tensor<T>>],
) -> Result<()> {
    check_jvp(name, x, t, 2)?;
    same_shape(name, x[0], x[1])?;
    check_output(name, y, None, x[0].shape())
}

/// c·t for a tangent (`None` = zero) of the given shape.
fn scaled<T: Float>(shape: &[usize], t: Option<&Tensor<T>>, c: T) -> Result<Tensor<T>> {
    match t {
        Some(t) => map_tensor(t, |v| c * v),
        None => Ok(Tensor::zeros(shape)),
    }
}

/// c·g for a gradient, when needed.
fn scaled_grad<T: Float>(g: &Tensor<T>, need: bool, c: T) -> Result<Option<Tensor<T>>> {
    need.then(|| map_tensor(g, |v| c * v)).transpose()
}

/// f(g, v) elementwise for a gradient and an input of its shape, when needed.
fn zip_grad<T: Float>(
    g: &Tensor<T>,
    v: &Tensor<T>,
    need: bool,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Option<Tensor<T>>> {
    need.then(|| zip_tensors(g, v, f)).transpose()
}

/// a + b.
#[derive(Clone, Copy, Debug, Default)]
pub struct Add;

impl<T: Float> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        binary("add", x)?;
        zip_tensors(x[0], x[1], |a, b| a + b)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        binary_vjp("add", x, y, g, needs)?;
        Ok(needs.iter().map(|&n| n.then(|| g.clone())).collect())
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        binary_jvp("add", x, y, t)?;
        match (t[0], t[1]) {
            (Some(a), Some(b)) => zip_tensors(a, b, |a, b| a + b),
            (Some(a), None) => Ok(a.clone()),
            (None, Some(b)) => Ok(b.clone()),
            (None, None) => Ok(Tensor::zeros(y.shape())),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

/// a − b.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sub;

impl<T: Float> Op<T> for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        binary("sub", x)?;
        zip_tensors(x[0], x[1], |a, b| a - b)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        binary_vjp("sub", x, y, g, needs)?;
        let da = needs[0].then(|| g.clone());
        let db = scaled_grad(g, needs[1], -T::ONE)?;
        Ok(vec![da, db])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        binary_jvp("sub", x, y, t)?;
        match (t[0], t[1]) {
            (Some(a), Some(b)) => zip_tensors(a, b, |a, b| a - b),
            (Some(a), None) => Ok(a.clone()),
            (None, Some(b)) => scaled(y.shape(), Some(b), -T::ONE),
            (None, None) => Ok(Tensor::zeros(y.shape())),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
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
        binary("mul", x)?;
        zip_tensors(x[0], x[1], |a, b| a * b)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        binary_vjp("mul", x, y, g, needs)?;
        let da = zip_grad(g, x[1], needs[0], |g, b| g * b)?;
        let db = zip_grad(g, x[0], needs[1], |g, a| g * a)?;
        Ok(vec![da, db])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        binary_jvp("mul", x, y, t)?;
        let (a, b) = (x[0].data(), x[1].data());
        let data = match (t[0], t[1]) {
            (Some(ta), Some(tb)) => (0..a.len())
                .map(|i| ta.data()[i] * b[i] + a[i] * tb.data()[i])
                .collect(),
            (Some(ta), None) => ta.data().iter().zip(b).map(|(&t, &b)| t * b).collect(),
            (None, Some(tb)) => tb.data().iter().zip(a).map(|(&t, &a)| t * a).collect(),
            (None, None) => vec![T::ZERO; a.len()],
        };
        Tensor::new(y.shape().to_vec(), data)
    }
}

/// a ⊘ b (elementwise quotient; division by zero gives infinities as in IEEE arithmetic).
#[derive(Clone, Copy, Debug, Default)]
pub struct Div;

impl<T: Float> Op<T> for Div {
    fn name(&self) -> &'static str {
        "div"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        binary("div", x)?;
        zip_tensors(x[0], x[1], |a, b| a / b)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        binary_vjp("div", x, y, g, needs)?;
        // ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b².
        let da = zip_grad(g, x[1], needs[0], |g, b| g / b)?;
        let db = needs[1]
            .then(|| {
                let (a, b) = (x[0].data(), x[1].data());
                let data = (0..a.len())
                    .map(|i| -g.data()[i] * a[i] / (b[i] * b[i]))
                    .collect();
                Tensor::new(x[1].shape().to_vec(), data)
            })
            .transpose()?;
        Ok(vec![da, db])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        binary_jvp("div", x, y, t)?;
        let (a, b) = (x[0].data(), x[1].data());
        let zero = T::ZERO;
        let data = (0..a.len())
            .map(|i| {
                let ta = t[0].map_or(zero, |t| t.data()[i]);
                let tb = t[1].map_or(zero, |t| t.data()[i]);
                ta / b[i] - tb * a[i] / (b[i] * b[i])
            })
            .collect();
        Tensor::new(y.shape().to_vec(), data)
    }
}

/// x + c for a scalar c.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddScalar(pub f64);

impl<T: Float> Op<T> for AddScalar {
    fn name(&self) -> &'static str {
        "add_scalar"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("add_scalar", x, 1)?;
        let c = T::from_f64(self.0);
        map_tensor(x[0], |v| v + c)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        unary_vjp("add_scalar", x, y, g, needs)?;
        Ok(vec![needs[0].then(|| g.clone())])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        unary_jvp("add_scalar", x, y, t)?;
        Ok(t[0].map_or_else(|| Tensor::zeros(y.shape()), Tensor::clone))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

/// c·x for a scalar c.
#[derive(Clone, Copy, Debug, Default)]
pub struct MulScalar(pub f64);

impl<T: Float> Op<T> for MulScalar {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("mul_scalar", x, 1)?;
        let c = T::from_f64(self.0);
        map_tensor(x[0], |v| c * v)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        unary_vjp("mul_scalar", x, y, g, needs)?;
        let c = T::from_f64(self.0);
        Ok(vec![scaled_grad(g, needs[0], c)?])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        unary_jvp("mul_scalar", x, y, t)?;
        scaled(y.shape(), t[0], T::from_f64(self.0))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

/// −x.
#[derive(Clone, Copy, Debug, Default)]
pub struct Neg;

impl<T: Float> Op<T> for Neg {
    fn name(&self) -> &'static str {
        "neg"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("neg", x, 1)?;
        map_tensor(x[0], |v| -v)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        unary_vjp("neg", x, y, g, needs)?;
        Ok(vec![scaled_grad(g, needs[0], -T::ONE)?])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        unary_jvp("neg", x, y, t)?;
        scaled(y.shape(), t[0], -T::ONE)
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
