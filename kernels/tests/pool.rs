//! Pooling: fast versus reference, PyTorch's shape rules, ties and NaNs, adjoints,
//! hand examples, errors.

mod common;

use common::{check_adjoint, check_close, check_close_f32, inner, with_threads, Rng};
use mho_kernels::pool::{self, reference, AdaptivePool2dGeometry, Pool2dGeometry, NO_ARGMAX};
use proptest::prelude::*;

/// Random valid pooling geometries (dilation up to `max_dilation`), and a data seed.
fn pool_case(max_dilation: usize) -> impl Strategy<Value = (Pool2dGeometry, u64)> {
    (
        (1usize..=2, 1usize..=3),
        (1usize..=9, 1usize..=9),
        (1usize..=4, 1usize..=4),
        (1usize..=3, 1usize..=3),
        (0usize..=2, 0usize..=2),
        (1..=max_dilation, 1..=max_dilation),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map(
            "invalid geometry",
            |((n, c), hw, k, s, p, d, ceil_mode, seed)| {
                Pool2dGeometry::new(
                    n,
                    c,
                    [hw.0, hw.1],
                    [k.0, k.1],
                    [s.0, s.1],
                    [p.0, p.1],
                    [d.0, d.1],
                    ceil_mode,
                )
                .ok()
                .map(|g| (g, seed))
            },
        )
}

/// Random adaptive geometries (outputs may exceed inputs), and a data seed.
fn adaptive_case() -> impl Strategy<Value = (AdaptivePool2dGeometry, u64)> {
    (
        (1usize..=2, 1usize..=3),
        (1usize..=9, 1usize..=9),
        (1usize..=7, 1usize..=7),
        any::<u64>(),
    )
        .prop_map(|((n, c), hw, out, seed)| {
            (
                AdaptivePool2dGeometry::new(n, c, [hw.0, hw.1], [out.0, out.1]).unwrap(),
                seed,
            )
        })
}

/// Input with many exact ties (values from a small set) so that tie-breaking matters.
fn tied_input(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| (rng.next_u64() % 4) as f64 - 2.0)
        .collect()
}

fn check_max_pool(g: &Pool2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    for x in [rng.vec(g.input_len()), tied_input(g.input_len(), seed)] {
        let (mut y_fast, mut y_slow) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
        let (mut a_fast, mut a_slow) = (vec![0; g.output_len()], vec![0; g.output_len()]);
        pool::max_pool2d_forward(g, &x, &mut y_fast, &mut a_fast).unwrap();
        reference::max_pool2d_forward(g, &x, &mut y_slow, &mut a_slow).unwrap();
        prop_assert_eq!(&a_fast, &a_slow);
        prop_assert_eq!(&y_fast, &y_slow);
        for (&a, &y) in a_fast.iter().zip(&y_fast) {
            let consistent = if a == NO_ARGMAX {
                y == f64::NEG_INFINITY
            } else {
                x[a] == y
            };
            prop_assert!(consistent, "argmax {} for output {}", a, y);
        }
        let dy = rng.vec(g.output_len());
        let (mut dx_fast, mut dx_slow) =
            (vec![f64::NAN; g.input_len()], vec![f64::NAN; g.input_len()]);
        pool::max_pool2d_backward(g, &dy, &a_fast, &mut dx_fast).unwrap();
        reference::max_pool2d_backward(g, &dy, &a_fast, &mut dx_slow).unwrap();
        check_close("max backward", &dx_fast, &dx_slow, 1e-12)?;
    }
    Ok(())
}

