//! Exact path integrals (`--rule exact`).
//!
//! For a network whose nonlinearities are piecewise linear (ReLU, LeakyReLU, PReLU, max
//! pooling; everything else affine), F restricted to the straight path is piecewise linear
//! in α. Following ExactLine (Sotoudeh & Thakur, NeurIPS 2019), the path is split layer by
//! layer: on each current segment every layer input is affine in α, so the values at the
//! segment's two ends tell exactly where a ReLU input changes sign or a max-pool window
//! changes its winner (the breakpoints of the upper envelope of its candidates). New points
//! are inserted there (their layer inputs interpolated, which is exact on an affine
//! segment), and the next layer is applied to all points in one batch. Between consecutive
//! points the whole network is affine, so one gradient at each piece's midpoint, weighted
//! by the piece's length, integrates exactly: IG, and every layer's conductance
//! ∂F/∂y(mid) · dy/dα(mid) · (b − a) = ∂F/∂y(mid) · (y(b) − y(a)).
//!
//! Smooth layers (tanh, sigmoid, softmax, log-softmax) make F smooth but not affine on a
//! piece. Kinks before the first smooth layer are still located exactly; after it, pieces
//! are integrated with adaptive Gauss–Legendre: a piece is accepted when its m-point
//! estimate and the sum of the m-point estimates on its two halves differ by at most
//! `tolerance · |F(x) − F(x')| · length` (L1 over the inputs' integrated gradients), and
//! bisected otherwise.

use super::path::{sweep, PathRow, SweepOptions};
use super::quadrature::gauss_legendre;
use crate::nn::{LayerSpec, Model};
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::pool::Pool2dGeometry;
use mho_kernels::Float;

/// Settings of the exact rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExactOptions {
    /// Relative tolerance for smooth pieces (adaptive Gauss–Legendre); in f32 it is raised
    /// to at least 64 ε (≈ 7.6e-6), what f32 arithmetic can resolve.
    pub tolerance: f64,
    /// The most pieces one example's path may have.
    pub max_pieces: usize,
    /// Gauss–Legendre points per (half) piece on smooth networks.
    pub order: usize,
    /// Rows per chunk in the batched passes.
    pub chunk_rows: usize,
    /// Integrate by events ([`super::events`]) where the method and the network allow
    /// (integrated gradients, conductance and internal influence through linear,
    /// convolution, reshaping, ReLU, LeakyReLU and max-pool layers); `false` walks the
    /// path layer by layer and runs a gradient per piece (kept for cross-checks).
    pub events: bool,
}

impl Default for ExactOptions {
    fn default() -> Self {
        ExactOptions {
            tolerance: 1e-10,
            max_pieces: 100_000,
            order: 8,
            chunk_rows: 512,
            events: true,
        }
    }
}

/// The quadrature rows of the exact rule and what it took to find them.
#[derive(Clone, Debug)]
pub struct ExactRows {
    /// Path rows (per example: midpoints weighted by piece length, or Gauss–Legendre nodes
    /// on smooth pieces).
    pub rows: Vec<PathRow>,
    /// Per example, the number of pieces.
    pub pieces: Vec<usize>,
    /// Rows run forward to find the pieces.
    pub forward_rows: usize,
    /// Rows run backward while refining smooth pieces.
    pub backward_rows: usize,
}

/// How a layer bends along a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bend {
    Affine,
    Elementwise,
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        ceil_mode: bool,
    },
    Smooth,
}

fn bend_of(spec: &LayerSpec) -> Result<Bend> {
    Ok(match spec {
        LayerSpec::ReLU | LayerSpec::LeakyReLU { .. } | LayerSpec::PReLU { .. } => {
            Bend::Elementwise
        }
        LayerSpec::MaxPool2d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => Bend::MaxPool2d {
            kernel: *kernel_size,
            stride: *stride,
            padding: *padding,
            dilation: *dilation,
            ceil_mode: *ceil_mode,
        },
        LayerSpec::MaxPool1d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => Bend::MaxPool2d {
            kernel: [1, *kernel_size],
            stride: [1, *stride],
            padding: [0, *padding],
            dilation: [1, *dilation],
            ceil_mode: *ceil_mode,
        },
        LayerSpec::Tanh
        | LayerSpec::Sigmoid
        | LayerSpec::Softmax { .. }
        | LayerSpec::LogSoftmax { .. } => Bend::Smooth,
        LayerSpec::Embedding { .. } => {
            bail!("--rule exact: token (Embedding) inputs have no straight path")
        }
        _ => Bend::Affine,
    })
}

