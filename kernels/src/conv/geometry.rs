//! The shape of a convolution: sizes, stride, padding, dilation, groups.

use crate::check::{check_len, check_positive, checked_product};
use crate::KernelError;

/// Every size of a 2-d convolution, validated, with the output size worked out.
///
/// Build it with [`Conv2dGeometry::new`] (or [`Conv2dGeometry::conv1d`]); the kernels
/// re-check that a geometry's fields are consistent, so a hand-edited one is refused
/// rather than trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch (N).
    pub batch: usize,
    /// Input channels (C_in).
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels (C_out).
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Zero padding on each side, `[vertical, horizontal]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[vertical, horizontal]` (1 = dense).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into this many groups,
    /// each convolved separately.
    pub groups: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Validates (all sizes ≥ 1, stride ≥ 1, dilation ≥ 1, groups divides in and out
    /// channels, dilated kernel ≤ padded input) and computes out_h/out_w with
    /// PyTorch's formula `(in + 2·pad − dilation·(kernel − 1) − 1) / stride + 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        in_channels: usize,
        in_hw: [usize; 2],
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Self, KernelError> {
        const K: &str = "conv2d geometry";
        check_positive(K, "batch", batch)?;
        check_positive(K, "in_channels", in_channels)?;
        check_positive(K, "input height", in_hw[0])?;
        check_positive(K, "input width", in_hw[1])?;
        check_positive(K, "out_channels", out_channels)?;
        check_positive(K, "kernel height", kernel[0])?;
        check_positive(K, "kernel width", kernel[1])?;
        check_positive(K, "vertical stride", stride[0])?;
        check_positive(K, "horizontal stride", stride[1])?;
        check_positive(K, "vertical dilation", dilation[0])?;
        check_positive(K, "horizontal dilation", dilation[1])?;
        check_positive(K, "groups", groups)?;
        if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return Err(crate::kernel_err!(
                "{K}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            ));
        }
        let out_h = output_size(
            "height",
            in_hw[0],
            kernel[0],
            stride[0],
            padding[0],
            dilation[0],
        )?;
        let out_w = output_size(
            "width",
            in_hw[1],
            kernel[1],
            stride[1],
            padding[1],
            dilation[1],
        )?;
        let g = Self {
            batch,
            in_channels,
            in_h: in_hw[0],
            in_w: in_hw[1],
            out_channels,
            kernel_h: kernel[0],
            kernel_w: kernel[1],
            stride,
            padding,
            dilation,
            groups,
            out_h,
            out_w,
        };
        // Every buffer the kernels touch must have a size that fits in usize.
        checked_product(K, "input", &g.input_dims())?;
        checked_product(K, "weight", &g.weight_dims())?;
        checked_product(K, "output", &g.output_dims())?;
        checked_product(K, "im2col buffer", &[g.col_rows(), out_h, out_w])?;
        Ok(g)
    }

    /// A 1-d convolution (NCL) as a 2-d one with height 1 (kernel height 1, no
    /// vertical padding).
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d(
        batch: usize,
        in_channels: usize,
        len: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Self, KernelError> {
        Self::new(
            batch,
            in_channels,
            [1, len],
            out_channels,
            [1, kernel],
            [1, stride],
            [0, padding],
            [1, dilation],
            groups,
        )
    }

    /// Elements of the input, N·C_in·H·W.
    pub fn input_len(&self) -> usize {
        saturating_product(&self.input_dims())
    }

    /// Elements of the weight, C_out·(C_in/groups)·kh·kw.
    pub fn weight_len(&self) -> usize {
        saturating_product(&self.weight_dims())
    }

    /// Elements of the output, N·C_out·OH·OW.
    pub fn output_len(&self) -> usize {
        saturating_product(&self.output_dims())
    }

    /// FLOPs of the forward pass (2·N·C_out·OH·OW·(C_in/groups)·kh·kw); the two
    /// gradients cost the same.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64
            * self.out_channels as f64
            * self.out_h as f64
            * self.out_w as f64
            * self.col_rows() as f64
    }

    /// Input shape `[N, C_in, H, W]`.
    pub(crate) fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// Weight shape `[C_out, C_in/groups, kh, kw]`.
    pub(crate) fn weight_dims(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.group_in_channels(),
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// Output shape `[N, C_out, OH, OW]`.
    pub(crate) fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }

    /// Input channels per group.
    pub(crate) fn group_in_channels(&self) -> usize {
        self.in_channels.checked_div(self.groups).unwrap_or(0)
    }

    /// Output channels per group.
    pub(crate) fn group_out_channels(&self) -> usize {
        self.out_channels.checked_div(self.groups).unwrap_or(0)
    }

    /// Rows of one group's im2col matrix: (C_in/groups)·kh·kw.
    pub(crate) fn col_rows(&self) -> usize {
        saturating_product(&[self.group_in_channels(), self.kernel_h, self.kernel_w])
    }

    /// True for a 1×1 kernel with stride 1 and no padding, whose im2col matrix is the
    /// input itself.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Fails unless the geometry is exactly what [`Conv2dGeometry::new`] builds from
    /// its own fields (so kernels never run on an inconsistent, hand-edited one).
    pub(crate) fn validate(&self, kernel: &str) -> Result<(), KernelError> {
        let rebuilt = Self::new(
            self.batch,
            self.in_channels,
            [self.in_h, self.in_w],
            self.out_channels,
            [self.kernel_h, self.kernel_w],
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
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

    /// Checks the lengths of an input-, weight- and output-shaped slice.
    pub(crate) fn check_lens(
        &self,
        kernel: &str,
        input: (&str, usize),
        weight: Option<(&str, usize)>,
        output: (&str, usize),
    ) -> Result<(), KernelError> {
        self.validate(kernel)?;
        check_len(kernel, input.0, input.1, &self.input_dims())?;
        if let Some((name, len)) = weight {
            check_len(kernel, name, len, &self.weight_dims())?;
        }
        check_len(kernel, output.0, output.1, &self.output_dims())
    }
}

/// PyTorch's output size along one axis, or an error when the dilated kernel does not
/// fit in the padded input.
fn output_size(
    axis: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize, KernelError> {
    let padded = padding.checked_mul(2).and_then(|p| p.checked_add(input));
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1));
    match (padded, span) {
        (Some(padded), Some(span)) if span <= padded => Ok((padded - span) / stride + 1),
        _ => Err(crate::kernel_err!(
            "conv2d geometry: dilated kernel {axis} (kernel {kernel}, dilation {dilation}) exceeds padded input {axis} (input {input}, padding {padding} each side)"
        )),
    }
}

/// Product of `dims`, saturating at usize::MAX instead of overflowing.
fn saturating_product(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}
