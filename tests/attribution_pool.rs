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

/// With several threads, the examples are shared out and each share runs its own sweep
/// (with its share of the chunk budget). Every method must give the results of one sweep
/// over all the examples (one thread) bit for bit, on the CIFAR-sized model in f32.
#[test]
fn sharing_examples_over_threads_changes_no_result() {
    let (model, x) = bench_model();
    let x = take_rows(&x, &[0, 1, 2]).unwrap();
    let mut requests = Vec::new();
    for method in [
        Method::IntegratedGradients,
        Method::Conductance,
        Method::InternalInfluence,
        Method::GradientXActivation,
    ] {
        let mut req = Request::new(method, 3);
        req.steps = 6;
        if method != Method::IntegratedGradients {
            req.layers = LayerSelection::All;
        }
        requests.push(req);
    }
    let mut neuron = Request::new(Method::NeuronConductance, 3);
    neuron.steps = 4;
    neuron.layers = LayerSelection::Names(vec!["5".into()]);
    neuron.neurons = vec![vec![3, 2, 7], vec![60, 0, 0]];
    requests.push(neuron);
    let mut per_example_targets = Request::new(Method::Conductance, 0);
    per_example_targets.targets = Some(vec![3, 0, 9]);
    per_example_targets.steps = 5;
    per_example_targets.batch_steps = 2;
    requests.push(per_example_targets);
    for req in &requests {
        let with = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| attribute(&model, &x, req).unwrap())
        };
        let one = with(1);
        assert_eq!(one.outputs_input.len(), 3);
        for threads in [2, 3] {
            same(&one, &with(threads));
            let other = with(threads);
            assert_eq!(one.delta, other.delta, "{}", req.method);
            assert_eq!(one.gradient_evaluations, other.gradient_evaluations);
        }
    }
}

/// One example: its steps are summed in two halves run at once, whatever the thread
/// count, so the results do not depend on it; and the halves lose no row (the
/// completeness gap of integrated gradients stays small, and the gradient evaluations
/// count every step once).
#[test]
fn one_example_gives_the_same_results_on_any_thread_count() {
    let (model, x) = bench_model();
    let x = take_rows(&x, &[2]).unwrap();
    for (method, steps) in [
        (Method::IntegratedGradients, 7),
        (Method::Conductance, 6),
        (Method::InternalInfluence, 5),
    ] {
        let mut req = Request::new(method, 1);
        req.steps = steps;
        req.rule = mho::attribution::Rule::RiemannLeft;
        if method != Method::IntegratedGradients {
            req.layers = LayerSelection::All;
        }
        let with = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| attribute(&model, &x, &req).unwrap())
        };
        let one = with(1);
        assert_eq!(one.gradient_evaluations, steps, "{method}");
        for threads in [2, 3] {
            let other = with(threads);
            same(&one, &other);
            assert_eq!(one.delta, other.delta, "{method}");
        }
    }
}
