//! gemm: fast versus reference, edge cases, argument errors.

mod common;

use common::{check_close, check_close_f32, with_threads, Rng};
use mho_kernels::gemm::{gemm, reference};
use proptest::prelude::*;

/// Runs fast and reference gemm on the same random data; returns (fast, reference).
#[allow(clippy::too_many_arguments)]
fn both(
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    ta: bool,
    tb: bool,
    beta: f64,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let c0 = rng.vec(m * n);
    let mut fast = c0.clone();
    let mut slow = c0;
    gemm(m, k, n, alpha, &a, ta, &b, tb, beta, &mut fast).unwrap();
    reference::gemm(m, k, n, alpha, &a, ta, &b, tb, beta, &mut slow).unwrap();
    (fast, slow)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fast_matches_reference_f64(
        m in 0usize..40, k in 0usize..40, n in 0usize..40,
        ta: bool, tb: bool,
        alpha in prop::sample::select(vec![1.0, -0.5, 2.0, 0.0]),
        beta in prop::sample::select(vec![0.0, 1.0, 0.25]),
        seed: u64,
    ) {
        let (fast, slow) = both(m, k, n, alpha, ta, tb, beta, seed);
        check_close("gemm", &fast, &slow, 1e-12)?;
    }

    #[test]
    fn fast_matches_reference_f32(
        m in 1usize..24, k in 1usize..24, n in 1usize..24, ta: bool, tb: bool, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let a = rng.vec_f32(m * k);
        let b = rng.vec_f32(k * n);
        let c0 = rng.vec_f32(m * n);
        let (mut fast, mut slow) = (c0.clone(), c0);
        gemm(m, k, n, 1.5f32, &a, ta, &b, tb, 0.5, &mut fast).unwrap();
        reference::gemm(m, k, n, 1.5f32, &a, ta, &b, tb, 0.5, &mut slow).unwrap();
        check_close_f32("sgemm", &fast, &slow, 1e-5)?;
    }
}

/// Sizes large enough to run in parallel: row blocks (m ≥ 32) and column blocks (few
/// rows), every transpose combination, sizes that do not divide evenly into blocks.
#[test]
fn parallel_blocks_match_reference() {
    for (m, k, n) in [
        (131, 67, 71),
        (64, 64, 64),
        (200, 40, 33),
        (1, 300, 1000),
        (5, 64, 1001),
        (17, 128, 333),
        // Above the 2M multiply-add threshold, so these really split: rows, then columns.
        (131, 700, 71),
        (200, 40, 600),
        (5, 500, 1001),
        (1, 4000, 700),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (fast, slow) = with_threads(3, || both(m, k, n, 0.75, ta, tb, -1.0, 7));
            check_close("parallel gemm", &fast, &slow, 1e-12).unwrap();
            // The row split does not change any element's arithmetic.
            let (serial, _) = with_threads(1, || both(m, k, n, 0.75, ta, tb, -1.0, 7));
            assert_eq!(fast, serial, "m={m} k={k} n={n} ta={ta} tb={tb}");
        }
    }
}

#[test]
fn beta_zero_ignores_nan_in_c() {
    for (m, k, n) in [(3, 4, 5), (100, 50, 80)] {
        let a = vec![1.0; m * k];
        let b = vec![1.0; k * n];
        let mut fast = vec![f64::NAN; m * n];
        let mut slow = vec![f64::NAN; m * n];
        gemm(m, k, n, 1.0, &a, false, &b, false, 0.0, &mut fast).unwrap();
        reference::gemm(m, k, n, 1.0, &a, false, &b, false, 0.0, &mut slow).unwrap();
        assert!(fast.iter().all(|&v| v == k as f64));
        assert_eq!(fast, slow);
    }
}

#[test]
fn empty_inner_dimension_scales_c() {
    let mut c = vec![2.0, f64::NAN];
    gemm(1, 0, 2, 1.0, &[], false, &[], false, 0.0, &mut c).unwrap();
    assert_eq!(c, vec![0.0, 0.0]);
    let mut c = vec![2.0, 4.0];
    gemm(2, 0, 1, 1.0, &[], true, &[], true, 0.5, &mut c).unwrap();
    assert_eq!(c, vec![1.0, 2.0]);
    // Empty outputs are fine too.
    gemm::<f32>(0, 3, 0, 1.0, &[], false, &[], false, 0.0, &mut []).unwrap();
}

#[test]
fn small_example_by_hand() {
    // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]; with Aᵀ: [1 3; 2 4] · B = [26 30; 38 44].
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let b = [5.0f32, 6.0, 7.0, 8.0];
    let mut c = [0.0f32; 4];
    gemm(2, 2, 2, 1.0, &a, false, &b, false, 0.0, &mut c).unwrap();
    assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
    gemm(2, 2, 2, 1.0, &a, true, &b, false, 0.0, &mut c).unwrap();
    assert_eq!(c, [26.0, 30.0, 38.0, 44.0]);
    // 2·A·Bᵀ + C: A·Bᵀ = [17 23; 39 53].
    let mut c = [1.0f32; 4];
    gemm(2, 2, 2, 2.0, &a, false, &b, true, 1.0, &mut c).unwrap();
    assert_eq!(c, [35.0, 47.0, 79.0, 107.0]);
}

#[test]
fn wrong_lengths_are_errors() {
    let a = vec![0.0f64; 6];
    let b = vec![0.0f64; 12];
    let mut c = vec![0.0f64; 8];
    assert!(gemm(2, 3, 4, 1.0, &a, false, &b, false, 0.0, &mut c).is_ok());
    assert!(gemm(2, 3, 4, 1.0, &a[..5], false, &b, false, 0.0, &mut c).is_err());
    assert!(gemm(2, 3, 4, 1.0, &a, false, &b[..11], false, 0.0, &mut c).is_err());
    assert!(gemm(2, 3, 4, 1.0, &a, false, &b, false, 0.0, &mut c[..7]).is_err());
    assert!(reference::gemm(2, 3, 4, 1.0, &a, false, &b, false, 0.0, &mut c[..7]).is_err());
    let err = gemm(3, 3, 4, 1.0, &a, false, &b, false, 0.0, &mut c).unwrap_err();
    assert!(err.0.contains("gemm") && err.0.contains("3x3"), "{err}");
    // Sizes whose products overflow are refused, not wrapped.
    assert!(gemm(usize::MAX, 2, 1, 1.0, &a, false, &b, false, 0.0, &mut c).is_err());
    assert!(gemm(
        1,
        usize::MAX,
        usize::MAX,
        1.0,
        &a,
        true,
        &b,
        true,
        0.0,
        &mut c
    )
    .is_err());
}
