//! The tape over composite graphs: fan-out and diamonds accumulate adjoints, every node's
//! adjoint and tangent stays addressable, constants get no adjoint (and their gradients
//! are never computed), replayed tangents equal eager ones, backward is repeatable, and
//! whole networks satisfy the dot-product identity.

mod common;

use common::{assert_close, Rng};
use mho::ops::*;
use mho::{Linearity, NodeId, Op, Result, Tape, Tensor};
use std::sync::{Arc, Mutex};

fn t(shape: &[usize], data: &[f64]) -> Tensor<f64> {
    Tensor::from_f64(shape, data).unwrap()
}

#[test]
fn fan_out_accumulates_d_a_plus_2a_is_3() {
    let mut tape = Tape::new();
    let a = tape.variable(t(&[3], &[1.0, -2.0, 0.5]));
    let two_a = tape.apply(MulScalar(2.0), &[a]).unwrap();
    let sum = tape.apply(Add, &[a, two_a]).unwrap();
    tape.backward(sum, Tensor::full(&[3], 1.0)).unwrap();
    assert_eq!(tape.adjoint(a).unwrap().data(), [3.0, 3.0, 3.0]);
    assert_eq!(tape.adjoint(two_a).unwrap().data(), [1.0, 1.0, 1.0]);
    assert_eq!(tape.adjoint(sum).unwrap().data(), [1.0, 1.0, 1.0]);
}

#[test]
fn relu_then_product_with_itself() {
    // y = relu(x)²: dy/dx = 2·relu(x) where x > 0, else 0 (relu'(0) = 0).
    let x0 = [-1.5, 0.0, 0.5, 2.0];
    let mut tape = Tape::new();
    let x = tape.variable(t(&[4], &x0));
    let r = tape.apply(Relu, &[x]).unwrap();
    let y = tape.apply(Mul, &[r, r]).unwrap();
    tape.backward(y, Tensor::full(&[4], 1.0)).unwrap();
    assert_eq!(tape.adjoint(x).unwrap().data(), [0.0, 0.0, 1.0, 4.0]);
    assert_eq!(tape.adjoint(r).unwrap().data(), [0.0, 0.0, 1.0, 4.0]);
}

#[test]
fn diamond_sums_both_branches() {
    // x → tanh, x → sigmoid, add, sum: d/dx = 1 − tanh² + σ(1 − σ).
    let xs = [-1.0, 0.25, 2.0];
    let mut tape = Tape::new();
    let x = tape.variable(t(&[3], &xs));
    let a = tape.apply(Tanh, &[x]).unwrap();
    let b = tape.apply(Sigmoid, &[x]).unwrap();
    let c = tape.apply(Add, &[a, b]).unwrap();
    let s = tape.apply(Sum, &[c]).unwrap();
    tape.backward_scalar(s).unwrap();
    let want: Vec<f64> = xs
        .iter()
        .map(|&v: &f64| {
            let sig = 1.0 / (1.0 + (-v).exp());
            1.0 - v.tanh().powi(2) + sig * (1.0 - sig)
        })
        .collect();
    assert_close("diamond", tape.adjoint(x).unwrap(), &t(&[3], &want), 1e-14);
    for node in [x, a, b, c, s] {
        assert!(tape.adjoint(node).is_some(), "node {node:?} has no adjoint");
    }
}

/// Wraps an op and records the `needs` flags of every VJP call.
struct Spy<O> {
    op: O,
    needs: Arc<Mutex<Vec<Vec<bool>>>>,
}

impl<O: Op<f64>> Op<f64> for Spy<O> {
    fn name(&self) -> &'static str {
        self.op.name()
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        self.op.forward(x)
    }
    fn vjp(
        &self,
        x: &[&Tensor<f64>],
        y: &Tensor<f64>,
        g: &Tensor<f64>,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor<f64>>>> {
        self.needs.lock().unwrap().push(needs.to_vec());
        let grads = self.op.vjp(x, y, g, needs)?;
        for (i, (grad, &need)) in grads.iter().zip(needs).enumerate() {
            assert_eq!(
                grad.is_some(),
                need,
                "{}: gradient {i} computed = {}",
                self.op.name(),
                grad.is_some()
            );
        }
        Ok(grads)
    }
    fn jvp(
        &self,
        x: &[&Tensor<f64>],
        y: &Tensor<f64>,
        t: &[Option<&Tensor<f64>>],
    ) -> Result<Tensor<f64>> {
        self.op.jvp(x, y, t)
    }
}

