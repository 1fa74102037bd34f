//! The single-threaded f32 gemm kernels (AVX-512, AVX2 + FMA, portable, matrixmultiply)
//! against an f64 reference, with a forward error bound: every kernel available on
//! this CPU is run directly through `gemm_with`, and the dispatched `gemm` too.

mod common;

use common::{with_threads, Rng};
use mho_kernels::gemm::{gemm, gemm_with, reference, Kernel};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The kernels this CPU can run.
fn available() -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

/// One gemm problem with f32 data.
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    ta: bool,
    tb: bool,
    beta: f32,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Problem {
    /// Random data in [-1, 1); C is all NaN when beta is zero (it must not be read).
    #[allow(clippy::too_many_arguments)]
    fn new(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        ta: bool,
        tb: bool,
        beta: f32,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let a = rng.vec_f32(m * k);
        let b = rng.vec_f32(k * n);
        let c = if beta == 0.0 {
            vec![f32::NAN; m * n]
        } else {
            rng.vec_f32(m * n)
        };
        Self {
            m,
            k,
            n,
            alpha,
            ta,
            tb,
            beta,
            a,
            b,
            c,
        }
    }

    /// Checks `got` against the exact product (computed in f64 from the same f32 data)
    /// within the forward error bound of an f32 gemm summing in any order:
    /// |got − exact| ≤ (k + 2)·ε·(|α|·Σ_p |a_ip|·|b_pj| + |β|·|c_ij|) + tiny.
    fn check(&self, what: &str, got: &[f32]) -> Result<(), TestCaseError> {
        let (m, k, n) = (self.m, self.k, self.n);
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let abs = |v: &[f32]| v.iter().map(|&x| (x as f64).abs()).collect::<Vec<f64>>();
        let c0 = if self.beta == 0.0 {
            vec![0.0; m * n]
        } else {
            wide(&self.c)
        };
        let mut exact = c0.clone();
        let (alpha, beta) = (self.alpha as f64, self.beta as f64);
        let (a, b) = (wide(&self.a), wide(&self.b));
        reference::gemm(m, k, n, alpha, &a, self.ta, &b, self.tb, beta, &mut exact).unwrap();
        let mut magnitude: Vec<f64> = c0.iter().map(|c| c.abs()).collect();
        let (abs_a, abs_b) = (abs(&self.a), abs(&self.b));
        reference::gemm(
            m,
            k,
            n,
            alpha.abs(),
            &abs_a,
            self.ta,
            &abs_b,
            self.tb,
            beta.abs(),
            &mut magnitude,
        )
        .unwrap();
        if got.len() != exact.len() {
            return Err(TestCaseError::fail(format!("{what}: wrong length")));
        }
        let eps = f32::EPSILON as f64;
        for (i, ((&g, &e), &mag)) in got.iter().zip(&exact).zip(&magnitude).enumerate() {
            let bound = (k + 2) as f64 * eps * mag + f32::MIN_POSITIVE as f64;
            // Written so that a NaN fails.
            let within = (g as f64 - e).abs() <= bound;
            if !within {
                return Err(TestCaseError::fail(format!(
                    "{what} m={m} k={k} n={n} ta={} tb={} alpha={} beta={}: C[{}][{}] = {g}, \
                     exact {e}, bound {bound:e}",
                    self.ta,
                    self.tb,
                    self.alpha,
                    self.beta,
                    i / n,
                    i % n
                )));
            }
        }
        Ok(())
    }

    /// Runs `kernel` on a copy of C.
    fn run(&self, kernel: Kernel) -> Vec<f32> {
        let mut c = self.c.clone();
        let (a, b) = (&self.a, &self.b);
        gemm_with(
            kernel, self.m, self.k, self.n, self.alpha, a, self.ta, b, self.tb, self.beta, &mut c,
        )
        .unwrap();
        c
    }

    /// Runs the dispatched (possibly multi-threaded) gemm on a copy of C.
    fn run_dispatched(&self) -> Vec<f32> {
        let mut c = self.c.clone();
        let (a, b) = (&self.a, &self.b);
        gemm(
            self.m, self.k, self.n, self.alpha, a, self.ta, b, self.tb, self.beta, &mut c,
        )
        .unwrap();
        c
    }
}

/// Sizes around the register tiles (MR up to 12, NR up to 32) including 0 and 1.
fn small() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..4, 4usize..70]
}

/// Inner dimensions: small, or beyond one KC block (256 or 384).
fn inner() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..70, 250usize..800]
}

fn alphas() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![1.0f32, -0.5, 2.0, 0.0])
}

fn betas() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![0.0f32, 1.0, 0.25, -1.0])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every available kernel, directly, over sizes, transposes, α and β.
    #[test]
    fn each_kernel_matches_reference(
        m in small(), k in inner(), n in small(), ta: bool, tb: bool,
        alpha in alphas(), beta in betas(), seed: u64,
    ) {
        let p = Problem::new(m, k, n, alpha, ta, tb, beta, seed);
        for kernel in available() {
            p.check(&format!("{kernel:?}"), &p.run(kernel))?;
        }
    }

    /// The dispatched gemm (threads and the best kernel) on sizes that cross the column
    /// block NC (512 or 1024) and split over threads.
    #[test]
    fn dispatched_gemm_matches_reference(
        m in prop_oneof![1usize..40, 90usize..140], k in inner(),
        n in prop_oneof![1usize..40, 500usize..1100], ta: bool, tb: bool,
        alpha in alphas(), beta in betas(), seed: u64,
    ) {
        let p = Problem::new(m, k, n, alpha, ta, tb, beta, seed);
        let got = with_threads(3, || p.run_dispatched());
        p.check("gemm", &got)?;
    }
}

