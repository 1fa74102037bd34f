//! `mho ablate` and `mho select`: the paper's two comparisons of conductance with
//! activation, gradient×activation and internal influence, on a model and a dataset.

use super::{check_writable, emit, with_threads};
use crate::attribution::Rule;
use crate::data::{load_dataset, Dataset};
use crate::experiments::ablate::{ablate, AblateTo, TargetChoice};
use crate::experiments::select::{select, SelectConfig, Task};
use crate::experiments::{filter_layout, parse_layer, take_rows, PathSettings};
use crate::nn::Model;
use crate::{bail, ensure, Error, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Options shared by both experiments.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The model file.
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The dataset: digits or fashion-mnist.
    #[arg(long, value_name = "D")]
    pub dataset: String,
    /// Directory holding the Fashion-MNIST IDX files (default: Debian's install location).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Quadrature rule for conductance and internal influence (or "exact").
    #[arg(long, default_value = "gauss-legendre")]
    pub rule: String,
    /// Quadrature steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Where to write the JSON (stdout when omitted).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl CommonArgs {
    fn path(&self) -> Result<PathSettings> {
        if self.rule == "exact" {
            return Ok(PathSettings {
                exact: true,
                ..PathSettings::default()
            });
        }
        let rule: Rule = self.rule.parse()?;
        rule.nodes_weights(self.steps)?;
        Ok(PathSettings {
            rule,
            steps: self.steps,
            exact: false,
        })
    }

    fn load(&self) -> Result<(Model<f32>, Dataset)> {
        if let Some(out) = &self.out {
            check_writable(out, "--out")?;
        }
        let model = Model::<f32>::load(&self.model)?;
        let data = load_dataset(&self.dataset, self.data.as_deref())?;
        check_fits(&model, &data, &self.model)?;
        Ok((model, data))
    }
}

/// Checks that a model takes the dataset's images and scores its classes.
pub fn check_fits(model: &Model<f32>, data: &Dataset, path: &Path) -> Result<()> {
    ensure!(
        model.input_shape() == data.example_shape() && model.output_shape() == [data.classes],
        "model {}: takes {:?} and gives {:?}, but {} has images {:?} and {} classes",
        path.display(),
        model.input_shape(),
        model.output_shape(),
        data.name,
        data.example_shape(),
        data.classes
    );
    Ok(())
}

/// Which output `ablate` explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// The predicted class.
    Predicted,
    /// The true label.
    True,
}

/// What an ablated filter becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AblateToArg {
    /// Zero.
    Zero,
    /// Its value at the all-zero input.
    Baseline,
}

/// Arguments of `mho ablate`.
#[derive(Debug, Args)]
pub struct AblateArgs {
    /// Model, dataset and integration options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The layer whose filters are ablated ("0", "1", …).
    #[arg(long, value_name = "L")]
    pub layer: String,
    /// The number of held-out examples (the first N).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub examples: usize,
    /// Explain the predicted class or the true label.
    #[arg(long, value_enum, default_value = "predicted")]
    pub target: TargetArg,
    /// Set ablated filters to zero or to their value at the baseline.
    #[arg(long, value_enum, default_value = "zero")]
    pub ablate_to: AblateToArg,
    /// The largest k of the top-k curve (default: 20, or the filter count if smaller).
    #[arg(long, value_name = "K")]
    pub max_k: Option<usize>,
}

/// Runs `mho ablate`.
pub fn run_ablate(a: AblateArgs) -> Result<()> {
    let (model, data) = a.common.load()?;
    let layer = parse_layer(&model, &a.layer)?;
    let (filters, _) = filter_layout(&model.layer_shapes()?[layer])?;
    let max_k = a.max_k.unwrap_or(filters.min(20));
    ensure!(max_k >= 1, "--max-k: must be at least 1");
    ensure!(a.examples >= 1, "--examples: must be at least 1");
    if a.examples > data.test_y.len() {
        bail!(
            "--examples: {} asked for, {} has {} held-out examples",
            a.examples,
            data.name,
            data.test_y.len()
        );
    }
    let path = a.common.path()?;
    let idx: Vec<usize> = (0..a.examples).collect();
    let x = take_rows(&data.test_x, &idx)?;
    let labels = data.test_y[..a.examples].to_vec();
    let target = match a.target {
        TargetArg::Predicted => TargetChoice::Predicted,
        TargetArg::True => TargetChoice::True,
    };
    let to = match a.ablate_to {
        AblateToArg::Zero => AblateTo::Zero,
        AblateToArg::Baseline => AblateTo::Baseline,
    };
    let result = with_threads(a.common.threads, || {
        ablate(&model, &x, &labels, layer, target, to, max_k, &path)
    })??;
    emit(
        a.common.out.as_deref(),
        &format!("{}\n", result.to_json(target, to)),
    )
}

/// Arguments of `mho select`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Model, dataset and integration options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The layer whose filters are ranked (default: the last layer with a [C, …] feature map).
    #[arg(long, value_name = "L")]
    pub layer: Option<String>,
    /// "group:C1,C2,…" (these classes against the rest) or "random" (a random half).
    #[arg(long, value_name = "TASK")]
    pub task: String,
    /// Partitions to average over (default: 1 for a group, 10 for random).
    #[arg(long, value_name = "R")]
    pub repeats: Option<usize>,
    /// Filter counts, comma-separated.
    #[arg(long, value_name = "K,K,…", default_value = "5,10,15,20")]
    pub k: String,
    /// At most this many positive training examples score the filters.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub score_examples: usize,
    /// Seed for random partitions and the scoring sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_task(s: &str) -> Result<Task> {
    if s == "random" {
        return Ok(Task::Random);
    }
    let Some(list) = s.strip_prefix("group:") else {
        bail!("--task: '{s}' is neither group:C1,C2,… nor random");
    };
    let classes = list
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| {
            Error::new(format!(
                "--task: '{list}' is not a comma-separated list of class indices"
            ))
        })?;
    Ok(Task::Group(classes))
}

/// The default layer for feature selection: the last one whose output is a feature map.
fn default_layer(model: &Model<f32>) -> Result<usize> {
    let shapes = model.layer_shapes()?;
    match shapes.iter().rposition(|s| s.len() >= 2) {
        Some(i) => Ok(i),
        None => bail!("--layer: the model has no convolutional feature map; name a layer"),
    }
}

/// Runs `mho select`.
pub fn run_select(a: SelectArgs) -> Result<()> {
    let (model, data) = a.common.load()?;
    let layer = match &a.layer {
        Some(l) => parse_layer(&model, l)?,
        None => default_layer(&model)?,
    };
    let task = parse_task(&a.task)?;
    let ks =
        a.k.split(',')
            .map(|k| k.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::new(format!(
                    "--k: '{}' is not a comma-separated list of counts",
                    a.k
                ))
            })?;
    let repeats = a
        .repeats
        .unwrap_or(if task == Task::Random { 10 } else { 1 });
    let cfg = SelectConfig {
        layer,
        task,
        repeats,
        ks,
        score_examples: a.score_examples,
        seed: a.seed,
        path: a.common.path()?,
    };
    ensure!(
        cfg.score_examples >= 1,
        "--score-examples: must be at least 1"
    );
    let result = with_threads(a.common.threads, || select(&model, &data, &cfg))??;
    emit(a.common.out.as_deref(), &format!("{}\n", result.to_json()))
}
