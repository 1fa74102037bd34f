//! Line plots (linear or log10 axes, several series, legend, dashed reference lines) and
//! grouped bar charts.

use super::heatmap::fmt_value;
use super::image::{check_size, to_i64, Canvas, Rgb, WHITE};
use super::text::{text_width, truncate, GLYPH_SIZE};
use crate::{ensure, Result};

/// Series colours, in order (matplotlib's `tab10`).
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Text colour.
const INK: Rgb = [30, 30, 30];
/// Axis frame and tick colour.
const AXIS: Rgb = [70, 70, 70];
/// Grid line colour.
const GRID: Rgb = [228, 228, 228];
/// Reference line colour.
const REF: Rgb = [90, 90, 90];
/// Legend frame colour.
const LEGEND_FRAME: Rgb = [200, 200, 200];

/// The mark drawn at each point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A filled disc.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle pointing up.
    TriangleUp,
    /// A filled diamond.
    Diamond,
    /// A filled triangle pointing down.
    TriangleDown,
    /// A diagonal cross.
    Cross,
    /// An upright cross.
    Plus,
    /// No mark (line only).
    None,
}

/// The markers given to series in order (with [`PALETTE`] colours: series `i` gets colour
/// `i % 10` and marker `i % 7`, so the first 70 series all differ).
pub const MARKERS: [Marker; 7] = [
    Marker::Circle,
    Marker::Square,
    Marker::TriangleUp,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Cross,
    Marker::Plus,
];

/// The default colour and marker of the `i`-th series.
pub fn series_style(i: usize) -> (Rgb, Marker) {
    (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()])
}

impl Canvas {
    /// Draws `marker` centred on `(x, y)`, about `2 * radius + 1` pixels across, clipped.
    pub fn draw_marker(&mut self, x: i64, y: i64, marker: Marker, radius: usize, color: Rgb) {
        let r = to_i64(radius.min(256));
        // Wholly outside (this also keeps the arithmetic below far from overflow).
        if x < -r - 2
            || y < -r - 2
            || x > to_i64(self.width) + r + 2
            || y > to_i64(self.height) + r + 2
        {
            return;
        }
        match marker {
            Marker::None => {}
            Marker::Circle => self.fill_circle_aa(x as f64, y as f64, r as f64, color),
            Marker::Square => {
                let s = (r - 1).max(0);
                self.fill_rect(
                    x - s,
                    y - s,
                    (2 * s + 1) as usize,
                    (2 * s + 1) as usize,
                    color,
                );
            }
            Marker::Diamond => {
                for dy in -r - 1..=r + 1 {
                    for dx in -r..=r {
                        if dx.abs() * (r + 1) + dy.abs() * r <= r * (r + 1) {
                            self.set(x + dx, y + dy, color);
                        }
                    }
                }
            }
            Marker::TriangleUp | Marker::TriangleDown => {
                for row in 0..=2 * r {
                    let half = if r == 0 { 0 } else { (row + 1) / 2 };
                    let yy = if marker == Marker::TriangleUp {
                        y - r + row
                    } else {
                        y + r - row
                    };
                    self.fill_rect(x - half, yy, (2 * half + 1) as usize, 1, color);
                }
            }
            Marker::Cross => {
                for d in -r..=r {
                    self.fill_rect(x + d, y + d, 2, 1, color);
                    self.fill_rect(x + d, y - d, 2, 1, color);
                }
            }
            Marker::Plus => {
                let n = (2 * r + 1) as usize;
                self.fill_rect(x - r, y - 1, n, 3, color);
                self.fill_rect(x - 1, y - r, 3, n, color);
            }
        }
    }
}

/// One named series of a [`LinePlot`].
#[derive(Clone, Debug)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    color: Rgb,
    marker: Marker,
}

/// A horizontal dashed reference line.
#[derive(Clone, Debug)]
struct RefLine {
    y: f64,
    label: String,
}

