//! The `mho` command line: one file per subcommand, parsed with clap. Every error is one
//! line `error: …` on stderr with a non-zero exit code; output files are written
//! atomically (temporary file + rename), so a failed run leaves none half-written.

pub mod attribute;
pub mod convergence;
pub mod eval;
pub mod experiment;
pub mod predict;
pub mod tour;
pub mod train;

use crate::io::write_atomic;
use crate::{Error, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::Path;

/// mho: autodiff and neural networks with neuron attribution built in.
#[derive(Debug, Parser)]
#[command(name = "mho", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on inputs from a .npy file and print its outputs as JSON.
    Predict(predict::PredictArgs),
    /// Train a model on a dataset with mho's own tape and save it.
    Train(train::TrainArgs),
    /// Held-out accuracy of a model on a dataset.
    Eval(eval::EvalArgs),
    /// Attribute a model's output to its inputs and hidden units (integrated gradients,
    /// conductance of every layer, …) as JSON.
    Attribute(attribute::AttributeArgs),
    /// Ablate each filter of a layer and compare the methods' rankings with the effects.
    Ablate(experiment::AblateArgs),
    /// Feature selection: rank filters by each method, train on the top k, report accuracy.
    Select(experiment::SelectArgs),
    /// The tour: train (or reuse) a digits CNN, explain held-out images, check conservation,
    /// compare the methods by ablation, and write pictures and a report.
    Tour(tour::TourArgs),
    /// Completeness error of integrated gradients against step count for every rule, beside exact.
    Convergence(convergence::ConvergenceArgs),
}

/// Runs one parsed command.
pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Predict(a) => predict::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Attribute(a) => attribute::run(a),
        Command::Ablate(a) => experiment::run_ablate(a),
        Command::Select(a) => experiment::run_select(a),
        Command::Tour(a) => tour::run(a),
        Command::Convergence(a) => convergence::run(a),
    }
}

/// Exit code for errors in the input, files or arguments.
pub const EXIT_ERROR: i32 = 1;
/// Exit code for command-line usage errors (clap's convention).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for internal errors (a panic caught at the top).
pub const EXIT_INTERNAL: i32 = 70;

/// The program: parses `std::env::args`, runs the command, prints `error: …` (one line)
/// on failure, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    EXIT_USAGE
                } else {
                    0
                };
            }
            // clap's message spans several lines (tips, usage): keep the first.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see mho --help)");
            return EXIT_USAGE;
        }
    };
    // A panic is a bug; report it on one line rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (a bug in mho): {}{loc}",
            msg.replace('\n', " ")
        );
    }));
    match std::panic::catch_unwind(|| run(cli.command)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {}", e.0.replace('\n', " "));
            EXIT_ERROR
        }
        Err(_) => EXIT_INTERNAL,
    }
}

/// Writes `text` to `out` atomically, or to stdout when `out` is `None`.
pub fn emit(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(p) => write_atomic(p, text.as_bytes()),
        None => {
            let mut so = std::io::stdout().lock();
            so.write_all(text.as_bytes())
                .and_then(|_| so.flush())
                .map_err(|e| Error::new(format!("cannot write to stdout: {e}")))
        }
    }
}

/// Checks that an output file can be created (its directory exists, it is not a
/// directory) before doing the work that produces it.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    if path.is_dir() {
        return Err(Error::new(format!(
            "{what} {}: is a directory",
            path.display()
        )));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::new(format!(
            "{what} {}: directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// Sets up a rayon pool with `threads` threads (all cores when `None`) and runs `f` in it.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None => Ok(f()),
        Some(0) => Err(Error::new("--threads: must be at least 1")),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::new(format!("--threads {n}: {e}")))?;
            Ok(pool.install(f))
        }
    }
}
