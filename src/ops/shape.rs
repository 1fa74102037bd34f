//! Ops that move elements without arithmetic: `Reshape`, `Flatten`, `Permute`, `Concat`,
//! and `Identity` (also `Dropout` at inference).

use super::{check_axis, check_jvp, check_output, check_vjp, expect_inputs, unary_jvp, unary_vjp};
use crate::tape::{Linearity, Op};
use crate::tensor::{checked_numel, Tensor};
use crate::{bail, ensure, Result};
use mho_kernels::Float;

/// The same elements under another shape with as many elements.
#[derive(Clone, Debug)]
pub struct Reshape {
    /// The output shape.
    pub shape: Vec<usize>,
}

/// Merges axes `start_dim..=end_dim` into one, with PyTorch's semantics: negative dims count
/// from the end, a zero-dimensional input becomes shape `[1]`, and `start_dim` after
/// `end_dim` is an error.
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    /// The first axis merged (negative: counted from the end).
    pub start_dim: i64,
    /// The last axis merged (negative: counted from the end).
    pub end_dim: i64,
}

/// Reorders axes: output axis `i` is input axis `dims[i]`.
#[derive(Clone, Debug)]
pub struct Permute {
    /// A permutation of `0..rank`.
    pub dims: Vec<usize>,
}

/// Joins any number (≥ 1) of tensors along `axis`; all other axes must agree.
#[derive(Clone, Copy, Debug)]
pub struct Concat {
    /// The axis joined along.
    pub axis: usize,
}

/// The input unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

/// Dropout at inference time: the identity.
pub type Dropout = Identity;

/// The tangent, or zeros of the given shape when there is none.
fn tangent_or_zeros<T: Float>(t: Option<&Tensor<T>>, shape: &[usize]) -> Tensor<T> {
    t.map_or_else(|| Tensor::zeros(shape), Tensor::clone)
}

impl<T: Float> Op<T> for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("identity", x, 1)?;
        Ok(x[0].clone())
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        unary_vjp("identity", x, y, g, needs)?;
        Ok(vec![needs[0].then(|| g.clone())])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        unary_jvp("identity", x, y, t)?;
        Ok(tangent_or_zeros(t[0], y.shape()))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

/// Implements `Op` for an op that only relabels the shape, given its name and a method
/// `output_shape(&self, input_shape) -> Result<Vec<usize>>`.
macro_rules! view_op {
    ($ty:ty, $name:literal) => {
        impl<T: Float> Op<T> for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
                expect_inputs($name, x, 1)?;
                let shape = self.output_shape(x[0].shape())?;
                x[0].clone().reshape(&shape)
            }

            fn vjp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                g: &Tensor<T>,
                needs: &[bool],
            ) -> Result<Vec<Option<Tensor<T>>>> {
                check_vjp($name, x, needs, 1)?;
                let shape = self.output_shape(x[0].shape())?;
                check_output($name, y, Some(g), &shape)?;
                match needs[0] {
                    true => Ok(vec![Some(g.clone().reshape(x[0].shape())?)]),
                    false => Ok(vec![None]),
                }
            }

            fn jvp(
                &self,
                x: &[&Tensor<T>],
                y: &Tensor<T>,
                t: &[Option<&Tensor<T>>],
            ) -> Result<Tensor<T>> {
                check_jvp($name, x, t, 1)?;
                let shape = self.output_shape(x[0].shape())?;
                check_output($name, y, None, &shape)?;
                tangent_or_zeros(t[0], x[0].shape()).reshape(&shape)
            }

            fn linearity(&self) -> Linearity {
                Linearity::Affine
            }
        }
    };
}

impl Reshape {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let n = checked_numel(&self.shape)?;
        let m: usize = input.iter().product();
        ensure!(
            n == m,
            "reshape: cannot view {input:?} ({m} elements) as {:?} ({n} elements)",
            self.shape
        );
        Ok(self.shape.clone())
    }
}

view_op!(Reshape, "reshape");

impl Flatten {
    /// A possibly negative dim as an axis of a tensor of rank `rank` (≥ 1).
    fn axis(&self, dim: i64, rank: usize, input: &[usize]) -> Result<usize> {
        let r = rank as i64;
        ensure!(
            (-r..r).contains(&dim),
            "flatten: dim {dim} out of range [{}, {}] for input {input:?}",
            -r,
            r - 1
        );
        Ok(if dim < 0 {
            (dim + r) as usize
        } else {
            dim as usize
        })
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        // A zero-dimensional tensor flattens as if it had one axis of length 1.
        let rank = input.len().max(1);
        let start = self.axis(self.start_dim, rank, input)?;
        let end = self.axis(self.end_dim, rank, input)?;
        ensure!(
            start <= end,
            "flatten: start_dim {} comes after end_dim {} for input {input:?}",
            self.start_dim,
            self.end_dim
        );
        if input.is_empty() {
            return Ok(vec![1]);
        }
        let mut out = input[..start].to_vec();
        out.push(input[start..=end].iter().product());
        out.extend_from_slice(&input[end + 1..]);
        Ok(out)
    }
}

view_op!(Flatten, "flatten");

