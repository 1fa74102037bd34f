//! Sequential neural networks: the architecture JSON ([`arch`]), models with their
//! parameters, inference and tape recording ([`Model`]), the model file ([`file`]),
//! PyTorch's default initialisation, presets and training on mho's own tape.

pub mod arch;
pub mod file;
mod init;
mod json;
mod layer;
pub mod model;
pub mod presets;
pub mod rng;
mod shapes;
pub mod train;

pub use arch::{Architecture, LayerSpec, FORMAT};
pub use json::MAX_SIZE;
pub use model::{DType, Model, Recorded, RecordedParams};
pub use presets::Preset;
pub use train::{evaluate, train, Optimizer, TrainConfig, TrainEvent};
