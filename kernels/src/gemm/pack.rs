//! Packing op(A) and op(B) into the panel layouts the micro-kernels read.
//!
//! An A panel of `mr` ≤ MR rows holds Ã[p][i] = op(A)[i][p] at `p·MR + i`; a B block of
//! `nc` columns is cut into panels of NR columns, panel q holding B̃[p][j] =
//! op(B)[p][q·NR + j] at `q·NR·kc + p·NR + j`. Rows and columns past the matrix edge are
//! zero, so the kernels may always read full panels.

use std::slice;

/// The widest panel any micro-kernel uses (the AVX-512 kernel's 32 columns): the
/// packing loops gather that many row or column slices on the stack, not in a `Vec`.
const MAX_PANEL: usize = 32;

/// Packs the `mr`×`kc` block of op(A) at `a` (element (i, p) at `a + i·rsa + p·csa`)
/// into `dst[..kc·panel]` as one panel of `panel` rows, zero-padding rows mr..panel.
///
/// # Safety
/// Every element (i, p) with i < mr, p < kc is readable and does not overlap `dst`.
pub(super) unsafe fn pack_a(
    dst: &mut [f32],
    panel: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    mr: usize,
    kc: usize,
) {
    assert!(
        mr <= panel && panel <= MAX_PANEL && dst.len() >= kc * panel,
        "pack_a: buffer too small"
    );
    let dst = &mut dst[..kc * panel];
    if rsa == 1 {
        // op(A) is stored transposed: column p of the block is contiguous.
        for (p, out) in dst.chunks_exact_mut(panel).enumerate() {
            // SAFETY: elements (0..mr, p) lie at a + p·csa + 0..mr (contract).
            let src = unsafe { slice::from_raw_parts(a.offset(p as isize * csa), mr) };
            out[..mr].copy_from_slice(src);
            out[mr..].fill(0.0);
        }
    } else if csa == 1 {
        // Rows are contiguous: read the mr rows side by side, write the panel in order.
        let mut rows: [&[f32]; MAX_PANEL] = [&[]; MAX_PANEL];
        for (i, row) in rows.iter_mut().enumerate().take(mr) {
            // SAFETY: elements (i, 0..kc) lie at a + i·rsa + 0..kc for i < mr (contract).
            *row = unsafe { slice::from_raw_parts(a.offset(i as isize * rsa), kc) };
        }
        for (p, out) in dst.chunks_exact_mut(panel).enumerate() {
            for (v, row) in out.iter_mut().zip(&rows[..mr]) {
                *v = row[p];
            }
            out[mr..].fill(0.0);
        }
    } else {
        for (p, out) in dst.chunks_exact_mut(panel).enumerate() {
            for (i, v) in out.iter_mut().enumerate() {
                *v = if i < mr {
                    // SAFETY: element (i, p) with i < mr, p < kc (contract).
                    unsafe { *a.offset(i as isize * rsa + p as isize * csa) }
                } else {
                    0.0
                };
            }
        }
    }
}

/// Packs the `kc`×`nc` block of op(B) at `b` (element (p, j) at `b + p·rsb + j·csb`)
/// into `dst` as ⌈nc/panel⌉ panels of `panel` columns, zero-padding the last one.
///
/// # Safety
/// Every element (p, j) with p < kc, j < nc is readable and does not overlap `dst`.
pub(super) unsafe fn pack_b(
    dst: &mut [f32],
    panel: usize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    kc: usize,
    nc: usize,
) {
    let panels = nc.div_ceil(panel);
    assert!(
        panel <= MAX_PANEL && dst.len() >= panels * panel * kc,
        "pack_b: buffer too small"
    );
    for (q, out) in dst.chunks_exact_mut(panel * kc).take(panels).enumerate() {
        let j0 = q * panel;
        let cols = panel.min(nc - j0);
        // SAFETY (for the three branches): column j0 + j of the block is at
        // first + j·csb, j < cols, so all elements read are (p < kc, j < nc).
        let first = unsafe { b.offset(j0 as isize * csb) };
        if csb == 1 {
            // Rows of op(B) are contiguous: copy `cols` floats per row.
            for (p, row) in out.chunks_exact_mut(panel).enumerate() {
                // SAFETY: elements (p, j0..j0+cols) lie at first + p·rsb + 0..cols.
                let src = unsafe { slice::from_raw_parts(first.offset(p as isize * rsb), cols) };
                row[..cols].copy_from_slice(src);
                row[cols..].fill(0.0);
            }
        } else if rsb == 1 {
            // op(B) is stored transposed: column j is contiguous in p. Read the cols
            // columns side by side, write the panel in order.
            let mut columns: [&[f32]; MAX_PANEL] = [&[]; MAX_PANEL];
            for (j, column) in columns.iter_mut().enumerate().take(cols) {
                // SAFETY: elements (0..kc, j0 + j) lie at first + j·csb + 0..kc, j < cols.
                *column = unsafe { slice::from_raw_parts(first.offset(j as isize * csb), kc) };
            }
            for (p, row) in out.chunks_exact_mut(panel).enumerate() {
                for (v, column) in row.iter_mut().zip(&columns[..cols]) {
                    *v = column[p];
                }
                row[cols..].fill(0.0);
            }
        } else {
            for (p, row) in out.chunks_exact_mut(panel).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j < cols {
                        // SAFETY: element (p, j0 + j) with p < kc, j0 + j < nc.
                        unsafe { *first.offset(p as isize * rsb + j as isize * csb) }
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
