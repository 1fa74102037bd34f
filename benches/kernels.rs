//! Kernel benchmarks: sgemm on square matrices and on the shapes the convolutions use,
//! and the f32 convolutions of a small CIFAR-sized CNN at batch 64. Throughput is
//! reported in FLOP/s (criterion's "elem/s" here counts floating-point operations).
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

/// The gemms inside the convolutions of the CIFAR CNN above: (name, m, k, n, trans_a,
/// trans_b). Forward: Y (C_out × P) = W · cols; input gradient: cols (C_in·9 × P) =
/// Wᵀ · dY; weight gradient: dW (C_out × C_in·9) = dY · colsᵀ.
const CONV_GEMMS: [(&str, usize, usize, usize, bool, bool); 10] = [
    ("fwd_32x27x1024", 32, 27, 1024, false, false),
    ("fwd_32x288x1024", 32, 288, 1024, false, false),
    ("fwd_64x288x256", 64, 288, 256, false, false),
    ("fwd_64x576x256", 64, 576, 256, false, false),
    ("dx_27x32x1024_tA", 27, 32, 1024, true, false),
    ("dx_288x32x1024_tA", 288, 32, 1024, true, false),
    ("dx_288x64x256_tA", 288, 64, 256, true, false),
    ("dx_576x64x256_tA", 576, 64, 256, true, false),
    ("dw_32x1024x288_tB", 32, 1024, 288, false, true),
    ("dw_64x256x576_tB", 64, 256, 576, false, true),
];

/// The conv-shaped gemms on one thread (as the convolutions call them: one image per
/// thread) and on all of rayon's threads.
fn sgemm_conv_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm-conv-shapes");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("building a one-thread pool");
    for (name, m, k, n, ta, tb) in CONV_GEMMS {
        let a = data(m * k, 7);
        let b = data(k * n, 8);
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        let mut run = || {
            gemm(
                m,
                k,
                n,
                1.0,
                black_box(&a),
                ta,
                black_box(&b),
                tb,
                0.0,
                &mut out,
            )
            .unwrap()
        };
        group.bench_function(format!("{name}/1t"), |bench| {
            one_thread.install(|| bench.iter(&mut run))
        });
        group.bench_function(format!("{name}/all"), |bench| bench.iter(&mut run));
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

/// The machine's peak f32 multiply-add throughput: `peak::fma_rounds` (register-only
/// fused multiply-adds at the widest vector width) on one thread and on every thread of
/// the pool at once. The "% of peak" of docs/benchmarks.md divides by the second.
fn peak(c: &mut Criterion) {
    use mho_kernels::peak::{fma_rounds, FLOPS_PER_ROUND};
    use mho_kernels::simd::VectorWidth;
    use rayon::prelude::*;
    const ROUNDS: u64 = 200_000;
    let mut group = c.benchmark_group("peak");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let width = VectorWidth::best();
    group.throughput(Throughput::Elements(ROUNDS * FLOPS_PER_ROUND));
    group.bench_function(format!("fma-{width:?}/1t"), |bench| {
        bench.iter(|| fma_rounds(width, black_box(ROUNDS)))
    });
    let threads = rayon::current_num_threads();
    group.throughput(Throughput::Elements(
        ROUNDS * FLOPS_PER_ROUND * threads as u64,
    ));
    group.bench_function(format!("fma-{width:?}/all"), |bench| {
        bench.iter(|| {
            (0..threads)
                .into_par_iter()
                .map(|_| fma_rounds(width, black_box(ROUNDS)))
                .sum::<f32>()
        })
    });
    group.finish();
}

criterion_group!(kernels, peak, sgemm, sgemm_conv_shapes, conv2d);
criterion_main!(kernels);
