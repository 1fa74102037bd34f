//! The axioms of integrated gradients and conductance as property tests (issue 4 item 9),
//! in f64, over random networks of `tests/support` (MLPs, CNNs and conv1d nets of 2–5
//! hidden blocks with every supported layer type, random weights, inputs and baselines,
//! batches of 1–3):
//!
//! - **Completeness.** Smooth networks: |Σ IG − (F(x) − F(x'))| ≤ 1e-8 of the attributions'
//!   scale with 50-point Gauss–Legendre, and the trapezoid rule's error falls like 1/n².
//!   Piecewise-linear networks: dF/dα is piecewise constant, so a rule's error is bounded
//!   by the total variation V of dF/dα along the path (computed here from the exact rule's
//!   pieces): ≤ V/(2n) for riemann-middle, ≤ V/n for riemann-left/right, ≤ V/(2(n−1)) for
//!   the trapezoid (each cell's error is at most its length times half, resp. all, of the
//!   variation inside it); checked at n = 25, 100, 400, and the error summed over fixed
//!   networks falls at least 4-fold from n = 25 to 400 (the bound falls 16-fold).
//! - **Layerwise conservation** (tangent form): every layer's conductances sum to the IG
//!   total of the same rule and steps, to 1e-9, for every rule at n = 3, 7, 20.
//! - **Neuron conductance** of a unit, summed over the inputs, equals the unit's
//!   (tangent-form) conductance for the same rule and steps, to 1e-9.
//! - **Linearity.** With an extra output row a·W[t1] + b·W[t2] (bias likewise) in the last
//!   Linear layer, every method's attributions for that row are a·attr(t1) + b·attr(t2) in
//!   every layer but the output layer itself, to 1e-9.
//! - **Dummy.** A hidden unit (channel) whose outgoing weights are zero gets exactly 0
//!   conductance (both forms, every rule, exact), internal influence and
//!   gradient×activation — and so does every unit that reaches F only through it; an input
//!   whose outgoing weights are zero gets exactly 0 integrated gradients.
//! - **Symmetry preservation.** Inputs i, j with identical outgoing weights and equal values
//!   in x and x' get equal integrated gradients.
//! - **Implementation invariance.** Permuting a hidden layer's units (rows of W1/b1, the
//!   per-channel parameters in between, columns of W2) leaves the input IG unchanged and
//!   permutes that block's conductances, to 1e-9.
//! - The **difference form** converges to the tangent form as n grows (first order) on
//!   smooth networks.

// Examples are indexed across several tensors and vectors at once.
#![allow(clippy::needless_range_loop)]

mod support;

use mho::attribution::{ConductanceForm, ExactOptions, LayerSelection, Method, Report, Rule};
use mho::nn::rng::Rng;
use mho::nn::{LayerSpec, Model};
use mho::Tensor;
use proptest::prelude::*;
use support::*;

/// Steps valid for `rule` near `n`.
fn steps_for(rule: Rule, n: usize) -> usize {
    n.max(rule.min_steps())
}

/// IG and all-layer conductance reports for one rule and step count (None: exact).
fn ig_and_conductance(
    net: &Net,
    model: &Model<f64>,
    rule: Option<(Rule, usize)>,
    form: ConductanceForm,
) -> (Report, Report) {
    let mut ig = net.request(Method::IntegratedGradients);
    let mut cond = net.request(Method::Conductance);
    cond.form = form;
    for r in [&mut ig, &mut cond] {
        match rule {
            Some((rule, steps)) => {
                r.rule = rule;
                r.steps = steps;
            }
            None => r.exact = Some(ExactOptions::default()),
        }
    }
    (net.run_on(model, &ig), net.run_on(model, &cond))
}

// ---------------------------------------------------------------- completeness

