//! `attribute` runs its request on a thread of rayon's pool and computes F(x) and F(x')
//! in one forward pass of 2N rows. Neither may change a result: on the CIFAR-sized bench
//! model in f32 (whose wide 3×3 convolutions take the Winograd path on AVX-512 CPUs), the
//! reported outputs equal one-example forward passes bit for bit, and a request made from
//! inside the pool equals one made from outside bit for bit. The F(x), F(x') pass runs
//! beside the sweep, so a bad target must be refused before either starts.

use mho::attribution::{attribute, LayerSelection, Method, Report, Request};
use mho::experiments::take_rows;
use mho::io::read_npy;
use mho::nn::Model;
use mho::Tensor;
use std::path::Path;

fn bench_model() -> (Model<f32>, Tensor<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench");
    let model = Model::load(&dir.join("cifar_cnn.safetensors")).expect("bench model");
    let x = read_npy(&dir.join("cifar_input.npy")).expect("bench input");
    (model, x)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn same(a: &Report, b: &Report) {
    assert_eq!(a.outputs_input, b.outputs_input);
    assert_eq!(a.outputs_baseline, b.outputs_baseline);
    assert_eq!(a.attributions.len(), b.attributions.len());
    for ((n1, t1), (n2, t2)) in a.attributions.iter().zip(&b.attributions) {
        assert_eq!(n1, n2);
        assert_eq!(t1.shape(), t2.shape());
        assert!(
            t1.data()
                .iter()
                .zip(t2.data())
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n1}: results differ"
        );
    }
}

#[test]
fn reported_outputs_equal_one_example_forward_passes() {
    let (model, x) = bench_model();
    let x = take_rows(&x, &[0, 1, 2]).unwrap();
    let mut req = Request::new(Method::IntegratedGradients, 3);
    req.steps = 4;
    let report = attribute(&model, &x, &req).unwrap();
    let baseline = req.baseline.resolve(&x).unwrap();
    for e in 0..3 {
        for (t, reported) in [
            (&x, &report.outputs_input),
            (&baseline, &report.outputs_baseline),
        ] {
            let y = model.forward(&take_rows(t, &[e]).unwrap()).unwrap();
            let alone = bits(&y.data()[3..4]);
            assert_eq!(alone, bits(&[reported[e] as f32]), "example {e}");
        }
    }
}

#[test]
fn requests_from_inside_and_outside_the_pool_agree() {
    let (model, x) = bench_model();
    let x = take_rows(&x, &[0, 1]).unwrap();
    let mut req = Request::new(Method::Conductance, 7);
    req.layers = LayerSelection::All;
    req.steps = 5;
    let outside = attribute(&model, &x, &req).unwrap();
    let inside = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| attribute(&model, &x, &req).unwrap());
    same(&outside, &inside);
    let nested = rayon::scope(|_| attribute(&model, &x, &req).unwrap());
    same(&outside, &nested);
}

#[test]
fn a_target_out_of_range_is_refused_with_the_output_count() {
    let (model, x) = bench_model();
    let x = take_rows(&x, &[0, 1]).unwrap();
    for method in [Method::IntegratedGradients, Method::Conductance] {
        let mut req = Request::new(method, 10);
        req.steps = 4;
        let err = attribute(&model, &x, &req).unwrap_err().to_string();
        assert_eq!(
            err, "--target: index 10 out of range for 10 outputs",
            "{method}"
        );
        req.target = 9;
        assert!(attribute(&model, &x, &req).is_ok(), "{method}");
    }
}
