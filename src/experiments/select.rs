//! Feature selection (the paper's section 5.2): rank a layer's filters by each method's
//! score averaged over training examples of a positive group of classes, keep the top k,
//! and train a logistic regression on those filters' spatially pooled activations to tell
//! the group from the rest. Better rankings give better held-out accuracy with few filters.

use super::logistic::Logistic;
use super::stats::order_desc;
use super::{filter_layout, filter_scores, run_to, take_rows, PathSettings, SCORE_METHODS};
use crate::attribution::Method;
use crate::data::Dataset;
use crate::nn::rng::Rng;
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{bail, ensure, Float, Result};
use serde_json::{json, Value};

/// The binary task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// These classes against the rest.
    Group(Vec<usize>),
    /// A random half of the classes against the rest, drawn anew for each repeat.
    Random,
}

/// Settings of one feature-selection study.
#[derive(Clone, Debug)]
pub struct SelectConfig {
    /// The layer whose filters are ranked.
    pub layer: usize,
    /// The task.
    pub task: Task,
    /// How many partitions to average over (random tasks).
    pub repeats: usize,
    /// The filter counts to try.
    pub ks: Vec<usize>,
    /// At most this many positive training examples are used to score filters.
    pub score_examples: usize,
    /// Seed for partitions and the choice of scoring examples.
    pub seed: u64,
    /// How path methods integrate.
    pub path: PathSettings,
}

/// The result: per method, held-out accuracy by k (averaged over repeats).
#[derive(Clone, Debug)]
pub struct Selection {
    /// The task's description ("group:5,7,9" or "random").
    pub task: String,
    /// The layer.
    pub layer: usize,
    /// The filter counts.
    pub ks: Vec<usize>,
    /// Per method (in [`SCORE_METHODS`] order): accuracy by k.
    pub accuracy: Vec<(Method, Vec<f64>)>,
    /// The positive groups used, one per repeat.
    pub groups: Vec<Vec<usize>>,
    /// The fraction of held-out examples in the majority class, per repeat (the accuracy
    /// of always answering the majority).
    pub majority: Vec<f64>,
}

impl Selection {
    /// The JSON document of `mho select`.
    pub fn to_json(&self) -> Value {
        let mut acc = serde_json::Map::new();
        for (m, a) in &self.accuracy {
            acc.insert(m.name().into(), json!(a));
        }
        json!({"task": self.task, "layer": self.layer.to_string(), "k": self.ks,
               "accuracy": acc, "groups": self.groups, "majority_baseline": self.majority})
    }
}

/// Each example's filters' mean activation over positions: [n][filters].
fn pooled<T: Float>(model: &Model<T>, layer: usize, x: &Tensor<f32>) -> Result<Vec<Vec<f64>>> {
    let n = x.shape()[0];
    let mut out = Vec::with_capacity(n);
    let batch = 256;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let xb: Tensor<T> = take_rows(x, &idx)?.cast();
        let h = run_to(model, layer, &xb)?;
        let (c, per) = filter_layout(&h.shape()[1..])?;
        for e in 0..end - start {
            out.push(
                (0..c)
                    .map(|ch| {
                        let s = &h.data()[(e * c + ch) * per..(e * c + ch + 1) * per];
                        s.iter().map(|v| v.to_f64()).sum::<f64>() / per as f64
                    })
                    .collect(),
            );
        }
        start = end;
    }
    Ok(out)
}

/// Runs the study on a dataset.
pub fn select<T: Float>(model: &Model<T>, data: &Dataset, cfg: &SelectConfig) -> Result<Selection> {
    let shape = model.layer_shapes()?[cfg.layer].clone();
    let (filters, _) = filter_layout(&shape)?;
    ensure!(!cfg.ks.is_empty(), "--k: no filter counts");
    if let Some(&k) = cfg.ks.iter().find(|&&k| k == 0 || k > filters) {
        bail!(
            "--k: {k} filters asked for, layer {} has {filters}",
            cfg.layer
        );
    }
    ensure!(cfg.repeats >= 1, "--repeats: must be at least 1");
    if let Task::Group(g) = &cfg.task {
        if let Some(&c) = g.iter().find(|&&c| c >= data.classes) {
            bail!(
                "--task: class {c} is not in {} (classes 0..{})",
                data.name,
                data.classes - 1
            );
        }
        ensure!(
            !g.is_empty() && g.len() < data.classes,
            "--task: the group must hold some but not all classes"
        );
    }
    let train_feat = pooled(model, cfg.layer, &data.train_x)?;
    let test_feat = pooled(model, cfg.layer, &data.test_x)?;
    let mut rng = Rng::new(cfg.seed, 0x5e1ec7);
    let mut sums = vec![vec![0.0; cfg.ks.len()]; SCORE_METHODS.len()];
    let mut groups = Vec::new();
    let mut majority = Vec::new();
    for _ in 0..cfg.repeats {
        let group: Vec<usize> = match &cfg.task {
            Task::Group(g) => g.clone(),
            Task::Random => {
                let mut classes: Vec<usize> = (0..data.classes).collect();
                rng.shuffle(&mut classes);
                let mut g = classes[..data.classes / 2].to_vec();
                g.sort_unstable();
                g
            }
        };
        let positive = |c: &usize| group.contains(c);
        let ytr: Vec<bool> = data.train_y.iter().map(positive).collect();
        let yte: Vec<bool> = data.test_y.iter().map(positive).collect();
        let pos_te = yte.iter().filter(|&&b| b).count() as f64 / yte.len().max(1) as f64;
        majority.push(pos_te.max(1.0 - pos_te));
        let mut pos_idx: Vec<usize> = (0..ytr.len()).filter(|&i| ytr[i]).collect();
        rng.shuffle(&mut pos_idx);
        pos_idx.truncate(cfg.score_examples.max(1));
        let xs: Tensor<T> = take_rows(&data.train_x, &pos_idx)?.cast();
        let targets: Vec<usize> = pos_idx.iter().map(|&i| data.train_y[i]).collect();
        for (mi, method) in SCORE_METHODS.into_iter().enumerate() {
            let scores = filter_scores(model, &xs, &targets, cfg.layer, method, &cfg.path)?;
            let mean: Vec<f64> = (0..filters)
                .map(|c| scores.iter().map(|s| s[c]).sum::<f64>() / scores.len() as f64)
                .collect();
            let order = order_desc(&mean);
            for (ki, &k) in cfg.ks.iter().enumerate() {
                let keep = &order[..k];
                let pick = |f: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
                    f.iter()
                        .map(|r| keep.iter().map(|&c| r[c]).collect())
                        .collect()
                };
                let fit = Logistic::fit(&pick(&train_feat), &ytr, 1e-3)?;
                sums[mi][ki] += fit.accuracy(&pick(&test_feat), &yte);
            }
        }
        groups.push(group);
    }
    let r = cfg.repeats as f64;
    Ok(Selection {
        task: match &cfg.task {
            Task::Group(g) => format!(
                "group:{}",
                g.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Task::Random => "random".into(),
        },
        layer: cfg.layer,
        ks: cfg.ks.clone(),
        accuracy: SCORE_METHODS
            .into_iter()
            .zip(sums)
            .map(|(m, s)| (m, s.into_iter().map(|v| v / r).collect()))
            .collect(),
        groups,
        majority,
    })
}
