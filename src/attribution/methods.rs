//! The attribution methods as accumulations over the path sweep.

use super::exact::{exact_rows, ExactOptions};
use super::path::{sweep, uniform_rows, Chunk, PathRow, SweepOptions};
use super::quadrature::Rule;
use super::report::Report;
use super::split::attribute_split;
use crate::nn::{LayerSpec, Model};
use crate::tape::NodeId;
use crate::tensor::Tensor;
use crate::{bail, ensure, Error, Result};
use mho_kernels::simd::vectorized;
use mho_kernels::Float;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// An attribution method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// (x_j − x'_j) ∫ ∂F/∂x_j dα, under "input".
    IntegratedGradients,
    /// ∫ ∂F/∂y_i · dy_i/dα dα for every unit of the chosen layers.
    Conductance,
    /// (x_j − x'_j) ∫ ∂F/∂y_i · ∂y_i/∂x_j dα for chosen units y_i.
    NeuronConductance,
    /// ∫ ∂F/∂y_i dα.
    InternalInfluence,
    /// y_i(x).
    Activation,
    /// y_i(x) · ∂F/∂y_i(x).
    GradientXActivation,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 6] = [
        Method::IntegratedGradients,
        Method::Conductance,
        Method::NeuronConductance,
        Method::InternalInfluence,
        Method::Activation,
        Method::GradientXActivation,
    ];

    /// The method's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "integrated-gradients",
            Method::Conductance => "conductance",
            Method::NeuronConductance => "neuron-conductance",
            Method::InternalInfluence => "internal-influence",
            Method::Activation => "activation",
            Method::GradientXActivation => "gradient-x-activation",
        }
    }

    /// True for methods that integrate along the path.
    pub fn uses_path(self) -> bool {
        !matches!(self, Method::Activation | Method::GradientXActivation)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            Error::new(format!(
                "--method: unknown method '{s}' (expected one of integrated-gradients, conductance, neuron-conductance, internal-influence, activation, gradient-x-activation)"
            ))
        })
    }
}

/// How conductance is estimated from the path nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConductanceForm {
    /// Σ_k w_k ∂F/∂y(α_k) ⊙ dy/dα(α_k): conserves exactly at any step count.
    Tangent,
    /// Σ_k ∂F/∂y(α_k) ⊙ (y(α_{k+1}) − y(α_k)) on the rule's n+1 nodes (Captum's estimator).
    Difference,
}

impl FromStr for ConductanceForm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tangent" => Ok(ConductanceForm::Tangent),
            "difference" => Ok(ConductanceForm::Difference),
            _ => bail!("--conductance-form: unknown form '{s}' (expected tangent or difference)"),
        }
    }
}

/// The baseline x'.
#[derive(Clone, Debug, PartialEq)]
pub enum Baseline {
    /// All zeros.
    Zeros,
    /// Every element the same value.
    Constant(f64),
    /// A tensor shaped like the input, or like one example (broadcast over the batch).
    Tensor(Tensor<f64>),
}

impl Baseline {
    /// The baseline as a tensor shaped like `x`.
    pub fn resolve<T: Float>(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        match self {
            Baseline::Zeros => Ok(Tensor::zeros(x.shape())),
            Baseline::Constant(v) => Ok(Tensor::full(x.shape(), T::from_f64(*v))),
            Baseline::Tensor(b) => {
                let b: Tensor<T> = b.cast();
                if b.shape() == x.shape() {
                    return Ok(b);
                }
                ensure!(
                    b.shape() == &x.shape()[1..],
                    "--baseline: shape {:?} matches neither the input {:?} nor one example {:?}",
                    b.shape(),
                    x.shape(),
                    &x.shape()[1..]
                );
                let n = x.shape()[0];
                Tensor::stack(&vec![b; n])
            }
        }
    }
}

/// Which layers a layer method reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerSelection {
    /// Every layer of the model.
    All,
    /// The named layers ("0", "1", …, or "input").
    Names(Vec<String>),
}