proptest! {
    #![proptest_config(config(24))]

    /// Smooth networks, Gauss–Legendre: the integrand dF/dα is analytic along the path, so
    /// the rule converges geometrically, error ~ ρ^(−2n) with ρ > 1 set by how steep the
    /// network is. Steep random networks can still be pre-asymptotic at n = 50 (4e-7
    /// relative was seen), so the test asks for the geometric behaviour itself: at n = 200
    /// the error is at rounding level or at most 1% of the n = 50 error, and at n = 50 it is
    /// already below 1e-4 relative. Scale: max(|ΔF|, Σ|IG_j|) — the size of the summed
    /// terms, so a net whose IG cancel to a tiny ΔF is not held to an impossible standard.
    #[test]
    fn completeness_smooth_gauss_legendre(net in nets(Kind::Smooth)) {
        let run = |steps: usize| {
            let mut req = net.request(Method::IntegratedGradients);
            req.rule = Rule::GaussLegendre;
            req.steps = steps;
            net.run(&req)
        };
        let (r50, r200) = (run(50), run(200));
        let change = net.output_change();
        for e in 0..net.n() {
            let ig50 = r50.get("input").unwrap();
            let ig200 = r200.get("input").unwrap();
            let err50 = (sum_of(ig50, e) - change[e]).abs();
            let err200 = (sum_of(ig200, e) - change[e]).abs();
            let scale = change[e].abs().max(abs_sum_of(ig50, e));
            prop_assert!(err50 <= 1e-4 * scale, "example {e}: n=50 error {err50:e}, scale {scale:e}\n{net:?}");
            // Rounding level includes that of ΔF itself, ~ε·(|F(x)| + |F(x')|): seen, a net
            // with Σ|IG| = 3e-7 erring 5.3e-17 at both n = 50 and n = 200.
            let f_rounding =
                64.0 * f64::EPSILON * (r50.outputs_input[e].abs() + r50.outputs_baseline[e].abs());
            prop_assert!(
                err200 <= (1e-10 * scale).max(0.01 * err50).max(f_rounding),
                "example {e}: n=200 error {err200:e} vs n=50 error {err50:e}, scale {scale:e}\n{net:?}"
            );
            // The reported delta is that error, signed.
            let d = r50.delta_of("input").unwrap()[e];
            prop_assert!((d - (sum_of(ig50, e) - change[e])).abs() <= 1e-12 * scale);
        }
    }

    /// Smooth networks, trapezoid rule: error −(g'(1) − g'(0))/(12 m²) + O(m⁻⁴) for
    /// m = n − 1 intervals, so going from n = 41 to n = 401 divides it by ~100; we ask for
    /// at least 25 (a factor 4 of slack for the higher-order term), unless the error is at
    /// rounding level already.
    #[test]
    fn completeness_smooth_trapezoid_rate(net in nets(Kind::Smooth)) {
        let change = net.output_change();
        let err = |n: usize| -> Vec<(f64, f64)> {
            let mut req = net.request(Method::IntegratedGradients);
            req.rule = Rule::RiemannTrapezoid;
            req.steps = n;
            let r = net.run(&req);
            let ig = r.get("input").unwrap();
            (0..net.n())
                .map(|e| ((sum_of(ig, e) - change[e]).abs(), change[e].abs().max(abs_sum_of(ig, e))))
                .collect()
        };
        let (coarse, fine) = (err(41), err(401));
        for e in 0..net.n() {
            let (c, scale) = coarse[e];
            let f = fine[e].0;
            prop_assert!(
                f <= c / 25.0 + 1e-13 * scale,
                "example {e}: error {c:e} at n = 41, {f:e} at n = 401\n{net:?}"
            );
        }
    }

    /// Piecewise-linear networks: the rigorous bounds by the total variation V of dF/dα
    /// (including the one-sided values at α = 0 and 1, which left/right/trapezoid rules
    /// evaluate), for riemann-middle, -left, -right and -trapezoid at n = 25, 100, 400.
    /// Slack: 1e-10 of the attributions' scale for rounding.
    #[test]
    fn completeness_piecewise_linear_bounded_by_variation(
        net in nets(Kind::PiecewiseLinear)
    ) {
        let change = net.output_change();
        let variation = slope_variation(&net);
        for n in [25usize, 100, 400] {
            for (rule, bound_factor) in [
                (Rule::RiemannMiddle, 1.0 / (2.0 * n as f64)),
                (Rule::RiemannLeft, 1.0 / n as f64),
                (Rule::RiemannRight, 1.0 / n as f64),
                (Rule::RiemannTrapezoid, 1.0 / (2.0 * (n - 1) as f64)),
            ] {
                let mut req = net.request(Method::IntegratedGradients);
                req.rule = rule;
                req.steps = n;
                req.batch_steps = 400;
                let r = net.run(&req);
                let ig = r.get("input").unwrap();
                for e in 0..net.n() {
                    let err = (sum_of(ig, e) - change[e]).abs();
                    let scale = change[e].abs().max(abs_sum_of(ig, e));
                    let bound = variation[e] * bound_factor + 1e-10 * scale;
                    prop_assert!(
                        err <= bound,
                        "{rule} n = {n}, example {e}: error {err:e} > bound {bound:e} (V = {:e})\n{net:?}",
                        variation[e]
                    );
                }
            }
        }
    }
}

