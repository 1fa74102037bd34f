//! Completeness error against step count for every quadrature rule, beside the exact rule:
//! |Σ IG − (F(x) − F(x'))| / |F(x) − F(x')|, worst over the examples.

use crate::attribution::{attribute, ExactOptions, Method, Request, Rule};
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{Float, Result};
use serde_json::{json, Value};
use std::time::Instant;

/// One rule's errors by step count.
#[derive(Clone, Debug)]
pub struct RuleCurve {
    /// The rule.
    pub rule: Rule,
    /// (steps, worst relative completeness error, seconds) per step count.
    pub points: Vec<(usize, f64, f64)>,
}

/// The study's result.
#[derive(Clone, Debug)]
pub struct Convergence {
    /// Per rule.
    pub curves: Vec<RuleCurve>,
    /// The exact rule's worst relative completeness error.
    pub exact_error: f64,
    /// The exact rule's time in seconds.
    pub exact_seconds: f64,
    /// The exact rule's pieces per example.
    pub exact_pieces: Vec<usize>,
    /// Gradient evaluations of the exact rule (rows run backward).
    pub exact_evaluations: usize,
}

fn worst_rel(delta: &[f64], outs_x: &[f64], outs_b: &[f64]) -> f64 {
    delta
        .iter()
        .zip(outs_x.iter().zip(outs_b))
        .map(|(d, (a, b))| d.abs() / (a - b).abs().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

impl Convergence {
    /// The fewest steps (among those tried) from which on `rule`'s error stays at most
    /// `tol` for every larger step count tried.
    pub fn steps_to_reach(&self, rule: Rule, tol: f64) -> Option<usize> {
        let c = self.curves.iter().find(|c| c.rule == rule)?;
        let last_bad = c.points.iter().rposition(|p| p.1 > tol);
        match last_bad {
            None => c.points.first().map(|p| p.0),
            Some(i) => c.points.get(i + 1).map(|p| p.0),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let curves: Vec<Value> = self
            .curves
            .iter()
            .map(|c| {
                json!({"rule": c.rule.name(),
                       "steps": c.points.iter().map(|p| p.0).collect::<Vec<_>>(),
                       "error": c.points.iter().map(|p| p.1).collect::<Vec<_>>(),
                       "seconds": c.points.iter().map(|p| p.2).collect::<Vec<_>>()})
            })
            .collect();
        json!({"curves": curves, "exact": {"error": self.exact_error, "seconds": self.exact_seconds,
               "pieces": self.exact_pieces, "gradient_evaluations": self.exact_evaluations}})
    }
}

/// Measures every rule at every step count of `steps` (skipping counts a rule refuses),
/// and the exact rule, on the examples `x` with baseline zero and per-example targets.
pub fn convergence<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    targets: &[usize],
    steps: &[usize],
    mut progress: impl FnMut(),
) -> Result<Convergence> {
    let mut req = Request::new(Method::IntegratedGradients, targets[0]);
    req.targets = Some(targets.to_vec());
    let mut curves = Vec::new();
    for rule in Rule::ALL {
        let mut points = Vec::new();
        for &n in steps {
            if n < rule.min_steps() {
                continue;
            }
            req.rule = rule;
            req.steps = n;
            req.batch_steps = n.min(64);
            let t0 = Instant::now();
            let r = attribute(model, x, &req)?;
            let secs = t0.elapsed().as_secs_f64();
            let d = r.delta_of("input").unwrap_or(&[]);
            points.push((n, worst_rel(d, &r.outputs_input, &r.outputs_baseline), secs));
            progress();
        }
        curves.push(RuleCurve { rule, points });
    }
    req.exact = Some(ExactOptions::default());
    req.batch_steps = 64;
    let t0 = Instant::now();
    let r = attribute(model, x, &req)?;
    let exact_seconds = t0.elapsed().as_secs_f64();
    progress();
    let d = r.delta_of("input").unwrap_or(&[]);
    Ok(Convergence {
        curves,
        exact_error: worst_rel(d, &r.outputs_input, &r.outputs_baseline),
        exact_seconds,
        exact_pieces: r.pieces.clone().unwrap_or_default(),
        exact_evaluations: r.gradient_evaluations,
    })
}
