//! im2col and its adjoint col2im for one image and one channel group.
//!
//! The column matrix has one row per (input channel, kernel row, kernel column) and
//! one column per output position: `col[(c·kh + ki)·kw + kj][oh·OW + ow]` is the input
//! tap `x[c][oh·sh + ki·dh − ph][ow·sw + kj·dw − pw]`, or zero in the padding.

use std::ops::Range;

use super::Conv2dGeometry;
use crate::Float;

/// The outputs `o` in `0..out` whose tap `o·stride + offset − pad` lands inside
/// `0..input`; they form one contiguous range.
fn valid_outputs(
    offset: usize,
    pad: usize,
    stride: usize,
    input: usize,
    out: usize,
) -> Range<usize> {
    // o·stride + offset ≥ pad  ⇔  o ≥ ⌈(pad − offset) / stride⌉
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    // o·stride + offset < input + pad  ⇔  o < ⌈(input + pad − offset) / stride⌉
    let hi = (input + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out);
    lo.min(hi)..hi
}

/// One kernel tap (ki, kj) seen from the output grid: which output rows and columns
/// read real input, and where the first of them reads.
struct TapWindow {
    rows: Range<usize>,
    cols: Range<usize>,
    /// Input row read by output row `rows.start`.
    first_in_row: usize,
    /// Input column read by output column `cols.start`.
    first_in_col: usize,
}

impl TapWindow {
    fn new(g: &Conv2dGeometry, ki: usize, kj: usize) -> Self {
        let [sh, sw] = g.stride;
        let [ph, pw] = g.padding;
        let [dh, dw] = g.dilation;
        let rows = valid_outputs(ki * dh, ph, sh, g.in_h, g.out_h);
        let cols = valid_outputs(kj * dw, pw, sw, g.in_w, g.out_w);
        // For o in the valid ranges the taps are ≥ 0, so these do not underflow
        // (an empty range gives a value that must not be used).
        let first_in_row = (rows.start * sh + ki * dh).saturating_sub(ph);
        let first_in_col = (cols.start * sw + kj * dw).saturating_sub(pw);
        Self {
            rows,
            cols,
            first_in_row,
            first_in_col,
        }
    }
}

/// Fills `col` ((C_in/groups)·kh·kw rows × `out_rows.len()`·OW columns) with the
/// columns of output rows `out_rows`, from one group's input channels `x_group`
/// ((C_in/groups) planes of H·W).
pub(super) fn im2col<T: Float>(
    g: &Conv2dGeometry,
    x_group: &[T],
    out_rows: Range<usize>,
    col: &mut [T],
) {
    if out_rows.is_empty() || g.out_w == 0 {
        return;
    }
    let [sh, sw] = g.stride;
    let in_plane = g.in_h * g.in_w;
    let mut col_rows = col.chunks_exact_mut(out_rows.len() * g.out_w);
    for plane in x_group.chunks_exact(in_plane) {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                let tap = TapWindow::new(g, ki, kj);
                let valid_cols = tap.cols.len();
                for (oh, out_row) in out_rows.clone().zip(col_row.chunks_exact_mut(g.out_w)) {
                    if !tap.rows.contains(&oh) || tap.cols.is_empty() {
                        out_row.fill(T::ZERO);
                        continue;
                    }
                    let ih = tap.first_in_row + (oh - tap.rows.start) * sh;
                    let in_row = &plane[ih * g.in_w..(ih + 1) * g.in_w];
                    out_row[..tap.cols.start].fill(T::ZERO);
                    out_row[tap.cols.end..].fill(T::ZERO);
                    let dst = &mut out_row[tap.cols.clone()];
                    let src = &in_row[tap.first_in_col..];
                    if sw == 1 {
                        dst.copy_from_slice(&src[..valid_cols]);
                    } else {
                        for (d, s) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `col` (the columns of output rows
/// `out_rows`) to `x_group` at the input position it was read from.
pub(super) fn col2im_add<T: Float>(
    g: &Conv2dGeometry,
    col: &[T],
    out_rows: Range<usize>,
    x_group: &mut [T],
) {
    if out_rows.is_empty() || g.out_w == 0 {
        return;
    }
    let [sh, sw] = g.stride;
    let in_plane = g.in_h * g.in_w;
    let mut col_rows = col.chunks_exact(out_rows.len() * g.out_w);
    for plane in x_group.chunks_exact_mut(in_plane) {
        for ki in 0..g.kernel_h {
            for kj in 0..g.kernel_w {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                let tap = TapWindow::new(g, ki, kj);
                if tap.cols.is_empty() {
                    continue;
                }
                let valid_rows = tap.rows.start.max(out_rows.start)..tap.rows.end.min(out_rows.end);
                for oh in valid_rows {
                    let ih = tap.first_in_row + (oh - tap.rows.start) * sh;
                    let in_row = &mut plane[ih * g.in_w..(ih + 1) * g.in_w];
                    let src = &col_row[(oh - out_rows.start) * g.out_w..][tap.cols.clone()];
                    let dst = &mut in_row[tap.first_in_col..];
                    if sw == 1 {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst.iter_mut().step_by(sw).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}
