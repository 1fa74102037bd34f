//! Helpers shared by the attribution tests (`tests/attribution_*.rs`):
//!
//! - [`Net`] and the proptest strategies [`nets`] / [`nets_of`]: random networks from the
//!   supported set — MLPs (Linear, optional BatchNorm1d, ReLU / LeakyReLU / PReLU / Tanh /
//!   Sigmoid, Dropout), small CNNs (Conv2d with random kernel, stride, padding, dilation and
//!   groups, BatchNorm2d with random running statistics, MaxPool2d, AvgPool2d,
//!   AdaptiveAvgPool2d, Flatten, Linear) and conv1d nets (Conv1d, BatchNorm1d, MaxPool1d) —
//!   of 2 to 5 hidden blocks, with an optional Softmax head, random weights (gain-scaled
//!   PyTorch init, random BatchNorm statistics and affine parameters, random PReLU slopes),
//!   random inputs and baselines (zeros, a constant, or random), batch 1 to 3.
//!   [`Kind::PiecewiseLinear`] keeps only ReLU-family activations and pooling (no Tanh,
//!   Sigmoid or Softmax); [`Kind::Smooth`] only Tanh / Sigmoid, average pooling and Softmax.
//! - Forward-mode slopes dF/dα and input gradients ∂F/∂x at chosen path points, computed on
//!   a tape here (independently of `mho::attribution`), and the total variation of dF/dα
//!   over the exact rule's linear pieces (for honest quadrature error bounds).
//! - Small numeric helpers (per-example sums, relative errors).
#![allow(dead_code)]

use mho::attribution::exact::{exact_rows, ExactOptions};
use mho::attribution::{attribute, Baseline, Method, Report, Request};
use mho::nn::rng::Rng;
use mho::nn::{Architecture, LayerSpec, Model};
use mho::{Tape, Tensor};
use proptest::prelude::*;
use std::fmt;

/// Which nonlinearities a random network may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Everything supported (ReLU family, Tanh, Sigmoid, max and average pooling, Softmax).
    Any,
    /// ReLU, LeakyReLU, PReLU, max / average pooling; no Tanh, Sigmoid or Softmax.
    PiecewiseLinear,
    /// Tanh, Sigmoid, average pooling, optional Softmax head; no kinks.
    Smooth,
}

/// The shape of a random network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Linear layers over [F] inputs.
    Mlp,
    /// Conv2d blocks over [C, H, W] inputs, then Flatten and Linear.
    Cnn,
    /// Conv1d blocks over [C, L] inputs, then Flatten and Linear.
    Conv1d,
}

/// A random network with an input batch, a baseline and a target.
#[derive(Clone)]
pub struct Net {
    pub model: Model<f64>,
    pub x: Tensor<f64>,
    pub baseline: Tensor<f64>,
    pub target: usize,
    pub kind: Kind,
    pub family: Family,
    pub depth: usize,
    pub seed: u64,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Net {{ {:?} {:?} depth {} seed {} target {} x {:?} }} {}",
            self.family,
            self.kind,
            self.depth,
            self.seed,
            self.target,
            self.x.shape(),
            self.model.architecture().to_json()
        )
    }
}

impl Net {
    /// The batch size.
    pub fn n(&self) -> usize {
        self.x.shape()[0]
    }

    /// A request for this net's target and baseline (everything else at mho's defaults).
    pub fn request(&self, method: Method) -> Request {
        let mut req = Request::new(method, self.target);
        req.baseline = Baseline::Tensor(self.baseline.clone());
        req
    }

    /// Runs a request on this net, panicking with the net's description on error.
    pub fn run(&self, req: &Request) -> Report {
        self.run_on(&self.model, req)
    }

    /// Runs a request on another model with this net's input.
    pub fn run_on(&self, model: &Model<f64>, req: &Request) -> Report {
        attribute(model, &self.x, req).unwrap_or_else(|e| {
            panic!(
                "{} rule {} steps {}: {e}\n{self:?}",
                req.method, req.rule, req.steps
            )
        })
    }

    /// F(x) − F(x') per example.
    pub fn output_change(&self) -> Vec<f64> {
        output_change_of(&self.model, &self.x, &self.baseline, self.target)
    }

    /// The layer types, in order.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.model.architecture().layers
    }
}

