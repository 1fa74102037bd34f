//! Named architectures with training defaults, for `mho train --arch PRESET`.

use super::arch::{Architecture, LayerSpec};
use super::train::{Optimizer, TrainConfig};
use crate::{bail, Result};

/// A named architecture with its dataset and training defaults.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The name given to `--arch`.
    pub name: &'static str,
    /// The dataset it is made for.
    pub dataset: &'static str,
    /// One line describing it.
    pub description: &'static str,
    /// Training defaults (epochs, batch size, optimiser; seed 0).
    pub config: TrainConfig,
    build: fn() -> Vec<LayerSpec>,
    input_shape: [usize; 3],
}

fn conv(cin: usize, cout: usize, k: usize, pad: usize) -> LayerSpec {
    LayerSpec::Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel_size: [k, k],
        stride: [1, 1],
        padding: [pad, pad],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    }
}

fn linear(i: usize, o: usize) -> LayerSpec {
    LayerSpec::Linear {
        in_features: i,
        out_features: o,
        bias: true,
    }
}

fn maxpool2() -> LayerSpec {
    LayerSpec::MaxPool2d {
        kernel_size: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        ceil_mode: false,
    }
}

fn flatten() -> LayerSpec {
    LayerSpec::Flatten {
        start_dim: 1,
        end_dim: -1,
    }
}

fn digits_cnn() -> Vec<LayerSpec> {
    vec![
        conv(1, 16, 3, 1),
        LayerSpec::ReLU,
        conv(16, 32, 3, 1),
        LayerSpec::ReLU,
        maxpool2(),
        flatten(),
        linear(32 * 4 * 4, 64),
        LayerSpec::ReLU,
        linear(64, 10),
    ]
}

fn digits_mlp() -> Vec<LayerSpec> {
    vec![flatten(), linear(64, 32), LayerSpec::ReLU, linear(32, 10)]
}

fn fashion_cnn() -> Vec<LayerSpec> {
    vec![
        conv(1, 16, 3, 1),
        LayerSpec::ReLU,
        maxpool2(),
        conv(16, 32, 3, 1),
        LayerSpec::ReLU,
        maxpool2(),
        flatten(),
        linear(32 * 7 * 7, 128),
        LayerSpec::ReLU,
        linear(128, 10),
    ]
}

fn fashion_mlp() -> Vec<LayerSpec> {
    vec![
        flatten(),
        linear(784, 256),
        LayerSpec::ReLU,
        linear(256, 10),
    ]
}

/// Every preset; the first one for a dataset is its default.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "digits-cnn",
        dataset: "digits",
        description: "Conv(1→16,3×3)-ReLU-Conv(16→32,3×3)-ReLU-MaxPool(2)-Linear(512→64)-ReLU-Linear(64→10)",
        config: TrainConfig {
            epochs: 25,
            batch_size: 32,
            optimizer: Optimizer::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            seed: 0,
        },
        build: digits_cnn,
        input_shape: [1, 8, 8],
    },
    Preset {
        name: "digits-mlp",
        dataset: "digits",
        description: "Linear(64→32)-ReLU-Linear(32→10): tiny, for quick runs",
        config: TrainConfig {
            epochs: 20,
            batch_size: 32,
            optimizer: Optimizer::Adam {
                lr: 3e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            seed: 0,
        },
        build: digits_mlp,
        input_shape: [1, 8, 8],
    },
    Preset {
        name: "fashion-cnn",
        dataset: "fashion-mnist",
        description: "Conv(1→16,3×3)-ReLU-MaxPool(2)-Conv(16→32,3×3)-ReLU-MaxPool(2)-Linear(1568→128)-ReLU-Linear(128→10)",
        config: TrainConfig {
            epochs: 6,
            batch_size: 64,
            optimizer: Optimizer::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            seed: 0,
        },
        build: fashion_cnn,
        input_shape: [1, 28, 28],
    },
    Preset {
        name: "fashion-mlp",
        dataset: "fashion-mnist",
        description: "Linear(784→256)-ReLU-Linear(256→10)",
        config: TrainConfig {
            epochs: 5,
            batch_size: 64,
            optimizer: Optimizer::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            seed: 0,
        },
        build: fashion_mlp,
        input_shape: [1, 28, 28],
    },
];

impl Preset {
    /// The preset's architecture.
    pub fn architecture(&self) -> Result<Architecture> {
        Architecture::new(self.input_shape.to_vec(), (self.build)())
    }

    /// A preset by name.
    pub fn by_name(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// The default preset of a dataset.
    pub fn default_for(dataset: &str) -> Result<&'static Preset> {
        match PRESETS.iter().find(|p| p.dataset == dataset) {
            Some(p) => Ok(p),
            None => bail!("no preset for dataset \"{dataset}\""),
        }
    }

    /// The names of all presets, comma-separated.
    pub fn names() -> String {
        PRESETS
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
