//! The exact rule (`exact: Some(ExactOptions::default())`, issue 5 item 5), f64 unless said:
//!
//! - **Piecewise-linear CNNs, conv1d nets and MLPs** (proptest): integrated gradients and
//!   every layer's conductance sum to F(x) − F(x') within 1e-9 of |F(x) − F(x')|;
//!   `report.pieces` holds one count ≥ 1 per example, `rule` is "exact".
//! - **Against a fine midpoint rule** on random ReLU networks (fixed seeds): every IG_j is
//!   within the midpoint rule's provable error |x_j − x'_j|·V_j/(2n) (+ rounding) of the
//!   exact value at n = 20,000 and at n = 200,000 (V_j: total variation of ∂F/∂x_j along
//!   the path) — the exact value is the midpoint rule's limit.
//!   The "equal to 1e-6" cannot hold in general: with kinks, dF/dα is a step
//!   function and the midpoint rule's error is O(1/n), ~1e-5 relative at n = 20,000 on a
//!   single kink (`midpoint_error_on_one_kink_is_first_order` shows it analytically).
//! - **Smooth heads** (Softmax, Tanh, Sigmoid after a piecewise-linear body) and fully
//!   smooth networks reach 1e-9 relative completeness with the default tolerance.
//! - **f32**: completeness within 1e-4 relative, with the default options, on
//!   piecewise-linear networks and with smooth heads (plus 4 ε₃₂·(Σ|attribution| + |F(x)| +
//!   |F(x')|), the f32 rounding of terms and values, which matters only for a tiny ΔF).
//! - **By events**: against the walk (every method and layer), and integrated gradients (lines
//!   kept only up to the last switch layer) against the input's conductance (every line
//!   kept) to 1e-12, on random piecewise-linear networks; and against the walk through a
//!   linear layer over the rows of a [C, L] input, whose cones mix rows.
//! - **A kink after a smooth layer** (ReLU after Tanh) is integrated to the tolerance.
//! - **Bad input**: `max_pieces` below a path's piece count is an error naming
//!   --max-pieces (and exactly the piece count is accepted); NaN or ±∞ in the input or
//!   the baseline is an error from the walk, not a panic and not NaN attributions —
//!   also for networks whose first layer is a ReLU or a max pool, which may swallow NaN.

// Examples are indexed across several tensors and vectors at once.
#![allow(clippy::needless_range_loop)]

mod support;

use mho::attribution::{attribute, Baseline, ExactOptions, LayerSelection, Method, Rule};
use mho::nn::{Architecture, LayerSpec, Model};
use mho::Tensor;
use proptest::prelude::*;
use support::*;

fn exact() -> Option<ExactOptions> {
    Some(ExactOptions::default())
}