/// F(x) − F(x') per example, from two plain forward passes.
pub fn output_change_of(
    model: &Model<f64>,
    x: &Tensor<f64>,
    baseline: &Tensor<f64>,
    target: usize,
) -> Vec<f64> {
    let fx = model.forward(x).unwrap();
    let fb = model.forward(baseline).unwrap();
    let k = fx.len() / x.shape()[0];
    (0..x.shape()[0])
        .map(|e| fx.data()[e * k + target] - fb.data()[e * k + target])
        .collect()
}

/// Random networks of every family.
pub fn nets(kind: Kind) -> impl Strategy<Value = Net> {
    nets_of(kind, &[Family::Mlp, Family::Cnn, Family::Conv1d])
}

/// Random networks of the given families.
pub fn nets_of(kind: Kind, families: &[Family]) -> impl Strategy<Value = Net> {
    let families = families.to_vec();
    (proptest::sample::select(families), 2usize..=5, any::<u64>())
        .prop_map(move |(family, depth, seed)| build(kind, family, depth, seed))
}

fn pick<T: Clone>(r: &mut Rng, xs: &[T]) -> T {
    xs[r.below(xs.len())].clone()
}

fn activation(r: &mut Rng, kind: Kind, channels: usize) -> LayerSpec {
    let pl = 4;
    let sm = 2;
    let choice = match kind {
        Kind::PiecewiseLinear => r.below(pl),
        Kind::Smooth => pl + r.below(sm),
        Kind::Any => r.below(pl + sm),
    };
    match choice {
        0 => LayerSpec::ReLU,
        1 => LayerSpec::LeakyReLU {
            negative_slope: r.uniform_range(0.01, 0.3),
        },
        2 => LayerSpec::PReLU {
            num_parameters: 1,
            init: 0.25,
        },
        3 => LayerSpec::PReLU {
            num_parameters: channels,
            init: 0.25,
        },
        4 => LayerSpec::Tanh,
        _ => LayerSpec::Sigmoid,
    }
}

/// True when `layers` (plus `extra`) is a valid architecture over `input` in which every
/// max-pooling window and every convolution window holds at least one input element.
/// (PyTorch accepts windows that, with padding, stride and dilation, fall entirely on
/// padding: a max pool's output is then −∞, which no attribution can use, and a
/// convolution's is its bias, which cuts the input off; the generator avoids both.)
fn valid(input: &[usize], layers: &[LayerSpec], extra: &LayerSpec) -> bool {
    let mut all = layers.to_vec();
    all.push(extra.clone());
    let Ok(arch) = Architecture::new(input.to_vec(), all) else {
        return false;
    };
    let shapes = arch.layer_shapes().unwrap();
    let in_shape = if shapes.len() >= 2 {
        shapes[shapes.len() - 2].clone()
    } else {
        input.to_vec()
    };
    let out_shape = shapes.last().unwrap();
    let covered = |len: usize, out: usize, k: usize, s: usize, p: usize, d: usize| {
        (0..out).all(|o| {
            (0..k).any(|j| {
                let pos = (o * s + j * d) as isize - p as isize;
                pos >= 0 && pos < len as isize
            })
        })
    };
    match *extra {
        LayerSpec::MaxPool2d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => (0..2).all(|a| covered(in_shape[a + 1], out_shape[a + 1], k[a], s[a], p[a], d[a])),
        LayerSpec::MaxPool1d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => covered(in_shape[1], out_shape[1], k, s, p, d),
        LayerSpec::Conv2d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => (0..2).all(|a| covered(in_shape[a + 1], out_shape[a + 1], k[a], s[a], p[a], d[a])),
        LayerSpec::Conv1d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => covered(in_shape[1], out_shape[1], k, s, p, d),
        _ => true,
    }
}

