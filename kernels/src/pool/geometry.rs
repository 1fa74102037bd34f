//! Shapes of pooling operations, with PyTorch's output-size rules.

use crate::check::{check_positive, checked_product};
use crate::KernelError;

/// Every size of a 2-d max or average pooling, validated, with the output size worked
/// out by PyTorch's rules.
///
/// Build it with [`Pool2dGeometry::new`] (or [`Pool2dGeometry::pool1d`]); kernels
/// refuse a geometry whose fields are inconsistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Images in the batch (N).
    pub batch: usize,
    /// Channels (C); each of the N·C planes is pooled separately.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window size `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Implicit padding on each side, `[vertical, horizontal]` (−∞ for max pooling,
    /// zeros for average pooling).
    pub padding: [usize; 2],
    /// Spacing between window taps, `[vertical, horizontal]` (max pooling only; average
    /// pooling requires 1).
    pub dilation: [usize; 2],
    /// Whether the output size rounds up rather than down.
    pub ceil_mode: bool,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Pool2dGeometry {
    /// Validates with PyTorch's rules and computes the output size.
    ///
    /// Along each axis: output = ⌊(in + 2p − d(k − 1) − 1 + (ceil_mode ? s − 1 : 0)) / s⌋ + 1,
    /// and with `ceil_mode` the last window must start inside the input or the left
    /// padding (else it is dropped) — PyTorch's `pooling_output_shape`. The padding must
    /// be at most half the effective kernel size, p ≤ (d(k − 1) + 1) / 2 (integer
    /// division, as PyTorch's `pool2d_shape_check`); all sizes ≥ 1; output ≥ 1.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        channels: usize,
        in_hw: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        ceil_mode: bool,
    ) -> Result<Self, KernelError> {
        const K: &str = "pool2d geometry";
        check_positive(K, "batch", batch)?;
        check_positive(K, "channels", channels)?;
        check_positive(K, "input height", in_hw[0])?;
        check_positive(K, "input width", in_hw[1])?;
        check_positive(K, "kernel height", kernel[0])?;
        check_positive(K, "kernel width", kernel[1])?;
        check_positive(K, "vertical stride", stride[0])?;
        check_positive(K, "horizontal stride", stride[1])?;
        check_positive(K, "vertical dilation", dilation[0])?;
        check_positive(K, "horizontal dilation", dilation[1])?;
        let mut out = [0; 2];
        for axis in 0..2 {
            out[axis] = pooling_output_size(
                ["height", "width"][axis],
                in_hw[axis],
                kernel[axis],
                stride[axis],
                padding[axis],
                dilation[axis],
                ceil_mode,
            )?;
        }
        let g = Self {
            batch,
            channels,
            in_h: in_hw[0],
            in_w: in_hw[1],
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
            out_h: out[0],
            out_w: out[1],
        };
        checked_product(K, "input", &g.input_dims())?;
        checked_product(K, "output", &g.output_dims())?;
        Ok(g)
    }

    /// 1-d pooling (NCL) as 2-d with height 1 (window height 1, no vertical padding).
    #[allow(clippy::too_many_arguments)]
    pub fn pool1d(
        batch: usize,
        channels: usize,
        len: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        ceil_mode: bool,
    ) -> Result<Self, KernelError> {
        Self::new(
            batch,
            channels,
            [1, len],
            [1, kernel],
            [1, stride],
            [0, padding],
            [1, dilation],
            ceil_mode,
        )
    }

    /// Elements of the input, N·C·H·W.
    pub fn input_len(&self) -> usize {
        saturating_product(&self.input_dims())
    }

    /// Elements of the output, N·C·OH·OW.
    pub fn output_len(&self) -> usize {
        saturating_product(&self.output_dims())
    }

    /// Input shape `[N, C, H, W]`.
    pub(crate) fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_h, self.in_w]
    }

    /// Output shape `[N, C, OH, OW]`.
    pub(crate) fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.out_w]
    }

    /// Fails unless the geometry is exactly what [`Pool2dGeometry::new`] builds from its
    /// own fields.
    pub(crate) fn validate(&self, kernel: &str) -> Result<(), KernelError> {
        let rebuilt = Self::new(
            self.batch,
            self.channels,
            [self.in_h, self.in_w],
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        )
        .map_err(|e| crate::kernel_err!("{kernel}: {e}"))?;
        if rebuilt == *self {
            Ok(())
        } else {
            Err(crate::kernel_err!(
                "{kernel}: inconsistent geometry: output {}x{} given, but the sizes give {}x{}",
                self.out_h,
                self.out_w,
                rebuilt.out_h,
                rebuilt.out_w
            ))
        }
    }
}

