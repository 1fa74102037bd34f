//! Exact path integrals by events: `--rule exact` on chains of linear, convolution and
//! reshaping layers with ReLU, LeakyReLU and max pooling between them.
//!
//! Along the straight path every unit's value is affine in α between kinks: y(α) = a + s·α
//! on the current piece. A kink is an *event*: one rectifier's input crosses zero, or one
//! max-pool window changes its winner. Events are taken in order of α from a queue; each
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

mod queue;
mod stages;
mod state;
mod walk;

use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::Float;
use stages::{stages, Stage};
use walk::Walk;

/// Per-example integrals from [`integrate`], for every layer boundary: index 0 is the
/// input, index i + 1 the output of model layer i.
#[derive(Clone, Debug)]
pub struct EventIntegrals {
    /// ∫ ∂F/∂y dα per unit (internal influence), per boundary.
    pub influence: Vec<Vec<f64>>,
    /// ∫ ∂F/∂y · dy/dα dα per unit (conductance; at the input, integrated gradients).
    /// Empty past the input unless [`integrate`] was asked for hidden conductance.
    pub conductance: Vec<Vec<f64>>,
    /// Linear pieces of the path.
    pub pieces: usize,
    /// Stretches the path was integrated in (each ends with one pass down the network).
    pub stretches: usize,
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
    hidden: bool,
) -> Result<Stretch> {
    let mut walk = Walk::new(stages, sizes, target, [alpha0, alpha1], hidden);
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
    let (influence, conductance) = walk.finish();
    Ok((influence, conductance, kinks, [first_states, last_states]))
}

/// Integrates each example's path by events (see the module documentation), or returns
/// `None` when the model has a layer the events do not handle. One example's path is
/// cut at α = ½ into two stretches integrated at once (always, so that the results do not
/// depend on the thread count). Conductance is integrated past the input only when
/// `hidden_conductance` asks for it (integrated gradients and internal influence do not
/// need it).
pub fn integrate<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    max_pieces: usize,
    hidden_conductance: bool,
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
                hidden_conductance,
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
            stretches: per_example.len(),
        });
    }
    Ok(Some(out))
}