fn out_shape(input: &[usize], layers: &[LayerSpec]) -> Vec<usize> {
    if layers.is_empty() {
        return input.to_vec();
    }
    let arch = Architecture::new(input.to_vec(), layers.to_vec()).unwrap();
    arch.layer_shapes().unwrap().last().unwrap().clone()
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

fn conv2d(r: &mut Rng, input: &[usize], layers: &[LayerSpec]) -> LayerSpec {
    let cin = out_shape(input, layers)[0];
    for _ in 0..30 {
        let groups = pick(r, &divisors(cin));
        let out_channels = groups * (1 + r.below((4 / groups).max(1)));
        let cand = LayerSpec::Conv2d {
            in_channels: cin,
            out_channels,
            kernel_size: [1 + r.below(3), 1 + r.below(3)],
            stride: [1 + r.below(2), 1 + r.below(2)],
            padding: [r.below(2), r.below(2)],
            dilation: [1 + r.below(2), 1 + r.below(2)],
            groups,
            bias: r.below(5) != 0,
        };
        if valid(input, layers, &cand) {
            return cand;
        }
    }
    LayerSpec::Conv2d {
        in_channels: cin,
        out_channels: 1 + r.below(4),
        kernel_size: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    }
}

fn conv1d(r: &mut Rng, input: &[usize], layers: &[LayerSpec]) -> LayerSpec {
    let cin = out_shape(input, layers)[0];
    for _ in 0..30 {
        let groups = pick(r, &divisors(cin));
        let out_channels = groups * (1 + r.below((4 / groups).max(1)));
        let cand = LayerSpec::Conv1d {
            in_channels: cin,
            out_channels,
            kernel_size: 1 + r.below(3),
            stride: 1 + r.below(2),
            padding: r.below(2),
            dilation: 1 + r.below(2),
            groups,
            bias: r.below(5) != 0,
        };
        if valid(input, layers, &cand) {
            return cand;
        }
    }
    LayerSpec::Conv1d {
        in_channels: cin,
        out_channels: 1 + r.below(4),
        kernel_size: 1,
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 1,
        bias: true,
    }
}

fn pool2d(r: &mut Rng, kind: Kind, input: &[usize], layers: &[LayerSpec]) -> Option<LayerSpec> {
    for _ in 0..10 {
        let k = [2 + r.below(2), 2 + r.below(2)];
        let cand = if kind != Kind::Smooth && r.below(2) == 0 {
            LayerSpec::MaxPool2d {
                kernel_size: k,
                stride: [1 + r.below(2), 1 + r.below(2)],
                padding: [r.below(k[0] / 2 + 1), r.below(k[1] / 2 + 1)],
                dilation: [1 + r.below(2), 1 + r.below(2)],
                ceil_mode: r.below(3) == 0,
            }
        } else {
            LayerSpec::AvgPool2d {
                kernel_size: k,
                stride: [1 + r.below(2), 1 + r.below(2)],
                padding: [r.below(k[0] / 2 + 1), r.below(k[1] / 2 + 1)],
                ceil_mode: r.below(3) == 0,
                count_include_pad: r.below(2) == 0,
            }
        };
        if valid(input, layers, &cand) {
            return Some(cand);
        }
    }
    None
}

fn maxpool1d(r: &mut Rng, input: &[usize], layers: &[LayerSpec]) -> Option<LayerSpec> {
    for _ in 0..10 {
        let k = 2 + r.below(2);
        let cand = LayerSpec::MaxPool1d {
            kernel_size: k,
            stride: 1 + r.below(2),
            padding: r.below(k / 2 + 1),
            dilation: 1 + r.below(2),
            ceil_mode: r.below(3) == 0,
        };
        if valid(input, layers, &cand) {
            return Some(cand);
        }
    }
    None
}

/// Builds the network of `family` with `depth` hidden blocks, deterministically from `seed`.
/// Draws again (from the same stream) while F(x) or F(x') is not finite, or F(x) = F(x')
/// for some example (a path along which every unit feeding F is dead says nothing about
/// attribution); after 50 draws, takes what it has.
pub fn build(kind: Kind, family: Family, depth: usize, seed: u64) -> Net {
    let mut r = Rng::new(seed, 0x5EED);
    let mut tries = 0;
    loop {
        let net = build_from(&mut r, kind, family, depth, seed);
        tries += 1;
        let fx = net.model.forward(&net.x).unwrap();
        let fb = net.model.forward(&net.baseline).unwrap();
        let finite = fx.first_non_finite().is_none() && fb.first_non_finite().is_none();
        let moves = net.output_change().iter().all(|d| d.abs() > 1e-9);
        if finite && (moves || tries >= 50) {
            return net;
        }
    }
}

fn build_from(r: &mut Rng, kind: Kind, family: Family, depth: usize, seed: u64) -> Net {
    let mut layers: Vec<LayerSpec> = Vec::new();
    let input: Vec<usize> = match family {
        Family::Mlp => vec![2 + r.below(5)],
        Family::Cnn => vec![1 + r.below(3), 5 + r.below(4), 5 + r.below(4)],
        Family::Conv1d => vec![1 + r.below(3), 6 + r.below(7)],
    };
    for _ in 0..depth {
        match family {
            Family::Mlp => {
                let prev = out_shape(&input, &layers)[0];
                let w = 2 + r.below(5);
                layers.push(LayerSpec::Linear {
                    in_features: prev,
                    out_features: w,
                    bias: r.below(5) != 0,
                });
                if r.below(4) == 0 {
                    layers.push(LayerSpec::BatchNorm1d {
                        num_features: w,
                        eps: 1e-5,
                        affine: r.below(3) != 0,
                    });
                }
                layers.push(activation(r, kind, w));
                if r.below(8) == 0 {
                    layers.push(LayerSpec::Dropout { p: 0.5 });
                }
            }
            Family::Cnn => {
                let conv = conv2d(r, &input, &layers);
                layers.push(conv);
                let c = out_shape(&input, &layers)[0];
                if r.below(2) == 0 {
                    layers.push(LayerSpec::BatchNorm2d {
                        num_features: c,
                        eps: 1e-5,
                        affine: r.below(3) != 0,
                    });
                }
                layers.push(activation(r, kind, c));
                if r.below(2) == 0 {
                    if let Some(p) = pool2d(r, kind, &input, &layers) {
                        layers.push(p);
                    }
                }
            }
            Family::Conv1d => {
                let conv = conv1d(r, &input, &layers);
                layers.push(conv);
                let c = out_shape(&input, &layers)[0];
                if r.below(2) == 0 {
                    layers.push(LayerSpec::BatchNorm1d {
                        num_features: c,
                        eps: 1e-5,
                        affine: r.below(3) != 0,
                    });
                }
                layers.push(activation(r, kind, c));
                if kind != Kind::Smooth && r.below(3) == 0 {
                    if let Some(p) = maxpool1d(r, &input, &layers) {
                        layers.push(p);
                    }
                }
            }
        }
    }
    if family == Family::Cnn && r.below(3) == 0 {
        let s = out_shape(&input, &layers);
        layers.push(LayerSpec::AdaptiveAvgPool2d {
            output_size: [1 + r.below(s[1].min(2)), 1 + r.below(s[2].min(2))],
        });
    }
    if family != Family::Mlp {
        layers.push(LayerSpec::Flatten {
            start_dim: 1,
            end_dim: -1,
        });
    }
    let features = out_shape(&input, &layers)[0];
    let k = if family == Family::Mlp {
        1 + r.below(4)
    } else {
        2 + r.below(3)
    };
    layers.push(LayerSpec::Linear {
        in_features: features,
        out_features: k,
        bias: true,
    });
    if kind != Kind::PiecewiseLinear && k >= 2 && r.below(2) == 0 {
        layers.push(LayerSpec::Softmax { dim: 1 });
    }
    let arch = Architecture::new(input.clone(), layers).unwrap();
    let mut model = Model::<f64>::init(arch, r.next_u64()).unwrap();
    randomize(&mut model, r);
    let n = 1 + r.below(3);
    let mut shape = vec![n];
    shape.extend(&input);
    let len: usize = shape.iter().product();
    let x = Tensor::new(
        shape.clone(),
        (0..len).map(|_| r.uniform_range(-2.0, 2.0)).collect(),
    )
    .unwrap();
    let baseline = match r.below(3) {
        0 => Tensor::zeros(&shape),
        1 => Tensor::full(&shape, r.uniform_range(-1.0, 1.0)),
        _ => Tensor::new(
            shape.clone(),
            (0..len).map(|_| r.uniform_range(-2.0, 2.0)).collect(),
        )
        .unwrap(),
    };
    let target = r.below(k);
    Net {
        model,
        x,
        baseline,
        target,
        kind,
        family,
        depth,
        seed,
    }
}

/// Gain-scales weights (so signals neither vanish nor blow up through 5 blocks) and gives
/// BatchNorm layers random statistics and affine parameters, PReLU layers random slopes.
fn randomize(model: &mut Model<f64>, r: &mut Rng) {
    let layers = model.architecture().layers.clone();
    for (i, spec) in layers.iter().enumerate() {
        let set = |model: &mut Model<f64>, suffix: &str, f: &mut dyn FnMut(f64) -> f64| {
            let name = format!("{i}.{suffix}");
            if let Some(p) = model.param(&name) {
                let d: Vec<f64> = p.data().iter().map(|&v| f(v)).collect();
                let v = Tensor::new(p.shape().to_vec(), d).unwrap();
                model.set_param(&name, v).unwrap();
            }
        };
        match spec {
            LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } | LayerSpec::Conv1d { .. } => {
                let gain = r.uniform_range(1.2, 2.2);
                set(model, "weight", &mut |v| v * gain);
                set(model, "bias", &mut |v| v * gain);
            }
            LayerSpec::BatchNorm1d { .. } | LayerSpec::BatchNorm2d { .. } => {
                set(model, "running_mean", &mut |_| r.uniform_range(-0.5, 0.5));
                set(model, "running_var", &mut |_| r.uniform_range(0.3, 2.0));
                set(model, "weight", &mut |_| {
                    let s = if r.below(4) == 0 { -1.0 } else { 1.0 };
                    s * r.uniform_range(0.5, 1.5)
                });
                set(model, "bias", &mut |_| r.uniform_range(-0.3, 0.3));
            }
            LayerSpec::PReLU { .. } => {
                set(model, "weight", &mut |_| r.uniform_range(-0.3, 0.6));
            }
            _ => {}
        }
    }
}

