//! `mho attribute`: integrated gradients, conductance of every layer, neuron conductance,
//! internal influence, activation and gradient×activation, as JSON (a contract other
//! tools depend on: extend it, don't change it).

use super::predict::Precision;
use super::{check_writable, emit, with_threads};
use crate::attribution::{
    attribute, Baseline, ConductanceForm, ExactOptions, LayerSelection, Method, Request, Rule,
};
use crate::io::{read_input, read_npy};
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{bail, Error, Float, Result};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `mho attribute`.
#[derive(Debug, Args)]
pub struct AttributeArgs {
    /// The model file (.safetensors with an mho architecture).
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The inputs: a .npy array shaped like the model's input, or [N, ...] of it.
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// The index of the model output F to explain.
    #[arg(long, value_name = "T")]
    pub target: usize,
    /// integrated-gradients, conductance, neuron-conductance, internal-influence, activation
    /// or gradient-x-activation.
    #[arg(long, value_name = "METHOD")]
    pub method: String,
    /// A layer to report ("0", "1", …, or "input"); repeatable; "all" (the default) for every layer.
    #[arg(long, value_name = "NAME")]
    pub layer: Vec<String>,
    /// A unit of the layer for neuron-conductance, as indices without the batch axis ("3,1,2"); repeatable.
    #[arg(long, value_name = "I,J,K")]
    pub neuron: Vec<String>,
    /// The baseline x': "zeros", a constant, or a .npy shaped like the input or one example.
    #[arg(long, value_name = "zeros|VALUE|B.npy", default_value = "zeros")]
    pub baseline: String,
    /// riemann-left, riemann-right, riemann-middle, riemann-trapezoid, gauss-legendre, or exact.
    #[arg(long, value_name = "RULE", default_value = "gauss-legendre")]
    pub rule: String,
    /// Quadrature steps.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub steps: usize,
    /// tangent (conserves exactly at any step count) or difference (Captum's LayerConductance).
    #[arg(long, value_name = "FORM", default_value = "tangent")]
    pub conductance_form: String,
    /// The float type to compute in (f64 promotes weights and inputs).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Path steps per batched pass (memory is bounded by this, not by --steps); default:
    /// the fewest even passes that hold at most 128 MiB of layer values in all, shared
    /// between the passes that run at once on different threads (unless one step alone
    /// holds more).
    #[arg(long, value_name = "K")]
    pub batch_steps: Option<usize>,
    /// Relative tolerance of the exact rule on smooth pieces.
    #[arg(long, value_name = "TOL", default_value_t = 1e-10)]
    pub tolerance: f64,
    /// The most linear pieces one example's path may have under the exact rule.
    #[arg(long, value_name = "P", default_value_t = 100_000)]
    pub max_pieces: usize,
    /// Where to write the JSON (stdout when omitted).
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Also draw the attributions as a PNG: input attributions over the input image, a
    /// layer's as a grid of its channels (one file per reported name, `FILE-NAME.png`, when
    /// there are several).
    #[arg(long, value_name = "FILE.png")]
    pub heatmap: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_neuron(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            Error::new(format!(
                "--neuron: '{s}' is not a comma-separated list of indices"
            ))
        })
}

fn parse_baseline(s: &str) -> Result<Baseline> {
    if s == "zeros" {
        return Ok(Baseline::Zeros);
    }
    if let Ok(v) = s.parse::<f64>() {
        if !v.is_finite() {
            bail!("--baseline: {s} is not a finite number");
        }
        return Ok(Baseline::Constant(v));
    }
    let t: Tensor<f64> = read_npy(std::path::Path::new(s)).map_err(|e| e.context("--baseline"))?;
    if let Some(i) = t.first_non_finite() {
        bail!("--baseline {s}: element {i} is not finite");
    }
    Ok(Baseline::Tensor(t))
}

/// Builds the request from the arguments (everything but the model and input).
pub fn request(a: &AttributeArgs) -> Result<Request> {
    let method: Method = a.method.parse()?;
    let mut req = Request::new(method, a.target);
    req.layers = if a.layer.is_empty() || a.layer.iter().any(|l| l == "all") {
        if a.layer.len() > 1 {
            bail!("--layer: 'all' cannot be combined with other layers");
        }
        LayerSelection::All
    } else {
        LayerSelection::Names(a.layer.clone())
    };
    if method == Method::NeuronConductance && req.layers == LayerSelection::All {
        bail!("--layer: neuron-conductance needs one --layer NAME");
    }
    if method != Method::NeuronConductance && !a.neuron.is_empty() {
        bail!("--neuron: only neuron-conductance takes neurons");
    }
    req.neurons = a
        .neuron
        .iter()
        .map(|s| parse_neuron(s))
        .collect::<Result<_>>()?;
    req.baseline = parse_baseline(&a.baseline)?;
    req.form = a.conductance_form.parse::<ConductanceForm>()?;
    if a.steps < 1 {
        bail!("--steps: must be at least 1");
    }
    req.steps = a.steps;
    req.batch_steps = a.batch_steps.unwrap_or(0);
    if a.batch_steps == Some(0) {
        bail!("--batch-steps: must be at least 1");
    }
    if a.rule == "exact" {
        if !(a.tolerance > 0.0 && a.tolerance < 1.0) {
            bail!("--tolerance: must be in (0, 1), got {}", a.tolerance);
        }
        req.exact = Some(ExactOptions {
            tolerance: a.tolerance,
            max_pieces: a.max_pieces,
            ..ExactOptions::default()
        });
    } else {
        req.rule = a.rule.parse::<Rule>()?;
        req.rule.nodes_weights(a.steps)?;
    }
    Ok(req)
}

fn run_typed<T: Float>(a: &AttributeArgs, req: &Request) -> Result<String> {
    let model = Model::<T>::load(&a.model)?;
    if model.takes_tokens() {
        bail!(
            "--model {}: its input is token indices (Embedding), which have no straight path to attribute along",
            a.model.display()
        );
    }
    let x: Tensor<T> = read_input(&a.input, model.input_shape(), false)?;
    let report = attribute(&model, &x, req)?;
    // One request per process: free the recycled tape buffers (kept by the pool threads
    // the sweep ran on) before building the JSON.
    crate::buffers::release_everywhere();
    if let Some(path) = &a.heatmap {
        crate::viz::save_report_pictures(&report, &x.cast(), path)?;
    }
    let mut s = report.to_json().to_string();
    s.push('\n');
    Ok(s)
}

/// Runs `mho attribute`.
pub fn run(a: AttributeArgs) -> Result<()> {
    if let Some(out) = &a.out {
        check_writable(out, "--out")?;
    }
    if let Some(png) = &a.heatmap {
        check_writable(png, "--heatmap")?;
    }
    let req = request(&a)?;
    let text = with_threads(a.threads, || match a.precision {
        Precision::F32 => run_typed::<f32>(&a, &req),
        Precision::F64 => run_typed::<f64>(&a, &req),
    })??;
    emit(a.out.as_deref(), &text)
}
