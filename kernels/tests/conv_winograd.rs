//! Winograd F(2×2, 3×3) convolution against the direct reference, at every supported
//! padding, odd and even sizes, any channel count (the fast kernels only route 16 and
//! more channels here, the tests call the module directly). f64 runs the portable
//! transforms, f32 the AVX-512 ones where the CPU has them; `tests/simd.rs` checks the
//! two agree bit for bit.

mod common;

use common::{check_adjoint, check_close, check_close_f32, inner, with_threads, Rng};
use mho_kernels::conv::{self, reference, winograd, Conv2dGeometry};
use proptest::prelude::*;

/// Supported geometries (3×3, stride 1, padding 0–2 per axis), small sizes, and a seed.
fn winograd_case() -> impl Strategy<Value = (Conv2dGeometry, u64)> {
    (
        (1usize..=3, 1usize..=5, 1usize..=5),
        (1usize..=11, 1usize..=37),
        (0usize..=2, 0usize..=2),
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel larger than padded input",
            |((n, cin, cout), hw, p, seed)| {
                Conv2dGeometry::new(
                    n,
                    cin,
                    [hw.0, hw.1],
                    cout,
                    [3, 3],
                    [1, 1],
                    [p.0, p.1],
                    [1, 1],
                    1,
                )
                .ok()
                .map(|g| (g, seed))
            },
        )
}