/// Points x'_e + α (x_e − x'_e) for (example, α) rows, and their directions x_e − x'_e.
fn points(
    x: &Tensor<f64>,
    baseline: &Tensor<f64>,
    rows: &[(usize, f64)],
) -> (Tensor<f64>, Tensor<f64>) {
    let u = x.len() / x.shape()[0];
    let mut p = Vec::with_capacity(rows.len() * u);
    let mut d = Vec::with_capacity(rows.len() * u);
    for &(e, a) in rows {
        for j in e * u..(e + 1) * u {
            let (xi, bi) = (x.data()[j], baseline.data()[j]);
            p.push(bi + a * (xi - bi));
            d.push(xi - bi);
        }
    }
    let mut shape = x.shape().to_vec();
    shape[0] = rows.len();
    (
        Tensor::new(shape.clone(), p).unwrap(),
        Tensor::new(shape, d).unwrap(),
    )
}

/// dF/dα at the given (example, α) rows, by forward mode on a fresh tape.
pub fn path_slopes(
    model: &Model<f64>,
    x: &Tensor<f64>,
    baseline: &Tensor<f64>,
    target: usize,
    rows: &[(usize, f64)],
) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(256) {
        let (p, d) = points(x, baseline, chunk);
        let mut tape = Tape::new();
        let input = tape.variable(p);
        tape.set_tangent(input, d).unwrap();
        let rec = model.record(&mut tape, input, false).unwrap();
        let y = *rec.layer_outputs.last().unwrap();
        let t = tape.tangent(y).unwrap();
        let k = t.len() / chunk.len();
        out.extend((0..chunk.len()).map(|r| t.data()[r * k + target]));
    }
    out
}

