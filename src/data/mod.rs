//! Datasets for training and evaluation: the UCI 8×8 digits embedded in the binary and
//! Fashion-MNIST read from IDX files.

pub mod digits;
pub mod fashion;
pub mod idx;

use crate::tensor::Tensor;
use crate::{bail, Result};
use std::path::Path;

/// A labelled image dataset with a fixed train / held-out split.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The dataset's name ("digits", "fashion-mnist").
    pub name: String,
    /// Training images, [N, C, H, W], values in [0, 1].
    pub train_x: Tensor<f32>,
    /// Training labels in 0..classes.
    pub train_y: Vec<usize>,
    /// Held-out images, [M, C, H, W], values in [0, 1].
    pub test_x: Tensor<f32>,
    /// Held-out labels in 0..classes.
    pub test_y: Vec<usize>,
    /// The number of classes.
    pub classes: usize,
}

impl Dataset {
    /// The shape of one example (without the batch axis).
    pub fn example_shape(&self) -> &[usize] {
        &self.train_x.shape()[1..]
    }
}

/// The names accepted by [`load_dataset`].
pub const DATASETS: &[&str] = &["digits", "fashion-mnist"];

/// Loads a dataset by name. `data_dir` overrides where Fashion-MNIST's IDX files are read
/// from (the digits are embedded and need no files).
pub fn load_dataset(name: &str, data_dir: Option<&Path>) -> Result<Dataset> {
    match name {
        "digits" => digits::load(),
        "fashion-mnist" | "fashion_mnist" | "fashionmnist" => fashion::load(data_dir),
        other => bail!(
            "unknown dataset \"{other}\" (known: {})",
            DATASETS.join(", ")
        ),
    }
}
