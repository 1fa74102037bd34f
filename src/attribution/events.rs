//! Exact path integrals by events: `--rule exact` on chains of linear, convolution and
//! reshaping layers with ReLU, LeakyReLU and max pooling between them.
//!
//! Along the straight path every unit's value is affine in α between kinks: y(α) = a + s·α
//! on the current piece. A kink is an *event*: one rectifier's input crosses zero, or one
//! max-pool window changes its winner. Events are taken in order of α from a heap; each
//! one changes (a, s) only in its forward cone (the units above it that it feeds through
//! active rectifiers and winning candidates), so an event costs the size of that cone, not
//! a pass through the network. The walk of [`super::exact`] instead runs a forward and a
//! backward pass per piece.
//!
//! The adjoints G = ∂F/∂y are never stored. What is integrated is their running integral
//! C(α) = ∫_{α₀}^α G dα′, which is linear through linear layers (C_below = Jᵀ·C_above) and,
//! through a rectifier with slope m on the current piece, C_below = base + m·(C_above −
//! anchor), where `base` and `anchor` are updated only when that unit flips (max pooling
//! likewise per window). So C at any unit, at the current α, is a lookup through the units
//! above it; an event evaluates C only on its own cone. At the end, one pass down the
//! network gives C(1) everywhere:
//! - internal influence of a unit: C(1);
//! - conductance of a unit: ∫ G·s dα = Σ over the stretches where its slope s is constant
//!   of s·ΔC (flushed whenever an event changes s, and once at the end);
//! - integrated gradients: the input's conductance (its s is x − x').
//!
//! Everything is computed in f64 (weights cast once), whatever the model's precision.

use crate::nn::{LayerSpec, Model};
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::Float;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Per-example integrals from [`integrate`], for every layer boundary: index 0 is the
/// input, index i + 1 the output of model layer i.
#[derive(Clone, Debug)]
pub struct EventIntegrals {
    /// ∫ ∂F/∂y dα per unit (internal influence), per boundary.
    pub influence: Vec<Vec<f64>>,
    /// ∫ ∂F/∂y · dy/dα dα per unit (conductance; at the input, integrated gradients).
    pub conductance: Vec<Vec<f64>>,
    /// Linear pieces of the path.
    pub pieces: usize,
}

/// A convolution's geometry and weights, enough to list the outputs each input feeds.
struct Conv {
    in_plane: usize,
    in_w: usize,
    out_plane: usize,
    out_w: usize,
    in_per_group: usize,
    out_per_group: usize,
    kernel: usize,
    kw: usize,
    /// [out channel][in channel of the group][ky][kx].
    weight: Vec<f64>,
    /// Per output channel (zeros without a bias).
    bias: Vec<f64>,
    /// For each input row: the (kernel row, output row) pairs that read it.
    rows_of: Vec<Vec<(usize, usize)>>,
    /// For each input column: the (kernel column, output column) pairs that read it.
    cols_of: Vec<Vec<(usize, usize)>>,
}

impl Conv {
    /// Calls `f(output unit, weight)` for every output that input unit `u` feeds.
    #[inline]
    fn for_each_output(&self, u: usize, mut f: impl FnMut(usize, f64)) {
        let c = u / self.in_plane;
        let iy = u % self.in_plane / self.in_w;
        let ix = u % self.in_w;
        let group = c / self.in_per_group;
        let cl = c % self.in_per_group;
        for o in group * self.out_per_group..(group + 1) * self.out_per_group {
            let wbase = (o * self.in_per_group + cl) * self.kernel;
            let obase = o * self.out_plane;
            for &(ky, oy) in &self.rows_of[iy] {
                for &(kx, ox) in &self.cols_of[ix] {
                    f(
                        obase + oy * self.out_w + ox,
                        self.weight[wbase + ky * self.kw + kx],
                    );
                }
            }
        }
    }
}

