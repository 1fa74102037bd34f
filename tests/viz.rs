//! Tests of `mho::viz`: PNG round trips, colour maps, text, plots and error paths.
//!
//! Set `MHO_VIZ_SAMPLES=/some/dir` to also write the sample pictures there for a look.

use mho::viz::{self, Canvas, LinePlot, Marker, Rgb, WHITE};
use std::io::Cursor;

/// Decodes a PNG into (width, height, RGB pixels).
fn decode(bytes: &[u8]) -> (usize, usize, Vec<Rgb>) {
    let dec = png::Decoder::new(Cursor::new(bytes));
    let mut reader = dec.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width as usize, info.height as usize, px)
}

fn is_blue(c: Rgb) -> bool {
    let [r, g, b] = c.map(i32::from);
    b > r + 80 && b > g + 80
}

fn is_red(c: Rgb) -> bool {
    let [r, g, b] = c.map(i32::from);
    r > b + 80 && r > g + 80
}

/// Saves a sample picture when `MHO_VIZ_SAMPLES` names a directory.
fn sample(canvas: &Canvas, name: &str) {
    if let Some(dir) = std::env::var_os("MHO_VIZ_SAMPLES") {
        let path = std::path::Path::new(&dir).join(name);
        canvas.save_png(&path).expect("save sample");
    }
}

#[test]
fn png_round_trip_keeps_size_and_pixels() {
    let mut c = Canvas::new(7, 5, WHITE).unwrap();
    c.set(0, 0, [1, 2, 3]);
    c.set(6, 4, [200, 100, 50]);
    c.fill_rect(2, 1, 2, 2, [0, 128, 255]);
    let (w, h, px) = decode(&c.encode_png().unwrap());
    assert_eq!((w, h), (7, 5));
    assert_eq!(px, c.pixels);
    assert_eq!(px[0], [1, 2, 3]);
    assert_eq!(px[4 * 7 + 6], [200, 100, 50]);
    assert_eq!(px[7 + 2], [0, 128, 255]);
    assert_eq!(px[2 * 7 + 3], [0, 128, 255]);
    assert_eq!(px[3 * 7 + 3], WHITE);
}

#[test]
fn heatmap_of_minus_one_zero_one_is_blue_white_red() {
    let c = viz::heatmap_png(&[-1.0, 0.0, 1.0], 1, 3, 4).unwrap();
    let (w, h, px) = decode(&c.encode_png().unwrap());
    assert_eq!((w, h), (12, 4));
    for y in 0..4 {
        for x in 0..12 {
            let p = px[y * 12 + x];
            match x / 4 {
                0 => assert!(is_blue(p), "({x},{y}) {p:?} not blue"),
                1 => assert_eq!(p, WHITE, "({x},{y})"),
                _ => assert!(is_red(p), "({x},{y}) {p:?} not red"),
            }
        }
    }
    // The scale is symmetric: [0, 0.5, 2] has a pale red middle and a white left.
    let c = viz::heatmap_png(&[0.0, 0.5, 2.0, -2.0], 2, 2, 1).unwrap();
    assert_eq!(c.pixels[0], WHITE);
    assert_eq!(c.pixels[2], viz::diverging(2.0, 2.0));
    assert_eq!(c.pixels[3], viz::diverging(-2.0, 2.0));
    assert_eq!(c.pixels[1], viz::diverging(0.25, 1.0));
    // All zeros: white.
    let c = viz::heatmap_png(&[0.0; 6], 2, 3, 2).unwrap();
    assert!(c.pixels.iter().all(|&p| p == WHITE));
}

