//! `mho tour [--out DIR]`: the main job on the embedded digits. Trains (or reuses) a CNN,
//! explains a few held-out images — prediction, integrated gradients, the top filters of
//! every layer by conductance, each layer's conservation against F(x) − F(x') under
//! gauss-legendre-50 and exact — measures completeness error against step count for every
//! rule, compares the paper's four methods by ablation, and writes PNG pictures and a
//! Markdown report into DIR.

use super::{check_writable, with_threads};
use crate::attribution::{attribute, ExactOptions, LayerSelection, Method, Report, Request};
use crate::data::{load_dataset, Dataset};
use crate::experiments::ablate::{ablate, AblateTo, Ablation, TargetChoice};
use crate::experiments::convergence::{convergence, Convergence};
use crate::experiments::stats::order_desc;
use crate::experiments::{argmax_rows, filter_layout, per_filter, take_rows, PathSettings};
use crate::nn::presets::Preset;
use crate::nn::{evaluate, train, Model, TrainEvent};
use crate::tensor::Tensor;
use crate::viz::{grid, overlay, with_colorbar, LinePlot};
use crate::{bail, Error, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `mho tour`.
#[derive(Debug, Args)]
pub struct TourArgs {
    /// Where pictures, the model and report.md go.
    #[arg(long, value_name = "DIR", default_value = "mho-tour")]
    pub out: PathBuf,
    /// Train a new model even if DIR holds one.
    #[arg(long)]
    pub retrain: bool,
    /// How many held-out images to explain.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10))]
    pub examples: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(what.to_string());
    pb
}

/// Loads the cached model or trains the digits preset, saving it in `dir`.
fn model_for(dir: &Path, data: &Dataset, retrain: bool) -> Result<Model<f32>> {
    let path = dir.join("digits-cnn.safetensors");
    if !retrain && path.is_file() {
        match Model::<f32>::load(&path) {
            Ok(m)
                if m.input_shape() == data.example_shape()
                    && m.output_shape() == [data.classes] =>
            {
                println!("reusing {}", path.display());
                return Ok(m);
            }
            _ => println!(
                "{} is not a digits model; training a new one",
                path.display()
            ),
        }
    }
    let preset = Preset::default_for("digits")?;
    let mut model = Model::<f32>::init(preset.architecture()?, preset.config.seed)?;
    let epochs = preset.config.epochs as u64;
    let pb = bar(epochs, "training");
    let t0 = Instant::now();
    let mut on_event = |ev: &TrainEvent| {
        if let TrainEvent::EpochEnd { .. } = ev {
            pb.inc(1);
        }
    };
    let history = train(&mut model, data, &preset.config, &mut on_event)?;
    pb.finish_and_clear();
    if let Some(TrainEvent::EpochEnd { accuracy, .. }) = history.last() {
        println!(
            "trained {} ({epochs} epochs, {:.1} s): held-out accuracy {:.2}%",
            preset.name,
            t0.elapsed().as_secs_f64(),
            accuracy * 100.0
        );
    }
    model.save(&path)?;
    Ok(model)
}

/// One held-out image of each of the first `k` classes met.
fn pick_examples(data: &Dataset, k: usize) -> Vec<usize> {
    let mut seen = vec![false; data.classes];
    let mut out = Vec::new();
    for (i, &y) in data.test_y.iter().enumerate() {
        if !seen[y] {
            seen[y] = true;
            out.push(i);
            if out.len() == k {
                break;
            }
        }
    }
    out
}

fn conductance(
    model: &Model<f32>,
    x: &Tensor<f32>,
    targets: &[usize],
    exact: bool,
) -> Result<Report> {
    let mut req = Request::new(Method::Conductance, targets[0]);
    req.targets = Some(targets.to_vec());
    // "input" first: its conductance is integrated gradients, from the same rows.
    let mut names = vec!["input".to_string()];
    names.extend(model.layer_names());
    req.layers = LayerSelection::Names(names);
    if exact {
        req.exact = Some(ExactOptions::default());
    }
    attribute(&model.cast::<f64>(), &x.cast(), &req)
}

fn write_png(canvas: &crate::viz::Canvas, dir: &Path, name: &str) -> Result<String> {
    canvas.save_png(dir.join(name))?;
    Ok(name.to_string())
}

/// Runs `mho tour`.
pub fn run(a: TourArgs) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out).map_err(|e| {
        Error::new(format!(
            "--out {}: cannot create the directory: {e}",
            a.out.display()
        ))
    })?;
    check_writable(&a.out.join("report.md"), "--out")?;
    with_threads(a.threads, || tour(&a))??;
    println!(
        "tour done in {:.1} s: open {}",
        t0.elapsed().as_secs_f64(),
        a.out.join("report.md").display()
    );
    Ok(())
}

