//! Pictures of attributions and experiments, written as PNG without any plotting
//! library: an RGB [`Canvas`] with clipped drawing and 8×8 bitmap text, colour maps,
//! attribution heatmaps (single, beside the input image, labelled grids, colour bar),
//! line plots with log axes, and grouped bar charts.

pub mod attribution;
pub mod colormap;
pub mod heatmap;
pub mod image;
pub mod plot;
pub mod text;

pub use attribution::{attribution_picture, save_report_pictures};
pub use colormap::{diverging, grey, max_abs, NAN_COLOR};
pub use heatmap::{colorbar, grid, heatmap_png, overlay, with_colorbar};
pub use image::{Canvas, Rgb, BLACK, MAX_PIXELS, MAX_SIDE, WHITE};
pub use plot::{series_style, BarChart, LinePlot, Marker, MARKERS, PALETTE};
pub use text::{glyph, text_width, GLYPH_SIZE};
