//! Training on mho's own tape: minibatches in a seeded order, cross-entropy on the
//! model's logits, SGD with momentum or Adam with PyTorch's update formulas.
//!
//! Deterministic for a seed whatever the thread count: the shuffle comes from the seed,
//! and every reduction here runs in a fixed order (the ops' kernels are required to be
//! thread-count independent too).

use super::arch::LayerSpec;
use super::model::Model;
use super::rng::Rng;
use crate::data::Dataset;
use crate::ops::CrossEntropy;
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::{bail, ensure, Error, Float, Result};
use std::time::Instant;

/// An optimiser and its hyperparameters (PyTorch's names and update formulas).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD`: buf ← momentum·buf + g (buf = g at the first step), p ← p − lr·buf.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum (0 for plain SGD).
        momentum: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// `torch.optim.Adam`: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
    /// p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
    Adam {
        /// Learning rate.
        lr: f64,
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f64) -> Optimizer {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// SGD with momentum.
    pub fn sgd(lr: f64, momentum: f64) -> Optimizer {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        }
    }

    /// The same optimiser with another learning rate.
    pub fn with_lr(mut self, new: f64) -> Optimizer {
        match &mut self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr = new,
        }
        self
    }
}

/// How to train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per minibatch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Seed of the shuffles (and, in the CLI, of the initialisation).
    pub seed: u64,
}

/// Progress reported by [`train`].
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// An epoch is starting with `batches` minibatches.
    EpochStart {
        /// Epoch number, from 1.
        epoch: usize,
        /// Minibatches in the epoch.
        batches: usize,
    },
    /// A minibatch was done.
    Batch {
        /// Epoch number, from 1.
        epoch: usize,
        /// Minibatches done so far in this epoch.
        done: usize,
        /// Its mean loss.
        loss: f64,
    },
    /// An epoch ended and the model was evaluated on the held-out set.
    EpochEnd {
        /// Epoch number, from 1.
        epoch: usize,
        /// Mean training loss over the epoch.
        loss: f64,
        /// Held-out accuracy after the epoch.
        accuracy: f64,
        /// Seconds spent training in this epoch (evaluation excluded).
        seconds: f64,
    },
}

/// Optimiser state of one parameter.
struct Slot<T> {
    layer: usize,
    index: usize,
    /// Row of an Embedding weight that gets no update (padding_idx), as (row, width).
    frozen_row: Option<(usize, usize)>,
    m: Vec<T>,
    v: Vec<T>,
}

/// Copies examples `idx` of `x` ([N, ...], f32) into a batch tensor of `T`.
pub fn gather_batch<T: Float>(x: &Tensor<f32>, idx: &[usize]) -> Result<Tensor<T>> {
    let per: usize = x.shape()[1..].iter().product();
    let mut data = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        data.extend(
            x.data()[i * per..(i + 1) * per]
                .iter()
                .map(|&v| T::from_f32(v)),
        );
    }
    let mut shape = x.shape().to_vec();
    shape[0] = idx.len();
    Tensor::new(shape, data)
}

/// Held-out accuracy of `model` on `x` ([N, ...], f32) with labels `y`, by batched
/// inference (no tape). Ties in the logits go to the lowest class.
pub fn evaluate<T: Float>(
    model: &Model<T>,
    x: &Tensor<f32>,
    y: &[usize],
    batch: usize,
) -> Result<f64> {
    let n = x.shape().first().copied().unwrap_or(0);
    ensure!(
        n == y.len(),
        "evaluate: {n} examples but {} labels",
        y.len()
    );
    ensure!(n > 0, "evaluate: no examples");
    let mut correct = 0usize;
    let order: Vec<usize> = (0..n).collect();
    for chunk in order.chunks(batch.max(1)) {
        let xb: Tensor<T> = gather_batch(x, chunk)?;
        let out = model.forward(&xb)?;
        let k = out.len() / chunk.len();
        for (r, &i) in chunk.iter().enumerate() {
            let row = &out.data()[r * k..(r + 1) * k];
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            if best == y[i] {
                correct += 1;
            }
        }
    }
    Ok(correct as f64 / n as f64)
}

