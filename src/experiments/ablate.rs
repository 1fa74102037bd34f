//! Ablation: how much does the target output fall when a filter is removed, and do the
//! methods' scores predict it?
//!
//! For each example, every filter of the layer is ablated in turn (its channel set to 0,
//! or to its value at the zero baseline) and the rest of the network re-run: the effect is
//! F(x) − F(x with the filter ablated). Per method: Spearman's rank correlation between
//! the method's filter scores and these effects (averaged over examples), and the top-k
//! curve: ablate the k highest-scored filters together (k = 1 … K) and record how often the
//! prediction flips and how far the target output falls.

use super::stats::{order_desc, spearman};
use super::{
    argmax_rows, filter_layout, filter_scores, run_from, run_to, PathSettings, SCORE_METHODS,
};
use crate::attribution::Method;
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{ensure, Float, Result};
use serde_json::{json, Value};

/// What an ablated filter is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AblateTo {
    /// Zero.
    Zero,
    /// Its value at the all-zero input (the baseline of the attributions).
    Baseline,
}

/// Which output is explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetChoice {
    /// The model's predicted class.
    Predicted,
    /// The true label.
    True,
}

/// One method's ablation figures.
#[derive(Clone, Debug)]
pub struct MethodAblation {
    /// The method.
    pub method: Method,
    /// Mean over examples of Spearman(scores, ablation effects) (examples with constant
    /// scores or effects are skipped).
    pub spearman: f64,
    /// How many examples had a defined correlation.
    pub spearman_examples: usize,
    /// By k = 1 … K: the fraction of examples whose prediction changes.
    pub flip_rate: Vec<f64>,
    /// By k: the mean fall of the target output.
    pub output_drop: Vec<f64>,
}

/// The result of [`ablate`].
#[derive(Clone, Debug)]
pub struct Ablation {
    /// The layer's index.
    pub layer: usize,
    /// The number of examples.
    pub examples: usize,
    /// The number of filters of the layer.
    pub filters: usize,
    /// Per method, in [`SCORE_METHODS`] order.
    pub methods: Vec<MethodAblation>,
}

impl Ablation {
    /// The JSON document of `mho ablate`.
    pub fn to_json(&self, target: TargetChoice, to: AblateTo) -> Value {
        let mut methods = serde_json::Map::new();
        for m in &self.methods {
            methods.insert(
                m.method.name().into(),
                json!({"spearman": m.spearman, "spearman_examples": m.spearman_examples,
                       "flip_rate": m.flip_rate, "output_drop": m.output_drop}),
            );
        }
        json!({
            "layer": self.layer.to_string(),
            "examples": self.examples,
            "filters": self.filters,
            "target": match target { TargetChoice::Predicted => "predicted", TargetChoice::True => "true" },
            "ablate_to": match to { AblateTo::Zero => "zero", AblateTo::Baseline => "baseline" },
            "methods": methods,
        })
    }
}

/// Replaces the given channels of one example's layer output.
fn ablated(h: &[impl Float], per: usize, channels: &[usize], fill: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = h.iter().map(|a| a.to_f64()).collect();
    for &c in channels {
        v[c * per..(c + 1) * per].copy_from_slice(&fill[c * per..(c + 1) * per]);
    }
    v
}

/// Runs the ablation study of `layer` on the examples `x` with labels `labels`.
#[allow(clippy::too_many_arguments)]
pub fn ablate<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    labels: &[usize],
    layer: usize,
    target: TargetChoice,
    to: AblateTo,
    max_k: usize,
    path: &PathSettings,
) -> Result<Ablation> {
    let n = x.shape()[0];
    ensure!(
        n >= 1 && labels.len() == n,
        "ablate: {n} examples, {} labels",
        labels.len()
    );
    let shape = model.layer_shapes()?[layer].clone();
    let (filters, per) = filter_layout(&shape)?;
    ensure!(
        max_k <= filters,
        "--max-k: {max_k} is larger than layer {layer}'s {filters} filters"
    );
    let h = run_to(model, layer, x)?;
    let logits = run_from(model, layer + 1, &h)?;
    let k_out = logits.len() / n;
    let predicted = argmax_rows(&logits);
    let targets: Vec<usize> = match target {
        TargetChoice::Predicted => predicted.clone(),
        TargetChoice::True => labels.to_vec(),
    };
    let base_out: Vec<f64> = (0..n)
        .map(|e| logits.data()[e * k_out + targets[e]].to_f64())
        .collect();
    let fill: Vec<f64> = match to {
        AblateTo::Zero => vec![0.0; filters * per],
        AblateTo::Baseline => {
            let mut zshape = x.shape().to_vec();
            zshape[0] = 1;
            run_to(model, layer, &Tensor::zeros(&zshape))?
                .data()
                .iter()
                .map(|v| v.to_f64())
                .collect()
        }
    };
    let hsz = filters * per;
    let run_rows = |rows: Vec<f64>, count: usize| -> Result<Tensor<T>> {
        let mut s = vec![count];
        s.extend_from_slice(&shape);
        run_from(
            model,
            layer + 1,
            &Tensor::new(s, rows.into_iter().map(T::from_f64).collect())?,
        )
    };
    // Single-filter ablation effects, [n][filters].
    let mut effects = vec![vec![0.0; filters]; n];
    for e in 0..n {
        let he = &h.data()[e * hsz..(e + 1) * hsz];
        let mut rows = Vec::with_capacity(filters * hsz);
        for c in 0..filters {
            rows.extend(ablated(he, per, &[c], &fill));
        }
        let out = run_rows(rows, filters)?;
        for (c, effect) in effects[e].iter_mut().enumerate() {
            *effect = base_out[e] - out.data()[c * k_out + targets[e]].to_f64();
        }
    }
    let mut methods = Vec::new();
    for method in SCORE_METHODS {
        let scores = filter_scores(model, x, &targets, layer, method, path)?;
        let mut rho_sum = 0.0;
        let mut rho_n = 0;
        let mut flips = vec![0usize; max_k];
        let mut drops = vec![0.0; max_k];
        for e in 0..n {
            if let Some(r) = spearman(&scores[e], &effects[e]) {
                rho_sum += r;
                rho_n += 1;
            }
            let order = order_desc(&scores[e]);
            let he = &h.data()[e * hsz..(e + 1) * hsz];
            let mut rows = Vec::with_capacity(max_k * hsz);
            for k in 1..=max_k {
                rows.extend(ablated(he, per, &order[..k], &fill));
            }
            let out = run_rows(rows, max_k)?;
            let arg = argmax_rows(&out);
            for k in 0..max_k {
                if arg[k] != predicted[e] {
                    flips[k] += 1;
                }
                drops[k] += base_out[e] - out.data()[k * k_out + targets[e]].to_f64();
            }
        }
        methods.push(MethodAblation {
            method,
            spearman: if rho_n > 0 {
                rho_sum / rho_n as f64
            } else {
                f64::NAN
            },
            spearman_examples: rho_n,
            flip_rate: flips.iter().map(|&f| f as f64 / n as f64).collect(),
            output_drop: drops.iter().map(|d| d / n as f64).collect(),
        });
    }
    Ok(Ablation {
        layer,
        examples: n,
        filters,
        methods,
    })
}