/// Checks exact IG and every layer's conductance against F(x) − F(x') to `tol` relative,
/// plus rounding: 64 ε (|F(x)| + |F(x')|) for each of the example's pieces and once more.
/// When F changes by 6e-8 around 0.5 (a sigmoid head), no computation can resolve ΔF to
/// 1e-9 relative. And the walk accepts each smoothly refined piece when Σ IG over it
/// matches F(b) − F(a) up to 64 ε times the network's magnitudes at its ends (which are at
/// least |F|), so that floor adds up over the pieces. Seed 4799200907037169339 (Conv1d,
/// Any, depth 5), example 2: ΔF = 5.5e-6 around F = 0.117, 156 pieces, error 3.3e-14,
/// i.e. 280 ε of F, but 6e-9 of ΔF.
fn check_exact_completeness(net: &Net, tol: f64) -> Result<(), TestCaseError> {
    let change = net.output_change();
    for method in [Method::IntegratedGradients, Method::Conductance] {
        let mut q = net.request(method);
        q.exact = exact();
        let r = net.run(&q);
        prop_assert_eq!(&r.rule, "exact");
        let pieces = r.pieces.clone().expect("exact reports pieces");
        prop_assert_eq!(pieces.len(), net.n());
        prop_assert!(pieces.iter().all(|&p| p >= 1), "pieces {:?}", pieces);
        for (name, t) in &r.attributions {
            for e in 0..net.n() {
                let err = (sum_of(t, e) - change[e]).abs();
                let rounding = 64.0
                    * f64::EPSILON
                    * (r.outputs_input[e].abs() + r.outputs_baseline[e].abs())
                    * (pieces[e] as f64 + 1.0);
                prop_assert!(
                    err <= tol * change[e].abs() + rounding,
                    "{method} {name}: example {e}: Σ = {:e}, F(x) − F(x') = {:e}, relative error {:e}, pieces {pieces:?}\n{net:?}",
                    sum_of(t, e),
                    change[e],
                    err / change[e].abs()
                );
                let d = r.delta_of(name).unwrap()[e];
                prop_assert!(
                    (d - (sum_of(t, e) - change[e])).abs()
                        <= 1e-12 * change[e].abs().max(abs_sum_of(t, e))
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(40))]

    /// Piecewise-linear networks: exact up to rounding.
    #[test]
    fn exact_completeness_piecewise_linear(net in nets(Kind::PiecewiseLinear)) {
        check_exact_completeness(&net, 1e-9)?;
    }
}

/// Runs `method` on every layer under the exact rule, by events and by the walk.
fn events_and_walk(
    net: &Net,
    method: Method,
) -> (mho::attribution::Report, mho::attribution::Report) {
    let mut q = net.request(method);
    q.layers = LayerSelection::All;
    q.exact = exact();
    let by_events = net.run(&q);
    q.exact = Some(ExactOptions {
        events: false,
        ..ExactOptions::default()
    });
    (by_events, net.run(&q))
}

/// The highest max-pool layer some window of which has its two largest candidates equal
/// (within 1e-12 of their size, and not zero) at α = 0, ¼, ½, ¾ or 1, if any.
///
/// Such candidates are on one line along a stretch of the path (the network computes the
/// same function of the input for both, e.g. after an average pool that sees one input
/// through different windows). Which of them gets ∂F/∂y is then a convention: the events
/// give it to the first, as exact arithmetic would; a forward pass at a point compares
/// two roundings of equal values. Seed 17148300804647570611 (CNN, depth 5): both exact
/// engines and a 200,000-step midpoint rule agree on every layer's total and on integrated
/// gradients, but route ∂F/∂y differently below a 3×2 max pool whose candidates all equal
/// 1.35714 at x' and 1.53749 at x, so per-unit conductances below it differ by up to 3e-3.
fn tied_max_pool(net: &Net) -> Option<usize> {
    let shapes = net.model.layer_shapes().unwrap();
    let mut highest = None;
    for a in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let point = net
            .baseline
            .zip_map(&net.x, |b, x| b + a * (x - b))
            .unwrap();
        let outs = net.model.forward_all(&point).unwrap();
        for (i, spec) in net.layers().iter().enumerate() {
            let (k, st, pd, dl) = match spec {
                LayerSpec::MaxPool2d {
                    kernel_size,
                    stride,
                    padding,
                    dilation,
                    ..
                } => (*kernel_size, *stride, *padding, *dilation),
                LayerSpec::MaxPool1d {
                    kernel_size,
                    stride,
                    padding,
                    dilation,
                    ..
                } => (
                    [1, *kernel_size],
                    [1, *stride],
                    [0, *padding],
                    [1, *dilation],
                ),
                _ => continue,
            };
            let input = if i == 0 { &point } else { &outs[i - 1] };
            let in_shape = if i == 0 {
                net.model.input_shape().to_vec()
            } else {
                shapes[i - 1].clone()
            };
            let (c, h, w) = match in_shape.as_slice() {
                [c, h, w] => (*c, *h, *w),
                [c, l] => (*c, 1, *l),
                _ => continue,
            };
            let (oh, ow) = match shapes[i].as_slice() {
                [_, oh, ow] => (*oh, *ow),
                [_, ol] => (1, *ol),
                _ => continue,
            };
            let per = c * h * w;
            for e in 0..net.n() {
                let v = &input.data()[e * per..(e + 1) * per];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut cands = Vec::new();
                            for ky in 0..k[0] {
                                let y = (oy * st[0] + ky * dl[0]) as isize - pd[0] as isize;
                                for kx in 0..k[1] {
                                    let x = (ox * st[1] + kx * dl[1]) as isize - pd[1] as isize;
                                    if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                                        cands.push(v[(ch * h + y as usize) * w + x as usize]);
                                    }
                                }
                            }
                            cands.sort_by(|a, b| b.total_cmp(a));
                            if cands.len() >= 2
                                && cands[0] != 0.0
                                && (cands[0] - cands[1]).abs() <= 1e-12 * cands[0].abs()
                            {
                                highest = highest.max(Some(i));
                            }
                        }
                    }
                }
            }
        }
    }
    highest
}

