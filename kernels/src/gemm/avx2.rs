//! The AVX2 + FMA micro-kernel: tiles of up to 6 rows × 16 columns of C, two ymm
//! accumulators per row (12 of the 16 registers). Edge tiles use fewer rows (a kernel
//! per row count) and masked loads/stores for the last columns.

use std::arch::x86_64::*;

use super::blocked::MicroKernel;

/// Floats per ymm register.
const LANES: usize = 8;

/// The AVX2 + FMA kernel (run-time detected).
pub(super) struct Avx2;

impl MicroKernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 2 * LANES;
    const KC: usize = 256;
    const NC: usize = 1024;

    fn available() -> bool {
        super::Kernel::Avx2.is_available()
    }

    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: isize,
        mr: usize,
        nr: usize,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: forwarded contract; `available()` (checked by the caller) means the
        // CPU has AVX2 and FMA.
        unsafe { tile(kc, a, b, ldb, c, ldc, mr, nr, alpha, beta) }
    }
}

/// Dispatches to the kernel for `mr` rows and ⌈nr/8⌉ vectors per row.
///
/// # Safety
/// As [`MicroKernel::tile`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: isize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    macro_rules! by_rows {
        ($($r:literal)*) => {
            match (mr, nr > LANES) {
                // SAFETY: forwarded contract, with R = mr and V·8 ≥ nr.
                $(($r, true) => unsafe { rows::<$r, 2>(kc, a, b, ldb, c, ldc, nr, alpha, beta) },
                  ($r, false) => unsafe { rows::<$r, 1>(kc, a, b, ldb, c, ldc, nr, alpha, beta) },)*
                _ => unreachable!("avx2 tile with {mr} rows"),
            }
        };
    }
    by_rows!(1 2 3 4 5 6);
}

/// The tile kernel for R rows and V vectors of 8 columns: nr ∈ (8·(V−1), 8·V].
///
/// # Safety
/// As [`MicroKernel::tile`] with mr = R ≤ 6, and nr in that range.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<const R: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: isize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    const MR: usize = Avx2::MR;
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: b points to row p of the B panel, with at least V·8 ≤ NR readable
        // floats; a to row p of the A panel, with MR ≥ R readable floats (contract).
        // The pointers advance by one row per step, kc steps in all, so row p is read
        // only for p < kc, inside the panels (the step past the last row is never read).
        unsafe {
            let bv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b.add(v * LANES)));
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                for (acc, &bv) in acc_row.iter_mut().zip(&bv) {
                    *acc = _mm256_fmadd_ps(ai, bv, *acc);
                }
            }
        }
        // Stepping with wrapping arithmetic (safe; only dereferencing needs bounds): after
        // the last row, B read in place from the caller's matrix may point past its end.
        a = a.wrapping_add(MR);
        b = b.wrapping_add(ldb);
    }
    let alpha = _mm256_set1_ps(alpha);
    let beta_v = _mm256_set1_ps(beta);
    let lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, &acc) in acc_row.iter().enumerate() {
            let x = _mm256_mul_ps(alpha, acc);
            let lanes = (nr - v * LANES).min(LANES);
            // SAFETY: C[i][v·8 + l] for l < lanes has i < mr and column < nr, inside the
            // tile the caller guarantees valid and unaliased. Masked loads and stores
            // touch no lane outside the mask (faults are suppressed for those).
            unsafe {
                let dst = c.offset(i as isize * ldc).add(v * LANES);
                if lanes == LANES {
                    let y = if beta == 0.0 {
                        x
                    } else {
                        _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(dst), x)
                    };
                    _mm256_storeu_ps(dst, y);
                } else {
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane_index);
                    let y = if beta == 0.0 {
                        x
                    } else {
                        _mm256_fmadd_ps(beta_v, _mm256_maskload_ps(dst, mask), x)
                    };
                    _mm256_maskstore_ps(dst, mask, y);
                }
            }
        }
    }
}
