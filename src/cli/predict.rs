//! `mho predict --model M --input X.npy [--out FILE.json|FILE.npy]`: the model's outputs
//! as `{"outputs": {"shape": [N, ...], "data": [row-major]}}`.

use super::{check_writable, emit, with_threads};
use crate::io::{read_input, write_npy};
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{Float, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The float type computations run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// 32-bit floats (PyTorch's default).
    F32,
    /// 64-bit floats.
    F64,
}

/// Arguments of `mho predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model file (.safetensors with an mho architecture).
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The inputs: a .npy array shaped like the model's input, or [N, ...] of it.
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Where to write the outputs: a .json file (the default format) or a .npy array.
    /// Printed as JSON on stdout when omitted.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The float type to compute in.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Precision,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `mho predict`.
pub fn run(a: PredictArgs) -> Result<()> {
    if let Some(out) = &a.out {
        check_writable(out, "--out")?;
    }
    with_threads(a.threads, || match a.dtype {
        Precision::F32 => predict::<f32>(&a),
        Precision::F64 => predict::<f64>(&a),
    })?
}

/// The model's outputs for every example of `x` ([N, ...]), in batches.
pub fn predict_batched<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    batch: usize,
) -> Result<Tensor<T>> {
    let n = x.shape()[0];
    let per: usize = x.shape()[1..].iter().product();
    let mut data = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let mut shape = x.shape().to_vec();
        shape[0] = end - start;
        let xb = Tensor::new(shape, x.data()[start * per..end * per].to_vec())?;
        data.extend_from_slice(model.forward(&xb)?.data());
        start = end;
    }
    let mut shape = vec![n];
    shape.extend_from_slice(model.output_shape());
    Tensor::new(shape, data)
}

fn predict<T: Float>(a: &PredictArgs) -> Result<()> {
    let model = Model::<T>::load(&a.model)?;
    let x: Tensor<T> = read_input(&a.input, model.input_shape(), model.takes_tokens())?;
    let y = predict_batched(&model, &x, a.batch_size as usize)
        .map_err(|e| e.context(format_args!("model {}", a.model.display())))?;
    if let Some(out) = &a.out {
        if is_npy(out) {
            return write_npy(out, &y);
        }
    }
    emit(a.out.as_deref(), &outputs_json(&y))
}

fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// `{"outputs": {"shape": [...], "data": [...]}}` with each value in its shortest form
/// that reads back exactly in `T`.
pub fn outputs_json<T: Float>(y: &Tensor<T>) -> String {
    let data: Vec<serde_json::Value> = if T::NAME == "f32" {
        y.data()
            .iter()
            .map(|v| serde_json::json!(v.to_f32()))
            .collect()
    } else {
        y.data()
            .iter()
            .map(|v| serde_json::json!(v.to_f64()))
            .collect()
    };
    let mut s = serde_json::json!({"outputs": {"shape": y.shape(), "data": data}}).to_string();
    s.push('\n');
    s
}
