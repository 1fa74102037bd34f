//! Attribution along the straight path from a baseline x' to the input x:
//! integrated gradients, conductance of every layer from one batched pass, neuron
//! conductance, internal influence, activation and gradient×activation.
//!
//! Everything is bookkeeping on the tape of [`path::sweep`]: at each path node α_k the
//! tape holds every layer's value y, adjoint ∂F/∂y and tangent dy/dα.

pub mod events;
pub mod exact;
pub mod methods;
pub mod path;
pub mod quadrature;
pub mod report;
mod split;

pub use exact::ExactOptions;
pub use methods::{attribute, Baseline, ConductanceForm, LayerSelection, Method, Request};
pub use quadrature::Rule;
pub use report::Report;
