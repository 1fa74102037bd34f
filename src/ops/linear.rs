//! Matrix products: `MatMul` (two matrices) and `Linear` (y = x·wᵀ + b, PyTorch's
//! `nn.Linear`), on the kernels' gemm.

use super::{check_jvp, check_output, check_vjp, expect_inputs};
use crate::tape::{Linearity, Op, Saved};
use crate::tensor::Tensor;
use crate::{ensure, Error, Result};
use mho_kernels::gemm::gemm;
use mho_kernels::Float;

/// The matrix product a·b of a `[m, k]` and b `[k, n]`, giving `[m, n]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatMul;

/// y = x·wᵀ + b: inputs `[x: [N, ..., in], w: [out, in]]`, plus `b: [out]` when `bias`;
/// output `[N, ..., out]` (leading axes of x are flattened into rows, as PyTorch does).
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// Whether a bias vector is the third input.
    pub bias: bool,
}

/// C = op(A)·op(B) (β = 0) or C += op(A)·op(B) (β = 1), with kernel errors named after the op.
#[allow(clippy::too_many_arguments)]
fn matmul_into<T: Float>(
    name: &str,
    accumulate: bool,
    [m, k, n]: [usize; 3],
    a: &[T],
    trans_a: bool,
    b: &[T],
    trans_b: bool,
    c: &mut [T],
) -> Result<()> {
    let beta = if accumulate { T::ONE } else { T::ZERO };
    gemm(m, k, n, T::ONE, a, trans_a, b, trans_b, beta, c).map_err(|e| Error::from(e).context(name))
}

impl MatMul {
    /// (m, k, n), or an error naming both shapes.
    fn dims(a: &[usize], b: &[usize]) -> Result<[usize; 3]> {
        ensure!(
            a.len() == 2 && b.len() == 2 && a[1] == b[0],
            "matmul: cannot multiply {a:?} by {b:?} (needs [m, k] and [k, n])"
        );
        Ok([a[0], a[1], b[1]])
    }
}

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("matmul", x, 2)?;
        let [m, k, n] = MatMul::dims(x[0].shape(), x[1].shape())?;
        let mut y = Tensor::for_overwrite(&[m, n]); // beta = 0: overwritten
        matmul_into(
            "matmul",
            false,
            [m, k, n],
            x[0].data(),
            false,
            x[1].data(),
            false,
            y.data_mut(),
        )?;
        Ok(y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("matmul", x, needs, 2)?;
        let [m, k, n] = MatMul::dims(x[0].shape(), x[1].shape())?;
        check_output("matmul", y, Some(g), &[m, n])?;
        let (a, b, g) = (x[0].data(), x[1].data(), g.data());
        let da = if needs[0] {
            // da = g·bᵀ: [m, n]·[n, k].
            let mut da = Tensor::zeros(&[m, k]);
            matmul_into("matmul", false, [m, n, k], g, false, b, true, da.data_mut())?;
            Some(da)
        } else {
            None
        };
        let db = if needs[1] {
            // db = aᵀ·g: [k, m]·[m, n].
            let mut db = Tensor::zeros(&[k, n]);
            matmul_into("matmul", false, [k, m, n], a, true, g, false, db.data_mut())?;
            Some(db)
        } else {
            None
        };
        Ok(vec![da, db])
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("matmul", x, t, 2)?;
        let dims = MatMul::dims(x[0].shape(), x[1].shape())?;
        check_output("matmul", y, None, &[dims[0], dims[2]])?;
        // ta·b + a·tb.
        let mut out = Tensor::zeros(y.shape());
        let mut written = false;
        if let Some(ta) = t[0] {
            matmul_into(
                "matmul",
                false,
                dims,
                ta.data(),
                false,
                x[1].data(),
                false,
                out.data_mut(),
            )?;
            written = true;
        }
        if let Some(tb) = t[1] {
            matmul_into(
                "matmul",
                written,
                dims,
                x[0].data(),
                false,
                tb.data(),
                false,
                out.data_mut(),
            )?;
        }
        Ok(out)
    }
}

/// The sizes of a linear layer applied to x.
struct LinearDims {
    /// Rows of x once its leading axes are flattened.
    rows: usize,
    in_features: usize,
    out_features: usize,
    /// x's shape with the last axis replaced by `out_features`.
    out_shape: Vec<usize>,
}

impl Linear {
    fn inputs(&self) -> usize {
        if self.bias {
            3
        } else {
            2
        }
    }

    fn dims<T: Float>(&self, x: &[&Tensor<T>]) -> Result<LinearDims> {
        let (xs, ws) = (x[0].shape(), x[1].shape());
        ensure!(ws.len() == 2, "linear: weight {ws:?} must be [out, in]");
        let (out_features, in_features) = (ws[0], ws[1]);
        ensure!(
            xs.last() == Some(&in_features),
            "linear: input {xs:?} does not end in the {in_features} input features of weight {ws:?}"
        );
        if self.bias {
            ensure!(
                x[2].shape() == [out_features],
                "linear: bias {:?} does not match the {out_features} outputs of weight {ws:?}",
                x[2].shape()
            );
        }
        let mut out_shape = xs.to_vec();
        if let Some(last) = out_shape.last_mut() {
            *last = out_features;
        }
        Ok(LinearDims {
            rows: xs[..xs.len() - 1].iter().product(),
            in_features,
            out_features,
            out_shape,
        })
    }
}

