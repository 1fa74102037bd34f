//! Shared checkers for the op tests, all in f64 over concrete inputs:
//!
//! (a) [`check_vjp_fd`]: every input's VJP against central finite differences of
//!     ⟨v, f(x)⟩ for a random v (and `needs` honoured: `None` where not needed);
//! (b) [`check_jvp_fd`]: the JVP against central finite differences along a random u;
//! (c) [`check_dot_identity`]: ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩ to 1e-10 relative, for u on each input
//!     alone and on all at once — no finite differences, so it must hold at kinks too.
//!
//! (a) and (b) need inputs away from kinks (the caller's job); (c) does not.

#![allow(dead_code)]

use mho::{Op, Tensor};

/// Finite-difference step.
pub const H: f64 = 1e-6;

/// Relative tolerance of the dot-product identity.
pub const DOT_TOL: f64 = 1e-10;

/// A small deterministic generator (SplitMix64): tests draw data from a proptest seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A tensor with elements uniform in [lo, hi).
    pub fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor<f64> {
        let n = shape.iter().product();
        let data = (0..n).map(|_| self.uniform(lo, hi)).collect();
        Tensor::new(shape.to_vec(), data).expect("shape and data agree")
    }

    /// A tensor with elements of magnitude in [lo, hi) and random sign (away from 0).
    pub fn tensor_away_from_zero(&mut self, shape: &[usize], lo: f64, hi: f64) -> Tensor<f64> {
        let mut t = self.tensor(shape, lo, hi);
        for v in t.data_mut() {
            if self.unit() < 0.5 {
                *v = -*v;
            }
        }
        t
    }

    /// A tensor whose elements are all distinct, at least `gap` apart (a shuffled ladder
    /// centred on 0): no ties for max pooling, and FD steps never reorder elements.
    pub fn distinct(&mut self, shape: &[usize], gap: f64) -> Tensor<f64> {
        let n: usize = shape.iter().product();
        let mut data: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) * gap).collect();
        for i in (1..n).rev() {
            data.swap(i, self.below(i + 1));
        }
        Tensor::new(shape.to_vec(), data).expect("shape and data agree")
    }

    /// A tensor of values from {-1, 0, 1}·scale: many exact zeros and ties (kinks).
    pub fn kinky(&mut self, shape: &[usize], scale: f64) -> Tensor<f64> {
        let mut t = self.tensor(shape, 0.0, 1.0);
        for v in t.data_mut() {
            *v = ((*v * 3.0).floor() - 1.0) * scale;
        }
        t
    }

    /// A random tensor of the same shape, uniform in [-1, 1).
    pub fn like(&mut self, t: &Tensor<f64>) -> Tensor<f64> {
        self.tensor(t.shape(), -1.0, 1.0)
    }
}

/// Runs the op's forward pass on owned inputs.
pub fn forward(op: &dyn Op<f64>, inputs: &[Tensor<f64>]) -> Result<Tensor<f64>, String> {
    let refs: Vec<&Tensor<f64>> = inputs.iter().collect();
    op.forward(&refs)
        .map_err(|e| format!("{}: forward failed: {e}", op.name()))
}

/// True when |a − b| ≤ tol (false for NaN).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Σ |a_i b_i|.
fn abs_dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum()
}

/// Checks that `got` has shape `want`.
fn check_shape(what: &str, got: &Tensor<f64>, want: &[usize]) -> Result<(), String> {
    if got.shape() == want {
        Ok(())
    } else {
        Err(format!(
            "{what} has shape {:?}, expected {want:?}",
            got.shape()
        ))
    }
}

/// The VJP with all `needs` set, one gradient per input, shapes checked.
pub fn full_vjp(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    y: &Tensor<f64>,
    v: &Tensor<f64>,
) -> Result<Vec<Tensor<f64>>, String> {
    let refs: Vec<&Tensor<f64>> = inputs.iter().collect();
    let name = op.name();
    let grads = op
        .vjp(&refs, y, v, &vec![true; inputs.len()])
        .map_err(|e| format!("{name}: vjp failed: {e}"))?;
    if grads.len() != inputs.len() {
        return Err(format!(
            "{name}: vjp gave {} gradients for {} inputs",
            grads.len(),
            inputs.len()
        ));
    }
    grads
        .into_iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (g, x))| {
            let g =
                g.ok_or_else(|| format!("{name}: vjp gave no gradient for needed input {i}"))?;
            check_shape(&format!("{name}: gradient of input {i}"), &g, x.shape())?;
            Ok(g)
        })
        .collect()
}

