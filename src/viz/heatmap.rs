//! Attribution heatmaps: one map, an input image beside its map, a labelled grid of
//! maps, and a colour bar.

use super::colormap::{diverging, grey, max_abs};
use super::image::{check_size, to_i64, Canvas, Rgb, WHITE};
use super::text::{text_width, truncate, GLYPH_SIZE};
use crate::{ensure, Result};

/// Colour of the separator between panels and of the frame around each map in a grid.
const FRAME: Rgb = [190, 190, 190];
/// Colour of labels.
const INK: Rgb = [40, 40, 40];

fn check_map(what: &str, values: &[f64], h: usize, w: usize, scale: usize) -> Result<()> {
    ensure!(
        h > 0 && w > 0 && scale > 0,
        "{what}: height {h}, width {w} and scale {scale} must be positive"
    );
    ensure!(
        h.checked_mul(w) == Some(values.len()),
        "{what}: {} values do not fill a {h}x{w} map",
        values.len()
    );
    let (ph, pw) = (h.checked_mul(scale), w.checked_mul(scale));
    match (ph, pw) {
        (Some(ph), Some(pw)) => check_size(pw, ph),
        _ => check_size(usize::MAX, usize::MAX),
    }
    .map_err(|e| e.context(what))
}

/// Paints the `h`×`w` row-major `values` at `(x0, y0)`, each cell `scale`×`scale`.
fn paint(
    canvas: &mut Canvas,
    x0: i64,
    y0: i64,
    (h, w, scale): (usize, usize, usize),
    values: &[f64],
    color: impl Fn(f64) -> Rgb,
) {
    for (i, &v) in values.iter().enumerate().take(h * w) {
        let (r, c) = (i / w, i % w);
        canvas.fill_rect(
            x0 + to_i64(c * scale),
            y0 + to_i64(r * scale),
            scale,
            scale,
            color(v),
        );
    }
}

/// A heatmap of the `h`×`w` row-major `values`, each cell `scale`×`scale` pixels, on the
/// diverging map with the symmetric scale `max |v|` (an all-zero map is white).
///
/// Errors if `values.len() != h * w`, a size is zero, or the image would be too large.
pub fn heatmap_png(values: &[f64], h: usize, w: usize, scale: usize) -> Result<Canvas> {
    check_map("heatmap", values, h, w, scale)?;
    let mut canvas = Canvas::new(w * scale, h * scale, WHITE)?;
    let s = max_abs(values);
    paint(&mut canvas, 0, 0, (h, w, scale), values, |v| {
        diverging(v, s)
    });
    Ok(canvas)
}

/// The input `image` (grey, values in `[0, 1]`) on the left and the heatmap of its
/// `attributions` on the right, separated by a 1-pixel grey line; both `h`×`w`, each
/// cell `scale`×`scale` pixels.
pub fn overlay(
    image: &[f64],
    attributions: &[f64],
    h: usize,
    w: usize,
    scale: usize,
) -> Result<Canvas> {
    check_map("overlay image", image, h, w, scale)?;
    check_map("overlay attributions", attributions, h, w, scale)?;
    let pw = w * scale;
    let mut canvas = Canvas::new(2 * pw + 1, h * scale, WHITE)?;
    paint(&mut canvas, 0, 0, (h, w, scale), image, grey);
    canvas.fill_rect(to_i64(pw), 0, 1, h * scale, FRAME);
    let s = max_abs(attributions);
    paint(
        &mut canvas,
        to_i64(pw + 1),
        0,
        (h, w, scale),
        attributions,
        |v| diverging(v, s),
    );
    Ok(canvas)
}