#[test]
fn heatmap_rejects_bad_shapes() {
    assert!(viz::heatmap_png(&[1.0, 2.0], 1, 3, 1).is_err());
    assert!(viz::heatmap_png(&[], 0, 3, 1).is_err());
    assert!(viz::heatmap_png(&[1.0], 1, 1, 0).is_err());
    assert!(viz::heatmap_png(&[1.0], 1, 1, 20_000).is_err());
    assert!(viz::heatmap_png(&[1.0], 1, 1, usize::MAX).is_err());
    assert!(viz::overlay(&[0.5; 4], &[1.0; 3], 2, 2, 1).is_err());
    assert!(viz::grid(&[], 2, 2, 1, 1, true).is_err());
    assert!(viz::grid(&[("a".into(), vec![0.0; 4])], 2, 2, 0, 1, true).is_err());
    assert!(viz::grid(&[("a".into(), vec![0.0; 3])], 2, 2, 1, 1, true).is_err());
}

#[test]
fn colormap_is_symmetric_and_white_at_zero() {
    assert_eq!(viz::diverging(0.0, 1.0), WHITE);
    assert_eq!(viz::diverging(0.0, 0.0), WHITE);
    assert_eq!(viz::diverging(-0.0, 3.0), WHITE);
    for i in 0..=40 {
        let v = i as f64 * 0.05 - 0.5;
        for s in [0.3, 1.0, 7.0] {
            let [r, g, b] = viz::diverging(v, s);
            assert_eq!(viz::diverging(-v, s), [b, g, r], "v={v} s={s}");
        }
    }
    // Monotone: more |v|, darker.
    let mut last = 3 * 255;
    for i in 0..=20 {
        let [r, g, b] = viz::diverging(i as f64 / 20.0, 1.0);
        let sum = r as i32 + g as i32 + b as i32;
        assert!(sum <= last);
        last = sum;
    }
    assert!(is_red(viz::diverging(1.0, 1.0)));
    assert!(is_blue(viz::diverging(-1.0, 1.0)));
    // Saturates beyond the scale; infinities saturate; NaN is flagged.
    assert_eq!(viz::diverging(5.0, 1.0), viz::diverging(1.0, 1.0));
    assert_eq!(
        viz::diverging(f64::NEG_INFINITY, 1.0),
        viz::diverging(-1.0, 1.0)
    );
    assert_eq!(viz::diverging(f64::NAN, 1.0), viz::NAN_COLOR);
    assert_eq!(viz::grey(0.0), [0, 0, 0]);
    assert_eq!(viz::grey(1.0), WHITE);
    assert_eq!(viz::grey(2.0), WHITE);
    assert_eq!(viz::grey(-1.0), [0, 0, 0]);
    assert_eq!(viz::grey(0.5), [128, 128, 128]);
}

#[test]
fn text_stays_in_its_box() {
    let ink = [10, 20, 30];
    for scale in [1usize, 2, 3] {
        let mut c = Canvas::new(200, 60, WHITE).unwrap();
        let text = "Ab1-é?";
        let (x0, y0) = (7i64, 11i64);
        c.draw_text(x0, y0, text, ink, scale);
        let (bw, bh) = (viz::text_width(text, scale) as i64, 8 * scale as i64);
        assert_eq!(bw, 6 * 8 * scale as i64);
        let mut inside = 0;
        for y in 0..60 {
            for x in 0..200 {
                let p = c.get(x, y).unwrap();
                let in_box = x >= x0 && x < x0 + bw && y >= y0 && y < y0 + bh;
                if p == ink {
                    assert!(in_box, "ink at ({x},{y}) outside the box (scale {scale})");
                    inside += 1;
                } else {
                    assert_eq!(p, WHITE);
                }
            }
        }
        assert!(inside > 20 * scale * scale, "too little ink: {inside}");
        // Each character cell has ink (é is drawn as '?').
        for i in 0..6 {
            let cell = (0..bh).any(|dy| {
                (0..8 * scale as i64)
                    .any(|dx| c.get(x0 + i * 8 * scale as i64 + dx, y0 + dy) == Some(ink))
            });
            assert!(cell, "char {i} empty");
        }
    }
    // Unknown characters look like '?'.
    assert_eq!(viz::glyph('é'), viz::glyph('?'));
    assert_eq!(viz::glyph('\n'), viz::glyph('?'));
    assert_eq!(viz::glyph(' '), [0; 8]);
    // Text partly or wholly outside the canvas, or at huge scales, does not panic.
    let mut c = Canvas::new(10, 10, WHITE).unwrap();
    c.draw_text(-5, -3, "hello", ink, 1);
    c.draw_text(i64::MAX - 3, i64::MIN, "hello", ink, 1000);
    c.draw_text(i64::MIN, 0, "hello", ink, usize::MAX);
    c.draw_text_up(-4, 5, "vertical", ink, 2);
    c.draw_text_up(0, i64::MAX, "x", ink, 1);
    assert!(c.pixels.contains(&ink));
}

