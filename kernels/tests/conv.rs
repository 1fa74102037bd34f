//! Convolution: fast versus reference, adjoint identities, hand examples, errors.

mod common;

use common::{check_adjoint, check_close, check_close_f32, inner, with_threads, Rng};
use mho_kernels::conv::{self, reference, Conv2dGeometry};
use proptest::prelude::*;

/// Random valid geometries with small sizes, and a data seed.
fn conv_case() -> impl Strategy<Value = (Conv2dGeometry, u64)> {
    (
        (1usize..=3, 1usize..=3, 1usize..=3, 1usize..=3),
        (1usize..=7, 1usize..=7),
        (1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3),
        (0usize..=2, 0usize..=2),
        (1usize..=2, 1usize..=2),
        any::<u64>(),
    )
        .prop_filter_map(
            "invalid geometry",
            |((batch, groups, cin_g, cout_g), hw, k, s, p, d, seed)| {
                let g = Conv2dGeometry::new(
                    batch,
                    groups * cin_g,
                    [hw.0, hw.1],
                    groups * cout_g,
                    [k.0, k.1],
                    [s.0, s.1],
                    [p.0, p.1],
                    [d.0, d.1],
                    groups,
                );
                g.ok().map(|g| (g, seed))
            },
        )
}

/// Random data for a geometry: input, weight, bias, output gradient.
struct Data {
    x: Vec<f64>,
    w: Vec<f64>,
    bias: Vec<f64>,
    dy: Vec<f64>,
}

impl Data {
    fn new(g: &Conv2dGeometry, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Self {
            x: rng.vec(g.input_len()),
            w: rng.vec(g.weight_len()),
            bias: rng.vec(g.out_channels),
            dy: rng.vec(g.output_len()),
        }
    }
}

/// All four fast kernels against the reference ones on one geometry.
fn check_against_reference(g: &Conv2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    let d = Data::new(g, seed);
    for bias in [None, Some(d.bias.as_slice())] {
        let mut fast = vec![f64::NAN; g.output_len()];
        let mut slow = vec![f64::NAN; g.output_len()];
        conv::conv2d_forward(g, &d.x, &d.w, bias, &mut fast).unwrap();
        reference::conv2d_forward(g, &d.x, &d.w, bias, &mut slow).unwrap();
        check_close("forward", &fast, &slow, 1e-12)?;
    }
    let mut fast = vec![f64::NAN; g.input_len()];
    let mut slow = vec![f64::NAN; g.input_len()];
    conv::conv2d_input_grad(g, &d.dy, &d.w, &mut fast).unwrap();
    reference::conv2d_input_grad(g, &d.dy, &d.w, &mut slow).unwrap();
    check_close("input grad", &fast, &slow, 1e-12)?;

    let mut fast = vec![f64::NAN; g.weight_len()];
    let mut slow = vec![f64::NAN; g.weight_len()];
    conv::conv2d_weight_grad(g, &d.x, &d.dy, &mut fast).unwrap();
    reference::conv2d_weight_grad(g, &d.x, &d.dy, &mut slow).unwrap();
    check_close("weight grad", &fast, &slow, 1e-12)?;

    let mut fast = vec![f64::NAN; g.out_channels];
    let mut slow = vec![f64::NAN; g.out_channels];
    conv::conv2d_bias_grad(g, &d.dy, &mut fast).unwrap();
    reference::conv2d_bias_grad(g, &d.dy, &mut slow).unwrap();
    check_close("bias grad", &fast, &slow, 1e-12)
}