/// ∂F/∂x at the given (example, α) rows (one row of input size per point), by a backward
/// pass on a fresh tape.
pub fn input_gradients(
    model: &Model<f64>,
    x: &Tensor<f64>,
    baseline: &Tensor<f64>,
    target: usize,
    rows: &[(usize, f64)],
) -> Vec<Vec<f64>> {
    let u = x.len() / x.shape()[0];
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(256) {
        let (p, _) = points(x, baseline, chunk);
        let mut tape = Tape::new();
        let input = tape.variable(p);
        let rec = model.record(&mut tape, input, false).unwrap();
        let y = *rec.layer_outputs.last().unwrap();
        let shape = tape.value(y).shape().to_vec();
        let k = tape.value(y).len() / chunk.len();
        let mut seed = Tensor::zeros(&shape);
        for r in 0..chunk.len() {
            seed.data_mut()[r * k + target] = 1.0;
        }
        tape.backward(y, seed).unwrap();
        let g = tape.adjoint(input).unwrap();
        out.extend((0..chunk.len()).map(|r| g.data()[r * u..(r + 1) * u].to_vec()));
    }
    out
}

/// The linear pieces of each example's path under the exact rule of a piecewise-linear
/// network: (example, midpoint α, length), grouped by example, ascending.
pub fn exact_pieces(net: &Net) -> Vec<(usize, f64, f64)> {
    let targets = vec![net.target; net.n()];
    let change = net.output_change();
    let found = exact_rows(
        &net.model,
        &net.x,
        &net.baseline,
        &targets,
        &change,
        &ExactOptions::default(),
    )
    .unwrap();
    found
        .rows
        .iter()
        .map(|r| (r.example, r.alpha, r.weight))
        .collect()
}