#[test]
fn vertical_text_stays_in_its_box() {
    let ink = [200, 0, 0];
    let mut c = Canvas::new(40, 80, WHITE).unwrap();
    c.draw_text_up(5, 6, "abc", ink, 1);
    for y in 0..80 {
        for x in 0..40 {
            if c.get(x, y) == Some(ink) {
                assert!((5..13).contains(&x) && (6..30).contains(&y), "({x},{y})");
            }
        }
    }
    assert!(c.pixels.iter().filter(|&&p| p == ink).count() > 20);
}

#[test]
fn lines_clip_without_panicking() {
    let mut c = Canvas::new(20, 10, WHITE).unwrap();
    let k = [0, 0, 0];
    c.draw_line(0, 0, 19, 9, k);
    assert_eq!(c.get(0, 0), Some(k));
    assert_eq!(c.get(19, 9), Some(k));
    c.draw_line(-1000, 5, 1000, 5, k);
    assert!((0..20).all(|x| c.get(x, 5) == Some(k)));
    c.draw_line(i64::MIN, i64::MIN, i64::MAX, i64::MAX, k);
    c.draw_line(i64::MAX, 0, i64::MAX, 100, k);
    c.draw_thick_line(-50, -50, 50, 50, k, 3);
    c.draw_dashed_line(i64::MIN, i64::MIN, i64::MAX, i64::MAX, k, 3, 2);
    c.draw_dashed_line(i64::MAX, 3, i64::MIN, 3, k, 0, usize::MAX);
    c.draw_line_aa(-1e300, 3.0, 1e300, 4.0, k, 3.0);
    c.draw_line_aa(f64::NAN, 3.0, 1.0, 4.0, k, 3.0);
    c.draw_line_aa(5.0, 5.0, 5.0, 5.0, k, f64::INFINITY);
    c.fill_circle_aa(3.0, 3.0, 1e300, k);
    c.fill_circle_aa(3.0, 3.0, f64::NAN, k);
    c.fill_rect(0, 8, 20, 1, WHITE);
    c.draw_dashed_line(0, 8, 19, 8, k, 3, 2);
    assert_eq!(c.get(0, 8), Some(k));
    assert_eq!(c.get(3, 8), Some(WHITE));
    c.fill_rect(
        i64::MAX - 1,
        i64::MAX - 1,
        usize::MAX,
        usize::MAX,
        [9, 9, 9],
    );
    c.fill_rect(i64::MIN, i64::MIN, usize::MAX, usize::MAX, [9, 9, 9]);
    assert!(!c.pixels.contains(&[9, 9, 9]));
    c.fill_rect(-5, -5, usize::MAX, usize::MAX, k);
    assert!(c.pixels.iter().all(|&p| p == k));
    for m in viz::MARKERS {
        c.draw_marker(-2, 3, m, 5, k);
        c.draw_marker(i64::MAX, i64::MIN, m, usize::MAX, k);
    }
}