impl Permute {
    /// The output shape, or an error when `dims` is not a permutation of the input's axes.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut seen = vec![false; input.len()];
        let valid = self.dims.len() == input.len()
            && self
                .dims
                .iter()
                .all(|&d| d < input.len() && !std::mem::replace(&mut seen[d], true));
        ensure!(
            valid,
            "permute: dims {:?} are not a permutation of the axes of input {input:?}",
            self.dims
        );
        Ok(self.dims.iter().map(|&d| input[d]).collect())
    }

    /// The inverse permutation.
    fn inverse(&self) -> Vec<usize> {
        let mut inv = vec![0; self.dims.len()];
        for (i, &d) in self.dims.iter().enumerate() {
            inv[d] = i;
        }
        inv
    }
}

/// Permutes the axes of `data` (of shape `shape`): output axis `i` is input axis `dims[i]`.
/// `dims` must be a valid permutation.
fn permute_data<T: Float>(data: &[T], shape: &[usize], dims: &[usize]) -> Vec<T> {
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
    let out_strides: Vec<usize> = dims.iter().map(|&d| strides[d]).collect();
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    // Walk the output in row-major order, tracking the matching input offset.
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..data.len() {
        out.push(data[offset]);
        for ax in (0..rank).rev() {
            index[ax] += 1;
            offset += out_strides[ax];
            if index[ax] < out_shape[ax] {
                break;
            }
            offset -= out_strides[ax] * out_shape[ax];
            index[ax] = 0;
        }
    }
    out
}

impl<T: Float> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("permute", x, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        Tensor::new(shape, permute_data(x[0].data(), x[0].shape(), &self.dims))
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("permute", x, needs, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("permute", y, Some(g), &shape)?;
        if !needs[0] {
            return Ok(vec![None]);
        }
        let dx = permute_data(g.data(), &shape, &self.inverse());
        Ok(vec![Some(Tensor::new(x[0].shape().to_vec(), dx)?)])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("permute", x, t, 1)?;
        let shape = self.output_shape(x[0].shape())?;
        check_output("permute", y, None, &shape)?;
        match t[0] {
            Some(t) => Tensor::new(shape, permute_data(t.data(), x[0].shape(), &self.dims)),
            None => Ok(Tensor::zeros(&shape)),
        }
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}

impl Concat {
    /// The output shape, or an error when there are no inputs, the axis is out of range, or
    /// the inputs disagree off the axis.
    fn output_shape<T: Float>(&self, x: &[&Tensor<T>]) -> Result<Vec<usize>> {
        let Some(first) = x.first() else {
            bail!("concat: needs at least one input");
        };
        check_axis("concat", first.shape(), self.axis)?;
        let mut out = first.shape().to_vec();
        for (i, xi) in x.iter().enumerate().skip(1) {
            let s = xi.shape();
            let agree = s.len() == out.len()
                && s.iter()
                    .zip(&out)
                    .enumerate()
                    .all(|(a, (p, q))| a == self.axis || p == q);
            ensure!(
                agree,
                "concat: input {i} of shape {s:?} does not match input 0 of shape {:?} off axis {}",
                first.shape(),
                self.axis
            );
            out[self.axis] += s[self.axis];
        }
        Ok(out)
    }

    /// (elements before the axis, per-input row lengths) where a row is one outer index's
    /// contiguous block `len_along_axis · inner`.
    fn rows(&self, out: &[usize], x_shapes: &[&[usize]]) -> (usize, Vec<usize>) {
        let outer = out[..self.axis].iter().product();
        let inner: usize = out[self.axis + 1..].iter().product();
        (
            outer,
            x_shapes.iter().map(|s| s[self.axis] * inner).collect(),
        )
    }
}

impl<T: Float> Op<T> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let shape = self.output_shape(x)?;
        let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
        let (outer, rows) = self.rows(&shape, &shapes);
        let mut out = Vec::with_capacity(checked_numel(&shape)?);
        for o in 0..outer {
            for (xi, &r) in x.iter().zip(&rows) {
                out.extend_from_slice(&xi.data()[o * r..(o + 1) * r]);
            }
        }
        Tensor::new(shape, out)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("concat", x, needs, x.len())?;
        let shape = self.output_shape(x)?;
        check_output("concat", y, Some(g), &shape)?;
        let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
        let (outer, rows) = self.rows(&shape, &shapes);
        let row_total: usize = rows.iter().sum();
        let mut grads = Vec::with_capacity(x.len());
        let mut start = 0;
        for ((xi, &r), &need) in x.iter().zip(&rows).zip(needs) {
            if need {
                let mut d = Vec::with_capacity(xi.len());
                for o in 0..outer {
                    let at = o * row_total + start;
                    d.extend_from_slice(&g.data()[at..at + r]);
                }
                grads.push(Some(Tensor::new(xi.shape().to_vec(), d)?));
            } else {
                grads.push(None);
            }
            start += r;
        }
        Ok(grads)
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("concat", x, t, x.len())?;
        let shape = self.output_shape(x)?;
        check_output("concat", y, None, &shape)?;
        let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
        let (outer, rows) = self.rows(&shape, &shapes);
        let mut out = Vec::with_capacity(y.len());
        for o in 0..outer {
            for (ti, &r) in t.iter().zip(&rows) {
                match ti {
                    Some(ti) => out.extend_from_slice(&ti.data()[o * r..(o + 1) * r]),
                    None => out.resize(out.len() + r, T::ZERO),
                }
            }
        }
        Tensor::new(shape, out)
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