/// The network of the two tests below (conv → relu → flatten → linear → pick), its input
/// a variable, or a variable without adjoint when `input_adjoint` is false. Returns the
/// tape, the input, the constants, the hidden nodes and the `needs` each spied VJP got.
#[allow(clippy::type_complexity)]
fn spied_network(
    input_adjoint: bool,
) -> (Tape<f64>, NodeId, Vec<NodeId>, Vec<NodeId>, Vec<Vec<bool>>) {
    let mut rng = Rng::new(3);
    let mut tape = Tape::new();
    let xv = rng.tensor(&[2, 3, 6, 6], -1.0, 1.0);
    let x = if input_adjoint {
        tape.variable(xv)
    } else {
        tape.variable_without_adjoint(xv)
    };
    let w = tape.constant(rng.tensor(&[4, 3, 3, 3], -1.0, 1.0));
    let b = tape.constant(rng.tensor(&[4], -1.0, 1.0));
    let lw = tape.constant(rng.tensor(&[5, 64], -1.0, 1.0));
    let lb = tape.constant(rng.tensor(&[5], -1.0, 1.0));
    let needs = Arc::new(Mutex::new(Vec::new()));
    let conv = Conv2d {
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    };
    let h1 = tape
        .apply(
            Spy {
                op: conv,
                needs: needs.clone(),
            },
            &[x, w, b],
        )
        .unwrap();
    let h2 = tape.apply(Relu, &[h1]).unwrap();
    let h3 = tape
        .apply(
            Flatten {
                start_dim: 1,
                end_dim: -1,
            },
            &[h2],
        )
        .unwrap();
    let y = tape
        .apply(
            Spy {
                op: Linear { bias: true },
                needs: needs.clone(),
            },
            &[h3, lw, lb],
        )
        .unwrap();
    let picked = tape
        .apply(
            GatherRows {
                indices: vec![1, 4],
            },
            &[y],
        )
        .unwrap();
    tape.backward(picked, Tensor::full(&[2], 1.0)).unwrap();
    let needs = needs.lock().unwrap().clone();
    (tape, x, vec![w, b, lw, lb], vec![h1, h2, h3, y], needs)
}

#[test]
fn constants_get_no_adjoint_and_no_gradient_work() {
    let (tape, x, constants, _, needs) = spied_network(true);
    for c in constants {
        assert!(tape.adjoint(c).is_none());
        assert!(!tape.requires_grad(c));
    }
    assert!(tape.adjoint(x).is_some());
    // Only the input gradient was asked for, from both layers.
    assert_eq!(needs, vec![vec![true, false, false]; 2]);
}

#[test]
fn a_variable_without_adjoint_spares_the_vjps_into_it_only() {
    let (with, _, _, hidden_with, _) = spied_network(true);
    let (without, x, constants, hidden, needs) = spied_network(false);
    assert!(without.adjoint(x).is_none());
    assert!(without.requires_grad(x));
    for c in constants {
        assert!(without.adjoint(c).is_none());
    }
    // The linear layer still passes ∂F/∂h back; the convolution's VJP is not run at all.
    assert_eq!(needs, vec![vec![true, false, false]]);
    // Every node downstream of the input gets the same adjoint as before.
    for (a, b) in hidden_with.iter().zip(&hidden) {
        assert_eq!(with.adjoint(*a).unwrap(), without.adjoint(*b).unwrap());
    }
}

#[test]
fn weights_as_variables_get_gradients() {
    let mut rng = Rng::new(4);
    let mut tape = Tape::new();
    let x = tape.constant(rng.tensor(&[3, 4], -1.0, 1.0));
    let w = tape.variable(rng.tensor(&[2, 4], -1.0, 1.0));
    let y = tape.apply(Linear { bias: false }, &[x, w]).unwrap();
    let loss = tape
        .apply(
            CrossEntropy {
                targets: vec![0, 1, 1],
            },
            &[y],
        )
        .unwrap();
    tape.backward_scalar(loss).unwrap();
    assert!(tape.adjoint(x).is_none());
    assert_eq!(tape.adjoint(w).unwrap().shape(), [2, 4]);
}

/// A small CNN on the tape: conv → relu → max pool → batch norm → flatten → linear →
/// log-softmax → select, with the input's tangent seeded before recording when given.
/// Returns (tape, input, output, every non-constant node).
fn small_cnn(
    x: Tensor<f64>,
    tangent: Option<Tensor<f64>>,
) -> (Tape<f64>, NodeId, NodeId, Vec<NodeId>) {
    let mut rng = Rng::new(9);
    let mut tape = Tape::new();
    let input = tape.variable(x);
    if let Some(u) = tangent {
        tape.set_tangent(input, u).unwrap();
    }
    let w = tape.constant(rng.tensor(&[4, 2, 3, 3], -0.5, 0.5));
    let cb = tape.constant(rng.tensor(&[4], -0.5, 0.5));
    let stats: Vec<NodeId> = [(-0.5, 0.5), (0.5, 1.5), (0.5, 1.5), (-0.5, 0.5)]
        .iter()
        .map(|&(lo, hi)| tape.constant(rng.tensor(&[4], lo, hi)))
        .collect();
    let lw = tape.constant(rng.tensor(&[3, 36], -0.5, 0.5));
    let conv = Conv2d {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    };
    let pool = MaxPool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        ceil_mode: false,
    };
    let layers: Vec<(Box<dyn Op<f64>>, Vec<NodeId>)> = vec![
        (Box::new(conv), vec![w, cb]),
        (Box::new(Relu), vec![]),
        (Box::new(pool), vec![]),
        (Box::new(BatchNorm { eps: 1e-5 }), stats),
        (
            Box::new(Flatten {
                start_dim: 1,
                end_dim: -1,
            }),
            vec![],
        ),
        (Box::new(Linear { bias: false }), vec![lw]),
        (Box::new(LogSoftmax { dim: 1 }), vec![]),
        (Box::new(Select { axis: 1, index: 2 }), vec![]),
    ];
    let mut nodes = vec![input];
    for (op, params) in layers {
        let inputs = [&[*nodes.last().unwrap()][..], &params].concat();
        nodes.push(tape.apply_boxed(op, &inputs).unwrap());
    }
    let out = *nodes.last().unwrap();
    (tape, input, out, nodes)
}

