//! One stretch of one example's path, integrated by events: the first pass at α₀, each
//! event's way up and down its cone, and the last pass at α₁.

use super::queue::Queue;
use super::stages::{Stage, Windows};
use super::state::{
    cum_below, pick, pick_u32, rectifier_cum, same_line, settle, Boundary, Dense, Event, Switches,
    Unit,
};
use crate::{bail, Result};
use std::cmp::Ordering;

/// A line whose value at α₁ is still on its side of the crossing by more than this much
/// of the size of its terms crosses after α₁ (the division would give at least α₁, with
/// a wide margin over its rounding), so it is not scheduled.
const CLEAR: f64 = 1.0 / (1u64 << 30) as f64;

/// One stretch [α₀, α₁] of one example's path, integrated by events.
pub(super) struct Walk<'a> {
    stages: &'a [Stage],
    bounds: Vec<Boundary>,
    switches: Vec<Option<Switches>>,
    queue: Queue,
    alpha0: f64,
    alpha1: f64,
    /// The current α.
    alpha: f64,
    target: usize,
    /// Events taken so far (the cone stamp).
    events: u32,
    /// The current event's change (Δa, Δs) at its switch's output; a unit of its cone
    /// changes by κ times this.
    change: [f64; 2],
    /// Whether conductance is flushed and returned past the input.
    hidden: bool,
    /// The last boundary whose lines events keep up to date: the output's when hidden
    /// conductance is asked for, else the last switch layer's input (nothing above it
    /// switches, so no line above it is read).
    lines_to: usize,
    /// Without hidden conductance: ∂F/∂y at the last switch layer's output (constant:
    /// nothing above it switches), from which C there is (α − α₀) times it.
    grad: Vec<f64>,
    /// Scratch for a linear layer's way up: (offset of Wᵀ's row, κ) per changed input.
    changed: Vec<(usize, f64)>,
    /// Scratch for the windows an event's cone reaches.
    changed_windows: Vec<u32>,
}

/// Outputs of a linear layer summed at once on the way up (sixteen running sums fit the
/// registers of any x86-64).
const BLOCK: usize = 8;

impl<'a> Walk<'a> {
    /// A walk of the stretch [α₀, α₁] towards output unit `target`, for boundaries of
    /// `sizes` units (the input's, then each stage's output); [`Self::start`] fills it.
    pub(super) fn new(
        stages: &'a [Stage],
        sizes: &[usize],
        target: usize,
        [alpha0, alpha1]: [f64; 2],
        hidden: bool,
    ) -> Self {
        Walk {
            stages,
            bounds: sizes.iter().map(|&n| Boundary::new(n)).collect(),
            switches: stages.iter().map(|_| None).collect(),
            queue: Queue::new([alpha0, alpha1]),
            alpha0,
            alpha1,
            alpha: alpha0,
            target,
            events: 0,
            change: [0.0; 2],
            changed: Vec::new(),
            changed_windows: Vec::new(),
            hidden,
            lines_to: if hidden {
                stages.len()
            } else {
                stages
                    .iter()
                    .rposition(|s| matches!(s, Stage::Rectifier { .. } | Stage::MaxPool(_)))
                    .unwrap_or(stages.len())
            },
            grad: Vec::new(),
        }
    }