/// Forward (with and without bias) and input gradient by Winograd against the direct
/// reference, in f64, with `scratch_poison` left in this thread's scratch beforehand.
fn check_f64(g: &Conv2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    prop_assert!(winograd::supports(g));
    mho_kernels::poison_scratch(1 << 16, f64::NAN);
    let mut rng = Rng::new(seed);
    let x = rng.vec(g.input_len());
    let w = rng.vec(g.weight_len());
    let bias = rng.vec(g.out_channels);
    let dy = rng.vec(g.output_len());
    for bias in [None, Some(bias.as_slice())] {
        let mut fast = vec![f64::NAN; g.output_len()];
        let mut slow = vec![f64::NAN; g.output_len()];
        winograd::forward(g, &x, &w, bias, &mut fast).unwrap();
        reference::conv2d_forward(g, &x, &w, bias, &mut slow).unwrap();
        check_close("winograd forward", &fast, &slow, 1e-12)?;
    }
    let mut fast = vec![f64::NAN; g.input_len()];
    let mut slow = vec![f64::NAN; g.input_len()];
    winograd::input_grad(g, &dy, &w, &mut fast).unwrap();
    reference::conv2d_input_grad(g, &dy, &w, &mut slow).unwrap();
    check_close("winograd input grad", &fast, &slow, 1e-12)?;

    // ⟨dy, conv x⟩ = ⟨input_grad(dy), x⟩ with both sides by Winograd.
    let mut y = vec![0.0; g.output_len()];
    winograd::forward(g, &x, &w, None, &mut y).unwrap();
    check_adjoint(
        "⟨dy, conv x⟩ vs ⟨input grad, x⟩",
        inner(&dy, &y),
        inner(&fast, &x),
        1e-10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn winograd_matches_reference((g, seed) in winograd_case()) {
        check_f64(&g, seed)?;
    }

    #[test]
    fn winograd_matches_reference_f32((g, seed) in winograd_case()) {
        mho_kernels::poison_scratch(1 << 16, f32::NAN);
        let mut rng = Rng::new(seed);
        let x = rng.vec_f32(g.input_len());
        let w = rng.vec_f32(g.weight_len());
        let dy = rng.vec_f32(g.output_len());
        let mut fast = vec![f32::NAN; g.output_len()];
        let mut slow = vec![f32::NAN; g.output_len()];
        winograd::forward(&g, &x, &w, None, &mut fast).unwrap();
        reference::conv2d_forward(&g, &x, &w, None, &mut slow).unwrap();
        check_close_f32("winograd forward f32", &fast, &slow, 1e-5)?;
        let mut fast = vec![f32::NAN; g.input_len()];
        let mut slow = vec![f32::NAN; g.input_len()];
        winograd::input_grad(&g, &dy, &w, &mut fast).unwrap();
        reference::conv2d_input_grad(&g, &dy, &w, &mut slow).unwrap();
        check_close_f32("winograd input grad f32", &fast, &slow, 1e-5)?;
    }

    /// Images with more tiles than a block holds are cut into blocks of tile rows: at
    /// 2 → 3 channels a block holds ⌊BLOCK_BYTES / (16·5·size)⌋ tiles, 2457 in f64 and
    /// 4915 in f32: at most 16 rows of 298 tiles or more, so these images (17 tile rows
    /// or more) take two blocks or more.
    #[test]
    fn multi_block_images_match_reference(
        h in 36usize..=48, w in 598usize..=700, pad in 0usize..=2, seed: u64,
    ) {
        let g = Conv2dGeometry::new(1, 2, [h, w], 3, [3, 3], [1, 1], [pad, pad], [1, 1], 1).unwrap();
        prop_assert_eq!(winograd::BLOCK_BYTES, 3 << 19);
        check_f64(&g, seed)?;
        let mut rng = Rng::new(seed);
        let (x, w) = (rng.vec_f32(g.input_len()), rng.vec_f32(g.weight_len()));
        let mut fast = vec![f32::NAN; g.output_len()];
        let mut slow = vec![f32::NAN; g.output_len()];
        winograd::forward(&g, &x, &w, None, &mut fast).unwrap();
        reference::conv2d_forward(&g, &x, &w, None, &mut slow).unwrap();
        check_close_f32("winograd forward f32", &fast, &slow, 1e-5)?;
    }
}

/// The fast kernels route f32 3×3 stride-1 convolutions with ≥ 16 channels each side
/// here when the CPU has AVX-512, and their result is the same, bit for bit, as
/// calling Winograd directly, for any thread count; smaller channel counts, f64 and
/// CPUs without AVX-512 stay on im2col.
#[test]
fn fast_kernels_route_wide_three_by_three_here() {
    let wide = Conv2dGeometry::new(5, 16, [9, 12], 24, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let narrow = Conv2dGeometry::new(5, 3, [9, 12], 24, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let strided =
        Conv2dGeometry::new(5, 16, [9, 12], 24, [3, 3], [2, 2], [1, 1], [1, 1], 1).unwrap();
    let avx512 = mho_kernels::simd::VectorWidth::Avx512.is_available();
    assert_eq!(winograd::preferred::<f32>(&wide), avx512);
    assert!(!winograd::preferred::<f64>(&wide));
    assert!(!winograd::preferred::<f32>(&narrow) && winograd::supports(&narrow));
    assert!(!winograd::preferred::<f32>(&strided) && !winograd::supports(&strided));
    if !avx512 {
        return;
    }

    let g = wide;
    let mut rng = Rng::new(7);
    let (x, w, dy) = (
        rng.vec_f32(g.input_len()),
        rng.vec_f32(g.weight_len()),
        rng.vec_f32(g.output_len()),
    );
    let bias = rng.vec_f32(g.out_channels);
    let mut direct_y = vec![0.0; g.output_len()];
    let mut direct_dx = vec![0.0; g.input_len()];
    winograd::forward(&g, &x, &w, Some(&bias), &mut direct_y).unwrap();
    winograd::input_grad(&g, &dy, &w, &mut direct_dx).unwrap();
    for threads in [1, 2, 3] {
        let (y, dx) = with_threads(threads, || {
            let mut y = vec![f32::NAN; g.output_len()];
            let mut dx = vec![f32::NAN; g.input_len()];
            conv::conv2d_forward(&g, &x, &w, Some(&bias), &mut y).unwrap();
            conv::conv2d_input_grad(&g, &dy, &w, &mut dx).unwrap();
            (y, dx)
        });
        assert!(y == direct_y, "forward, {threads} threads");
        assert!(dx == direct_dx, "input grad, {threads} threads");
    }
}

/// A hand example: a 4×4 input of ones, padding 1, the filter 1..9 (row-major): each
/// output sums the filter taps that land inside the image.
#[test]
fn hand_computed_example() {
    let g = Conv2dGeometry::new(1, 1, [4, 4], 1, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let w: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut y = vec![0.0; 16];
    winograd::forward(&g, &[1.0; 16], &w, Some(&[0.5]), &mut y).unwrap();
    // Corner (0,0) sees taps (1,1),(1,2),(2,1),(2,2) = 5+6+8+9; edge (0,1) rows 1–2
    // = 4+5+6+7+8+9; interior = 45.
    let want = [
        28.0, 39.0, 39.0, 24.0, //
        33.0, 45.0, 45.0, 27.0, //
        33.0, 45.0, 45.0, 27.0, //
        16.0, 21.0, 21.0, 12.0,
    ]
    .map(|v: f64| v + 0.5);
    assert_eq!(y, want);
}

#[test]
fn unsupported_geometries_and_bad_lengths_are_errors() {
    let strided = Conv2dGeometry::new(1, 1, [5, 5], 1, [3, 3], [2, 2], [1, 1], [1, 1], 1).unwrap();
    let five = Conv2dGeometry::new(1, 1, [5, 5], 1, [5, 5], [1, 1], [2, 2], [1, 1], 1).unwrap();
    let grouped = Conv2dGeometry::new(1, 2, [5, 5], 2, [3, 3], [1, 1], [1, 1], [1, 1], 2).unwrap();
    for g in [strided, five, grouped] {
        let mut y = vec![0.0; g.output_len()];
        let err = winograd::forward(
            &g,
            &vec![0.0; g.input_len()],
            &vec![0.0; g.weight_len()],
            None,
            &mut y,
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs a 3×3 kernel"), "{err}");
    }
    let g = Conv2dGeometry::new(1, 1, [5, 5], 1, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut y = vec![0.0; 25];
    let err = winograd::forward(&g, &[0.0; 24], &[0.0; 9], None, &mut y).unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
    let mut dx = vec![0.0; 25];
    let err = winograd::input_grad(&g, &[0.0; 25], &[0.0; 8], &mut dx).unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
}