/// Breakpoints s ∈ (0, 1) where some unit's sign changes between rows p and q.
fn sign_changes<T: Float>(p: &[T], q: &[T], out: &mut Vec<f64>) {
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a.to_f64(), b.to_f64());
        if (a > 0.0 && b < 0.0) || (a < 0.0 && b > 0.0) {
            out.push(a / (a - b));
        }
    }
}

/// Breakpoints s ∈ (0, 1) of the upper envelope of each max-pool window's candidates,
/// which move linearly from their values in row p to those in row q.
fn window_changes<T: Float>(g: &Pool2dGeometry, p: &[T], q: &[T], out: &mut Vec<f64>) {
    let [kh, kw] = g.kernel;
    let mut cand: Vec<(f64, f64)> = Vec::with_capacity(kh * kw);
    for c in 0..g.channels {
        let plane = c * g.in_h * g.in_w;
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                cand.clear();
                for i in 0..kh {
                    let h = (oh * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                    if h < 0 || h >= g.in_h as isize {
                        continue;
                    }
                    for j in 0..kw {
                        let w =
                            (ow * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                        if w < 0 || w >= g.in_w as isize {
                            continue;
                        }
                        let idx = plane + h as usize * g.in_w + w as usize;
                        let v0 = p[idx].to_f64();
                        cand.push((v0, q[idx].to_f64() - v0));
                    }
                }
                envelope_breaks(&cand, out);
            }
        }
    }
}

/// Breakpoints in (0, 1) of max_j (v_j + s·d_j).
fn envelope_breaks(cand: &[(f64, f64)], out: &mut Vec<f64>) {
    if cand.len() < 2 {
        return;
    }
    let better = |a: (f64, f64), b: (f64, f64)| a.0 > b.0 || (a.0 == b.0 && a.1 > b.1);
    let mut active = 0;
    for j in 1..cand.len() {
        if better(cand[j], cand[active]) {
            active = j;
        }
    }
    let mut s = 0.0;
    // Each step moves to a strictly steeper candidate, so there are fewer steps than
    // candidates; the cap also guards against NaN (which every comparison rejects).
    for _ in 0..cand.len() {
        let (va, da) = cand[active];
        let mut next: Option<(f64, usize)> = None;
        for (j, &(vj, dj)) in cand.iter().enumerate() {
            if dj.partial_cmp(&da) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let t = (va - vj) / (dj - da);
            let inside = t.partial_cmp(&s) == Some(std::cmp::Ordering::Greater) && t < 1.0;
            if !inside {
                continue;
            }
            match next {
                Some((bt, bj)) if t > bt || (t == bt && dj <= cand[bj].1) => {}
                _ => next = Some((t, j)),
            }
        }
        match next {
            Some((t, j)) => {
                out.push(t);
                s = t;
                active = j;
            }
            None => break,
        }
    }
}

/// A stretch [a0, a1] of one example's path, walked as a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    example: usize,
    a0: f64,
    a1: f64,
}

/// Elements of a layer input the walk may hold at once (all points of a batch of windows);
/// past it, the batch is split, and a single window is bisected.
const WALK_BUDGET: usize = 1 << 24;