#[test]
fn bad_sizes_are_errors() {
    assert!(Canvas::new(0, 10, WHITE).is_err());
    assert!(Canvas::new(10, 0, WHITE).is_err());
    assert!(Canvas::new(16385, 1, WHITE).is_err());
    assert!(Canvas::new(1, 100_000, WHITE).is_err());
    assert!(Canvas::new(16384, 16384, WHITE).is_err(), "too many pixels");
    assert!(Canvas::new(16384, 1, WHITE).is_ok());
    // A canvas whose fields were tampered with does not encode.
    let mut c = Canvas::new(3, 3, WHITE).unwrap();
    c.pixels.pop();
    assert!(c.encode_png().is_err());
    let c = Canvas {
        width: 0,
        height: 0,
        pixels: vec![],
    };
    assert!(c.encode_png().is_err());
    let plot = LinePlot::new("t").series("a", &[(1.0, 1.0)]);
    assert!(plot.render(0, 100).is_err());
    assert!(plot.render(100_000, 100).is_err());
    assert!(plot.render(60, 40).is_err(), "too small for axes");
}

#[test]
fn saving_into_a_missing_directory_fails_and_leaves_nothing() {
    let dir = std::env::temp_dir().join(format!("mho_viz_missing_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("x.png");
    let c = Canvas::new(4, 4, WHITE).unwrap();
    let err = c.save_png(&path).unwrap_err();
    assert!(err.to_string().contains("x.png"), "{err}");
    assert!(!path.exists());
    assert!(!dir.exists());
    // Saving over a directory fails too; a good path works and decodes.
    let tmp = std::env::temp_dir().join(format!("mho_viz_ok_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    assert!(c.save_png(&tmp).is_err());
    let good = tmp.join("ok.png");
    c.save_png(&good).unwrap();
    let (w, h, _) = decode(&std::fs::read(&good).unwrap());
    assert_eq!((w, h), (4, 4));
    let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Completeness error vs steps for five quadrature rules and `exact`, log–log, with
/// zeros and NaNs mixed in.
fn completeness_plot() -> LinePlot {
    let steps: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
    let rules: [(&str, f64, f64); 5] = [
        ("riemann_left", 0.3, 1.0),
        ("riemann_right", 0.25, 1.0),
        ("riemann_middle", 0.05, 2.0),
        ("riemann_trapezoid", 0.1, 2.0),
        ("gausslegendre", 0.02, 6.0),
    ];
    let mut plot = LinePlot::new("Completeness error vs steps")
        .x_label("number of steps")
        .y_label("|sum(attr) - (F(x) - F(x'))|")
        .log_x(true)
        .log_y(true)
        .hline(1e-3, "1e-3")
        .hline(1e-6, "1e-6");
    for (name, c, p) in rules {
        let pts: Vec<(f64, f64)> = steps
            .iter()
            .map(|&n| {
                let e: f64 = c / n.powf(p);
                (n, if e < 1e-15 { 0.0 } else { e })
            })
            .collect();
        plot.add_series(name, &pts);
    }
    plot.add_series("exact", &[(1.0, 3e-16), (2.0, f64::NAN), (4.0, 0.0)]);
    plot
}

#[test]
fn log_plot_with_zero_and_nan_points_renders_with_distinct_series() {
    let plot = completeness_plot();
    let c = plot.render(800, 500).unwrap();
    assert_eq!((c.width, c.height), (800, 500));
    let (w, h, px) = decode(&c.encode_png().unwrap());
    assert_eq!((w, h), (800, 500));
    // Every series' colour appears, and the styles differ.
    let styles: Vec<(Rgb, Marker)> = (0..6).map(viz::series_style).collect();
    for (i, (color, _)) in styles.iter().enumerate() {
        let n = px.iter().filter(|&p| p == color).count();
        assert!(n > 30, "series {i} colour {color:?}: {n} pixels");
    }
    for i in 0..styles.len() {
        for j in 0..i {
            assert_ne!(styles[i].0, styles[j].0);
            assert_ne!(styles[i].1, styles[j].1);
        }
    }
    sample(&c, "completeness.png");
    // Degenerate inputs render without panicking.
    let weird = [
        vec![],
        vec![(f64::NAN, f64::NAN)],
        vec![(0.0, 0.0), (-1.0, -5.0)],
        vec![(1.0, 1.0)],
        vec![(1.0, 1e-300), (1e300, 1e300)],
        vec![(f64::MIN_POSITIVE, 5e-324), (f64::MAX, f64::MAX)],
        vec![(1.0, f64::INFINITY), (2.0, 2.0), (2.0, 2.0)],
    ];
    for pts in &weird {
        for (lx, ly) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = LinePlot::new("")
                .log_x(lx)
                .log_y(ly)
                .series("s", pts)
                .hline(0.0, "zero")
                .hline(f64::NAN, "nan");
            p.render(300, 200).unwrap();
        }
    }
    LinePlot::new("empty").render(300, 200).unwrap();
    // Linear axes with negative values (an ablation curve).
    let mut ab = LinePlot::new("Ablation: accuracy vs neurons removed")
        .x_label("neurons removed")
        .y_label("accuracy");
    let xs: Vec<f64> = (0..=16).map(|i| i as f64 * 4.0).collect();
    ab.add_series(
        "by conductance",
        &xs.iter()
            .map(|&x| (x, 0.92 * (-x / 20.0f64).exp() + 0.1))
            .collect::<Vec<_>>(),
    );
    ab.add_series(
        "random",
        &xs.iter()
            .map(|&x| (x, 0.92 - x * 0.004))
            .collect::<Vec<_>>(),
    );
    let c = ab.render(640, 400).unwrap();
    sample(&c, "ablation.png");
}

#[test]
fn heatmap_grid_overlay_and_colorbar_render() {
    let (h, w) = (12, 12);
    let maps: Vec<(String, Vec<f64>)> = (0..8)
        .map(|k| {
            let v = (0..h * w)
                .map(|i| {
                    let (r, c) = ((i / w) as f64, (i % w) as f64);
                    ((r * 0.4 + k as f64).sin() * (c * 0.5 - k as f64 * 0.3).cos()) * (k + 1) as f64
                })
                .collect();
            (format!("ch {k} ({:.2})", 0.1 * k as f64), v)
        })
        .collect();
    let g = viz::grid(&maps, h, w, 4, 5, true).unwrap();
    let (gw, gh, _) = decode(&g.encode_png().unwrap());
    assert_eq!((gw, gh), (g.width, g.height));
    assert!(g.pixels.iter().any(|&p| is_red(p)));
    assert!(g.pixels.iter().any(|&p| is_blue(p)));
    let m = maps
        .iter()
        .map(|(_, v)| viz::max_abs(v))
        .fold(0.0, f64::max);
    let g = viz::with_colorbar(&g, m).unwrap();
    sample(&g, "grid.png");
    // Own scales: every map reaches full saturation somewhere.
    let own = viz::grid(&maps, h, w, 3, 5, false).unwrap();
    sample(&own, "grid_own_scale.png");

    let image: Vec<f64> = (0..h * w)
        .map(|i| if (i / w + i % w) % 5 < 2 { 1.0 } else { 0.0 })
        .collect();
    let o = viz::overlay(&image, &maps[3].1, h, w, 8).unwrap();
    assert_eq!((o.width, o.height), (2 * w * 8 + 1, h * 8));
    assert_eq!(o.get(0, 0), Some(viz::grey(image[0])));
    assert_eq!(o.get(w as i64 * 8, 5), o.get(w as i64 * 8, 50), "separator");
    let o = viz::with_colorbar(&o, viz::max_abs(&maps[3].1)).unwrap();
    sample(&o, "overlay.png");

    let bar = viz::colorbar(0.00123, 200).unwrap();
    assert!(is_blue(bar.get(2, 5).unwrap()));
    assert!(is_red(bar.get(197, 5).unwrap()));
    assert_eq!(
        bar.get(100, 5).map(|p| p.iter().all(|&c| c > 240)),
        Some(true)
    );
    viz::colorbar(f64::NAN, 0).unwrap();
}

#[test]
fn bar_chart_renders() {
    let chart = viz::BarChart::new(
        "Accuracy after ablation",
        &["none", "top 1", "top 5", "top 10"],
    )
    .y_label("accuracy")
    .x_label("neurons removed")
    .series("conductance", &[0.91, 0.7, 0.42, 0.2])
    .series("random", &[0.91, 0.9, 0.86, 0.8])
    .series("negative", &[0.0, -0.1, f64::NAN]);
    let c = chart.render(640, 400).unwrap();
    for i in 0..3 {
        assert!(c.pixels.contains(&viz::PALETTE[i]));
    }
    sample(&c, "bars.png");
    assert!(viz::BarChart::new("x", &[]).render(300, 200).is_err());
}

#[test]
fn awkward_ranges_render() {
    let narrow = LinePlot::new("narrow log range")
        .log_x(true)
        .log_y(true)
        .series("a", &[(2.0, 3.0), (5.0, 7.0), (20.0, 40.0)]);
    sample(&narrow.render(400, 300).unwrap(), "narrow_log.png");
    let tiny = LinePlot::new("tiny linear values")
        .x_label("x")
        .y_label("y")
        .series("a", &[(-3e-5, 1.5e-7), (0.0, -2e-7), (4e-5, 3e-7)])
        .series("b", &[(-1e-5, 2e5 * 1e-12), (1e-5, 0.0)]);
    sample(&tiny.render(500, 300).unwrap(), "tiny_linear.png");
    let huge = LinePlot::new("300 decades")
        .log_y(true)
        .series("a", &[(0.0, 1e-300), (1.0, 1.0), (2.0, 1e300)])
        .series("b", &[(100000.0, 1e5), (250000.0, 1e-5)]);
    sample(&huge.render(500, 300).unwrap(), "huge_log.png");
    let mut many = LinePlot::new("many series with long names").log_x(true);
    for i in 0..12 {
        let pts: Vec<(f64, f64)> = (0..6)
            .map(|k| (10f64.powi(k), i as f64 + (k as f64).sin()))
            .collect();
        many.add_series(format!("series number {i} with a long name indeed"), &pts);
    }
    sample(&many.render(700, 400).unwrap(), "many_series.png");
}

fn special_f64() -> impl proptest::strategy::Strategy<Value = f64> {
    use proptest::prelude::*;
    prop_oneof![
        -1e6f64..1e6,
        1e-12f64..1e-3,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(-f64::MAX),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn plots_never_panic(
        series in proptest::collection::vec(
            proptest::collection::vec((special_f64(), special_f64()), 0..12), 0..5),
        refs in proptest::collection::vec(special_f64(), 0..3),
        log_x: bool,
        log_y: bool,
        width in 0usize..900,
        height in 0usize..600,
    ) {
        let mut p = LinePlot::new("fuzz").x_label("x").y_label("y").log_x(log_x).log_y(log_y);
        for (i, pts) in series.iter().enumerate() {
            p.add_series(format!("s{i}"), pts);
        }
        for &r in &refs {
            p.add_hline(r, "ref");
        }
        if let Ok(c) = p.render(width, height) {
            proptest::prop_assert_eq!((c.width, c.height), (width, height));
            proptest::prop_assert_eq!(c.pixels.len(), width * height);
        }
        let values: Vec<f64> = series.iter().flatten().map(|p| p.0).collect();
        if !values.is_empty() {
            let c = viz::heatmap_png(&values, 1, values.len(), 2).unwrap();
            proptest::prop_assert_eq!(c.width, values.len() * 2);
            viz::with_colorbar(&c, viz::max_abs(&values)).unwrap();
        }
    }
}
