//! The Winograd transforms for f32, 16 tiles of a tile row at a time in AVX-512
//! registers (images at most 8 tiles across: [`super::avx512_narrow`]). Rows are read
//! straight from the image with masked loads (lanes outside the image read as zero,
//! which is the padding), split into even and odd columns by two-source permutes, and
//! written back with masked stores. The arithmetic is that of [`super::portable`],
//! operation for operation, so results are bit-identical.

use super::{Block, Tiles};
use crate::conv::Conv2dGeometry;

/// V_t[c][slot] = (Bᵀ d B)_t for every tile of `block`: as
/// [`super::portable::transform_input`], for f32.
pub(super) fn transform_input(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    x_group: &[f32],
    v: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::VectorWidth::Avx512.is_available() {
        use super::avx512_narrow as narrow;
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe {
            if tiles.across <= narrow::MAX_ACROSS {
                narrow::transform_input(g, tiles, block, x_group, v);
            } else {
                x86::transform_input(g, tiles, block, x_group, v);
            }
        }
        return;
    }
    super::portable::transform_input(g, tiles, block, x_group, v);
}

/// y ← Aᵀ M A + bias for every tile of `block`: as
/// [`super::portable::transform_output`], for f32.
pub(super) fn transform_output(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    m: &[f32],
    bias: Option<&[f32]>,
    y_group: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::VectorWidth::Avx512.is_available() {
        use super::avx512_narrow as narrow;
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe {
            if tiles.across <= narrow::MAX_ACROSS {
                narrow::transform_output(g, tiles, block, m, bias, y_group);
            } else {
                x86::transform_output(g, tiles, block, m, bias, y_group);
            }
        }
        return;
    }
    super::portable::transform_output(g, tiles, block, m, bias, y_group);
}

