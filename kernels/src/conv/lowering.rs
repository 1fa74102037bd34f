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
    /// Every tap of the kernel, row-major (ki, kj): the order of the column matrix's rows
    /// within one input channel.
    fn all(g: &Conv2dGeometry) -> Vec<Self> {
        (0..g.kernel_h)
            .flat_map(|ki| (0..g.kernel_w).map(move |kj| Self::new(g, ki, kj)))
            .collect()
    }

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

/// Whether a tap's input rows are consecutive and as wide as the output rows (stride 1
/// and OW = W, e.g. "same" padding): then a tap's whole column-matrix row is one
/// shifted copy of the input plane, except for the columns that wrap around a row
/// edge.
fn rows_are_contiguous(g: &Conv2dGeometry) -> bool {
    g.stride == [1, 1] && g.out_w == g.in_w
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
    if g.in_w == 0 || g.in_h == 0 {
        // Every tap falls in the padding.
        col.fill(T::ZERO);
        return;
    }
    let contiguous = rows_are_contiguous(g);
    let taps = TapWindow::all(g);
    let mut col_rows = col.chunks_exact_mut(out_rows.len() * g.out_w);
    for plane in x_group.chunks_exact(g.in_h * g.in_w) {
        for tap in &taps {
            let Some(col_row) = col_rows.next() else {
                return;
            };
            if contiguous {
                gather_contiguous(g, plane, tap, out_rows.clone(), col_row);
            } else {
                gather_rows(g, plane, tap, out_rows.clone(), col_row);
            }
        }
    }
}

/// One tap's column-matrix row (output rows `out_rows`), output row by output row.
fn gather_rows<T: Float>(
    g: &Conv2dGeometry,
    plane: &[T],
    tap: &TapWindow,
    out_rows: Range<usize>,
    col_row: &mut [T],
) {
    let [sh, sw] = g.stride;
    for (oh, out_row) in out_rows.zip(col_row.chunks_exact_mut(g.out_w)) {
        if !tap.rows.contains(&oh) || tap.cols.is_empty() {
            out_row.fill(T::ZERO);
            continue;
        }
        let ih = tap.first_in_row + (oh - tap.rows.start) * sh;
        let src = &plane[ih * g.in_w..(ih + 1) * g.in_w][tap.first_in_col..];
        out_row[..tap.cols.start].fill(T::ZERO);
        out_row[tap.cols.end..].fill(T::ZERO);
        let dst = &mut out_row[tap.cols.clone()];
        if sw == 1 {
            let len = dst.len();
            dst.copy_from_slice(&src[..len]);
        } else {
            for (d, s) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                *d = *s;
            }
        }
    }
}

/// The part of a tap's column-matrix row (output rows `out_rows`) that one contiguous
/// copy fills when [`rows_are_contiguous`]: positions `dst` of the row read input
/// positions `dst + shift` of the plane.
struct ContiguousRun {
    /// Output rows (relative to `out_rows.start`) whose tap lies in the input.
    rows: Range<usize>,
    /// Column-row positions from the first to the last valid tap.
    dst: Range<usize>,
    /// Plane position of `dst.start`.
    src_start: usize,
}

impl ContiguousRun {
    /// The run of a tap, or `None` when no output row or column of it reads input.
    fn new(g: &Conv2dGeometry, tap: &TapWindow, out_rows: &Range<usize>) -> Option<Self> {
        let valid = tap.rows.start.max(out_rows.start)..tap.rows.end.min(out_rows.end);
        if valid.is_empty() || tap.cols.is_empty() {
            return None;
        }
        let first_ih = tap.first_in_row + (valid.start - tap.rows.start);
        let rows = valid.start - out_rows.start..valid.end - out_rows.start;
        let dst = rows.start * g.out_w + tap.cols.start..(rows.end - 1) * g.out_w + tap.cols.end;
        Some(Self {
            rows,
            dst,
            src_start: first_ih * g.in_w + tap.first_in_col,
        })
    }
}