fn tour(a: &TourArgs) -> Result<()> {
    let dir = &a.out;
    let data = load_dataset("digits", None)?;
    let model = model_for(dir, &data, a.retrain)?;
    let accuracy = evaluate(&model, &data.test_x, &data.test_y, 500)?;
    println!(
        "held-out accuracy: {:.2}% on {} images",
        accuracy * 100.0,
        data.test_y.len()
    );
    let picks = pick_examples(&data, a.examples as usize);
    let x = take_rows(&data.test_x, &picks)?;
    let predicted = argmax_rows(&model.forward(&x)?);
    let names = model.layer_names();
    let specs = &model.architecture().layers;
    let shapes = model.layer_shapes()?;

    let mut md = String::new();
    writeln!(md, "# mho tour: digits\n").ok();
    writeln!(
        md,
        "A CNN ({} layers) trained on mho's own tape on the embedded UCI 8×8 digits: **{:.2}%** held-out accuracy on {} images.\n",
        specs.len(),
        accuracy * 100.0,
        data.test_y.len()
    )
    .ok();
    writeln!(md, "| layer | type | output shape |\n|---|---|---|").ok();
    for (i, s) in specs.iter().enumerate() {
        writeln!(md, "| {} | {} | {:?} |", names[i], s.type_name(), shapes[i]).ok();
    }

    // Attributions: exact (IG + every layer's conductance) and gauss-legendre-50 for the table.
    let pb = bar(2, "attributing");
    let exact = conductance(&model, &x, &predicted, true)?;
    pb.inc(1);
    let gl = conductance(&model, &x, &predicted, false)?;
    pb.finish_and_clear();

    writeln!(md, "\n## Explaining {} held-out images\n", picks.len()).ok();
    writeln!(
        md,
        "F is the logit of the predicted class, the baseline x' the all-black image. Integrated gradients under the exact rule ({} linear pieces per path):\n",
        exact.pieces.as_ref().map(|p| format!("{p:?}")).unwrap_or_default()
    )
    .ok();
    let ig = exact
        .get("input")
        .ok_or_else(|| Error::new("tour: no input attributions"))?;
    let (h, w) = (data.example_shape()[1], data.example_shape()[2]);
    for (e, &i) in picks.iter().enumerate() {
        let img: Vec<f64> = x.data()[e * h * w..(e + 1) * h * w]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let att = &ig.data()[e * h * w..(e + 1) * h * w];
        let name = write_png(
            &overlay(&img, att, h, w, 24)?,
            dir,
            &format!("example{e}-ig.png"),
        )?;
        writeln!(
            md,
            "- image {i} (label {}), predicted **{}**, F(x) − F(x') = {:.4}, Σ IG = {:.4}: ![IG]({name})",
            data.test_y[i],
            predicted[e],
            exact.outputs_input[e] - exact.outputs_baseline[e],
            att.iter().sum::<f64>()
        )
        .ok();
    }

    writeln!(
        md,
        "\n## Conservation, layer by layer (image {})\n",
        picks[0]
    )
    .ok();
    writeln!(
        md,
        "Each layer's conductances summed, against F(x) − F(x') = {:.6}. Tangent form: every layer sums to the same total as integrated gradients under the same rule; the exact rule removes the quadrature error.\n",
        exact.outputs_input[0] - exact.outputs_baseline[0]
    )
    .ok();
    writeln!(md, "| layer | type | Σ conductance, gauss-legendre 50 | error | Σ conductance, exact | error |\n|---|---|---|---|---|---|").ok();
    let change = exact.outputs_input[0] - exact.outputs_baseline[0];
    for (i, name) in std::iter::once("input".to_string())
        .chain(names.iter().cloned())
        .enumerate()
    {
        let kind = if i == 0 {
            "input (IG)"
        } else {
            specs[i - 1].type_name()
        };
        let sum = |r: &Report| -> Result<f64> {
            let t = r
                .get(&name)
                .ok_or_else(|| Error::new(format!("tour: no layer {name}")))?;
            let per = t.len() / t.shape()[0];
            Ok(t.data()[..per].iter().sum())
        };
        let (g, ex) = (sum(&gl)?, sum(&exact)?);
        writeln!(
            md,
            "| {name} | {kind} | {g:.9} | {:.1e} | {ex:.12} | {:.1e} |",
            g - change,
            ex - change
        )
        .ok();
    }

    writeln!(md, "\n## Top filters by conductance (exact)\n").ok();
    for (li, shape) in shapes.iter().enumerate() {
        if shape.len() != 3 {
            continue;
        }
        let t = exact
            .get(&names[li])
            .ok_or_else(|| Error::new("tour: missing layer"))?;
        let scores = per_filter(t)?;
        let (c, per) = filter_layout(shape)?;
        let mut maps = Vec::new();
        for (e, s) in scores.iter().enumerate() {
            for &f in order_desc(s).iter().take(4) {
                let m = &t.data()[(e * c + f) * per..(e * c + f + 1) * per];
                maps.push((format!("img{e} f{f}"), m.to_vec()));
            }
        }
        let g = grid(&maps, shape[1], shape[2], 4, 12, true)?;
        let scale = maps
            .iter()
            .flat_map(|m| m.1.iter())
            .fold(0.0f64, |a, v| a.max(v.abs()));
        let name = write_png(
            &with_colorbar(&g, scale)?,
            dir,
            &format!("layer{}-top-filters.png", names[li]),
        )?;
        writeln!(
            md,
            "- layer {} ({}, {c} filters): the 4 filters with the highest conductance for each image (rows), spatial maps: ![layer {}]({name})",
            names[li],
            specs[li].type_name(),
            names[li]
        )
        .ok();
    }

    // Completeness error against steps.
    let steps = [1usize, 2, 4, 8, 16, 32, 64, 128, 256];
    let pb = bar((steps.len() * 5 + 1) as u64, "convergence");
    let conv = convergence(&model.cast::<f64>(), &x.cast(), &predicted, &steps, || {
        pb.inc(1)
    })?;
    pb.finish_and_clear();
    let plot_name = write_png(
        &convergence_plot(&conv, "digits CNN")?,
        dir,
        "completeness-vs-steps.png",
    )?;
    writeln!(md, "\n## Completeness error against step count\n").ok();
    writeln!(md, "|Σ IG − (F(x) − F(x'))| / |F(x) − F(x')|, worst of the {} images, f64. ![plot]({plot_name})\n", picks.len()).ok();
    writeln!(
        md,
        "| rule | steps to 1e-3 | steps to 1e-6 |\n|---|---|---|"
    )
    .ok();
    for c in &conv.curves {
        let fmt = |v: Option<usize>| v.map_or("> 256".into(), |s| s.to_string());
        writeln!(
            md,
            "| {} | {} | {} |",
            c.rule,
            fmt(conv.steps_to_reach(c.rule, 1e-3)),
            fmt(conv.steps_to_reach(c.rule, 1e-6))
        )
        .ok();
    }
    writeln!(
        md,
        "| exact | error {:.1e} with {:?} pieces ({:.3} s) | |",
        conv.exact_error, conv.exact_pieces, conv.exact_seconds
    )
    .ok();

    // Ablation comparison on the last feature-map layer.
    let layer = shapes
        .iter()
        .rposition(|s| s.len() == 3)
        .ok_or_else(|| Error::new("tour: no conv layer"))?;
    let n_abl = 100.min(data.test_y.len());
    let idx: Vec<usize> = (0..n_abl).collect();
    let xa = take_rows(&data.test_x, &idx)?;
    let pb = bar(1, "ablation");
    let abl = ablate(
        &model,
        &xa,
        &data.test_y[..n_abl],
        layer,
        TargetChoice::Predicted,
        AblateTo::Zero,
        filter_layout(&shapes[layer])?.0.min(20),
        &PathSettings::default(),
    )?;
    pb.finish_and_clear();
    let abl_name = write_png(&ablation_plot(&abl)?, dir, "ablation.png")?;
    write_ablation(&mut md, &abl, &abl_name);
    writeln!(
        md,
        "\nMore: `mho ablate`, `mho select` and docs/paper-reproduction.md; every number here is recomputed by `mho tour`."
    )
    .ok();
    crate::io::write_atomic(&dir.join("report.md"), md.as_bytes())?;
    println!("wrote {}", dir.display());
    if conv.exact_error > 1e-9 {
        bail!(
            "tour: the exact rule's completeness error {:.1e} exceeds 1e-9",
            conv.exact_error
        );
    }
    Ok(())
}

