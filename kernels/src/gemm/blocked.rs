//! The cache-blocked driver shared by every micro-kernel (BLIS-style loops).
//!
//! For each block of NC columns of C and each block of KC steps of the inner
//! dimension, the matching KC×NC block of op(B) is packed into NR-column panels (it
//! stays in L2). Then for each MR-row panel of op(A), that panel is packed (MR×KC, it
//! stays in L1) and multiplied by every B panel of the block, one MR×NR tile of C at a
//! time. The first KC block applies the caller's β; later ones accumulate (β = 1).
//!
//! How the work is cut depends only on k (KC blocks): every element of C sees the same
//! arithmetic whichever rows or columns of C a call covers, so splitting C over threads
//! does not change the result.

use std::cell::RefCell;

use super::pack::{pack_a, pack_b};

/// A register-blocked kernel for one tile of C: C ← α·Ã·B̃ + β·C.
pub(super) trait MicroKernel {
    /// Rows of a full tile (the height of a packed A panel).
    const MR: usize;
    /// Columns of a full tile (the width of a packed B panel).
    const NR: usize;
    /// Most inner-dimension steps per packed block.
    const KC: usize;
    /// Most columns of C per packed B block.
    const NC: usize;

    /// Whether this CPU can run the kernel.
    fn available() -> bool;

    /// Packs an `mr`×`kc` block of op(A) into an MR-row panel, as [`pack_a`].
    ///
    /// # Safety
    /// As [`pack_a`], and [`Self::available`] returned true.
    unsafe fn pack_a(dst: &mut [f32], a: *const f32, rsa: isize, csa: isize, mr: usize, kc: usize) {
        // SAFETY: forwarded contract.
        unsafe { pack_a(dst, Self::MR, a, rsa, csa, mr, kc) }
    }

    /// Packs a `kc`×`nc` block of op(B) into NR-column panels, as [`pack_b`].
    ///
    /// # Safety
    /// As [`pack_b`], and [`Self::available`] returned true.
    unsafe fn pack_b(dst: &mut [f32], b: *const f32, rsb: isize, csb: isize, kc: usize, nc: usize) {
        // SAFETY: forwarded contract.
        unsafe { pack_b(dst, Self::NR, b, rsb, csb, kc, nc) }
    }

    /// C[i][j] ← α·Σ_p Ã[p][i]·B̃[p][j] + β·C[i][j] for i < mr, j < nr (β = 0 does not
    /// read C).
    ///
    /// # Safety
    /// - [`Self::available`] returned true;
    /// - `a` points to `kc·MR` readable floats: Ã[p][i] at `p·MR + i`;
    /// - `b` points to a readable B̃[p][j] at `p·ldb + j` for every p < kc and j < NR;
    /// - C[i][j] at `c + i·ldc + j` is valid for reads and writes for i < mr and j < nr,
    ///   and none of it overlaps `a` or `b`;
    /// - 1 ≤ mr ≤ MR and 1 ≤ nr ≤ NR.
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
    );
}

/// C with at most this many rows reads row-major B in place instead of packing it.
const DIRECT_B_MAX_ROWS: usize = 96;

thread_local! {
    /// Packing buffers (B block, A panel), reused by every call on this thread.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Splits `0..len` into as few blocks of at most `max` as possible, of equal length
/// rounded up to a multiple of `align` (the last may be shorter): (start, length).
fn blocks(len: usize, max: usize, align: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = len.div_ceil(max).max(1);
    let step = len.div_ceil(count).next_multiple_of(align).max(1);
    (0..len)
        .step_by(step)
        .map(move |start| (start, step.min(len - start)))
}

/// The first `len` elements of `buf` from a 64-byte boundary (growing `buf` as needed),
/// so that packed panels load whole cache lines.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const LANES: usize = 64 / std::mem::size_of::<f32>();
    if buf.len() < len + LANES {
        buf.resize(len + LANES, 0.0);
    }
    let offset = buf.as_ptr().align_offset(64);
    let offset = if offset < LANES { offset } else { 0 };
    &mut buf[offset..offset + len]
}

