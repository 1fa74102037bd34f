//! Text in an 8×8 bitmap font (font8x8, public domain): printable ASCII; anything else
//! is drawn as `?`.

use super::image::{to_i64, Canvas, Rgb};

/// Width and height of one glyph at scale 1, in pixels.
pub const GLYPH_SIZE: usize = 8;

/// The 8 rows of the glyph for `c` (bit 0 of each row is the leftmost pixel). Printable
/// ASCII and space are drawn as themselves, anything else as `?`.
pub fn glyph(c: char) -> [u8; 8] {
    let c = if c == ' ' || c.is_ascii_graphic() {
        c
    } else {
        '?'
    };
    font8x8::legacy::BASIC_LEGACY
        .get(c as usize)
        .copied()
        .unwrap_or([0; 8])
}

/// The width in pixels of `text` drawn at `scale`: `8 * scale` per character.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars()
        .count()
        .saturating_mul(GLYPH_SIZE)
        .saturating_mul(scale)
}

/// `text` cut to at most `max_chars` characters, ending in `..` when cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    let n = text.chars().count();
    if n <= max_chars {
        return text.to_string();
    }
    if max_chars <= 2 {
        return text.chars().take(max_chars).collect();
    }
    let mut s: String = text.chars().take(max_chars - 2).collect();
    s.push_str("..");
    s
}

impl Canvas {
    /// Draws `text` with the top-left corner of its box at `(x, y)`; each font pixel is a
    /// `scale`×`scale` square, so the box is `8 * scale * chars` wide and `8 * scale`
    /// high. Nothing is drawn outside that box (nor outside the canvas); `scale` 0 draws
    /// nothing.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, color: Rgb, scale: usize) {
        let s = to_i64(scale.min(4096));
        if s == 0 {
            return;
        }
        let advance = 8 * s;
        for (i, c) in text.chars().enumerate() {
            let cx = x.saturating_add(to_i64(i).saturating_mul(advance));
            if cx >= to_i64(self.width) {
                break;
            }
            if cx.saturating_add(advance) <= 0 {
                continue;
            }
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.fill_rect(
                            cx + col * s,
                            y.saturating_add(to_i64(row) * s),
                            s as usize,
                            s as usize,
                            color,
                        );
                    }
                }
            }
        }
    }

    /// Draws `text` rotated a quarter turn anticlockwise (reading upwards), for vertical
    /// axis labels. The box is `8 * scale` wide and `8 * scale * chars` high with its
    /// top-left corner at `(x, y)`; the first character is at the bottom.
    pub fn draw_text_up(&mut self, x: i64, y: i64, text: &str, color: Rgb, scale: usize) {
        let s = to_i64(scale.min(4096));
        if s == 0 {
            return;
        }
        let n = to_i64(text.chars().count());
        let bottom = y.saturating_add(n.saturating_mul(8 * s));
        for (i, c) in text.chars().enumerate() {
            let base = bottom.saturating_sub(to_i64(i).saturating_mul(8 * s));
            if base <= 0 {
                break;
            }
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        // Glyph column -> upwards, glyph row -> rightwards.
                        self.fill_rect(
                            x.saturating_add(to_i64(row) * s),
                            base - (col + 1) * s,
                            s as usize,
                            s as usize,
                            color,
                        );
                    }
                }
            }
        }
    }
}
