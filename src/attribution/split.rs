//! Attribution of a batch with its examples shared out between threads: each share runs
//! its own sweep ([`attribute_examples`]) at once with the others, and their reports are
//! joined in example order. Each example's sums see the same rows in the same order as in
//! one sweep over the whole batch, so the results are the same bit for bit.

use super::methods::{attribute_examples, Request};
use super::report::Report;
use crate::nn::Model;
use crate::tensor::Tensor;
use crate::{ensure, Result};
use mho_kernels::Float;

/// [`attribute_examples`] on `parts` shares of the examples at once, each with a chunk
/// budget of `budget` bytes: the examples split in two in proportion to `parts`, both
/// halves run at once (rayon::join, split again while parts remain), their reports
/// joined in example order.
pub(super) fn attribute_split<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    baseline: &Tensor<T>,
    targets: &[usize],
    req: &Request,
    parts: usize,
    budget: usize,
) -> Result<Report> {
    let n = x.shape()[0];
    let left_parts = parts / 2;
    let h = (n * left_parts / parts).clamp(1, n - 1);
    let run = |rows: std::ops::Range<usize>, parts: usize| -> Result<Report> {
        let (x, baseline) = (x.rows(rows.clone())?, baseline.rows(rows.clone())?);
        let targets = &targets[rows];
        if parts < 2 || x.shape()[0] < 2 {
            attribute_examples(model, &x, &baseline, targets, req, budget, false)
        } else {
            attribute_split(model, &x, &baseline, targets, req, parts, budget)
        }
    };
    let (a, b) = rayon::join(|| run(0..h, left_parts), || run(h..n, parts - left_parts));
    join_reports(a?, b?)
}

/// The report of examples `a` then examples `b` from the reports of each.
fn join_reports(a: Report, b: Report) -> Result<Report> {
    ensure!(
        a.attributions.len() == b.attributions.len() && a.delta.len() == b.delta.len(),
        "attribution: split reports do not match"
    );
    let attributions = a
        .attributions
        .iter()
        .zip(&b.attributions)
        .map(|((name, ta), (_, tb))| Ok((name.clone(), Tensor::concat_rows(&[ta, tb])?)))
        .collect::<Result<Vec<_>>>()?;
    let delta = a
        .delta
        .iter()
        .zip(&b.delta)
        .map(|((name, da), (_, db))| (name.clone(), [&da[..], &db[..]].concat()))
        .collect();
    let pieces = match (&a.pieces, &b.pieces) {
        (Some(pa), Some(pb)) => Some([&pa[..], &pb[..]].concat()),
        _ => None,
    };
    Ok(Report {
        outputs_input: [a.outputs_input, b.outputs_input].concat(),
        outputs_baseline: [a.outputs_baseline, b.outputs_baseline].concat(),
        attributions,
        delta,
        pieces,
        gradient_evaluations: a.gradient_evaluations + b.gradient_evaluations,
        ..a
    })
}