/// A grid of labelled heatmaps, `cols` per row, each `h`×`w` cells of `scale`×`scale`
/// pixels in a thin grey frame with its label (cut to fit, ending in `..`) above it.
///
/// With `shared_scale` every map uses the colour scale `max |v|` over all maps (so
/// colours compare across maps: the channels of one layer); otherwise each map uses its
/// own. Errors if there are no maps, `cols` is 0, a map's length is not `h * w`, or the
/// image would be too large.
pub fn grid(
    maps: &[(String, Vec<f64>)],
    h: usize,
    w: usize,
    cols: usize,
    scale: usize,
    shared_scale: bool,
) -> Result<Canvas> {
    ensure!(!maps.is_empty(), "heatmap grid: no maps");
    ensure!(cols > 0, "heatmap grid: cols must be positive");
    for (label, values) in maps {
        check_map(&format!("heatmap grid map {label:?}"), values, h, w, scale)?;
    }
    let cols = cols.min(maps.len());
    let rows = maps.len().div_ceil(cols);
    let (mw, mh) = (w * scale, h * scale);
    let longest = maps
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    // A column fits the map and up to 16 characters of label (more if the map is wider).
    let label_chars = longest.min((mw / GLYPH_SIZE).max(16));
    let cw = mw.max(label_chars * GLYPH_SIZE) + 2;
    let label_h = if longest > 0 { GLYPH_SIZE + 4 } else { 0 };
    let ch = label_h + mh + 2;
    let pad = 10;
    let width = cols.saturating_mul(cw + pad).saturating_add(pad);
    let height = rows.saturating_mul(ch + pad).saturating_add(pad);
    let mut canvas = Canvas::new(width, height, WHITE).map_err(|e| e.context("heatmap grid"))?;
    let global = if shared_scale {
        maps.iter().map(|(_, v)| max_abs(v)).fold(0.0, f64::max)
    } else {
        0.0
    };
    for (i, (label, values)) in maps.iter().enumerate() {
        let x0 = to_i64(pad + (i % cols) * (cw + pad));
        let y0 = to_i64(pad + (i / cols) * (ch + pad));
        let label = truncate(label, label_chars);
        let lx = x0 + (to_i64(cw) - to_i64(text_width(&label, 1))) / 2;
        canvas.draw_text(lx, y0, &label, INK, 1);
        let mx = x0 + (to_i64(cw) - to_i64(mw + 2)) / 2;
        let my = y0 + to_i64(label_h);
        canvas.draw_rect(mx, my, mw + 2, mh + 2, FRAME);
        let s = if shared_scale {
            global
        } else {
            max_abs(values)
        };
        paint(&mut canvas, mx + 1, my + 1, (h, w, scale), values, |v| {
            diverging(v, s)
        });
    }
    Ok(canvas)
}

/// Formats a colour-bar end value with 3 significant digits.
pub(crate) fn fmt_value(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let decimals = (2 - a.log10().floor() as i64).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.2e}")
    }
}

/// A horizontal colour bar `width` pixels wide for the diverging scale
/// `[-max_abs, max_abs]`, labelled `-max`, `0` and `+max` below it.
pub fn colorbar(max_abs: f64, width: usize) -> Result<Canvas> {
    let m = if max_abs.is_finite() {
        max_abs.abs()
    } else {
        0.0
    };
    let lo = format!("-{}", fmt_value(m));
    let hi = format!("+{}", fmt_value(m));
    let need = text_width(&lo, 1) + text_width(&hi, 1) + 3 * GLYPH_SIZE;
    let width = width.max(need).max(32);
    let bar_h = 10;
    let mut canvas = Canvas::new(width, bar_h + 4 + GLYPH_SIZE, WHITE)?;
    for x in 0..width {
        let t = if width > 1 {
            2.0 * x as f64 / (width - 1) as f64 - 1.0
        } else {
            0.0
        };
        canvas.fill_rect(to_i64(x), 0, 1, bar_h, diverging(t, 1.0));
    }
    canvas.draw_rect(0, 0, width, bar_h, FRAME);
    let ty = to_i64(bar_h + 3);
    canvas.draw_text(0, ty, &lo, INK, 1);
    canvas.draw_text(to_i64(width / 2) - 4, ty, "0", INK, 1);
    canvas.draw_text(to_i64(width) - to_i64(text_width(&hi, 1)), ty, &hi, INK, 1);
    Ok(canvas)
}

/// `canvas` with a [`colorbar`] for `[-max_abs, max_abs]` added below it (as wide as
/// the canvas, at most 256 pixels, centred).
pub fn with_colorbar(canvas: &Canvas, max_abs: f64) -> Result<Canvas> {
    let pad = 8;
    let bar = colorbar(max_abs, canvas.width.saturating_sub(2 * pad).clamp(64, 256))?;
    let width = canvas.width.max(bar.width + 2 * pad);
    let height = canvas.height + bar.height + 2 * pad;
    let mut out = Canvas::new(width, height, WHITE)?;
    out.blit(canvas, (to_i64(width) - to_i64(canvas.width)) / 2, 0);
    out.blit(
        &bar,
        (to_i64(width) - to_i64(bar.width)) / 2,
        to_i64(canvas.height + pad),
    );
    Ok(out)
}