/// Walks a batch of windows through the network layer by layer, inserting breakpoints.
/// Returns each window's ascending points (ends included) and the rows run forward, or
/// `None` when the points would exceed [`WALK_BUDGET`].
fn walk<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    windows: &[Window],
    max_pieces: usize,
) -> Result<Option<(Vec<Vec<f64>>, usize)>> {
    let min_gap = T::epsilon().to_f64().sqrt() * 1e-4;
    // Points (window, α), grouped by window, ascending α; `cur` holds their layer inputs.
    let mut points: Vec<(usize, f64)> = (0..windows.len())
        .flat_map(|w| [(w, windows[w].a0), (w, windows[w].a1)])
        .collect();
    let rows: Vec<PathRow> = points
        .iter()
        .map(|&(w, alpha)| PathRow {
            example: windows[w].example,
            alpha,
            weight: 0.0,
        })
        .collect();
    let mut cur = super::path::path_points(x, baseline, &rows)?;
    let mut forward_rows = 0usize;
    let mut smooth = false;
    for (i, spec) in model.architecture().layers.iter().enumerate() {
        let bend = bend_of(spec)?;
        if !smooth && bend != Bend::Affine && bend != Bend::Smooth {
            let u = cur.len() / points.len();
            let geom = match bend {
                Bend::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                    dilation,
                    ceil_mode,
                } => {
                    let s = cur.shape();
                    let (c, h, w) = match s.len() {
                        4 => (s[1], s[2], s[3]),
                        3 => (s[1], 1, s[2]),
                        _ => bail!("layer {i} (max pool): input shape {s:?}"),
                    };
                    Some(Pool2dGeometry::new(
                        1,
                        c,
                        [h, w],
                        kernel,
                        stride,
                        padding,
                        dilation,
                        ceil_mode,
                    )?)
                }
                _ => None,
            };
            let mut new_points = Vec::with_capacity(points.len());
            let mut new_data: Vec<T> = Vec::with_capacity(cur.len());
            let mut breaks = Vec::new();
            let data = cur.data();
            for r in 0..points.len() {
                let row = &data[r * u..(r + 1) * u];
                new_points.push(points[r]);
                new_data.extend_from_slice(row);
                if r + 1 == points.len() || points[r + 1].0 != points[r].0 {
                    continue;
                }
                let next = &data[(r + 1) * u..(r + 2) * u];
                breaks.clear();
                match &geom {
                    Some(g) => window_changes(g, row, next, &mut breaks),
                    None => sign_changes(row, next, &mut breaks),
                }
                breaks.sort_by(f64::total_cmp);
                let (a0, a1) = (points[r].1, points[r + 1].1);
                let mut last = a0;
                for &s in &breaks {
                    let alpha = a0 + s * (a1 - a0);
                    if alpha - last <= min_gap || a1 - alpha <= min_gap {
                        continue;
                    }
                    last = alpha;
                    new_points.push((points[r].0, alpha));
                    let st = T::from_f64(s);
                    new_data.extend(row.iter().zip(next).map(|(&p, &q)| p + st * (q - p)));
                }
                if new_data.len() > WALK_BUDGET {
                    return Ok(None);
                }
            }
            let mut shape = cur.shape().to_vec();
            shape[0] = new_points.len();
            cur = Tensor::new(shape, new_data)?;
            points = new_points;
            let mut counts = vec![0usize; windows.len()];
            for &(w, _) in &points {
                counts[w] += 1;
            }
            if let Some(w) = counts.iter().position(|&c| c - 1 > max_pieces) {
                bail!(
                    "--max-pieces: example {} has more than {max_pieces} linear pieces by layer {i} ({}); raise --max-pieces or use a quadrature rule",
                    windows[w].example,
                    spec.type_name()
                );
            }
        }
        forward_rows += points.len();
        cur = model.layer_forward(i, &cur)?;
        if let Some(bad) = cur.first_non_finite() {
            let u = cur.len() / points.len().max(1);
            let (w, a) = points[bad / u.max(1)];
            bail!(
                "--rule exact: layer {i} ({}) is not finite at example {}, alpha {a}",
                spec.type_name(),
                windows[w].example
            );
        }
        if bend == Bend::Smooth {
            smooth = true;
        }
    }
    let mut out = vec![Vec::new(); windows.len()];
    for (w, a) in points {
        out[w].push(a);
    }
    Ok(Some((out, forward_rows)))
}

/// Finds each example's linear pieces and returns the rows that integrate exactly.
pub fn exact_rows<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    out_change: &[f64],
    opts: &ExactOptions,
) -> Result<ExactRows> {
    ensure!(opts.max_pieces >= 1, "--max-pieces: must be at least 1");
    let n = x.shape()[0];
    let mut smooth = false;
    for spec in &model.architecture().layers {
        smooth |= bend_of(spec)? == Bend::Smooth;
    }
    // Walk batches of windows; a batch too big for memory is split, a lone window bisected.
    let mut stack: Vec<Vec<Window>> = vec![(0..n)
        .map(|example| Window {
            example,
            a0: 0.0,
            a1: 1.0,
        })
        .collect()];
    let mut done: Vec<(Window, Vec<f64>)> = Vec::new();
    let mut forward_rows = 0usize;
    while let Some(batch) = stack.pop() {
        match walk(model, x, baseline, &batch, opts.max_pieces)? {
            Some((points, rows)) => {
                forward_rows += rows;
                done.extend(batch.into_iter().zip(points));
            }
            None if batch.len() > 1 => {
                let right = batch[batch.len() / 2..].to_vec();
                let left = batch[..batch.len() / 2].to_vec();
                stack.push(right);
                stack.push(left);
            }
            None => {
                let w = batch[0];
                if w.a1 - w.a0 <= 1e-9 {
                    bail!(
                        "--rule exact: example {} has too many kinks near alpha {} to walk in memory",
                        w.example,
                        w.a0
                    );
                }
                let mid = 0.5 * (w.a0 + w.a1);
                stack.push(vec![Window { a0: mid, ..w }]);
                stack.push(vec![Window { a1: mid, ..w }]);
            }
        }
    }
    done.sort_by(|p, q| {
        p.0.example
            .cmp(&q.0.example)
            .then(p.0.a0.total_cmp(&q.0.a0))
    });
    let mut pieces = vec![0usize; n];
    let mut segments: Vec<(usize, f64, f64)> = Vec::new();
    for (w, pts) in &done {
        for s in pts.windows(2) {
            pieces[w.example] += 1;
            segments.push((w.example, s[0], s[1]));
        }
    }
    if let Some(e) = pieces.iter().position(|&p| p > opts.max_pieces) {
        bail!(
            "--max-pieces: example {e} has {} linear pieces, more than {}; raise --max-pieces or use a quadrature rule",
            pieces[e],
            opts.max_pieces
        );
    }
    if !smooth {
        let rows = segments
            .iter()
            .map(|&(example, a, b)| PathRow {
                example,
                alpha: 0.5 * (a + b),
                weight: b - a,
            })
            .collect();
        return Ok(ExactRows {
            rows,
            pieces,
            forward_rows,
            backward_rows: 0,
        });
    }
    refine_smooth(
        model,
        x,
        baseline,
        targets,
        out_change,
        opts,
        segments,
        forward_rows,
    )
}

