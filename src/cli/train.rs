//! `mho train --dataset digits|fashion-mnist [--arch PRESET|ARCH.json] [--epochs E]
//! [--seed S] [--threads T] [--data DIR] --out M.safetensors`: trains on mho's own tape,
//! with a progress bar per epoch and one line per epoch (loss, held-out accuracy).

use super::{check_writable, with_threads};
use crate::data::load_dataset;
use crate::io::read_file;
use crate::nn::presets::Preset;
use crate::nn::{train, Architecture, Model, Optimizer, TrainConfig, TrainEvent};
use crate::{bail, Error, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The optimiser chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    /// Adam (β = 0.9, 0.999; ε = 1e-8).
    Adam,
    /// SGD with momentum (--momentum, default 0.9).
    Sgd,
}

/// Arguments of `mho train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The dataset: digits (embedded) or fashion-mnist.
    #[arg(long, value_name = "D")]
    pub dataset: String,
    /// A preset name (digits-cnn, digits-mlp, fashion-cnn, fashion-mlp) or an
    /// architecture JSON file (default: the dataset's CNN preset).
    #[arg(long, value_name = "PRESET|ARCH.json")]
    pub arch: Option<String>,
    /// Passes over the training set (default: the preset's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub epochs: Option<u64>,
    /// Seed of the initialisation and the shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores); the result does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Directory holding the Fashion-MNIST IDX files (default: Debian's install location).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Examples per minibatch (default: the preset's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: Option<u64>,
    /// The optimiser (default: the preset's, Adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum for --optimizer sgd.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Where to save the trained model (.safetensors).
    #[arg(long, value_name = "M.safetensors")]
    pub out: PathBuf,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// The architecture and training defaults for the arguments.
fn resolve(a: &TrainArgs, dataset: &str) -> Result<(Architecture, TrainConfig)> {
    let default = Preset::default_for(dataset)?;
    let (arch, mut cfg) = match &a.arch {
        None => (default.architecture()?, default.config),
        Some(name) => match Preset::by_name(name) {
            Some(p) => (p.architecture()?, p.config),
            None if name.ends_with(".json") || Path::new(name).exists() => {
                let path = Path::new(name);
                let bytes = read_file(path, "--arch")?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::new(format!("--arch {name}: not UTF-8 text")))?;
                let arch = Architecture::from_json(&text)
                    .map_err(|e| e.context(format_args!("--arch {name}")))?;
                (arch, default.config)
            }
            None => bail!(
                "--arch {name}: not a preset ({}) nor an architecture .json file",
                Preset::names()
            ),
        },
    };
    if let Some(e) = a.epochs {
        cfg.epochs = e as usize;
    }
    if let Some(b) = a.batch_size {
        cfg.batch_size = b as usize;
    }
    let lr = a.lr.unwrap_or(cfg.optimizer.lr());
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr {lr}: must be a positive number");
    }
    if !(a.momentum.is_finite() && (0.0..1.0).contains(&a.momentum)) {
        bail!("--momentum {}: must be in [0, 1)", a.momentum);
    }
    cfg.optimizer = match a.optimizer {
        None => cfg.optimizer.with_lr(lr),
        Some(OptimizerName::Adam) => Optimizer::adam(lr),
        Some(OptimizerName::Sgd) => Optimizer::sgd(lr, a.momentum),
    };
    cfg.seed = a.seed;
    Ok((arch, cfg))
}

/// Runs `mho train`.
pub fn run(a: TrainArgs) -> Result<()> {
    check_writable(&a.out, "--out")?;
    let data = load_dataset(&a.dataset, a.data.as_deref())?;
    let (arch, cfg) = resolve(&a, &data.name)?;
    let mut model = Model::<f32>::init(arch, cfg.seed)?;
    let quiet = a.quiet;
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let epochs = cfg.epochs;
    let mut on_event = |ev: &TrainEvent| match *ev {
        TrainEvent::EpochStart { epoch, batches } => {
            if !quiet {
                let pb = ProgressBar::with_draw_target(
                    Some(batches as u64),
                    ProgressDrawTarget::stderr(),
                );
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  {elapsed}",
                ) {
                    pb.set_style(style.progress_chars("=> "));
                }
                pb.set_prefix(format!("epoch {epoch}/{epochs}"));
                bar = Some(pb);
            }
        }
        TrainEvent::Batch { done, loss, .. } => {
            if let Some(pb) = &bar {
                pb.set_position(done as u64);
                if done % 10 == 0 {
                    pb.set_message(format!("loss {loss:.4}"));
                }
            }
        }
        TrainEvent::EpochEnd {
            epoch,
            loss,
            accuracy,
            seconds,
        } => {
            if let Some(pb) = bar.take() {
                pb.finish_and_clear();
            }
            if !quiet {
                println!(
                    "epoch {epoch}/{epochs}  loss {loss:.4}  held-out accuracy {:.2}%  ({seconds:.1} s)",
                    accuracy * 100.0
                );
            }
        }
    };
    let history = with_threads(a.threads, || train(&mut model, &data, &cfg, &mut on_event))??;
    model.save(&a.out)?;
    if !quiet {
        if let Some(TrainEvent::EpochEnd { accuracy, .. }) = history.last() {
            println!(
                "saved {} ({} held-out accuracy {:.2}%, {:.1} s)",
                a.out.display(),
                data.name,
                accuracy * 100.0,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
