//! mho: a from-scratch autodiff and neural-network runtime with neuron attribution
//! (integrated gradients, conductance of every layer) built in.
//!
//! Layers of the house, each importing only those below it:
//! kernels (`mho-kernels`) → [`buffers`] → [`tensor`] → [`tape`] / [`ops`] → nn → attribution → cli.

#![deny(missing_docs)]

pub mod attribution;
pub mod buffers;
pub mod cli;
pub mod data;
mod error;
pub mod experiments;
pub mod io;
pub mod nn;
pub mod ops;
pub mod tape;
pub mod tensor;
pub mod viz;

pub use error::{Error, Result};
pub use mho_kernels::Float;
pub use tape::{Linearity, NodeId, Op, Tape};
pub use tensor::Tensor;
