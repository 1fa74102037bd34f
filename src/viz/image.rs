//! An RGB canvas with clipped drawing primitives and PNG output.
//!
//! Every drawing call clips to the canvas, so no coordinate, however far outside (or
//! negative), can panic; only construction checks sizes.

use crate::io::write_atomic;
use crate::{ensure, Error, Result};
use std::path::Path;

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

/// White.
pub const WHITE: Rgb = [255, 255, 255];
/// Black.
pub const BLACK: Rgb = [0, 0, 0];

/// The largest width or height a [`Canvas`] may have.
pub const MAX_SIDE: usize = 16384;
/// The largest number of pixels a [`Canvas`] may have (8192 × 8192, 192 MiB of RGB).
pub const MAX_PIXELS: usize = 1 << 26;

/// An RGB image, row-major: pixel `(x, y)` is `pixels[y * width + x]`, `(0, 0)` top left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` pixels, row by row from the top.
    pub pixels: Vec<Rgb>,
}

/// Checks a canvas size: both sides in `1..=MAX_SIDE` and at most `MAX_PIXELS` pixels.
pub fn check_size(width: usize, height: usize) -> Result<()> {
    ensure!(
        width > 0 && height > 0,
        "image size {width}x{height}: width and height must be positive"
    );
    ensure!(
        width <= MAX_SIDE && height <= MAX_SIDE,
        "image size {width}x{height}: a side exceeds the limit of {MAX_SIDE} pixels"
    );
    ensure!(
        width * height <= MAX_PIXELS,
        "image size {width}x{height}: more than {MAX_PIXELS} pixels"
    );
    Ok(())
}

