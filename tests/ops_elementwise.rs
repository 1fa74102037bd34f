//! Gradient checks (VJP vs finite differences, JVP vs finite differences, and the
//! dot-product identity, kinks included) for the elementwise ops: arithmetic and
//! activations.

mod common;

use common::{check_all, check_dot_identity, Rng};
use mho::ops::{
    Add, AddScalar, Div, Exp, LeakyRelu, Log, Mul, MulScalar, Neg, Prelu, Relu, Sigmoid, Sub, Tanh,
};
use mho::{Op, Tensor};
use proptest::prelude::*;

/// Shapes of rank 0 to 4 with small sides.
fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 0..5)
}

/// Runs (a), (b), (c) on one case, as a proptest result.
fn check(op: &dyn Op<f64>, inputs: &[Tensor<f64>], seed: u64) -> Result<(), TestCaseError> {
    check_all(op, inputs, seed).map_err(TestCaseError::fail)
}

/// Runs only (c), for inputs at kinks.
fn check_at_kinks(
    op: &dyn Op<f64>,
    inputs: &[Tensor<f64>],
    seed: u64,
) -> Result<(), TestCaseError> {
    check_dot_identity(op, inputs, &mut Rng::new(seed)).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn binary_arithmetic(shape in shapes(), seed: u64) {
        let mut rng = Rng::new(seed);
        let a = rng.tensor(&shape, -2.0, 2.0);
        let b = rng.tensor(&shape, -2.0, 2.0);
        let away = rng.tensor_away_from_zero(&shape, 0.5, 2.0);
        check(&Add, &[a.clone(), b.clone()], seed)?;
        check(&Sub, &[a.clone(), b.clone()], seed)?;
        check(&Mul, &[a.clone(), b], seed)?;
        check(&Div, &[a, away], seed)?;
    }

    #[test]
    fn scalar_arithmetic(shape in shapes(), c in -3.0f64..3.0, seed: u64) {
        let x = Rng::new(seed).tensor(&shape, -2.0, 2.0);
        check(&AddScalar(c), std::slice::from_ref(&x), seed)?;
        check(&MulScalar(c), std::slice::from_ref(&x), seed)?;
        check(&Neg, &[x], seed)?;
    }

    #[test]
    fn smooth_activations(shape in shapes(), seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.tensor(&shape, -3.0, 3.0);
        check(&Tanh, std::slice::from_ref(&x), seed)?;
        check(&Sigmoid, std::slice::from_ref(&x), seed)?;
        check(&Exp, &[x], seed)?;
        check(&Log, &[rng.tensor(&shape, 0.5, 3.0)], seed)?;
    }

    #[test]
    fn relu_and_leaky_relu(shape in shapes(), slope in -0.5f64..0.5, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.tensor_away_from_zero(&shape, 1e-2, 2.0);
        check(&Relu, std::slice::from_ref(&x), seed)?;
        check(&LeakyRelu { negative_slope: slope }, &[x], seed)?;
        let at_kinks = rng.kinky(&shape, 1.0);
        check_at_kinks(&Relu, std::slice::from_ref(&at_kinks), seed)?;
        check_at_kinks(&LeakyRelu { negative_slope: slope }, &[at_kinks], seed)?;
    }

    #[test]
    fn prelu(shape in prop::collection::vec(1usize..5, 1..5), per_channel: bool, seed: u64) {
        let mut rng = Rng::new(seed);
        let channels = if per_channel && shape.len() >= 2 { shape[1] } else { 1 };
        let x = rng.tensor_away_from_zero(&shape, 1e-2, 2.0);
        let w = rng.tensor(&[channels], -0.5, 0.5);
        check(&Prelu, &[x, w.clone()], seed)?;
        check_at_kinks(&Prelu, &[rng.kinky(&shape, 1.0), w], seed)?;
    }
}

