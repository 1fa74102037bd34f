//! Pictures of attribution reports: input attributions over the input image, and a layer's
//! attributions as a grid of its channels.

use super::{grid, overlay, with_colorbar, Canvas, WHITE};
use crate::attribution::Report;
use crate::tensor::Tensor;
use crate::{bail, Result};

/// At most this many channels per example are drawn in a layer grid.
const MAX_CHANNELS: usize = 16;

/// Stacks canvases vertically.
fn stack(parts: &[Canvas]) -> Result<Canvas> {
    let w = parts.iter().map(|c| c.width).max().unwrap_or(1);
    let h = parts.iter().map(|c| c.height).sum::<usize>().max(1);
    let mut out = Canvas::new(w, h, WHITE)?;
    let mut y = 0;
    for p in parts {
        out.blit(p, 0, y as i64);
        y += p.height;
    }
    Ok(out)
}

/// A picture of attributions `t` ([N, ...]): input-shaped ones ([N, C, H, W] like `x`) as
/// the image beside its channel-summed heatmap, one row per example; layer ones as a grid
/// of channel maps (rows: examples; at most 16 channels each), on one symmetric scale.
pub fn attribution_picture(t: &Tensor<f64>, x: &Tensor<f64>) -> Result<Canvas> {
    let n = t.shape()[0];
    let shape = &t.shape()[1..];
    if t.shape() == x.shape() && shape.len() == 3 {
        let (c, h, w) = (shape[0], shape[1], shape[2]);
        let scale = (256 / h.max(w)).clamp(2, 32);
        let per = c * h * w;
        let mut rows = Vec::with_capacity(n);
        for e in 0..n {
            let xs = &x.data()[e * per..(e + 1) * per];
            let ts = &t.data()[e * per..(e + 1) * per];
            let mut img = vec![0.0; h * w];
            let mut att = vec![0.0; h * w];
            for ch in 0..c {
                for i in 0..h * w {
                    img[i] += xs[ch * h * w + i] / c as f64;
                    att[i] += ts[ch * h * w + i];
                }
            }
            let (lo, hi) = img
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = if hi > lo { hi - lo } else { 1.0 };
            img.iter_mut().for_each(|v| *v = (*v - lo) / span);
            rows.push(overlay(&img, &att, h, w, scale)?);
        }
        return stack(&rows);
    }
    let (c, h, w) = match shape.len() {
        3 => (shape[0], shape[1], shape[2]),
        2 => (shape[0], 1, shape[1]),
        1 => (1, 1, shape[0]),
        _ => bail!(
            "--heatmap: cannot draw attributions of shape {:?}",
            t.shape()
        ),
    };
    let shown = c.min(MAX_CHANNELS);
    let per = c * h * w;
    let mut maps = Vec::with_capacity(n * shown);
    for e in 0..n {
        for ch in 0..shown {
            let start = e * per + ch * h * w;
            maps.push((
                format!("ex{e} c{ch}"),
                t.data()[start..start + h * w].to_vec(),
            ));
        }
    }
    let scale = (96 / h.max(w)).clamp(1, 24).max(if w > 64 { 1 } else { 4 });
    let g = grid(&maps, h, w, shown, scale, true)?;
    let max = maps
        .iter()
        .flat_map(|m| m.1.iter())
        .fold(0.0f64, |a, v| a.max(v.abs()));
    with_colorbar(&g, max)
}

/// Writes one PNG per attribution entry of `report`: to `path` when there is one entry, else
/// to `path` with `-NAME` before the extension for each. Returns the paths written.
pub fn save_report_pictures(
    report: &Report,
    x: &Tensor<f64>,
    path: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for (name, t) in &report.attributions {
        let target = if report.attributions.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let safe: String = name
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            path.with_file_name(format!("{stem}-{safe}.png"))
        };
        attribution_picture(t, x)?.save_png(&target)?;
        written.push(target);
    }
    Ok(written)
}
