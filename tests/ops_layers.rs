//! Gradient checks (VJP vs finite differences, JVP vs finite differences, and the
//! dot-product identity, max-pool ties included) for the kernel-backed ops: matmul,
//! linear, convolutions and pooling, over random shapes, strides, padding, dilation,
//! groups, ceil_mode and count_include_pad.

mod common;

use common::{check_all, check_dot_identity, forward, Rng};
use mho::ops::{
    AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, Conv2dRelu, Linear, MatMul, MaxPool1d, MaxPool2d,
    Relu,
};
use mho::{Op, Tensor};
use proptest::prelude::*;

/// Runs (a), (b), (c) on one case, as a proptest result.
fn check(op: &dyn Op<f64>, inputs: &[Tensor<f64>], seed: u64) -> Result<(), TestCaseError> {
    check_all(op, inputs, seed).map_err(TestCaseError::fail)
}

/// Runs only (c), for inputs at kinks (max-pool ties).
fn check_at_kinks(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    seed: u64,
) -> Result<(), TestCaseError> {
    check_dot_identity(op, inputs, &mut Rng::new(seed)).map_err(TestCaseError::fail)
}

/// The shape of an input with `batch` examples of `per_example` shape; with `unbatched`
/// and one example, the batch axis is left out (as PyTorch allows).
fn batched(batch: usize, per_example: &[usize], unbatched: bool) -> Vec<usize> {
    if unbatched && batch == 1 {
        per_example.to_vec()
    } else {
        [&[batch][..], per_example].concat()
    }
}

/// One spatial axis of a window op: (kernel, stride, padding, dilation, input size) with
/// the input large enough for one window. `max_pad` maps the dilated kernel size to the
/// largest padding allowed.
fn axis(max_pad: fn(usize) -> usize) -> impl Strategy<Value = [usize; 5]> {
    (1usize..4, 1usize..4, 0usize..4, 1usize..4, 0usize..5).prop_map(move |(k, s, p, d, extra)| {
        let span = d * (k - 1) + 1;
        let p = p.min(max_pad(span));
        let min_in = span.saturating_sub(2 * p).max(1);
        [k, s, p, d, min_in + extra]
    })
}

/// A convolution's padding is unrestricted (up to 3).
fn any_pad(_: usize) -> usize {
    3
}

/// Pooling padding is at most half the dilated window.
fn half_window(span: usize) -> usize {
    span / 2
}