/// A line plot: title, axis labels, linear or log10 axes, named series of `(x, y)`
/// points each with its own colour and marker, dashed horizontal reference lines and a
/// legend to the right of the plot (never over the data).
///
/// Points that cannot be shown (non-finite, or `<= 0` on a log axis) are skipped and
/// break the series' line there; a series with one point is a single marker.
#[derive(Clone, Debug, Default)]
pub struct LinePlot {
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    log_y: bool,
    series: Vec<Series>,
    refs: Vec<RefLine>,
}

impl LinePlot {
    /// An empty plot with a title (may be empty).
    pub fn new(title: impl Into<String>) -> Self {
        LinePlot {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Sets the x-axis label.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Sets the y-axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Makes the x axis logarithmic (base 10) or linear.
    pub fn log_x(mut self, log: bool) -> Self {
        self.log_x = log;
        self
    }

    /// Makes the y axis logarithmic (base 10) or linear.
    pub fn log_y(mut self, log: bool) -> Self {
        self.log_y = log;
        self
    }

    /// Adds a series with the next default colour and marker ([`series_style`]).
    pub fn series(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Self {
        self.add_series(name, points);
        self
    }

    /// Adds a series with the next default colour and marker ([`series_style`]).
    pub fn add_series(&mut self, name: impl Into<String>, points: &[(f64, f64)]) -> &mut Self {
        let (color, marker) = series_style(self.series.len());
        self.add_series_styled(name, points, color, marker)
    }

    /// Adds a series with a given colour and marker.
    pub fn add_series_styled(
        &mut self,
        name: impl Into<String>,
        points: &[(f64, f64)],
        color: Rgb,
        marker: Marker,
    ) -> &mut Self {
        self.series.push(Series {
            name: name.into(),
            points: points.to_vec(),
            color,
            marker,
        });
        self
    }

    /// Adds a dashed horizontal reference line at `y`, listed in the legend as `label`
    /// (an empty label leaves it out of the legend).
    pub fn hline(mut self, y: f64, label: impl Into<String>) -> Self {
        self.add_hline(y, label);
        self
    }

    /// Adds a dashed horizontal reference line at `y` (see [`LinePlot::hline`]).
    pub fn add_hline(&mut self, y: f64, label: impl Into<String>) -> &mut Self {
        self.refs.push(RefLine {
            y,
            label: label.into(),
        });
        self
    }

    /// Draws the plot on a `width`×`height` white canvas. Errors if the size is invalid
    /// (see [`Canvas::new`]) or too small for the axes and legend (below about 160×120).
    pub fn render(&self, width: usize, height: usize) -> Result<Canvas> {
        check_size(width, height)?;
        let mut legend: Vec<LegendEntry> = self
            .series
            .iter()
            .map(|s| LegendEntry {
                name: s.name.clone(),
                color: s.color,
                marker: s.marker,
                dashed: false,
            })
            .collect();
        legend.extend(
            self.refs
                .iter()
                .filter(|r| !r.label.is_empty())
                .map(|r| LegendEntry {
                    name: r.label.clone(),
                    color: REF,
                    marker: Marker::None,
                    dashed: true,
                }),
        );
        let mut frame = Frame::layout(
            width,
            height,
            &self.title,
            &self.x_label,
            &self.y_label,
            &legend,
            AxisData::new(self.visible_points().map(|p| p.0), self.log_x),
            AxisData::new(
                self.visible_points()
                    .map(|p| p.1)
                    .chain(self.refs.iter().map(|r| r.y)),
                self.log_y,
            ),
        )?;
        let (xa, ya) = (frame.x.clone(), frame.y.clone());
        let area = &mut frame.area;
        let (aw, ah) = (area.width, area.height);
        let to_px = |x: f64, y: f64| -> Option<(f64, f64)> {
            let tx = transform(x, xa.log)?;
            let ty = transform(y, ya.log)?;
            Some((xa.pixel_f(tx, aw, false), ya.pixel_f(ty, ah, true)))
        };
        for r in &self.refs {
            if let Some(ty) = transform(r.y, ya.log) {
                let py = ya.pixel(ty, area.height, true);
                area.draw_dashed_line(0, py, to_i64(area.width), py, REF, 6, 4);
            }
        }
        for s in &self.series {
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                let p = to_px(x, y);
                if let (Some(a), Some(b)) = (prev, p) {
                    area.draw_line_aa(a.0, a.1, b.0, b.1, s.color, 2.0);
                }
                prev = p;
            }
        }
        for s in &self.series {
            for &(x, y) in &s.points {
                if let Some((px, py)) = to_px(x, y) {
                    let (px, py) = (px.round() as i64, py.round() as i64);
                    area.draw_marker(px, py, s.marker, 4, s.color);
                }
            }
        }
        Ok(frame.finish())
    }

    /// The points shown on these axes.
    fn visible_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| {
                transform(x, self.log_x).is_some() && transform(y, self.log_y).is_some()
            })
    }
}

