//! The kernels whose loops run through `simd::vectorized` give bit-identical results at
//! every vector width this CPU has (AVX-512, AVX2, the baseline), special values
//! included.
//!
//! One test function only: `simd::force_width` is process-wide, so nothing else may run
//! in this binary at the same time.

mod common;

use common::{with_threads, Rng};
use mho_kernels::conv::{self, Conv2dGeometry};
use mho_kernels::elementwise;
use mho_kernels::pool::{self, Pool2dGeometry};
use mho_kernels::simd::{self, VectorWidth};
use mho_kernels::Float;

/// Random values in [-1, 1) with NaN, ±∞, ±0 and subnormals mixed in.
fn data<T: Float>(rng: &mut Rng, n: usize) -> Vec<T> {
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1e-40,
        -1e-310,
    ];
    (0..n)
        .map(|i| {
            let v = rng.uniform() * 2.0 - 1.0;
            if i % 37 == 5 {
                T::from_f64(specials[(i / 37) % specials.len()])
            } else {
                T::from_f64(v)
            }
        })
        .collect()
}

/// Every output of every kernel under test, as bit patterns (f64 bits; f32 widened
/// exactly, so signed zeros and subnormals compare too). Every NaN maps to one pattern:
/// which NaN payload an operation on two NaNs returns depends on the order of its
/// operands, which the compiler may swap in an addition (a NaN is a NaN either way).
fn run_all<T: Float>(seed: u64) -> Vec<Vec<u64>> {
    let bits = |v: &[T]| -> Vec<u64> {
        v.iter()
            .map(|x| {
                let x = x.to_f64();
                if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                }
            })
            .collect()
    };
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();

    // Elementwise maps, long enough for the parallel path and with a ragged tail.
    let n = (1 << 17) + 13;
    let (x, t, z) = (
        data::<T>(&mut rng, n),
        data::<T>(&mut rng, n),
        data::<T>(&mut rng, n),
    );
    let slope = T::from_f64(0.1);
    let mut y = vec![T::ZERO; n];
    let mut ty = vec![T::ZERO; n];
    elementwise::map(&x, &mut y, |v| if v > T::ZERO { v } else { slope * v }).unwrap();
    out.push(bits(&y));
    elementwise::zip_map(&x, &z, &mut y, |a, b| a * b + a).unwrap();
    out.push(bits(&y));
    elementwise::map_with_tangent(&x, &t, &mut y, &mut ty, |v, dv| {
        if v > T::ZERO {
            (v, dv)
        } else {
            (T::ZERO, T::ZERO)
        }
    })
    .unwrap();
    out.push(bits(&y));
    out.push(bits(&ty));
    let mut acc = z.clone();
    elementwise::axpy(T::from_f64(-0.75), &x, &mut acc).unwrap();
    out.push(bits(&acc));

    // Convolutions: the forward pass (bias) and the input gradient (col2im), on "same"
    // 3×3 layers (the contiguous col2im path) and strided, dilated, grouped ones.
    let geometries = [
        Conv2dGeometry::new(4, 8, [16, 16], 8, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(3, 6, [13, 11], 9, [3, 2], [2, 1], [2, 1], [1, 2], 3).unwrap(),
        Conv2dGeometry::new(2, 4, [9, 20], 4, [5, 5], [2, 3], [2, 2], [1, 1], 1).unwrap(),
    ];
    for g in &geometries {
        let x = data::<T>(&mut rng, g.input_len());
        let w = data::<T>(&mut rng, g.weight_len());
        let b = data::<T>(&mut rng, g.out_channels);
        let dy = data::<T>(&mut rng, g.output_len());
        let mut y = vec![T::ZERO; g.output_len()];
        conv::conv2d_forward(g, &x, &w, Some(&b), &mut y).unwrap();
        out.push(bits(&y));
        let mut dx = vec![T::ZERO; g.input_len()];
        conv::conv2d_input_grad(g, &dy, &w, &mut dx).unwrap();
        out.push(bits(&dx));
    }

    // Winograd convolution: the AVX-512 transforms (f32 at that width) against the
    // portable ones, with tile rows of one, two and a partial chunk of 16 tiles, odd
    // sizes and every padding. (Called directly: the fast kernels route only AVX-512
    // f32 here, so through them the widths would compare Winograd with im2col.) On one
    // thread, so that blocks hold several images whatever the machine's core count.
    let winograd_geometries = [
        Conv2dGeometry::new(3, 5, [37, 21], 7, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(2, 4, [9, 66], 3, [3, 3], [1, 1], [0, 2], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(4, 3, [6, 5], 2, [3, 3], [1, 1], [2, 0], [1, 1], 1).unwrap(),
        // Two full chunks of 16 tiles per row.
        Conv2dGeometry::new(2, 2, [7, 64], 3, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        // At most 8 tiles across (two tile rows per vector): 8 tile rows, and 3, 4 and
        // 6 of them (odd counts leave the last vector half full).
        Conv2dGeometry::new(2, 5, [15, 16], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(3, 2, [5, 13], 3, [3, 3], [1, 1], [1, 2], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(2, 3, [5, 8], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(2, 4, [8, 8], 3, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(1, 2, [12, 7], 2, [3, 3], [1, 1], [1, 0], [1, 1], 1).unwrap(),
        // So many channels that a 16×16 image takes several blocks of tile rows (3, 3
        // and 2 rows in f64, 4 and 4 in f32), blocks starting past row 0.
        Conv2dGeometry::new(1, 200, [16, 16], 200, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
    ];
    with_threads(1, || {
        for g in &winograd_geometries {
            let x = data::<T>(&mut rng, g.input_len());
            let w = data::<T>(&mut rng, g.weight_len());
            let b = data::<T>(&mut rng, g.out_channels);
            let dy = data::<T>(&mut rng, g.output_len());
            let mut y = vec![T::ZERO; g.output_len()];
            conv::winograd::forward(g, &x, &w, Some(&b), &mut y).unwrap();
            out.push(bits(&y));
            let mut dx = vec![T::ZERO; g.input_len()];
            conv::winograd::input_grad(g, &dy, &w, &mut dx).unwrap();
            out.push(bits(&dx));
        }
    });

    // Max pooling: the 2×2 straight-line path and the general one, forward and backward.
    let pools = [
        Pool2dGeometry::new(8, 16, [32, 32], [2, 2], [2, 2], [0, 0], [1, 1], false).unwrap(),
        Pool2dGeometry::new(3, 5, [11, 9], [3, 3], [2, 2], [1, 1], [1, 1], true).unwrap(),
    ];
    for g in &pools {
        let x = data::<T>(&mut rng, g.input_len());
        let dy = data::<T>(&mut rng, g.output_len());
        let mut y = vec![T::ZERO; g.output_len()];
        let mut argmax = vec![0usize; g.output_len()];
        pool::max_pool2d_forward(g, &x, &mut y, &mut argmax).unwrap();
        out.push(bits(&y));
        out.push(argmax.iter().map(|&i| i as u64).collect());
        let mut dx = vec![T::ZERO; g.input_len()];
        pool::max_pool2d_backward(g, &dy, &argmax, &mut dx).unwrap();
        out.push(bits(&dx));
    }
    out
}

#[test]
fn every_vector_width_gives_identical_bits() {
    let widths: Vec<VectorWidth> = VectorWidth::ALL
        .into_iter()
        .filter(|w| w.is_available())
        .collect();
    eprintln!("vector widths on this CPU: {widths:?}");
    assert_eq!(widths.last(), Some(&VectorWidth::Baseline));
    assert_eq!(widths[0], VectorWidth::best());

    simd::force_width(Some(VectorWidth::Baseline));
    assert_eq!(simd::current_width(), VectorWidth::Baseline);
    let want32 = run_all::<f32>(1);
    let want64 = run_all::<f64>(2);
    for &width in &widths {
        simd::force_width(Some(width));
        assert_eq!(simd::current_width(), width);
        let got32 = run_all::<f32>(1);
        let got64 = run_all::<f64>(2);
        for (k, (got, want)) in got32.iter().zip(&want32).enumerate() {
            assert!(got == want, "f32 output {k} differs at width {width:?}");
        }
        for (k, (got, want)) in got64.iter().zip(&want64).enumerate() {
            assert!(got == want, "f64 output {k} differs at width {width:?}");
        }
    }
    simd::force_width(None);
    assert_eq!(simd::current_width(), VectorWidth::best());
}
