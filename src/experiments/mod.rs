//! The paper's experiments (Dhamdhere, Sundararajan, Yan, "How Important Is a Neuron?",
//! ICLR 2019) as library calls: filter scores under each method, ablation
//! ([`ablate`]) and feature selection ([`select`]).
//!
//! A *filter* is a channel of a layer's output ([C, H, W] or [C, L]); its score under a
//! method is the method's attribution summed over the channel's positions. For a dense
//! layer ([F]) each unit is a filter.

pub mod ablate;
pub mod convergence;
pub mod logistic;
pub mod select;
pub mod stats;

use crate::attribution::{attribute, ExactOptions, LayerSelection, Method, Request, Rule};
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{ensure, Float, Result};

/// The four methods the paper compares, in its order.
pub const SCORE_METHODS: [Method; 4] = [
    Method::Conductance,
    Method::Activation,
    Method::GradientXActivation,
    Method::InternalInfluence,
];

/// How path methods (conductance, internal influence) integrate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathSettings {
    /// The quadrature rule (ignored when `exact`).
    pub rule: Rule,
    /// Steps of the rule.
    pub steps: usize,
    /// Use the exact rule instead.
    pub exact: bool,
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings {
            rule: Rule::GaussLegendre,
            steps: 50,
            exact: false,
        }
    }
}

/// The number of filters of a layer output shape (without batch) and positions per filter.
pub fn filter_layout(shape: &[usize]) -> Result<(usize, usize)> {
    ensure!(
        !shape.is_empty(),
        "the layer's output is a scalar: it has no filters to rank"
    );
    let c = shape[0];
    let per: usize = shape[1..].iter().product();
    ensure!(
        c >= 1 && per >= 1,
        "the layer's output {shape:?} has no filters to rank"
    );
    Ok((c, per))
}

/// Sums a [N, C, ...] attribution over each channel's positions: [N][C].
pub fn per_filter(t: &Tensor<f64>) -> Result<Vec<Vec<f64>>> {
    let n = t.shape()[0];
    let (c, per) = filter_layout(&t.shape()[1..])?;
    Ok((0..n)
        .map(|e| {
            (0..c)
                .map(|ch| {
                    t.data()[(e * c + ch) * per..(e * c + ch + 1) * per]
                        .iter()
                        .sum()
                })
                .collect()
        })
        .collect())
}

/// Each filter's score under `method` for each example of `x`, explaining output
/// `targets[e]` from a zero baseline: [N][C].
pub fn filter_scores<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    targets: &[usize],
    layer: usize,
    method: Method,
    path: &PathSettings,
) -> Result<Vec<Vec<f64>>> {
    let mut req = Request::new(method, targets.first().copied().unwrap_or(0));
    req.targets = Some(targets.to_vec());
    req.layers = LayerSelection::Names(vec![layer.to_string()]);
    req.rule = path.rule;
    req.steps = path.steps;
    // Keep each batched pass near 512 rows whatever the number of examples.
    req.batch_steps = (512 / x.shape()[0].max(1)).max(1);
    if path.exact && method.uses_path() {
        req.exact = Some(ExactOptions::default());
    }
    let report = attribute(model, x, &req)?;
    let t = report
        .get(&layer.to_string())
        .ok_or_else(|| crate::Error::new(format!("no attributions for layer {layer}")))?;
    per_filter(t)
}

/// Runs layers `from..` of the model on `h` (the output of layer `from − 1`).
pub fn run_from<T: Float>(model: &Model<T>, from: usize, h: &Tensor<T>) -> Result<Tensor<T>> {
    let mut cur = h.clone();
    for i in from..model.architecture().layers.len() {
        cur = model.layer_forward(i, &cur)?;
    }
    Ok(cur)
}

/// Runs layers `0..=last` of the model on `x`.
pub fn run_to<T: Float>(model: &Model<T>, last: usize, x: &Tensor<T>) -> Result<Tensor<T>> {
    let mut cur = x.clone();
    for i in 0..=last {
        cur = model.layer_forward(i, &cur)?;
    }
    Ok(cur)
}

/// The index of the largest value in each row of [N, K].
pub fn argmax_rows<T: Float>(y: &Tensor<T>) -> Vec<usize> {
    let n = y.shape()[0];
    let k = y.len() / n.max(1);
    (0..n)
        .map(|e| {
            let row = &y.data()[e * k..(e + 1) * k];
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Parses a layer name ("3") into its index, checking it exists.
pub fn parse_layer<T: Float>(model: &Model<T>, name: &str) -> Result<usize> {
    let n = model.architecture().layers.len();
    match name.parse::<usize>() {
        Ok(i) if i < n => Ok(i),
        _ => crate::bail!(
            "--layer: no layer '{name}' (the model has layers 0..{})",
            n.saturating_sub(1)
        ),
    }
}

/// Rows `idx` of a batch tensor [N, ...] as a new batch.
pub fn take_rows<T: Float>(x: &Tensor<T>, idx: &[usize]) -> Result<Tensor<T>> {
    let per = x.len() / x.shape()[0].max(1);
    let mut data = Vec::with_capacity(per * idx.len());
    for &i in idx {
        ensure!(i < x.shape()[0], "row {i} out of range for {:?}", x.shape());
        data.extend_from_slice(&x.data()[i * per..(i + 1) * per]);
    }
    let mut shape = x.shape().to_vec();
    shape[0] = idx.len();
    Tensor::new(shape, data)
}