/// Per example, the total variation of dF/dα along the path of a piecewise-linear network:
/// Σ_p |g_{p+1} − g_p| over consecutive linear pieces p of the exact rule, plus the jumps
/// from the values at α = 0 and α = 1 to the first and last pieces' (relu'(0) = 0 can make
/// an endpoint's value differ from its piece's, and left/right/trapezoid rules use it).
pub fn slope_variation(net: &Net) -> Vec<f64> {
    let pieces = exact_pieces(net);
    let mut rows: Vec<(usize, f64)> = Vec::new();
    for e in 0..net.n() {
        rows.push((e, 0.0));
        rows.extend(pieces.iter().filter(|p| p.0 == e).map(|&(e, a, _)| (e, a)));
        rows.push((e, 1.0));
    }
    let g = path_slopes(&net.model, &net.x, &net.baseline, net.target, &rows);
    let mut tv = vec![0.0; net.n()];
    for p in 1..rows.len() {
        if rows[p].0 == rows[p - 1].0 {
            tv[rows[p].0] += (g[p] - g[p - 1]).abs();
        }
    }
    tv
}

/// Per example and input element j: the total variation of ∂F/∂x_j along the path of a
/// piecewise-linear network, Σ_p |∂F/∂x_j(p+1) − ∂F/∂x_j(p)| over consecutive linear
/// pieces, and max_p |∂F/∂x_j(p)| (both flattened like one example of the input).
pub fn gradient_variation(net: &Net) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let pieces = exact_pieces(net);
    let rows: Vec<(usize, f64)> = pieces.iter().map(|&(e, a, _)| (e, a)).collect();
    let g = input_gradients(&net.model, &net.x, &net.baseline, net.target, &rows);
    let u = net.x.len() / net.n();
    let mut tv = vec![vec![0.0; u]; net.n()];
    let mut most = vec![vec![0.0f64; u]; net.n()];
    for p in 0..rows.len() {
        let e = rows[p].0;
        for j in 0..u {
            most[e][j] = most[e][j].max(g[p][j].abs());
            if p > 0 && rows[p - 1].0 == e {
                tv[e][j] += (g[p][j] - g[p - 1][j]).abs();
            }
        }
    }
    (tv, most)
}

/// Example `e`'s slice of a tensor whose first axis is the batch.
pub fn example(t: &Tensor<f64>, e: usize) -> &[f64] {
    let u = t.len() / t.shape()[0];
    &t.data()[e * u..(e + 1) * u]
}

/// Σ of example `e`'s attributions.
pub fn sum_of(t: &Tensor<f64>, e: usize) -> f64 {
    example(t, e).iter().sum()
}

/// Σ |·| of example `e`'s attributions.
pub fn abs_sum_of(t: &Tensor<f64>, e: usize) -> f64 {
    example(t, e).iter().map(|v| v.abs()).sum()
}

/// max |·| of a slice (NaN if any element is NaN, so comparisons with it fail).
pub fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0f64, |m, v| {
        if m.is_nan() || v.is_nan() {
            f64::NAN
        } else {
            m.max(v.abs())
        }
    })
}

/// max_i |a_i − b_i| (NaN if any difference is NaN, so comparisons with it fail).
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| {
        let d = (x - y).abs();
        if m.is_nan() || d.is_nan() {
            f64::NAN
        } else {
            m.max(d)
        }
    })
}

/// The names of every layer of a model ("0", "1", …).
pub fn layer_names(model: &Model<f64>) -> Vec<String> {
    model.layer_names()
}

