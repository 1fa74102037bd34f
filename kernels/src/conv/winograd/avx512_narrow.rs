//! The AVX-512 Winograd transforms for narrow images (at most 8 tiles across: outputs
//! up to 16 wide, inputs up to 18): two tile rows share a 16-lane vector, lanes
//! 0..across holding the first and across..2·across the second, which is how their
//! slots lie in memory. Loads of the two rows meet in one two-source permute, so a
//! vector does up to 16 tiles' work as in [`super::avx512`]. Same arithmetic as
//! [`super::portable`], bit for bit.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::avx512::lanes_inside;
use super::avx512::x86::{along_row, output_row, store_down_columns};
use super::{Block, Tiles, POSITIONS};
use crate::conv::Conv2dGeometry;

/// Most tiles across for which these transforms apply.
pub(super) const MAX_ACROSS: usize = 8;

/// A permute index: lane l < across takes `first(l)`, lane across ≤ l < 2·across takes
/// `second(l − across)`, later lanes 0.
#[target_feature(enable = "avx512f")]
fn index(across: usize, first: impl Fn(usize) -> i32, second: impl Fn(usize) -> i32) -> __m512i {
    let lanes: [i32; 16] = std::array::from_fn(|l| match l {
        l if l < across => first(l),
        l if l < 2 * across => second(l - across),
        _ => 0,
    });
    // SAFETY: AVX-512F is available (this function's target feature); `lanes` is 16
    // readable i32s (an unaligned load).
    unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
}

/// See [`super::avx512::transform_input`]; `tiles.across` ≤ [`MAX_ACROSS`].
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_input(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    x_group: &[f32],
    v: &mut [f32],
) {
    let (in_h, in_w, cin) = (g.in_h, g.in_w, g.in_channels);
    let [pad_h, pad_w] = g.padding;
    let (across, p) = (tiles.across, block.slots);
    // Column 2·tx + j of the first row's window (lanes 0..16) or the second's (16..32).
    let even = index(across, |l| 2 * l as i32, |l| 16 + 2 * l as i32);
    let odd = index(across, |l| 2 * l as i32 + 1, |l| 17 + 2 * l as i32);
    let col = -(pad_w as isize);
    let masks = [lanes_inside(col, in_w), lanes_inside(col + 2, in_w)];
    let rows_in_block = block.rows.len();
    for (plane_index, plane) in x_group.chunks_exact(in_h * in_w).enumerate() {
        let (image, c) = (plane_index / cin, plane_index % cin);
        for tr in (0..rows_in_block).step_by(2) {
            let pair = tr + 1 < rows_in_block;
            let count = if pair { 2 * across } else { across };
            // Input row i of tile row tr + second (None: padding or no second row).
            let row = |second: usize, i: usize| {
                if second == 1 && !pair {
                    return None;
                }
                let ty = block.rows.start + tr + second;
                let r = (2 * ty + i).checked_sub(pad_h).filter(|&r| r < in_h)?;
                Some(&plane[r * in_w..][..in_w])
            };
            // Columns col + shift + (0..16) of a row, zero outside it.
            let window = |row: Option<&[f32]>, shift: usize| match row {
                // SAFETY: AVX-512F is available (contract). The masked load reads only
                // the lanes in masks[shift / 2], which lie inside `row`
                // (lanes_inside); masked-off lanes are not accessed and cannot fault,
                // so the address may point outside `row` (wrapping_offset, never
                // dereferenced there).
                Some(row) => unsafe {
                    let start = row.as_ptr().wrapping_offset(col + shift as isize);
                    _mm512_maskz_loadu_ps(masks[shift / 2], start)
                },
                None => _mm512_setzero_ps(),
            };
            let mut h = [[_mm512_setzero_ps(); 4]; 4];
            for (i, h_i) in h.iter_mut().enumerate() {
                let (first, second) = (row(0, i), row(1, i));
                if first.is_none() && second.is_none() {
                    continue;
                }
                let (lo, lo_next) = (window(first, 0), window(second, 0));
                let (lo2, lo2_next) = (window(first, 2), window(second, 2));
                let d0 = _mm512_permutex2var_ps(lo, even, lo_next);
                let d1 = _mm512_permutex2var_ps(lo, odd, lo_next);
                let d2 = _mm512_permutex2var_ps(lo2, even, lo2_next);
                let d3 = _mm512_permutex2var_ps(lo2, odd, lo2_next);
                *h_i = along_row([d0, d1, d2, d3]);
            }
            // Then Bᵀ down each column, into the 16 planes of V.
            let slot = c * p + block.slot(tiles, image, tr, 0);
            // SAFETY: AVX-512F is available (contract).
            unsafe {
                store_down_columns(
                    &h,
                    &mut v[slot..],
                    block.v_plane,
                    count,
                    lanes_inside(0, count),
                )
            };
        }
    }
}

/// See [`super::avx512::transform_output`]; `tiles.across` ≤ [`MAX_ACROSS`].
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transform_output(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    m: &[f32],
    bias: Option<&[f32]>,
    y_group: &mut [f32],
) {
    let (out_h, out_w, cout) = (g.out_h, g.out_w, g.out_channels);
    let (across, p) = (tiles.across, block.slots);
    // Output column 2·tx + j of the first tile row (j = 0 from the even outputs,
    // lanes 0..16 of the permute's sources, j = 1 from the odd ones, 16..32), or of
    // the second row (its tiles at lanes across..2·across).
    let interleave = |offset: usize| {
        let lanes: [i32; 16] =
            std::array::from_fn(|k| (offset + k / 2) as i32 + if k % 2 == 1 { 16 } else { 0 });
        // SAFETY: AVX-512F is available (contract); 16 readable i32s.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    };
    let (first_row, second_row) = (interleave(0), interleave(across));
    let columns = lanes_inside(0, out_w.min(2 * across));
    let rows_in_block = block.rows.len();
    for (plane_index, plane) in y_group.chunks_exact_mut(out_h * out_w).enumerate() {
        let (image, k) = (plane_index / cout, plane_index % cout);
        let b_k = _mm512_set1_ps(bias.map_or(0.0, |b| b[k]));
        for tr in (0..rows_in_block).step_by(2) {
            let pair = tr + 1 < rows_in_block;
            let count = if pair { 2 * across } else { across };
            let lanes = lanes_inside(0, count);
            let src = &m[k * p + block.slot(tiles, image, tr, 0)..];
            let mut mt = [_mm512_setzero_ps(); POSITIONS];
            for (t, m_t) in mt.iter_mut().enumerate() {
                let src = &src[t * block.m_plane..][..count];
                // SAFETY: AVX-512F is available (contract); the first `count` lanes
                // are read, all inside `src`.
                *m_t = unsafe { _mm512_maskz_loadu_ps(lanes, src.as_ptr()) };
            }
            for i in 0..2 {
                let (y_even, y_odd) = output_row(&mt, i, b_k);
                for (second, index) in [(0, first_row), (1, second_row)] {
                    let r = 2 * (block.rows.start + tr + second) + i;
                    if (second == 1 && !pair) || r >= out_h {
                        continue;
                    }
                    let row = &mut plane[r * out_w..][..out_w];
                    let value = _mm512_permutex2var_ps(y_even, index, y_odd);
                    // SAFETY: AVX-512F is available (contract); only the first
                    // min(OW, 2·across) = OW lanes are written, all inside `row`.
                    unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), columns, value) };
                }
            }
        }
    }
}