/// PyTorch's `pooling_output_shape` along one axis, with its padding and
/// output-size checks.
fn pooling_output_size(
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize, KernelError> {
    // i128 holds every intermediate exactly (the inputs are below 2^64).
    let (i, k, s, p, d) = (
        input as i128,
        kernel as i128,
        stride as i128,
        pad as i128,
        dilation as i128,
    );
    let effective_kernel = d * (k - 1) + 1;
    if p > effective_kernel / 2 {
        return Err(crate::kernel_err!(
            "pool2d geometry: {axis} padding {pad} should be at most half of effective kernel size {effective_kernel} (kernel {kernel}, dilation {dilation})"
        ));
    }
    let numerator = i + 2 * p - effective_kernel + if ceil_mode { s - 1 } else { 0 };
    let mut out = numerator.div_euclid(s) + 1;
    // With ceil_mode the last window must start inside the input or the left padding.
    if ceil_mode && (out - 1) * s >= i + p {
        out -= 1;
    }
    if out < 1 {
        return Err(crate::kernel_err!(
            "pool2d geometry: output {axis} {out} is too small (input {input}, kernel {kernel}, stride {stride}, padding {pad}, dilation {dilation})"
        ));
    }
    usize::try_from(out)
        .map_err(|_| crate::kernel_err!("pool2d geometry: output {axis} {out} overflows usize"))
}

/// Input and output sizes of an adaptive average pooling; the windows follow from
/// them (PyTorch's bins: output i covers ⌊i·in/out⌋ .. ⌈(i + 1)·in/out⌉).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptivePool2dGeometry {
    /// Images in the batch (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl AdaptivePool2dGeometry {
    /// Validates (all sizes ≥ 1; the output may be larger than the input, as in PyTorch).
    pub fn new(
        batch: usize,
        channels: usize,
        in_hw: [usize; 2],
        out_hw: [usize; 2],
    ) -> Result<Self, KernelError> {
        const K: &str = "adaptive_avg_pool2d geometry";
        check_positive(K, "batch", batch)?;
        check_positive(K, "channels", channels)?;
        check_positive(K, "input height", in_hw[0])?;
        check_positive(K, "input width", in_hw[1])?;
        check_positive(K, "output height", out_hw[0])?;
        check_positive(K, "output width", out_hw[1])?;
        let g = Self {
            batch,
            channels,
            in_h: in_hw[0],
            in_w: in_hw[1],
            out_h: out_hw[0],
            out_w: out_hw[1],
        };
        checked_product(K, "input", &g.input_dims())?;
        checked_product(K, "output", &g.output_dims())?;
        Ok(g)
    }

    /// Elements of the input, N·C·H·W.
    pub fn input_len(&self) -> usize {
        saturating_product(&self.input_dims())
    }

    /// Elements of the output, N·C·OH·OW.
    pub fn output_len(&self) -> usize {
        saturating_product(&self.output_dims())
    }

    /// Input shape `[N, C, H, W]`.
    pub(crate) fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_h, self.in_w]
    }

    /// Output shape `[N, C, OH, OW]`.
    pub(crate) fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.out_w]
    }

    /// Fails unless the fields pass [`AdaptivePool2dGeometry::new`]'s checks.
    pub(crate) fn validate(&self, kernel: &str) -> Result<(), KernelError> {
        Self::new(
            self.batch,
            self.channels,
            [self.in_h, self.in_w],
            [self.out_h, self.out_w],
        )
        .map(|_| ())
        .map_err(|e| crate::kernel_err!("{kernel}: {e}"))
    }
}

/// PyTorch's adaptive bin for output `i` of `out` over `input`: ⌊i·in/out⌋ .. ⌈(i+1)·in/out⌉.
pub(crate) fn adaptive_bin(i: usize, out: usize, input: usize) -> std::ops::Range<usize> {
    // u128 so that i·in never overflows; the results are at most `input`.
    let (i, out, input) = (i as u128, out as u128, input as u128);
    let start = i * input / out;
    let end = ((i + 1) * input).div_ceil(out);
    start as usize..end as usize
}

/// Product of `dims`, saturating at usize::MAX instead of overflowing.
fn saturating_product(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}