#[test]
fn replayed_tangents_equal_eager_tangents() {
    let mut rng = Rng::new(5);
    let x = rng.tensor(&[2, 2, 6, 6], -1.0, 1.0);
    let u = rng.tensor(&[2, 2, 6, 6], -1.0, 1.0);
    let (eager, _, _, nodes) = small_cnn(x.clone(), Some(u.clone()));
    let (mut replay, input, _, _) = small_cnn(x, None);
    assert!(replay.tangent(nodes[1]).is_none());
    replay.compute_tangents(vec![(input, u)]).unwrap();
    for &n in &nodes {
        let want = eager.tangent(n).expect("eager tangent");
        assert_eq!(
            replay.tangent(n).expect("replayed tangent").data(),
            want.data(),
            "node {n:?}"
        );
        assert_eq!(want.shape(), eager.value(n).shape());
    }
}

#[test]
fn backward_twice_gives_the_same_adjoints() {
    let x = Rng::new(6).tensor(&[2, 2, 6, 6], -1.0, 1.0);
    let (mut tape, _, out, nodes) = small_cnn(x, None);
    tape.backward(out, Tensor::full(&[2], 1.0)).unwrap();
    let first: Vec<Tensor<f64>> = nodes
        .iter()
        .map(|&n| tape.adjoint(n).expect("adjoint").clone())
        .collect();
    tape.backward(out, Tensor::full(&[2], 1.0)).unwrap();
    for (&n, a) in nodes.iter().zip(&first) {
        assert_eq!(
            tape.adjoint(n).unwrap().data(),
            a.data(),
            "node {n:?} adjoint changed"
        );
    }
}

#[test]
fn whole_network_satisfies_the_dot_identity_at_relu_zeros_and_pool_ties() {
    // Inputs from {−1, 0, 1}: conv outputs hit relu kinks rarely, but pool ties often.
    for seed in 0..8 {
        let mut rng = Rng::new(100 + seed);
        let x = rng.kinky(&[2, 2, 6, 6], 1.0);
        let u = rng.tensor(&[2, 2, 6, 6], -1.0, 1.0);
        let v = rng.tensor(&[2], -1.0, 1.0);
        let (mut tape, input, out, _) = small_cnn(x, Some(u.clone()));
        tape.backward(out, v.clone()).unwrap();
        let lhs = v.dot(tape.tangent(out).unwrap()).unwrap();
        let rhs = tape.adjoint(input).unwrap().dot(&u).unwrap();
        let scale: f64 = v
            .data()
            .iter()
            .zip(tape.tangent(out).unwrap().data())
            .map(|(a, b)| (a * b).abs())
            .sum::<f64>()
            + tape
                .adjoint(input)
                .unwrap()
                .data()
                .iter()
                .zip(u.data())
                .map(|(a, b)| (a * b).abs())
                .sum::<f64>();
        assert!(
            (lhs - rhs).abs() <= 1e-10 * scale,
            "seed {seed}: {lhs} vs {rhs}"
        );
    }
}

/// Applies `op` to variables of the given shapes; expects an error that starts with the
/// op's name and returns its message.
fn apply_err(op: impl Op<f64> + 'static, shapes: &[&[usize]]) -> String {
    let mut tape = Tape::new();
    let ids: Vec<NodeId> = shapes
        .iter()
        .map(|s| tape.variable(Tensor::zeros(s)))
        .collect();
    let name = op.name();
    let err = tape.apply(op, &ids).expect_err(name).0;
    assert!(
        err.starts_with(name),
        "error {err:?} does not start with {name}"
    );
    err
}

