//! Kernel benchmarks: sgemm on square matrices and the f32 convolutions of a small
//! CIFAR-sized CNN at batch 64. Throughput is reported in FLOP/s (criterion's
//! "elem/s" here counts floating-point operations).
//!
//! Run: `cargo bench --bench kernels`

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use mho_kernels::conv::{self, Conv2dGeometry};
use mho_kernels::gemm::gemm;

/// Deterministic pseudo-random values in [-1, 1).
fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [256usize, 512, 1024] {
        let a = data(n * n, 1);
        let b = data(n * n, 2);
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, &n| {
            bench.iter(|| {
                gemm(
                    n,
                    n,
                    n,
                    1.0,
                    black_box(&a),
                    false,
                    black_box(&b),
                    false,
                    0.0,
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

/// The convolution layers of a small CIFAR CNN: (name, C_in, C_out, H = W), all 3×3,
/// stride 1, padding 1, batch 64.
const LAYERS: [(&str, usize, usize, usize); 4] = [
    ("3to32_32x32", 3, 32, 32),
    ("32to32_32x32", 32, 32, 32),
    ("32to64_16x16", 32, 64, 16),
    ("64to64_16x16", 64, 64, 16),
];

const BATCH: usize = 64;

fn layer_geometry(cin: usize, cout: usize, hw: usize) -> Conv2dGeometry {
    Conv2dGeometry::new(
        BATCH,
        cin,
        [hw, hw],
        cout,
        [3, 3],
        [1, 1],
        [1, 1],
        [1, 1],
        1,
    )
    .expect("valid layer geometry")
}

fn conv_group(
    c: &mut Criterion,
    name: &str,
    run: fn(&Conv2dGeometry, &LayerData, &mut LayerOutputs),
) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (layer, cin, cout, hw) in LAYERS {
        let g = layer_geometry(cin, cout, hw);
        let inputs = LayerData::new(&g);
        let mut outputs = LayerOutputs::new(&g);
        group.throughput(Throughput::Elements(g.flops() as u64));
        group.bench_function(layer, |bench| bench.iter(|| run(&g, &inputs, &mut outputs)));
    }
    group.finish();
}

struct LayerData {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    dy: Vec<f32>,
}

impl LayerData {
    fn new(g: &Conv2dGeometry) -> Self {
        Self {
            x: data(g.input_len(), 3),
            w: data(g.weight_len(), 4),
            bias: data(g.out_channels, 5),
            dy: data(g.output_len(), 6),
        }
    }
}

struct LayerOutputs {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
}

impl LayerOutputs {
    fn new(g: &Conv2dGeometry) -> Self {
        Self {
            y: vec![0.0; g.output_len()],
            dx: vec![0.0; g.input_len()],
            dw: vec![0.0; g.weight_len()],
        }
    }
}

fn conv2d(c: &mut Criterion) {
    conv_group(c, "conv2d_forward", |g, d, o| {
        conv::conv2d_forward(g, &d.x, &d.w, Some(&d.bias), &mut o.y).unwrap()
    });
    conv_group(c, "conv2d_input_grad", |g, d, o| {
        conv::conv2d_input_grad(g, &d.dy, &d.w, &mut o.dx).unwrap()
    });
    conv_group(c, "conv2d_weight_grad", |g, d, o| {
        conv::conv2d_weight_grad(g, &d.x, &d.dy, &mut o.dw).unwrap()
    });
}

criterion_group!(kernels, sgemm, conv2d);
criterion_main!(kernels);