/// One attribution job.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The target output index.
    pub target: usize,
    /// Per-example target indices, overriding `target` when `Some` (one per example).
    pub targets: Option<Vec<usize>>,
    /// The layers (ignored by integrated gradients).
    pub layers: LayerSelection,
    /// Neuron indices (without the batch axis) for neuron conductance.
    pub neurons: Vec<Vec<usize>>,
    /// The baseline.
    pub baseline: Baseline,
    /// The quadrature rule.
    pub rule: Rule,
    /// The number of steps.
    pub steps: usize,
    /// Conductance estimator.
    pub form: ConductanceForm,
    /// Steps per chunk (memory bound); 0 chooses automatically: as few chunks as keep a
    /// chunk's layer values within [`AUTO_CHUNK_BYTES`] (unless one step alone exceeds it),
    /// the rows shared evenly. When the examples are shared between threads (see
    /// [`attribute`]), each share runs chunks of this many steps of its own examples, and
    /// the automatic budget is divided between the shares running at once.
    pub batch_steps: usize,
    /// `Some` for `--rule exact` (then `rule` and `steps` are not used).
    pub exact: Option<ExactOptions>,
}

impl Request {
    /// A request with mho's defaults (gauss-legendre, 50 steps, tangent form, all layers).
    pub fn new(method: Method, target: usize) -> Self {
        Request {
            method,
            target,
            targets: None,
            layers: LayerSelection::All,
            neurons: Vec::new(),
            baseline: Baseline::Zeros,
            rule: Rule::GaussLegendre,
            steps: 50,
            form: ConductanceForm::Tangent,
            batch_steps: 0,
            exact: None,
        }
    }
}

/// Difference form: one layer's adjoint and value at each example's previous node,
/// [N · units] each, reused from node to node (no allocation per row).
struct PreviousNode<T> {
    adjoint: Vec<T>,
    value: Vec<T>,
    seen: Vec<bool>,
}

/// With automatic chunking, the bytes of layer values one chunk's rows hold (each value
/// also gets an adjoint, and a tangent for conductance): 128 MiB, 2²⁵ values in f32 and
/// 2²⁴ in f64, so that a chunk's tape stays within the buffer pool's 512 MiB.
///
/// Fewer, larger chunks run faster (the per-chunk work of recording the tape and packing
/// weights is paid less often, and each kernel call gets more images); at 64 MiB the CIFAR
/// bench model's conductance at batch 4 ran in chunks of 76, 76 and 48 rows, 9% slower
/// than in two of 100 (docs/benchmarks.md, stop 12).
pub const AUTO_CHUNK_BYTES: usize = 1 << 27;

/// Rows per chunk for `total` rows at most `most` to a chunk: the fewest chunks, of
/// sizes as even as whole multiples of `n` (the examples) allow.
fn balanced_chunk_rows(total: usize, most: usize, n: usize) -> usize {
    let steps = total.div_ceil(n.max(1));
    let most_steps = (most / n.max(1)).max(1);
    let chunks = steps.div_ceil(most_steps).max(1);
    steps.div_ceil(chunks).saturating_mul(n.max(1))
}

/// A layer resolved to its position: `None` is the input.
#[derive(Clone, Debug)]
struct LayerRef {
    name: String,
    index: Option<usize>,
}

impl LayerRef {
    fn node(&self, chunk: &Chunk<'_, impl Float>) -> NodeId {
        self.index.map_or(chunk.input, |i| chunk.layers[i])
    }
}

fn resolve_layers<T: Float>(model: &Model<T>, sel: &LayerSelection) -> Result<Vec<LayerRef>> {
    let names = model.layer_names();
    match sel {
        LayerSelection::All => Ok(names
            .into_iter()
            .enumerate()
            .map(|(i, name)| LayerRef {
                name,
                index: Some(i),
            })
            .collect()),
        LayerSelection::Names(list) => list
            .iter()
            .map(|s| {
                if s == "input" {
                    return Ok(LayerRef {
                        name: s.clone(),
                        index: None,
                    });
                }
                match names.iter().position(|n| n == s) {
                    Some(i) => Ok(LayerRef {
                        name: s.clone(),
                        index: Some(i),
                    }),
                    None => bail!(
                        "--layer: no layer '{s}' (the model has layers 0..{} and 'input')",
                        names.len().saturating_sub(1)
                    ),
                }
            })
            .collect(),
    }
}

