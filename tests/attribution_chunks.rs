//! Bounded memory must not change results (issue 4 item 5): for every method — integrated
//! gradients, conductance in the tangent and the difference form, neuron conductance (one
//! and several units), internal influence, activation, gradient×activation — and every
//! rule including exact, attributions with `batch_steps` 1, 3 and 7 equal those of one big
//! batch (`batch_steps` ≥ the number of path nodes) to 1e-12 of each tensor's largest
//! magnitude (f64), with the same deltas, outputs and piece counts. Random networks of
//! every supported kind (tests/support), batches of 1–3 examples, so chunks split inside
//! the step-major row layout and, for the difference form, between consecutive nodes of an
//! example.

mod support;

use mho::attribution::{
    ConductanceForm, ExactOptions, LayerSelection, Method, Report, Request, Rule,
};
use mho::nn::rng::Rng;
use proptest::prelude::*;
use support::*;

/// Every method (with form) to compare, given a layer and neurons for neuron conductance.
fn requests(
    net: &Net,
    rule: Option<Rule>,
    steps: usize,
    layer: &str,
    neurons: &[Vec<usize>],
) -> Vec<Request> {
    let mut out = Vec::new();
    let cases = [
        (Method::IntegratedGradients, ConductanceForm::Tangent),
        (Method::Conductance, ConductanceForm::Tangent),
        (Method::Conductance, ConductanceForm::Difference),
        (Method::NeuronConductance, ConductanceForm::Tangent),
        (Method::InternalInfluence, ConductanceForm::Tangent),
        (Method::Activation, ConductanceForm::Tangent),
        (Method::GradientXActivation, ConductanceForm::Tangent),
    ];
    for (method, form) in cases {
        let mut q = net.request(method);
        q.form = form;
        match rule {
            Some(rule) => {
                q.rule = rule;
                q.steps = steps;
            }
            None => {
                // The exact rule: path methods only, tangent form only.
                if !method.uses_path() || form == ConductanceForm::Difference {
                    continue;
                }
                q.exact = Some(ExactOptions::default());
            }
        }
        if method == Method::NeuronConductance {
            q.layers = LayerSelection::Names(vec![layer.to_string()]);
            q.neurons = neurons.to_vec();
        }
        out.push(q);
    }
    out
}

fn compare(big: &Report, small: &Report, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(big.attributions.len(), small.attributions.len(), "{}", what);
    for ((n1, a), (n2, b)) in big.attributions.iter().zip(&small.attributions) {
        prop_assert_eq!(n1, n2);
        prop_assert_eq!(a.shape(), b.shape());
        let scale = max_abs(a.data());
        let diff = max_diff(a.data(), b.data());
        prop_assert!(
            diff <= 1e-12 * scale,
            "{what}, {n1}: chunked differs by {diff:e} (scale {scale:e})"
        );
    }
    prop_assert_eq!(&big.outputs_input, &small.outputs_input);
    prop_assert_eq!(&big.outputs_baseline, &small.outputs_baseline);
    prop_assert_eq!(&big.pieces, &small.pieces, "{}", what);
    prop_assert_eq!(big.delta.len(), small.delta.len());
    for ((n1, d1), (_, d2)) in big.delta.iter().zip(&small.delta) {
        let t = big.get(n1).unwrap();
        let scale = (0..t.shape()[0])
            .map(|e| abs_sum_of(t, e))
            .fold(0.0, f64::max);
        prop_assert!(
            max_diff(d1, d2) <= 1e-12 * scale.max(max_abs(d1)),
            "{what}, delta of {n1}: {d1:?} vs {d2:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn chunking_does_not_change_results(net in nets(Kind::Any), aux in any::<u64>()) {
        let mut r = Rng::new(aux, 7);
        let rule = if r.below(5) == 0 { None } else { Some(Rule::ALL[r.below(5)]) };
        let steps = rule.map_or(0, |rule| (1 + r.below(20)).max(rule.min_steps()));
        let names = net.model.layer_names();
        let li = r.below(names.len());
        let shape = net.model.layer_shapes().unwrap()[li].clone();
        let neurons: Vec<Vec<usize>> = (0..1 + r.below(2))
            .map(|_| shape.iter().map(|&d| r.below(d)).collect())
            .collect();
        for req in requests(&net, rule, steps, &names[li], &neurons) {
            let mut big = req.clone();
            // Exact rows per example can exceed the step count: go large.
            big.batch_steps = 1_000_000;
            let reference = net.run(&big);
            for k in [1usize, 3, 7] {
                let mut small = req.clone();
                small.batch_steps = k;
                let what = format!(
                    "{} {:?} {} n = {steps}, batch_steps {k}\n{net:?}",
                    req.method,
                    req.form,
                    rule.map_or("exact", |r| r.name())
                );
                compare(&reference, &net.run(&small), &what)?;
            }
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// All-layer tangent conductance copies a ReLU, Flatten, Identity or Dropout layer's
    /// conductance from the layer feeding it instead of summing it again; that must equal,
    /// bit for bit, the layer requested on its own (then summed from its own adjoints and
    /// tangents), for the uniform rules and the exact one.
    #[test]
    fn copied_layer_conductance_equals_the_layer_computed_alone(net in nets(Kind::Any), exact in any::<bool>()) {
        copied_equals_alone(&net, exact)?;
    }
}

fn copied_equals_alone(net: &Net, exact: bool) -> Result<(), TestCaseError> {
    let mut all = net.request(Method::Conductance);
    all.steps = 7;
    if exact {
        all.exact = Some(ExactOptions::default());
    }
    let everything = net.run(&all);
    for name in net.model.layer_names() {
        let mut alone = all.clone();
        alone.layers = LayerSelection::Names(vec![name.clone()]);
        let single = net.run(&alone);
        let (a, b) = (everything.get(&name).unwrap(), single.get(&name).unwrap());
        let bits = |t: &mho::Tensor<f64>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(a), bits(b), "layer {}\n{:?}", name, net);
    }
    Ok(())
}

/// Found by the property test: the events' conductance at a ReLU's output and at its
/// input differed in the last bit; a ReLU's conductance is now read off its input there
/// too, whichever layers are requested.
#[test]
fn copied_layer_conductance_pinned_exact() {
    let net = build(Kind::Any, Family::Conv1d, 4, 6139688673009484906);
    copied_equals_alone(&net, true).unwrap();
}
