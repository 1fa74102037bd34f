//! The AVX-512 micro-kernel: tiles of up to 12 rows × 32 columns of C, two zmm
//! accumulators per row (24 of the 32 registers), A broadcast from the packed panel
//! straight into `vfmadd231ps`. Edge tiles use fewer rows (a kernel per row count) and
//! masked loads/stores for the last columns.

use std::arch::x86_64::*;

use super::avx512_pack::{copy_columns, transpose_into};
use super::blocked::MicroKernel;
use super::pack::{pack_a, pack_b};

/// Floats per zmm register.
const LANES: usize = 16;

/// How many B rows ahead the kernel prefetches.
const B_PREFETCH: usize = 8;

/// The AVX-512F kernel (run-time detected).
pub(super) struct Avx512;

impl MicroKernel for Avx512 {
    const MR: usize = 12;
    const NR: usize = 2 * LANES;
    const KC: usize = 384;
    const NC: usize = 512;

    fn available() -> bool {
        super::Kernel::Avx512.is_available()
    }

    unsafe fn pack_a(dst: &mut [f32], a: *const f32, rsa: isize, csa: isize, mr: usize, kc: usize) {
        const MR: usize = Avx512::MR;
        if rsa == 1 && csa != 1 {
            // Columns of op(A) are contiguous: one masked copy per column.
            assert!(mr <= MR && dst.len() >= kc * MR, "pack_a: buffer too small");
            // SAFETY: AVX-512F is available (contract); elements (i < mr, p < kc) of
            // op(A) lie at a + i + p·csa; dst[p·MR + i] for p < kc, i < MR ≤ 16 lies in
            // dst (checked above), which does not overlap A.
            return unsafe { copy_columns(dst.as_mut_ptr(), MR, MR, a, csa, mr, kc) };
        }
        if csa != 1 || rsa == 1 {
            // SAFETY: forwarded contract.
            return unsafe { pack_a(dst, MR, a, rsa, csa, mr, kc) };
        }
        // Rows of op(A) are contiguous: transpose them into the panel.
        assert!(mr <= MR && dst.len() >= kc * MR, "pack_a: buffer too small");
        // SAFETY: AVX-512F is available (contract); rows i < mr ≤ 16 of op(A) hold kc
        // readable floats at a + i·rsa; dst[p·MR + i] for p < kc, i < MR ≤ 16 lies in
        // dst (checked above), which does not overlap A.
        unsafe { transpose_into(dst.as_mut_ptr(), MR, MR, a, rsa, mr, kc) }
    }

    unsafe fn pack_b(dst: &mut [f32], b: *const f32, rsb: isize, csb: isize, kc: usize, nc: usize) {
        const NR: usize = Avx512::NR;
        if rsb != 1 || csb == 1 {
            // SAFETY: forwarded contract.
            return unsafe { pack_b(dst, NR, b, rsb, csb, kc, nc) };
        }
        // Columns of op(B) are contiguous: transpose each 16-column half of a panel.
        let panels = nc.div_ceil(NR);
        assert!(dst.len() >= panels * NR * kc, "pack_b: buffer too small");
        for q in 0..panels {
            for half in 0..2 {
                let j0 = q * NR + half * LANES;
                let cols = nc.saturating_sub(j0).min(LANES);
                // SAFETY: AVX-512F is available (contract); columns j0..j0+cols < nc of
                // op(B) hold kc readable floats each, at b + j·csb (none are read when
                // cols = 0, and the pointer is not offset then); dst[q·NR·kc + half·16
                // + p·NR + i] for p < kc, i < 16 lies inside the panels checked above.
                unsafe {
                    let src = if cols > 0 {
                        b.offset(j0 as isize * csb)
                    } else {
                        b
                    };
                    let out = dst.as_mut_ptr().add(q * NR * kc + half * LANES);
                    transpose_into(out, NR, LANES, src, csb, cols, kc);
                }
            }
        }
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
        // CPU has AVX-512F.
        unsafe { tile(kc, a, b, ldb, c, ldc, mr, nr, alpha, beta) }
    }
}

/// Dispatches to the kernel for `mr` rows and ⌈nr/16⌉ vectors per row.
///
/// # Safety
/// As [`MicroKernel::tile`].
#[target_feature(enable = "avx512f")]
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
                // SAFETY: forwarded contract, with R = mr and V·16 ≥ nr.
                $(($r, true) => unsafe { rows::<$r, 2>(kc, a, b, ldb, c, ldc, nr, alpha, beta) },
                  ($r, false) => unsafe { rows::<$r, 1>(kc, a, b, ldb, c, ldc, nr, alpha, beta) },)*
                _ => unreachable!("avx512 tile with {mr} rows"),
            }
        };
    }
    by_rows!(1 2 3 4 5 6 7 8 9 10 11 12);
}

/// The tile kernel for R rows and V vectors of 16 columns: nr ∈ (16·(V−1), 16·V].
///
/// # Safety
/// As [`MicroKernel::tile`] with mr = R ≤ 12, and nr in that range.
#[target_feature(enable = "avx512f")]
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
    const MR: usize = Avx512::MR;
    for i in 0..R {
        // A hint only: prefetching never faults, and wrapping_offset needs no bounds.
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_offset(i as isize * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_offset(i as isize * ldc + 16) as *const i8);
    }
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // A hint only (never faults): B rows a few steps ahead, from L2 into L1.
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(B_PREFETCH * ldb) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(B_PREFETCH * ldb + LANES) as *const i8);
        // SAFETY: b points to row p of the B panel, with at least V·16 ≤ NR readable
        // floats; a to row p of the A panel, with MR ≥ R readable floats (contract).
        // The pointers advance by one row per step, kc steps in all, so row p is read
        // only for p < kc, inside the panels (the step past the last row is never read).
        unsafe {
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(v * LANES)));
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                for (acc, &bv) in acc_row.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(ai, bv, *acc);
                }
            }
        }
        // Stepping with wrapping arithmetic (safe; only dereferencing needs bounds): after
        // the last row, B read in place from the caller's matrix may point past its end.
        a = a.wrapping_add(MR);
        b = b.wrapping_add(ldb);
    }
    let alpha = _mm512_set1_ps(alpha);
    let beta_v = _mm512_set1_ps(beta);
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, &acc) in acc_row.iter().enumerate() {
            let x = _mm512_mul_ps(alpha, acc);
            let lanes = (nr - v * LANES).min(LANES);
            // SAFETY: C[i][v·16 + l] for l < lanes has i < mr and column < nr, inside
            // the tile the caller guarantees valid and unaliased. The masked load and
            // store touch no lane outside the mask.
            unsafe {
                let dst = c.offset(i as isize * ldc).add(v * LANES);
                if lanes == LANES {
                    let y = if beta == 0.0 {
                        x
                    } else {
                        _mm512_fmadd_ps(beta_v, _mm512_loadu_ps(dst), x)
                    };
                    _mm512_storeu_ps(dst, y);
                } else {
                    let mask = ((1u32 << lanes) - 1) as __mmask16;
                    let y = if beta == 0.0 {
                        x
                    } else {
                        _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(mask, dst), x)
                    };
                    _mm512_mask_storeu_ps(dst, mask, y);
                }
            }
        }
    }
}