/// F(x) = output[target of the example] per example, computed without a tape.
pub fn target_outputs<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    targets: &[usize],
) -> Result<Vec<f64>> {
    let y = model.forward(x)?;
    let n = x.shape()[0];
    ensure!(
        targets.len() == n,
        "{} targets for {n} examples",
        targets.len()
    );
    ensure!(
        y.len() % n.max(1) == 0,
        "model output {:?} does not split into {n} examples",
        y.shape()
    );
    let k = y.len() / n.max(1);
    if let Some(&t) = targets.iter().find(|&&t| t >= k) {
        bail!("--target: index {t} out of range for {k} outputs");
    }
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, &t)| y.data()[i * k + t].to_f64())
        .collect())
}

/// Units per example of a node whose rows are `rows`.
fn units(t: &Tensor<impl Float>, rows: usize) -> usize {
    t.len() / rows.max(1)
}

/// Whether a layer's units carry exactly the conductance of the units feeding them (see
/// [`conductance_copies`]).
fn passes_conductance(spec: &LayerSpec) -> bool {
    matches!(
        spec,
        LayerSpec::ReLU
            | LayerSpec::Flatten { .. }
            | LayerSpec::Identity
            | LayerSpec::Dropout { .. }
    )
}

/// For tangent-form conductance: for each requested layer, the requested layer whose
/// accumulated conductance it equals bit for bit, so that it is copied instead of summed.
///
/// A ReLU's units carry exactly the conductance of the units feeding them: with the mask
/// m = relu'(z) ∈ {0, 1}, ∂F/∂z · dz/dα = (∂F/∂y·m)·t and ∂F/∂y · dy/dα = ∂F/∂y·(m·t), the
/// same f32 products (m is 0 or 1), so the same sums. Flatten, Identity and Dropout (the
/// identity at inference) pass units through unchanged. Other layers (LeakyReLU, whose
/// slope would round differently, pooling, …) are summed. (The equality assumes finite
/// adjoints and tangents; attribution refuses non-finite inputs.)
fn conductance_copies<T: Float>(
    model: &Model<T>,
    req: &Request,
    layers: &[LayerRef],
) -> Vec<Option<usize>> {
    let specs = &model.architecture().layers;
    layers
        .iter()
        .map(|l| {
            if req.method != Method::Conductance || req.form != ConductanceForm::Tangent {
                return None;
            }
            let i = l.index.filter(|&i| i > 0)?;
            if !passes_conductance(specs.get(i)?) {
                return None;
            }
            layers.iter().position(|p| p.index == Some(i - 1))
        })
        .collect()
}

/// For every row r of a chunk (example e, weight w):
/// acc[e·u + i] += w · a[r·u + i] · b[·] where b is indexed by row, or by example when
/// `b_per_example` (the path direction), or is 1 when `None`.
///
/// Each example's accumulator is cut into blocks summed on rayon's threads; every element
/// still adds its rows in row order, so the result does not depend on the thread count.
fn accumulate<T: Float>(
    acc: &mut [f64],
    rows: &[PathRow],
    a: &[T],
    b: Option<&[T]>,
    b_per_example: bool,
) {
    /// Units per parallel task, each summed over all its rows in one pass: big enough to
    /// amortise scheduling and give each row a long run of `a` and `b` to stream (64 KiB
    /// of accumulator stays in L2 meanwhile; passes over runs of 512 units ran the CIFAR
    /// bench model's conductance sums 10% slower), small enough to spread one example's
    /// layer over both threads.
    const BLOCK: usize = 1 << 13;
    let u = a.len() / rows.len().max(1);
    if u == 0 {
        return;
    }
    // The loops compiled for the CPU's widest vectors (the same sums, element by element).
    let add_block = |e: usize, first: usize, block: &mut [f64]| {
        vectorized(
            #[inline(always)]
            || add_rows(rows, a, b, b_per_example, u, e, first, block),
        )
    };
    if u * rows.len() < BLOCK {
        for (e, out) in acc.chunks_mut(u).enumerate() {
            add_block(e, 0, out);
        }
        return;
    }
    acc.par_chunks_mut(u).enumerate().for_each(|(e, example)| {
        example
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(blk, out)| add_block(e, blk * BLOCK, out));
    });
}

