//! Attribution benchmarks on the models of tests/fixtures/bench (the same files
//! scripts/bench_torch.py times with PyTorch + Captum): integrated gradients and
//! all-layer conductance (gauss-legendre, 50 steps, f32) at batch 4 and 1 on the
//! CIFAR-sized CNN and the digits CNN, and the exact rule on the digits CNN.
//!
//! Run: `cargo bench --bench attribution`

use criterion::{criterion_group, criterion_main, Criterion};
use mho::attribution::{attribute, ExactOptions, LayerSelection, Method, Request};
use mho::experiments::take_rows;
use mho::io::read_npy;
use mho::nn::Model;
use mho::Tensor;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

fn load(name: &str) -> (Model<f32>, Tensor<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench");
    let model = Model::load(&dir.join(format!("{name}_cnn.safetensors"))).expect("bench model");
    let x = read_npy(&dir.join(format!("{name}_input.npy"))).expect("bench input");
    (model, x)
}

fn request(method: Method, exact: bool) -> Request {
    let mut r = Request::new(method, 0);
    r.layers = LayerSelection::All;
    if exact {
        r.exact = Some(ExactOptions::default());
    }
    r
}

fn bench_model(c: &mut Criterion, name: &str, with_exact: bool) {
    let (model, x4) = load(name);
    let x1 = take_rows(&x4, &[0]).expect("first example");
    let mut group = c.benchmark_group(format!("attribution/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (batch, x) in [(4, &x4), (1, &x1)] {
        let ig = request(Method::IntegratedGradients, false);
        group.bench_function(format!("ig-gl50-batch{batch}"), |b| {
            b.iter(|| black_box(attribute(&model, x, &ig).expect("ig")))
        });
        let cond = request(Method::Conductance, false);
        group.bench_function(format!("conductance-all-layers-gl50-batch{batch}"), |b| {
            b.iter(|| black_box(attribute(&model, x, &cond).expect("conductance")))
        });
        if with_exact {
            let ig_exact = request(Method::IntegratedGradients, true);
            group.bench_function(format!("ig-exact-batch{batch}"), |b| {
                b.iter(|| black_box(attribute(&model, x, &ig_exact).expect("exact ig")))
            });
            let cond_exact = request(Method::Conductance, true);
            group.bench_function(format!("conductance-all-layers-exact-batch{batch}"), |b| {
                b.iter(|| black_box(attribute(&model, x, &cond_exact).expect("exact conductance")))
            });
        }
    }
    group.finish();
}

fn attribution(c: &mut Criterion) {
    bench_model(c, "cifar", false);
    bench_model(c, "digits", true);
}

criterion_group!(benches, attribution);
criterion_main!(benches);