/// Lanes l of a 16-lane window starting at `start` with 0 ≤ start + l < len.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) fn lanes_inside(start: isize, len: usize) -> u16 {
    let first = (-start).clamp(0, 16);
    let end = (len as isize).saturating_sub(start).clamp(0, 16);
    if end <= first {
        return 0;
    }
    let below_end = if end == 16 {
        u16::MAX
    } else {
        (1u16 << end) - 1
    };
    below_end & !((1u16 << first) - 1)
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::super::{Block, Tiles, POSITIONS};
    use super::lanes_inside;
    use crate::conv::Conv2dGeometry;

    /// Bᵀ along a row of patches: [d₀ − d₂, d₁ + d₂, d₂ − d₁, d₁ − d₃], lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn along_row(d: [__m512; 4]) -> [__m512; 4] {
        let [d0, d1, d2, d3] = d;
        [
            _mm512_sub_ps(d0, d2),
            _mm512_add_ps(d1, d2),
            _mm512_sub_ps(d2, d1),
            _mm512_sub_ps(d1, d3),
        ]
    }

    /// Bᵀ down the columns of `h` (h[i][b]: patch row i after [`along_row`]), each of the
    /// 16 positions t stored to `dst[t·stride..]`, in the lanes of `lanes` (the first
    /// `count`).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) unsafe fn store_down_columns(
        h: &[[__m512; 4]; 4],
        dst: &mut [f32],
        stride: usize,
        count: usize,
        lanes: u16,
    ) {
        let mut store = |t: usize, value: __m512| {
            let dst = &mut dst[t * stride..][..count];
            // SAFETY: AVX-512F is available (contract); the lanes in `lanes`, the first
            // `count`, are written, all inside `dst`.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), lanes, value) };
        };
        for (b, ((&h0, &h1), (&h2, &h3))) in h[0]
            .iter()
            .zip(&h[1])
            .zip(h[2].iter().zip(&h[3]))
            .enumerate()
        {
            store(b, _mm512_sub_ps(h0, h2));
            store(4 + b, _mm512_add_ps(h1, h2));
            store(8 + b, _mm512_sub_ps(h2, h1));
            store(12 + b, _mm512_sub_ps(h1, h3));
        }
    }

    /// Output row `i` (0 or 1) of the tiles whose 16 products are `m`, plus `bias`:
    /// (even output columns, odd ones), tile by tile across the lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn output_row(
        m: &[__m512; POSITIONS],
        i: usize,
        bias: __m512,
    ) -> (__m512, __m512) {
        // Aᵀ down each column: row 0 = m₀ + m₁ + m₂, row 1 = m₁ − m₂ − m₃.
        let mut z = [_mm512_setzero_ps(); 4];
        for (b, z_b) in z.iter_mut().enumerate() {
            *z_b = if i == 0 {
                _mm512_add_ps(_mm512_add_ps(m[b], m[4 + b]), m[8 + b])
            } else {
                _mm512_sub_ps(_mm512_sub_ps(m[4 + b], m[8 + b]), m[12 + b])
            };
        }
        // Then along the row.
        let even = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(z[0], z[1]), z[2]), bias);
        let odd = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(z[1], z[2]), z[3]), bias);
        (even, odd)
    }

    /// One chunk of up to 16 tiles of a tile row, and the masks that its loads and
    /// stores use in every row and channel.
    struct Chunk {
        /// First tile column.
        tx: usize,
        /// Tiles in the chunk.
        count: usize,
        /// Row column that lane 0 of the chunk's first access reads (input transform) or
        /// writes (output transform).
        col: isize,
        /// Lanes inside the row for the accesses at col, col + 16, col + 2, col + 18
        /// (the output transform uses the first two, for its two stores per row).
        loads: [u16; 4],
        /// The chunk's lanes (its first `count`).
        lanes: u16,
    }

    /// Offsets of the four loads of a row, relative to a chunk's `col`.
    const LOAD_OFFSETS: [isize; 4] = [0, 16, 2, 18];

    /// The chunks of a tile row `across` tiles long, over rows `width` long, where the
    /// first chunk's lane 0 accesses row column `first_col`.
    fn chunks(across: usize, width: usize, first_col: isize) -> Vec<Chunk> {
        (0..across)
            .step_by(16)
            .map(|tx| {
                let col = first_col + 2 * tx as isize;
                Chunk {
                    tx,
                    count: (across - tx).min(16),
                    col,
                    loads: LOAD_OFFSETS.map(|off| lanes_inside(col + off, width)),
                    lanes: lanes_inside(0, (across - tx).min(16)),
                }
            })
            .collect()
    }

    /// See [`super::transform_input`].
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
        let p = block.slots;
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let chunks = chunks(tiles.across, in_w, -(pad_w as isize));
        for (plane_index, plane) in x_group.chunks_exact(in_h * in_w).enumerate() {
            let (image, c) = (plane_index / cin, plane_index % cin);
            for (tr, ty) in block.rows.clone().enumerate() {
                // The four input rows of this tile row (None: padding).
                let row = |i: usize| {
                    let r = (2 * ty + i).checked_sub(pad_h).filter(|&r| r < in_h)?;
                    Some(&plane[r * in_w..][..in_w])
                };
                let rows = [row(0), row(1), row(2), row(3)];
                for chunk in &chunks {
                    // h[i][b]: row i of the chunk's patches after Bᵀ along the row.
                    let mut h = [[_mm512_setzero_ps(); 4]; 4];
                    for (h_i, row) in h.iter_mut().zip(rows) {
                        let Some(row) = row else { continue };
                        let load = |k: usize| {
                            let start = row.as_ptr().wrapping_offset(chunk.col + LOAD_OFFSETS[k]);
                            // SAFETY: AVX-512F is available (contract). The masked load
                            // reads only the lanes in `loads[k]`, which lie inside `row`
                            // (lanes_inside); masked-off lanes are not accessed and cannot
                            // fault, so `start` may point outside `row` (computed with
                            // wrapping_offset, never dereferenced there).
                            unsafe { _mm512_maskz_loadu_ps(chunk.loads[k], start) }
                        };
                        let (lo, hi, lo2, hi2) = (load(0), load(1), load(2), load(3));
                        // d_j of patch l is column col + 2l + j.
                        let d0 = _mm512_permutex2var_ps(lo, even, hi);
                        let d1 = _mm512_permutex2var_ps(lo, odd, hi);
                        let d2 = _mm512_permutex2var_ps(lo2, even, hi2);
                        let d3 = _mm512_permutex2var_ps(lo2, odd, hi2);
                        *h_i = along_row([d0, d1, d2, d3]);
                    }
                    let slot = c * p + block.slot(tiles, image, tr, chunk.tx);
                    // Then Bᵀ down each column, into the 16 planes of V.
                    // SAFETY: AVX-512F is available (contract).
                    unsafe {
                        store_down_columns(
                            &h,
                            &mut v[slot..],
                            block.v_plane,
                            chunk.count,
                            chunk.lanes,
                        )
                    };
                }
            }
        }
    }

    /// See [`super::transform_output`].
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
        let p = block.slots;
        // Interleaves even (first source) and odd (second) output columns.
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        // Output columns 2·tx + (0..16) and 2·tx + (16..32) of each chunk.
        let chunks = chunks(tiles.across, out_w, 0);
        for (plane_index, plane) in y_group.chunks_exact_mut(out_h * out_w).enumerate() {
            let (image, k) = (plane_index / cout, plane_index % cout);
            let b_k = _mm512_set1_ps(bias.map_or(0.0, |b| b[k]));
            for (tr, ty) in block.rows.clone().enumerate() {
                for chunk in &chunks {
                    let (tx, count) = (chunk.tx, chunk.count);
                    let src = &m[k * p + block.slot(tiles, image, tr, tx)..];
                    let mut mt = [_mm512_setzero_ps(); POSITIONS];
                    for (t, m_t) in mt.iter_mut().enumerate() {
                        let src = &src[t * block.m_plane..][..count];
                        // SAFETY: AVX-512F is available (contract); the first `count`
                        // lanes are read, all inside `src`.
                        *m_t = unsafe { _mm512_maskz_loadu_ps(chunk.lanes, src.as_ptr()) };
                    }
                    for i in 0..2 {
                        let r = 2 * ty + i;
                        if r >= out_h {
                            break;
                        }
                        let (y_even, y_odd) = output_row(&mt, i, b_k);
                        let row = &mut plane[r * out_w..][..out_w];
                        for (half, value) in [
                            _mm512_permutex2var_ps(y_even, low, y_odd),
                            _mm512_permutex2var_ps(y_even, high, y_odd),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            let start = row
                                .as_mut_ptr()
                                .wrapping_offset(chunk.col + 16 * half as isize);
                            // SAFETY: AVX-512F is available (contract). Only the lanes in
                            // `loads[half]` are written: columns inside `row`, which is
                            // exclusively borrowed (lanes_inside; masked-off lanes are
                            // not accessed). Lanes of tiles past the chunk's `count`
                            // exist only in the row's last chunk, where they fall past
                            // the row's end.
                            unsafe { _mm512_mask_storeu_ps(start, chunk.loads[half], value) };
                        }
                    }
                }
            }
        }
    }
}