/// A grouped bar chart: one group of bars per category, one bar (and colour) per named
/// series in each group, a linear y axis that includes 0, and a legend on the right.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    categories: Vec<String>,
    groups: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    /// An empty chart over the given category labels (one group of bars each).
    pub fn new(title: impl Into<String>, categories: &[&str]) -> Self {
        BarChart {
            title: title.into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Sets the x-axis label.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Sets the y-axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Adds a series: one value per category (missing or non-finite values draw no bar).
    pub fn series(mut self, name: impl Into<String>, values: &[f64]) -> Self {
        self.groups.push((name.into(), values.to_vec()));
        self
    }

    /// Draws the chart on a `width`×`height` white canvas. Errors if the size is invalid
    /// or too small, or there are no categories.
    pub fn render(&self, width: usize, height: usize) -> Result<Canvas> {
        check_size(width, height)?;
        ensure!(!self.categories.is_empty(), "bar chart: no categories");
        let legend: Vec<LegendEntry> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, (name, _))| LegendEntry {
                name: name.clone(),
                color: PALETTE[i % PALETTE.len()],
                marker: Marker::Square,
                dashed: false,
            })
            .collect();
        let n = self.categories.len();
        let ys = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().take(n).copied())
            .chain([0.0]);
        let mut x = AxisData::new([-0.5, n as f64 - 0.5].into_iter(), false);
        x.categories = Some(self.categories.clone());
        let mut frame = Frame::layout(
            width,
            height,
            &self.title,
            &self.x_label,
            &self.y_label,
            &legend,
            x,
            AxisData::new(ys, false),
        )?;
        let (xa, ya) = (frame.x.clone(), frame.y.clone());
        let area = &mut frame.area;
        let zero = ya.pixel(0.0, area.height, true);
        let k = self.groups.len().max(1) as f64;
        let slot = (xa.pixel(1.0, area.width, false) - xa.pixel(0.0, area.width, false)) as f64;
        let bar_w = (slot * 0.8 / k).max(1.0);
        for (gi, (_, values)) in self.groups.iter().enumerate() {
            let color = PALETTE[gi % PALETTE.len()];
            for (ci, &v) in values.iter().take(n).enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let cx = xa.pixel(ci as f64, area.width, false) as f64;
                let x0 = (cx - slot * 0.4 + gi as f64 * bar_w).round() as i64;
                let x1 = (cx - slot * 0.4 + (gi + 1) as f64 * bar_w).round() as i64;
                let py = ya.pixel(v, area.height, true);
                let (top, bottom) = (py.min(zero), py.max(zero));
                let w = (x1 - x0 - 1).max(1) as usize;
                area.fill_rect(x0, top, w, (bottom - top + 1) as usize, color);
            }
        }
        area.draw_line(0, zero, to_i64(area.width), zero, AXIS);
        Ok(frame.finish())
    }
}

/// `v` in axis coordinates (log10 on a log axis), or `None` if it cannot be shown.
fn transform(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log {
        (v > 0.0).then(|| v.log10()).filter(|l| l.is_finite())
    } else {
        Some(v.clamp(-1e300, 1e300))
    }
}

