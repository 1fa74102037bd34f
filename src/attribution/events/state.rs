//! Per-unit state of the integration by events: lines, sums and the current event's
//! scratch per layer boundary, switch states, scheduled events, and C through one layer.

use super::stages::Stage;
use std::cmp::Ordering;

/// One unit's line, sums and scratch, together in one cache line (an event visits a few
/// hundred scattered units; with each field in an array of its own, every visit touched
/// a dozen cache lines).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Unit {
    /// y = a + s·α on the current piece.
    pub(super) a: f64,
    pub(super) s: f64,
    /// Sums of the magnitudes of everything added into a and s since they were last
    /// exactly zero: their rounding is a few ε of these.
    pub(super) mag_a: f64,
    pub(super) mag_s: f64,
    /// Conductance flushed so far, and C where it was last flushed.
    pub(super) cond: f64,
    pub(super) flushed_at: f64,
    /// The current event's κ and the sum of the magnitudes of its terms (valid when the
    /// boundary's `stamp` for the unit is the event's).
    pub(super) k: f64,
    pub(super) k_mag: f64,
}

/// The units of one layer boundary, the current event's cone there, and C.
///
/// An event changes one switch's output by (Δa, Δs); everything above it is linear in that
/// change on the current piece, so each unit of the cone changes by κ·(Δa, Δs) for one
/// factor κ. The way up carries κ alone (one product per weight instead of two), with the
/// magnitude of its terms for the rounding.
pub(super) struct Boundary {
    pub(super) u: Vec<Unit>,
    /// Per unit: the last event whose cone it joined.
    pub(super) stamp: Vec<u32>,
    /// The current event's cone: units whose line changes.
    pub(super) cone: Vec<u32>,
    /// C (on the cone during an event; everywhere at the end).
    pub(super) cum: Vec<f64>,
}

/// Values and slopes of one boundary, as plain arrays (for the first pass at α₀).
pub(super) struct Dense {
    pub(super) a: Vec<f64>,
    pub(super) s: Vec<f64>,
    pub(super) mag_a: Vec<f64>,
    pub(super) mag_s: Vec<f64>,
}

impl Dense {
    pub(super) fn new(units: usize) -> Self {
        Dense {
            a: vec![0.0; units],
            s: vec![0.0; units],
            mag_a: vec![0.0; units],
            mag_s: vec![0.0; units],
        }
    }
}

impl Boundary {
    pub(super) fn new(units: usize) -> Self {
        let unit = Unit {
            a: 0.0,
            s: 0.0,
            mag_a: 0.0,
            mag_s: 0.0,
            cond: 0.0,
            flushed_at: 0.0,
            k: 0.0,
            k_mag: 0.0,
        };
        Boundary {
            u: vec![unit; units],
            stamp: vec![u32::MAX; units],
            cone: Vec::new(),
            cum: vec![0.0; units],
        }
    }

    /// Adds the term `t` to unit v's κ in the current cone (`ev`), joining it if new.
    #[inline(always)]
    pub(super) fn add(&mut self, ev: u32, v: usize, t: f64) {
        let unit = &mut self.u[v];
        if self.stamp[v] != ev {
            self.stamp[v] = ev;
            self.cone.push(v as u32);
            (unit.k, unit.k_mag) = (0.0, 0.0);
        }
        unit.k += t;
        unit.k_mag += t.abs();
    }
}

/// The state of a rectifier or max-pool layer.
pub(super) struct Switches {
    /// Rectifier: whether input unit u is on the positive side. Max pool: unused.
    pub(super) on: Vec<bool>,
    /// Max pool: each window's winning input unit.
    pub(super) winner: Vec<u32>,
    /// Per input unit: C below it at its last switch, less what `anchor` adds back.
    pub(super) base: Vec<f64>,
    /// Per output unit: C above it at its last switch.
    pub(super) anchor: Vec<f64>,
    /// Per output unit: the current event's version (older queued entries are stale).
    pub(super) version: Vec<u32>,
    /// Small layers keep each unit's next event here and are scanned for the earliest,
    /// instead of going through the queue (their units are rescheduled by almost every
    /// event): α (∞ for none) and, for a window, the new winner.
    pub(super) scanned: bool,
    /// Per output unit: α of its next event (∞ for none before α₁), in every layer.
    pub(super) when: Vec<f64>,
    pub(super) to: Vec<u32>,
    /// Per output unit: the last event that rescheduled it.
    pub(super) seen: Vec<u32>,
}

/// Layers of at most this many switches are [`Switches::scanned`].
pub(super) const SCAN_MAX: usize = 256;

