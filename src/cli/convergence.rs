//! `mho convergence --model M --input X.npy [--target T] --out DIR`: completeness error of
//! integrated gradients against step count for every quadrature rule, beside the exact rule,
//! in f64: `convergence.json`, `completeness-vs-steps.png` and `convergence.md` (a table).

use super::with_threads;
use crate::experiments::argmax_rows;
use crate::experiments::convergence::convergence;
use crate::io::{read_input, write_atomic};
use crate::nn::Model;
use crate::{Error, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `mho convergence`.
#[derive(Debug, Args)]
pub struct ConvergenceArgs {
    /// The model file.
    #[arg(long, value_name = "M")]
    pub model: PathBuf,
    /// The inputs (.npy, [N, ...input_shape] or one example).
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// The output to explain (default: each example's predicted class).
    #[arg(long, value_name = "T")]
    pub target: Option<usize>,
    /// Step counts, comma-separated.
    #[arg(long, default_value = "1,2,4,8,16,32,64,128,256,512,1024")]
    pub steps: String,
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `mho convergence`.
pub fn run(a: ConvergenceArgs) -> Result<()> {
    let steps = a
        .steps
        .split(',')
        .map(|s| s.trim().parse::<usize>().ok().filter(|&n| n >= 1))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::new(format!(
                "--steps: '{}' is not a comma-separated list of counts ≥ 1",
                a.steps
            ))
        })?;
    std::fs::create_dir_all(&a.out).map_err(|e| {
        Error::new(format!(
            "--out {}: cannot create the directory: {e}",
            a.out.display()
        ))
    })?;
    let model = Model::<f64>::load(&a.model)?;
    let x = read_input::<f64>(&a.input, model.input_shape(), false)?;
    let targets = match a.target {
        Some(t) => vec![t; x.shape()[0]],
        None => argmax_rows(&model.forward(&x)?),
    };
    let conv = with_threads(a.threads, || {
        convergence(&model, &x, &targets, &steps, || {})
    })??;
    write_atomic(
        &a.out.join("convergence.json"),
        format!("{}\n", conv.to_json()).as_bytes(),
    )?;
    super::tour::convergence_plot(&conv, &format!("{}", a.model.display()))?
        .save_png(a.out.join("completeness-vs-steps.png"))?;
    let mut md = String::new();
    writeln!(
        md,
        "| rule | {} |",
        steps
            .iter()
            .map(|s| format!("n={s}"))
            .collect::<Vec<_>>()
            .join(" | ")
    )
    .ok();
    writeln!(md, "|---|{}", "---|".repeat(steps.len())).ok();
    for c in &conv.curves {
        let cells: Vec<String> = steps
            .iter()
            .map(|s| {
                c.points
                    .iter()
                    .find(|p| p.0 == *s)
                    .map_or("—".into(), |p| format!("{:.1e}", p.1))
            })
            .collect();
        writeln!(md, "| {} | {} |", c.rule, cells.join(" | ")).ok();
    }
    writeln!(
        md,
        "\n| rule | steps to 1e-3 | steps to 1e-6 | time at that n (s) |\n|---|---|---|---|"
    )
    .ok();
    for c in &conv.curves {
        let at = |tol: f64| conv.steps_to_reach(c.rule, tol);
        let time = at(1e-6)
            .or(at(1e-3))
            .and_then(|n| c.points.iter().find(|p| p.0 == n))
            .map_or("—".into(), |p| format!("{:.3}", p.2));
        let f = |v: Option<usize>| {
            v.map_or(format!("> {}", steps.last().copied().unwrap_or(0)), |n| {
                n.to_string()
            })
        };
        writeln!(
            md,
            "| {} | {} | {} | {time} |",
            c.rule,
            f(at(1e-3)),
            f(at(1e-6))
        )
        .ok();
    }
    writeln!(
        md,
        "| exact | error {:.1e} | pieces per example {:?} | {:.3} |",
        conv.exact_error, conv.exact_pieces, conv.exact_seconds
    )
    .ok();
    write_atomic(&a.out.join("convergence.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}
