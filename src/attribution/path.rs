//! The path sweep: runs the network on the straight path x(α) = x' + α(x − x') at a list
//! of nodes α_k, a chunk of steps at a time, on one tape per chunk.
//!
//! For each chunk the input rows are laid out step-major (row r = s·N + n for step s of the
//! chunk and example n). The input is a variable whose tangent is x − x' (so every node's
//! tangent is d node / dα), weights are constants (no weight gradients), and one backward
//! pass from F = Σ_rows output[r, target] leaves ∂F/∂y on every node. The caller's visitor
//! reads values, adjoints and tangents of every layer off the tape, then the tape is
//! cleared and reused for the next chunk: memory is bounded by the chunk size, not the
//! step count.

use crate::nn::Model;
use crate::ops::GatherRows;
use crate::tape::{NodeId, Tape};
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// What one chunk of the sweep exposes to a visitor.
pub struct Chunk<'a, T: Float> {
    /// The tape holding the chunk's nodes (mutable so visitors may run extra backward passes).
    pub tape: &'a mut Tape<T>,
    /// The input node: rows x(α_k) for the chunk's steps, step-major.
    pub input: NodeId,
    /// Each layer's output node, by layer index.
    pub layers: &'a [NodeId],
    /// The chunk's path nodes α.
    pub alphas: &'a [f64],
    /// The chunk's quadrature weights (same length as `alphas`).
    pub weights: &'a [f64],
    /// The index of the chunk's first step among all steps.
    pub first_step: usize,
    /// The number of examples N.
    pub examples: usize,
}

/// What the sweep computes on each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepOptions {
    /// Carry tangents d/dα through the network (forward mode).
    pub tangents: bool,
    /// Run the backward pass from F (adjoints ∂F/∂node).
    pub adjoints: bool,
    /// Steps per chunk (≥ 1).
    pub batch_steps: usize,
}

/// The input rows x' + α(x − x') for a list of α, step-major: shape [K·N, ...].
pub fn path_points<T: Float>(x: &Tensor<T>, baseline: &Tensor<T>, alphas: &[f64]) -> Result<Tensor<T>> {
    ensure!(
        x.shape() == baseline.shape(),
        "baseline: shape {:?} differs from the input's {:?}",
        baseline.shape(),
        x.shape()
    );
    let mut data = Vec::with_capacity(x.len() * alphas.len());
    for &a in alphas {
        // The ends are taken as they are, so α = 1 is exactly x and α = 0 exactly x'.
        if a == 1.0 {
            data.extend_from_slice(x.data());
        } else if a == 0.0 {
            data.extend_from_slice(baseline.data());
        } else {
            let a = T::from_f64(a);
            data.extend(x.data().iter().zip(baseline.data()).map(|(&xi, &bi)| bi + a * (xi - bi)));
        }
    }
    let mut shape = x.shape().to_vec();
    shape[0] *= alphas.len();
    Tensor::new(shape, data)
}

/// Runs the model along the path at `alphas` (with `weights`), chunk by chunk, calling
/// `visit` after each chunk's forward (and backward, if asked) pass.
#[allow(clippy::too_many_arguments)]
pub fn sweep<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    target: usize,
    alphas: &[f64],
    weights: &[f64],
    opts: SweepOptions,
    mut visit: impl FnMut(Chunk<'_, T>) -> Result<()>,
) -> Result<()> {
    ensure!(opts.batch_steps >= 1, "--batch-steps: must be at least 1");
    ensure!(alphas.len() == weights.len(), "sweep: {} nodes but {} weights", alphas.len(), weights.len());
    let n = x.shape()[0];
    let direction = x.zip_map(baseline, |a, b| a - b)?;
    let mut tape = Tape::new();
    let mut first = 0;
    while first < alphas.len() {
        let last = (first + opts.batch_steps).min(alphas.len());
        let chunk_alphas = &alphas[first..last];
        let k = chunk_alphas.len();
        tape.clear();
        let points = path_points(x, baseline, chunk_alphas)?;
        let input = tape.variable(points);
        if opts.tangents {
            let mut t = Vec::with_capacity(direction.len() * k);
            for _ in 0..k {
                t.extend_from_slice(direction.data());
            }
            let shape = tape.value(input).shape().to_vec();
            tape.set_tangent(input, Tensor::new(shape, t)?)?;
        }
        let recorded = model.record(&mut tape, input, false)?;
        let layers = recorded.layer_outputs;
        if opts.adjoints {
            let out = *layers.last().unwrap_or(&input);
            let picked = tape.apply(GatherRows { indices: vec![target; k * n] }, &[out])?;
            tape.backward(picked, Tensor::full(&[k * n], T::ONE))?;
        }
        visit(Chunk {
            tape: &mut tape,
            input,
            layers: &layers,
            alphas: chunk_alphas,
            weights: &weights[first..last],
            first_step: first,
            examples: n,
        })?;
        first = last;
    }
    Ok(())
}
