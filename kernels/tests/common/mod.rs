//! Helpers shared by the kernel tests: a seeded generator and tolerance checks.

#![allow(dead_code)]

use proptest::test_runner::TestCaseError;

/// A small seeded generator (splitmix64): test data from one `u64` drawn by proptest.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// `n` values uniform in [-1, 1).
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }

    /// `n` f32 values uniform in [-1, 1).
    pub fn vec_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform() as f32).collect()
    }
}

/// Largest |v|, at least 1 (the scale tolerances are relative to).
pub fn scale(values: &[f64]) -> f64 {
    values.iter().fold(1.0f64, |m, v| m.max(v.abs()))
}

/// Fails unless |got − want| ≤ rel_tol · scale(want) elementwise (and lengths agree).
pub fn check_close(
    what: &str,
    got: &[f64],
    want: &[f64],
    rel_tol: f64,
) -> Result<(), TestCaseError> {
    if got.len() != want.len() {
        return Err(TestCaseError::fail(format!(
            "{what}: length {} vs {}",
            got.len(),
            want.len()
        )));
    }
    let tol = rel_tol * scale(want);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // Written so that a NaN on either side fails.
        let within = (g - w).abs() <= tol;
        if !within {
            return Err(TestCaseError::fail(format!(
                "{what}[{i}]: got {g}, want {w} (tolerance {tol:e})"
            )));
        }
    }
    Ok(())
}

/// [`check_close`] for f32 results (compared in f64).
pub fn check_close_f32(
    what: &str,
    got: &[f32],
    want: &[f32],
    rel_tol: f64,
) -> Result<(), TestCaseError> {
    let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    check_close(what, &got, &want, rel_tol)
}

/// ⟨a, b⟩ by a plain f64 loop.
pub fn inner(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fails unless two inner products agree to `rel_tol` relative to max(1, |lhs|).
pub fn check_adjoint(what: &str, lhs: f64, rhs: f64, rel_tol: f64) -> Result<(), TestCaseError> {
    let tol = rel_tol * lhs.abs().max(1.0);
    if (lhs - rhs).abs() <= tol {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: {lhs} vs {rhs} (tolerance {tol:e})"
        )))
    }
}

/// Runs `f` on a rayon pool with `threads` threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("building a rayon pool")
        .install(f)
}