#[test]
fn elementwise_and_tensor_ops_reject_bad_shapes_and_params() {
    let binary: Vec<Box<dyn Op<f64>>> =
        vec![Box::new(Add), Box::new(Sub), Box::new(Mul), Box::new(Div)];
    for op in binary {
        let mut tape = Tape::new();
        let a = tape.variable(Tensor::zeros(&[2, 3]));
        let b = tape.variable(Tensor::zeros(&[3, 2]));
        let err = tape.apply_boxed(op, &[a, b]).unwrap_err().0;
        assert!(err.contains("[2, 3]") && err.contains("[3, 2]"), "{err}");
    }
    apply_err(AddScalar(1.0), &[&[2], &[2]]);
    apply_err(Relu, &[]);
    assert!(apply_err(Prelu, &[&[2, 3, 4], &[4]]).contains("one per channel"));
    apply_err(Prelu, &[&[5], &[5]]);
    apply_err(Softmax { dim: 3 }, &[&[2, 3, 4]]);
    apply_err(LogSoftmax { dim: 1 }, &[&[]]);
    apply_err(
        SumAxis {
            axis: 2,
            keepdim: false,
        },
        &[&[2, 3]],
    );
    assert!(apply_err(Mean, &[&[0, 3]]).contains("no elements"));
    assert!(apply_err(Reshape { shape: vec![4, 2] }, &[&[3, 3]]).contains("9 elements"));
    apply_err(
        Flatten {
            start_dim: 2,
            end_dim: 1,
        },
        &[&[2, 3, 4]],
    );
    apply_err(
        Flatten {
            start_dim: 0,
            end_dim: -4,
        },
        &[&[2, 3, 4]],
    );
    apply_err(
        Permute {
            dims: vec![0, 0, 1],
        },
        &[&[2, 3, 4]],
    );
    apply_err(Permute { dims: vec![1, 0] }, &[&[2, 3, 4]]);
    apply_err(Concat { axis: 0 }, &[]);
    assert!(apply_err(Concat { axis: 1 }, &[&[2, 3], &[3, 3]]).contains("input 1"));
    apply_err(Concat { axis: 2 }, &[&[2, 3], &[2, 3]]);
    apply_err(
        BatchNorm { eps: 1e-5 },
        &[&[2, 3, 4, 4, 4], &[3], &[3], &[3], &[3]],
    );
    assert!(
        apply_err(BatchNorm { eps: 1e-5 }, &[&[2, 3], &[3], &[4], &[3], &[3]])
            .contains("running_var")
    );
    apply_err(BatchNorm { eps: 1e-5 }, &[&[2, 3], &[3], &[3], &[3]]);
    let err = apply_err(
        Embedding {
            indices: vec![0, 7],
            index_shape: vec![2],
        },
        &[&[5, 3]],
    );
    assert!(err.contains("index 7"), "{err}");
    apply_err(
        Embedding {
            indices: vec![0, 1],
            index_shape: vec![3],
        },
        &[&[5, 3]],
    );
    apply_err(
        Embedding {
            indices: vec![0],
            index_shape: vec![1],
        },
        &[&[5]],
    );
    assert!(apply_err(
        GatherRows {
            indices: vec![0, 4]
        },
        &[&[2, 4]]
    )
    .contains("index 4"));
    apply_err(GatherRows { indices: vec![0] }, &[&[2, 4]]);
    apply_err(
        GatherRows {
            indices: vec![0, 0],
        },
        &[&[2, 4, 1]],
    );
    apply_err(Select { axis: 1, index: 3 }, &[&[2, 3]]);
    apply_err(Select { axis: 2, index: 0 }, &[&[2, 3]]);
    assert!(apply_err(
        CrossEntropy {
            targets: vec![0, 5]
        },
        &[&[2, 5]]
    )
    .contains("target 5"));
    apply_err(CrossEntropy { targets: vec![] }, &[&[0, 5]]);
    apply_err(CrossEntropy { targets: vec![0] }, &[&[1, 5, 1]]);
}

fn conv2d(groups: usize, stride: usize, padding: usize, bias: bool) -> Conv2d {
    Conv2d {
        stride: [stride; 2],
        padding: [padding; 2],
        dilation: [1, 1],
        groups,
        bias,
    }
}

fn max_pool(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
    MaxPool2d {
        kernel: [kernel; 2],
        stride: [stride; 2],
        padding: [padding; 2],
        dilation: [1, 1],
        ceil_mode: false,
    }
}