/// The checks of `events_agree_with_the_walk` on one net.
fn check_events_against_walk(net: &Net) -> Result<(), TestCaseError> {
    let scale_f = net
        .model
        .forward(&net.x)
        .unwrap()
        .data()
        .iter()
        .chain(net.model.forward(&net.baseline).unwrap().data())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for method in [
        Method::IntegratedGradients,
        Method::Conductance,
        Method::InternalInfluence,
    ] {
        let (ev, walk) = events_and_walk(net, method);
        let stretches = if net.n() == 1 { 2 } else { net.n() };
        prop_assert_eq!(
            ev.gradient_evaluations,
            stretches,
            "{} did not run by events\n{:?}",
            method,
            net
        );
        // Kinks a few 1e-12 apart (switches moved by the same kink, or two windows sharing
        // a pair of candidates) are one piece or several depending on rounding: the walk
        // merges kinks closer than 1.5e-12 after locating them layer by layer, the events
        // locate each from its own line. Seed 14797836094007884832 (Conv1d, depth 5): a
        // window's winner change 7e-12 after the ReLU kink that causes it, 21 pieces
        // against the walk's 20; seed 7993088698144703126 (CNN, depth 4): two windows
        // switching at one α, which the walk places 3e-12 apart, 20 pieces against 22.
        // The attributions are equal. So counts must agree to 2 + 2%, except with tied
        // max-pool candidates (`tied_max_pool`), where the walk also finds kinks wherever
        // rounding makes their equal lines cross.
        let tied = tied_max_pool(net);
        let (pe, pw) = (ev.pieces.clone().unwrap(), walk.pieces.clone().unwrap());
        prop_assert!(
            tied.is_some()
                || pe
                    .iter()
                    .zip(&pw)
                    .all(|(a, b)| a.abs_diff(*b) <= 2 + b / 50),
            "{} pieces {:?} by events, {:?} by the walk\n{:?}",
            method,
            pe,
            pw,
            net
        );
        prop_assert_eq!(ev.attributions.len(), walk.attributions.len());
        // Below a max pool with tied candidates, per-unit values are a convention
        // (see `tied_max_pool`): there, each example's sum is compared instead, which
        // for integrated gradients and conductance is F(x) − F(x') whatever the
        // routing; internal influence has no such invariant, and is not compared there.
        for ((name, a), (wname, b)) in ev.attributions.iter().zip(&walk.attributions) {
            prop_assert_eq!(name, wname);
            let index = name.parse::<usize>().ok();
            let below_tie = tied.is_some_and(|t| index.is_none_or(|i| i < t));
            if below_tie && method == Method::InternalInfluence {
                continue;
            }
            let (a, b) = if below_tie {
                let per = a.len() / net.n();
                let sums = |t: &Tensor<f64>| -> Vec<f64> {
                    t.data().chunks(per).map(|c| c.iter().sum()).collect()
                };
                (sums(a), sums(b))
            } else {
                (a.data().to_vec(), b.data().to_vec())
            };
            let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            prop_assert!(
                worst <= 1e-9 * scale + 1e-12 * scale_f,
                "{} layer {}: events and walk differ by {:e} (largest |value| {:e}){}\n{:?}",
                method,
                name,
                worst,
                scale,
                if below_tie {
                    " in per-example sums"
                } else {
                    ""
                },
                net
            );
        }
    }
    Ok(())
}

/// A linear layer over the last axis of a [C, L] input (one row per channel), after
/// convolutions: an event's cone there has units of several rows, in no row order (each
/// changed input of the convolution below adds its outputs channel by channel). Events
/// against the walk, for integrated gradients and every layer's conductance.
#[test]
fn events_agree_with_the_walk_through_a_linear_layer_over_rows() {
    // 3 output channels, kernel 3, "same" padding.
    let conv = |in_channels| LayerSpec::Conv1d {
        in_channels,
        out_channels: 3,
        kernel_size: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
        bias: true,
    };
    let layers = vec![
        conv(2),
        LayerSpec::ReLU,
        conv(3),
        LayerSpec::ReLU,
        conv(3),
        LayerSpec::Linear {
            in_features: 6,
            out_features: 5,
            bias: true,
        },
        LayerSpec::ReLU,
        LayerSpec::Flatten {
            start_dim: 1,
            end_dim: -1,
        },
        LayerSpec::Linear {
            in_features: 15,
            out_features: 3,
            bias: true,
        },
    ];
    let arch = Architecture::new(vec![2, 6], layers).unwrap();
    for seed in 0..20u64 {
        let model = Model::<f64>::init(arch.clone(), seed).unwrap();
        let x = Tensor::new(
            vec![2, 2, 6],
            (0..24)
                .map(|i| ((i * 7 + seed as usize * 5) % 11) as f64 / 3.0 - 1.6)
                .collect(),
        )
        .unwrap();
        for method in [Method::IntegratedGradients, Method::Conductance] {
            let mut q = mho::attribution::Request::new(method, (seed % 3) as usize);
            q.layers = LayerSelection::All;
            q.exact = exact();
            let by_events = attribute(&model, &x, &q).unwrap();
            q.exact = Some(ExactOptions {
                events: false,
                ..ExactOptions::default()
            });
            let walk = attribute(&model, &x, &q).unwrap();
            assert_eq!(by_events.gradient_evaluations, 2, "events not used");
            for ((name, a), (_, b)) in by_events.attributions.iter().zip(&walk.attributions) {
                let scale = b.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let worst = a
                    .data()
                    .iter()
                    .zip(b.data())
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    worst <= 1e-9 * scale + 1e-15,
                    "seed {seed} {method} layer {name}: events and walk differ by {worst:e} (largest |value| {scale:e})"
                );
            }
        }
    }
}

/// The nets behind the exceptions of `check_events_against_walk`, pinned: kinks 7e-12
/// apart (21 pieces against 20), a max pool with tied candidates, and two windows
/// switching at one α (20 pieces against 22).
#[test]
fn events_agree_with_the_walk_on_the_documented_nets() {
    for (family, depth, seed) in [
        (Family::Conv1d, 5, 14797836094007884832),
        (Family::Cnn, 5, 17148300804647570611),
        (Family::Cnn, 4, 7993088698144703126),
    ] {
        let net = build(Kind::PiecewiseLinear, family, depth, seed);
        if let Err(e) = check_events_against_walk(&net) {
            panic!("{e}");
        }
    }
    let tied = build(Kind::PiecewiseLinear, Family::Cnn, 5, 17148300804647570611);
    assert_eq!(tied_max_pool(&tied), Some(17));
}