/// The completeness-error-against-steps plot of a convergence study.
pub fn convergence_plot(conv: &Convergence, model: &str) -> Result<crate::viz::Canvas> {
    let mut plot = LinePlot::new(format!("Completeness error vs steps ({model})"))
        .x_label("number of steps")
        .y_label("|sum IG - (F(x) - F(x'))| / |F(x) - F(x')|")
        .log_x(true)
        .log_y(true)
        .hline(1e-3, "1e-3")
        .hline(1e-6, "1e-6");
    for c in &conv.curves {
        let pts: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0 as f64, p.1)).collect();
        plot.add_series(c.rule.name(), &pts);
    }
    let exact = conv.exact_error.max(1e-17);
    plot.add_series("exact", &[(1.0, exact)]);
    plot.render(820, 500)
}

fn ablation_plot(abl: &Ablation) -> Result<crate::viz::Canvas> {
    let mut plot = LinePlot::new(format!("Removing the top-k filters of layer {}", abl.layer))
        .x_label("k (filters ablated, highest score first)")
        .y_label("mean fall of the target logit");
    for m in &abl.methods {
        let pts: Vec<(f64, f64)> = m
            .output_drop
            .iter()
            .enumerate()
            .map(|(k, &d)| ((k + 1) as f64, d))
            .collect();
        plot.add_series(m.method.name(), &pts);
    }
    plot.render(820, 460)
}