#[test]
fn kink_conventions_follow_pytorch() {
    let x = Tensor::from_f64(&[3], &[-1.0, 0.0, 2.0]).unwrap();
    let ones = Tensor::full(&[3], 1.0);
    let grad = |op: &dyn Op<f64>, inputs: &[&Tensor<f64>]| {
        let y = op.forward(inputs).unwrap();
        let needs = vec![true; inputs.len()];
        op.vjp(inputs, &y, &ones, &needs).unwrap()[0]
            .clone()
            .unwrap()
            .into_data()
    };
    assert_eq!(grad(&Relu, &[&x]), [0.0, 0.0, 1.0]);
    assert_eq!(
        grad(
            &LeakyRelu {
                negative_slope: 0.1
            },
            &[&x]
        ),
        [0.1, 0.1, 1.0]
    );
    let w = Tensor::from_f64(&[1], &[0.25]).unwrap();
    assert_eq!(grad(&Prelu, &[&x, &w]), [0.25, 0.25, 1.0]);
}

#[test]
fn prelu_weight_gradient_sums_per_channel() {
    // x [2, 2, 1]: channel 0 holds -1 and -3, channel 1 holds 2 and -4.
    let x = Tensor::from_f64(&[2, 2, 1], &[-1.0, 2.0, -3.0, -4.0]).unwrap();
    let w = Tensor::from_f64(&[2], &[0.5, 0.25]).unwrap();
    let y = Prelu.forward(&[&x, &w]).unwrap();
    assert_eq!(y.data(), [-0.5, 2.0, -1.5, -1.0]);
    let g = Tensor::full(&[2, 2, 1], 1.0);
    let grads = Prelu.vjp(&[&x, &w], &y, &g, &[false, true]).unwrap();
    assert!(grads[0].is_none());
    assert_eq!(grads[1].as_ref().unwrap().data(), [-4.0, -4.0]);
}

#[test]
fn sigmoid_and_exp_stay_finite_at_extremes() {
    let x: Tensor<f64> = Tensor::from_f64(&[4], &[-800.0, -40.0, 40.0, 800.0]).unwrap();
    let y = Sigmoid.forward(&[&x]).unwrap();
    assert!(y.data().iter().all(|v| v.is_finite()));
    assert_eq!(y.data()[0], 0.0);
    assert_eq!(y.data()[3], 1.0);
}

#[test]
fn empty_tensors_pass_through() {
    let x: Tensor<f64> = Tensor::zeros(&[0, 3]);
    for op in [&Relu as &dyn Op<f64>, &Tanh, &Exp, &Neg, &MulScalar(2.0)] {
        let y = op.forward(&[&x]).unwrap();
        assert_eq!(y.shape(), [0, 3]);
        let g = op.vjp(&[&x], &y, &y, &[true]).unwrap();
        assert_eq!(g[0].as_ref().unwrap().shape(), [0, 3]);
        assert_eq!(op.jvp(&[&x], &y, &[Some(&x)]).unwrap().shape(), [0, 3]);
    }
}

#[test]
fn f32_matches_f64() {
    let mut rng = Rng::new(7);
    let x = rng.tensor(&[3, 4], -2.0, 2.0);
    let w = rng.tensor(&[4], -0.5, 0.5);
    let x32: Tensor<f32> = x.cast();
    let w32: Tensor<f32> = w.cast();
    let ops: [&dyn Fn() -> (Tensor<f64>, Tensor<f32>); 3] = [
        &|| (Tanh.forward(&[&x]).unwrap(), Tanh.forward(&[&x32]).unwrap()),
        &|| {
            (
                Sigmoid.forward(&[&x]).unwrap(),
                Sigmoid.forward(&[&x32]).unwrap(),
            )
        },
        &|| {
            (
                Prelu.forward(&[&x, &w]).unwrap(),
                Prelu.forward(&[&x32, &w32]).unwrap(),
            )
        },
    ];
    for run in ops {
        let (a, b) = run();
        common::assert_close("f32 vs f64", &b.cast(), &a, 1e-6);
    }
}

#[test]
fn relu_keeps_nan_like_pytorch() {
    let x: Tensor<f64> = Tensor::from_f64(&[2], &[f64::NAN, -1.0]).unwrap();
    let y = Relu.forward(&[&x]).unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(y.data()[1], 0.0);
}