/// The values an axis must show.
struct AxisData {
    log: bool,
    min: f64,
    max: f64,
    categories: Option<Vec<String>>,
}

impl AxisData {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Self {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for t in values.filter_map(|v| transform(v, log)) {
            min = min.min(t);
            max = max.max(t);
        }
        AxisData {
            log,
            min,
            max,
            categories: None,
        }
    }
}

/// A laid-out axis: range in axis coordinates and ticks.
#[derive(Clone, Debug)]
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
    /// Labelled ticks with grid lines: (position, label).
    major: Vec<(f64, String)>,
    /// Short unlabelled ticks.
    minor: Vec<f64>,
    /// Categories at 0, 1, ... (no grid lines).
    categorical: bool,
}

impl Axis {
    /// The pixel of axis coordinate `t` in an area `len` pixels long (flipped for y).
    fn pixel(&self, t: f64, len: usize, flip: bool) -> i64 {
        self.pixel_f(t, len, flip).round() as i64
    }

    /// [`Axis::pixel`] unrounded (clamped far outside the area).
    fn pixel_f(&self, t: f64, len: usize, flip: bool) -> f64 {
        let f = (t - self.lo) / (self.hi - self.lo);
        let p = f * (len.saturating_sub(1)) as f64;
        let p = if flip {
            (len.saturating_sub(1)) as f64 - p
        } else {
            p
        };
        if p.is_nan() {
            0.0
        } else {
            p.clamp(-1e9, 1e9)
        }
    }

    /// Chooses range and ticks for `data` on an axis `len` pixels long; `label_room`
    /// gives the pixels a label needs along the axis.
    fn build(data: &AxisData, len: usize, label_room: &dyn Fn(&str) -> usize) -> Axis {
        if let Some(cats) = &data.categories {
            let major = cats
                .iter()
                .enumerate()
                .map(|(i, c)| (i as f64, c.clone()))
                .collect();
            return Axis {
                log: false,
                lo: data.min,
                hi: data.max,
                major,
                minor: Vec::new(),
                categorical: false,
            };
        }
        let (mut min, mut max) = (data.min, data.max);
        if min > max {
            // Nothing to show: a default range.
            (min, max) = (0.0, 1.0);
        }
        if data.log {
            Self::build_log(min, max, len, label_room)
        } else {
            Self::build_linear(min, max, len, label_room)
        }
    }

    fn build_linear(
        mut min: f64,
        mut max: f64,
        len: usize,
        label_room: &dyn Fn(&str) -> usize,
    ) -> Axis {
        if max - min <= max.abs().max(min.abs()) * 1e-12 {
            let d = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
            min -= d;
            max += d;
        }
        let pad = 0.05 * (max - min);
        let (lo, hi) = (min - pad, max + pad);
        let max_ticks = (len / 40).clamp(2, 10);
        let mut best = None;
        for n in (2..=max_ticks).rev() {
            let step = nice_num((hi - lo) / n as f64);
            let first = (lo / step).ceil();
            let last = (hi / step).floor();
            if !(last - first).is_finite() || last - first > 50.0 {
                continue;
            }
            let ticks: Vec<f64> = (first as i64..=last as i64)
                .map(|k| k as f64 * step)
                .collect();
            let major = fmt_ticks(&ticks, step);
            let px_per_step = step / (hi - lo) * len as f64;
            let room = major.iter().map(|(_, l)| label_room(l)).max().unwrap_or(0);
            let axis = Axis {
                log: false,
                lo,
                hi,
                major,
                minor: Vec::new(),
                categorical: false,
            };
            if px_per_step >= room as f64 {
                return axis;
            }
            best = Some(axis);
        }
        best.unwrap_or(Axis {
            log: false,
            lo,
            hi,
            major: vec![(lo, fmt_value(lo)), (hi, fmt_value(hi))],
            minor: Vec::new(),
            categorical: false,
        })
    }

