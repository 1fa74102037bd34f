//! Colour maps: a diverging blue–white–red map for signed attributions and a grey map
//! for input images.

use super::image::Rgb;

/// The colour of NaN values in every map (magenta, which no map otherwise produces).
pub const NAN_COLOR: Rgb = [255, 0, 255];

/// The positive half of the diverging map: (position in `[0, 1]`, colour). The negative
/// half is its mirror image with red and blue swapped.
const POSITIVE: [(f64, [f64; 3]); 4] = [
    (0.0, [255.0, 255.0, 255.0]),
    (0.25, [250.0, 208.0, 186.0]),
    (0.6, [228.0, 120.0, 94.0]),
    (1.0, [165.0, 15.0, 30.0]),
];

/// The largest finite `|v|` in `values`, 0 when there is none.
pub fn max_abs(values: &[f64]) -> f64 {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
}

/// The diverging (blue–white–red) colour of `v` on the symmetric scale `[-scale, scale]`:
/// white at 0, red for positive, blue for negative, saturated at `|v| >= scale`.
///
/// Exactly symmetric: `diverging(-v, s)` is `diverging(v, s)` with red and blue swapped.
/// A `scale` that is not positive and finite maps every finite `v` to white (the
/// all-zero map); `±inf` is fully saturated, NaN is [`NAN_COLOR`].
pub fn diverging(v: f64, scale: f64) -> Rgb {
    if v.is_nan() {
        return NAN_COLOR;
    }
    let t = if v.is_infinite() {
        v.signum()
    } else if scale > 0.0 && scale.is_finite() {
        (v / scale).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let [r, g, b] = positive(t.abs());
    if t < 0.0 {
        [b, g, r]
    } else {
        [r, g, b]
    }
}

fn positive(t: f64) -> Rgb {
    let mut out = POSITIVE[POSITIVE.len() - 1].1;
    for w in POSITIVE.windows(2) {
        let ((t0, c0), (t1, c1)) = (w[0], w[1]);
        if t <= t1 {
            let f = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
            out = [0, 1, 2].map(|k| c0[k] + (c1[k] - c0[k]) * f);
            break;
        }
    }
    out.map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// The grey-scale colour of an image value in `[0, 1]`: 0 black, 1 white, clamped
/// outside; NaN is [`NAN_COLOR`].
pub fn grey(v: f64) -> Rgb {
    if v.is_nan() {
        return NAN_COLOR;
    }
    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [g, g, g]
}