/// Writes `bias` into every row of `y` (rows of length `bias.len()`).
fn fill_rows<T: Float>(y: &mut [T], bias: &[T]) {
    if bias.is_empty() {
        return;
    }
    for row in y.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// Fills `y` with the bias rows, or zeros without a bias: every linear output (value and
/// tangent) is this start plus the product accumulated onto it (β = 1), so that values
/// and tangents computed in one stacked gemm equal those computed apart, bit for bit
/// (a β = 0 product would differ in the sign of exact zeros, and a product accumulated
/// over several k-blocks onto a bias differs from the bias added at the end).
fn start_rows<T: Float>(y: &mut [T], bias: Option<&[T]>) {
    match bias {
        Some(b) => fill_rows(y, b),
        None => y.fill(T::ZERO),
    }
}

impl<T: Float> Op<T> for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn forward(&self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        expect_inputs("linear", x, self.inputs())?;
        let d = self.dims(x)?;
        let mut y = Tensor::for_overwrite(&d.out_shape);
        start_rows(y.data_mut(), self.bias.then(|| x[2].data()));
        let dims = [d.rows, d.in_features, d.out_features];
        matmul_into(
            "linear",
            true,
            dims,
            x[0].data(),
            false,
            x[1].data(),
            true,
            y.data_mut(),
        )?;
        Ok(y)
    }

    fn vjp(
        &self,
        x: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        check_vjp("linear", x, needs, self.inputs())?;
        let d = self.dims(x)?;
        check_output("linear", y, Some(g), &d.out_shape)?;
        let (rows, inf, outf) = (d.rows, d.in_features, d.out_features);
        let mut grads = Vec::with_capacity(x.len());
        grads.push(if needs[0] {
            // dx = g·w: [rows, out]·[out, in].
            let mut dx = Tensor::zeros(x[0].shape());
            matmul_into(
                "linear",
                false,
                [rows, outf, inf],
                g.data(),
                false,
                x[1].data(),
                false,
                dx.data_mut(),
            )?;
            Some(dx)
        } else {
            None
        });
        grads.push(if needs[1] {
            // dw = gᵀ·x: [out, rows]·[rows, in].
            let mut dw = Tensor::zeros(x[1].shape());
            matmul_into(
                "linear",
                false,
                [outf, rows, inf],
                g.data(),
                true,
                x[0].data(),
                false,
                dw.data_mut(),
            )?;
            Some(dw)
        } else {
            None
        });
        if self.bias {
            grads.push(if needs[2] {
                let mut db = Tensor::zeros(&[outf]);
                if outf > 0 {
                    for row in g.data().chunks_exact(outf) {
                        for (d, &v) in db.data_mut().iter_mut().zip(row) {
                            *d += v;
                        }
                    }
                }
                Some(db)
            } else {
                None
            });
        }
        Ok(grads)
    }

    fn jvp(&self, x: &[&Tensor<T>], y: &Tensor<T>, t: &[Option<&Tensor<T>>]) -> Result<Tensor<T>> {
        check_jvp("linear", x, t, self.inputs())?;
        let d = self.dims(x)?;
        check_output("linear", y, None, &d.out_shape)?;
        let dims = [d.rows, d.in_features, d.out_features];
        // tb + tx·wᵀ + x·twᵀ, only the terms whose tangent is given, accumulated onto
        // the bias tangent or zeros (as the forward value is onto the bias).
        let mut out = Tensor::for_overwrite(&d.out_shape);
        start_rows(
            out.data_mut(),
            t.get(2).copied().flatten().map(Tensor::data),
        );
        if let Some(tx) = t[0] {
            matmul_into(
                "linear",
                true,
                dims,
                tx.data(),
                false,
                x[1].data(),
                true,
                out.data_mut(),
            )?;
        }
        if let Some(tw) = t[1] {
            matmul_into(
                "linear",
                true,
                dims,
                x[0].data(),
                false,
                tw.data(),
                true,
                out.data_mut(),
            )?;
        }
        Ok(out)
    }

    /// When only the input carries a tangent (constant weights, as in attribution), the
    /// values and the tangents go through one gemm of twice the rows: the weight matrix
    /// is packed and streamed once instead of twice. Bit-identical to the separate calls
    /// (each row of a gemm does not depend on the others; both start from
    /// [`start_rows`]).
    fn forward_and_jvp(
        &self,
        x: &[&Tensor<T>],
        t: &[Option<&Tensor<T>>],
    ) -> Result<(Tensor<T>, Option<Saved>, Tensor<T>)> {
        check_jvp("linear", x, t, self.inputs())?;
        let (Some(tx), true) = (t[0], t[1..].iter().all(Option::is_none)) else {
            let value = self.forward(x)?;
            let tangent = self.jvp(x, &value, t)?;
            return Ok((value, None, tangent));
        };
        let d = self.dims(x)?;
        let (rows, inf, outf) = (d.rows, d.in_features, d.out_features);
        let y_len = rows * outf;
        // The input's rows, then the tangent's (leading axes flatten into rows either way).
        let stacked = Tensor::concat_rows(&[x[0], tx])?;
        let mut both = crate::buffers::take_for_overwrite(2 * y_len);
        let (value_rows, tangent_rows) = both.split_at_mut(y_len);
        start_rows(value_rows, self.bias.then(|| x[2].data()));
        start_rows(tangent_rows, None);
        matmul_into(
            "linear",
            true,
            [2 * rows, inf, outf],
            stacked.data(),
            false,
            x[1].data(),
            true,
            &mut both,
        )?;
        stacked.recycle();
        // Both halves copied into buffers of their own size (the stacked buffer, up to
        // four times a half, goes back to the pool instead of staying on the tape).
        let mut value = Tensor::for_overwrite(&d.out_shape);
        value.data_mut().copy_from_slice(&both[..y_len]);
        let mut tangent = Tensor::for_overwrite(&d.out_shape);
        tangent.data_mut().copy_from_slice(&both[y_len..]);
        crate::buffers::give(both);
        Ok((value, None, tangent))
    }

    fn linearity(&self) -> Linearity {
        Linearity::Affine
    }
}