/// Over 24 fixed piecewise-linear networks, the midpoint rule's completeness error summed
/// at n = 400 is less than a quarter of that at n = 25 (each example's bound V/(2n) falls
/// 16-fold; the error itself is a sum of jumps times sawtooth offsets, so its 16-fold fall
/// holds on average, not per example).
#[test]
fn completeness_error_shrinks_with_steps_on_average() {
    let (mut coarse, mut fine) = (0.0, 0.0);
    for seed in 0..24u64 {
        let family = [Family::Mlp, Family::Cnn, Family::Conv1d][seed as usize % 3];
        let net = build(Kind::PiecewiseLinear, family, 2 + seed as usize % 4, seed);
        let change = net.output_change();
        for (n, total) in [(25usize, &mut coarse), (400, &mut fine)] {
            let mut req = net.request(Method::IntegratedGradients);
            req.rule = Rule::RiemannMiddle;
            req.steps = n;
            req.batch_steps = 400;
            let ig = net.run(&req).get("input").unwrap().clone();
            for e in 0..net.n() {
                let scale = change[e].abs().max(abs_sum_of(&ig, e)).max(1e-300);
                *total += (sum_of(&ig, e) - change[e]).abs() / scale;
            }
        }
    }
    assert!(
        coarse > 0.0,
        "no quadrature error at all at n = 25: no kinks on any path?"
    );
    assert!(
        fine < coarse / 4.0,
        "summed relative error {coarse:e} at n = 25, {fine:e} at n = 400"
    );
}

// ---------------------------------------------------------------- conservation

proptest! {
    #![proptest_config(config(24))]

    /// Tangent form: Σ_i Cond_i = Σ_j IG_j for every layer, rule and n ∈ {3, 7, 20}, by
    /// the chain rule at every node. Scale: the larger of Σ|IG_j| and Σ|Cond_i|. The
    /// reported delta is Σ Cond − (F(x) − F(x')), and the conductance of "input" is IG.
    #[test]
    fn layerwise_conservation_every_rule(net in nets(Kind::Any)) {
        let change = net.output_change();
        for rule in Rule::ALL {
            for n in [3usize, 7, 20] {
                let steps = steps_for(rule, n);
                let (ig, cond) =
                    ig_and_conductance(&net, &net.model, Some((rule, steps)), ConductanceForm::Tangent);
                let ig = ig.get("input").unwrap();
                for layer in net.model.layer_names() {
                    let c = cond.get(&layer).unwrap();
                    for e in 0..net.n() {
                        let (a, b) = (sum_of(c, e), sum_of(ig, e));
                        let scale = abs_sum_of(c, e).max(abs_sum_of(ig, e));
                        prop_assert!(
                            (a - b).abs() <= 1e-9 * scale,
                            "{rule} n = {steps}, layer {layer} ({}), example {e}: Σ cond {a:e} vs Σ IG {b:e}\n{net:?}",
                            net.layers()[layer.parse::<usize>().unwrap()].type_name()
                        );
                        // The reported delta is Σ cond − (F(x) − F(x')).
                        let d = cond.delta_of(&layer).unwrap()[e];
                        prop_assert!((d - (a - change[e])).abs() <= 1e-12 * scale.max(change[e].abs()));
                    }
                }
                // The input as a layer: its conductance is integrated gradients itself.
                let mut ci = net.request(Method::Conductance);
                ci.rule = rule;
                ci.steps = steps;
                ci.layers = LayerSelection::Names(vec!["input".into()]);
                let ci = net.run(&ci);
                let ci = ci.get("input").unwrap();
                prop_assert!(
                    max_diff(ci.data(), ig.data()) <= 1e-12 * max_abs(ig.data()),
                    "{rule} n = {steps}: conductance of 'input' differs from IG by {:e}\n{net:?}",
                    max_diff(ci.data(), ig.data())
                );
            }
        }
    }

    /// Neuron conductance of 1–3 units of a random layer (several at once, reported as
    /// "LAYER:I,J,K"), summed over the inputs, equals each unit's tangent-form conductance
    /// for the same rule and steps (a random rule, 1–12 steps, sometimes exact).
    #[test]
    fn neuron_conductance_sums_to_unit_conductance(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 1);
        let names = net.model.layer_names();
        let li = r.below(names.len());
        let layer = names[li].clone();
        let shape = net.model.layer_shapes().unwrap()[li].clone();
        let neurons: Vec<Vec<usize>> = (0..1 + r.below(3))
            .map(|_| shape.iter().map(|&d| r.below(d)).collect())
            .collect();
        let mut nc = net.request(Method::NeuronConductance);
        nc.layers = LayerSelection::Names(vec![layer.clone()]);
        nc.neurons = neurons.clone();
        let mut cond = net.request(Method::Conductance);
        cond.layers = LayerSelection::Names(vec![layer.clone()]);
        if r.below(6) == 0 {
            nc.exact = Some(ExactOptions::default());
            cond.exact = Some(ExactOptions::default());
        } else {
            let rule = Rule::ALL[r.below(5)];
            let steps = steps_for(rule, 1 + r.below(12));
            for q in [&mut nc, &mut cond] {
                q.rule = rule;
                q.steps = steps;
            }
        }
        let nc_report = net.run(&nc);
        let c = net.run(&cond).get(&layer).unwrap().clone();
        let units: usize = shape.iter().product();
        for nr in &neurons {
            let flat = nr.iter().zip(&shape).fold(0, |acc, (&i, &d)| acc * d + i);
            let key = if neurons.len() > 1 {
                let idx: Vec<String> = nr.iter().map(|i| i.to_string()).collect();
                format!("{layer}:{}", idx.join(","))
            } else {
                layer.clone()
            };
            let t = nc_report.get(&key).unwrap_or_else(|| panic!("no key {key}"));
            prop_assert_eq!(t.shape(), net.x.shape());
            for e in 0..net.n() {
                let (a, b) = (sum_of(t, e), c.data()[e * units + flat]);
                let scale = abs_sum_of(t, e).max(b.abs());
                prop_assert!(
                    (a - b).abs() <= 1e-9 * scale,
                    "{} {} n = {}, unit {key}, example {e}: Σ_j NC {a:e} vs Cond {b:e}\n{net:?}",
                    nc.method, if nc.exact.is_some() { "exact" } else { nc.rule.name() }, nc.steps
                );
            }
        }
    }
}