    /// Every switch's state (rectifier side, window winner), to tell whether two stretches
    /// meet at a kink.
    pub(super) fn states(&self) -> Vec<u32> {
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

    /// Schedules unit (rectifier) or window (max pool) `u` of layer `stage` from the
    /// current values below it.
    fn schedule(&mut self, stage: usize, u: usize) {
        let below = &self.bounds[stage];
        let Some(sw) = self.switches[stage].as_mut() else {
            return;
        };
        let next = match &self.stages[stage] {
            Stage::Rectifier { .. } => {
                let unit = &below.u[u];
                rectifier_crossing(unit.a, unit.s, sw.on[u], self.alpha1).map(|t| (t, 0))
            }
            Stage::MaxPool(win) => window_crossing(win, below, sw.winner[u], u, self.alpha1),
            _ => None,
        };
        put(
            sw,
            &mut self.queue,
            [self.alpha, self.alpha1],
            stage,
            u,
            next,
        );
    }

    /// The earliest event (from the queue, or a scanned layer), removed; `None` when no
    /// switch changes before α₁.
    pub(super) fn next_event(&mut self) -> Option<Event> {
        let switches = &self.switches;
        let mut best = self.queue.peek(|e| {
            switches[e.stage as usize]
                .as_ref()
                .is_some_and(|s| s.version[e.unit as usize] == e.version)
        });
        let mut from_queue = best.is_some();
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
                // `Event`'s order is reversed: greater is earlier.
                if best.is_none_or(|b| ev > b) {
                    best = Some(ev);
                    from_queue = false;
                }
            }
        }
        if from_queue {
            self.queue.pop_found();
        }
        best
    }

    /// Values, slopes and switches at α₀, from the input's.
    pub(super) fn start(&mut self, x: &[f64], baseline: &[f64]) -> Result<()> {
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
                Stage::Conv(cv) if cv.forward_all(below, above) => {}
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
        // ∂F/∂y above the last boundary whose lines are kept, by the passes down the
        // (fixed) layers there.
        let top = self.stages.len();
        if self.lines_to < top {
            self.bounds[top].cum.fill(0.0);
            self.bounds[top].cum[self.target] = 1.0;
            for b in (self.lines_to + 1..top).rev() {
                let (lower, upper) = self.bounds.split_at_mut(b + 1);
                let (here, above) = (&mut lower[b], &upper[0]);
                let cum = &mut here.cum;
                let units = 0..cum.len();
                cum_below(&self.stages[b], None, above, units, |u, c| cum[u] = c);
            }
            self.grad = self.bounds[self.lines_to + 1].cum.clone();
        }
        // Every switch scheduled, a layer at a time.
        let span = [self.alpha, self.alpha1];
        for (i, stage) in self.stages.iter().enumerate() {
            let (below, queue) = (&self.bounds[i], &mut self.queue);
            let Some(sw) = self.switches[i].as_mut() else {
                continue;
            };
            match stage {
                Stage::Rectifier { .. } => {
                    for u in 0..sw.on.len() {
                        let unit = &below.u[u];
                        let next = rectifier_crossing(unit.a, unit.s, sw.on[u], self.alpha1);
                        put(sw, queue, span, i, u, next.map(|t| (t, 0)));
                    }
                }
                Stage::MaxPool(win) => {
                    for w in 0..sw.winner.len() {
                        let next = window_crossing(win, below, sw.winner[w], w, self.alpha1);
                        put(sw, queue, span, i, w, next);
                    }
                }
                _ => {}
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
        let [da, ds] = self.change;
        let (ma, ms) = (da.abs(), ds.abs());
        let hidden = self.hidden;
        // The flush and the new line of one unit of the cone, whose C is `c`.
        let apply = |unit: &mut Unit, c: f64| {
            let (k, k_mag) = (unit.k, unit.k_mag);
            if hidden {
                unit.cond += unit.s * (c - unit.flushed_at);
                unit.flushed_at = c;
            }
            // What cancels to rounding is zero (e.g. a unit whose inputs all switched
            // off): make it exactly zero, as a fresh forward pass computes it, so that
            // the kink conventions at zero apply.
            (unit.a, unit.mag_a) = settle(unit.a + k * da, unit.mag_a + k_mag * ma);
            (unit.s, unit.mag_s) = settle(unit.s + k * ds, unit.mag_s + k_mag * ms);
        };
        for b in (i + 1..=self.lines_to).rev() {
            let (lower, upper) = self.bounds.split_at_mut(b + 1);
            if b < top && b == self.lines_to {
                // C above the last switch layer, where its cone reads it.
                let (here, above) = (&lower[b], &mut upper[0]);
                let at = |w: usize| elapsed * self.grad[w];
                match &self.stages[b] {
                    Stage::MaxPool(win) => {
                        for &v in &here.cone {
                            let v = v as usize;
                            for &w in &win.of[win.of_start[v]..win.of_start[v + 1]] {
                                above.cum[w as usize] = at(w as usize);
                            }
                        }
                    }
                    _ => here
                        .cone
                        .iter()
                        .for_each(|&v| above.cum[v as usize] = at(v as usize)),
                }
            }
            let here = &mut lower[b];
            let above = upper.first();
            match (above, self.stages.get(b)) {
                (Some(above), Some(stage @ Stage::Rectifier { .. })) => {
                    // C, the new line and the rescheduling in one pass over the cone.
                    let sw = self.switches[b].as_mut().expect("rectifier state");
                    for &v in &here.cone {
                        let v = v as usize;
                        let c = rectifier_cum(stage, sw, &above.cum, v);
                        here.cum[v] = c;
                        let unit = &mut here.u[v];
                        apply(unit, c);
                        let next = rectifier_crossing(unit.a, unit.s, sw.on[v], self.alpha1);
                        let next = next.map(|t| (t, 0));
                        put(sw, &mut self.queue, [self.alpha, self.alpha1], b, v, next);
                    }
                    continue;
                }
                (Some(above), Some(stage)) => {
                    let Boundary { u, cone, cum, .. } = here;
                    cum_below(
                        stage,
                        self.switches[b].as_ref(),
                        above,
                        cone.iter().map(|&v| v as usize),
                        |v, c| {
                            cum[v] = c;
                            apply(&mut u[v], c);
                        },
                    );
                }
                _ => {
                    for &v in &here.cone {
                        let v = v as usize;
                        let c = if v == self.target { elapsed } else { 0.0 };
                        here.cum[v] = c;
                        apply(&mut here.u[v], c);
                    }
                }
            }
            // The windows reading this boundary (layer b's inputs) changed their lines.
            if let Some(Stage::MaxPool(win)) = self.stages.get(b) {
                // Each window once, however many of its candidates changed: listed
                // without a branch on whether it was seen, then rescheduled.
                let stamp = self.events;
                let sw = self.switches[b].as_mut().expect("max-pool state");
                let windows = &mut self.changed_windows;
                windows.resize(self.bounds[b].cone.len() * win.most, 0);
                let mut n = 0;
                for &v in &self.bounds[b].cone {
                    let v = v as usize;
                    for &w in &win.of[win.of_start[v]..win.of_start[v + 1]] {
                        let new = sw.seen[w as usize] != stamp;
                        sw.seen[w as usize] = stamp;
                        windows[n] = w;
                        n += usize::from(new);
                    }
                }
                let below = &self.bounds[b];
                for &w in &windows[..n] {
                    let w = w as usize;
                    let next = window_crossing(win, below, sw.winner[w], w, self.alpha1);
                    put(sw, &mut self.queue, [self.alpha, self.alpha1], b, w, next);
                }
            }
        }
    }

    /// Takes one event: updates the cone above it and the switch, and reschedules.
    pub(super) fn take(&mut self, ev: Event) {
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
        self.change = [da, ds];
        if i < self.lines_to {
            self.bounds[i + 1].add(stamp, u, 1.0);
        }
        // Up the network: each boundary's cone and changes from the one below.
        for j in i + 1..self.lines_to {
            let (lower, upper) = self.bounds.split_at_mut(j + 1);
            let (below, above) = (&lower[j], &mut upper[0]);
            match &self.stages[j] {
                Stage::Identity => {
                    for &v in &below.cone {
                        let v = v as usize;
                        above.add(stamp, v, below.u[v].k);
                    }
                }
                Stage::Linear { inp, out, wt, .. } => {
                    // Every output of a row an input changes joins the cone. The inputs
                    // of one row that changed (a run of the cone) are summed a block of
                    // outputs at a time in registers, each output in the cone's order.
                    let cone = &below.cone;
                    let mut start = 0;
                    while start < cone.len() {
                        let r = cone[start] as usize / inp;
                        // The run: the next inputs of the same row (rows may come back
                        // later in the cone; their units then join once, by the stamps).
                        let run = cone[start..]
                            .iter()
                            .take_while(|&&v| v as usize / inp == r)
                            .count();
                        let changed = &mut self.changed;
                        changed.clear();
                        changed.extend(cone[start..start + run].iter().map(|&v| {
                            let v = v as usize;
                            (v % inp * out, below.u[v].k)
                        }));
                        start += run;
                        let row = &mut above.u[r * out..(r + 1) * out];
                        let stamps = &mut above.stamp[r * out..(r + 1) * out];
                        if stamps[0] != stamp {
                            stamps.fill(stamp);
                            for unit in row.iter_mut() {
                                (unit.k, unit.k_mag) = (0.0, 0.0);
                            }
                            above
                                .cone
                                .extend((r * out..(r + 1) * out).map(|o| o as u32));
                        }
                        for (b, units) in row.chunks_mut(BLOCK).enumerate() {
                            let (mut k, mut k_mag) = ([0.0; BLOCK], [0.0; BLOCK]);
                            if units.len() == BLOCK {
                                for &(col, t) in changed.iter() {
                                    let w = &wt[col + b * BLOCK..col + (b + 1) * BLOCK];
                                    for l in 0..BLOCK {
                                        let p = w[l] * t;
                                        k[l] += p;
                                        k_mag[l] += p.abs();
                                    }
                                }
                            } else {
                                for &(col, t) in changed.iter() {
                                    let w = &wt[col + b * BLOCK..col + b * BLOCK + units.len()];
                                    for (l, &w) in w.iter().enumerate() {
                                        let p = w * t;
                                        k[l] += p;
                                        k_mag[l] += p.abs();
                                    }
                                }
                            }
                            for (l, unit) in units.iter_mut().enumerate() {
                                unit.k += k[l];
                                unit.k_mag += k_mag[l];
                            }
                        }
                    }
                }
                Stage::Conv(cv) => {
                    for &v in &below.cone {
                        let v = v as usize;
                        let t = below.u[v].k;
                        cv.for_each_output(v, |o, w| above.add(stamp, o, w * t));
                    }
                }
                Stage::Diagonal { scale, .. } => {
                    for &v in &below.cone {
                        let v = v as usize;
                        above.add(stamp, v, scale[v] * below.u[v].k);
                    }
                }
                Stage::Sparse {
                    start, rows, vals, ..
                } => {
                    for &v in &below.cone {
                        let v = v as usize;
                        for k in start[v]..start[v + 1] {
                            let w = vals[k];
                            above.add(stamp, rows[k] as usize, w * below.u[v].k);
                        }
                    }
                }
                stage @ Stage::Rectifier { .. } => {
                    // Unit v above is fed by unit v below alone, so it joins the (so far
                    // empty) cone here or not at all: appended without a branch on the
                    // unit's side, which is unpredictable.
                    let sw = self.switches[j].as_ref().expect("rectifier state");
                    above.cone.resize(below.cone.len(), 0);
                    let mut n = 0;
                    for &v in &below.cone {
                        let vu = v as usize;
                        let m = stage.slope(vu, sw.on[vu]);
                        let t = m * below.u[vu].k;
                        // Written either way: a unit that does not join keeps its old
                        // stamp, so nothing reads this κ.
                        (above.u[vu].k, above.u[vu].k_mag) = (t, t.abs());
                        let joins = m != 0.0;
                        above.stamp[vu] = pick_u32(joins, stamp, above.stamp[vu]);
                        above.cone[n] = v;
                        n += usize::from(joins);
                    }
                    above.cone.truncate(n);
                }
                Stage::MaxPool(win) => {
                    // A window joins the (so far empty) cone from its winner alone: appended
                    // without a branch on whether a unit wins, which is unpredictable.
                    let sw = self.switches[j].as_ref().expect("max-pool state");
                    above.cone.resize(below.cone.len() * win.most, 0);
                    let mut n = 0;
                    for &v in &below.cone {
                        let v = v as usize;
                        let t = below.u[v].k;
                        for &w in &win.of[win.of_start[v]..win.of_start[v + 1]] {
                            let w = w as usize;
                            let wins = sw.winner[w] as usize == v;
                            let unit = &mut above.u[w];
                            unit.k = pick(wins, t, unit.k);
                            unit.k_mag = pick(wins, t.abs(), unit.k_mag);
                            above.stamp[w] = pick_u32(wins, stamp, above.stamp[w]);
                            above.cone[n] = w as u32;
                            n += usize::from(wins);
                        }
                    }
                    above.cone.truncate(n);
                }
            }
        }
        // C on the cone, conductance flushed where s changes, the changes applied, and
        // the switches above rescheduled.
        self.update_cone(i);
        // The switch itself.
        let c_here = if i < self.lines_to {
            self.bounds[i + 1].cum[u]
        } else {
            (self.alpha - self.alpha0) * self.grad[u]
        };
        let sw = self.switches[i].as_mut().expect("switch state");
        let gained = c_here - sw.anchor[u];
        match &self.stages[i] {
            stage @ Stage::Rectifier { .. } => {
                sw.base[u] += stage.slope(u, sw.on[u]) * gained;
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

    /// C everywhere at α₁ and the last conductance flush; returns, per boundary, C(α₁)
    /// (the integral of ∂F/∂y over the stretch) and each unit's conductance.
    pub(super) fn finish(mut self) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
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
            if let Stage::Conv(cv) = &self.stages[b] {
                if cv.transpose_all(&above.cum, &mut here.cum) {
                    continue;
                }
            }
            let units = 0..here.cum.len();
            let cum = &mut here.cum;
            cum_below(
                &self.stages[b],
                self.switches[b].as_ref(),
                above,
                units,
                |u, c| cum[u] = c,
            );
        }
        let hidden = self.hidden;
        self.bounds
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let cond = if i == 0 || hidden {
                    b.u.iter()
                        .zip(&b.cum)
                        .map(|(unit, &c)| unit.cond + unit.s * (c - unit.flushed_at))
                        .collect()
                } else {
                    Vec::new()
                };
                (b.cum, cond)
            })
            .unzip()
    }
}