fn write_ablation(md: &mut String, abl: &Ablation, plot: &str) {
    writeln!(
        md,
        "\n## Which filters matter? Ablation of layer {} ({} filters, {} held-out images)\n",
        abl.layer, abl.filters, abl.examples
    )
    .ok();
    writeln!(md, "Each filter zeroed in turn; Spearman correlation of each method's filter scores with the fall of the predicted logit; then the k highest-scored filters removed together.\n").ok();
    let ks: Vec<usize> = [1usize, 5, 10, 20]
        .into_iter()
        .filter(|&k| k <= abl.methods[0].flip_rate.len())
        .collect();
    let head: Vec<String> = ks.iter().map(|k| format!("flips k={k}")).collect();
    writeln!(md, "| method | Spearman | {} |", head.join(" | ")).ok();
    writeln!(md, "|---|---|{}", "---|".repeat(ks.len())).ok();
    for m in &abl.methods {
        let flips: Vec<String> = ks
            .iter()
            .map(|&k| format!("{:.0}%", m.flip_rate[k - 1] * 100.0))
            .collect();
        writeln!(
            md,
            "| {} | {:.3} | {} |",
            m.method,
            m.spearman,
            flips.join(" | ")
        )
        .ok();
    }
    writeln!(md, "\n![ablation]({plot})").ok();
}