/// Fixed large cases for every kernel: several KC blocks, several NC blocks, edges in
/// all three dimensions, all transposes, β = 0 over NaN and β ≠ 0.
#[test]
fn each_kernel_on_blocked_sizes() {
    for (m, k, n) in [
        (37, 1000, 1100),
        (130, 777, 67),
        (12, 385, 1025),
        (1, 900, 33),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in [(1.0, 0.0), (-0.75, 0.5)] {
                let p = Problem::new(m, k, n, alpha, ta, tb, beta, 11);
                for kernel in available() {
                    p.check(&format!("{kernel:?}"), &p.run(kernel)).unwrap();
                }
            }
        }
    }
}

/// The conv-shaped problems the convolutions run (forward, input and weight gradient).
#[test]
fn each_kernel_on_conv_shapes() {
    for (m, k, n, ta, tb) in [
        (32, 27, 1024, false, false),
        (64, 576, 256, false, false),
        (288, 32, 1024, true, false),
        (27, 64, 256, true, false),
        (32, 1024, 288, false, true),
        (64, 256, 27, false, true),
    ] {
        let p = Problem::new(m, k, n, 1.0, ta, tb, 0.0, 5);
        for kernel in available() {
            p.check(&format!("{kernel:?}"), &p.run(kernel)).unwrap();
        }
    }
}

/// β = 0 writes C without reading it (NaN and infinity in C vanish) for every kernel,
/// and k = 0 scales C by β.
#[test]
fn each_kernel_beta_zero_and_empty_k() {
    for kernel in available() {
        for (m, k, n) in [(13, 5, 33), (1, 1, 1), (24, 400, 64)] {
            let a = vec![1.0f32; m * k];
            let b = vec![1.0f32; k * n];
            let mut c = vec![f32::NAN; m * n];
            c[0] = f32::INFINITY;
            gemm_with(kernel, m, k, n, 1.0, &a, false, &b, false, 0.0, &mut c).unwrap();
            assert!(c.iter().all(|&v| v == k as f32), "{kernel:?} {m}x{k}x{n}");
        }
        let mut c = vec![f32::NAN, 2.0];
        gemm_with(kernel, 1, 0, 2, 1.0, &[], false, &[], false, 0.0, &mut c).unwrap();
        assert_eq!(c, [0.0, 0.0], "{kernel:?}");
        let mut c = vec![2.0f32, -4.0];
        gemm_with(kernel, 2, 0, 1, 1.0, &[], true, &[], true, 0.5, &mut c).unwrap();
        assert_eq!(c, [1.0, -2.0], "{kernel:?}");
        gemm_with(kernel, 0, 3, 0, 1.0, &[], false, &[], false, 0.0, &mut []).unwrap();
        assert!(gemm_with(
            kernel,
            2,
            3,
            4,
            1.0,
            &[0.0; 5],
            false,
            &[0.0; 12],
            false,
            0.0,
            &mut [0.0; 8]
        )
        .is_err());
    }
}

/// Splitting C over threads does not change any f32 element (the blocking depends on k
/// only).
#[test]
fn f32_thread_split_is_bit_identical() {
    // Row splits, then column splits (C of 5 and 1 rows), all above the 2M multiply-add
    // threshold below which gemm stays on one thread.
    for (m, k, n) in [
        (131, 700, 71),
        (200, 40, 600),
        (5, 500, 1001),
        (1, 4000, 700),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = Problem::new(m, k, n, 0.75, ta, tb, -1.0, 3);
            let parallel = with_threads(3, || p.run_dispatched());
            let serial = p.run(Kernel::best());
            assert_eq!(parallel, serial, "m={m} k={k} n={n} ta={ta} tb={tb}");
        }
    }
}

/// The dispatched kernel is the fastest one this CPU has.
#[test]
fn best_kernel_is_available() {
    let best = Kernel::best();
    assert!(best.is_available());
    if Kernel::Avx512.is_available() {
        assert_eq!(best, Kernel::Avx512);
    }
}

/// Products with a large op(B) and more than twice as many columns as rows split their
/// columns between threads (the attribution sweep's linear layers): checked at the
/// CIFAR network's 4096 → 256 layer shapes, forward (B transposed) and input gradient.
#[test]
fn dispatched_gemm_on_wide_products_with_a_large_b() {
    for (m, k, n, ta, tb) in [
        (100, 4096, 256, false, true),
        (50, 256, 4096, false, false),
        (37, 1100, 1000, true, false),
    ] {
        for (alpha, beta) in [(1.0, 0.0), (-0.75, 0.5)] {
            let p = Problem::new(m, k, n, alpha, ta, tb, beta, 5);
            for threads in [2, 3] {
                let got = with_threads(threads, || p.run_dispatched());
                p.check("gemm", &got).unwrap();
            }
        }
    }
}