#[test]
fn layer_ops_reject_bad_shapes_and_params() {
    assert!(apply_err(MatMul, &[&[2, 3], &[4, 5]]).contains("[2, 3] by [4, 5]"));
    apply_err(MatMul, &[&[2, 3, 1], &[3, 5]]);
    assert!(apply_err(Linear { bias: false }, &[&[2, 3], &[4, 5]]).contains("input features"));
    assert!(apply_err(Linear { bias: true }, &[&[2, 5], &[4, 5], &[5]]).contains("bias"));
    apply_err(Linear { bias: true }, &[&[2, 5], &[4, 5]]);
    apply_err(Linear { bias: false }, &[&[], &[4, 5]]);
    assert_eq!(
        apply_err(conv2d(1, 1, 0, false), &[&[2, 3, 8, 8], &[4, 2, 3, 3]]),
        "conv2d: input [2, 3, 8, 8] has 3 channels, weight [4, 2, 3, 3] expects 2 (groups 1)"
    );
    // Groups not dividing the channels.
    assert!(
        apply_err(conv2d(2, 1, 0, false), &[&[2, 3, 8, 8], &[4, 1, 3, 3]]).contains("groups 2")
    );
    assert!(
        apply_err(conv2d(2, 1, 0, false), &[&[2, 4, 8, 8], &[3, 2, 3, 3]]).contains("divisible")
    );
    apply_err(conv2d(0, 1, 0, false), &[&[2, 4, 8, 8], &[4, 2, 3, 3]]);
    // Kernel larger than the padded input, zero stride, zero batch, zero-size kernel.
    apply_err(conv2d(1, 1, 0, false), &[&[1, 1, 2, 2], &[1, 1, 3, 3]]);
    apply_err(conv2d(1, 0, 0, false), &[&[1, 1, 4, 4], &[1, 1, 3, 3]]);
    apply_err(conv2d(1, 1, 0, false), &[&[0, 1, 4, 4], &[1, 1, 3, 3]]);
    apply_err(conv2d(1, 1, 0, false), &[&[1, 1, 4, 4], &[1, 1, 0, 3]]);
    apply_err(conv2d(1, 1, 0, true), &[&[1, 1, 4, 4], &[2, 1, 3, 3], &[3]]);
    apply_err(conv2d(1, 1, 0, false), &[&[1, 1, 4, 4], &[2, 1, 3]]);
    apply_err(conv2d(1, 1, 0, false), &[&[4, 4], &[2, 1, 3, 3]]);
    let conv1d = Conv1d {
        stride: 1,
        padding: 0,
        dilation: 1,
        groups: 3,
        bias: false,
    };
    assert!(apply_err(conv1d, &[&[2, 4, 8], &[3, 1, 3]]).contains("has 4 channels"));
    let conv1d = Conv1d {
        stride: 1,
        padding: 0,
        dilation: 4,
        groups: 1,
        bias: false,
    };
    apply_err(conv1d, &[&[2, 4, 8], &[3, 4, 3]]);
    // Pooling: kernel larger than the padded input, zero kernel, padding over half the
    // window, wrong rank.
    apply_err(max_pool(5, 1, 0), &[&[1, 1, 3, 3]]);
    apply_err(max_pool(0, 1, 0), &[&[1, 1, 3, 3]]);
    apply_err(max_pool(2, 1, 2), &[&[1, 1, 3, 3]]);
    apply_err(max_pool(2, 0, 0), &[&[1, 1, 3, 3]]);
    apply_err(max_pool(2, 1, 0), &[&[3, 3]]);
    let pool1d = MaxPool1d {
        kernel: 4,
        stride: 1,
        padding: 0,
        dilation: 1,
        ceil_mode: false,
    };
    apply_err(pool1d, &[&[1, 2, 3]]);
    let avg = AvgPool2d {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [2, 2],
        ceil_mode: false,
        count_include_pad: true,
    };
    apply_err(avg, &[&[1, 1, 5, 5]]);
    apply_err(
        AdaptiveAvgPool2d {
            output_size: [0, 2],
        },
        &[&[1, 1, 5, 5]],
    );
    apply_err(
        AdaptiveAvgPool2d {
            output_size: [2, 2],
        },
        &[&[1, 0, 5, 5]],
    );
}

/// An op and valid inputs for it.
type Case = (Box<dyn Op<f64>>, Vec<Tensor<f64>>);

/// Every op with valid inputs, for the argument-checking test below.
fn valid_cases() -> Vec<Case> {
    let mut rng = Rng::new(11);
    let mut r = |shape: &[usize]| rng.tensor(shape, 0.5, 1.5);
    let pool = max_pool(2, 1, 1);
    let avg = AvgPool2d {
        kernel: [2, 2],
        stride: [1, 1],
        padding: [1, 1],
        ceil_mode: true,
        count_include_pad: false,
    };
    vec![
        (Box::new(Add), vec![r(&[2, 3]), r(&[2, 3])]),
        (Box::new(Sub), vec![r(&[2, 3]), r(&[2, 3])]),
        (Box::new(Mul), vec![r(&[2, 3]), r(&[2, 3])]),
        (Box::new(Div), vec![r(&[2, 3]), r(&[2, 3])]),
        (Box::new(AddScalar(1.0)), vec![r(&[2, 3])]),
        (Box::new(MulScalar(2.0)), vec![r(&[2, 3])]),
        (Box::new(Neg), vec![r(&[2, 3])]),
        (Box::new(Relu), vec![r(&[2, 3])]),
        (
            Box::new(LeakyRelu {
                negative_slope: 0.1,
            }),
            vec![r(&[2, 3])],
        ),
        (Box::new(Prelu), vec![r(&[2, 3]), r(&[3])]),
        (Box::new(Tanh), vec![r(&[2, 3])]),
        (Box::new(Sigmoid), vec![r(&[2, 3])]),
        (Box::new(Exp), vec![r(&[2, 3])]),
        (Box::new(Log), vec![r(&[2, 3])]),
        (Box::new(Softmax { dim: 1 }), vec![r(&[2, 3])]),
        (Box::new(LogSoftmax { dim: 0 }), vec![r(&[2, 3])]),
        (Box::new(Sum), vec![r(&[2, 3])]),
        (Box::new(Mean), vec![r(&[2, 3])]),
        (
            Box::new(SumAxis {
                axis: 1,
                keepdim: true,
            }),
            vec![r(&[2, 3])],
        ),
        (Box::new(Reshape { shape: vec![3, 2] }), vec![r(&[2, 3])]),
        (
            Box::new(Flatten {
                start_dim: 0,
                end_dim: -1,
            }),
            vec![r(&[2, 3])],
        ),
        (Box::new(Permute { dims: vec![1, 0] }), vec![r(&[2, 3])]),
        (Box::new(Concat { axis: 1 }), vec![r(&[2, 3]), r(&[2, 1])]),
        (Box::new(Identity), vec![r(&[2, 3])]),
        (
            Box::new(BatchNorm { eps: 1e-5 }),
            vec![r(&[2, 3]), r(&[3]), r(&[3]), r(&[3]), r(&[3])],
        ),
        (
            Box::new(Embedding {
                indices: vec![1, 0],
                index_shape: vec![2],
            }),
            vec![r(&[2, 3])],
        ),
        (
            Box::new(GatherRows {
                indices: vec![1, 0],
            }),
            vec![r(&[2, 3])],
        ),
        (Box::new(Select { axis: 0, index: 1 }), vec![r(&[2, 3])]),
        (
            Box::new(CrossEntropy {
                targets: vec![1, 0],
            }),
            vec![r(&[2, 3])],
        ),
        (Box::new(MatMul), vec![r(&[2, 3]), r(&[3, 2])]),
        (
            Box::new(Linear { bias: true }),
            vec![r(&[2, 3]), r(&[4, 3]), r(&[4])],
        ),
        (
            Box::new(conv2d(1, 1, 1, true)),
            vec![r(&[1, 2, 4, 4]), r(&[3, 2, 3, 3]), r(&[3])],
        ),
        (
            Box::new(Conv1d {
                stride: 1,
                padding: 0,
                dilation: 1,
                groups: 1,
                bias: false,
            }),
            vec![r(&[1, 2, 4]), r(&[3, 2, 3])],
        ),
        (Box::new(pool), vec![r(&[1, 2, 4, 4])]),
        (
            Box::new(MaxPool1d {
                kernel: 2,
                stride: 1,
                padding: 0,
                dilation: 1,
                ceil_mode: false,
            }),
            vec![r(&[1, 2, 4])],
        ),
        (Box::new(avg), vec![r(&[1, 2, 4, 4])]),
        (
            Box::new(AdaptiveAvgPool2d {
                output_size: [2, 3],
            }),
            vec![r(&[1, 2, 4, 4])],
        ),
    ]
}