/// `usize` to `i64`, saturating (sizes are far below `i64::MAX` anyway).
pub(crate) fn to_i64(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Canvas {
    /// A canvas filled with `background`; errors on a zero side or one above [`MAX_SIDE`],
    /// or more than [`MAX_PIXELS`] pixels.
    pub fn new(width: usize, height: usize, background: Rgb) -> Result<Canvas> {
        check_size(width, height)?;
        Ok(Canvas {
            width,
            height,
            pixels: vec![background; width * height],
        })
    }

    /// The pixel at `(x, y)`, or `None` outside the canvas.
    pub fn get(&self, x: i64, y: i64) -> Option<Rgb> {
        self.index(x, y).and_then(|i| self.pixels.get(i).copied())
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        let x = usize::try_from(x).ok()?;
        let y = usize::try_from(y).ok()?;
        (x < self.width && y < self.height).then(|| y * self.width + x)
    }

    /// Sets the pixel at `(x, y)`; does nothing outside the canvas.
    pub fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if let Some(p) = self.index(x, y).and_then(|i| self.pixels.get_mut(i)) {
            *p = color;
        }
    }

    /// Mixes `color` into the pixel at `(x, y)` with opacity `alpha` in `[0, 1]`.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        let a = if alpha.is_nan() {
            0.0
        } else {
            alpha.clamp(0.0, 1.0)
        };
        if let Some(p) = self.index(x, y).and_then(|i| self.pixels.get_mut(i)) {
            for (c, &n) in p.iter_mut().zip(color.iter()) {
                *c = (f64::from(*c) * (1.0 - a) + f64::from(n) * a).round() as u8;
            }
        }
    }

    /// Fills the `w`×`h` rectangle whose top-left corner is `(x, y)`, clipped.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: Rgb) {
        let x0 = x.clamp(0, to_i64(self.width));
        let y0 = y.clamp(0, to_i64(self.height));
        let x1 = x.saturating_add(to_i64(w)).clamp(0, to_i64(self.width));
        let y1 = y.saturating_add(to_i64(h)).clamp(0, to_i64(self.height));
        for yy in y0..y1 {
            let row = yy as usize * self.width;
            if let Some(s) = self.pixels.get_mut(row + x0 as usize..row + x1 as usize) {
                s.fill(color);
            }
        }
    }

    /// Draws the 1-pixel outline of the `w`×`h` rectangle at `(x, y)`, clipped.
    pub fn draw_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: Rgb) {
        if w == 0 || h == 0 {
            return;
        }
        let right = x.saturating_add(to_i64(w) - 1);
        let bottom = y.saturating_add(to_i64(h) - 1);
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, bottom, w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(right, y, 1, h, color);
    }

    /// Copies `src` onto this canvas with its top-left corner at `(x, y)`, clipped.
    pub fn blit(&mut self, src: &Canvas, x: i64, y: i64) {
        for sy in 0..src.height {
            let ty = y.saturating_add(to_i64(sy));
            if ty < 0 || ty >= to_i64(self.height) {
                continue;
            }
            for sx in 0..src.width {
                if let Some(&c) = src.pixels.get(sy * src.width + sx) {
                    self.set(x.saturating_add(to_i64(sx)), ty, c);
                }
            }
        }
    }

    /// The points of the Bresenham line from `(x0, y0)` to `(x1, y1)` after clipping it to
    /// the canvas (plus a one-pixel border), in order from the first end.
    fn line_points(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> Vec<(i64, i64)> {
        let Some((x0, y0, x1, y1)) = clip_line(
            (x0 as f64, y0 as f64, x1 as f64, y1 as f64),
            (-1.0, -1.0, self.width as f64, self.height as f64),
        ) else {
            return Vec::new();
        };
        let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
        let (x1, y1) = (x1.round() as i64, y1.round() as i64);
        let dx = (x1 - x).abs();
        let dy = -(y1 - y).abs();
        let sx = if x < x1 { 1 } else { -1 };
        let sy = if y < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        let mut out = Vec::with_capacity((dx - dy + 1) as usize);
        loop {
            out.push((x, y));
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
        out
    }

    /// Draws a 1-pixel line from `(x0, y0)` to `(x1, y1)` (Bresenham), clipped.
    pub fn draw_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb) {
        for (x, y) in self.line_points(x0, y0, x1, y1) {
            self.set(x, y, color);
        }
    }

    /// Draws a line `thickness` pixels wide (a square brush along a Bresenham line), clipped.
    pub fn draw_thick_line(
        &mut self,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        color: Rgb,
        thickness: usize,
    ) {
        let t = thickness.clamp(1, 64);
        let off = to_i64((t - 1) / 2);
        for (x, y) in self.line_points(x0, y0, x1, y1) {
            self.fill_rect(x - off, y - off, t, t, color);
        }
    }

    /// Draws a dashed 1-pixel line: `dash` pixels on, `gap` pixels off, clipped.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_dashed_line(
        &mut self,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        color: Rgb,
        dash: usize,
        gap: usize,
    ) {
        let period = dash.max(1).saturating_add(gap);
        // Count from the original start so clipping does not shift the pattern.
        let pts = self.line_points(x0, y0, x1, y1);
        for (x, y) in pts {
            let k = x
                .saturating_sub(x0)
                .unsigned_abs()
                .max(y.saturating_sub(y0).unsigned_abs());
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            if k % period < dash.max(1) {
                self.set(x, y, color);
            }
        }
    }

    /// Draws an anti-aliased line `width` pixels wide (round caps) between points given
    /// in pixel coordinates (pixel `(i, j)` is centred on `(i, j)`), clipped. Non-finite
    /// coordinates draw nothing.
    pub fn draw_line_aa(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, color: Rgb, width: f64) {
        if ![x0, y0, x1, y1, width].iter().all(|v| v.is_finite()) {
            return;
        }
        let hw = width.clamp(0.5, 64.0) / 2.0;
        let reach = hw + 1.0;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let ymin = (y0.min(y1) - reach).floor().max(0.0);
        let ymax = (y0.max(y1) + reach).ceil().min(self.height as f64 - 1.0);
        if ymin > ymax {
            return;
        }
        for py in ymin as usize..=ymax as usize {
            let fy = py as f64;
            // The part of the segment within `reach` rows of this one.
            let (t0, t1) = if dy.abs() < 1e-12 {
                (0.0, 1.0)
            } else {
                let ta = (fy - reach - y0) / dy;
                let tb = (fy + reach - y0) / dy;
                (ta.min(tb).max(0.0), ta.max(tb).min(1.0))
            };
            let (xa, xb) = if t0 <= t1 {
                let (a, b) = (x0 + t0 * dx, x0 + t1 * dx);
                (a.min(b), a.max(b))
            } else {
                // Only a cap reaches this row.
                (x0.min(x1), x0.max(x1))
            };
            let xmin = (xa - reach).floor().max(0.0);
            let xmax = (xb + reach).ceil().min(self.width as f64 - 1.0);
            if xmin > xmax {
                continue;
            }
            for px in xmin as usize..=xmax as usize {
                let fx = px as f64;
                let t = if len2 > 0.0 {
                    (((fx - x0) * dx + (fy - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (fx - (x0 + t * dx), fy - (y0 + t * dy));
                let cover = hw + 0.5 - (ex * ex + ey * ey).sqrt();
                if cover > 0.0 {
                    self.blend(to_i64(px), to_i64(py), color, cover);
                }
            }
        }
    }

    /// Draws an anti-aliased filled disc of radius `r` centred on `(cx, cy)`, clipped.
    pub fn fill_circle_aa(&mut self, cx: f64, cy: f64, r: f64, color: Rgb) {
        if ![cx, cy, r].iter().all(|v| v.is_finite()) || r <= 0.0 {
            return;
        }
        let x0 = (cx - r - 1.0).floor().max(0.0);
        let x1 = (cx + r + 1.0).ceil().min(self.width as f64 - 1.0);
        let y0 = (cy - r - 1.0).floor().max(0.0);
        let y1 = (cy + r + 1.0).ceil().min(self.height as f64 - 1.0);
        if x0 > x1 || y0 > y1 {
            return;
        }
        for py in y0 as usize..=y1 as usize {
            for px in x0 as usize..=x1 as usize {
                let (ex, ey) = (px as f64 - cx, py as f64 - cy);
                let cover = r + 0.5 - (ex * ex + ey * ey).sqrt();
                if cover > 0.0 {
                    self.blend(to_i64(px), to_i64(py), color, cover);
                }
            }
        }
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    pub fn encode_png(&self) -> Result<Vec<u8>> {
        check_size(self.width, self.height)?;
        ensure!(
            self.pixels.len() == self.width * self.height,
            "image {}x{} has {} pixels, expected {}",
            self.width,
            self.height,
            self.pixels.len(),
            self.width * self.height
        );
        let data: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let mut out = Vec::new();
        let png_err = |e: png::EncodingError| Error::new(format!("PNG encoding: {e}"));
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Best);
            let mut writer = enc.write_header().map_err(png_err)?;
            writer.write_image_data(&data).map_err(png_err)?;
            writer.finish().map_err(png_err)?;
        }
        Ok(out)
    }

    /// Encodes the canvas as PNG and writes it to `path` atomically: on any error no
    /// file (and no partial file) is left at `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.encode_png().map_err(|e| e.context(path.display()))?;
        write_atomic(path, &bytes)
    }
}

/// Liang–Barsky: clips the segment `(x0, y0)-(x1, y1)` to the rectangle
/// `(xmin, ymin, xmax, ymax)`; `None` if nothing of it is inside.
fn clip_line(
    (x0, y0, x1, y1): (f64, f64, f64, f64),
    (xmin, ymin, xmax, ymax): (f64, f64, f64, f64),
) -> Option<(f64, f64, f64, f64)> {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, x0 - xmin),
        (dx, xmax - x0),
        (-dy, y0 - ymin),
        (dy, ymax - y0),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return None;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return None;
                }
                t1 = t1.min(r);
            }
        }
    }
    Some((x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy))
}
