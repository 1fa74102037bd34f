//! 2-d (and, as height-1 special cases, 1-d) convolution in PyTorch's layouts:
//! input NCHW, weight `[out, in/groups, kh, kw]`, output NCHW.
//!
//! The fast kernels lower each image and group with im2col and call gemm, running
//! images in parallel on rayon (each worker reuses one scratch buffer):
//! - forward: Y_g = W_g · col(X_g), plus bias;
//! - input gradient: col(dX_g) = W_gᵀ · dY_g, folded back with col2im;
//! - weight gradient: dW_g = Σ_n dY_g · col(X_g)ᵀ, summed per fixed chunk of images
//!   and then reduced in chunk order, so the result is bit-identical for a given
//!   geometry whatever the thread count.
//!
//! 1×1 kernels with stride 1 and no padding skip im2col (the input already is the
//! column matrix). In f32 on CPUs with AVX-512, 3×3 kernels with stride 1 and at least
//! [`winograd::MIN_CHANNELS`] channels on each side run forward and input gradient by
//! Winograd F(2×2, 3×3) ([`winograd`]), 2.25× fewer multiplications. [`reference`] has
//! the plain direct loops the tests compare against.

mod fast;
mod geometry;
mod lowering;
pub mod reference;
mod sizes;
pub mod winograd;

pub use fast::{
    conv2d_bias_grad, conv2d_forward, conv2d_forward_then, conv2d_input_grad, conv2d_weight_grad,
    Epilogue,
};
pub use geometry::Conv2dGeometry;