/// True for layers that act on each channel (axis 0 without the batch axis) separately and
/// keep the channel count: activations, BatchNorm, pooling, Dropout, Identity.
pub fn channelwise(spec: &LayerSpec) -> bool {
    matches!(
        spec,
        LayerSpec::ReLU
            | LayerSpec::LeakyReLU { .. }
            | LayerSpec::PReLU { .. }
            | LayerSpec::Tanh
            | LayerSpec::Sigmoid
            | LayerSpec::BatchNorm1d { .. }
            | LayerSpec::BatchNorm2d { .. }
            | LayerSpec::MaxPool2d { .. }
            | LayerSpec::MaxPool1d { .. }
            | LayerSpec::AvgPool2d { .. }
            | LayerSpec::AdaptiveAvgPool2d { .. }
            | LayerSpec::Dropout { .. }
            | LayerSpec::Identity
    )
}

/// True for Linear, Conv2d and Conv1d.
pub fn weighted(spec: &LayerSpec) -> bool {
    matches!(
        spec,
        LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } | LayerSpec::Conv1d { .. }
    )
}

/// Proptest settings for these tests: `cases` cases, no regression files (failures print
/// the network, whose seed rebuilds it with [`build`]), bounded shrinking.
pub fn config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..proptest::test_runner::Config::default()
    }
}

/// A copy of `model` with some parameters (by state_dict name) replaced.
pub fn with_params(model: &Model<f64>, changes: Vec<(String, Tensor<f64>)>) -> Model<f64> {
    let mut m = model.clone();
    for (name, t) in changes {
        m.set_param(&name, t).unwrap();
    }
    m
}

/// A model without its last layer (e.g. to strip a Softmax head).
pub fn without_last_layer(model: &Model<f64>) -> Model<f64> {
    let arch = model.architecture();
    let keep = arch.layers.len() - 1;
    let new = Architecture::new(arch.input_shape.clone(), arch.layers[..keep].to_vec()).unwrap();
    let params: Vec<(String, Tensor<f64>)> = model
        .params()
        .into_iter()
        .filter(|(n, _)| n.split('.').next().unwrap().parse::<usize>().unwrap() < keep)
        .map(|(n, t)| (n, t.clone()))
        .collect();
    Model::from_params(new, params).unwrap()
}

/// A model with its layers replaced (parameters given by state_dict name).
pub fn model_from(
    input_shape: &[usize],
    layers: Vec<LayerSpec>,
    params: Vec<(String, Tensor<f64>)>,
) -> Model<f64> {
    Model::from_params(
        Architecture::new(input_shape.to_vec(), layers).unwrap(),
        params,
    )
    .unwrap()
}

/// The parameters of a model, owned.
pub fn owned_params(model: &Model<f64>) -> Vec<(String, Tensor<f64>)> {
    model
        .params()
        .into_iter()
        .map(|(n, t)| (n, t.clone()))
        .collect()
}

/// `model` with `spec` inserted as layer `at` (later layers' parameters renamed).
pub fn insert_layer(model: &Model<f64>, at: usize, spec: LayerSpec) -> Model<f64> {
    let arch = model.architecture();
    let mut layers = arch.layers.clone();
    layers.insert(at, spec);
    let params = owned_params(model)
        .into_iter()
        .map(|(name, t)| {
            let (l, suffix) = name.split_once('.').unwrap();
            let l: usize = l.parse().unwrap();
            let l = if l >= at { l + 1 } else { l };
            (format!("{l}.{suffix}"), t)
        })
        .collect();
    model_from(&arch.input_shape, layers, params)
}

/// A piecewise-linear network given a smooth head: Softmax after the last Linear, and/or
/// Tanh or Sigmoid just before it (chosen by `choice` mod 4: 0 Softmax, 1 Tanh, 2 Sigmoid,
/// 3 Sigmoid and Softmax; Softmax only with at least 2 outputs, else Tanh).
pub fn with_smooth_head(net: &Net, choice: usize) -> Net {
    let k = *net.model.output_shape().last().unwrap();
    let last = net.layers().len() - 1;
    let mut model = net.model.clone();
    let choice = if k < 2 && choice % 4 != 1 && choice % 4 != 2 {
        1
    } else {
        choice % 4
    };
    if choice == 1 {
        model = insert_layer(&model, last, LayerSpec::Tanh);
    }
    if choice >= 2 {
        model = insert_layer(&model, last, LayerSpec::Sigmoid);
    }
    if choice == 0 || choice == 3 {
        let n = model.architecture().layers.len();
        model = insert_layer(&model, n, LayerSpec::Softmax { dim: 1 });
    }
    let mut out = net.clone();
    out.model = model;
    out.kind = Kind::Any;
    out
}