// ---------------------------------------------------------------- linearity

/// G: `net`'s model without a Softmax head, with one more output row a·W[t1] + b·W[t2].
fn with_combined_output(model: &Model<f64>, t1: usize, t2: usize, a: f64, b: f64) -> Model<f64> {
    let base = match model.architecture().layers.last() {
        Some(LayerSpec::Softmax { .. }) => without_last_layer(model),
        _ => model.clone(),
    };
    let arch = base.architecture().clone();
    let last = arch.layers.len() - 1;
    let LayerSpec::Linear {
        in_features,
        out_features,
        ..
    } = arch.layers[last]
    else {
        panic!("last layer is not Linear");
    };
    let w = base.param(&format!("{last}.weight")).unwrap();
    let bias = base.param(&format!("{last}.bias")).unwrap();
    let mut wd = w.data().to_vec();
    let row = |i: usize| &w.data()[i * in_features..(i + 1) * in_features];
    wd.extend(row(t1).iter().zip(row(t2)).map(|(p, q)| a * p + b * q));
    let mut bd = bias.data().to_vec();
    bd.push(a * bias.data()[t1] + b * bias.data()[t2]);
    let mut layers = arch.layers.clone();
    layers[last] = LayerSpec::Linear {
        in_features,
        out_features: out_features + 1,
        bias: true,
    };
    let mut params: Vec<(String, Tensor<f64>)> = owned_params(&base)
        .into_iter()
        .filter(|(n, _)| !n.starts_with(&format!("{last}.")))
        .collect();
    params.push((
        format!("{last}.weight"),
        Tensor::new(vec![out_features + 1, in_features], wd).unwrap(),
    ));
    params.push((
        format!("{last}.bias"),
        Tensor::new(vec![out_features + 1], bd).unwrap(),
    ));
    model_from(&arch.input_shape, layers, params)
}

