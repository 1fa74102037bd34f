//! Training on mho's own tape: the optimisers follow PyTorch's formulas, training learns
//! the digits, and runs are deterministic for a seed.

use mho::data::{load_dataset, Dataset};
use mho::nn::presets::Preset;
use mho::nn::{evaluate, train, Architecture, Model, Optimizer, TrainConfig};
use mho::ops::CrossEntropy;
use mho::{Tape, Tensor};

fn tiny_data() -> Dataset {
    let x = Tensor::from_f64(
        &[4, 3],
        &[1., 0., 2., 0., 1., -1., 2., 2., 0., -1., 0.5, 1.],
    )
    .unwrap();
    Dataset {
        name: "tiny".into(),
        train_x: x.clone(),
        train_y: vec![0, 1, 1, 0],
        test_x: x,
        test_y: vec![0, 1, 1, 0],
        classes: 2,
    }
}

fn tiny_model() -> Model<f64> {
    let arch = Architecture::from_json(
        r#"{"format": "mho.sequential.v1", "input_shape": [3], "layers": [
        {"type": "Linear", "in_features": 3, "out_features": 2}]}"#,
    )
    .unwrap();
    Model::init(arch, 1).unwrap()
}

/// The gradient of the mean cross-entropy over the whole tiny set.
fn grads(m: &Model<f64>, d: &Dataset) -> Vec<Tensor<f64>> {
    let mut tape = Tape::new();
    let x = tape.constant(d.train_x.cast());
    let rec = m.record(&mut tape, x, true).unwrap();
    let loss = tape
        .apply(
            CrossEntropy {
                targets: d.train_y.clone(),
            },
            &[*rec.layer_outputs.last().unwrap()],
        )
        .unwrap();
    tape.backward_scalar(loss).unwrap();
    rec.params
        .iter()
        .map(|(_, id)| tape.adjoint(*id).unwrap().clone())
        .collect()
}

fn one_step(opt: Optimizer, steps: usize) -> (Model<f64>, Model<f64>) {
    let d = tiny_data();
    let m0 = tiny_model();
    let mut m = m0.clone();
    let cfg = TrainConfig {
        epochs: steps,
        batch_size: 4,
        optimizer: opt,
        seed: 0,
    };
    train(&mut m, &d, &cfg, &mut |_| {}).unwrap();
    (m0, m)
}

#[test]
fn sgd_with_momentum_follows_pytorch() {
    let lr = 0.1;
    let mu = 0.9;
    let d = tiny_data();
    // Two full-batch steps: buf₁ = g₁, p₁ = p₀ − lr·g₁; buf₂ = μ·buf₁ + g₂, p₂ = p₁ − lr·buf₂.
    let (m0, m2) = one_step(Optimizer::sgd(lr, mu), 2);
    let g1 = grads(&m0, &d);
    let mut m1 = m0.clone();
    for ((name, _), g) in m0.params().into_iter().zip(&g1) {
        let p = m0
            .param(&name)
            .unwrap()
            .zip_map(g, |p, g| p - lr * g)
            .unwrap();
        m1.set_param(&name, p).unwrap();
    }
    let g2 = grads(&m1, &d);
    for (k, (name, _)) in m0.params().into_iter().enumerate() {
        let expect = m1
            .param(&name)
            .unwrap()
            .zip_map(
                &g1[k].zip_map(&g2[k], |a, b| mu * a + b).unwrap(),
                |p, b| p - lr * b,
            )
            .unwrap();
        for (a, b) in m2.param(&name).unwrap().data().iter().zip(expect.data()) {
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn adam_follows_pytorch() {
    let lr = 0.01;
    let d = tiny_data();
    let (m0, m1) = one_step(Optimizer::adam(lr), 1);
    let g = grads(&m0, &d);
    // First step: m = 0.1g, v = 0.001g², p −= (lr/0.1)·m / (√v/√0.001 + ε) = lr·g/(|g| + ε).
    for (k, (name, _)) in m0.params().into_iter().enumerate() {
        let expect = m0
            .param(&name)
            .unwrap()
            .zip_map(&g[k], |p, g| p - lr * g / (g.abs() + 1e-8))
            .unwrap();
        for (a, b) in m1.param(&name).unwrap().data().iter().zip(expect.data()) {
            assert!((a - b).abs() < 1e-10, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn training_learns_digits_and_is_deterministic() {
    let data = load_dataset("digits", None).unwrap();
    assert_eq!(data.train_x.shape(), &[1437, 1, 8, 8]);
    assert_eq!(data.test_x.shape(), &[360, 1, 8, 8]);
    assert!(data
        .train_x
        .data()
        .iter()
        .all(|&v| (0.0..=1.0).contains(&v)));
    let preset = Preset::by_name("digits-mlp").unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        ..preset.config
    };
    let run = || {
        let mut m = Model::<f32>::init(preset.architecture().unwrap(), 7).unwrap();
        let h = train(&mut m, &data, &cfg, &mut |_| {}).unwrap();
        (m, h)
    };
    let (a, h) = run();
    let (b, _) = run();
    for ((n, x), (_, y)) in a.params().into_iter().zip(b.params()) {
        assert_eq!(x.data(), y.data(), "{n}");
    }
    assert_eq!(h.len(), 3);
    let acc = evaluate(&a, &data.test_x, &data.test_y, 100).unwrap();
    assert!(
        acc > 0.85,
        "digits-mlp after 3 epochs: held-out accuracy {acc}"
    );
}

#[test]
fn training_refuses_mismatched_models() {
    let data = load_dataset("digits", None).unwrap();
    let cfg = Preset::by_name("digits-mlp").unwrap().config;
    let mut m = tiny_model().cast::<f32>();
    let e = train(&mut m, &data, &cfg, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3]") && e.contains("[1, 8, 8]"), "{e}");
    let e = load_dataset("mnist-ish", None).unwrap_err().to_string();
    assert!(e.contains("unknown dataset"), "{e}");
}