/// ⟨dy, conv(x)⟩ = ⟨input_grad(dy), x⟩ = ⟨weight_grad(x, dy), w⟩ (no bias).
fn check_adjoints(g: &Conv2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    let d = Data::new(g, seed);
    let mut y = vec![0.0; g.output_len()];
    let mut dx = vec![0.0; g.input_len()];
    let mut dw = vec![0.0; g.weight_len()];
    conv::conv2d_forward(g, &d.x, &d.w, None, &mut y).unwrap();
    conv::conv2d_input_grad(g, &d.dy, &d.w, &mut dx).unwrap();
    conv::conv2d_weight_grad(g, &d.x, &d.dy, &mut dw).unwrap();
    let lhs = inner(&d.dy, &y);
    check_adjoint(
        "⟨dy, conv x⟩ vs ⟨input grad, x⟩",
        lhs,
        inner(&dx, &d.x),
        1e-10,
    )?;
    check_adjoint(
        "⟨dy, conv x⟩ vs ⟨weight grad, w⟩",
        lhs,
        inner(&dw, &d.w),
        1e-10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fast_matches_reference((g, seed) in conv_case()) {
        check_against_reference(&g, seed)?;
    }

    /// The im2col scratch is reused from call to call: the kernels must write every part
    /// of it they read, so NaN left in it must not reach any result.
    #[test]
    fn stale_scratch_never_leaks((g, seed) in conv_case()) {
        mho_kernels::poison_scratch(1 << 16, f64::NAN);
        check_against_reference(&g, seed)?;
    }

    /// Large outputs are processed in several column tiles of whole output rows (an
    /// im2col tile holds about 1 MiB).
    #[test]
    fn large_images_match_reference(
        groups in 1usize..=2, cin_g in 1usize..=2, cout_g in 1usize..=2,
        h in 8usize..=24, w in 300usize..=600, k in 1usize..=3, stride in 1usize..=2, pad in 0usize..=1,
        dilation in 1usize..=2, seed: u64,
    ) {
        let g = Conv2dGeometry::new(
            1, groups * cin_g, [h, w], groups * cout_g, [k, k], [stride, stride], [pad, pad],
            [dilation, dilation], groups,
        );
        if let Ok(g) = g {
            check_against_reference(&g, seed)?;
            check_adjoints(&g, seed)?;
        }
    }

    /// "Same" convolutions (stride 1, output as wide as the input) take the
    /// contiguous im2col/col2im path.
    #[test]
    fn same_padding_convs_match_reference(
        batch in 1usize..=2, groups in 1usize..=2, cin_g in 1usize..=3, cout_g in 1usize..=3,
        h in 1usize..=9, w in 1usize..=9,
        kh in prop::sample::select(vec![1usize, 3, 5]), kw in prop::sample::select(vec![1usize, 3, 5]),
        dh in 1usize..=2, dw in 1usize..=2, seed: u64,
    ) {
        let padding = [dh * (kh - 1) / 2, dw * (kw - 1) / 2];
        let g = Conv2dGeometry::new(
            batch, groups * cin_g, [h, w], groups * cout_g, [kh, kw], [1, 1], padding, [dh, dw], groups,
        )
        .unwrap();
        prop_assert_eq!((g.out_h, g.out_w), (h, w));
        check_against_reference(&g, seed)?;
        check_adjoints(&g, seed)?;
    }

    #[test]
    fn adjoint_identities((g, seed) in conv_case()) {
        check_adjoints(&g, seed)?;
    }

    #[test]
    fn conv1d_matches_reference(
        batch in 1usize..=2, cin in 1usize..=3, cout in 1usize..=3, len in 1usize..=12,
        kernel in 1usize..=4, stride in 1usize..=3, padding in 0usize..=2, dilation in 1usize..=3,
        seed: u64,
    ) {
        if let Ok(g) = Conv2dGeometry::conv1d(batch, cin, len, cout, kernel, stride, padding, dilation, 1) {
            prop_assert_eq!((g.in_h, g.out_h, g.kernel_h, g.padding[0]), (1, 1, 1, 0));
            check_against_reference(&g, seed)?;
        }
    }

    #[test]
    fn fast_matches_reference_f32((g, seed) in conv_case()) {
        // Outputs start as NaN (the kernels overwrite them), and so does this thread's
        // f32 scratch (the kernels write what they read).
        mho_kernels::poison_scratch(1 << 16, f32::NAN);
        let mut rng = Rng::new(seed);
        let x = rng.vec_f32(g.input_len());
        let w = rng.vec_f32(g.weight_len());
        let dy = rng.vec_f32(g.output_len());
        let mut fast = vec![f32::NAN; g.output_len()];
        let mut slow = vec![f32::NAN; g.output_len()];
        conv::conv2d_forward(&g, &x, &w, None, &mut fast).unwrap();
        reference::conv2d_forward(&g, &x, &w, None, &mut slow).unwrap();
        check_close_f32("forward f32", &fast, &slow, 1e-5)?;
        let mut fast = vec![f32::NAN; g.input_len()];
        let mut slow = vec![f32::NAN; g.input_len()];
        conv::conv2d_input_grad(&g, &dy, &w, &mut fast).unwrap();
        reference::conv2d_input_grad(&g, &dy, &w, &mut slow).unwrap();
        check_close_f32("input grad f32", &fast, &slow, 1e-5)?;
        let mut fast = vec![f32::NAN; g.weight_len()];
        let mut slow = vec![f32::NAN; g.weight_len()];
        conv::conv2d_weight_grad(&g, &x, &dy, &mut fast).unwrap();
        reference::conv2d_weight_grad(&g, &x, &dy, &mut slow).unwrap();
        check_close_f32("weight grad f32", &fast, &slow, 1e-5)?;
    }

    /// Constructors never panic, whatever the sizes.
    #[test]
    fn geometry_never_panics(
        sizes in prop::collection::vec(prop_oneof![0usize..4, Just(usize::MAX), Just(usize::MAX / 2), Just(1usize << 40)], 14),
    ) {
        let s = &sizes;
        let _ = Conv2dGeometry::new(s[0], s[1], [s[2], s[3]], s[4], [s[5], s[6]], [s[7], s[8]], [s[9], s[10]], [s[11], s[12]], s[13]);
        let _ = Conv2dGeometry::conv1d(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]);
    }
}