/// When a rectifier's input line a + s·α next crosses zero from its side (`on`: positive),
/// or `None` if it does not before α₁.
#[inline]
fn rectifier_crossing(a: f64, s: f64, on: bool, alpha1: f64) -> Option<f64> {
    // Most lines head away from zero, or do not reach it before α₁ (told by their value at
    // α₁, without the division): one test for both, on values computed without branches
    // (the side a unit is on is unpredictable).
    let heading = if on { s < 0.0 } else { s > 0.0 };
    let end = a + s * alpha1;
    let side = if on { end } else { -end };
    let clear = side > CLEAR * (a.abs() + s.abs() * alpha1);
    let still = on && a == 0.0 && s == 0.0;
    if !still & (!heading | clear) {
        return None;
    }
    Some(if still {
        // Zero all along the piece: the slope at 0 is the negative side's, as in the
        // ReLU op.
        f64::NEG_INFINITY
    } else {
        -a / s
    })
}

/// When max-pool window `u` (now won by input unit `p`) next changes its winner, and to
/// which unit, or `None` if it does not before α₁.
fn window_crossing(
    win: &Windows,
    below: &Boundary,
    p: u32,
    u: usize,
    alpha1: f64,
) -> Option<(f64, u32)> {
    let p = p as usize;
    let (ap, sp) = (below.u[p].a, below.u[p].s);
    let cands = &win.cand[win.start[u]..win.start[u + 1]];
    // Most windows have every other candidate still clearly below the winner at α₁: no
    // crossing in the stretch, and no tie (which needs the two lines within TIE of each
    // other, far inside CLEAR for α₁ ≥ 2⁻⁵; stretches end at ½ or 1). Told first, without
    // branches on which candidate is the winner.
    let clear = |c: u32| {
        let (ac, sc) = (below.u[c as usize].a, below.u[c as usize].s);
        let gap = (ap + sp * alpha1) - (ac + sc * alpha1);
        let size = ap.abs() + ac.abs() + (sp.abs() + sc.abs()) * alpha1;
        (gap > CLEAR * size) | (c as usize == p)
    };
    if cands.iter().fold(true, |all, &c| all & clear(c)) {
        return None;
    }
    let mut best: Option<(f64, f64, u32)> = None;
    for &c in cands {
        let (ac, sc) = (below.u[c as usize].a, below.u[c as usize].s);
        if clear(c) {
            continue;
        }
        let t = if same_line(ac, sc, ap, sp) {
            // An identical line earlier in the window wins the tie at once, as the first
            // maximum does in the max-pool kernel (candidates are in window order, so a
            // lower unit comes first).
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
    best.map(|(t, _, c)| (t, c))
}

/// Records switch `u` of layer `stage`'s next event (`None`: none before α₁), replacing
/// any earlier one: in the layer's own list if it is scanned, else on the queue (the old
/// entry goes stale by the version).
#[inline]
fn put(
    sw: &mut Switches,
    queue: &mut Queue,
    [alpha, alpha1]: [f64; 2],
    stage: usize,
    u: usize,
    next: Option<(f64, u32)>,
) {
    // Most reschedulings find no event, for a switch that had none: nothing to replace.
    if next.is_none() && sw.when[u] == f64::INFINITY {
        return;
    }
    sw.version[u] = sw.version[u].wrapping_add(1);
    let (when, to) = next.unwrap_or((f64::INFINITY, 0));
    let when = if when.is_nan() || when >= alpha1 {
        f64::INFINITY
    } else {
        when.max(alpha)
    };
    sw.when[u] = when;
    if sw.scanned {
        sw.to[u] = to;
    } else if when < alpha1 {
        queue.push(Event {
            alpha: when,
            stage: stage as u32,
            unit: u as u32,
            version: sw.version[u],
            to,
        });
    }
}
