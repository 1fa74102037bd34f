//! The Winograd transforms one tile at a time, for any [`Float`]: the path for f64 and
//! for CPUs without AVX-512, and the reference [`super::avx512`] must match bit for bit
//! (same operations in the same order).

use super::{Block, Tiles, POSITIONS};
use crate::conv::Conv2dGeometry;
use crate::Float;

/// Bᵀ d B of one 4×4 input patch, position t = 4·a + b at index t.
#[inline(always)]
pub(super) fn input_tile<T: Float>(d: [[T; 4]; 4]) -> [T; POSITIONS] {
    // Along each row: [d₀ − d₂, d₁ + d₂, d₂ − d₁, d₁ − d₃].
    let h = d.map(|[d0, d1, d2, d3]| [d0 - d2, d1 + d2, d2 - d1, d1 - d3]);
    // Then down each column, the same combinations of the rows.
    let mut v = [T::ZERO; POSITIONS];
    for b in 0..4 {
        v[b] = h[0][b] - h[2][b];
        v[4 + b] = h[1][b] + h[2][b];
        v[8 + b] = h[2][b] - h[1][b];
        v[12 + b] = h[1][b] - h[3][b];
    }
    v
}

/// Aᵀ m A + bias of one tile's 16 products: the 2×2 outputs, row by row.
#[inline(always)]
pub(super) fn output_tile<T: Float>(m: [T; POSITIONS], bias: T) -> [[T; 2]; 2] {
    // Down each column: row 0 = m₀ + m₁ + m₂, row 1 = m₁ − m₂ − m₃.
    let z0: [T; 4] = std::array::from_fn(|b| m[b] + m[4 + b] + m[8 + b]);
    let z1: [T; 4] = std::array::from_fn(|b| m[4 + b] - m[8 + b] - m[12 + b]);
    // Then along each row.
    [z0, z1].map(|z| [z[0] + z[1] + z[2] + bias, z[1] - z[2] - z[3] + bias])
}

/// V_t[c][slot] = (Bᵀ d B)_t for every tile of `block`, every input channel c of the
/// images of `x_group` (`v` is `[16][C_in][block.slots]`).
pub(super) fn transform_input<T: Float>(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    x_group: &[T],
    v: &mut [T],
) {
    let (in_h, in_w, cin) = (g.in_h, g.in_w, g.in_channels);
    let [pad_h, pad_w] = g.padding;
    let p = block.slots;
    for (plane_index, plane) in x_group.chunks_exact(in_h * in_w).enumerate() {
        let (image, c) = (plane_index / cin, plane_index % cin);
        // Input (row, column) shifted by the padding, zero outside the image.
        let at = |r: usize, col: usize| match (r.checked_sub(pad_h), col.checked_sub(pad_w)) {
            (Some(r), Some(col)) if r < in_h && col < in_w => plane[r * in_w + col],
            _ => T::ZERO,
        };
        for (tr, ty) in block.rows.clone().enumerate() {
            for tx in 0..tiles.across {
                let d =
                    std::array::from_fn(|i| std::array::from_fn(|j| at(2 * ty + i, 2 * tx + j)));
                let slot = block.slot(tiles, image, tr, tx);
                for (t, value) in input_tile(d).into_iter().enumerate() {
                    v[t * block.v_plane + c * p + slot] = value;
                }
            }
        }
    }
}

/// y ← Aᵀ M A + bias for every tile of `block` and output channel of the images of
/// `y_group` (`m` is `[16][C_out][block.slots]`).
pub(super) fn transform_output<T: Float>(
    g: &Conv2dGeometry,
    tiles: &Tiles,
    block: &Block,
    m: &[T],
    bias: Option<&[T]>,
    y_group: &mut [T],
) {
    let (out_h, out_w, cout) = (g.out_h, g.out_w, g.out_channels);
    let p = block.slots;
    for (plane_index, plane) in y_group.chunks_exact_mut(out_h * out_w).enumerate() {
        let (image, k) = (plane_index / cout, plane_index % cout);
        let b_k = bias.map_or(T::ZERO, |b| b[k]);
        for (tr, ty) in block.rows.clone().enumerate() {
            for tx in 0..tiles.across {
                let slot = block.slot(tiles, image, tr, tx);
                let y = output_tile(
                    std::array::from_fn(|t| m[t * block.m_plane + k * p + slot]),
                    b_k,
                );
                for (i, row) in y.iter().enumerate() {
                    for (j, &value) in row.iter().enumerate() {
                        let (r, col) = (2 * ty + i, 2 * tx + j);
                        if r < out_h && col < out_w {
                            plane[r * out_w + col] = value;
                        }
                    }
                }
            }
        }
    }
}