/// Max pooling outputs −∞ for windows that hold no input element; finite differences
/// need finite outputs.
fn all_finite(op: &dyn Op<f64>, inputs: &[Tensor<f64>]) -> bool {
    forward(op, inputs).is_ok_and(|y| y.data().iter().all(|v| v.is_finite()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matmul(m in 1usize..6, k in 1usize..6, n in 1usize..6, seed: u64) {
        let mut rng = Rng::new(seed);
        let a = rng.tensor(&[m, k], -2.0, 2.0);
        let b = rng.tensor(&[k, n], -2.0, 2.0);
        check(&MatMul, &[a, b], seed)?;
    }

    #[test]
    fn linear(
        lead in prop::collection::vec(1usize..4, 0..3),
        inf in 1usize..6,
        outf in 1usize..6,
        bias: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let mut inputs = vec![
            rng.tensor(&[&lead[..], &[inf]].concat(), -2.0, 2.0),
            rng.tensor(&[outf, inf], -1.0, 1.0),
        ];
        if bias {
            inputs.push(rng.tensor(&[outf], -1.0, 1.0));
        }
        check(&Linear { bias }, &inputs, seed)?;
    }

    #[test]
    fn conv2d(
        batch in 1usize..3,
        groups in 1usize..3,
        in_per_group in 1usize..3,
        out_per_group in 1usize..3,
        rows in axis(any_pad),
        cols in axis(any_pad),
        bias: bool,
        unbatched: bool,
        seed: u64,
    ) {
        let [kh, sh, ph, dh, h] = rows;
        let [kw, sw, pw, dw, w] = cols;
        let (cin, cout) = (groups * in_per_group, groups * out_per_group);
        let mut rng = Rng::new(seed);
        let mut inputs = vec![
            rng.tensor(&batched(batch, &[cin, h, w], unbatched), -2.0, 2.0),
            rng.tensor(&[cout, in_per_group, kh, kw], -1.0, 1.0),
        ];
        if bias {
            inputs.push(rng.tensor(&[cout], -1.0, 1.0));
        }
        let op = Conv2d { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups, bias };
        check(&op, &inputs, seed)?;
        // Fused with a ReLU: the same checks (finite differences away from kinks, which
        // random data avoids, and the dot-product identity, kinks included).
        check(&Conv2dRelu { conv: op }, &inputs, seed)?;
    }

    #[test]
    fn conv1d(
        batch in 1usize..3,
        groups in 1usize..3,
        in_per_group in 1usize..3,
        out_per_group in 1usize..3,
        len_axis in axis(any_pad),
        bias: bool,
        unbatched: bool,
        seed: u64,
    ) {
        let [k, stride, padding, dilation, len] = len_axis;
        let (cin, cout) = (groups * in_per_group, groups * out_per_group);
        let mut rng = Rng::new(seed);
        let mut inputs = vec![
            rng.tensor(&batched(batch, &[cin, len], unbatched), -2.0, 2.0),
            rng.tensor(&[cout, in_per_group, k], -1.0, 1.0),
        ];
        if bias {
            inputs.push(rng.tensor(&[cout], -1.0, 1.0));
        }
        let op = Conv1d { stride, padding, dilation, groups, bias };
        check(&op, &inputs, seed)?;
    }

    #[test]
    fn max_pool2d(
        batch in 1usize..3,
        channels in 1usize..3,
        rows in axis(half_window),
        cols in axis(half_window),
        ceil_mode: bool,
        unbatched: bool,
        seed: u64,
    ) {
        let [kh, sh, ph, dh, h] = rows;
        let [kw, sw, pw, dw, w] = cols;
        let op = MaxPool2d {
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            dilation: [dh, dw],
            ceil_mode,
        };
        let shape = batched(batch, &[channels, h, w], unbatched);
        let mut rng = Rng::new(seed);
        // Distinct values 0.05 apart: no ties, and finite-difference steps never reorder.
        let x = [rng.distinct(&shape, 0.05)];
        prop_assume!(all_finite(&op, &x));
        check(&op, &x, seed)?;
        // Values from {−1, 0, 1}: ties everywhere; the dot identity must still hold.
        check_at_kinks(&op, &[rng.kinky(&shape, 1.0)], seed)?;
    }

    #[test]
    fn max_pool1d(
        batch in 1usize..3,
        channels in 1usize..3,
        len_axis in axis(half_window),
        ceil_mode: bool,
        unbatched: bool,
        seed: u64,
    ) {
        let [kernel, stride, padding, dilation, len] = len_axis;
        let op = MaxPool1d { kernel, stride, padding, dilation, ceil_mode };
        let shape = batched(batch, &[channels, len], unbatched);
        let mut rng = Rng::new(seed);
        let x = [rng.distinct(&shape, 0.05)];
        prop_assume!(all_finite(&op, &x));
        check(&op, &x, seed)?;
        check_at_kinks(&op, &[rng.kinky(&shape, 1.0)], seed)?;
    }

    #[test]
    fn avg_pool2d(
        batch in 1usize..3,
        channels in 1usize..3,
        rows in axis(half_window),
        cols in axis(half_window),
        ceil_mode: bool,
        count_include_pad: bool,
        unbatched: bool,
        seed: u64,
    ) {
        // Average pooling has no dilation: use the strategy's kernel with dilation 1.
        let [kh, sh, ph, _, h] = rows;
        let [kw, sw, pw, _, w] = cols;
        let (ph, pw) = (ph.min(kh / 2), pw.min(kw / 2));
        let op = AvgPool2d {
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: [ph, pw],
            ceil_mode,
            count_include_pad,
        };
        let shape = batched(batch, &[channels, h.max(kh), w.max(kw)], unbatched);
        check(&op, &[Rng::new(seed).tensor(&shape, -2.0, 2.0)], seed)?;
    }

    #[test]
    fn adaptive_avg_pool2d(
        batch in 1usize..3,
        channels in 1usize..3,
        h in 1usize..8,
        w in 1usize..8,
        oh in 1usize..6,
        ow in 1usize..6,
        unbatched: bool,
        seed: u64,
    ) {
        let op = AdaptiveAvgPool2d { output_size: [oh, ow] };
        let shape = batched(batch, &[channels, h, w], unbatched);
        check(&op, &[Rng::new(seed).tensor(&shape, -2.0, 2.0)], seed)?;
    }
}

/// Tensors large enough for the kernels' parallel and tiled paths (multi-tile im2col,
/// row-block parallel gemm, parallel elementwise maps and pooling planes): JVP against
/// finite differences and the dot identity (both cheap at this size).
#[test]
fn large_tensors_take_the_parallel_paths() {
    let mut rng = Rng::new(21);
    let x = rng.tensor(&[2, 16, 48, 48], -1.0, 1.0);
    let conv = Conv2d {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 2,
        bias: true,
    };
    let conv_inputs = [
        x.clone(),
        rng.tensor(&[16, 8, 3, 3], -0.3, 0.3),
        rng.tensor(&[16], -1.0, 1.0),
    ];
    let pool = MaxPool2d {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        ceil_mode: true,
    };
    let avg = AvgPool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
        count_include_pad: true,
    };
    let linear_inputs = [
        rng.tensor(&[512, 256], -1.0, 1.0),
        rng.tensor(&[128, 256], -0.1, 0.1),
        rng.tensor(&[128], -1.0, 1.0),
    ];
    let distinct = [rng.distinct(&[2, 16, 48, 48], 1e-3)];
    let cases: [(&dyn Op<f64>, &[Tensor<f64>]); 5] = [
        (&conv, &conv_inputs),
        (&Linear { bias: true }, &linear_inputs),
        (&mho::ops::Tanh, std::slice::from_ref(&x)),
        (&pool, &distinct),
        (&avg, std::slice::from_ref(&x)),
    ];
    for (op, inputs) in cases {
        common::check_jvp_fd(op, inputs, &mut rng).unwrap();
        check_dot_identity(op, inputs, &mut rng).unwrap();
    }
}

/// `op` in f32 (sgemm, f32 kernels) agrees with f64 to f32 precision: forward, VJP, JVP.
fn f32_agrees<O: Op<f64> + Op<f32>>(op: &O, inputs: &[Tensor<f64>], rng: &mut Rng) {
    let name = Op::<f64>::name(op);
    let x64: Vec<&Tensor<f64>> = inputs.iter().collect();
    let owned32: Vec<Tensor<f32>> = inputs.iter().map(Tensor::cast).collect();
    let x32: Vec<&Tensor<f32>> = owned32.iter().collect();
    let y64 = op.forward(&x64).unwrap();
    let y32 = op.forward(&x32).unwrap();
    common::assert_close(name, &y32.cast(), &y64, 1e-5);
    let g64 = rng.like(&y64);
    let needs = vec![true; inputs.len()];
    let d64 = op.vjp(&x64, &y64, &g64, &needs).unwrap();
    let d32 = op.vjp(&x32, &y32, &g64.cast(), &needs).unwrap();
    for (a, b) in d32.iter().zip(&d64) {
        common::assert_close(name, &a.as_ref().unwrap().cast(), b.as_ref().unwrap(), 1e-5);
    }
    let t64: Vec<Option<&Tensor<f64>>> = x64.iter().map(|&x| Some(x)).collect();
    let t32: Vec<Option<&Tensor<f32>>> = x32.iter().map(|&x| Some(x)).collect();
    let j64 = op.jvp(&x64, &y64, &t64).unwrap();
    common::assert_close(name, &op.jvp(&x32, &y32, &t32).unwrap().cast(), &j64, 1e-5);
}

#[test]
fn f32_agrees_with_f64() {
    let mut rng = Rng::new(31);
    let conv = Conv2d {
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 2],
        groups: 2,
        bias: true,
    };
    let inputs = [
        rng.tensor(&[2, 4, 7, 6], -1.0, 1.0),
        rng.tensor(&[6, 2, 3, 2], -1.0, 1.0),
        rng.tensor(&[6], -1.0, 1.0),
    ];
    f32_agrees(&conv, &inputs, &mut rng);
    let inputs = [
        rng.tensor(&[5, 7], -1.0, 1.0),
        rng.tensor(&[3, 7], -1.0, 1.0),
        rng.tensor(&[3], -1.0, 1.0),
    ];
    f32_agrees(&Linear { bias: true }, &inputs, &mut rng);
    let pool = MaxPool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        ceil_mode: true,
    };
    f32_agrees(&pool, &[rng.distinct(&[2, 3, 5, 5], 0.01)], &mut rng);
    let avg = AvgPool2d {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        ceil_mode: true,
        count_include_pad: false,
    };
    f32_agrees(&avg, &[rng.tensor(&[2, 3, 5, 5], -1.0, 1.0)], &mut rng);
}