    fn build_log(min: f64, max: f64, len: usize, label_room: &dyn Fn(&str) -> usize) -> Axis {
        let (mut min, mut max) = (min, max);
        if max - min < 1e-9 {
            min -= 0.5;
            max += 0.5;
        }
        let (d0, d1) = (min.floor(), max.ceil());
        let (lo, hi) = if d1 - d0 <= 2.0 {
            (d0, d1)
        } else {
            let pad = 0.04 * (max - min);
            (min - pad, max + pad)
        };
        let decades: Vec<i64> = (lo.ceil() as i64..=hi.floor() as i64).collect();
        let plain = decades.iter().all(|d| (0..=4).contains(d));
        let label = |d: i64| {
            if plain {
                format!("{}", 10i64.pow(d as u32))
            } else {
                format!("1e{d}")
            }
        };
        let px_per_decade = len as f64 / (hi - lo);
        let room = decades
            .iter()
            .map(|&d| label_room(&label(d)))
            .max()
            .unwrap_or(0) as f64;
        // Label every `every`-th decade, `every` a nice number; unlabelled ticks at
        // multiples of `sub` decades where they are at least 5 pixels apart.
        let nice_step = |need: f64| {
            NICE_DECADES
                .iter()
                .copied()
                .find(|&k| k as f64 >= need)
                .unwrap_or(1000)
        };
        let every = nice_step(room / px_per_decade);
        let sub = nice_step(5.0 / px_per_decade);
        let mut major = Vec::new();
        let mut minor = Vec::new();
        for &d in &decades {
            if d.rem_euclid(every) == 0 {
                major.push((d as f64, label(d)));
            } else if d.rem_euclid(sub) == 0 {
                minor.push(d as f64);
            }
        }
        if px_per_decade >= 30.0 {
            for d in (lo.floor() as i64)..=(hi.ceil() as i64) {
                for m in 2..10 {
                    let t = d as f64 + (m as f64).log10();
                    if t >= lo && t <= hi {
                        minor.push(t);
                    }
                }
            }
        }
        Axis {
            log: true,
            lo,
            hi,
            major,
            minor,
            categorical: false,
        }
    }
}

/// Nice numbers of decades between labelled ticks of a log axis.
const NICE_DECADES: [i64; 13] = [1, 2, 3, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000];