/// [`accumulate`]'s inner loop: adds example e's rows to `out`, the accumulator of units
/// `first..first + out.len()`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add_rows<T: Float>(
    rows: &[PathRow],
    a: &[T],
    b: Option<&[T]>,
    b_per_example: bool,
    u: usize,
    e: usize,
    first: usize,
    out: &mut [f64],
) {
    let units = first..first + out.len();
    for (r, row) in rows.iter().enumerate().filter(|(_, row)| row.example == e) {
        let w = row.weight;
        let av = &a[r * u..][units.clone()];
        match b {
            None => out
                .iter_mut()
                .zip(av)
                .for_each(|(o, &x)| *o += w * x.to_f64()),
            Some(b) => {
                let br = if b_per_example { e * u } else { r * u };
                let bv = &b[br..][units.clone()];
                for ((o, &x), &y) in out.iter_mut().zip(av).zip(bv) {
                    *o += w * x.to_f64() * y.to_f64();
                }
            }
        }
    }
}

/// The sums one sweep leaves: per requested layer, per neuron (neuron conductance), and
/// the rows it ran backward.
struct PartSums {
    accs: Vec<Vec<f64>>,
    neuron_accs: Vec<Vec<f64>>,
    evaluations: usize,
}

impl PartSums {
    /// Adds `other`'s sums to these, element by element.
    fn add(&mut self, other: &PartSums) {
        for (a, b) in self
            .accs
            .iter_mut()
            .chain(&mut self.neuron_accs)
            .zip(other.accs.iter().chain(&other.neuron_accs))
        {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
        self.evaluations += other.evaluations;
    }
}

/// Runs one attribution request on a batch `x` of shape [N, ...input_shape].
///
/// The request runs on a thread of rayon's pool (the calling thread waits), so that the
/// kernels' parallel loops start from a pool thread: called from outside the pool, each
/// parallel loop would wake both workers while the caller's serial work between loops
/// competes with their spinning for the cores (on this 2-core machine, about 30% slower
/// convolutions in the sweep; docs/benchmarks.md, stop 12).
///
/// With several examples and several pool threads, the examples are shared out and each
/// share runs its own sweep on its own thread, with its share of the chunk budget
/// (except under the exact rule): the kernels then run on one thread each instead of
/// splitting every op between threads and meeting after it (the digits CNN's
/// conductance at batch 4 ran 23% faster). Each example's sums see the same rows in the
/// same order, so the results are those of one sweep bit for bit
/// (`tests/attribution_pool.rs`).
///
/// Requests made from several threads at once share that pool: each waits for a pool
/// thread, and a pool thread waiting inside one request's kernel may run another whole
/// request before it resumes. Callers that want requests to proceed independently can
/// run each inside a pool of its own (`rayon::ThreadPool::install`); the request then
/// runs on that pool. The sweep's recycled buffers stay with the pool threads that ran it
/// ([`crate::buffers::release_everywhere`] frees them).
pub fn attribute<T: Float>(model: &Model<T>, x: &Tensor<T>, req: &Request) -> Result<Report> {
    rayon::scope(|_| attribute_here(model, x, req))
}

fn attribute_here<T: Float>(model: &Model<T>, x: &Tensor<T>, req: &Request) -> Result<Report> {
    // The sweep's tapes recycle their buffers chunk to chunk, and the next request that
    // runs on this pool thread reuses them (bounded; `buffers::release_everywhere` frees
    // them).
    ensure!(
        x.ndim() >= 1 && x.shape()[0] >= 1,
        "--input: empty batch {:?}",
        x.shape()
    );
    let n = x.shape()[0];
    if let Some(i) = model.batch_axes()?.iter().position(|&a| a != 0) {
        bail!(
            "layer {i} moves the batch axis away from the front; attribution needs examples along axis 0 in every layer"
        );
    }
    let baseline = req.baseline.resolve(x)?;
    for (what, t) in [("input", x), ("baseline", &baseline)] {
        if let Some(i) = t.first_non_finite() {
            let per = t.len() / n;
            bail!(
                "--{what}: element {} of example {} is {} (attributions need finite values)",
                i % per,
                i / per,
                t.data()[i]
            );
        }
    }
    let targets = match &req.targets {
        Some(t) => t.clone(),
        None => vec![req.target; n],
    };
    ensure!(
        targets.len() == n,
        "{} targets for {n} examples",
        targets.len()
    );
    let shapes = model.layer_shapes()?;
    // Checked here too, before the sweep (which runs beside the F(x), F(x') pass).
    let outputs_per_example: usize = shapes.last().map_or(x.len() / n, |s| s.iter().product());
    if let Some(&t) = targets.iter().find(|&&t| t >= outputs_per_example) {
        bail!("--target: index {t} out of range for {outputs_per_example} outputs");
    }
    // Several examples and threads: each share of the examples runs its own sweep on its
    // own thread (each example's sums see the same rows in the same order, so the results
    // are those of one sweep bit for bit), instead of every kernel splitting each op.
    let parts = rayon::current_num_threads().min(n);
    if parts >= 2 && req.exact.is_none() {
        let budget = AUTO_CHUNK_BYTES / parts;
        return attribute_split(model, x, &baseline, &targets, req, parts, budget);
    }
    // One example: its steps are summed in two halves run at once (`attribute_examples`).
    attribute_examples(model, x, &baseline, &targets, req, AUTO_CHUNK_BYTES, n == 1)
}

/// The request on examples `x` with their resolved baselines and targets (checked), with
/// a chunk budget of `chunk_bytes` of layer values; with `halves`, a uniform rule's
/// steps are summed in two halves run at once.
pub(super) fn attribute_examples<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    req: &Request,
    chunk_bytes: usize,
    halves: bool,
) -> Result<Report> {
    let n = x.shape()[0];
    let shapes = model.layer_shapes()?;
    let per_row: usize = shapes
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum::<usize>()
        + x.len() / n;
    let chunk_values = chunk_bytes / std::mem::size_of::<T>();
    // F(x) and F(x') in one forward pass of 2N rows (the input, then the baseline) when
    // that pass's layer values fit a chunk's budget; else in two passes of N rows.
    let outputs = || -> Result<(Vec<f64>, Vec<f64>)> {
        Ok(
            if per_row.saturating_mul(n.saturating_mul(2)) <= chunk_values {
                let both = Tensor::concat_rows(&[x, baseline])?;
                let both_targets: Vec<usize> = targets.iter().chain(targets).copied().collect();
                let mut out_x = target_outputs(model, &both, &both_targets)?;
                let out_b = out_x.split_off(n);
                (out_x, out_b)
            } else {
                (
                    target_outputs(model, x, targets)?,
                    target_outputs(model, baseline, targets)?,
                )
            },
        )
    };
    let layers = match req.method {
        Method::IntegratedGradients => vec![LayerRef {
            name: "input".into(),
            index: None,
        }],
        _ => resolve_layers(model, &req.layers)?,
    };
    let layer_shape = |l: &LayerRef| -> Vec<usize> {
        l.index
            .map_or_else(|| x.shape()[1..].to_vec(), |i| shapes[i].clone())
    };
    if req.method == Method::NeuronConductance {
        ensure!(
            layers.len() == 1,
            "--layer: neuron-conductance takes exactly one layer"
        );
        ensure!(
            !req.neurons.is_empty(),
            "--neuron: neuron-conductance needs at least one --neuron"
        );
        let shape = layer_shape(&layers[0]);
        for nr in &req.neurons {
            ensure!(
                nr.len() == shape.len() && nr.iter().zip(&shape).all(|(i, d)| i < d),
                "--neuron: index {nr:?} out of range for layer {} of shape {shape:?}",
                layers[0].name
            );
        }
    }
    let batch_steps = match req.batch_steps {
        0 => (chunk_values / (per_row.max(1) * n)).max(1),
        k => k,
    };
    let mut outputs_early = None;
    let mut pieces = None;
    let mut from_events: Option<PartSums> = None;
    let mut evaluations = 0usize;
    let rows = if let Some(mut opts) = req.exact {
        ensure!(
            req.method.uses_path(),
            "--rule exact: {} has no path integral; use it with integrated-gradients, conductance, neuron-conductance or internal-influence",
            req.method
        );
        ensure!(
            req.form == ConductanceForm::Tangent,
            "--conductance-form: the exact rule integrates each linear piece exactly; the difference form does not apply"
        );
        opts.chunk_rows = batch_steps.saturating_mul(n);
        let by_events = opts.events
            && matches!(
                req.method,
                Method::IntegratedGradients | Method::Conductance | Method::InternalInfluence
            );
        // The walk's piece search needs F(x) − F(x') first; the events do not, and run
        // beside the forward pass that finds them (for the report).
        let hidden = req.method == Method::Conductance;
        let (found, integrals) = rayon::join(outputs, || match by_events {
            true => super::events::integrate(model, x, baseline, targets, opts.max_pieces, hidden),
            false => Ok(None),
        });
        let (out_x, out_b) = found?;
        let integrals = integrals?;
        let change: Vec<f64> = out_x.iter().zip(&out_b).map(|(a, b)| a - b).collect();
        outputs_early = Some((out_x, out_b));
        if let Some(integrals) = integrals {
            // Boundary 0 is the input, boundary i + 1 the output of layer i.
            let accs = layers
                .iter()
                .map(|l| {
                    let mut b = l.index.map_or(0, |i| i + 1);
                    if req.method == Method::Conductance {
                        // Such a layer's conductance is read off the layer feeding it,
                        // as in the sweep (`conductance_copies`): the same number,
                        // summed once, whichever layers are requested.
                        let specs = &model.architecture().layers;
                        while b >= 2 && passes_conductance(&specs[b - 1]) {
                            b -= 1;
                        }
                    }
                    integrals
                        .iter()
                        .flat_map(|e| match req.method {
                            Method::InternalInfluence => e.influence[b].iter().copied(),
                            _ => e.conductance[b].iter().copied(),
                        })
                        .collect()
                })
                .collect();
            pieces = Some(integrals.iter().map(|e| e.pieces).collect());
            from_events = Some(PartSums {
                accs,
                neuron_accs: Vec::new(),
                // One pass down the network per stretch of path.
                evaluations: integrals.iter().map(|e| e.stretches).sum(),
            });
            Vec::new()
        } else {
            let found = exact_rows(model, x, baseline, targets, &change, &opts)?;
            evaluations += found.backward_rows;
            pieces = Some(found.pieces);
            found.rows
        }
    } else {
        let (alphas, weights) = match (req.method, req.form) {
            (Method::Activation | Method::GradientXActivation, _) => (vec![1.0], vec![1.0]),
            (Method::Conductance, ConductanceForm::Difference) => {
                let (a, _) = req.rule.nodes_weights(req.steps.saturating_add(1))?;
                let w = vec![0.0; a.len()];
                (a, w)
            }
            _ => req.rule.nodes_weights(req.steps)?,
        };
        uniform_rows(n, &alphas, &weights)
    };
    let opts_for = |part: &[PathRow], steps_per_chunk: usize| SweepOptions {
        tangents: req.method == Method::Conductance && req.form == ConductanceForm::Tangent,
        adjoints: req.method != Method::Activation,
        // Integrated gradients, neuron conductance (its extra backward passes end at the
        // input) and requests naming the input read ∂F/∂x; the others only hidden layers'.
        input_adjoint: matches!(
            req.method,
            Method::IntegratedGradients | Method::NeuronConductance
        ) || layers.iter().any(|l| l.index.is_none()),
        // Integrated gradients reads the input's adjoint alone; tangent conductance reads
        // a convolution's conductance off its ReLU (equal bit for bit: see
        // `conductance_copies`). The other methods read pre-activations.
        fuse_relu: req.method == Method::IntegratedGradients
            || (req.method == Method::Conductance && req.form == ConductanceForm::Tangent),
        chunk_rows: match req.batch_steps {
            0 => balanced_chunk_rows(part.len(), steps_per_chunk.saturating_mul(n), n),
            k => k.saturating_mul(n),
        },
    };
    let direction = x.zip_map(baseline, |a, b| a - b)?;
    let copied_from = conductance_copies(model, req, &layers);
    let neuron_flat: Vec<usize> = match req.method {
        Method::NeuronConductance => {
            let shape = layer_shape(&layers[0]);
            req.neurons
                .iter()
                .map(|nr| nr.iter().zip(&shape).fold(0, |acc, (&i, &d)| acc * d + i))
                .collect()
        }
        _ => Vec::new(),
    };

    // The sums over one run of rows, from a sweep of its own.
    let sweep_rows = |part: &[PathRow], steps_per_chunk: usize| -> Result<PartSums> {
        let mut accs: Vec<Vec<f64>> = layers
            .iter()
            .map(|l| vec![0.0; n * layer_shape(l).iter().product::<usize>()])
            .collect();
        let mut neuron_accs: Vec<Vec<f64>> = vec![vec![0.0; x.len()]; neuron_flat.len()];
        let mut evaluations = 0usize;
        // Difference form: per layer and example, the previous node's adjoint and value
        // (no other method reads them).
        let difference =
            req.method == Method::Conductance && req.form == ConductanceForm::Difference;
        let mut prev: Vec<PreviousNode<T>> = layers
            .iter()
            .filter(|_| difference)
            .map(|l| {
                let size = n * layer_shape(l).iter().product::<usize>();
                PreviousNode {
                    adjoint: vec![T::ZERO; size],
                    value: vec![T::ZERO; size],
                    seen: vec![false; n],
                }
            })
            .collect();
        let visit = |chunk: Chunk<'_, T>| -> Result<()> {
            let rows = chunk.rows;
            evaluations += rows.len();
            for (li, l) in layers.iter().enumerate() {
                let node = l.node(&chunk);
                let value = chunk.tape.value(node);
                let zero;
                let adj = match chunk.tape.adjoint(node) {
                    Some(a) => a,
                    None => {
                        zero = Tensor::zeros(value.shape());
                        &zero
                    }
                };
                let acc = &mut accs[li];
                match (req.method, req.form) {
                    (Method::IntegratedGradients, _) => {
                        accumulate(acc, rows, adj.data(), Some(direction.data()), true)
                    }
                    (Method::Conductance, ConductanceForm::Tangent) => {
                        if let (None, Some(t)) = (copied_from[li], chunk.tape.tangent(node)) {
                            accumulate(acc, rows, adj.data(), Some(t.data()), false)
                        }
                    }
                    (Method::Conductance, ConductanceForm::Difference) => {
                        let u = units(value, rows.len());
                        for (r, row) in rows.iter().enumerate() {
                            let e = row.example;
                            let (a_r, y_r) = (
                                &adj.data()[r * u..(r + 1) * u],
                                &value.data()[r * u..(r + 1) * u],
                            );
                            let p = &mut prev[li];
                            let (pa, py) = (
                                &mut p.adjoint[e * u..(e + 1) * u],
                                &mut p.value[e * u..(e + 1) * u],
                            );
                            if p.seen[e] {
                                let out = &mut acc[e * u..(e + 1) * u];
                                for (i, o) in out.iter_mut().enumerate() {
                                    *o += pa[i].to_f64() * (y_r[i].to_f64() - py[i].to_f64());
                                }
                            }
                            pa.copy_from_slice(a_r);
                            py.copy_from_slice(y_r);
                            p.seen[e] = true;
                        }
                    }
                    (Method::InternalInfluence, _) => {
                        accumulate(acc, rows, adj.data(), None, false)
                    }
                    (Method::Activation, _) => accumulate(acc, rows, value.data(), None, false),
                    (Method::GradientXActivation, _) => {
                        accumulate(acc, rows, value.data(), Some(adj.data()), false)
                    }
                    (Method::NeuronConductance, _) => {}
                }
            }
            if req.method == Method::NeuronConductance {
                let node = layers[0].node(&chunk);
                let value = chunk.tape.value(node);
                let u = units(value, rows.len());
                let adj = match chunk.tape.adjoint(node) {
                    Some(a) => a.clone(),
                    None => Tensor::zeros(value.shape()),
                };
                for (ni, &flat) in neuron_flat.iter().enumerate() {
                    let mut seed = Tensor::zeros(adj.shape());
                    for r in 0..rows.len() {
                        seed.data_mut()[r * u + flat] = adj.data()[r * u + flat];
                    }
                    chunk.tape.backward(node, seed)?;
                    evaluations += rows.len();
                    let g = match chunk.tape.adjoint(chunk.input) {
                        Some(g) => g.clone(),
                        None => Tensor::zeros(chunk.tape.value(chunk.input).shape()),
                    };
                    accumulate(
                        &mut neuron_accs[ni],
                        rows,
                        g.data(),
                        Some(direction.data()),
                        true,
                    );
                }
            }
            Ok(())
        };
        sweep(
            model,
            x,
            baseline,
            targets,
            part,
            opts_for(part, steps_per_chunk),
            visit,
        )?;
        Ok(PartSums {
            accs,
            neuron_accs,
            evaluations,
        })
    };
    // With `halves` (a request of one example, whatever the thread count, so that results
    // do not depend on it), a uniform rule's steps are summed in two halves, the second
    // added to the first at the end. The halves run at once, each with half the chunk
    // budget, which keeps both threads on whole ops instead of splitting each op between
    // them (paired runs: CIFAR conductance at batch 1 29.8 → 28.5 ms, integrated
    // gradients 19.0 → 18.1 ms; digits conductance 1.29 → 0.86 ms). The difference form
    // walks the steps in order and the exact rule's pieces are uneven: one sweep each.
    let halves = halves
        && req.exact.is_none()
        && req.form != ConductanceForm::Difference
        && rows.len() >= 2 * n;
    // The F(x), F(x') pass of a few rows runs beside the sweep: its small kernels leave
    // the threads idle between parallel loops, which the sweep's work fills.
    let (swept, outputs) = rayon::join(
        || -> Result<PartSums> {
            if let Some(sums) = from_events {
                return Ok(sums);
            }
            if !halves {
                return sweep_rows(&rows, batch_steps);
            }
            let first = rows.len() / n / 2 * n;
            let half_steps = (batch_steps / 2).max(1);
            let (a, b) = rayon::join(
                || sweep_rows(&rows[..first], half_steps),
                || sweep_rows(&rows[first..], half_steps),
            );
            let (mut a, b) = (a?, b?);
            a.add(&b);
            Ok(a)
        },
        || outputs_early.map_or_else(outputs, Ok),
    );
    let PartSums {
        mut accs,
        neuron_accs,
        evaluations: swept_evaluations,
    } = swept?;
    evaluations += swept_evaluations;
    let (out_x, out_b) = outputs?;
    let out_change: Vec<f64> = out_x.iter().zip(&out_b).map(|(a, b)| a - b).collect();

    // Fill the copied layers in model order, so that chains (conv → relu → flatten) work.
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|&li| layers[li].index);
    for li in order {
        if let Some(src) = copied_from[li] {
            accs[li] = accs[src].clone();
        }
    }

    let mut attributions = Vec::new();
    let mut delta = Vec::new();
    let deltas_for = |acc: &[f64]| -> Vec<f64> {
        let u = acc.len() / n;
        (0..n)
            .map(|e| acc[e * u..(e + 1) * u].iter().sum::<f64>() - out_change[e])
            .collect()
    };
    if req.method == Method::NeuronConductance {
        let several = neuron_flat.len() > 1;
        for (nr, acc) in req.neurons.iter().zip(neuron_accs) {
            let name = if several {
                let idx: Vec<String> = nr.iter().map(|i| i.to_string()).collect();
                format!("{}:{}", layers[0].name, idx.join(","))
            } else {
                layers[0].name.clone()
            };
            attributions.push((name, Tensor::new(x.shape().to_vec(), acc)?));
        }
    } else {
        for (l, acc) in layers.iter().zip(accs) {
            if matches!(
                req.method,
                Method::IntegratedGradients | Method::Conductance
            ) {
                delta.push((l.name.clone(), deltas_for(&acc)));
            }
            let mut shape = vec![n];
            shape.extend(layer_shape(l));
            attributions.push((l.name.clone(), Tensor::new(shape, acc)?));
        }
    }
    Ok(Report {
        method: req.method.name().into(),
        rule: if req.exact.is_some() {
            "exact".into()
        } else {
            req.rule.name().into()
        },
        steps: if req.method.uses_path() && req.exact.is_none() {
            req.steps
        } else {
            0
        },
        target: req.target,
        precision: T::NAME.into(),
        outputs_input: out_x,
        outputs_baseline: out_b,
        attributions,
        delta,
        pieces,
        gradient_evaluations: evaluations,
    })
}

#[cfg(test)]
mod tests {
    use super::balanced_chunk_rows;

    #[test]
    fn chunks_are_as_few_and_as_even_as_the_limit_allows() {
        // 50 steps of 4 examples, at most 19 steps (76 rows) a chunk: 3 chunks of 17 steps.
        assert_eq!(balanced_chunk_rows(200, 76, 4), 68);
        // Everything fits: one chunk.
        assert_eq!(balanced_chunk_rows(50, 79, 1), 50);
        // 50 steps, at most 39 a chunk: two of 25.
        assert_eq!(balanced_chunk_rows(200, 156, 4), 100);
        // A limit below one step still gives one step a chunk.
        assert_eq!(balanced_chunk_rows(12, 1, 3), 3);
        // Rows not a multiple of the examples (exact-rule rows): chunks still cover them.
        let c = balanced_chunk_rows(101, 40, 2);
        assert!(
            c <= 40 && 101usize.div_ceil(c) == 101usize.div_ceil(40),
            "{c}"
        );
    }
}
