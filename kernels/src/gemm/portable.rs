//! The portable micro-kernel: plain Rust on 4×16 tiles (the compiler vectorises the
//! inner loops for the baseline target). It runs on any CPU and is what the tests
//! use to exercise the blocked driver independently of the SIMD kernels.

use std::slice;

use super::blocked::MicroKernel;

/// The portable kernel.
pub(super) struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 16;
    const KC: usize = 256;
    const NC: usize = 1024;

    fn available() -> bool {
        true
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
        const MR: usize = Portable::MR;
        const NR: usize = Portable::NR;
        // SAFETY: the A panel holds kc·MR readable floats (contract).
        let a = unsafe { slice::from_raw_parts(a, kc * MR) };
        let mut acc = [[0.0f32; NR]; MR];
        for (p, a_row) in a.chunks_exact(MR).enumerate() {
            // SAFETY: row p of the B panel has NR readable floats at b + p·ldb.
            let b_row = unsafe { slice::from_raw_parts(b.add(p * ldb), NR) };
            for (acc_row, &ai) in acc.iter_mut().zip(a_row) {
                for (acc, &bj) in acc_row.iter_mut().zip(b_row) {
                    *acc += ai * bj;
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate().take(mr) {
            // SAFETY: C[i][0..nr] for i < mr is valid, unaliased memory (contract).
            let row = unsafe { slice::from_raw_parts_mut(c.offset(i as isize * ldc), nr) };
            for (out, &acc) in row.iter_mut().zip(acc_row) {
                *out = if beta == 0.0 {
                    alpha * acc
                } else {
                    alpha * acc + beta * *out
                };
            }
        }
    }
}