/// For each input position along one axis: the (kernel index, output index) pairs with
/// out·stride − padding + k·dilation = in.
fn taps(
    len_in: usize,
    len_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Vec<Vec<(usize, usize)>> {
    let mut taps = vec![Vec::new(); len_in];
    for o in 0..len_out {
        for j in 0..k {
            let pos = (o * stride + j * dilation) as isize - padding as isize;
            if pos >= 0 && (pos as usize) < len_in {
                taps[pos as usize].push((j, o));
            }
        }
    }
    taps
}

/// Max-pool windows as lists of input units.
struct Windows {
    /// Window w's candidates are `cand[start[w]..start[w + 1]]`, in window order.
    start: Vec<usize>,
    cand: Vec<u32>,
    /// The windows containing input unit u are `of[of_start[u]..of_start[u + 1]]`.
    of_start: Vec<usize>,
    of: Vec<u32>,
}

/// One model layer as the integration sees it.
enum Stage {
    /// y = x (Flatten, Identity, Dropout at inference).
    Identity,
    /// y = x·Wᵀ + b over the last axis; `wt` is Wᵀ, [in][out].
    Linear {
        inp: usize,
        out: usize,
        wt: Vec<f64>,
        bias: Vec<f64>,
    },
    Conv(Conv),
    /// y = scale·x + shift, unit by unit (batch normalisation at inference).
    Diagonal {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    /// Any other linear layer, by its Jacobian's columns (found by probing the layer):
    /// input u feeds outputs `rows[start[u]..start[u + 1]]` with weights `vals[…]`.
    Sparse {
        start: Vec<usize>,
        rows: Vec<u32>,
        vals: Vec<f64>,
        bias: Vec<f64>,
    },
    /// y = x where x > 0, else the unit's negative slope times x: `slopes[0]` for every
    /// unit, or `slopes[u / per]` (PReLU, one per channel).
    Rectifier {
        slopes: Vec<f64>,
        per: usize,
    },
    MaxPool(Windows),
}

impl Stage {
    /// A rectifier's slope at unit `u` on its positive (`on`) or negative side.
    #[inline]
    fn slope(&self, u: usize, on: bool) -> f64 {
        match self {
            Stage::Rectifier { .. } if on => 1.0,
            Stage::Rectifier { slopes, per } => {
                if slopes.len() == 1 {
                    slopes[0]
                } else {
                    slopes[u / per]
                }
            }
            _ => 1.0,
        }
    }
}

impl Stage {
    fn piecewise(&self) -> bool {
        matches!(self, Stage::Rectifier { .. } | Stage::MaxPool(_))
    }
}

/// Largest number of units any layer boundary may have (unit indices are u32).
const MAX_UNITS: usize = u32::MAX as usize;

/// The model as stages, or `None` when a layer is not one the events handle.
fn stages<T: Float>(model: &Model<T>) -> Result<Option<Vec<Stage>>> {
    let specs = &model.architecture().layers;
    let shapes = model.layer_shapes()?;
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let in_shape: &[usize] = if i == 0 {
            model.input_shape()
        } else {
            &shapes[i - 1]
        };
        let out_shape = &shapes[i];
        let units = |s: &[usize]| s.iter().product::<usize>();
        if units(in_shape) > MAX_UNITS || units(out_shape) > MAX_UNITS {
            return Ok(None);
        }
        let param = |name: &str| -> Result<Vec<f64>> {
            let key = format!("{i}.{name}");
            match model.param(&key) {
                Some(t) => Ok(t.data().iter().map(|v| v.to_f64()).collect()),
                None => bail!("layer {i}: no parameter {key}"),
            }
        };
        let stage = match spec {
            LayerSpec::Flatten { .. } | LayerSpec::Identity | LayerSpec::Dropout { .. } => {
                Stage::Identity
            }
            LayerSpec::ReLU => Stage::Rectifier {
                slopes: vec![0.0],
                per: 1,
            },
            LayerSpec::LeakyReLU { negative_slope } => Stage::Rectifier {
                slopes: vec![*negative_slope],
                per: 1,
            },
            LayerSpec::PReLU { num_parameters, .. } => {
                let slopes = param("weight")?;
                let units_in = units(in_shape);
                let channels = in_shape.first().copied().unwrap_or(1);
                ensure!(
                    slopes.len() == *num_parameters
                        && (slopes.len() == 1 || (slopes.len() == channels && channels > 0)),
                    "layer {i}: {} PReLU slopes for input {in_shape:?}",
                    slopes.len()
                );
                Stage::Rectifier {
                    per: (units_in / slopes.len()).max(1),
                    slopes,
                }
            }
            LayerSpec::BatchNorm1d {
                num_features,
                eps,
                affine,
            }
            | LayerSpec::BatchNorm2d {
                num_features,
                eps,
                affine,
            } => {
                let (mean, var) = (param("running_mean")?, param("running_var")?);
                let c = *num_features;
                let (gamma, beta) = if *affine {
                    (param("weight")?, param("bias")?)
                } else {
                    (vec![1.0; c], vec![0.0; c])
                };
                let n = units(in_shape);
                ensure!(
                    c > 0
                        && [&mean, &var, &gamma, &beta].iter().all(|p| p.len() == c)
                        && in_shape.first() == Some(&c),
                    "layer {i}: batch norm of {c} features on input {in_shape:?}"
                );
                let per = n / c;
                let scale: Vec<f64> = (0..n)
                    .map(|u| gamma[u / per] / (var[u / per] + eps).sqrt())
                    .collect();
                let shift = (0..n)
                    .map(|u| beta[u / per] - mean[u / per] * scale[u])
                    .collect();
                Stage::Diagonal { scale, shift }
            }
            LayerSpec::AvgPool2d { .. }
            | LayerSpec::AdaptiveAvgPool2d { .. }
            | LayerSpec::Permute { .. } => match probe(model, i, units(in_shape))? {
                Some(stage) => stage,
                None => return Ok(None),
            },
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => {
                if *in_features == 0 || *out_features == 0 {
                    return Ok(None);
                }
                let w = param("weight")?;
                ensure!(
                    w.len() == in_features * out_features,
                    "layer {i}: weight of {} values for {in_features}→{out_features}",
                    w.len()
                );
                let mut wt = vec![0.0; w.len()];
                for o in 0..*out_features {
                    for k in 0..*in_features {
                        wt[k * out_features + o] = w[o * in_features + k];
                    }
                }
                Stage::Linear {
                    inp: *in_features,
                    out: *out_features,
                    wt,
                    bias: if *bias {
                        param("bias")?
                    } else {
                        vec![0.0; *out_features]
                    },
                }
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let ([h, w], [oh, ow]) = match (in_shape, out_shape.as_slice()) {
                    ([_, h, w], [_, oh, ow]) => ([*h, *w], [*oh, *ow]),
                    _ => return Ok(None),
                };
                Stage::Conv(conv(
                    [*in_channels, h, w],
                    [*out_channels, oh, ow],
                    *kernel_size,
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                    param("weight")?,
                    if *bias { Some(param("bias")?) } else { None },
                )?)
            }
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let (l, ol) = match (in_shape, out_shape.as_slice()) {
                    ([_, l], [_, ol]) => (*l, *ol),
                    _ => return Ok(None),
                };
                Stage::Conv(conv(
                    [*in_channels, 1, l],
                    [*out_channels, 1, ol],
                    [1, *kernel_size],
                    [1, *stride],
                    [0, *padding],
                    [1, *dilation],
                    *groups,
                    param("weight")?,
                    if *bias { Some(param("bias")?) } else { None },
                )?)
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => match (in_shape, out_shape.as_slice()) {
                ([c, h, w], [_, oh, ow]) => Stage::MaxPool(windows(
                    [*c, *h, *w],
                    [*oh, *ow],
                    *kernel_size,
                    *stride,
                    *padding,
                    *dilation,
                )),
                _ => return Ok(None),
            },
            LayerSpec::MaxPool1d {
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => match (in_shape, out_shape.as_slice()) {
                ([c, l], [_, ol]) => Stage::MaxPool(windows(
                    [*c, 1, *l],
                    [1, *ol],
                    [1, *kernel_size],
                    [1, *stride],
                    [0, *padding],
                    [1, *dilation],
                )),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        out.push(stage);
    }
    Ok(Some(out))
}

/// Largest Jacobian [`probe`] builds, in entries (inputs × (inputs + outputs)).
const MAX_PROBE: usize = 1 << 22;

/// Layer `i` (linear, with `units_in` inputs) as the columns of its Jacobian, found by
/// running it on the unit vectors and on zeros (the bias); `None` if it is too big to probe.
fn probe<T: Float>(model: &Model<T>, i: usize, units_in: usize) -> Result<Option<Stage>> {
    let shapes = model.layer_shapes()?;
    let units_out: usize = shapes[i].iter().product();
    if units_in.saturating_mul(units_in.saturating_add(units_out)) > MAX_PROBE {
        return Ok(None);
    }
    let in_shape = if i == 0 {
        model.input_shape().to_vec()
    } else {
        shapes[i - 1].clone()
    };
    let mut shape = vec![units_in + 1];
    shape.extend(&in_shape);
    let mut eye = vec![T::ZERO; (units_in + 1) * units_in];
    for u in 0..units_in {
        eye[(u + 1) * units_in + u] = T::ONE;
    }
    let y = model.layer_forward(i, &Tensor::new(shape, eye)?)?;
    let y = y.data();
    let bias: Vec<f64> = y[..units_out].iter().map(|v| v.to_f64()).collect();
    let (mut start, mut rows, mut vals) = (vec![0], Vec::new(), Vec::new());
    for u in 0..units_in {
        let col = &y[(u + 1) * units_out..(u + 2) * units_out];
        for (v, (&yv, &b)) in col.iter().zip(&bias).enumerate() {
            let w = yv.to_f64() - b;
            if w != 0.0 {
                rows.push(v as u32);
                vals.push(w);
            }
        }
        start.push(rows.len());
    }
    Ok(Some(Stage::Sparse {
        start,
        rows,
        vals,
        bias,
    }))
}

#[allow(clippy::too_many_arguments)]
fn conv(
    [c_in, h, w]: [usize; 3],
    [c_out, oh, ow]: [usize; 3],
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    weight: Vec<f64>,
    bias: Option<Vec<f64>>,
) -> Result<Conv> {
    ensure!(
        groups >= 1 && c_in % groups == 0 && c_out % groups == 0,
        "convolution: {groups} groups for {c_in} → {c_out} channels"
    );
    let in_per_group = c_in / groups;
    ensure!(
        weight.len() == c_out * in_per_group * kh * kw,
        "convolution: weight of {} values for {c_out}×{in_per_group}×{kh}×{kw}",
        weight.len()
    );
    let bias = bias.unwrap_or_else(|| vec![0.0; c_out]);
    ensure!(
        bias.len() == c_out,
        "convolution: bias of {} values",
        bias.len()
    );
    Ok(Conv {
        in_plane: h * w,
        in_w: w,
        out_plane: oh * ow,
        out_w: ow,
        in_per_group,
        out_per_group: c_out / groups,
        kernel: kh * kw,
        kw,
        weight,
        bias,
        rows_of: taps(h, oh, kh, stride[0], padding[0], dilation[0]),
        cols_of: taps(w, ow, kw, stride[1], padding[1], dilation[1]),
    })
}

fn windows(
    [c, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Windows {
    let mut start = vec![0];
    let mut cand = Vec::new();
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                for i in 0..kh {
                    let y = (oy * stride[0] + i * dilation[0]) as isize - padding[0] as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    for j in 0..kw {
                        let x = (ox * stride[1] + j * dilation[1]) as isize - padding[1] as isize;
                        if x < 0 || x >= w as isize {
                            continue;
                        }
                        cand.push(((ch * h + y as usize) * w + x as usize) as u32);
                    }
                }
                start.push(cand.len());
            }
        }
    }
    let mut counts = vec![0usize; c * h * w + 1];
    for &u in &cand {
        counts[u as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let of_start = counts.clone();
    let mut of = vec![0u32; cand.len()];
    let mut fill = counts;
    for win in 0..start.len() - 1 {
        for &u in &cand[start[win]..start[win + 1]] {
            of[fill[u as usize]] = win as u32;
            fill[u as usize] += 1;
        }
    }
    Windows {
        start,
        cand,
        of_start,
        of,
    }
}

/// Whether [`integrate`] handles this model (else the exact rule walks it).
pub fn supports<T: Float>(model: &Model<T>) -> Result<bool> {
    Ok(stages(model)?.is_some())
}

/// One unit's line, sums and scratch, together in memory (an event visits a few hundred
/// scattered units; with each field in an array of its own, every visit touched a dozen
/// cache lines).
#[derive(Clone, Copy)]
struct Unit {
    /// y = a + s·α on the current piece.
    a: f64,
    s: f64,
    /// Sums of the magnitudes of everything added into a and s since they were last
    /// exactly zero: their rounding is a few ε of these.
    mag_a: f64,
    mag_s: f64,
    /// Conductance flushed so far, and C where it was last flushed.
    cond: f64,
    flushed_at: f64,
    /// The current event's change of a and s, and the sums of their terms' magnitudes
    /// (valid when `stamp` is the event's).
    da: f64,
    ds: f64,
    ta: f64,
    ts: f64,
    stamp: u32,
}

/// The units of one layer boundary, the current event's cone there, and C.
struct Boundary {
    u: Vec<Unit>,
    /// The current event's cone: units whose line changes.
    cone: Vec<u32>,
    /// C (on the cone during an event; everywhere at the end).
    cum: Vec<f64>,
}

/// Values and slopes of one boundary, as plain arrays (for the first pass at α₀).
struct Dense {
    a: Vec<f64>,
    s: Vec<f64>,
    mag_a: Vec<f64>,
    mag_s: Vec<f64>,
}

impl Dense {
    fn new(units: usize) -> Self {
        Dense {
            a: vec![0.0; units],
            s: vec![0.0; units],
            mag_a: vec![0.0; units],
            mag_s: vec![0.0; units],
        }
    }
}

impl Boundary {
    fn new(units: usize) -> Self {
        let unit = Unit {
            a: 0.0,
            s: 0.0,
            mag_a: 0.0,
            mag_s: 0.0,
            cond: 0.0,
            flushed_at: 0.0,
            da: 0.0,
            ds: 0.0,
            ta: 0.0,
            ts: 0.0,
            stamp: u32::MAX,
        };
        Boundary {
            u: vec![unit; units],
            cone: Vec::new(),
            cum: vec![0.0; units],
        }
    }

    /// Adds (da, ds) to unit v's change in the current cone (`ev`), joining it if new.
    #[inline(always)]
    fn add(&mut self, ev: u32, v: usize, da: f64, ds: f64) {
        let unit = &mut self.u[v];
        if unit.stamp != ev {
            unit.stamp = ev;
            self.cone.push(v as u32);
            (unit.da, unit.ds, unit.ta, unit.ts) = (0.0, 0.0, 0.0, 0.0);
        }
        unit.da += da;
        unit.ds += ds;
        unit.ta += da.abs();
        unit.ts += ds.abs();
    }
}

/// The state of a rectifier or max-pool layer.
struct Switches {
    /// Rectifier: whether input unit u is on the positive side. Max pool: unused.
    on: Vec<bool>,
    /// Max pool: each window's winning input unit.
    winner: Vec<u32>,
    /// Per input unit: C below it at its last switch, less what `anchor` adds back.
    base: Vec<f64>,
    /// Per output unit: C above it at its last switch.
    anchor: Vec<f64>,
    /// Per output unit: the current event's version (older heap entries are stale).
    version: Vec<u32>,
    /// Small layers keep each unit's next event here and are scanned for the earliest,
    /// instead of going through the heap (their units are rescheduled by almost every
    /// event): α (∞ for none) and, for a window, the new winner.
    scanned: bool,
    when: Vec<f64>,
    to: Vec<u32>,
    /// Per output unit: the last event that rescheduled it.
    seen: Vec<u32>,
}

/// Layers of at most this many switches are [`Switches::scanned`].
const SCAN_MAX: usize = 256;

impl Switches {
    fn new(on: Vec<bool>, winner: Vec<u32>, inputs: usize, outputs: usize) -> Self {
        let scanned = outputs <= SCAN_MAX;
        Switches {
            on,
            winner,
            base: vec![0.0; inputs],
            anchor: vec![0.0; outputs],
            version: vec![0; outputs],
            scanned,
            when: if scanned {
                vec![f64::INFINITY; outputs]
            } else {
                Vec::new()
            },
            to: if scanned {
                vec![0; outputs]
            } else {
                Vec::new()
            },
            seen: vec![u32::MAX; outputs],
        }
    }
}

/// A scheduled kink: `unit` of layer `stage` switches at `alpha` (to `to`, for a window).
#[derive(Clone, Copy, Debug)]
struct Event {
    alpha: f64,
    stage: u32,
    unit: u32,
    version: u32,
    to: u32,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so that the heap pops the smallest α first (then the lowest layer).
    /// Events are scheduled at α ≥ 0 (never NaN), whose bit patterns order as the
    /// numbers do; the keys compare as two integers.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        let key = |e: &Event| {
            (
                e.alpha.to_bits(),
                (u64::from(e.stage) << 32) | u64::from(e.unit),
            )
        };
        key(other)
            .cmp(&key(self))
            .then(other.version.cmp(&self.version))
    }
}

/// One stretch [α₀, α₁] of one example's path, integrated by events.
struct Walk<'a> {
    stages: &'a [Stage],
    bounds: Vec<Boundary>,
    switches: Vec<Option<Switches>>,
    heap: BinaryHeap<Event>,
    alpha0: f64,
    alpha1: f64,
    /// The current α.
    alpha: f64,
    target: usize,
    /// Events taken so far (the cone stamp).
    events: u32,
}

impl Walk<'_> {
    /// Every switch's state (rectifier side, window winner), to tell whether two stretches
    /// meet at a kink.
    fn states(&self) -> Vec<u32> {
        self.switches
            .iter()
            .flatten()
            .flat_map(|sw| {
                sw.on
                    .iter()
                    .map(|&on| on as u32)
                    .chain(sw.winner.iter().copied())
            })
            .collect()
    }

    /// The current slope of rectifier unit `u` of layer `stage`.
    fn rectifier_slope(&self, stage: usize, u: usize) -> f64 {
        let on = self.switches[stage].as_ref().is_some_and(|sw| sw.on[u]);
        self.stages[stage].slope(u, on)
    }

    /// Schedules unit (rectifier) or window (max pool) `u` of layer `stage` from the
    /// current values below it.
    fn schedule(&mut self, stage: usize, u: usize) {
        let below = &self.bounds[stage];
        let Some(sw) = self.switches[stage].as_mut() else {
            return;
        };
        sw.version[u] = sw.version[u].wrapping_add(1);
        let version = sw.version[u];
        let next = || -> Option<(f64, u32)> {
            Some(match &self.stages[stage] {
                Stage::Rectifier { .. } => {
                    let (a, s) = (below.u[u].a, below.u[u].s);
                    if sw.on[u] && a == 0.0 && s == 0.0 {
                        // Zero all along the piece: the slope at 0 is the negative side's,
                        // as in the ReLU op.
                        (f64::NEG_INFINITY, 0)
                    } else if if sw.on[u] { s < 0.0 } else { s > 0.0 } {
                        (-a / s, 0)
                    } else {
                        return None;
                    }
                }
                Stage::MaxPool(win) => {
                    let p = sw.winner[u] as usize;
                    let (ap, sp) = (below.u[p].a, below.u[p].s);
                    let mut best: Option<(f64, f64, u32)> = None;
                    for &c in &win.cand[win.start[u]..win.start[u + 1]] {
                        let (ac, sc) = (below.u[c as usize].a, below.u[c as usize].s);
                        // An identical line earlier in the window wins the tie at once, as
                        // the first maximum does in the max-pool kernel (candidates are in
                        // window order, so a lower unit comes first).
                        let t = if c as usize == p {
                            continue;
                        } else if same_line(ac, sc, ap, sp) {
                            if (c as usize) < p {
                                f64::NEG_INFINITY
                            } else {
                                continue;
                            }
                        } else if sc.partial_cmp(&sp) == Some(Ordering::Greater) {
                            (ap - ac) / (sc - sp)
                        } else {
                            continue;
                        };
                        let better = match best {
                            None => true,
                            Some((bt, bs, _)) => t < bt || (t == bt && sc > bs),
                        };
                        if better {
                            best = Some((t, sc, c));
                        }
                    }
                    let (t, _, c) = best?;
                    (t, c)
                }
                _ => return None,
            })
        };
        let (when, to) = next().unwrap_or((f64::INFINITY, 0));
        let alpha = if when.is_nan() {
            f64::INFINITY
        } else {
            when.max(self.alpha)
        };
        if sw.scanned {
            sw.when[u] = alpha;
            sw.to[u] = to;
        } else if alpha < self.alpha1 {
            self.heap.push(Event {
                alpha,
                stage: stage as u32,
                unit: u as u32,
                version,
                to,
            });
        }
    }

    /// The earliest event (from the heap, or a scanned layer), removed; `None` when no
    /// switch changes before α₁.
    fn next_event(&mut self) -> Option<Event> {
        // Drop stale heap entries.
        while let Some(top) = self.heap.peek() {
            let current = self.switches[top.stage as usize]
                .as_ref()
                .is_some_and(|s| s.version[top.unit as usize] == top.version);
            if current {
                break;
            }
            self.heap.pop();
        }
        let mut best = self.heap.peek().copied();
        let mut from_heap = best.is_some();
        for (stage, sw) in self.switches.iter().enumerate() {
            let Some(sw) = sw.as_ref().filter(|sw| sw.scanned) else {
                continue;
            };
            for (u, &alpha) in sw.when.iter().enumerate() {
                if alpha >= self.alpha1 {
                    continue;
                }
                let ev = Event {
                    alpha,
                    stage: stage as u32,
                    unit: u as u32,
                    version: sw.version[u],
                    to: sw.to[u],
                };
                // `Event`'s order is reversed (for the max-heap): greater is earlier.
                if best.is_none_or(|b| ev > b) {
                    best = Some(ev);
                    from_heap = false;
                }
            }
        }
        if from_heap {
            self.heap.pop();
        }
        best
    }

    /// Values, slopes and switches at α₀, from the input's.
    fn start(&mut self, x: &[f64], baseline: &[f64]) -> Result<()> {
        let alpha0 = self.alpha0;
        let mut dense: Vec<Dense> = self.bounds.iter().map(|b| Dense::new(b.u.len())).collect();
        {
            let b0 = &mut dense[0];
            b0.a.copy_from_slice(baseline);
            for ((s, &xv), &bv) in b0.s.iter_mut().zip(x).zip(baseline) {
                *s = xv - bv;
            }
            for u in 0..b0.a.len() {
                (b0.mag_a[u], b0.mag_s[u]) = (b0.a[u].abs(), b0.s[u].abs());
            }
        }
        for (i, stage) in self.stages.iter().enumerate() {
            let (lower, upper) = dense.split_at_mut(i + 1);
            let (below, above) = (&lower[i], &mut upper[0]);
            match stage {
                Stage::Identity => {
                    above.a.copy_from_slice(&below.a);
                    above.s.copy_from_slice(&below.s);
                    above.mag_a.copy_from_slice(&below.mag_a);
                    above.mag_s.copy_from_slice(&below.mag_s);
                }
                Stage::Linear { inp, out, wt, bias } => {
                    for (r, (xa, xs)) in below
                        .mag_a
                        .chunks(*inp)
                        .zip(below.mag_s.chunks(*inp))
                        .enumerate()
                    {
                        let (ya, ys) = (
                            &mut above.mag_a[r * out..(r + 1) * out],
                            &mut above.mag_s[r * out..(r + 1) * out],
                        );
                        ya.iter_mut().zip(bias).for_each(|(y, b)| *y = b.abs());
                        ys.fill(0.0);
                        for k in 0..*inp {
                            let col = &wt[k * out..(k + 1) * out];
                            let (va, vs) = (xa[k], xs[k]);
                            for ((ya, ys), &w) in ya.iter_mut().zip(ys.iter_mut()).zip(col) {
                                *ya += w.abs() * va;
                                *ys += w.abs() * vs;
                            }
                        }
                    }
                    for (r, (xa, xs)) in below.a.chunks(*inp).zip(below.s.chunks(*inp)).enumerate()
                    {
                        let (ya, ys) = (
                            &mut above.a[r * out..(r + 1) * out],
                            &mut above.s[r * out..(r + 1) * out],
                        );
                        ya.copy_from_slice(bias);
                        ys.fill(0.0);
                        for k in 0..*inp {
                            let col = &wt[k * out..(k + 1) * out];
                            let (va, vs) = (xa[k], xs[k]);
                            for ((ya, ys), &w) in ya.iter_mut().zip(ys.iter_mut()).zip(col) {
                                *ya += w * va;
                                *ys += w * vs;
                            }
                        }
                    }
                }
                Stage::Conv(cv) => {
                    for (o, (ya, ys)) in above
                        .a
                        .chunks_mut(cv.out_plane)
                        .zip(above.s.chunks_mut(cv.out_plane))
                        .enumerate()
                    {
                        ya.fill(cv.bias[o]);
                        ys.fill(0.0);
                    }
                    for (o, m) in above.mag_a.chunks_mut(cv.out_plane).enumerate() {
                        m.fill(cv.bias[o].abs());
                    }
                    above.mag_s.fill(0.0);
                    for u in 0..below.a.len() {
                        let (va, vs) = (below.a[u], below.s[u]);
                        if va == 0.0 && vs == 0.0 {
                            continue;
                        }
                        let (ma, ms) = (below.mag_a[u], below.mag_s[u]);
                        cv.for_each_output(u, |v, w| {
                            above.a[v] += w * va;
                            above.s[v] += w * vs;
                            above.mag_a[v] += w.abs() * ma;
                            above.mag_s[v] += w.abs() * ms;
                        });
                    }
                }
                Stage::Diagonal { scale, shift } => {
                    for u in 0..below.a.len() {
                        above.a[u] = scale[u] * below.a[u] + shift[u];
                        above.s[u] = scale[u] * below.s[u];
                        above.mag_a[u] = scale[u].abs() * below.mag_a[u] + shift[u].abs();
                        above.mag_s[u] = scale[u].abs() * below.mag_s[u];
                    }
                }
                Stage::Sparse {
                    start,
                    rows,
                    vals,
                    bias,
                } => {
                    above.a.copy_from_slice(bias);
                    above.s.fill(0.0);
                    above
                        .mag_a
                        .iter_mut()
                        .zip(bias)
                        .for_each(|(m, b)| *m = b.abs());
                    above.mag_s.fill(0.0);
                    for u in 0..below.a.len() {
                        for k in start[u]..start[u + 1] {
                            let v = rows[k] as usize;
                            above.a[v] += vals[k] * below.a[u];
                            above.s[v] += vals[k] * below.s[u];
                            above.mag_a[v] += vals[k].abs() * below.mag_a[u];
                            above.mag_s[v] += vals[k].abs() * below.mag_s[u];
                        }
                    }
                }
                Stage::Rectifier { .. } => {
                    let mut on = vec![false; below.a.len()];
                    for (u, on) in on.iter_mut().enumerate() {
                        let (a, s) = (below.a[u], below.s[u]);
                        let v = a + s * alpha0;
                        *on = v > 0.0 || (v == 0.0 && s > 0.0);
                        let m = stage.slope(u, *on);
                        above.a[u] = m * a;
                        above.s[u] = m * s;
                        above.mag_a[u] = m.abs() * below.mag_a[u];
                        above.mag_s[u] = m.abs() * below.mag_s[u];
                    }
                    self.switches[i] =
                        Some(Switches::new(on, Vec::new(), below.a.len(), above.a.len()));
                }
                Stage::MaxPool(win) => {
                    let mut winner = vec![0u32; above.a.len()];
                    for (w, slot) in winner.iter_mut().enumerate() {
                        let cands = &win.cand[win.start[w]..win.start[w + 1]];
                        let mut best = cands[0] as usize;
                        for &c in &cands[1..] {
                            let c = c as usize;
                            let (vc, vb) = (
                                below.a[c] + below.s[c] * alpha0,
                                below.a[best] + below.s[best] * alpha0,
                            );
                            let tied =
                                same_line(below.a[c], below.s[c], below.a[best], below.s[best]);
                            if !tied && (vc > vb || (vc == vb && below.s[c] > below.s[best])) {
                                best = c;
                            }
                        }
                        *slot = best as u32;
                        above.a[w] = below.a[best];
                        above.s[w] = below.s[best];
                        above.mag_a[w] = below.mag_a[best];
                        above.mag_s[w] = below.mag_s[best];
                    }
                    self.switches[i] = Some(Switches::new(
                        Vec::new(),
                        winner,
                        below.a.len(),
                        above.a.len(),
                    ));
                }
            }
            if let Some(bad) = above
                .a
                .iter()
                .zip(&above.s)
                .position(|(a, s)| !a.is_finite() || !s.is_finite())
            {
                bail!("--rule exact: layer {i} is not finite at unit {bad}");
            }
        }
        for (b, d) in self.bounds.iter_mut().zip(&dense) {
            for (v, unit) in b.u.iter_mut().enumerate() {
                (unit.a, unit.s) = (d.a[v], d.s[v]);
                (unit.mag_a, unit.mag_s) = (d.mag_a[v], d.mag_s[v]);
            }
        }
        for i in 0..self.stages.len() {
            if self.stages[i].piecewise() {
                for u in 0..self.bounds[i + 1].u.len() {
                    self.schedule(i, u);
                }
            }
        }
        Ok(())
    }

    /// Down the cone of an event at layer `i`, boundary by boundary from the top: C at
    /// each unit of the cone (at the current α), the conductance flush and the unit's new
    /// line, then the switches reading that boundary rescheduled.
    fn update_cone(&mut self, i: usize) {
        let top = self.stages.len();
        let elapsed = self.alpha - self.alpha0;
        for b in (i + 1..=top).rev() {
            {
                let (lower, upper) = self.bounds.split_at_mut(b + 1);
                let here = &mut lower[b];
                let above = upper.first();
                let (stage, sw) = (self.stages.get(b), self.switches.get(b));
                for k in 0..here.cone.len() {
                    let v = here.cone[k] as usize;
                    let c = match (above, stage) {
                        (Some(above), Some(stage)) => {
                            cum_below(stage, sw.and_then(|s| s.as_ref()), above, v)
                        }
                        _ if v == self.target => elapsed,
                        _ => 0.0,
                    };
                    here.cum[v] = c;
                    let unit = &mut here.u[v];
                    unit.cond += unit.s * (c - unit.flushed_at);
                    unit.flushed_at = c;
                    // What cancels to rounding is zero (e.g. a unit whose inputs all
                    // switched off): make it exactly zero, as a fresh forward pass
                    // computes it, so that the kink conventions at zero apply.
                    (unit.a, unit.mag_a) = settle(unit.a + unit.da, unit.mag_a + unit.ta);
                    (unit.s, unit.mag_s) = settle(unit.s + unit.ds, unit.mag_s + unit.ts);
                }
            }
            // The switches reading this boundary (layer b's inputs) changed their lines.
            match self.stages.get(b) {
                Some(Stage::Rectifier { .. }) => {
                    for k in 0..self.bounds[b].cone.len() {
                        let v = self.bounds[b].cone[k] as usize;
                        self.schedule(b, v);
                    }
                }
                Some(Stage::MaxPool(win)) => {
                    // Each window once, however many of its candidates changed.
                    let stamp = self.events;
                    for k in 0..self.bounds[b].cone.len() {
                        let v = self.bounds[b].cone[k] as usize;
                        for &w in &win.of[win.of_start[v]..win.of_start[v + 1]] {
                            let w = w as usize;
                            let sw = self.switches[b].as_mut().expect("max-pool state");
                            if sw.seen[w] != stamp {
                                sw.seen[w] = stamp;
                                self.schedule(b, w);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Takes one event: updates the cone above it and the switch, and reschedules.
    fn take(&mut self, ev: Event) {
        let i = ev.stage as usize;
        let u = ev.unit as usize;
        self.alpha = ev.alpha;
        self.events = self.events.wrapping_add(1);
        let stamp = self.events;
        for b in &mut self.bounds[i + 1..] {
            b.cone.clear();
        }
        // The switch's own change at its output.
        let (da, ds) = {
            let below = &self.bounds[i];
            match &self.stages[i] {
                stage @ Stage::Rectifier { .. } => {
                    let on = self.switches[i].as_ref().is_some_and(|s| s.on[u]);
                    let dm = stage.slope(u, !on) - stage.slope(u, on);
                    (dm * below.u[u].a, dm * below.u[u].s)
                }
                _ => {
                    let p = self.switches[i].as_ref().map_or(0, |s| s.winner[u]) as usize;
                    let q = ev.to as usize;
                    (below.u[q].a - below.u[p].a, below.u[q].s - below.u[p].s)
                }
            }
        };
        self.bounds[i + 1].add(stamp, u, da, ds);
        // Up the network: each boundary's cone and changes from the one below.
        for j in i + 1..self.stages.len() {
            let (lower, upper) = self.bounds.split_at_mut(j + 1);
            let (below, above) = (&lower[j], &mut upper[0]);
            match &self.stages[j] {
                Stage::Identity => {
                    for &v in &below.cone {
                        let v = v as usize;
                        above.add(stamp, v, below.u[v].da, below.u[v].ds);
                    }
                }
                Stage::Linear { inp, out, wt, .. } => {
                    // Every output of a row an input changes joins the cone: add whole
                    // columns of Wᵀ at once.
                    for &v in &below.cone {
                        let r = v as usize / inp;
                        let row = &mut above.u[r * out..(r + 1) * out];
                        if row[0].stamp != stamp {
                            for (o, unit) in row.iter_mut().enumerate() {
                                unit.stamp = stamp;
                                (unit.da, unit.ds, unit.ta, unit.ts) = (0.0, 0.0, 0.0, 0.0);
                                above.cone.push((r * out + o) as u32);
                            }
                        }
                        let v = v as usize;
                        let (da, ds) = (below.u[v].da, below.u[v].ds);
                        let (ma, ms) = (da.abs(), ds.abs());
                        let col = &wt[v % inp * out..(v % inp + 1) * out];
                        for (unit, &w) in row.iter_mut().zip(col) {
                            unit.da += w * da;
                            unit.ds += w * ds;
                            unit.ta += w.abs() * ma;
                            unit.ts += w.abs() * ms;
                        }
                    }
                }
                Stage::Conv(cv) => {
                    for &v in &below.cone {
                        let v = v as usize;
                        let (da, ds) = (below.u[v].da, below.u[v].ds);
                        cv.for_each_output(v, |o, w| above.add(stamp, o, w * da, w * ds));
                    }
                }
                Stage::Diagonal { scale, .. } => {
                    for &v in &below.cone {
                        let v = v as usize;
                        above.add(stamp, v, scale[v] * below.u[v].da, scale[v] * below.u[v].ds);
                    }
                }
                Stage::Sparse {
                    start, rows, vals, ..
                } => {
                    for &v in &below.cone {
                        let v = v as usize;
                        for k in start[v]..start[v + 1] {
                            let w = vals[k];
                            above.add(
                                stamp,
                                rows[k] as usize,
                                w * below.u[v].da,
                                w * below.u[v].ds,
                            );
                        }
                    }
                }
                stage @ Stage::Rectifier { .. } => {
                    let sw = self.switches[j].as_ref().expect("rectifier state");
                    for &v in &below.cone {
                        let v = v as usize;
                        let m = stage.slope(v, sw.on[v]);
                        if m != 0.0 {
                            above.add(stamp, v, m * below.u[v].da, m * below.u[v].ds);
                        }
                    }
                }
                Stage::MaxPool(win) => {
                    let sw = self.switches[j].as_ref().expect("max-pool state");
                    for &v in &below.cone {
                        let v = v as usize;
                        for &w in &win.of[win.of_start[v]..win.of_start[v + 1]] {
                            if sw.winner[w as usize] as usize == v {
                                above.add(stamp, w as usize, below.u[v].da, below.u[v].ds);
                            }
                        }
                    }
                }
            }
        }
        // C on the cone, conductance flushed where s changes, the changes applied, and
        // the switches above rescheduled.
        self.update_cone(i);
        // The switch itself.
        let c_here = self.bounds[i + 1].cum[u];
        let slope = match &self.stages[i] {
            Stage::Rectifier { .. } => self.rectifier_slope(i, u),
            _ => 1.0,
        };
        let sw = self.switches[i].as_mut().expect("switch state");
        let gained = c_here - sw.anchor[u];
        match &self.stages[i] {
            Stage::Rectifier { .. } => {
                sw.base[u] += slope * gained;
                sw.on[u] = !sw.on[u];
            }
            _ => {
                let p = sw.winner[u] as usize;
                sw.base[p] += gained;
                sw.winner[u] = ev.to;
            }
        }
        sw.anchor[u] = c_here;
        // Reschedule this switch.
        self.schedule(i, u);
    }

    /// C everywhere at α₁, and the last conductance flush.
    fn finish(&mut self) {
        self.alpha = self.alpha1;
        let top = self.stages.len();
        let elapsed = self.alpha1 - self.alpha0;
        {
            let b = &mut self.bounds[top];
            b.cum.fill(0.0);
            b.cum[self.target] = elapsed;
        }
        for b in (0..top).rev() {
            let (lower, upper) = self.bounds.split_at_mut(b + 1);
            let (here, above) = (&mut lower[b], &upper[0]);
            let stage = &self.stages[b];
            let sw = self.switches[b].as_ref();
            match stage {
                Stage::Conv(cv) => {
                    // Dense: skip the per-unit closure overhead of `cum_below`.
                    for u in 0..here.cum.len() {
                        let mut acc = 0.0;
                        cv.for_each_output(u, |v, w| acc += w * above.cum[v]);
                        here.cum[u] = acc;
                    }
                }
                _ => {
                    for u in 0..here.cum.len() {
                        here.cum[u] = cum_below(stage, sw, above, u);
                    }
                }
            }
        }
        for b in &mut self.bounds {
            for v in 0..b.cum.len() {
                b.u[v].cond += b.u[v].s * (b.cum[v] - b.u[v].flushed_at);
                b.u[v].flushed_at = b.cum[v];
            }
        }
    }
}

/// `value`, the sum of terms of total magnitude `magnitude`, and that magnitude; both
/// zero when the value is within rounding of zero (16 ε of the magnitude).
#[inline]
fn settle(value: f64, magnitude: f64) -> (f64, f64) {
    if value.abs() <= 16.0 * f64::EPSILON * magnitude {
        (0.0, 0.0)
    } else {
        (value, magnitude)
    }
}

/// Relative difference below which two max-pool candidates' lines count as one line.
///
/// Lines that a forward pass computes equal (units fed the same way, e.g. two positions
/// whose inputs all switched off, left with the same bias) reach the events as sums of
/// different increments, equal only to rounding. Their tie goes to the first candidate, as
/// in the max-pool kernel; without this tolerance it would go to whichever rounding
/// favours, and tied candidates could swap back and forth at spurious kinks.
const TIE: f64 = 1.0 / (1u64 << 36) as f64;

/// Whether lines a₁ + s₁α and a₂ + s₂α are the same up to [`TIE`] of their size.
#[inline]
fn same_line(a1: f64, s1: f64, a2: f64, s2: f64) -> bool {
    let size = a1.abs().max(a2.abs()).max(s1.abs()).max(s2.abs());
    (a1 - a2).abs() <= TIE * size && (s1 - s2).abs() <= TIE * size
}

/// Σ aᵢbᵢ in four running sums (so that the loop vectorises).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// C at input unit `u` of `stage`, from C at the stage's outputs (`above.cum`, read only
/// where `u` feeds them).
#[inline]
fn cum_below(stage: &Stage, sw: Option<&Switches>, above: &Boundary, u: usize) -> f64 {
    match stage {
        Stage::Identity => above.cum[u],
        Stage::Linear { inp, out, wt, .. } => {
            let (r, k) = (u / inp, u % inp);
            dot(
                &wt[k * out..(k + 1) * out],
                &above.cum[r * out..(r + 1) * out],
            )
        }
        Stage::Conv(cv) => {
            let mut acc = 0.0;
            cv.for_each_output(u, |v, w| acc += w * above.cum[v]);
            acc
        }
        Stage::Diagonal { scale, .. } => scale[u] * above.cum[u],
        Stage::Sparse {
            start, rows, vals, ..
        } => (start[u]..start[u + 1])
            .map(|k| vals[k] * above.cum[rows[k] as usize])
            .sum(),
        Stage::Rectifier { .. } => {
            let sw = sw.expect("rectifier state");
            let m = stage.slope(u, sw.on[u]);
            if m == 0.0 {
                sw.base[u]
            } else {
                sw.base[u] + m * (above.cum[u] - sw.anchor[u])
            }
        }
        Stage::MaxPool(win) => {
            let sw = sw.expect("max-pool state");
            let mut c = sw.base[u];
            for &w in &win.of[win.of_start[u]..win.of_start[u + 1]] {
                let w = w as usize;
                if sw.winner[w] as usize == u {
                    c += above.cum[w] - sw.anchor[w];
                }
            }
            c
        }
    }
}

/// One stretch's integrals (influence and conductance per boundary), its kinks strictly
/// inside, and its switch states at its start and at its end.
type Stretch = (Vec<Vec<f64>>, Vec<Vec<f64>>, usize, [Vec<u32>; 2]);

/// Integrates one stretch [α₀, α₁] of one example's path.
#[allow(clippy::too_many_arguments)]
fn integrate_stretch(
    stages: &[Stage],
    sizes: &[usize],
    x: &[f64],
    baseline: &[f64],
    target: usize,
    [alpha0, alpha1]: [f64; 2],
    min_gap: f64,
    max_kinks: usize,
    example: usize,
) -> Result<Stretch> {
    let mut walk = Walk {
        stages,
        bounds: sizes.iter().map(|&n| Boundary::new(n)).collect(),
        switches: stages.iter().map(|_| None).collect(),
        heap: BinaryHeap::new(),
        alpha0,
        alpha1,
        alpha: alpha0,
        target,
        events: 0,
    };
    walk.start(x, baseline)?;
    let first_states = walk.states();
    let mut kinks = 0usize;
    let mut last = alpha0;
    while let Some(ev) = walk.next_event() {
        if ev.alpha - last > min_gap && alpha1 - ev.alpha > min_gap {
            kinks += 1;
            last = ev.alpha;
            if kinks > max_kinks {
                bail!(
                    "--max-pieces: example {example} has more than {} linear pieces; raise --max-pieces or use a quadrature rule",
                    max_kinks + 1
                );
            }
        }
        walk.take(ev);
    }
    let last_states = walk.states();
    walk.finish();
    let (influence, conductance) = walk
        .bounds
        .into_iter()
        .map(|b| {
            let cond = b.u.iter().map(|unit| unit.cond).collect();
            (b.cum, cond)
        })
        .unzip();
    Ok((influence, conductance, kinks, [first_states, last_states]))
}

/// Integrates each example's path by events (see the module documentation), or returns
/// `None` when the model has a layer the events do not handle. One example's path is
/// cut at α = ½ into two stretches integrated at once (always, so that the results do not
/// depend on the thread count).
pub fn integrate<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    max_pieces: usize,
) -> Result<Option<Vec<EventIntegrals>>> {
    use rayon::prelude::*;
    let Some(stages) = stages(model)? else {
        return Ok(None);
    };
    ensure!(max_pieces >= 1, "--max-pieces: must be at least 1");
    let n = x.shape()[0];
    let u = x.len() / n.max(1);
    let mut sizes = vec![u];
    for s in model.layer_shapes()? {
        sizes.push(s.iter().product());
    }
    let outputs = *sizes.last().unwrap_or(&u);
    ensure!(
        targets.len() == n,
        "{} targets for {n} examples",
        targets.len()
    );
    if let Some(&t) = targets.iter().find(|&&t| t >= outputs) {
        bail!("--target: index {t} out of range for {outputs} outputs");
    }
    let min_gap = T::epsilon().to_f64().sqrt() * 1e-4;
    let xs: Vec<f64> = x.data().iter().map(|v| v.to_f64()).collect();
    let bs: Vec<f64> = baseline.data().iter().map(|v| v.to_f64()).collect();
    let cuts: &[[f64; 2]] = if n == 1 {
        &[[0.0, 0.5], [0.5, 1.0]]
    } else {
        &[[0.0, 1.0]]
    };
    let tasks: Vec<(usize, [f64; 2])> = (0..n)
        .flat_map(|e| cuts.iter().map(move |&c| (e, c)))
        .collect();
    let done: Vec<Stretch> = tasks
        .par_iter()
        .map(|&(e, stretch)| {
            integrate_stretch(
                &stages,
                &sizes,
                &xs[e * u..(e + 1) * u],
                &bs[e * u..(e + 1) * u],
                targets[e],
                stretch,
                min_gap,
                max_pieces - 1,
                e,
            )
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(n);
    for per_example in done.chunks(cuts.len()) {
        let (first_inf, first_cond, first_kinks, _) = &per_example[0];
        let (mut influence, mut conductance, mut kinks) =
            (first_inf.clone(), first_cond.clone(), *first_kinks);
        // Stretches meeting where some switch changes meet at a kink.
        for pair in per_example.windows(2) {
            kinks += usize::from(pair[0].3[1] != pair[1].3[0]);
        }
        for (inf, cond, k, _) in &per_example[1..] {
            for (acc, add) in influence.iter_mut().zip(inf) {
                acc.iter_mut().zip(add).for_each(|(a, b)| *a += b);
            }
            for (acc, add) in conductance.iter_mut().zip(cond) {
                acc.iter_mut().zip(add).for_each(|(a, b)| *a += b);
            }
            kinks += k;
        }
        let e = out.len();
        ensure!(
            kinks < max_pieces,
            "--max-pieces: example {e} has {} linear pieces, more than {max_pieces}; raise --max-pieces or use a quadrature rule",
            kinks + 1
        );
        out.push(EventIntegrals {
            influence,
            conductance,
            pieces: kinks + 1,
        });
    }
    Ok(Some(out))
}