#[test]
fn vjp_and_jvp_reject_malformed_arguments_without_panicking() {
    for (op, inputs) in valid_cases() {
        let name = op.name();
        let x: Vec<&Tensor<f64>> = inputs.iter().collect();
        let y = op.forward(&x).unwrap();
        let needs = vec![true; x.len()];
        let mut bigger = y.shape().to_vec();
        bigger.push(2);
        let wrong = Tensor::zeros(&bigger);
        assert!(
            op.vjp(&x, &y, &wrong, &needs).is_err(),
            "{name}: vjp accepted a gradient of shape {bigger:?}"
        );
        assert!(
            op.vjp(&x, &wrong, &wrong, &needs).is_err(),
            "{name}: vjp accepted an output of shape {bigger:?}"
        );
        assert!(
            op.vjp(&x, &y, &y, &needs[1..]).is_err(),
            "{name}: vjp accepted too few needs"
        );
        assert!(
            op.vjp(&x[1..], &y, &y, &needs[1..]).is_err() || name == "concat",
            "{name}: vjp accepted too few inputs"
        );
        let mut t: Vec<Option<&Tensor<f64>>> = x.iter().map(|&xi| Some(xi)).collect();
        assert!(
            op.jvp(&x, &y, &t).is_ok(),
            "{name}: jvp rejected valid tangents"
        );
        assert!(
            op.jvp(&x, &y, &t[1..]).is_err(),
            "{name}: jvp accepted too few tangents"
        );
        let wrong_tangent = Tensor::zeros(&[x[0].len() + 1]);
        t[0] = Some(&wrong_tangent);
        assert!(
            op.jvp(&x, &y, &t).is_err(),
            "{name}: jvp accepted a tangent of the wrong shape"
        );
        assert!(
            op.jvp(&x, &wrong, &[None; 8][..x.len()]).is_err(),
            "{name}: jvp accepted an output of shape {bigger:?}"
        );
        assert!(
            op.forward(&[]).is_err(),
            "{name}: forward accepted no inputs"
        );
    }
}

#[test]
fn ops_declared_affine_are_affine_in_their_first_input() {
    let mut rng = Rng::new(12);
    let mut affine = 0;
    for (op, inputs) in valid_cases() {
        let kind = op.linearity();
        let expected = match op.name() {
            "relu" | "leaky_relu" | "prelu" | "max_pool2d" | "max_pool1d" => {
                Linearity::PiecewiseLinear
            }
            "mul" | "div" | "tanh" | "sigmoid" | "exp" | "log" | "softmax" | "log_softmax"
            | "cross_entropy" | "matmul" => Linearity::Smooth,
            _ => Linearity::Affine,
        };
        assert_eq!(kind, expected, "{}", op.name());
        if kind != Linearity::Affine {
            continue;
        }
        affine += 1;
        // f(x + u) − f(x) = J·u exactly up to rounding, however large u is.
        let u = rng.tensor(inputs[0].shape(), -10.0, 10.0);
        let x: Vec<&Tensor<f64>> = inputs.iter().collect();
        let y = op.forward(&x).unwrap();
        let moved = inputs[0].zip_map(&u, |a, b| a + b).unwrap();
        let mut xm = x.clone();
        xm[0] = &moved;
        let diff = op.forward(&xm).unwrap().zip_map(&y, |a, b| a - b).unwrap();
        let mut t: Vec<Option<&Tensor<f64>>> = vec![None; x.len()];
        t[0] = Some(&u);
        assert_close(op.name(), &diff, &op.jvp(&x, &y, &t).unwrap(), 1e-12);
    }
    assert!(affine >= 20, "only {affine} affine ops checked");
}