/// Heckbert's "nice number": 1, 2, 2.5 or 5 times a power of ten, close to `x`.
fn nice_num(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let e = x.log10().floor();
    let f = x / 10f64.powf(e);
    let n = if f < 1.5 {
        1.0
    } else if f < 2.25 {
        2.0
    } else if f < 3.5 {
        2.5
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    n * 10f64.powf(e)
}

/// Linear tick labels in one style for the whole axis: just enough decimals for the
/// tick step, or scientific notation (with one mantissa precision) when the largest
/// tick is at least 1e5 or below 1e-3.
fn fmt_ticks(ticks: &[f64], step: f64) -> Vec<(f64, String)> {
    let step_exp = step.log10().floor() as i64;
    // 2.5 needs one more digit than its power of ten.
    let extra = i64::from((step / 10f64.powi(step_exp as i32) - 2.5).abs() < 1e-9);
    let is_zero = |v: f64| v.abs() < step * 1e-6;
    let biggest = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let sci = !(1e-3..1e5).contains(&biggest);
    let digits = ticks
        .iter()
        .filter(|v| !is_zero(**v))
        .map(|v| v.abs().log10().floor() as i64 - step_exp + extra)
        .max()
        .unwrap_or(0)
        .clamp(0, 15) as usize;
    let decimals = (-step_exp + extra).clamp(0, 15) as usize;
    ticks
        .iter()
        .map(|&v| {
            let label = if is_zero(v) {
                "0".to_string()
            } else if sci {
                format!("{v:.digits$e}")
            } else {
                format!("{v:.decimals$}")
            };
            (v, label)
        })
        .collect()
}

/// One legend line.
struct LegendEntry {
    name: String,
    color: Rgb,
    marker: Marker,
    dashed: bool,
}

const LEGEND_ROW: usize = 16;
const LEGEND_SAMPLE: usize = 24;
const LEGEND_CHARS: usize = 28;

/// The common frame of a chart: margins, title, axes with ticks and labels, legend, and
/// the plot area (a separate canvas, so drawing in it clips to it).
struct Frame {
    canvas: Canvas,
    area: Canvas,
    left: usize,
    top: usize,
    x: Axis,
    y: Axis,
}

impl Frame {
    #[allow(clippy::too_many_arguments)]
    fn layout(
        width: usize,
        height: usize,
        title: &str,
        x_label: &str,
        y_label: &str,
        legend: &[LegendEntry],
        xd: AxisData,
        yd: AxisData,
    ) -> Result<Frame> {
        let g = GLYPH_SIZE;
        let too_small = || {
            crate::Error::new(format!(
                "plot size {width}x{height}: too small for the axes, labels and legend"
            ))
        };
        let title_scale = if text_width(title, 2) + 2 * 24 <= width {
            2
        } else {
            1
        };
        let top = if title.is_empty() {
            12
        } else {
            12 + g * title_scale + 12
        };
        let bottom = 5 + 6 + g + if x_label.is_empty() { 10 } else { 12 + g + 10 };
        let plot_h = height
            .checked_sub(top + bottom)
            .filter(|&h| h >= 40)
            .ok_or_else(too_small)?;
        let y = Axis::build(&yd, plot_h, &|_| g + 10);
        let y_tick_w = y
            .major
            .iter()
            .map(|(_, l)| text_width(l, 1))
            .max()
            .unwrap_or(0);
        let left = 12 + if y_label.is_empty() { 0 } else { g + 10 } + y_tick_w + 6 + 5;
        let legend_w = legend
            .iter()
            .map(|e| text_width(&truncate(&e.name, LEGEND_CHARS), 1))
            .max()
            .map(|w| w + LEGEND_SAMPLE + 8 + 16);
        let x_room = |l: &str| text_width(l, 1) + 16;
        // Room right of the plot: a gap (at least half the last x tick label), the
        // legend and an outer margin.
        let legend_room = legend_w.map_or(0, |lw| lw + 8);
        let mut right = legend_room + 16;
        for _ in 0..3 {
            let plot_w = width
                .checked_sub(left + right)
                .filter(|&w| w >= 40)
                .ok_or_else(too_small)?;
            let ax = Axis::build(&xd, plot_w, &x_room);
            let overhang = ax
                .major
                .last()
                .map(|(t, l)| {
                    let px = ax.pixel(*t, plot_w, false);
                    let after = (to_i64(plot_w) - 1 - px).max(0) as usize;
                    (text_width(l, 1) / 2).saturating_sub(after)
                })
                .unwrap_or(0);
            let need = legend_room + 16.max(overhang + 8);
            if need <= right {
                break;
            }
            right = need;
        }
        let plot_w = width
            .checked_sub(left + right)
            .filter(|&w| w >= 40)
            .ok_or_else(too_small)?;
        let x = Axis::build(&xd, plot_w, &x_room);
        let gap = right - legend_room;
        let mut canvas = Canvas::new(width, height, WHITE)?;
        let mut area = Canvas::new(plot_w, plot_h, WHITE)?;
        // Grid lines.
        if !x.categorical {
            for (t, _) in &x.major {
                let px = x.pixel(*t, plot_w, false);
                area.fill_rect(px, 0, 1, plot_h, GRID);
            }
        }
        for (t, _) in &y.major {
            let py = y.pixel(*t, plot_h, true);
            area.fill_rect(0, py, plot_w, 1, GRID);
        }
        let (l, t) = (to_i64(left), to_i64(top));
        let (pw, ph) = (to_i64(plot_w), to_i64(plot_h));
        // Title, centred over the plot area, shifted to keep an 8-pixel margin.
        if !title.is_empty() {
            let title = truncate(title, width.saturating_sub(16) / (g * title_scale));
            let tw = to_i64(text_width(&title, title_scale));
            let mut tx = l + (pw - tw) / 2;
            if tx < 8 || tx + tw > to_i64(width) - 8 {
                tx = ((to_i64(width) - tw) / 2).max(0);
            }
            canvas.draw_text(tx, 12, &title, INK, title_scale);
        }
        // Ticks and tick labels.
        let (xb, yr) = (t + ph + 1, l - 2);
        for (tk, lab) in &x.major {
            let px = l + x.pixel(*tk, plot_w, false);
            canvas.fill_rect(px, xb, 1, 5, AXIS);
            let tw = to_i64(text_width(lab, 1));
            canvas.draw_text(px - tw / 2, xb + 5 + 6, lab, INK, 1);
        }
        for tk in &x.minor {
            let px = l + x.pixel(*tk, plot_w, false);
            canvas.fill_rect(px, xb, 1, 3, AXIS);
        }
        for (tk, lab) in &y.major {
            let py = t + y.pixel(*tk, plot_h, true);
            canvas.fill_rect(yr - 4, py, 5, 1, AXIS);
            let tw = to_i64(text_width(lab, 1));
            canvas.draw_text(yr - 5 - 6 - tw, py - 4, lab, INK, 1);
        }
        for tk in &y.minor {
            let py = t + y.pixel(*tk, plot_h, true);
            canvas.fill_rect(yr - 2, py, 3, 1, AXIS);
        }
        // Axis labels.
        if !x_label.is_empty() {
            let lab = truncate(x_label, width / g);
            let tw = to_i64(text_width(&lab, 1));
            let tx = (l + (pw - tw) / 2).clamp(0, (to_i64(width) - tw).max(0));
            canvas.draw_text(tx, xb + 5 + 6 + to_i64(g) + 12, &lab, INK, 1);
        }
        if !y_label.is_empty() {
            let lab = truncate(y_label, height / g);
            let th = to_i64(text_width(&lab, 1));
            let ty = (t + (ph - th) / 2).clamp(0, (to_i64(height) - th).max(0));
            canvas.draw_text_up(12, ty, &lab, INK, 1);
        }
        // Legend, to the right of the plot area.
        if !legend.is_empty() {
            let lx = l + pw + to_i64(gap);
            let lw = legend_w.unwrap_or(0);
            let lh = legend.len() * LEGEND_ROW + 8;
            canvas.draw_rect(lx, t, lw, lh, LEGEND_FRAME);
            for (i, e) in legend.iter().enumerate() {
                let cy = t + 4 + to_i64(i * LEGEND_ROW + LEGEND_ROW / 2);
                let sx = lx + 8;
                let sw = to_i64(LEGEND_SAMPLE);
                if e.dashed {
                    canvas.draw_dashed_line(sx, cy, sx + sw, cy, e.color, 6, 4);
                } else if e.marker == Marker::Square
                    && legend.iter().all(|e| e.marker == Marker::Square)
                {
                    // Bar chart: a swatch.
                    canvas.fill_rect(sx + 4, cy - 5, LEGEND_SAMPLE - 8, 11, e.color);
                } else {
                    let yc = cy as f64 - 0.5;
                    canvas.draw_line_aa(sx as f64, yc, (sx + sw) as f64, yc, e.color, 2.0);
                    canvas.draw_marker(sx + sw / 2, cy, e.marker, 4, e.color);
                }
                let name = truncate(&e.name, LEGEND_CHARS);
                canvas.draw_text(sx + sw + 8, cy - 4, &name, INK, 1);
            }
        }
        Ok(Frame {
            canvas,
            area,
            left,
            top,
            x,
            y,
        })
    }

    /// Puts the plot area in place and draws its frame.
    fn finish(mut self) -> Canvas {
        let (l, t) = (to_i64(self.left), to_i64(self.top));
        self.canvas.blit(&self.area, l, t);
        self.canvas.draw_rect(
            l - 1,
            t - 1,
            self.area.width + 2,
            self.area.height + 2,
            AXIS,
        );
        self.canvas
    }
}