/// Geometries big enough for the batch-parallel path (and one with batch 1, where
/// gemm parallelises instead), including groups, strides, padding, dilation and 1×1.
fn large_geometries() -> Vec<Conv2dGeometry> {
    vec![
        Conv2dGeometry::new(8, 16, [16, 16], 16, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(6, 24, [17, 15], 36, [3, 2], [2, 1], [2, 1], [2, 1], 3).unwrap(),
        Conv2dGeometry::new(12, 32, [16, 16], 48, [1, 1], [1, 1], [0, 0], [1, 1], 2).unwrap(),
        Conv2dGeometry::new(1, 32, [20, 20], 64, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(11, 3, [32, 32], 16, [5, 5], [2, 2], [2, 2], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(4, 8, [40, 70], 8, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(1, 8, [40, 300], 8, [3, 3], [1, 2], [1, 1], [1, 1], 2).unwrap(),
    ]
}

#[test]
fn parallel_paths_match_reference() {
    for (i, g) in large_geometries().iter().enumerate() {
        assert!(g.flops() > 2.2e6, "{g:?} too small to run in parallel");
        with_threads(2, || check_against_reference(g, i as u64)).unwrap();
        with_threads(3, || check_adjoints(g, i as u64)).unwrap();
    }
}

/// The weight gradient's chunked reduction is bit-identical for any thread count;
/// the forward and input gradient too.
#[test]
fn results_do_not_depend_on_thread_count() {
    for (i, g) in large_geometries().iter().enumerate() {
        let d = Data::new(g, 100 + i as u64);
        let run = |threads: usize| {
            with_threads(threads, || {
                let mut y = vec![0.0; g.output_len()];
                let mut dx = vec![0.0; g.input_len()];
                let mut dw = vec![0.0; g.weight_len()];
                conv::conv2d_forward(g, &d.x, &d.w, Some(&d.bias), &mut y).unwrap();
                conv::conv2d_input_grad(g, &d.dy, &d.w, &mut dx).unwrap();
                conv::conv2d_weight_grad(g, &d.x, &d.dy, &mut dw).unwrap();
                (y, dx, dw)
            })
        };
        let one = run(1);
        assert!(one == run(2), "geometry {i}: 1 vs 2 threads");
        assert!(one == run(3), "geometry {i}: 1 vs 3 threads");
    }
}

#[test]
fn hand_computed_examples() {
    // x = [1..9] as 3×3, w = [1 2; 3 4], bias 1: PyTorch's conv2d (a cross-correlation)
    // gives [[38, 48], [68, 78]].
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let w = [1.0, 2.0, 3.0, 4.0];
    let g = Conv2dGeometry::new(1, 1, [3, 3], 1, [2, 2], [1, 1], [0, 0], [1, 1], 1).unwrap();
    assert_eq!((g.out_h, g.out_w), (2, 2));
    let mut y = [0.0; 4];
    conv::conv2d_forward(&g, &x, &w, Some(&[1.0]), &mut y).unwrap();
    assert_eq!(y, [38.0, 48.0, 68.0, 78.0]);

    // Same with stride 2, padding 1: windows start at −1 → [[4, 18], [36, 77]].
    let g = Conv2dGeometry::new(1, 1, [3, 3], 1, [2, 2], [2, 2], [1, 1], [1, 1], 1).unwrap();
    conv::conv2d_forward(&g, &x, &w, None, &mut y).unwrap();
    assert_eq!(y, [4.0, 18.0, 36.0, 77.0]);
    // Its input gradient with dy = 1 counts, for each input, the kernel taps on it:
    // x[0][0]←w11; x[0][1]←w10; x[0][2]←w11; x[1][0]←w01; x[1][1]←w00 ...
    let mut dx = [0.0; 9];
    conv::conv2d_input_grad(&g, &[1.0; 4], &w, &mut dx).unwrap();
    assert_eq!(dx, [4.0, 3.0, 4.0, 2.0, 1.0, 2.0, 4.0, 3.0, 4.0]);
    // Weight gradient with dy = 1: w[ki][kj] sums the inputs its taps land on:
    // w00 only x[1][1]; w01 x[1][0], x[1][2]; w10 x[0][1], x[2][1]; w11 the corners.
    let mut dw = [0.0; 4];
    conv::conv2d_weight_grad(&g, &x, &[1.0; 4], &mut dw).unwrap();
    assert_eq!(dw, [5.0, 4.0 + 6.0, 2.0 + 8.0, 1.0 + 3.0 + 7.0 + 9.0]);

    // conv1d, dilation 2: y[i] = x[i] − x[i+2] over [1, 2, 4, 8, 16] → [−3, −6, −12].
    let g = Conv2dGeometry::conv1d(1, 1, 5, 1, 2, 1, 0, 2, 1).unwrap();
    let mut y = [0.0; 3];
    conv::conv2d_forward(&g, &[1.0, 2.0, 4.0, 8.0, 16.0], &[1.0, -1.0], None, &mut y).unwrap();
    assert_eq!(y, [-3.0, -6.0, -12.0]);

    // Depthwise (groups = channels): each channel with its own 1×1 weight and bias.
    let g = Conv2dGeometry::new(1, 2, [1, 2], 2, [1, 1], [1, 1], [0, 0], [1, 1], 2).unwrap();
    let mut y = [0.0; 4];
    conv::conv2d_forward(
        &g,
        &[1.0, 2.0, 3.0, 4.0],
        &[10.0, -1.0],
        Some(&[0.5, 0.0]),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [10.5, 20.5, -3.0, -4.0]);
}

#[test]
fn invalid_geometries_are_errors() {
    let ok = |g: Result<Conv2dGeometry, _>| g.is_ok();
    assert!(ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    // Zero sizes.
    assert!(!ok(Conv2dGeometry::new(
        0,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        0,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        1
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [0, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        0,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [0, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 0],
        [0, 0],
        [1, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [0, 1],
        2
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        0
    )));
    // Groups not dividing channels.
    assert!(!ok(Conv2dGeometry::new(
        1,
        4,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        4
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        3,
        [5, 5],
        6,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        2
    )));
    // Kernel larger than the padded input (also through dilation).
    assert!(!ok(Conv2dGeometry::new(
        1,
        1,
        [2, 5],
        1,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 1],
        1
    )));
    assert!(ok(Conv2dGeometry::new(
        1,
        1,
        [2, 5],
        1,
        [3, 3],
        [1, 1],
        [1, 0],
        [1, 1],
        1
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        1,
        [5, 5],
        1,
        [3, 3],
        [1, 1],
        [0, 0],
        [1, 3],
        1
    )));
    let err = Conv2dGeometry::new(1, 1, [2, 5], 1, [3, 3], [1, 1], [0, 0], [1, 1], 1).unwrap_err();
    assert!(
        err.0.contains("conv2d") && err.0.contains("height"),
        "{err}"
    );
    // Overflowing sizes.
    assert!(!ok(Conv2dGeometry::new(
        usize::MAX,
        2,
        [5, 5],
        2,
        [1, 1],
        [1, 1],
        [0, 0],
        [1, 1],
        1
    )));
    assert!(!ok(Conv2dGeometry::new(
        1,
        1,
        [5, 5],
        1,
        [3, 3],
        [1, 1],
        [usize::MAX, 0],
        [1, 1],
        1
    )));
}

#[test]
fn wrong_slice_lengths_and_inconsistent_geometry_are_errors() {
    let g = Conv2dGeometry::new(2, 3, [8, 8], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let x = vec![0.0f32; g.input_len()];
    let w = vec![0.0f32; g.weight_len()];
    let dy = vec![0.0f32; g.output_len()];
    let mut y = vec![0.0f32; g.output_len()];
    let mut dx = vec![0.0f32; g.input_len()];
    let mut dw = vec![0.0f32; g.weight_len()];
    let mut db = vec![0.0f32; 4];

    let err = conv::conv2d_forward(&g, &x[..100], &w, None, &mut y).unwrap_err();
    assert_eq!(
        err.0,
        "conv2d: input has 100 elements, geometry needs 2x3x8x8=384"
    );
    assert!(conv::conv2d_forward(&g, &x, &w[1..], None, &mut y).is_err());
    assert!(conv::conv2d_forward(&g, &x, &w, Some(&[0.0; 3]), &mut y).is_err());
    assert!(conv::conv2d_forward(&g, &x, &w, None, &mut y[1..]).is_err());
    assert!(conv::conv2d_input_grad(&g, &dy[1..], &w, &mut dx).is_err());
    assert!(conv::conv2d_input_grad(&g, &dy, &w, &mut dx[1..]).is_err());
    assert!(conv::conv2d_weight_grad(&g, &x, &dy, &mut dw[1..]).is_err());
    assert!(conv::conv2d_weight_grad(&g, &x[1..], &dy, &mut dw).is_err());
    assert!(conv::conv2d_bias_grad(&g, &dy, &mut db[1..]).is_err());
    assert!(reference::conv2d_forward(&g, &x[..100], &w, None, &mut y).is_err());
    assert!(reference::conv2d_bias_grad(&g, &dy[1..], &mut db).is_err());

    // A hand-edited geometry is refused, not trusted.
    let mut bad = g;
    bad.out_h = 9;
    assert!(conv::conv2d_forward(&bad, &x, &w, None, &mut y).is_err());
    let mut bad = g;
    bad.groups = 0;
    assert!(conv::conv2d_input_grad(&bad, &dy, &w, &mut dx).is_err());
    assert!(conv::conv2d_bias_grad(&bad, &dy, &mut db).is_err());
    assert_eq!(bad.weight_len(), 0); // no division by zero
}

/// `conv2d_forward_then` hands every output image to its epilogue exactly once, with the
/// image's index, after the image is complete: the result equals the plain forward with
/// the epilogue applied afterwards, bit for bit, on the im2col path (f64) and the
/// Winograd path (f32 3×3 with 16+ channels, groups of small images and tile-row blocks
/// of large ones), with one thread and several.
#[test]
fn epilogue_sees_each_finished_image_once() {
    use std::sync::Mutex;
    fn check<T: mho_kernels::Float>(g: &Conv2dGeometry, x: &[T], w: &[T], b: &[T]) {
        let image = g.output_len() / g.batch;
        let mut plain = vec![T::ZERO; g.output_len()];
        conv::conv2d_forward(g, x, w, Some(b), &mut plain).unwrap();
        // Each element gets image_index + 1 added after a ReLU-like clamp.
        let expected: Vec<T> = plain
            .iter()
            .enumerate()
            .map(|(i, &v)| v.max(T::ZERO) + T::from_f64((i / image + 1) as f64))
            .collect();
        for threads in [1, 3] {
            let seen = Mutex::new(vec![0usize; g.batch]);
            let mut y = vec![T::ZERO; g.output_len()];
            with_threads(threads, || {
                conv::conv2d_forward_then(g, x, w, Some(b), &mut y, &|first, images| {
                    assert_eq!(images.len() % image, 0);
                    for (k, out) in images.chunks_exact_mut(image).enumerate() {
                        seen.lock().unwrap()[first + k] += 1;
                        let add = T::from_f64((first + k + 1) as f64);
                        out.iter_mut().for_each(|v| *v = v.max(T::ZERO) + add);
                    }
                })
                .unwrap()
            });
            assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1), "{g:?}");
            assert!(y == expected, "{g:?}, {threads} threads");
        }
    }
    for (i, g) in large_geometries().iter().enumerate() {
        let d = Data::new(g, 300 + i as u64);
        check(g, &d.x, &d.w, &d.bias);
    }
    for g in [
        Conv2dGeometry::new(7, 16, [8, 8], 32, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(3, 32, [32, 32], 32, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
        Conv2dGeometry::new(1, 16, [90, 90], 16, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap(),
    ] {
        let d = Data::new(&g, 7);
        let f = |v: &[f64]| v.iter().map(|&e| e as f32).collect::<Vec<f32>>();
        check(&g, &f(&d.x), &f(&d.w), &f(&d.bias));
    }
}