/// The JVP with the given tangents (`None` = zero), shape checked.
pub fn jvp(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    y: &Tensor<f64>,
    tangents: &[Option<&Tensor<f64>>],
) -> Result<Tensor<f64>, String> {
    let refs: Vec<&Tensor<f64>> = inputs.iter().collect();
    let t = op
        .jvp(&refs, y, tangents)
        .map_err(|e| format!("{}: jvp failed: {e}", op.name()))?;
    check_shape(&format!("{}: tangent", op.name()), &t, y.shape())?;
    Ok(t)
}

/// (a) Every input's VJP against central differences of ⟨v, f(x)⟩ for a random v, element
/// by element; also checks that a VJP asked for one input returns only that one, equal to
/// the full VJP's, and that a VJP asked for none returns none.
pub fn check_vjp_fd(op: &dyn Op<f64>, inputs: &[Tensor<f64>], rng: &mut Rng) -> Result<(), String> {
    let name = op.name();
    let y = forward(op, inputs)?;
    let v = rng.like(&y);
    let grads = full_vjp(op, inputs, &y, &v)?;
    let mut x = inputs.to_vec();
    for (i, g) in grads.iter().enumerate() {
        for j in 0..x[i].len() {
            let orig = x[i].data()[j];
            x[i].data_mut()[j] = orig + H;
            let yp = forward(op, &x)?;
            x[i].data_mut()[j] = orig - H;
            let ym = forward(op, &x)?;
            x[i].data_mut()[j] = orig;
            let fp = yp.dot(&v).map_err(|e| e.to_string())?;
            let fm = ym.dot(&v).map_err(|e| e.to_string())?;
            let fd = (fp - fm) / (2.0 * H);
            // FD rounding noise is about ε·Σ|v·y|/h; leave a wide margin above it.
            let noise = 1e-9 * (abs_dot(yp.data(), v.data()) + abs_dot(ym.data(), v.data()));
            let got = g.data()[j];
            if !close(got, fd, 1e-6 * (1.0 + got.abs() + fd.abs()) + noise) {
                return Err(format!(
                    "{name}: d<v, f>/d input {i}[{j}]: vjp {got:e}, finite difference {fd:e} (input shapes {:?})",
                    shapes(inputs)
                ));
            }
        }
    }
    check_needs(op, inputs, &y, &v, &grads)
}

/// VJPs asked for a single input give `None` for the others and the same gradient; asked
/// for none, they give none.
fn check_needs(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    y: &Tensor<f64>,
    v: &Tensor<f64>,
    full: &[Tensor<f64>],
) -> Result<(), String> {
    let name = op.name();
    let refs: Vec<&Tensor<f64>> = inputs.iter().collect();
    // Each input alone, then none at all (every gradient must then be `None`).
    for i in 0..=inputs.len() {
        let needs: Vec<bool> = (0..inputs.len()).map(|j| j == i).collect();
        let grads = op
            .vjp(&refs, y, v, &needs)
            .map_err(|e| format!("{name}: vjp failed: {e}"))?;
        for (j, g) in grads.iter().enumerate() {
            match (j == i, g) {
                (true, Some(g)) => {
                    if Some(g.data()) != full.get(i).map(|f| f.data()) {
                        return Err(format!(
                            "{name}: vjp for input {i} alone differs from the full vjp"
                        ));
                    }
                }
                (true, None) => {
                    return Err(format!("{name}: vjp gave no gradient for needed input {i}"))
                }
                (false, Some(_)) => {
                    return Err(format!(
                        "{name}: vjp computed input {j}'s gradient, not needed"
                    ))
                }
                (false, None) => {}
            }
        }
    }
    Ok(())
}

