//! Elementwise helpers: fast versus reference, parallel lengths, accuracy, errors.

mod common;

use common::{check_close, with_threads, Rng};
use mho_kernels::elementwise::{self, reference};
use proptest::prelude::*;

/// Lengths around the leaf, chunk and parallel thresholds.
fn lengths() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..2000,
        Just(1 << 16),
        (1usize << 16) - 3..(1 << 16) + 3,
        Just(100_003)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn maps_match_reference(len in lengths(), seed: u64) {
        let mut rng = Rng::new(seed);
        let a = rng.vec(len);
        let b = rng.vec(len);
        let (mut fast, mut slow) = (vec![0.0; len], vec![0.0; len]);
        elementwise::map(&a, &mut fast, |v| v.tanh() * 3.0).unwrap();
        reference::map(&a, &mut slow, |v| v.tanh() * 3.0).unwrap();
        prop_assert_eq!(&fast, &slow);
        elementwise::zip_map(&a, &b, &mut fast, |x, y| x * y - y).unwrap();
        reference::zip_map(&a, &b, &mut slow, |x, y| x * y - y).unwrap();
        prop_assert_eq!(&fast, &slow);
        elementwise::axpy(-0.75, &a, &mut fast).unwrap();
        reference::axpy(-0.75, &a, &mut slow).unwrap();
        prop_assert_eq!(&fast, &slow);
    }

    #[test]
    fn dot_matches_reference(len in lengths(), seed: u64) {
        let mut rng = Rng::new(seed);
        let a = rng.vec(len);
        let b = rng.vec(len);
        let fast = elementwise::dot(&a, &b).unwrap();
        let slow = reference::dot(&a, &b).unwrap();
        let magnitude: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        prop_assert!((fast - slow).abs() <= 1e-12 * magnitude.max(1.0), "{} vs {}", fast, slow);
        let ones = vec![1.0; len];
        let sum = elementwise::dot(&a, &ones).unwrap();
        check_close("dot with ones", &[sum], &[a.iter().sum::<f64>()], 1e-10)?;
    }
}

#[test]
fn dot_is_the_same_for_any_thread_count() {
    let mut rng = Rng::new(5);
    let a = rng.vec_f32(300_001);
    let b = rng.vec_f32(300_001);
    let one = with_threads(1, || elementwise::dot(&a, &b).unwrap());
    assert_eq!(
        one.to_bits(),
        with_threads(2, || elementwise::dot(&a, &b).unwrap()).to_bits()
    );
    assert_eq!(
        one.to_bits(),
        with_threads(3, || elementwise::dot(&a, &b).unwrap()).to_bits()
    );
}

#[test]
fn dot_f32_is_more_accurate_than_a_running_sum() {
    // 2^20 copies of 0.1: the running f32 sum drifts far; the pairwise one barely.
    let n = 1 << 20;
    let a = vec![0.1f32; n];
    let b = vec![1.0f32; n];
    let exact = 0.1f32 as f64 * n as f64;
    let pairwise = elementwise::dot(&a, &b).unwrap() as f64;
    let running = reference::dot(&a, &b).unwrap() as f64;
    assert!(
        (pairwise - exact).abs() / exact < 1e-6,
        "pairwise {pairwise} vs {exact}"
    );
    assert!((running - exact).abs() > 10.0 * (pairwise - exact).abs());
}

#[test]
fn length_mismatches_are_errors() {
    let a = [1.0f32; 3];
    let mut y = [0.0f32; 2];
    assert!(elementwise::map(&a, &mut y, |v| v).is_err());
    assert!(elementwise::zip_map(&a, &a[..2], &mut y, |x, _| x).is_err());
    assert!(elementwise::zip_map(&a[..2], &a[..2], &mut y, |x, _| x).is_ok());
    assert!(elementwise::axpy(1.0, &a, &mut y).is_err());
    assert!(elementwise::dot(&a, &y).is_err());
    assert!(reference::map(&a, &mut y, |v| v).is_err());
    assert!(reference::zip_map(&a, &a, &mut y, |x, _| x).is_err());
    assert!(reference::axpy(1.0, &a, &mut y).is_err());
    assert!(reference::dot(&a, &y).is_err());
    assert_eq!(elementwise::dot::<f64>(&[], &[]), Ok(0.0));
}

/// map_with_tangent writes f(x, t) into both outputs, element by element, on every length
/// (serial and parallel paths), and rejects mismatched lengths.
#[test]
fn map_with_tangent_matches_elementwise_application() {
    let mut rng = Rng::new(31);
    for len in [0, 1, 7, (1 << 16) - 1, 1 << 16, 100_003] {
        let x = rng.vec(len);
        let t = rng.vec(len);
        let f = |x: f64, t: f64| (x.max(0.0), if x > 0.0 { t } else { 0.5 * t });
        let (mut y, mut ty) = (vec![f64::NAN; len], vec![f64::NAN; len]);
        elementwise::map_with_tangent(&x, &t, &mut y, &mut ty, f).unwrap();
        for i in 0..len {
            assert_eq!((y[i], ty[i]), f(x[i], t[i]), "element {i} of {len}");
        }
    }
    let (x, mut y, mut ty) = (vec![0.0; 4], vec![0.0; 4], vec![0.0; 3]);
    assert!(elementwise::map_with_tangent(&x, &x, &mut y, &mut ty, |a, b| (a, b)).is_err());
    assert!(
        elementwise::map_with_tangent(&x, &x[..3], &mut y, &mut ty[..], |a, b| (a, b)).is_err()
    );
}