/// The tape hands max pooling the argmax its forward pass saved; the VJP and JVP computed
/// from it must equal the op's own stateless VJP and JVP bit for bit, ties and NaNs included.
#[test]
fn max_pool_saved_argmax_matches_stateless_vjp_and_jvp() {
    let mut rng = Rng::new(17);
    for (kernel, stride, padding) in [(2, 2, 0), (3, 2, 1), (2, 1, 0), (3, 3, 1)] {
        // Values from a small set, so windows hold ties; one NaN.
        let mut data: Vec<f64> = (0..2 * 3 * 7 * 7)
            .map(|_| (rng.uniform(-2.0, 2.0)).round())
            .collect();
        data[11] = f64::NAN;
        let x = t(&[2, 3, 7, 7], &data);
        let dir = t(
            &[2, 3, 7, 7],
            &(0..data.len())
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect::<Vec<_>>(),
        );
        let op = max_pool(kernel, stride, padding);
        let mut tape = Tape::new();
        let input = tape.variable(x.clone());
        tape.set_tangent(input, dir.clone()).unwrap();
        let y = tape.apply(op, &[input]).unwrap();
        let seed = t(
            tape.value(y).shape(),
            &(0..tape.value(y).len())
                .map(|_| rng.uniform(-1.0, 1.0))
                .collect::<Vec<_>>(),
        );
        tape.backward(y, seed.clone()).unwrap();
        let stateless_y = op.forward(&[&x]).unwrap();
        let stateless_dx = op.vjp(&[&x], &stateless_y, &seed, &[true]).unwrap()[0]
            .clone()
            .unwrap();
        let stateless_t = op.jvp(&[&x], &stateless_y, &[Some(&dir)]).unwrap();
        let bits = |v: &Tensor<f64>| v.data().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(tape.value(y)), bits(&stateless_y));
        assert_eq!(bits(tape.adjoint(input).unwrap()), bits(&stateless_dx));
        assert_eq!(bits(tape.tangent(y).unwrap()), bits(&stateless_t));
        // compute_tangents replays the JVP from the saved state as well.
        tape.compute_tangents(vec![(input, dir.clone())]).unwrap();
        assert_eq!(bits(tape.tangent(y).unwrap()), bits(&stateless_t));
    }
}

/// Truncating a tape back to its first nodes keeps them (values intact, adjoints and
/// tangents cleared) and a pass recorded after it equals one on a fresh tape, bit for bit.
#[test]
fn truncate_keeps_the_prefix_and_replays_like_a_fresh_tape() {
    let mut rng = Rng::new(5);
    let w = rng.tensor(&[4, 3], -1.0, 1.0);
    let run = |tape: &mut Tape<f64>, w_id: NodeId, x: &Tensor<f64>| {
        let xi = tape.variable(x.clone());
        tape.set_tangent(xi, x.clone()).unwrap();
        let h = tape.apply(MatMul, &[xi, w_id]).unwrap();
        let y = tape.apply(Relu, &[h]).unwrap();
        let s = tape.apply(Sum, &[y]).unwrap();
        tape.backward_scalar(s).unwrap();
        let bits = |t: &Tensor<f64>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (
            bits(tape.adjoint(xi).unwrap()),
            bits(tape.tangent(y).unwrap()),
        )
    };
    let mut tape = Tape::new();
    let w_id = tape.constant(w.clone());
    let mark = tape.len();
    let x1 = rng.tensor(&[5, 4], -1.0, 1.0);
    let x2 = rng.tensor(&[2, 4], -1.0, 1.0);
    run(&mut tape, w_id, &x1);
    tape.truncate(mark);
    assert_eq!(tape.len(), mark);
    assert_eq!(tape.value(w_id), &w);
    assert!(tape.adjoint(w_id).is_none() && tape.tangent(w_id).is_none());
    let replayed = run(&mut tape, w_id, &x2);
    let mut fresh = Tape::new();
    let w_fresh = fresh.constant(w.clone());
    assert_eq!(replayed, run(&mut fresh, w_fresh, &x2));
}

