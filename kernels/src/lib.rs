//! `mho-kernels`: the numeric kernels under mho — gemm, convolution, pooling and
//! elementwise maps on plain row-major slices. This crate knows nothing of tapes or
//! graphs. Every fast kernel has a plain reference implementation beside it (in the
//! `reference` submodule of its file), and property tests compare the two.

#![deny(missing_docs)]

mod check;
mod error;
mod float;
mod parallel;
mod scratch;
pub mod simd;

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod peak;
pub mod pool;

pub use error::KernelError;
pub use float::Float;
#[doc(hidden)]
pub use scratch::poison as poison_scratch;
