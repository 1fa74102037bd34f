//! Pooling windows along one axis, and when pooling is worth running in parallel.

use std::ops::Range;

use crate::check::threads;

/// Pooling that does fewer elementary steps than this runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// Whether pooling `planes` planes with `work` elementary steps in total should use
/// rayon.
pub(super) fn worth_parallel(planes: usize, work: usize) -> bool {
    planes > 1 && work >= PARALLEL_MIN_WORK && threads() > 1
}

/// The taps of one dilated max-pool window along one axis that lie inside the input:
/// positions `first + j·dilation` for `j < count`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Taps {
    pub first: usize,
    pub count: usize,
}

impl Taps {
    /// The in-input taps of window `o`, whose taps sit at `o·stride + j·dilation − pad`
    /// for `j < kernel`.
    pub(super) fn of(
        o: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        kernel: usize,
        input: usize,
    ) -> Self {
        let start = o * stride;
        // tap j ≥ 0  ⇔  start + j·d ≥ pad
        let first_j = pad.saturating_sub(start).div_ceil(dilation);
        // tap j < input  ⇔  start + j·d < input + pad
        let end_j = (input + pad)
            .saturating_sub(start)
            .div_ceil(dilation)
            .min(kernel);
        let count = end_j.saturating_sub(first_j);
        let first = (start + first_j * dilation).saturating_sub(pad);
        Self { first, count }
    }

    /// The taps of every window of an axis.
    pub(super) fn all(
        out: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        kernel: usize,
        input: usize,
    ) -> Vec<Self> {
        (0..out)
            .map(|o| Self::of(o, stride, pad, dilation, kernel, input))
            .collect()
    }
}

/// One average-pool window along one axis, as PyTorch's `avg_pool2d` sees it.
#[derive(Clone, Debug)]
pub(super) struct AvgSpan {
    /// The input positions inside the window.
    pub inside: Range<usize>,
    /// The window's length after clipping to the padded input (the
    /// `count_include_pad` divisor factor).
    pub padded_len: usize,
}

impl AvgSpan {
    /// Window `o`: `o·stride − pad .. o·stride − pad + kernel`, clipped to the padded
    /// input `−pad .. input + pad` and then to the input.
    pub(super) fn of(o: usize, stride: usize, pad: usize, kernel: usize, input: usize) -> Self {
        // In padded coordinates (shifted by +pad) the window is start..end.
        let start = o * stride;
        let end = (start + kernel).min(input + 2 * pad);
        let padded_len = end.saturating_sub(start);
        let lo = start.max(pad) - pad;
        let hi = end.min(input + pad).saturating_sub(pad).max(lo);
        Self {
            inside: lo..hi,
            padded_len,
        }
    }

    /// The windows of an axis.
    pub(super) fn all(
        out: usize,
        stride: usize,
        pad: usize,
        kernel: usize,
        input: usize,
    ) -> Vec<Self> {
        (0..out)
            .map(|o| Self::of(o, stride, pad, kernel, input))
            .collect()
    }
}