/// C ← α·op(A)·op(B) + β·C with kernel `K`, on this thread. op(A)[i][p] is at
/// `a + i·rsa + p·csa`, op(B)[p][j] at `b + p·rsb + j·csb`, C[i][j] at `c + i·rsc + j`.
///
/// # Safety
/// `K::available()` is true; every element addressed by the sizes and strides lies in
/// the allocations behind the pointers, and C does not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<K: MicroKernel>(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // SAFETY: forwarded contract (C's m×n elements are valid).
        unsafe { scale_rows(m, n, beta, c, rsc) };
        return;
    }
    // Few rows of C: read B in place when its rows are contiguous (packing would copy
    // all of B to use each panel only ⌈m/MR⌉ times).
    let direct_b = csb == 1 && rsb > 0 && m <= DIRECT_B_MAX_ROWS;
    let run = |bufs: &mut (Vec<f32>, Vec<f32>)| {
        let kc_max = k.div_ceil(k.div_ceil(K::KC));
        let nc_max = n.min(K::NC).next_multiple_of(K::NR);
        let b_pack = aligned(&mut bufs.0, kc_max * nc_max);
        let a_pack = aligned(&mut bufs.1, kc_max * K::MR);
        for (jc, nc) in blocks(n, K::NC, K::NR) {
            for (block, (pc, kc)) in blocks(k, K::KC, 1).enumerate() {
                let beta = if block == 0 { beta } else { 1.0 };
                // SAFETY: rows pc..pc+kc and columns jc..jc+nc of op(B) lie inside
                // op(B) (k×n), which the caller guarantees readable; the offset stays in
                // that allocation.
                let b_block = unsafe { b.offset(pc as isize * rsb + jc as isize * csb) };
                // Direct B: only the last, partial panel is packed (at b_pack[0..]).
                let packed_from = if direct_b { nc / K::NR * K::NR } else { 0 };
                // SAFETY: columns packed_from..nc of the block are inside it (above);
                // `b_pack` holds kc_max·nc_max ≥ kc·⌈nc/NR⌉·NR floats; K is available.
                unsafe {
                    let first = b_block.offset(packed_from as isize * csb);
                    K::pack_b(b_pack, first, rsb, csb, kc, nc - packed_from);
                }
                for ir in (0..m).step_by(K::MR) {
                    let mr = K::MR.min(m - ir);
                    // SAFETY: rows ir..ir+mr and columns pc..pc+kc lie inside op(A)
                    // (m×k); `a_pack` holds kc_max·MR ≥ kc·MR floats; K is available.
                    unsafe {
                        let a_panel = a.offset(ir as isize * rsa + pc as isize * csa);
                        K::pack_a(a_pack, a_panel, rsa, csa, mr, kc);
                    }
                    for jr in (0..nc).step_by(K::NR) {
                        let nr = K::NR.min(nc - jr);
                        // Full panels of a direct B are read in place, rows rsb apart.
                        let (b_panel, ldb) = if jr < packed_from {
                            // SAFETY: column jr < nc of the block, inside op(B) (above).
                            (unsafe { b_block.add(jr) }, rsb as usize)
                        } else {
                            // SAFETY: panel (jr − packed_from)/NR of b_pack, inside it.
                            (
                                unsafe { b_pack.as_ptr().add((jr - packed_from) * kc) },
                                K::NR,
                            )
                        };
                        // SAFETY: the caller checked `K::available()`; `a_pack` holds
                        // the kc×MR panel; `b_panel` points to kc rows, ldb apart, of NR
                        // readable floats: a packed panel (zero-padded to NR, inside
                        // b_pack) or, for direct B, columns jc+jr..jc+jr+NR ≤ n of
                        // op(B) rows pc..pc+kc. C rows ir..ir+mr and columns
                        // jc+jr..jc+jr+nr lie inside the m×n C the caller guarantees,
                        // which overlaps neither A nor B nor the packing buffers.
                        unsafe {
                            K::tile(
                                kc,
                                a_pack.as_ptr(),
                                b_panel,
                                ldb,
                                c.offset(ir as isize * rsc + (jc + jr) as isize),
                                rsc,
                                mr,
                                nr,
                                alpha,
                                beta,
                            );
                        }
                    }
                }
            }
        }
    };
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => run(&mut bufs),
        // Only reachable if a kernel re-entered gemm on this thread; stay correct.
        Err(_) => run(&mut (Vec::new(), Vec::new())),
    });
}

/// C ← β·C for an m×n C with rows `rsc` apart (β = 0 writes zeros without reading).
///
/// # Safety
/// C[i][j] at `c + i·rsc + j` is valid for reads and writes for i < m, j < n.
unsafe fn scale_rows(m: usize, n: usize, beta: f32, c: *mut f32, rsc: isize) {
    for i in 0..m {
        // SAFETY: row i of C is n valid, exclusively borrowed floats (contract).
        let row = unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), n) };
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
}
