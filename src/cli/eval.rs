//! `mho eval --model M --dataset D [--out FILE.json]`: held-out accuracy as
//! `{"accuracy": …, "n": …}`.

use super::{check_writable, emit, with_threads};
use crate::data::load_dataset;
use crate::nn::{evaluate, Model};
use crate::{ensure, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `mho eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The dataset: digits or fashion-mnist.
    #[arg(long, value_name = "D")]
    pub dataset: String,
    /// Directory holding the Fashion-MNIST IDX files (default: Debian's install location).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where to write the JSON (stdout when omitted).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `mho eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(out) = &a.out {
        check_writable(out, "--out")?;
    }
    let model = Model::<f32>::load(&a.model)?;
    let data = load_dataset(&a.dataset, a.data.as_deref())?;
    ensure!(
        model.input_shape() == data.example_shape(),
        "model {}: takes inputs of shape {:?} but {} images have shape {:?}",
        a.model.display(),
        model.input_shape(),
        data.name,
        data.example_shape()
    );
    ensure!(
        model.output_shape() == [data.classes],
        "model {}: output shape {:?} is not [{}] (one score per class of {})",
        a.model.display(),
        model.output_shape(),
        data.classes,
        data.name
    );
    let acc = with_threads(a.threads, || {
        evaluate(&model, &data.test_x, &data.test_y, 500)
    })??;
    let json = serde_json::json!({"accuracy": acc, "n": data.test_y.len(), "dataset": data.name});
    emit(a.out.as_deref(), &format!("{json}\n"))
}