/// Trains `model` on `data.train_x` / `data.train_y`, evaluating on the held-out set
/// after every epoch. The model's output must be [classes] logits.
pub fn train<T: Float>(
    model: &mut Model<T>,
    data: &Dataset,
    cfg: &TrainConfig,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<Vec<TrainEvent>> {
    ensure!(cfg.batch_size >= 1, "batch size must be at least 1");
    ensure!(
        model.input_shape() == data.example_shape(),
        "the model takes inputs of shape {:?} but {} images have shape {:?}",
        model.input_shape(),
        data.name,
        data.example_shape()
    );
    ensure!(
        model.output_shape() == [data.classes],
        "the model's output shape {:?} is not [{}] (one logit per class of {})",
        model.output_shape(),
        data.classes,
        data.name
    );
    if let Some(LayerSpec::Softmax { .. } | LayerSpec::LogSoftmax { .. }) = model.arch.layers.last()
    {
        bail!("the model ends with a softmax; training needs logits (cross-entropy applies log-softmax itself)");
    }
    let n = data.train_y.len();
    ensure!(n > 0, "{}: no training examples", data.name);
    if let Some(&bad) = data.train_y.iter().find(|&&c| c >= data.classes) {
        bail!(
            "{}: label {bad} is not below {} classes",
            data.name,
            data.classes
        );
    }

    // Parameters being trained change: drop their loaded bytes so they save as trained.
    let mut slots: Vec<Slot<T>> = Vec::new();
    for (i, layer) in model.params.iter_mut().enumerate() {
        let frozen = match model.arch.layers[i] {
            LayerSpec::Embedding {
                padding_idx: Some(p),
                embedding_dim,
                ..
            } => Some((p, embedding_dim)),
            _ => None,
        };
        for (j, p) in layer.iter_mut().enumerate() {
            if matches!(p.suffix, "weight" | "bias") {
                p.raw = None;
                let len = p.value.len();
                slots.push(Slot {
                    layer: i,
                    index: j,
                    frozen_row: frozen,
                    m: vec![T::ZERO; len],
                    v: vec![T::ZERO; len],
                });
            }
        }
    }

    let mut history = Vec::new();
    let mut tape: Tape<T> = Tape::new();
    let mut step = 0u64;
    let batches = n.div_ceil(cfg.batch_size);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(cfg.seed, 0x5A5A_0000 + epoch as u64).shuffle(&mut order);
        on_event(&TrainEvent::EpochStart { epoch, batches });
        let mut loss_sum = 0.0;
        for (b, idx) in order.chunks(cfg.batch_size).enumerate() {
            tape.clear();
            let xb: Tensor<T> = gather_batch(&data.train_x, idx)?;
            let targets: Vec<usize> = idx.iter().map(|&i| data.train_y[i]).collect();
            let input = tape.constant(xb);
            let rec = model.record(&mut tape, input, true)?;
            let logits = *rec
                .layer_outputs
                .last()
                .ok_or_else(|| Error::new("model has no layers"))?;
            let loss_id = tape.apply(CrossEntropy { targets }, &[logits])?;
            let loss = tape.value(loss_id).data()[0].to_f64();
            if !loss.is_finite() {
                bail!("training diverged: loss is {loss} at epoch {epoch}, batch {}; try a smaller --lr", b + 1);
            }
            tape.backward_scalar(loss_id)?;
            step += 1;
            ensure!(
                rec.params.len() == slots.len(),
                "internal: {} parameter leaves for {} optimiser slots",
                rec.params.len(),
                slots.len()
            );
            for (slot, (_, id)) in slots.iter_mut().zip(&rec.params) {
                let Some(g) = tape.adjoint(*id) else { continue };
                let p = &mut model.params[slot.layer][slot.index];
                update(&cfg.optimizer, step, slot, p.value.data_mut(), g.data());
            }
            loss_sum += loss * idx.len() as f64;
            on_event(&TrainEvent::Batch {
                epoch,
                done: b + 1,
                loss,
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let accuracy = evaluate(model, &data.test_x, &data.test_y, 500)?;
        let ev = TrainEvent::EpochEnd {
            epoch,
            loss: loss_sum / n as f64,
            accuracy,
            seconds,
        };
        on_event(&ev);
        history.push(ev);
    }
    tape.clear();
    Ok(history)
}

/// One optimiser step on one parameter, PyTorch's formulas.
fn update<T: Float>(opt: &Optimizer, step: u64, slot: &mut Slot<T>, p: &mut [T], g: &[T]) {
    let skip = |k: usize| slot.frozen_row.is_some_and(|(row, w)| k / w == row);
    match *opt {
        Optimizer::Sgd {
            lr,
            momentum,
            weight_decay,
        } => {
            let (lr, mom, wd) = (
                T::from_f64(lr),
                T::from_f64(momentum),
                T::from_f64(weight_decay),
            );
            for k in 0..p.len() {
                if skip(k) {
                    continue;
                }
                let mut d = g[k] + wd * p[k];
                if momentum != 0.0 {
                    let buf = if step == 1 { d } else { mom * slot.m[k] + d };
                    slot.m[k] = buf;
                    d = buf;
                }
                p[k] -= lr * d;
            }
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let bc1 = 1.0 - beta1.powf(step as f64);
            let bc2 = 1.0 - beta2.powf(step as f64);
            let step_size = T::from_f64(lr / bc1);
            let bc2_sqrt = T::from_f64(bc2.sqrt());
            let (b1, b2, e, wd) = (
                T::from_f64(beta1),
                T::from_f64(beta2),
                T::from_f64(eps),
                T::from_f64(weight_decay),
            );
            for k in 0..p.len() {
                if skip(k) {
                    continue;
                }
                let d = g[k] + wd * p[k];
                slot.m[k] = b1 * slot.m[k] + (T::ONE - b1) * d;
                slot.v[k] = b2 * slot.v[k] + (T::ONE - b2) * d * d;
                let denom = slot.v[k].sqrt() / bc2_sqrt + e;
                p[k] -= step_size * slot.m[k] / denom;
            }
        }
    }
}