/// [`gather_rows`] when [`rows_are_contiguous`]: one copy for all valid output rows,
/// then zeros over the columns that wrapped around a row edge and the rows outside.
fn gather_contiguous<T: Float>(
    g: &Conv2dGeometry,
    plane: &[T],
    tap: &TapWindow,
    out_rows: Range<usize>,
    col_row: &mut [T],
) {
    let Some(run) = ContiguousRun::new(g, tap, &out_rows) else {
        col_row.fill(T::ZERO);
        return;
    };
    let w = g.out_w;
    col_row[..run.rows.start * w].fill(T::ZERO);
    col_row[run.rows.end * w..].fill(T::ZERO);
    let len = run.dst.len();
    col_row[run.dst.clone()].copy_from_slice(&plane[run.src_start..run.src_start + len]);
    zero_wrapped_columns(&mut col_row[run.rows.start * w..run.rows.end * w], w, tap);
}

/// Zeros the columns outside `tap.cols` in every row of `rows` (rows of `w` entries).
/// Column by column, as strided stores: these are one or two columns of a 3×3 kernel, and
/// a `fill` per row would be a library call for each single element.
#[inline(always)]
fn zero_wrapped_columns<T: Float>(rows: &mut [T], w: usize, tap: &TapWindow) {
    for c in (0..tap.cols.start).chain(tap.cols.end..w) {
        for v in rows[c..].iter_mut().step_by(w) {
            *v = T::ZERO;
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `col` (the columns of output rows
/// `out_rows`) to `x_group` at the input position it was read from. Entries of `col`
/// that read padding may be overwritten with zeros.
#[inline(always)]
pub(super) fn col2im_add<T: Float>(
    g: &Conv2dGeometry,
    col: &mut [T],
    out_rows: Range<usize>,
    x_group: &mut [T],
) {
    if out_rows.is_empty() || g.out_w == 0 {
        return;
    }
    if g.in_w == 0 || g.in_h == 0 {
        // Every tap falls in the padding.
        col.fill(T::ZERO);
        return;
    }
    let contiguous = rows_are_contiguous(g);
    let taps = TapWindow::all(g);
    let mut col_rows = col.chunks_exact_mut(out_rows.len() * g.out_w);
    for plane in x_group.chunks_exact_mut(g.in_h * g.in_w) {
        for tap in &taps {
            let Some(col_row) = col_rows.next() else {
                return;
            };
            if contiguous {
                scatter_contiguous(g, col_row, tap, out_rows.clone(), plane);
            } else {
                scatter_rows(g, col_row, tap, out_rows.clone(), plane);
            }
        }
    }
}

/// Adds one tap's column-matrix row into the plane, output row by output row.
#[inline(always)]
fn scatter_rows<T: Float>(
    g: &Conv2dGeometry,
    col_row: &[T],
    tap: &TapWindow,
    out_rows: Range<usize>,
    plane: &mut [T],
) {
    let [sh, sw] = g.stride;
    if tap.cols.is_empty() {
        return;
    }
    let valid_rows = tap.rows.start.max(out_rows.start)..tap.rows.end.min(out_rows.end);
    for oh in valid_rows {
        let ih = tap.first_in_row + (oh - tap.rows.start) * sh;
        let dst = &mut plane[ih * g.in_w..(ih + 1) * g.in_w][tap.first_in_col..];
        let src = &col_row[(oh - out_rows.start) * g.out_w..][tap.cols.clone()];
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

/// [`scatter_rows`] when [`rows_are_contiguous`]: zeros the entries that wrapped
/// around a row edge, then adds all valid rows in one pass.
#[inline(always)]
fn scatter_contiguous<T: Float>(
    g: &Conv2dGeometry,
    col_row: &mut [T],
    tap: &TapWindow,
    out_rows: Range<usize>,
    plane: &mut [T],
) {
    let Some(run) = ContiguousRun::new(g, tap, &out_rows) else {
        return;
    };
    let w = g.out_w;
    zero_wrapped_columns(&mut col_row[run.rows.start * w..run.rows.end * w], w, tap);
    let src = &col_row[run.dst.clone()];
    let dst = &mut plane[run.src_start..run.src_start + src.len()];
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}