proptest! {
    #![proptest_config(config(20))]

    /// Linearity: attributions of a·F_t1 + b·F_t2 (the extra output row of G) equal a·attr_t1
    /// + b·attr_t2, for integrated gradients, conductance (tangent and difference forms),
    /// neuron conductance, internal influence and gradient×activation, in every layer but
    /// the output layer (whose units are the outputs themselves), under a random rule.
    #[test]
    fn linearity(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 2);
        let k = *net.model.output_shape().last().unwrap();
        let (t1, t2) = (r.below(k), r.below(k));
        let (a, b) = (r.uniform_range(-2.0, 2.0), r.uniform_range(-2.0, 2.0));
        let g = with_combined_output(&net.model, t1, t2, a, b);
        let rule = Rule::ALL[r.below(5)];
        let steps = steps_for(rule, 1 + r.below(15));
        let names = g.layer_names();
        let hidden = &names[..names.len() - 1];
        let li = r.below(hidden.len());
        let shape = g.layer_shapes().unwrap()[li].clone();
        let neuron: Vec<usize> = shape.iter().map(|&d| r.below(d)).collect();
        let cases: Vec<(Method, ConductanceForm)> = vec![
            (Method::IntegratedGradients, ConductanceForm::Tangent),
            (Method::Conductance, ConductanceForm::Tangent),
            (Method::Conductance, ConductanceForm::Difference),
            (Method::NeuronConductance, ConductanceForm::Tangent),
            (Method::InternalInfluence, ConductanceForm::Tangent),
            (Method::GradientXActivation, ConductanceForm::Tangent),
        ];
        for (method, form) in cases {
            let run = |target: usize| -> Report {
                let mut q = net.request(method);
                q.target = target;
                q.rule = rule;
                q.steps = steps;
                q.form = form;
                if method == Method::NeuronConductance {
                    q.layers = LayerSelection::Names(vec![names[li].clone()]);
                    q.neurons = vec![neuron.clone()];
                } else if method != Method::IntegratedGradients {
                    q.layers = LayerSelection::Names(hidden.to_vec());
                }
                net.run_on(&g, &q)
            };
            let (r1, r2, rc) = (run(t1), run(t2), run(k));
            for (name, tc) in &rc.attributions {
                let (x1, x2) = (r1.get(name).unwrap(), r2.get(name).unwrap());
                let scale = x1.data().iter().zip(x2.data())
                    .fold(0.0f64, |m, (p, q)| m.max((a * p).abs() + (b * q).abs()))
                    .max(max_abs(tc.data()));
                for i in 0..tc.len() {
                    let want = a * x1.data()[i] + b * x2.data()[i];
                    prop_assert!(
                        (tc.data()[i] - want).abs() <= 1e-9 * scale,
                        "{method} {form:?} {rule} n = {steps}, {name}[{i}]: {} vs a·{} + b·{} = {want} (a = {a}, b = {b}, t1 = {t1}, t2 = {t2})\n{net:?}",
                        tc.data()[i], x1.data()[i], x2.data()[i]
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------- dummy

/// Which units of a layer's output are checked for zero flow.
#[derive(Clone, Copy, Debug)]
enum Units {
    /// Every element of channel c (axis 0 without the batch axis).
    Channel(usize),
    /// One element, by flat index within the example.
    Flat(usize),
}

fn elementwise(spec: &LayerSpec) -> bool {
    channelwise(spec)
        && !matches!(
            spec,
            LayerSpec::MaxPool2d { .. }
                | LayerSpec::MaxPool1d { .. }
                | LayerSpec::AvgPool2d { .. }
                | LayerSpec::AdaptiveAvgPool2d { .. }
        )
}

/// Zeroes the weights of layer `l` (Linear or Conv) that read input channel / feature `c`.
fn zero_input_channel(model: &Model<f64>, l: usize, c: usize) -> Model<f64> {
    let spec = &model.architecture().layers[l];
    let name = format!("{l}.weight");
    let w = model.param(&name).unwrap();
    let s = w.shape().to_vec();
    let per_in = match spec {
        LayerSpec::Conv2d {
            in_channels,
            groups,
            ..
        }
        | LayerSpec::Conv1d {
            in_channels,
            groups,
            ..
        } => in_channels / groups,
        _ => s[1],
    };
    let inner: usize = s[2..].iter().product();
    let ci = c % per_in;
    let mut d = w.data().to_vec();
    for o in 0..s[0] {
        let start = (o * s[1] + ci) * inner;
        d[start..start + inner].fill(0.0);
    }
    with_params(model, vec![(name, Tensor::new(s, d).unwrap())])
}

/// The (layer, units) whose flow must be exactly zero once layer `l`'s weights from
/// channel / feature `c` of its input are zero.
fn cut_off_units(model: &Model<f64>, l: usize, c: usize) -> Vec<(usize, Units)> {
    let layers = &model.architecture().layers;
    let units = if matches!(layers[l - 1], LayerSpec::Flatten { .. }) {
        Units::Flat(c)
    } else {
        Units::Channel(c)
    };
    let mut out = Vec::new();
    let mut k = l - 1;
    loop {
        out.push((k, units));
        let spec = &layers[k];
        if weighted(spec) || k == 0 {
            break;
        }
        let go_on = match units {
            Units::Channel(_) => channelwise(spec),
            Units::Flat(_) => elementwise(spec) || matches!(spec, LayerSpec::Flatten { .. }),
        };
        if !go_on {
            break;
        }
        k -= 1;
    }
    out
}

fn units_of(t: &Tensor<f64>, e: usize, units: Units) -> Vec<f64> {
    let ex = example(t, e);
    match units {
        Units::Flat(f) => vec![ex[f]],
        Units::Channel(c) => {
            let inner = ex.len() / t.shape()[1];
            ex[c * inner..(c + 1) * inner].to_vec()
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// A hidden channel / feature whose outgoing weights are all zero (and every unit that
    /// reaches F only through it) gets exactly zero conductance (tangent and difference
    /// forms, a random rule, and exact), internal influence and gradient×activation.
    #[test]
    fn dummy_hidden_unit_gets_zero(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 3);
        let layers = net.layers();
        let candidates: Vec<usize> = (1..layers.len()).filter(|&l| weighted(&layers[l])).collect();
        let l = candidates[r.below(candidates.len())];
        let in_shape = net.model.layer_shapes().unwrap()[l - 1].clone();
        let c = r.below(in_shape[0]);
        let model = zero_input_channel(&net.model, l, c);
        let checked = cut_off_units(&model, l, c);
        let rule = Rule::ALL[r.below(5)];
        let steps = steps_for(rule, 1 + r.below(15));
        let runs: Vec<(Method, ConductanceForm, bool)> = vec![
            (Method::Conductance, ConductanceForm::Tangent, false),
            (Method::Conductance, ConductanceForm::Difference, false),
            (Method::Conductance, ConductanceForm::Tangent, true),
            (Method::InternalInfluence, ConductanceForm::Tangent, false),
            (Method::GradientXActivation, ConductanceForm::Tangent, false),
        ];
        for (method, form, exact) in runs {
            let mut q = net.request(method);
            q.rule = rule;
            q.steps = steps;
            q.form = form;
            if exact {
                q.exact = Some(ExactOptions::default());
            }
            let rep = net.run_on(&model, &q);
            for &(k, units) in &checked {
                let t = rep.get(&k.to_string()).unwrap();
                for e in 0..net.n() {
                    let v = units_of(t, e, units);
                    prop_assert!(
                        v.iter().all(|&x| x == 0.0),
                        "{method} {form:?} {} : layer {k} ({}) {units:?} example {e} = {v:?} (weights of layer {l} from input {c} zeroed)\n{net:?}",
                        if exact { "exact".to_string() } else { format!("{rule} n = {steps}") },
                        layers[k].type_name()
                    );
                }
            }
        }
    }

    /// An input channel / feature whose outgoing weights (in the first layer) are zero gets
    /// exactly zero integrated gradients, under every rule and exact.
    #[test]
    fn dummy_input_gets_zero(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 4);
        let c = r.below(net.model.input_shape()[0]);
        let model = zero_input_channel(&net.model, 0, c);
        for rule in Rule::ALL.map(Some).into_iter().chain([None]) {
            let mut q = net.request(Method::IntegratedGradients);
            match rule {
                Some(rule) => {
                    q.rule = rule;
                    q.steps = steps_for(rule, 1 + r.below(15));
                }
                None => q.exact = Some(ExactOptions::default()),
            }
            let rep = net.run_on(&model, &q);
            let ig = rep.get("input").unwrap();
            for e in 0..net.n() {
                let v = units_of(ig, e, Units::Channel(c));
                prop_assert!(
                    v.iter().all(|&x| x == 0.0),
                    "{rule:?}: input channel {c}, example {e}: IG {v:?}\n{net:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- symmetry

proptest! {
    #![proptest_config(config(24))]

    /// Inputs (features, or channels of a conv net within one group) i ≠ j with identical
    /// outgoing weights in the first layer, x_i = x_j and x'_i = x'_j, get equal IG
    /// (to 1e-12 of max |IG|: the two are computed by the same arithmetic on equal data,
    /// up to the order of a kernel's lanes), under a random rule and exact.
    #[test]
    fn symmetry_preservation(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 5);
        let spec = net.layers()[0].clone();
        let cin = net.model.input_shape()[0];
        let per_group = match spec {
            LayerSpec::Conv2d { in_channels, groups, .. }
            | LayerSpec::Conv1d { in_channels, groups, .. } => in_channels / groups,
            _ => cin,
        };
        prop_assume!(per_group >= 2);
        // Two channels of the same group.
        let g = r.below(cin / per_group);
        let i = g * per_group + r.below(per_group);
        let mut j = g * per_group + r.below(per_group - 1);
        if j >= i {
            j += 1;
        }
        let w = net.model.param("0.weight").unwrap();
        let s = w.shape().to_vec();
        let inner: usize = s[2..].iter().product();
        let mut wd = w.data().to_vec();
        for o in 0..s[0] {
            let (si, sj) = ((o * s[1] + i % per_group) * inner, (o * s[1] + j % per_group) * inner);
            for t in 0..inner {
                wd[sj + t] = wd[si + t];
            }
        }
        let model = with_params(&net.model, vec![("0.weight".into(), Tensor::new(s, wd).unwrap())]);
        let copy_channel = |t: &Tensor<f64>| -> Tensor<f64> {
            let mut d = t.data().to_vec();
            let u = t.len() / t.shape()[0];
            let inner = u / cin;
            for e in 0..t.shape()[0] {
                for q in 0..inner {
                    d[e * u + j * inner + q] = d[e * u + i * inner + q];
                }
            }
            Tensor::new(t.shape().to_vec(), d).unwrap()
        };
        let mut sym = net.clone();
        sym.model = model;
        sym.x = copy_channel(&net.x);
        sym.baseline = copy_channel(&net.baseline);
        let rule = Rule::ALL[r.below(5)];
        for exact in [false, true] {
            let mut q = sym.request(Method::IntegratedGradients);
            q.rule = rule;
            q.steps = steps_for(rule, 1 + r.below(20));
            if exact {
                q.exact = Some(ExactOptions::default());
            }
            let ig = sym.run(&q).get("input").unwrap().clone();
            let scale = max_abs(ig.data());
            for e in 0..sym.n() {
                let (vi, vj) = (units_of(&ig, e, Units::Channel(i)), units_of(&ig, e, Units::Channel(j)));
                prop_assert!(
                    max_diff(&vi, &vj) <= 1e-12 * scale,
                    "exact {exact} {rule}: IG of input {i} {vi:?} vs input {j} {vj:?}, example {e}\n{sym:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- invariance

/// A hidden block whose units can be permuted: weighted layer `first` (Linear, or Conv with
/// one group), channelwise layers in between, and weighted layer `next` reading `first`'s
/// channels directly (Linear over features, or Conv with one group).
fn permutable_blocks(model: &Model<f64>) -> Vec<(usize, usize)> {
    let layers = &model.architecture().layers;
    let shapes = model.layer_shapes().unwrap();
    let one_group = |s: &LayerSpec| match s {
        LayerSpec::Conv2d { groups, .. } | LayerSpec::Conv1d { groups, .. } => *groups == 1,
        LayerSpec::Linear { .. } => true,
        _ => false,
    };
    let mut out = Vec::new();
    for first in 0..layers.len() {
        if !one_group(&layers[first]) {
            continue;
        }
        if matches!(layers[first], LayerSpec::Linear { .. }) && shapes[first].len() != 1 {
            continue;
        }
        let mut k = first + 1;
        while k < layers.len() && channelwise(&layers[k]) {
            k += 1;
        }
        if k < layers.len() && one_group(&layers[k]) {
            out.push((first, k));
        }
    }
    out
}

/// Permutes axis `axis` (0 or 1) of a parameter: new[.., c, ..] = old[.., perm[c], ..].
fn permute_axis(t: &Tensor<f64>, axis: usize, perm: &[usize]) -> Tensor<f64> {
    let s = t.shape();
    let outer: usize = s[..axis].iter().product();
    let c = s[axis];
    let inner: usize = s[axis + 1..].iter().product();
    let mut d = vec![0.0; t.len()];
    for o in 0..outer {
        for (new, &old) in perm.iter().enumerate() {
            let (dst, src) = ((o * c + new) * inner, (o * c + old) * inner);
            d[dst..dst + inner].copy_from_slice(&t.data()[src..src + inner]);
        }
    }
    Tensor::new(s.to_vec(), d).unwrap()
}

proptest! {
    #![proptest_config(config(24))]

    /// Permuting a hidden block's units gives the same input IG and permuted conductances
    /// in the block's layers (the same elsewhere), to 1e-9 of the layer's max |·|, under a
    /// random rule and exact.
    #[test]
    fn implementation_invariance(net in nets(Kind::Any), aux in any::<u64>()) {
        let blocks = permutable_blocks(&net.model);
        prop_assume!(!blocks.is_empty());
        let mut r = Rng::new(aux, 6);
        let (first, next) = blocks[r.below(blocks.len())];
        let shapes = net.model.layer_shapes().unwrap();
        let channels = shapes[first][0];
        let mut perm: Vec<usize> = (0..channels).collect();
        r.shuffle(&mut perm);
        let mut changes = Vec::new();
        for (name, t) in net.model.params() {
            let (l, suffix) = name.split_once('.').unwrap();
            let l: usize = l.parse().unwrap();
            if l == first || (l > first && l < next && t.ndim() == 1 && t.len() == channels) {
                // Rows / output channels and biases of `first`; BatchNorm statistics and
                // affine parameters and per-channel PReLU slopes in between (a shared
                // PReLU slope has one element and stays).
                changes.push((name.clone(), permute_axis(t, 0, &perm)));
            } else if l == next && suffix == "weight" {
                changes.push((name.clone(), permute_axis(t, 1, &perm)));
            }
        }
        let permuted = with_params(&net.model, changes);
        let rule = Rule::ALL[r.below(5)];
        let steps = steps_for(rule, 1 + r.below(20));
        for exact in [false, true] {
            let spec = if exact { None } else { Some((rule, steps)) };
            let (ig0, c0) = ig_and_conductance(&net, &net.model, spec, ConductanceForm::Tangent);
            let (ig1, c1) = ig_and_conductance(&net, &permuted, spec, ConductanceForm::Tangent);
            let (a, b) = (ig0.get("input").unwrap(), ig1.get("input").unwrap());
            let scale = max_abs(a.data());
            prop_assert!(
                max_diff(a.data(), b.data()) <= 1e-9 * scale,
                "exact {exact} {rule} n = {steps}: input IG changed by {:e} (scale {scale:e}) permuting block {first}..{next}\n{net:?}",
                max_diff(a.data(), b.data())
            );
            for (li, name) in net.model.layer_names().iter().enumerate() {
                let (x0, x1) = (c0.get(name).unwrap(), c1.get(name).unwrap());
                let want = if li >= first && li < next {
                    // Permuted channel c is original channel perm[c].
                    permute_axis(x0, 1, &perm)
                } else {
                    x0.clone()
                };
                let scale = max_abs(x0.data());
                prop_assert!(
                    max_diff(want.data(), x1.data()) <= 1e-9 * scale,
                    "exact {exact} {rule} n = {steps}: conductance of layer {name} differs by {:e} (scale {scale:e}) permuting block {first}..{next}\n{net:?}",
                    max_diff(want.data(), x1.data())
                );
            }
        }
    }
}

// ---------------------------------------------------------------- difference form

proptest! {
    #![proptest_config(config(8))]

    /// On smooth networks the difference form (a left Riemann–Stieltjes sum on the rule's
    /// n+1 nodes) approaches the tangent form at first order: deviation e(n) ≈ C/n + D/n².
    /// The D/n² term can cancel C/n near one step count n* = −D/C, so a single coarse n
    /// may show an abnormally small deviation (seed 11570617880139867195, trapezoid: layer
    /// 6 deviates 4.5e-8 at n = 50, 6.1e-8 at n = 500, 6.6e-9 at n = 5000). Cancellation
    /// cannot hit both n = 50 and n = 500 (for the fall from 500 to 5000 to be under 5,
    /// −714 < D/C < −263, and then e(50) ≥ 4.2|C|/50, over 400 times e(5000)). So the largest unit deviation
    /// of each layer at n = 5000 must be at most 1/5 of the larger of those at n = 50 and
    /// n = 500, and below 1% of the layer's largest conductance (largest seen: 0.07%).
    /// Trapezoid and Gauss–Legendre node sets.
    #[test]
    fn difference_form_converges_to_tangent_form(net in nets(Kind::Smooth)) {
        for rule in [Rule::RiemannTrapezoid, Rule::GaussLegendre] {
            let dev = |n: usize| -> Vec<(f64, f64)> {
                let mut t = net.request(Method::Conductance);
                t.rule = rule;
                t.steps = n;
                t.batch_steps = 5001;
                let mut d = t.clone();
                d.form = ConductanceForm::Difference;
                let (rt, rd) = (net.run(&t), net.run(&d));
                net.model.layer_names().iter().map(|name| {
                    let (a, b) = (rt.get(name).unwrap(), rd.get(name).unwrap());
                    (max_diff(a.data(), b.data()), max_abs(a.data()))
                }).collect()
            };
            let (coarse, middle, fine) = (dev(50), dev(500), dev(5000));
            for (li, ((&(c, scale), &(m, _)), &(f, _))) in
                coarse.iter().zip(&middle).zip(&fine).enumerate()
            {
                prop_assert!(
                    f <= c.max(m) / 5.0 + 1e-12 * scale,
                    "{rule}, layer {li}: difference − tangent {c:e} at n = 50, {m:e} at n = 500, {f:e} at n = 5000\n{net:?}"
                );
                prop_assert!(
                    f <= 0.01 * scale + 1e-300,
                    "{rule}, layer {li}: deviation {f:e} of {scale:e} at n = 5000\n{net:?}"
                );
            }
        }
    }
}