fn check_avg_pool(g: &Pool2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let x = rng.vec(g.input_len());
    let dy = rng.vec(g.output_len());
    for include_pad in [false, true] {
        let (mut fast, mut slow) = (
            vec![f64::NAN; g.output_len()],
            vec![f64::NAN; g.output_len()],
        );
        pool::avg_pool2d_forward(g, include_pad, &x, &mut fast).unwrap();
        reference::avg_pool2d_forward(g, include_pad, &x, &mut slow).unwrap();
        check_close("avg forward", &fast, &slow, 1e-12)?;
        let (mut dx_fast, mut dx_slow) =
            (vec![f64::NAN; g.input_len()], vec![f64::NAN; g.input_len()]);
        pool::avg_pool2d_backward(g, include_pad, &dy, &mut dx_fast).unwrap();
        reference::avg_pool2d_backward(g, include_pad, &dy, &mut dx_slow).unwrap();
        check_close("avg backward", &dx_fast, &dx_slow, 1e-12)?;
        check_adjoint(
            "avg pool ⟨dy, pool x⟩ vs ⟨backward dy, x⟩",
            inner(&dy, &fast),
            inner(&dx_fast, &x),
            1e-10,
        )?;
    }
    Ok(())
}

fn check_adaptive(g: &AdaptivePool2dGeometry, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let x = rng.vec(g.input_len());
    let dy = rng.vec(g.output_len());
    let (mut fast, mut slow) = (
        vec![f64::NAN; g.output_len()],
        vec![f64::NAN; g.output_len()],
    );
    pool::adaptive_avg_pool2d_forward(g, &x, &mut fast).unwrap();
    reference::adaptive_avg_pool2d_forward(g, &x, &mut slow).unwrap();
    check_close("adaptive forward", &fast, &slow, 1e-12)?;
    let (mut dx_fast, mut dx_slow) = (vec![f64::NAN; g.input_len()], vec![f64::NAN; g.input_len()]);
    pool::adaptive_avg_pool2d_backward(g, &dy, &mut dx_fast).unwrap();
    reference::adaptive_avg_pool2d_backward(g, &dy, &mut dx_slow).unwrap();
    check_close("adaptive backward", &dx_fast, &dx_slow, 1e-12)?;
    check_adjoint(
        "adaptive ⟨dy, pool x⟩ vs ⟨backward dy, x⟩",
        inner(&dy, &fast),
        inner(&dx_fast, &x),
        1e-10,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_pool_matches_reference((g, seed) in pool_case(3)) {
        check_max_pool(&g, seed)?;
    }

    #[test]
    fn avg_pool_matches_reference((g, seed) in pool_case(1)) {
        check_avg_pool(&g, seed)?;
    }

    #[test]
    fn adaptive_pool_matches_reference((g, seed) in adaptive_case()) {
        check_adaptive(&g, seed)?;
    }

    #[test]
    fn pools_match_reference_f32((g, seed) in pool_case(1)) {
        let mut rng = Rng::new(seed);
        let x = rng.vec_f32(g.input_len());
        let (mut fast, mut slow) = (vec![0.0f32; g.output_len()], vec![0.0f32; g.output_len()]);
        let (mut a_fast, mut a_slow) = (vec![0; g.output_len()], vec![0; g.output_len()]);
        pool::max_pool2d_forward(&g, &x, &mut fast, &mut a_fast).unwrap();
        reference::max_pool2d_forward(&g, &x, &mut slow, &mut a_slow).unwrap();
        prop_assert_eq!(&fast, &slow);
        prop_assert_eq!(&a_fast, &a_slow);
        pool::avg_pool2d_forward(&g, false, &x, &mut fast).unwrap();
        reference::avg_pool2d_forward(&g, false, &x, &mut slow).unwrap();
        check_close_f32("avg f32", &fast, &slow, 1e-6)?;
    }

    #[test]
    fn pool1d_matches_reference(
        len in 1usize..=12, kernel in 1usize..=4, stride in 1usize..=3, padding in 0usize..=2,
        dilation in 1usize..=2, ceil_mode: bool, seed: u64,
    ) {
        if let Ok(g) = Pool2dGeometry::pool1d(2, 2, len, kernel, stride, padding, dilation, ceil_mode) {
            prop_assert_eq!((g.in_h, g.out_h, g.kernel[0], g.padding[0]), (1, 1, 1, 0));
            check_max_pool(&g, seed)?;
            if dilation == 1 {
                check_avg_pool(&g, seed)?;
            }
        }
    }

    /// The output size follows PyTorch's `pooling_output_shape` (written out here in
    /// signed arithmetic, as in ATen).
    #[test]
    fn output_size_is_pytorchs(
        input in 1i64..=20, kernel in 1i64..=6, stride in 1i64..=4, pad in 0i64..=3,
        dilation in 1i64..=3, ceil_mode: bool,
    ) {
        let effective = dilation * (kernel - 1) + 1;
        let numerator = input + 2 * pad - effective + if ceil_mode { stride - 1 } else { 0 };
        let mut out = numerator.div_euclid(stride) + 1;
        if ceil_mode && (out - 1) * stride >= input + pad {
            out -= 1;
        }
        let pytorch_accepts = pad <= effective / 2 && out >= 1;
        let u = |v: i64| v as usize;
        let g = Pool2dGeometry::pool1d(1, 1, u(input), u(kernel), u(stride), u(pad), u(dilation), ceil_mode);
        prop_assert_eq!(g.is_ok(), pytorch_accepts);
        if let Ok(g) = g {
            prop_assert_eq!(g.out_w as i64, out);
        }
    }

    /// Constructors never panic, whatever the sizes.
    #[test]
    fn geometry_never_panics(
        sizes in prop::collection::vec(prop_oneof![0usize..4, Just(usize::MAX), Just(usize::MAX / 2), Just(1usize << 40)], 12),
        ceil_mode: bool,
    ) {
        let s = &sizes;
        let _ = Pool2dGeometry::new(s[0], s[1], [s[2], s[3]], [s[4], s[5]], [s[6], s[7]], [s[8], s[9]], [s[10], s[11]], ceil_mode);
        let _ = Pool2dGeometry::pool1d(s[0], s[1], s[2], s[3], s[4], s[5], s[6], ceil_mode);
        let _ = AdaptivePool2dGeometry::new(s[0], s[1], [s[2], s[3]], [s[4], s[5]]);
    }
}

#[test]
fn parallel_paths_match_reference() {
    let g = Pool2dGeometry::new(4, 16, [33, 31], [3, 3], [2, 2], [1, 1], [1, 1], true).unwrap();
    with_threads(3, || check_max_pool(&g, 1)).unwrap();
    with_threads(3, || check_avg_pool(&g, 2)).unwrap();
    let g = Pool2dGeometry::new(4, 16, [33, 31], [3, 2], [2, 1], [1, 1], [2, 3], false).unwrap();
    with_threads(2, || check_max_pool(&g, 3)).unwrap();
    let g = AdaptivePool2dGeometry::new(4, 16, [33, 31], [7, 5]).unwrap();
    with_threads(3, || check_adaptive(&g, 4)).unwrap();
}

#[test]
fn max_pool_ties_go_to_the_first_index() {
    // All equal: each window picks its first (row-major) element.
    let g = Pool2dGeometry::new(1, 1, [4, 4], [2, 2], [2, 2], [0, 0], [1, 1], false).unwrap();
    let (mut y, mut argmax) = ([0.0f32; 4], [0usize; 4]);
    pool::max_pool2d_forward(&g, &[7.0; 16], &mut y, &mut argmax).unwrap();
    assert_eq!(argmax, [0, 2, 8, 10]);
    // With padding the first real element wins over later equal ones; −∞ inputs keep
    // the first real tap (padding never becomes the argmax).
    let g = Pool2dGeometry::pool1d(1, 1, 3, 3, 1, 1, 1, false).unwrap();
    let (mut y, mut argmax) = ([0.0f64; 3], [0usize; 3]);
    pool::max_pool2d_forward(&g, &[f64::NEG_INFINITY; 3], &mut y, &mut argmax).unwrap();
    assert_eq!(argmax, [0, 0, 1]);
    assert_eq!(y, [f64::NEG_INFINITY; 3]);
    // Indices are over the whole NCHW buffer.
    let g = Pool2dGeometry::new(2, 2, [2, 2], [2, 2], [2, 2], [0, 0], [1, 1], false).unwrap();
    let (mut y, mut argmax) = ([0.0f64; 4], [0usize; 4]);
    pool::max_pool2d_forward(&g, &[1.0; 16], &mut y, &mut argmax).unwrap();
    assert_eq!(argmax, [0, 4, 8, 12]);
}

#[test]
fn max_pool_nan_wins() {
    let g = Pool2dGeometry::pool1d(1, 1, 4, 4, 1, 0, 1, false).unwrap();
    let (mut y, mut argmax) = ([0.0f32; 1], [0usize; 1]);
    pool::max_pool2d_forward(&g, &[1.0, f32::NAN, 5.0, 2.0], &mut y, &mut argmax).unwrap();
    assert!(y[0].is_nan());
    assert_eq!(argmax, [1]);
    // As in ATen's scan, every NaN met replaces the previous choice.
    pool::max_pool2d_forward(&g, &[f32::NAN, 3.0, f32::NAN, 2.0], &mut y, &mut argmax).unwrap();
    assert_eq!(argmax, [2]);
}

#[test]
fn max_pool_window_with_no_input_element() {
    // Kernel 2, dilation 5 on an input of 2 with padding 3: taps at −3/+2, −2/+3, −1/+4
    // all miss the input.
    let g = Pool2dGeometry::pool1d(1, 1, 2, 2, 1, 3, 5, false).unwrap();
    assert_eq!(g.out_w, 3);
    let (mut y, mut argmax) = ([0.0f64; 3], [0usize; 3]);
    pool::max_pool2d_forward(&g, &[1.0, 2.0], &mut y, &mut argmax).unwrap();
    assert_eq!(y, [f64::NEG_INFINITY; 3]);
    assert_eq!(argmax, [NO_ARGMAX; 3]);
    let mut dx = [9.0; 2];
    pool::max_pool2d_backward(&g, &[1.0; 3], &argmax, &mut dx).unwrap();
    assert_eq!(dx, [0.0, 0.0]);
}

#[test]
fn hand_computed_examples() {
    // max_pool2d(arange(16).view(1,1,4,4), 2) = [[5, 7], [13, 15]], indices the same.
    let x: Vec<f64> = (0..16).map(f64::from).collect();
    let g = Pool2dGeometry::new(1, 1, [4, 4], [2, 2], [2, 2], [0, 0], [1, 1], false).unwrap();
    let (mut y, mut argmax) = ([0.0; 4], [0usize; 4]);
    pool::max_pool2d_forward(&g, &x, &mut y, &mut argmax).unwrap();
    assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(argmax, [5, 7, 13, 15]);
    let mut dx = [0.0; 16];
    pool::max_pool2d_backward(&g, &[1.0, 2.0, 3.0, 4.0], &argmax, &mut dx).unwrap();
    assert_eq!(dx[5] + dx[7] + dx[13] + dx[15], 10.0);
    assert_eq!(dx.iter().filter(|&&v| v != 0.0).count(), 4);

    // avg_pool2d(arange(1, 10).view(1,1,3,3), 3, stride 2, padding 1):
    // count_include_pad → [[12/9, 16/9], [24/9, 28/9]]; without → [[3, 4], [6, 7]].
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let g = Pool2dGeometry::new(1, 1, [3, 3], [3, 3], [2, 2], [1, 1], [1, 1], false).unwrap();
    let mut y = [0.0; 4];
    pool::avg_pool2d_forward(&g, true, &x, &mut y).unwrap();
    assert_eq!(y, [12.0 / 9.0, 16.0 / 9.0, 24.0 / 9.0, 28.0 / 9.0]);
    pool::avg_pool2d_forward(&g, false, &x, &mut y).unwrap();
    assert_eq!(y, [3.0, 4.0, 6.0, 7.0]);

    // ceil_mode: avg_pool1d([1..5], 2, 2, ceil_mode=True) = [1.5, 3.5, 5]; the last
    // window is clipped to the input, divisor 1 even with count_include_pad.
    let g = Pool2dGeometry::pool1d(1, 1, 5, 2, 2, 0, 1, true).unwrap();
    let mut y = [0.0; 3];
    pool::avg_pool2d_forward(&g, true, &[1.0, 2.0, 3.0, 4.0, 5.0], &mut y).unwrap();
    assert_eq!(y, [1.5, 3.5, 5.0]);
    // ceil_mode with padding: avg_pool1d([1..4], 3, 2, padding 1, ceil_mode=True):
    // windows −1..2, 1..4, 3..6→3..5 → include_pad divisors 3, 3, 2:
    // [(0+1+2)/3, (2+3+4)/3, (4+0)/2] = [1, 3, 2]; without padding: [1.5, 3, 4].
    let g = Pool2dGeometry::pool1d(1, 1, 4, 3, 2, 1, 1, true).unwrap();
    assert_eq!(g.out_w, 3);
    pool::avg_pool2d_forward(&g, true, &[1.0, 2.0, 3.0, 4.0], &mut y).unwrap();
    assert_eq!(y, [1.0, 3.0, 2.0]);
    pool::avg_pool2d_forward(&g, false, &[1.0, 2.0, 3.0, 4.0], &mut y).unwrap();
    assert_eq!(y, [1.5, 3.0, 4.0]);

    // adaptive_avg_pool1d([1..5], 3): bins 0..2, 1..4, 3..5 → [1.5, 3, 4.5].
    let g = AdaptivePool2dGeometry::new(1, 1, [1, 5], [1, 3]).unwrap();
    pool::adaptive_avg_pool2d_forward(&g, &[1.0, 2.0, 3.0, 4.0, 5.0], &mut y).unwrap();
    assert_eq!(y, [1.5, 3.0, 4.5]);
    let mut dx = [0.0; 5];
    pool::adaptive_avg_pool2d_backward(&g, &[2.0, 3.0, 4.0], &mut dx).unwrap();
    assert_eq!(dx, [1.0, 1.0 + 1.0, 1.0, 1.0 + 2.0, 2.0]);
}

#[test]
fn output_sizes_follow_pytorch() {
    let out = |len, k, s, p, d, ceil| {
        Pool2dGeometry::pool1d(1, 1, len, k, s, p, d, ceil).map(|g| g.out_w)
    };
    assert_eq!(out(5, 2, 2, 0, 1, false), Ok(2));
    assert_eq!(out(5, 2, 2, 0, 1, true), Ok(3));
    // ceil_mode would add a window starting in the right padding: dropped.
    assert_eq!(out(3, 2, 2, 1, 1, true), Ok(2));
    assert_eq!(out(3, 2, 2, 1, 1, false), Ok(2));
    // Padding at most half the effective kernel (d·(k−1)+1)/2.
    assert!(out(5, 3, 1, 2, 1, false).is_err());
    assert_eq!(out(5, 2, 1, 2, 3, false), Ok(6));
    assert!(out(5, 2, 1, 3, 3, false).is_err());
    // Kernel larger than the padded input.
    assert_eq!(out(2, 4, 1, 1, 1, false), Ok(1));
    assert!(out(2, 5, 1, 1, 1, false).is_err());
    assert!(out(2, 5, 1, 1, 1, true).is_err());
}

#[test]
fn invalid_arguments_are_errors() {
    let g = |hw, k, s, p, d| Pool2dGeometry::new(1, 1, hw, k, s, p, d, false);
    assert!(g([4, 4], [2, 2], [2, 2], [0, 0], [1, 1]).is_ok());
    assert!(g([0, 4], [2, 2], [2, 2], [0, 0], [1, 1]).is_err());
    assert!(g([4, 4], [0, 2], [2, 2], [0, 0], [1, 1]).is_err());
    assert!(g([4, 4], [2, 2], [2, 0], [0, 0], [1, 1]).is_err());
    assert!(g([4, 4], [2, 2], [2, 2], [0, 0], [0, 1]).is_err());
    assert!(Pool2dGeometry::new(0, 1, [4, 4], [2, 2], [2, 2], [0, 0], [1, 1], false).is_err());
    assert!(Pool2dGeometry::new(1, 0, [4, 4], [2, 2], [2, 2], [0, 0], [1, 1], false).is_err());
    assert!(AdaptivePool2dGeometry::new(1, 1, [4, 4], [0, 2]).is_err());
    assert!(AdaptivePool2dGeometry::new(1, 1, [0, 4], [1, 2]).is_err());
    assert!(AdaptivePool2dGeometry::new(usize::MAX, 2, [4, 4], [1, 2]).is_err());

    let g = Pool2dGeometry::new(2, 3, [4, 4], [2, 2], [2, 2], [0, 0], [1, 1], false).unwrap();
    let x = vec![0.0f32; g.input_len()];
    let mut y = vec![0.0f32; g.output_len()];
    let mut argmax = vec![0usize; g.output_len()];
    let mut dx = vec![0.0f32; g.input_len()];
    let err = pool::max_pool2d_forward(&g, &x[1..], &mut y, &mut argmax).unwrap_err();
    assert_eq!(
        err.0,
        "max_pool2d: input has 95 elements, geometry needs 2x3x4x4=96"
    );
    assert!(pool::max_pool2d_forward(&g, &x, &mut y[1..], &mut argmax).is_err());
    assert!(pool::max_pool2d_forward(&g, &x, &mut y, &mut argmax[1..]).is_err());
    assert!(pool::max_pool2d_backward(&g, &y, &argmax, &mut dx[1..]).is_err());
    assert!(pool::avg_pool2d_forward(&g, true, &x[1..], &mut y).is_err());
    assert!(pool::avg_pool2d_backward(&g, true, &y[1..], &mut dx).is_err());
    assert!(reference::avg_pool2d_backward(&g, true, &y[1..], &mut dx).is_err());

    // argmax entries outside their own plane are refused.
    pool::max_pool2d_forward(&g, &x, &mut y, &mut argmax).unwrap();
    assert!(pool::max_pool2d_backward(&g, &y, &argmax, &mut dx).is_ok());
    argmax[0] = 16; // plane 1's first element, given for plane 0
    assert!(pool::max_pool2d_backward(&g, &y, &argmax, &mut dx).is_err());
    assert!(reference::max_pool2d_backward(&g, &y, &argmax, &mut dx).is_err());
    argmax[0] = 1 << 40;
    assert!(pool::max_pool2d_backward(&g, &y, &argmax, &mut dx).is_err());

    // Average pooling has no dilation.
    let dilated = Pool2dGeometry::new(2, 3, [4, 4], [2, 2], [1, 1], [0, 0], [2, 2], false).unwrap();
    let mut y = vec![0.0f32; dilated.output_len()];
    assert!(pool::avg_pool2d_forward(&dilated, true, &x, &mut y).is_err());
    assert!(reference::avg_pool2d_forward(&dilated, true, &x, &mut y).is_err());

    // Hand-edited geometry.
    let mut bad = g;
    bad.out_w = 3;
    let mut y = vec![0.0f32; bad.output_len()];
    let mut argmax = vec![0usize; bad.output_len()];
    assert!(pool::max_pool2d_forward(&bad, &x, &mut y, &mut argmax).is_err());
    let mut bad_adaptive = AdaptivePool2dGeometry::new(1, 1, [4, 4], [2, 2]).unwrap();
    bad_adaptive.out_h = 0;
    assert!(pool::adaptive_avg_pool2d_forward(&bad_adaptive, &x[..16], &mut []).is_err());
}