/// F (each example's target output) at the given path points, without a tape, and for
/// each point the largest magnitude of any layer's value there (the scale of F's rounding).
fn outputs_at<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    rows: &[PathRow],
    chunk_rows: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut f = Vec::with_capacity(rows.len());
    let mut magnitude = vec![0.0f64; rows.len()];
    let mut start = 0;
    for chunk in rows.chunks(chunk_rows.max(1)) {
        let points = super::path::path_points(x, baseline, chunk)?;
        let outs = model.forward_all(&points)?;
        for t in std::iter::once(&points).chain(&outs) {
            let per = t.len() / chunk.len();
            for (r, m) in magnitude[start..start + chunk.len()].iter_mut().enumerate() {
                let row = &t.data()[r * per..(r + 1) * per];
                *m = row.iter().fold(*m, |acc, v| acc.max(v.to_f64().abs()));
            }
        }
        let y = outs.last().unwrap_or(&points);
        let k = y.len() / chunk.len();
        f.extend(
            chunk
                .iter()
                .enumerate()
                .map(|(r, row)| y.data()[r * k + targets[row.example]].to_f64()),
        );
        start += chunk.len();
    }
    Ok((f, magnitude))
}

/// Gauss–Legendre rows on [a, b] for one example.
fn gl_rows(example: usize, a: f64, b: f64, nodes: &[f64], weights: &[f64], out: &mut Vec<PathRow>) {
    for (&t, &w) in nodes.iter().zip(weights) {
        out.push(PathRow {
            example,
            alpha: a + t * (b - a),
            weight: w * (b - a),
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn refine_smooth<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    out_change: &[f64],
    opts: &ExactOptions,
    mut pending: Vec<(usize, f64, f64)>,
    forward_rows: usize,
) -> Result<ExactRows> {
    let n = x.shape()[0];
    let u = x.len() / n;
    let (nodes, weights) = gauss_legendre(opts.order);
    let direction = x.zip_map(baseline, |a, b| a - b)?;
    let mut accepted: Vec<(usize, f64, f64)> = Vec::new();
    let mut backward_rows = 0;
    let mut pieces = vec![0usize; n];
    for (e, _, _) in &pending {
        pieces[*e] += 1;
    }
    while !pending.is_empty() {
        // Rows: for each pending piece, m nodes on the whole, then m on each half.
        let mut rows = Vec::with_capacity(pending.len() * 3 * opts.order);
        for &(e, a, b) in &pending {
            let mid = 0.5 * (a + b);
            gl_rows(e, a, b, &nodes, &weights, &mut rows);
            gl_rows(e, a, mid, &nodes, &weights, &mut rows);
            gl_rows(e, mid, b, &nodes, &weights, &mut rows);
        }
        backward_rows += rows.len();
        // Per row, the integrand's contribution w · ∂F/∂x ⊙ (x − x').
        let mut contrib: Vec<f64> = Vec::with_capacity(rows.len() * u);
        let sweep_opts = SweepOptions {
            tangents: false,
            adjoints: true,
            input_adjoint: true,
            // Only the input's adjoint is read.
            fuse_relu: true,
            chunk_rows: opts.chunk_rows,
        };
        sweep(model, x, baseline, targets, &rows, sweep_opts, |chunk| {
            let g = chunk.tape.adjoint(chunk.input).map(|g| g.data().to_vec());
            for (r, row) in chunk.rows.iter().enumerate() {
                let d = &direction.data()[row.example * u..(row.example + 1) * u];
                match &g {
                    Some(g) => contrib.extend(
                        g[r * u..(r + 1) * u]
                            .iter()
                            .zip(d)
                            .map(|(&gi, &di)| row.weight * gi.to_f64() * di.to_f64()),
                    ),
                    None => contrib.extend(std::iter::repeat_n(0.0, u)),
                }
            }
            Ok(())
        })?;
        // F at each pending piece's two ends: Σ_j IG_j over a piece must equal F(b) − F(a).
        let ends: Vec<PathRow> = pending
            .iter()
            .flat_map(|&(example, a, b)| {
                [a, b].map(|alpha| PathRow {
                    example,
                    alpha,
                    weight: 0.0,
                })
            })
            .collect();
        let (f_ends, m_ends) = outputs_at(model, x, baseline, targets, &ends, opts.chunk_rows)?;
        let m = opts.order;
        let eps = T::epsilon().to_f64();
        let tolerance = opts.tolerance.max(64.0 * eps);
        let mut next = Vec::new();
        for (p, &(e, a, b)) in pending.iter().enumerate() {
            let base = p * 3 * m;
            let (mut diff, mut total, mut magnitude) = (0.0, 0.0, 0.0);
            for j in 0..u {
                let sum = |from: usize, to: usize| {
                    (from..to).map(|r| contrib[(base + r) * u + j]).sum::<f64>()
                };
                let (whole, halves) = (sum(0, m), sum(m, 3 * m));
                diff += (whole - halves).abs();
                total += halves;
                magnitude += (m..3 * m)
                    .map(|r| contrib[(base + r) * u + j].abs())
                    .sum::<f64>();
            }
            let (fa, fb) = (f_ends[2 * p], f_ends[2 * p + 1]);
            let scale = out_change[e].abs().max(f64::MIN_POSITIVE);
            let allowed = tolerance * scale * (b - a);
            // Accuracy: the m-point estimates on the whole and on the halves agree. Safety net
            // against both missing a feature between their nodes (e.g. a kink that switches a
            // unit on near one end, where no node of either looks): Σ_j IG_j over the piece
            // matches F(b) − F(a), up to F's own rounding at the network's internal magnitudes.
            let rounding = 64.0 * eps * (m_ends[2 * p] + m_ends[2 * p + 1]);
            let settled = diff <= allowed + 8.0 * eps * magnitude
                && (total - (fb - fa)).abs() <= allowed + rounding;
            if settled || b - a <= 1e-12 {
                let mid = 0.5 * (a + b);
                accepted.push((e, a, mid));
                accepted.push((e, mid, b));
            } else {
                pieces[e] += 1;
                ensure!(
                    pieces[e] <= opts.max_pieces,
                    "--max-pieces: example {e} needs more than {} pieces to reach --tolerance {}; raise --max-pieces or --tolerance",
                    opts.max_pieces,
                    opts.tolerance
                );
                let mid = 0.5 * (a + b);
                next.push((e, a, mid));
                next.push((e, mid, b));
            }
        }
        pending = next;
    }
    accepted.sort_by(|p, q| p.0.cmp(&q.0).then(p.1.total_cmp(&q.1)));
    let mut rows = Vec::with_capacity(accepted.len() * opts.order);
    for &(e, a, b) in &accepted {
        gl_rows(e, a, b, &nodes, &weights, &mut rows);
    }
    Ok(ExactRows {
        rows,
        pieces,
        forward_rows,
        backward_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_of_crossing_lines() {
        // v0 = 1 − s, v1 = s, v2 = 0.2 + 0.1 s: v1 overtakes v0 at 0.5; v2 never wins.
        let mut out = Vec::new();
        envelope_breaks(&[(1.0, -1.0), (0.0, 1.0), (0.2, 0.1)], &mut out);
        assert_eq!(out, vec![0.5]);
        // Three winners in turn: 1 − 2s, 0.5 (flat), −1 + 2s → breaks at 0.25 and 0.75.
        out.clear();
        envelope_breaks(&[(1.0, -2.0), (0.5, 0.0), (-1.0, 2.0)], &mut out);
        assert_eq!(out, vec![0.25, 0.75]);
        // A tie at s = 0 goes to the steeper candidate: no break.
        out.clear();
        envelope_breaks(&[(0.0, 0.0), (0.0, 1.0)], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn sign_changes_strict() {
        let mut out = Vec::new();
        sign_changes(&[1.0f64, -1.0, 0.0, 2.0], &[-1.0, 1.0, 3.0, 1.0], &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
    }
}
