//! Per-image and per-group sizes of a convolution, and its column tiles.

use std::ops::Range;

use super::Conv2dGeometry;
use crate::Float;

/// A column tile covers whole output rows, and its im2col block takes about this many
/// bytes (but at least [`TILE_MIN_COLS`] columns): it then stays in cache between
/// im2col and gemm. Measured on single-threaded CIFAR-like layers, tiles help large
/// images (64×64 and up) and hurt small ones whose whole im2col matrix fits in L2.
const TILE_BUDGET_BYTES: usize = 1 << 20;

/// Fewest output positions in a column tile (narrower gemms lose efficiency).
const TILE_MIN_COLS: usize = 256;

/// Sizes of one image and one channel group, derived from a geometry.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    /// Input channels per group.
    pub(super) cin: usize,
    /// Output channels per group.
    pub(super) cout: usize,
    /// H·W.
    pub(super) in_plane: usize,
    /// OH·OW.
    pub(super) out_plane: usize,
    /// OW.
    pub(super) out_w: usize,
    /// (C_in/groups)·kh·kw: rows of the im2col matrix, columns of a weight row.
    pub(super) col_rows: usize,
    /// Elements of one input image, C_in·H·W.
    pub(super) in_image: usize,
    /// Elements of one output image, C_out·OH·OW.
    pub(super) out_image: usize,
    /// OH.
    pub(super) out_h: usize,
    /// Output rows per column tile.
    pub(super) tile_rows: usize,
    /// Scratch elements for one im2col tile (0 for pointwise convolutions).
    pub(super) col_scratch: usize,
    /// Scratch elements for a (C_out/groups) × tile block of the output (0 when one
    /// tile covers the whole output, or for pointwise convolutions).
    pub(super) tile_scratch: usize,
    /// 1×1 kernel, stride 1, no padding: the input is its own im2col matrix.
    pub(super) pointwise: bool,
}

impl Sizes {
    /// Sizes of a geometry that passed `validate` (so none of these overflow), for
    /// elements of `T`.
    pub(super) fn of<T>(g: &Conv2dGeometry) -> Self {
        let col_rows = g.col_rows();
        let cout = g.group_out_channels();
        let tile_cols =
            (TILE_BUDGET_BYTES / (col_rows * std::mem::size_of::<T>()).max(1)).max(TILE_MIN_COLS);
        let most_rows = (tile_cols / g.out_w).clamp(1, g.out_h);
        // Balance the tiles (no small leftover tile): as few as fit, equally tall.
        let tile_rows = g.out_h.div_ceil(g.out_h.div_ceil(most_rows));
        let tile_cols = tile_rows * g.out_w;
        let pointwise = g.is_pointwise();
        Self {
            cin: g.group_in_channels(),
            cout,
            in_plane: g.in_h * g.in_w,
            out_plane: g.out_h * g.out_w,
            out_w: g.out_w,
            col_rows,
            in_image: g.in_channels * g.in_h * g.in_w,
            out_image: g.out_channels * g.out_h * g.out_w,
            out_h: g.out_h,
            tile_rows,
            col_scratch: if pointwise { 0 } else { col_rows * tile_cols },
            tile_scratch: if pointwise || tile_rows == g.out_h {
                0
            } else {
                cout * tile_cols
            },
            pointwise,
        }
    }

    /// Scratch elements one worker needs.
    pub(super) fn scratch_len(&self) -> usize {
        self.col_scratch + self.tile_scratch
    }

    /// The output-row ranges of the column tiles, in order.
    pub(super) fn tiles(&self) -> impl Iterator<Item = Range<usize>> {
        let (tile_rows, out_h) = (self.tile_rows, self.out_h);
        (0..out_h)
            .step_by(tile_rows)
            .map(move |start| start..(start + tile_rows).min(out_h))
    }

    /// Group `group`'s input channels within one image.
    pub(super) fn x_group<'a, T>(&self, x_image: &'a [T], group: usize) -> &'a [T] {
        &x_image[group * self.cin * self.in_plane..][..self.cin * self.in_plane]
    }

    /// Group `group`'s output channels within one image.
    pub(super) fn y_group<'a, T>(&self, y_image: &'a [T], group: usize) -> &'a [T] {
        &y_image[group * self.cout * self.out_plane..][..self.cout * self.out_plane]
    }

    /// Group `group`'s output channels within one image, mutably.
    pub(super) fn y_group_mut<'a, T>(&self, y_image: &'a mut [T], group: usize) -> &'a mut [T] {
        &mut y_image[group * self.cout * self.out_plane..][..self.cout * self.out_plane]
    }

    /// Group `group`'s rows of the weight, C_out/groups × col_rows.
    pub(super) fn w_group<'a, T>(&self, w: &'a [T], group: usize) -> &'a [T] {
        &w[group * self.cout * self.col_rows..][..self.cout * self.col_rows]
    }

    /// Group `group`'s rows of a weight-shaped buffer, mutably.
    pub(super) fn w_group_mut<'a, T>(&self, w: &'a mut [T], group: usize) -> &'a mut [T] {
        &mut w[group * self.cout * self.col_rows..][..self.cout * self.col_rows]
    }

    /// The columns of output rows `rows` of a group's (C_out/groups) × OH·OW output
    /// gradient, as a contiguous matrix: the group itself when the tile covers every
    /// row, else a copy in `tile`.
    pub(super) fn dy_tile<'a, T: Float>(
        &self,
        dy_group: &'a [T],
        rows: &Range<usize>,
        tile: &'a mut [T],
    ) -> &'a [T] {
        let cols = rows.len() * self.out_w;
        if cols == self.out_plane {
            return dy_group;
        }
        let tile = &mut tile[..self.cout * cols];
        let first = rows.start * self.out_w;
        for (src, dst) in dy_group
            .chunks_exact(self.out_plane)
            .zip(tile.chunks_exact_mut(cols))
        {
            dst.copy_from_slice(&src[first..first + cols]);
        }
        tile
    }
}
