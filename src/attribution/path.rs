//! The path sweep: runs the network at points x(α) = x' + α(x − x') of the straight path,
//! a chunk of rows at a time, on one tape per chunk.
//!
//! A *row* is one point of one example's path with its quadrature weight. Uniform rules
//! give every example the same nodes (laid out step-major); the exact rule gives each
//! example its own. The input is a variable whose tangent is x − x' (so every node's
//! tangent is d node / dα), weights are constants (no weight gradients), and one backward
//! pass from F = Σ_rows output[row, target of the row's example] leaves ∂F/∂y on every node. The visitor reads
//! values, adjoints and tangents of every layer off the tape; then the tape is truncated
//! back to the weights (recorded once) and reused for the next chunk, so memory is bounded by the chunk size, not the step count.

use crate::nn::Model;
use crate::ops::GatherRows;
use crate::tape::{NodeId, Tape};
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// One point of one example's path and its quadrature weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathRow {
    /// The example (index into the batch).
    pub example: usize,
    /// The path parameter α ∈ [0, 1].
    pub alpha: f64,
    /// The quadrature weight.
    pub weight: f64,
}

/// The rows of a uniform rule: every example at every node, step-major.
pub fn uniform_rows(examples: usize, alphas: &[f64], weights: &[f64]) -> Vec<PathRow> {
    alphas
        .iter()
        .zip(weights)
        .flat_map(|(&alpha, &weight)| {
            (0..examples).map(move |example| PathRow {
                example,
                alpha,
                weight,
            })
        })
        .collect()
}

/// What one chunk of the sweep exposes to a visitor.
pub struct Chunk<'a, T: Float> {
    /// The tape holding the chunk's nodes (mutable so visitors may run extra backward passes).
    pub tape: &'a mut Tape<T>,
    /// The input node: one row per path row of the chunk.
    pub input: NodeId,
    /// Each layer's output node, by layer index.
    pub layers: &'a [NodeId],
    /// The chunk's rows.
    pub rows: &'a [PathRow],
}

/// What the sweep computes on each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepOptions {
    /// Carry tangents d/dα through the network (forward mode).
    pub tangents: bool,
    /// Run the backward pass from F (adjoints ∂F/∂node).
    pub adjoints: bool,
    /// Compute the input's adjoint ∂F/∂x(α) too (false: only the layers' adjoints, and
    /// the first layer's VJP into the input is skipped).
    pub input_adjoint: bool,
    /// Record each Conv2d layer that a ReLU follows as one node with it
    /// ([`Model::record_using_fused`]): every value, adjoint and tangent the visitor can
    /// read is unchanged bit for bit, except that the convolution's layer node is the
    /// ReLU's. Only for visitors that read no pre-activation: a convolution's tangent
    /// conductance equals its ReLU's bit for bit, and the input's adjoint is unchanged.
    pub fuse_relu: bool,
    /// Rows per chunk (≥ 1).
    pub chunk_rows: usize,
}

/// The input points x'_e + α(x_e − x'_e) of the given rows: shape [rows, ...].
/// The ends are taken as they are, so α = 1 is exactly x and α = 0 exactly x'.
pub fn path_points<T: Float>(
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    rows: &[PathRow],
) -> Result<Tensor<T>> {
    ensure!(
        x.shape() == baseline.shape(),
        "baseline: shape {:?} differs from the input's {:?}",
        baseline.shape(),
        x.shape()
    );
    let u = x.len() / x.shape()[0].max(1);
    // From the buffer pool: the tape gives the input's buffer back there after each chunk.
    let mut data = crate::buffers::take_for_overwrite(u * rows.len());
    for (row, out) in rows.iter().zip(data.chunks_exact_mut(u.max(1))) {
        let xs = &x.data()[row.example * u..(row.example + 1) * u];
        let bs = &baseline.data()[row.example * u..(row.example + 1) * u];
        if row.alpha == 1.0 {
            out.copy_from_slice(xs);
        } else if row.alpha == 0.0 {
            out.copy_from_slice(bs);
        } else {
            let a = T::from_f64(row.alpha);
            for ((o, &xi), &bi) in out.iter_mut().zip(xs).zip(bs) {
                *o = bi + a * (xi - bi);
            }
        }
    }
    let mut shape = x.shape().to_vec();
    shape[0] = rows.len();
    Tensor::new(shape, data)
}

/// The tangents x_e − x'_e of the given rows.
pub fn path_tangents<T: Float>(direction: &Tensor<T>, rows: &[PathRow]) -> Result<Tensor<T>> {
    let u = direction.len() / direction.shape()[0].max(1);
    let mut data = crate::buffers::take_for_overwrite(u * rows.len());
    for (row, out) in rows.iter().zip(data.chunks_exact_mut(u.max(1))) {
        out.copy_from_slice(&direction.data()[row.example * u..(row.example + 1) * u]);
    }
    let mut shape = direction.shape().to_vec();
    shape[0] = rows.len();
    Tensor::new(shape, data)
}

/// Runs the model at every row, chunk by chunk, calling `visit` after each chunk's
/// forward (and, if asked, backward) pass.
pub fn sweep<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    rows: &[PathRow],
    opts: SweepOptions,
    mut visit: impl FnMut(Chunk<'_, T>) -> Result<()>,
) -> Result<()> {
    ensure!(opts.chunk_rows >= 1, "--batch-steps: must be at least 1");
    ensure!(
        targets.len() == x.shape()[0],
        "sweep: {} targets for {} examples",
        targets.len(),
        x.shape()[0]
    );
    let direction = x.zip_map(baseline, |a, b| a - b)?;
    let mut tape = Tape::new();
    // The weights go on the tape once; each chunk truncates the tape back to them.
    let params = model.record_params(&mut tape, false);
    let weights_end = tape.len();
    for chunk_rows in rows.chunks(opts.chunk_rows) {
        tape.truncate(weights_end);
        let points = path_points(x, baseline, chunk_rows)?;
        let input = if opts.input_adjoint {
            tape.variable(points)
        } else {
            tape.variable_without_adjoint(points)
        };
        if opts.tangents {
            tape.set_tangent(input, path_tangents(&direction, chunk_rows)?)?;
        }
        let recorded = if opts.fuse_relu {
            model.record_using_fused(&mut tape, input, &params)?
        } else {
            model.record_using(&mut tape, input, &params)?
        };
        let layers = recorded.layer_outputs;
        if opts.adjoints {
            let out = *layers.last().unwrap_or(&input);
            let indices = chunk_rows.iter().map(|r| targets[r.example]).collect();
            let picked = tape.apply(GatherRows { indices }, &[out])?;
            tape.backward(picked, Tensor::full(&[chunk_rows.len()], T::ONE))?;
        }
        visit(Chunk {
            tape: &mut tape,
            input,
            layers: &layers,
            rows: chunk_rows,
        })?;
    }
    Ok(())
}