/// The events' integrated gradients (which keep lines only up to the last switch layer
/// and take C above it from a constant gradient) against the input's conductance from a
/// conductance request (which keeps every line and sums C down from the top).
fn check_ig_against_input_conductance(net: &Net) -> Result<(), TestCaseError> {
    let mut q = net.request(Method::IntegratedGradients);
    q.exact = exact();
    let ig = net.run(&q);
    let mut q = net.request(Method::Conductance);
    q.layers = LayerSelection::Names(vec!["input".into()]);
    q.exact = exact();
    let cond = net.run(&q);
    prop_assert_eq!(&ig.pieces, &cond.pieces);
    let (a, b) = (&ig.attributions[0].1, &cond.attributions[0].1);
    let scale = b.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    prop_assert!(
        worst <= 1e-12 * scale + 1e-300,
        "integrated gradients and the input's conductance differ by {:e} (largest |value| {:e})\n{:?}",
        worst,
        scale,
        net
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(200))]

    /// Without hidden conductance the events keep lines only up to the last switch layer's
    /// input and take C above it as (α − α₀) times a constant gradient; with it, they keep
    /// every line and sum C down from the top. On 200 random piecewise-linear networks both
    /// give the same pieces, and integrated gradients equal the input's conductance to
    /// 1e-12 of their largest magnitude (rounding: the gradient above the last switch is
    /// summed once instead of at each kink).
    #[test]
    fn integrated_gradients_equal_the_inputs_conductance(net in nets(Kind::PiecewiseLinear)) {
        check_ig_against_input_conductance(&net)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Integration by events (`ExactOptions::events`, the default) against the walk with a
    /// gradient per piece, on 1000 random piecewise-linear networks: integrated gradients and
    /// every layer's conductance and internal influence agree to 1e-9 of the layer's
    /// largest magnitude (plus 1e-12 of |F(x)| + |F(x')|) — unit by unit, except below a
    /// max pool with tied candidates, where integrated gradients and conductance compare
    /// per-example sums — and the piece counts to 2 + 2% (without tied candidates).
    /// The events are really used: they report one backward pass per stretch of path
    /// (two for one example, one per example otherwise), the walk one per piece.
    #[test]
    fn events_agree_with_the_walk(net in nets(Kind::PiecewiseLinear)) {
        check_events_against_walk(&net)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// A piecewise-linear body with a smooth head: kinks located exactly, the smooth part
    /// integrated adaptively to the default tolerance 1e-10.
    #[test]
    fn exact_completeness_smooth_heads(net in nets(Kind::PiecewiseLinear), choice in 0usize..4) {
        check_exact_completeness(&with_smooth_head(&net, choice), 1e-9)?;
    }

    /// Fully smooth networks (Tanh, Sigmoid, average pooling, Softmax).
    #[test]
    fn exact_completeness_smooth(net in nets(Kind::Smooth)) {
        check_exact_completeness(&net, 1e-9)?;
    }
}

proptest! {
    #![proptest_config(config(12))]

    /// Any supported network, including kinks after smooth layers (which the walk cannot
    /// locate; adaptive bisection must resolve them).
    #[test]
    fn exact_completeness_any(net in nets(Kind::Any)) {
        check_exact_completeness(&net, 1e-9)?;
    }

    /// f32, piecewise-linear networks: completeness of exact IG and every layer's
    /// conductance within 1e-4 relative (plus the f32 rounding floor of `check_f32`).
    #[test]
    fn exact_completeness_f32_piecewise_linear(net in nets(Kind::PiecewiseLinear)) {
        check_f32(&net)?;
    }
}

/// Exact IG and every layer's conductance in f32 sum to F(x) − F(x') within 1e-4 relative
/// (plus a rounding floor of 4 ε₃₂ of the terms' and outputs' size, below),
/// with the default options. The reference is the f32 model's function evaluated exactly
/// (in f64, on the f32-rounded weights, input and baseline): F(x) − F(x') evaluated *in
/// f32* carries a rounding error of ~ε₃₂·|F| ≈ 6e-8·|F|, which alone exceeds 1e-4·|ΔF|
/// whenever |ΔF| < 6e-4·|F| (the report's f32 `delta` includes it).
fn check_f32(net: &Net) -> Result<(), TestCaseError> {
    let model: Model<f32> = net.model.cast();
    let x: Tensor<f32> = net.x.cast();
    let change = output_change_of(
        &model.cast(),
        &x.cast(),
        &net.baseline.cast::<f32>().cast(),
        net.target,
    );
    for method in [Method::IntegratedGradients, Method::Conductance] {
        let mut q = net.request(method);
        q.exact = exact();
        let r = attribute(&model, &x, &q)
            .map_err(|e| TestCaseError::fail(format!("f32 {method}: error {}\n{net:?}", e.0)))?;
        prop_assert_eq!(&r.precision, "f32");
        for (name, t) in &r.attributions {
            for e in 0..net.n() {
                let err = (sum_of(t, e) - change[e]).abs();
                // Rounding floor: the attributions are computed in f32 from f32 values of
                // the network, so their sum cannot be trusted below a few ε₃₂ of the
                // terms' size Σ|attribution| and of the outputs' size |F(x)| + |F(x')|.
                // Without cancellation that floor is far under 1e-4·|ΔF|; it matters only
                // when ΔF is tiny next to the terms or to F. Found by this test at 1500 and
                // 3000 cases (observed errors, in units of ε₃₂):
                // - CNN seed 12440385500665653660, IG: ΔF = 7.73e-6 from Σ|IG_j| = 2.05e-2,
                //   error 1.08e-9 = 1.4e-4·|ΔF| = 0.44 ε₃₂·Σ|IG_j|;
                // - MLP, conductance of a late layer: F(x) = −0.19135, ΔF = −2.32e-5, error
                //   4.5e-9 = 1.9e-4·|ΔF| = 0.2 ε₃₂·|F(x)|.
                let size =
                    abs_sum_of(t, e) + r.outputs_input[e].abs() + r.outputs_baseline[e].abs();
                let rounding = 4.0 * f32::EPSILON as f64 * size;
                prop_assert!(
                    err <= 1e-4 * change[e].abs() + rounding,
                    "f32 {method} {name}: example {e}: Σ = {:e}, Σ|·| = {:e}, F(x) − F(x') = {:e}, relative error {:e}, F(x) = {:e}, F(x') = {:e}, pieces {:?}\n{net:?}",
                    sum_of(t, e),
                    abs_sum_of(t, e),
                    change[e],
                    err / change[e].abs(),
                    r.outputs_input[e],
                    r.outputs_baseline[e],
                    r.pieces
                );
            }
        }
    }
    Ok(())
}

/// f32 with smooth heads (Softmax; Tanh; Sigmoid; Sigmoid and Softmax) on small MLPs, with
/// the default options: the issue asks for 1e-4 in f32. (The default tolerance, 1e-10, is
/// below f32 rounding; if the walk insists on it, it bisects until --max-pieces.)
#[test]
fn exact_completeness_f32_smooth_heads() {
    let mut failures = Vec::new();
    for choice in 0..4usize {
        let net = with_smooth_head(
            &build(Kind::PiecewiseLinear, Family::Mlp, 2, 40 + choice as u64),
            choice,
        );
        let t0 = std::time::Instant::now();
        if let Err(e) = check_f32(&net) {
            failures.push(format!("head {choice} ({:.1?}): {e}", t0.elapsed()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A ReLU after a smooth layer, whose kink the walk does not locate (it stops locating
/// kinks at the first smooth layer) and adaptive Gauss–Legendre must resolve to the
/// tolerance: F = relu(tanh(α) − tanh(0.995)) on the path from x' = 0 to x = 1, so
/// F(x) − F(x') = tanh(1) − tanh(0.995) ≈ 2.1e-3, all of it gained on [0.995, 1]. The
/// 8-point rule's last node on [0, 1] is at 0.980, and on the half [½, 1] at 0.990: both
/// estimates see only the flat part, agree exactly, and would accept IG = 0.
#[test]
fn exact_kink_after_a_smooth_layer() {
    let c = 0.995f64.tanh();
    let arch = Architecture::new(
        vec![1],
        vec![
            LayerSpec::Linear {
                in_features: 1,
                out_features: 1,
                bias: false,
            },
            LayerSpec::Tanh,
            LayerSpec::Linear {
                in_features: 1,
                out_features: 1,
                bias: true,
            },
            LayerSpec::ReLU,
            LayerSpec::Linear {
                in_features: 1,
                out_features: 1,
                bias: false,
            },
        ],
    )
    .unwrap();
    let t = |v: f64, shape: &[usize]| Tensor::new(shape.to_vec(), vec![v]).unwrap();
    let model = Model::<f64>::from_params(
        arch,
        vec![
            ("0.weight".into(), t(1.0, &[1, 1])),
            ("2.weight".into(), t(1.0, &[1, 1])),
            ("2.bias".into(), t(-c, &[1])),
            ("4.weight".into(), t(1.0, &[1, 1])),
        ],
    )
    .unwrap();
    let x = t(1.0, &[1, 1]);
    let change = 1f64.tanh() - c;
    for method in [Method::IntegratedGradients, Method::Conductance] {
        let mut q = mho::attribution::Request::new(method, 0);
        q.exact = exact();
        let r = attribute(&model, &x, &q).unwrap();
        for (name, a) in &r.attributions {
            let err = (sum_of(a, 0) - change).abs() / change;
            assert!(
                err <= 1e-9,
                "{method} {name}: Σ = {:e}, F(x) − F(x') = {change:e}, relative error {err:e}, pieces {:?}",
                sum_of(a, 0),
                r.pieces
            );
        }
    }
}

/// Exact IG against the midpoint rule at n = 20,000 and 200,000 on random ReLU networks
/// (fixed seeds, every family): per input element, |IG_mid − IG_exact| ≤ |x_j − x'_j|·V_j/(2n)
/// (V_j from the exact pieces' gradients) plus rounding — n·ε·|x_j − x'_j|·max|∂F/∂x_j| for
/// summing n terms, and 1e-13 of max |IG|. The bound falls 10-fold from n = 20,000 to
/// 200,000, so the exact value is the midpoint rule's limit. (The difference itself need
/// not fall 10-fold: for a step in dF/dα it is the jump times a sawtooth of n·position.)
#[test]
fn exact_is_the_limit_of_the_midpoint_rule() {
    for seed in 0..6u64 {
        let family = [Family::Mlp, Family::Cnn, Family::Conv1d][seed as usize % 3];
        let net = build(
            Kind::PiecewiseLinear,
            family,
            2 + seed as usize % 3,
            1000 + seed,
        );
        let mut q = net.request(Method::IntegratedGradients);
        q.exact = exact();
        let ex = net.run(&q).get("input").unwrap().clone();
        let (tv, gmax) = gradient_variation(&net);
        let scale = max_abs(ex.data());
        let u = net.x.len() / net.n();
        let mut diffs = Vec::new();
        for n in [20_000usize, 200_000] {
            let mut m = net.request(Method::IntegratedGradients);
            m.rule = Rule::RiemannMiddle;
            m.steps = n;
            m.batch_steps = 20_000;
            let mid = net.run(&m).get("input").unwrap().clone();
            for e in 0..net.n() {
                for j in 0..u {
                    let i = e * u + j;
                    let d = (net.x.data()[i] - net.baseline.data()[i]).abs();
                    let rounding = n as f64 * f64::EPSILON * d * gmax[e][j] + 1e-13 * scale;
                    let bound = d * tv[e][j] / (2.0 * n as f64) + rounding;
                    let diff = (mid.data()[i] - ex.data()[i]).abs();
                    assert!(
                        diff <= bound,
                        "n = {n}, example {e}, input {j}: |mid − exact| = {diff:e} > bound {bound:e}\n{net:?}"
                    );
                }
            }
            diffs.push(max_diff(mid.data(), ex.data()));
        }
        eprintln!(
            "seed {seed} {family:?}: max |mid − exact| / max |IG| = {:e} (n = 20,000), {:e} (n = 200,000)",
            diffs[0] / scale,
            diffs[1] / scale
        );
    }
}

/// F = relu(x − s) with x' = 0, x = 1: exact IG = 1 − s. The 20,000-step midpoint rule
/// counts the nodes (k + ½)/n beyond the kink: for s·n = 6000.25 that is 14,000 nodes,
/// IG = 0.7, off by 0.25/n = 1.25e-5 (relative 1.8e-5): no correct implementation can
/// make exact IG equal a 20,000-step midpoint rule to 1e-6 on a network with kinks.
#[test]
fn midpoint_error_on_one_kink_is_first_order() {
    let n = 20_000usize;
    let s = 6000.25 / n as f64;
    let arch = Architecture::new(
        vec![1],
        vec![
            LayerSpec::Linear {
                in_features: 1,
                out_features: 1,
                bias: true,
            },
            LayerSpec::ReLU,
            LayerSpec::Linear {
                in_features: 1,
                out_features: 1,
                bias: false,
            },
        ],
    )
    .unwrap();
    let t = |v: f64, shape: &[usize]| Tensor::new(shape.to_vec(), vec![v]).unwrap();
    let model = Model::<f64>::from_params(
        arch,
        vec![
            ("0.weight".into(), t(1.0, &[1, 1])),
            ("0.bias".into(), t(-s, &[1])),
            ("2.weight".into(), t(1.0, &[1, 1])),
        ],
    )
    .unwrap();
    let x = t(1.0, &[1, 1]);
    let mut q = mho::attribution::Request::new(Method::IntegratedGradients, 0);
    q.exact = exact();
    let ex = attribute(&model, &x, &q).unwrap();
    assert!((ex.get("input").unwrap().data()[0] - (1.0 - s)).abs() <= 1e-15);
    assert_eq!(ex.pieces, Some(vec![2]));
    q.exact = None;
    q.rule = Rule::RiemannMiddle;
    q.steps = n;
    q.batch_steps = n;
    let mid = attribute(&model, &x, &q).unwrap();
    let m = mid.get("input").unwrap().data()[0];
    assert!((m - 0.7).abs() <= 1e-12, "midpoint IG {m}");
    let rel = (m - (1.0 - s)).abs() / (1.0 - s);
    assert!(rel > 1e-6 && (rel - 0.25 / n as f64 / (1.0 - s)).abs() < 1e-12);
}

// ---------------------------------------------------------------- bad input

/// The worked example of docs/attribution.md: one kink on the path from 0 to (2, 1).
fn kinked() -> (Model<f64>, Tensor<f64>) {
    let arch = Architecture::new(
        vec![2],
        vec![
            LayerSpec::Linear {
                in_features: 2,
                out_features: 2,
                bias: true,
            },
            LayerSpec::ReLU,
            LayerSpec::Linear {
                in_features: 2,
                out_features: 1,
                bias: true,
            },
        ],
    )
    .unwrap();
    let t = |shape: &[usize], d: &[f64]| Tensor::new(shape.to_vec(), d.to_vec()).unwrap();
    let model = Model::from_params(
        arch,
        vec![
            ("0.weight".into(), t(&[2, 2], &[1.0, -1.0, 1.0, 1.0])),
            ("0.bias".into(), t(&[2], &[0.0, -1.5])),
            ("2.weight".into(), t(&[1, 2], &[1.0, 2.0])),
            ("2.bias".into(), t(&[1], &[0.0])),
        ],
    )
    .unwrap();
    (model, t(&[1, 2], &[2.0, 1.0]))
}

#[test]
fn max_pieces_one_on_a_kinked_path_is_an_error() {
    let (model, x) = kinked();
    for method in [
        Method::IntegratedGradients,
        Method::Conductance,
        Method::InternalInfluence,
    ] {
        let mut q = mho::attribution::Request::new(method, 0);
        q.exact = Some(ExactOptions {
            max_pieces: 1,
            ..ExactOptions::default()
        });
        let err = attribute(&model, &x, &q).expect_err("2 pieces > --max-pieces 1");
        assert!(err.0.contains("--max-pieces"), "{method}: {}", err.0);
        assert!(!err.0.contains('\n'), "one line: {}", err.0);
        q.exact = Some(ExactOptions {
            max_pieces: 2,
            ..ExactOptions::default()
        });
        assert_eq!(attribute(&model, &x, &q).unwrap().pieces, Some(vec![2]));
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// On random networks: max_pieces = (largest piece count) − 1 fails naming
    /// --max-pieces; max_pieces = that count succeeds with the same pieces.
    #[test]
    fn max_pieces_is_the_limit(net in nets(Kind::PiecewiseLinear), choice in 0usize..5) {
        let net = if choice < 4 { with_smooth_head(&net, choice) } else { net };
        let mut q = net.request(Method::IntegratedGradients);
        q.exact = exact();
        let pieces = net.run(&q).pieces.unwrap();
        let most = *pieces.iter().max().unwrap();
        prop_assume!(most >= 2);
        q.exact = Some(ExactOptions { max_pieces: most - 1, ..ExactOptions::default() });
        match attribute(&net.model, &net.x, &q) {
            Ok(r) => prop_assert!(false, "max_pieces {} accepted pieces {:?}\n{net:?}", most - 1, r.pieces),
            Err(e) => prop_assert!(e.0.contains("--max-pieces"), "{}", e.0),
        }
        q.exact = Some(ExactOptions { max_pieces: most, ..ExactOptions::default() });
        let r = attribute(&net.model, &net.x, &q);
        prop_assert!(r.is_ok(), "max_pieces {most} rejected: {:?}\n{net:?}", r.err());
        prop_assert_eq!(r.unwrap().pieces.unwrap(), pieces);
    }
}

/// Networks to feed non-finite values: the kinked MLP, and nets whose first layer is a
/// ReLU or a max pool (which could turn NaN into a finite value if the walk trusted them).
fn nan_nets() -> Vec<(&'static str, Model<f64>, Tensor<f64>)> {
    let (kinked, x) = kinked();
    let relu_first = {
        let arch = Architecture::new(
            vec![2],
            vec![
                LayerSpec::ReLU,
                LayerSpec::Linear {
                    in_features: 2,
                    out_features: 2,
                    bias: true,
                },
            ],
        )
        .unwrap();
        Model::<f64>::init(arch, 7).unwrap()
    };
    let pool_first = {
        let arch = Architecture::new(
            vec![1, 2, 2],
            vec![
                LayerSpec::MaxPool2d {
                    kernel_size: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    dilation: [1, 1],
                    ceil_mode: false,
                },
                LayerSpec::Flatten {
                    start_dim: 1,
                    end_dim: -1,
                },
                LayerSpec::Linear {
                    in_features: 1,
                    out_features: 2,
                    bias: true,
                },
            ],
        )
        .unwrap();
        Model::<f64>::init(arch, 8).unwrap()
    };
    vec![
        ("kinked MLP", kinked, x),
        (
            "ReLU first",
            relu_first,
            Tensor::new(vec![1, 2], vec![1.0, -0.5]).unwrap(),
        ),
        (
            "MaxPool2d first",
            pool_first,
            Tensor::new(vec![1, 1, 2, 2], vec![1.0, -0.5, 0.25, 2.0]).unwrap(),
        ),
    ]
}

/// A copy of `t` with element `i` set to `v`.
fn poisoned(t: &Tensor<f64>, i: usize, v: f64) -> Tensor<f64> {
    let mut d = t.data().to_vec();
    d[i] = v;
    Tensor::new(t.shape().to_vec(), d).unwrap()
}

/// Runs `body` in a child process — this test binary filtered to `test_name`, with
/// MHO_EXACT_CHILD set — limited to 2 GB of address space and 120 s, so that a walk that
/// loops or allocates without bound fails the test instead of exhausting the machine.
/// The child prints "case: …" before each case; a failure shows the last one started.
fn guarded(test_name: &str, body: impl FnOnce()) {
    if std::env::var_os("MHO_EXACT_CHILD").is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000; exec timeout 120 \"$0\" \"$@\"")
        .arg(&exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("MHO_EXACT_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A line may start with the harness's "test … ... " before the child's output.
    let after = |tag: &'static str| {
        text.lines()
            .filter_map(move |l| l.find(tag).map(|i| &l[i..]))
            .collect::<Vec<&str>>()
    };
    let (cases, fails) = (after("case: "), after("FAIL "));
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test_name}: child {} after {} cases; last case started: {:?}\n{}\n{}",
        match out.status.code() {
            Some(124) => "timed out (120 s)".to_string(),
            Some(c) => format!("exited with {c}"),
            None => "was killed".to_string(),
        },
        cases.len(),
        cases.last(),
        fails.join("\n"),
        text.lines()
            .filter(|l| l.contains("memory allocation") || l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Feeds non-finite values (NaN, +∞, −∞), one element at a time, to the exact walk on the
/// networks of `nan_nets()` whose name passes `which`, as the baseline (IG and
/// conductance), as the input, and as a constant NaN baseline. Each must be an error (one
/// line): not Ok with NaN attributions, not a panic, not a runaway.
fn non_finite_cases(which: impl Fn(&str) -> bool) {
    let mut fails = 0;
    let mut fail = |label: &str, what: String| {
        println!("FAIL {label}: {what}");
        fails += 1;
    };
    for (what, model, x) in nan_nets().into_iter().filter(|n| which(n.0)) {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for i in 0..x.len() {
                for (method, on_input) in [
                    (Method::IntegratedGradients, false),
                    (Method::Conductance, false),
                    (Method::IntegratedGradients, true),
                ] {
                    let label = format!(
                        "{what}: {method}, {} element {i} = {bad}",
                        if on_input { "input" } else { "baseline" }
                    );
                    println!("case: {label}");
                    let mut q = mho::attribution::Request::new(method, 0);
                    q.exact = exact();
                    let r = if on_input {
                        attribute(&model, &poisoned(&x, i, bad), &q)
                    } else {
                        q.baseline = Baseline::Tensor(poisoned(&Tensor::zeros(x.shape()), i, bad));
                        attribute(&model, &x, &q)
                    };
                    match r {
                        Ok(r) => fail(&label, format!("Ok({:?})", r.attributions)),
                        Err(e) if e.0.contains('\n') => {
                            fail(&label, format!("multi-line error {:?}", e.0))
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        let label = format!("{what}: constant NaN baseline");
        println!("case: {label}");
        let mut q = mho::attribution::Request::new(Method::IntegratedGradients, 0);
        q.exact = exact();
        q.baseline = Baseline::Constant(f64::NAN);
        if let Ok(r) = attribute(&model, &x, &q) {
            fail(&label, format!("Ok({:?})", r.attributions));
        }
    }
    assert!(fails == 0, "{fails} cases not rejected");
}

/// Non-finite values into an MLP, and into a network whose first layer is a ReLU (which
/// maps −∞ to 0: the walk must not trust that).
#[test]
fn non_finite_values_are_errors_from_the_exact_walk() {
    guarded("non_finite_values_are_errors_from_the_exact_walk", || {
        non_finite_cases(|name| name != "MaxPool2d first")
    });
}

/// Non-finite values into a network whose first layer is a max pool.
#[test]
fn non_finite_values_into_a_max_pool_are_errors_from_the_exact_walk() {
    guarded(
        "non_finite_values_into_a_max_pool_are_errors_from_the_exact_walk",
        || non_finite_cases(|name| name == "MaxPool2d first"),
    );
}

/// With a quadrature rule the library does not promise an error for NaN (the command line
/// rejects non-finite .npy values before), but it must not panic.
#[test]
fn non_finite_values_with_a_quadrature_rule_do_not_panic() {
    for (_, model, x) in nan_nets() {
        for method in [
            Method::IntegratedGradients,
            Method::Conductance,
            Method::NeuronConductance,
        ] {
            let mut q = mho::attribution::Request::new(method, 0);
            q.baseline = Baseline::Tensor(poisoned(&Tensor::zeros(x.shape()), 0, f64::NAN));
            if method == Method::NeuronConductance {
                q.layers = LayerSelection::Names(vec!["0".into()]);
                let shape = model.layer_shapes().unwrap()[0].clone();
                q.neurons = vec![vec![0; shape.len()]];
            }
            let _ = attribute(&model, &poisoned(&x, 0, f64::NAN), &q);
        }
    }
}