/// Pointwise ops compute value and tangent in one pass when the tape carries tangents;
/// that must equal `forward` then `jvp` bit for bit, NaNs, zeros and kinks included.
#[test]
fn fused_pointwise_forward_and_tangent_equal_separate_calls() {
    fn check(op: impl Op<f64> + Clone + 'static, x: &Tensor<f64>, t: &Tensor<f64>) {
        let mut tape = Tape::new();
        let input = tape.variable(x.clone());
        tape.set_tangent(input, t.clone()).unwrap();
        let y = tape.apply(op.clone(), &[input]).unwrap();
        let bits = |v: &Tensor<f64>| v.data().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let value = op.forward(&[x]).unwrap();
        let tangent = op.jvp(&[x], &value, &[Some(t)]).unwrap();
        assert_eq!(bits(tape.value(y)), bits(&value), "{}", op.name());
        assert_eq!(
            bits(tape.tangent(y).unwrap()),
            bits(&tangent),
            "{}",
            op.name()
        );
    }
    let mut rng = Rng::new(23);
    // Long enough for the parallel path (2^16 elements), with zeros, NaNs and infinities.
    let n = 70_000;
    let mut data: Vec<f64> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
    for (i, special) in [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        data[i * 997] = special;
    }
    let t_data: Vec<f64> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    for len in [5, n] {
        let x = t(&[len], &data[..len]);
        let tan = t(&[len], &t_data[..len]);
        check(Relu, &x, &tan);
        check(
            LeakyRelu {
                negative_slope: 0.1,
            },
            &x,
            &tan,
        );
        check(Tanh, &x, &tan);
        check(Sigmoid, &x, &tan);
        check(Exp, &x, &tan);
        check(Log, &x, &tan);
    }
}

/// Linear's values and tangents stacked into one gemm (when only the input carries a
/// tangent) equal its separate forward and JVP bit for bit, in f32 and f64, with and
/// without bias, on sizes that cross the gemm's tile edges, its k-blocks and its
/// threshold for splitting over threads; weight tangents take the separate path.
#[test]
fn linear_values_and_tangents_in_one_gemm_equal_separate_calls() {
    fn check<T: mho::Float>(bias: bool, x: &[Tensor<T>], tangents: &[Option<&Tensor<T>>]) {
        let op = Linear { bias };
        let mut tape = Tape::new();
        let ids: Vec<NodeId> = x.iter().map(|v| tape.constant(v.clone())).collect();
        let ids: Vec<NodeId> = ids
            .into_iter()
            .zip(tangents)
            .map(|(id, t)| {
                if let Some(t) = t {
                    tape.set_tangent(id, (*t).clone()).unwrap();
                }
                id
            })
            .collect();
        let y = tape.apply(op, &ids).unwrap();
        let refs: Vec<&Tensor<T>> = x.iter().collect();
        let value = op.forward(&refs).unwrap();
        let tangent = op.jvp(&refs, &value, tangents).unwrap();
        let bits = |v: &Tensor<T>| {
            v.data()
                .iter()
                .map(|f| f.to_f64().to_bits())
                .collect::<Vec<_>>()
        };
        let shape = x[0].shape();
        assert_eq!(
            bits(tape.value(y)),
            bits(&value),
            "value, {shape:?} bias {bias}"
        );
        assert_eq!(
            bits(tape.tangent(y).unwrap()),
            bits(&tangent),
            "tangent, {shape:?} bias {bias}"
        );
    }
    fn both<T: mho::Float>(rng: &mut Rng, rows: usize, inf: usize, outf: usize) {
        let mut make = |shape: &[usize]| {
            let v = rng.tensor(shape, -1.0, 1.0);
            Tensor::new(
                shape.to_vec(),
                v.data().iter().map(|&f| T::from_f64(f)).collect(),
            )
            .unwrap()
        };
        let (x, w, b) = (make(&[rows, inf]), make(&[outf, inf]), make(&[outf]));
        let (tx, tw) = (make(&[rows, inf]), make(&[outf, inf]));
        for bias in [false, true] {
            let inputs = if bias {
                vec![x.clone(), w.clone(), b.clone()]
            } else {
                vec![x.clone(), w.clone()]
            };
            let mut only_x = vec![Some(&tx), None];
            if bias {
                only_x.push(None);
            }
            check(bias, &inputs, &only_x);
            let mut x_and_w = vec![Some(&tx), Some(&tw)];
            if bias {
                x_and_w.push(None);
            }
            check(bias, &inputs, &x_and_w);
        }
    }
    // A 3-D input: its leading axes are the rows.
    let mut rng = Rng::new(43);
    let mut make = |shape: &[usize]| {
        let v = rng.tensor(shape, -1.0, 1.0);
        Tensor::new(shape.to_vec(), v.data().iter().map(|&f| f as f32).collect()).unwrap()
    };
    let (x, w, b, tx) = (
        make(&[2, 5, 7]),
        make(&[4, 7]),
        make(&[4]),
        make(&[2, 5, 7]),
    );
    check(true, &[x, w, b], &[Some(&tx), None, None]);
    let mut rng = Rng::new(41);
    for (rows, inf, outf) in [
        (1, 1, 1),
        (3, 7, 5),
        (13, 33, 17),
        (25, 300, 40),
        (50, 4096, 256),
    ] {
        both::<f32>(&mut rng, rows, inf, outf);
        both::<f64>(&mut rng, rows, inf, outf);
    }
}
