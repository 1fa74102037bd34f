//! PyTorch's default initialisation of a fresh model, from a seed.
//!
//! - Linear / Conv weights: `kaiming_uniform_(a=√5)`, i.e. U(−1/√fan_in, 1/√fan_in);
//!   biases U(−1/√fan_in, 1/√fan_in) (fan_in = in_features, or in_channels/groups · kernel
//!   area).
//! - BatchNorm: weight 1, bias 0, running mean 0, running variance 1.
//! - PReLU: `init` (0.25 by default). Embedding: N(0, 1), the `padding_idx` row zero.
//!
//! The random stream is mho's own ([`super::rng::Rng`]): the same seed gives the same
//! model, but not the same numbers as PyTorch's generator.

use super::arch::{Architecture, LayerSpec};
use super::model::{DType, Model, Param};
use super::rng::Rng;
use crate::tensor::Tensor;
use crate::{Float, Result};

fn uniform<T: Float>(rng: &mut Rng, shape: &[usize], bound: f64) -> Result<Tensor<T>> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| T::from_f64(rng.uniform_range(-bound, bound)))
        .collect();
    Tensor::new(shape.to_vec(), data)
}

impl<T: Float> Model<T> {
    /// A fresh model with PyTorch's default initialisation, deterministic for `seed`.
    /// Its parameters are saved as F32.
    pub fn init(arch: Architecture, seed: u64) -> Result<Model<T>> {
        let shapes = arch.layer_shapes()?;
        let mut params = Vec::with_capacity(arch.layers.len());
        for (i, spec) in arch.layers.iter().enumerate() {
            // One stream per layer: changing one layer leaves the others' numbers alone.
            let mut rng = Rng::new(seed, i as u64 + 1);
            let fan_in = match spec {
                LayerSpec::Linear { in_features, .. } => *in_features,
                LayerSpec::Conv2d {
                    in_channels,
                    kernel_size,
                    groups,
                    ..
                } => in_channels / groups * kernel_size[0] * kernel_size[1],
                LayerSpec::Conv1d {
                    in_channels,
                    kernel_size,
                    groups,
                    ..
                } => in_channels / groups * kernel_size,
                _ => 1,
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            let mut layer = Vec::new();
            for (suffix, shape) in spec.param_shapes() {
                let value = match (spec, suffix) {
                    (
                        LayerSpec::Linear { .. }
                        | LayerSpec::Conv2d { .. }
                        | LayerSpec::Conv1d { .. },
                        _,
                    ) => uniform(&mut rng, &shape, bound)?,
                    (LayerSpec::PReLU { init, .. }, _) => Tensor::full(&shape, T::from_f64(*init)),
                    (
                        LayerSpec::Embedding {
                            embedding_dim,
                            padding_idx,
                            ..
                        },
                        _,
                    ) => {
                        let n: usize = shape.iter().product();
                        let mut data: Vec<T> = (0..n).map(|_| T::from_f64(rng.normal())).collect();
                        if let Some(p) = padding_idx {
                            data[p * embedding_dim..(p + 1) * embedding_dim].fill(T::ZERO);
                        }
                        Tensor::new(shape.clone(), data)?
                    }
                    (_, "weight" | "running_var") => Tensor::full(&shape, T::ONE),
                    _ => Tensor::zeros(&shape),
                };
                layer.push(Param {
                    suffix,
                    value,
                    dtype: DType::F32,
                    raw: None,
                });
            }
            params.push(layer);
        }
        Ok(Model {
            arch,
            shapes,
            params,
        })
    }
}