/// Conv2dRelu's value, VJP (every input) and JVP (the input's tangent alone, and all
/// tangents) equal Conv2d then Relu bit for bit, in f32 on the Winograd path (3×3, 16+
/// channels) and the im2col path, and in f64, with and without bias.
#[test]
fn conv2d_relu_equals_conv2d_then_relu_bit_for_bit() {
    fn case<T: mho::Float>(shape: [usize; 4], cout: usize, k: usize, bias: bool, seed: u64) {
        let mut rng = Rng::new(seed);
        let [n, cin, h, w] = shape;
        let cast = |t: Tensor<f64>| t.cast::<T>();
        let mut inputs = vec![
            cast(rng.tensor(&[n, cin, h, w], -1.0, 1.0)),
            cast(rng.tensor(&[cout, cin, k, k], -0.5, 0.5)),
        ];
        if bias {
            inputs.push(cast(rng.tensor(&[cout], -0.5, 0.5)));
        }
        let conv = Conv2d {
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
            bias,
        };
        let fused = Conv2dRelu { conv };
        let x: Vec<&Tensor<T>> = inputs.iter().collect();
        let pre = Op::<T>::forward(&conv, &x).unwrap();
        let y = Op::<T>::forward(&Relu, &[&pre]).unwrap();
        let y_fused = fused.forward(&x).unwrap();
        let bits = |t: &Tensor<T>| {
            t.data()
                .iter()
                .map(|v| v.to_f64().to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&y), bits(&y_fused), "value");
        assert!(
            y.data().iter().any(|v| v.to_f64() == 0.0) && y.data().iter().any(|v| v.to_f64() > 0.0)
        );
        let g = cast(rng.tensor(y.shape(), -1.0, 1.0));
        let needs = vec![true; x.len()];
        let g_pre = Relu.vjp(&[&pre], &y, &g, &[true]).unwrap()[0]
            .clone()
            .unwrap();
        let want = conv.vjp(&x, &pre, &g_pre, &needs).unwrap();
        let got = fused.vjp(&x, &y_fused, &g, &needs).unwrap();
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                bits(a.as_ref().unwrap()),
                bits(b.as_ref().unwrap()),
                "vjp {i}"
            );
        }
        let tangents: Vec<Tensor<T>> = inputs.iter().map(|t| cast(rng.like(&t.cast()))).collect();
        for all in [false, true] {
            let t: Vec<Option<&Tensor<T>>> = tangents
                .iter()
                .enumerate()
                .map(|(i, t)| (i == 0 || all).then_some(t))
                .collect();
            let t_pre = conv.jvp(&x, &pre, &t).unwrap();
            let want = Relu.jvp(&[&pre], &y, &[Some(&t_pre)]).unwrap();
            let got = fused.jvp(&x, &y_fused, &t).unwrap();
            assert_eq!(bits(&want), bits(&got), "jvp (all tangents: {all})");
        }
    }
    for bias in [false, true] {
        case::<f32>([5, 16, 8, 8], 32, 3, bias, 1);
        case::<f32>([2, 32, 16, 16], 16, 3, bias, 2);
        case::<f32>([3, 3, 12, 12], 8, 3, bias, 3);
        case::<f32>([2, 4, 9, 7], 6, 5, bias, 4);
        case::<f64>([2, 16, 8, 8], 16, 3, bias, 5);
    }
}
