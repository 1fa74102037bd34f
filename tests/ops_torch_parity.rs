//! Forward values (and gradients at kinks and ties) of every op against PyTorch, on
//! deterministic inputs with non-default parameters. The expected values come from
//! `tests/common/torch_expected.py`; the gradient checks in the other `ops_*` tests then
//! tie every VJP and JVP to these forward values.

#[path = "common/torch_expected.rs"]
mod expected;

use mho::ops::*;
use mho::{Op, Tensor};

/// x[i] = scale·sin(0.7·i + phase), as in the generator.
fn wave(shape: &[usize], phase: f64, scale: f64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| scale * (0.7 * i as f64 + phase).sin())
        .collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// round(wave(·, phase, 1.5)): small integers with exact zeros and ties.
fn steps(shape: &[usize], phase: f64) -> Tensor<f64> {
    wave(shape, phase, 1.5).map(f64::round)
}

fn run(op: &dyn Op<f64>, inputs: &[&Tensor<f64>]) -> Tensor<f64> {
    op.forward(inputs)
        .unwrap_or_else(|e| panic!("{}: {e}", op.name()))
}

/// The gradient of ⟨g, op(x)⟩ with respect to the first input.
fn grad(
    op: &dyn Op<f64>,
    inputs: &[&Tensor<f64>],
    g: impl Fn(&[usize]) -> Tensor<f64>,
) -> Tensor<f64> {
    let y = run(op, inputs);
    let mut needs = vec![false; inputs.len()];
    needs[0] = true;
    let g = g(y.shape());
    op.vjp(inputs, &y, &g, &needs).unwrap()[0].clone().unwrap()
}

fn ones(shape: &[usize]) -> Tensor<f64> {
    Tensor::full(shape, 1.0)
}

/// The mho value of one named case.
fn compute(name: &str) -> Tensor<f64> {
    let x = wave(&[2, 3, 4], 0.0, 2.0);
    let a = wave(&[2, 3, 2], 0.4, 2.0);
    let kinks = steps(&[2, 3, 2], 0.9);
    let slopes = Tensor::from_f64(&[3], &[0.1, -0.3, 0.25]).unwrap();
    let (mean, var) = (
        wave(&[3], 1.0, 0.5),
        wave(&[3], 2.0, 2.0).map(|v| 0.5 + v * v),
    );
    let (weight, bias) = (wave(&[3], 3.0, 2.0), wave(&[3], 4.0, 2.0));
    match name {
        "softmax_dim1" => run(&Softmax { dim: 1 }, &[&x]),
        "log_softmax_dim2" => run(&LogSoftmax { dim: 2 }, &[&x]),
        "log_softmax_dim0" => run(&LogSoftmax { dim: 0 }, &[&x]),
        "sum" => run(&Sum, &[&x]),
        "mean" => run(&Mean, &[&x]),
        "sum_axis1_keepdim" => run(
            &SumAxis {
                axis: 1,
                keepdim: true,
            },
            &[&x],
        ),
        "permute_201" => run(
            &Permute {
                dims: vec![2, 0, 1],
            },
            &[&x],
        ),
        "concat_axis1" => run(
            &Concat { axis: 1 },
            &[&wave(&[2, 1, 3], 1.0, 2.0), &wave(&[2, 2, 3], 2.0, 2.0)],
        ),
        "select_axis1_index2" => run(&Select { axis: 1, index: 2 }, &[&x]),
        "gather_rows" => run(
            &GatherRows {
                indices: vec![2, 0, 3],
            },
            &[&wave(&[3, 4], 0.5, 2.0)],
        ),
        "embedding" => run(
            &Embedding {
                indices: vec![1, 0, 3, 1],
                index_shape: vec![2, 2],
            },
            &[&wave(&[4, 3], 0.3, 2.0)],
        ),
        "cross_entropy" => run(
            &CrossEntropy {
                targets: vec![1, 3, 0],
            },
            &[&wave(&[3, 4], 0.2, 2.0)],
        ),
        "tanh" => run(&Tanh, &[&a]),
        "sigmoid" => run(&Sigmoid, &[&a]),
        "exp" => run(&Exp, &[&a]),
        "log" => run(&Log, &[&a.map(|v| 0.5 + v * v)]),
        "leaky_relu" => run(
            &LeakyRelu {
                negative_slope: 0.2,
            },
            &[&a],
        ),
        "prelu" => run(&Prelu, &[&a, &slopes]),
        "relu_kink_grad" => grad(&Relu, &[&kinks], ones),
        "leaky_relu_kink_grad" => grad(
            &LeakyRelu {
                negative_slope: 0.2,
            },
            &[&kinks],
            ones,
        ),
        "prelu_kink_grad" => grad(&Prelu, &[&kinks, &slopes], ones),
        "batch_norm_4d" => run(
            &BatchNorm { eps: 1e-5 },
            &[&wave(&[2, 3, 2, 2], 0.1, 2.0), &mean, &var, &weight, &bias],
        ),
        "batch_norm_2d" => run(
            &BatchNorm { eps: 0.1 },
            &[&wave(&[4, 3], 0.6, 2.0), &mean, &var, &weight, &bias],
        ),
        "linear_3d_bias" => run(
            &Linear { bias: true },
            &[
                &wave(&[2, 3, 5], 0.2, 2.0),
                &wave(&[4, 5], 1.1, 1.0),
                &wave(&[4], 2.2, 1.0),
            ],
        ),
        "matmul" => run(
            &MatMul,
            &[&wave(&[3, 4], 0.0, 2.0), &wave(&[4, 2], 1.0, 2.0)],
        ),
        "conv2d" => run(
            &Conv2d {
                stride: [2, 1],
                padding: [1, 2],
                dilation: [2, 1],
                groups: 2,
                bias: true,
            },
            &[
                &wave(&[2, 4, 7, 6], 0.3, 2.0),
                &wave(&[6, 2, 3, 2], 1.3, 1.0),
                &wave(&[6], 2.3, 1.0),
            ],
        ),
        "conv1d" => run(
            &Conv1d {
                stride: 2,
                padding: 1,
                dilation: 2,
                groups: 3,
                bias: false,
            },
            &[&wave(&[2, 3, 9], 0.5, 2.0), &wave(&[6, 1, 3], 1.5, 1.0)],
        ),
        "max_pool2d" => run(
            &MaxPool2d {
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 1],
                dilation: [1, 2],
                ceil_mode: true,
            },
            &[&wave(&[2, 2, 7, 6], 0.7, 2.0)],
        ),
        "max_pool1d" => run(
            &MaxPool1d {
                kernel: 3,
                stride: 2,
                padding: 1,
                dilation: 1,
                ceil_mode: true,
            },
            &[&wave(&[2, 3, 10], 0.8, 2.0)],
        ),
        "avg_pool2d_exclude_pad" => run(
            &AvgPool2d {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
                ceil_mode: true,
                count_include_pad: false,
            },
            &[&wave(&[2, 2, 7, 8], 0.9, 2.0)],
        ),
        "avg_pool2d_include_pad" => run(
            &AvgPool2d {
                kernel: [2, 3],
                stride: [3, 2],
                padding: [1, 1],
                ceil_mode: true,
                count_include_pad: true,
            },
            &[&wave(&[2, 2, 7, 8], 0.9, 2.0)],
        ),
        "adaptive_avg_pool2d" => run(
            &AdaptiveAvgPool2d {
                output_size: [3, 9],
            },
            &[&wave(&[1, 2, 5, 7], 1.2, 2.0)],
        ),
        "max_pool2d_ties_grad" => grad(
            &MaxPool2d {
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                ceil_mode: false,
            },
            &[&steps(&[1, 2, 5, 6], 0.4)],
            |shape| wave(shape, 0.0, 1.0),
        ),
        other => panic!("no mho computation for case {other}"),
    }
}