impl Switches {
    pub(super) fn new(on: Vec<bool>, winner: Vec<u32>, inputs: usize, outputs: usize) -> Self {
        let scanned = outputs <= SCAN_MAX;
        Switches {
            on,
            winner,
            base: vec![0.0; inputs],
            anchor: vec![0.0; outputs],
            version: vec![0; outputs],
            scanned,
            when: vec![f64::INFINITY; outputs],
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
pub(super) struct Event {
    pub(super) alpha: f64,
    pub(super) stage: u32,
    pub(super) unit: u32,
    pub(super) version: u32,
    pub(super) to: u32,
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
    /// Reversed: the greatest event is the earliest (smallest α, then the lowest layer).
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

/// `value`, the sum of terms of total magnitude `magnitude`, and that magnitude; both
/// zero when the value is within rounding of zero (16 ε of the magnitude).
#[inline]
pub(super) fn settle(value: f64, magnitude: f64) -> (f64, f64) {
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
pub(super) const TIE: f64 = 1.0 / (1u64 << 36) as f64;

/// Whether lines a₁ + s₁α and a₂ + s₂α are the same up to [`TIE`] of their size.
#[inline]
pub(super) fn same_line(a1: f64, s1: f64, a2: f64, s2: f64) -> bool {
    let size = a1.abs().max(a2.abs()).max(s1.abs()).max(s2.abs());
    (a1 - a2).abs() <= TIE * size && (s1 - s2).abs() <= TIE * size
}

/// Σ aᵢbᵢ in four running sums (so that the loop vectorises).
#[inline]
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
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

/// `a` if `yes`, else `b`, chosen by a mask: for choices such as a unit's side or whether
/// it wins a window, which are unpredictable (the compiler may turn a plain `if` between
/// two values into a branch).
#[inline(always)]
pub(super) fn pick(yes: bool, a: f64, b: f64) -> f64 {
    let mask = u64::from(yes).wrapping_neg();
    f64::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// [`pick`] for stamps.
#[inline(always)]
pub(super) fn pick_u32(yes: bool, a: u32, b: u32) -> u32 {
    let mask = u32::from(yes).wrapping_neg();
    (a & mask) | (b & !mask)
}

/// C below unit `u` of rectifier `stage` (state `sw`) from C above it (`up`): its value
/// at the unit's last switch, plus the slope times what C above gained since.
#[inline(always)]
pub(super) fn rectifier_cum(stage: &Stage, sw: &Switches, up: &[f64], u: usize) -> f64 {
    let m = stage.slope(u, sw.on[u]);
    if m == 0.0 {
        sw.base[u]
    } else {
        sw.base[u] + m * (up[u] - sw.anchor[u])
    }
}

/// C at the input units `units` of `stage` (handed to `found` with the unit), from C at the stage's
/// outputs (`above.cum`, read only where those units feed them). The stage is matched
/// once, not per unit.
pub(super) fn cum_below(
    stage: &Stage,
    sw: Option<&Switches>,
    above: &Boundary,
    units: impl Iterator<Item = usize>,
    mut found: impl FnMut(usize, f64),
) {
    let up = &above.cum;
    match stage {
        Stage::Identity => units.for_each(|u| found(u, up[u])),
        Stage::Linear { inp, out, wt, .. } => {
            for u in units {
                let (r, k) = (u / inp, u % inp);
                found(
                    u,
                    dot(&wt[k * out..(k + 1) * out], &up[r * out..(r + 1) * out]),
                );
            }
        }
        Stage::Conv(cv) => {
            for u in units {
                let mut acc = 0.0;
                cv.for_each_output(u, |v, w| acc += w * up[v]);
                found(u, acc);
            }
        }
        Stage::Diagonal { scale, .. } => units.for_each(|u| found(u, scale[u] * up[u])),
        Stage::Sparse {
            start, rows, vals, ..
        } => {
            for u in units {
                found(
                    u,
                    (start[u]..start[u + 1])
                        .map(|k| vals[k] * up[rows[k] as usize])
                        .sum(),
                );
            }
        }
        Stage::Rectifier { .. } => {
            let sw = sw.expect("rectifier state");
            units.for_each(|u| found(u, rectifier_cum(stage, sw, up, u)));
        }
        Stage::MaxPool(win) => {
            let sw = sw.expect("max-pool state");
            for u in units {
                let mut c = sw.base[u];
                for &w in &win.of[win.of_start[u]..win.of_start[u + 1]] {
                    let w = w as usize;
                    let gained = up[w] - sw.anchor[w];
                    c += pick(sw.winner[w] as usize == u, gained, 0.0);
                }
                found(u, c);
            }
        }
    }
}