/// (b) The JVP (tangents on every input) against central differences along them.
pub fn check_jvp_fd(op: &dyn Op<f64>, inputs: &[Tensor<f64>], rng: &mut Rng) -> Result<(), String> {
    let name = op.name();
    let y = forward(op, inputs)?;
    let u: Vec<Tensor<f64>> = inputs.iter().map(|x| rng.like(x)).collect();
    let tangents: Vec<Option<&Tensor<f64>>> = u.iter().map(Some).collect();
    let t = jvp(op, inputs, &y, &tangents)?;
    let step = |s: f64| -> Vec<Tensor<f64>> {
        inputs
            .iter()
            .zip(&u)
            .map(|(x, u)| x.zip_map(u, |x, u| x + s * u).expect("same shapes"))
            .collect()
    };
    let yp = forward(op, &step(H))?;
    let ym = forward(op, &step(-H))?;
    for k in 0..y.len() {
        let fd = (yp.data()[k] - ym.data()[k]) / (2.0 * H);
        let got = t.data()[k];
        let noise = 1e-9 * (yp.data()[k].abs() + ym.data()[k].abs());
        if !close(got, fd, 1e-6 * (1.0 + got.abs() + fd.abs()) + noise) {
            return Err(format!(
                "{name}: tangent of output [{k}]: jvp {got:e}, finite difference {fd:e} (input shapes {:?})",
                shapes(inputs)
            ));
        }
    }
    Ok(())
}

/// (c) ⟨v, J·u⟩ = ⟨Jᵀ·v, u⟩ to [`DOT_TOL`] relative to Σ|v_k (Ju)_k| + Σ|(Jᵀv)_j u_j|, for u
/// on each input alone and on all inputs together. Holds at kinks when VJP and JVP share
/// their subgradient conventions.
pub fn check_dot_identity(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    rng: &mut Rng,
) -> Result<(), String> {
    let name = op.name();
    let y = forward(op, inputs)?;
    let v = rng.like(&y);
    let u: Vec<Tensor<f64>> = inputs.iter().map(|x| rng.like(x)).collect();
    let grads = full_vjp(op, inputs, &y, &v)?;
    let n = inputs.len();
    // Subsets: each input alone, then all of them (when there are several).
    let mut subsets: Vec<Vec<bool>> = (0..n).map(|i| (0..n).map(|j| j == i).collect()).collect();
    if n > 1 {
        subsets.push(vec![true; n]);
    }
    for subset in subsets {
        let tangents: Vec<Option<&Tensor<f64>>> = u
            .iter()
            .zip(&subset)
            .map(|(u, &on)| on.then_some(u))
            .collect();
        let ju = jvp(op, inputs, &y, &tangents)?;
        let lhs: f64 = v.data().iter().zip(ju.data()).map(|(a, b)| a * b).sum();
        let mut rhs = 0.0;
        let mut scale = abs_dot(v.data(), ju.data());
        for ((g, u), _) in grads.iter().zip(&u).zip(&subset).filter(|(_, &on)| on) {
            rhs += g
                .data()
                .iter()
                .zip(u.data())
                .map(|(a, b)| a * b)
                .sum::<f64>();
            scale += abs_dot(g.data(), u.data());
        }
        if !close(lhs, rhs, DOT_TOL * scale + 1e-300) {
            return Err(format!(
                "{name}: <v, J u> = {lhs:e} but <J^T v, u> = {rhs:e} (scale {scale:e}, tangents on {subset:?}, input shapes {:?})",
                shapes(inputs)
            ));
        }
    }
    Ok(())
}

/// (a), (b) and (c) on one set of inputs (which must be away from kinks).
pub fn check_all(op: &dyn Op<f64>, inputs: &[Tensor<f64>], seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    check_vjp_fd(op, inputs, &mut rng)?;
    check_jvp_fd(op, inputs, &mut rng)?;
    check_dot_identity(op, inputs, &mut rng)
}

/// The shapes of some tensors, for messages.
pub fn shapes(inputs: &[Tensor<f64>]) -> Vec<Vec<usize>> {
    inputs.iter().map(|t| t.shape().to_vec()).collect()
}

/// Asserts that two tensors agree elementwise to `tol` (absolute + relative).
pub fn assert_close(what: &str, got: &Tensor<f64>, want: &Tensor<f64>, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    for (k, (a, b)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            close(*a, *b, tol * (1.0 + b.abs())),
            "{what}: element {k}: got {a}, want {b}"
        );
    }
}