#[test]
fn every_op_matches_pytorch() {
    for &(name, shape, want) in expected::CASES {
        let got = compute(name);
        assert_eq!(got.shape(), shape, "{name}: shape");
        for (k, (g, w)) in got.data().iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "{name}[{k}]: mho {g}, PyTorch {w}"
            );
        }
    }
}

#[test]
fn flatten_shapes_match_pytorch() {
    let shape_after = |shape: &[usize], start_dim, end_dim| {
        let x: Tensor<f64> = Tensor::zeros(shape);
        Flatten { start_dim, end_dim }
            .forward(&[&x])
            .map(|y| y.shape().to_vec())
    };
    // torch.flatten(torch.zeros(shape), start, end).shape
    assert_eq!(shape_after(&[2, 3, 4, 5], 1, -1).unwrap(), [2, 60]);
    assert_eq!(shape_after(&[2, 3, 4, 5], -3, -2).unwrap(), [2, 12, 5]);
    assert_eq!(shape_after(&[2, 3, 4, 5], 0, -1).unwrap(), [120]);
    assert_eq!(shape_after(&[2, 3, 4, 5], 2, 2).unwrap(), [2, 3, 4, 5]);
    assert_eq!(shape_after(&[], 0, -1).unwrap(), [1]);
    assert_eq!(shape_after(&[], -1, 0).unwrap(), [1]);
    assert_eq!(shape_after(&[7], 0, 0).unwrap(), [7]);
    assert!(shape_after(&[2, 3], 1, 0)
        .unwrap_err()
        .0
        .contains("start_dim"));
    assert!(shape_after(&[2, 3], 0, 2)
        .unwrap_err()
        .0
        .contains("out of range"));
    assert!(shape_after(&[], 0, 1).is_err());
}
