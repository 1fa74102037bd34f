//! The worked example of docs/attribution.md ("A worked example you can check by hand"),
//! built with `Architecture::new` + `Model::from_params`:
//!
//!   z₁ = x₁ − x₂,  z₂ = x₁ + x₂ − 1.5,  h = relu(z),  F = h₁ + 2 h₂,  x = (2, 1),  x' = 0.
//!
//! Every number the page states is checked: F(x) = 4 and F(x') = 0; integrated gradients
//! (4, 0) under the exact rule (and under 2-point Gauss–Legendre, whose nodes happen to sit
//! symmetrically about the kink at α = ½); conductance h₁ = 1, h₂ = 3; neuron conductance
//! of h₂ = (2, 1) and of h₁ = (2, −1); internal influence (1, 2); activation (1, 1.5);
//! gradient×activation (1, 3); and the `riemann-left`, n = 2 numbers.
//!
//! The riemann-left, n = 2 numbers: at α = 0 the path is at the baseline, where z₁ = 0 too,
//! so relu'(0) = 0 switches h₁ off as well and ∂F/∂x(0) = (0, 0); IG = (1, −½) (sum ½,
//! delta −3.5), conductance h₁ = ½, h₂ = 0 (sum ½ — the IG total, as the chain rule
//! promises). (An earlier version of the page had this wrong; this test caught it.)

use mho::attribution::{attribute, ExactOptions, LayerSelection, Method, Report, Request, Rule};
use mho::nn::{Architecture, LayerSpec, Model};
use mho::Tensor;

const TOL: f64 = 1e-12;

fn model() -> Model<f64> {
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
    Model::from_params(
        arch,
        vec![
            ("0.weight".into(), t(&[2, 2], &[1.0, -1.0, 1.0, 1.0])),
            ("0.bias".into(), t(&[2], &[0.0, -1.5])),
            ("2.weight".into(), t(&[1, 2], &[1.0, 2.0])),
            ("2.bias".into(), t(&[1], &[0.0])),
        ],
    )
    .unwrap()
}

fn x() -> Tensor<f64> {
    Tensor::new(vec![1, 2], vec![2.0, 1.0]).unwrap()
}

fn run(req: &Request) -> Report {
    attribute(&model(), &x(), req).unwrap()
}

fn req(method: Method, rule: Option<(Rule, usize)>, layer: Option<&str>) -> Request {
    let mut r = Request::new(method, 0);
    match rule {
        Some((rule, steps)) => {
            r.rule = rule;
            r.steps = steps;
        }
        None => r.exact = Some(ExactOptions::default()),
    }
    if let Some(l) = layer {
        r.layers = LayerSelection::Names(vec![l.to_string()]);
    }
    r
}

#[track_caller]
fn assert_values(got: &Tensor<f64>, want: &[f64], what: &str) {
    assert_eq!(got.data().len(), want.len(), "{what}: {:?}", got.data());
    for (g, w) in got.data().iter().zip(want) {
        assert!(
            (g - w).abs() <= TOL,
            "{what}: got {:?}, the page says {want:?}",
            got.data()
        );
    }
}

#[test]
fn outputs_at_input_and_baseline() {
    let y = model().forward(&x()).unwrap();
    assert_values(&y, &[4.0], "F(x)");
    let y0 = model().forward(&Tensor::zeros(&[1, 2])).unwrap();
    assert_values(&y0, &[0.0], "F(x')");
    let r = run(&req(Method::IntegratedGradients, None, None));
    assert_eq!(r.outputs_input, vec![4.0]);
    assert_eq!(r.outputs_baseline, vec![0.0]);
}

#[test]
fn integrated_gradients_exact() {
    let r = run(&req(Method::IntegratedGradients, None, None));
    assert_values(r.get("input").unwrap(), &[4.0, 0.0], "IG (exact)");
    assert!(r.delta_of("input").unwrap()[0].abs() <= TOL);
    // One kink on the path (z₂ = 0 at α = ½): two pieces.
    assert_eq!(r.pieces, Some(vec![2]));
}

#[test]
fn integrated_gradients_gauss_legendre_two_points() {
    // Nodes ½ ∓ 1/(2√3) lie on either side of the kink at ½ with equal weights ½, so the
    // 2-point rule is exact here: IG = (2·(½·1 + ½·3), 1·(½·(−1) + ½·1)) = (4, 0).
    let r = run(&req(
        Method::IntegratedGradients,
        Some((Rule::GaussLegendre, 2)),
        None,
    ));
    assert_values(
        r.get("input").unwrap(),
        &[4.0, 0.0],
        "IG (gauss-legendre, 2)",
    );
    let c = run(&req(
        Method::Conductance,
        Some((Rule::GaussLegendre, 2)),
        None,
    ));
    assert_values(
        c.get("1").unwrap(),
        &[1.0, 3.0],
        "conductance (gauss-legendre, 2)",
    );
}

#[test]
fn conductance_exact() {
    let r = run(&req(Method::Conductance, None, None));
    assert_values(r.get("1").unwrap(), &[1.0, 3.0], "conductance of h");
    // The pre-activations z carry the same flow here: z₁ = α moves at rate 1 with
    // ∂F/∂z₁ = 1; z₂ matters only after ½ (∂F/∂z₂ = 2, dz₂/dα = 3).
    assert_values(r.get("0").unwrap(), &[1.0, 3.0], "conductance of z");
    assert_values(r.get("2").unwrap(), &[4.0], "conductance of F");
    for layer in ["0", "1", "2"] {
        assert!(r.delta_of(layer).unwrap()[0].abs() <= TOL, "layer {layer}");
    }
}

#[test]
fn neuron_conductance_of_h2_and_h1() {
    let mut q = req(Method::NeuronConductance, None, Some("1"));
    q.neurons = vec![vec![1]];
    assert_values(
        run(&q).get("1").unwrap(),
        &[2.0, 1.0],
        "neuron conductance of h2",
    );
    q.neurons = vec![vec![0]];
    assert_values(
        run(&q).get("1").unwrap(),
        &[2.0, -1.0],
        "neuron conductance of h1",
    );
    // Both at once: reported under "1:0" and "1:1".
    q.neurons = vec![vec![0], vec![1]];
    let r = run(&q);
    assert_values(r.get("1:0").unwrap(), &[2.0, -1.0], "1:0");
    assert_values(r.get("1:1").unwrap(), &[2.0, 1.0], "1:1");
}

#[test]
fn internal_influence() {
    let r = run(&req(Method::InternalInfluence, None, Some("1")));
    assert_values(r.get("1").unwrap(), &[1.0, 2.0], "internal influence of h");
    // Also under a quadrature rule: ∂F/∂h = (1, 2) everywhere.
    let r = run(&req(
        Method::InternalInfluence,
        Some((Rule::RiemannLeft, 2)),
        Some("1"),
    ));
    assert_values(
        r.get("1").unwrap(),
        &[1.0, 2.0],
        "internal influence (riemann-left)",
    );
}

#[test]
fn activation_and_gradient_x_activation() {
    let q = |m| {
        let mut r = Request::new(m, 0);
        r.layers = LayerSelection::Names(vec!["1".into()]);
        r
    };
    let r = run(&q(Method::Activation));
    assert_values(r.get("1").unwrap(), &[1.0, 1.5], "activation of h");
    let r = run(&q(Method::GradientXActivation));
    assert_values(r.get("1").unwrap(), &[1.0, 3.0], "gradient×activation of h");
}

#[test]
fn riemann_left_two_steps_true_values() {
    let r = run(&req(
        Method::IntegratedGradients,
        Some((Rule::RiemannLeft, 2)),
        None,
    ));
    assert_values(
        r.get("input").unwrap(),
        &[1.0, -0.5],
        "IG (riemann-left, 2)",
    );
    assert!((r.delta_of("input").unwrap()[0] + 3.5).abs() <= TOL);
    let c = run(&req(
        Method::Conductance,
        Some((Rule::RiemannLeft, 2)),
        Some("1"),
    ));
    assert_values(
        c.get("1").unwrap(),
        &[0.5, 0.0],
        "conductance (riemann-left, 2)",
    );
    assert!((c.delta_of("1").unwrap()[0] + 3.5).abs() <= TOL);
}

/// The page's gradients along the path, (1, −1) for α < ½ and (3, 1) for α > ½, seen
/// through rules whose nodes avoid the kink and the baseline: riemann-middle, n = 4 (nodes
/// ⅛, ⅜ before the kink, ⅝, ⅞ after) gives IG = (2·(1 + 1 + 3 + 3)/4, (−1 − 1 + 1 + 1)/4)
/// = (4, 0); riemann-right, n = 1 (the single node α = 1) gives (2·3, 1·1) = (6, 1).
#[test]
fn gradients_on_each_side_of_the_kink() {
    let r = run(&req(
        Method::IntegratedGradients,
        Some((Rule::RiemannMiddle, 4)),
        None,
    ));
    assert_values(
        r.get("input").unwrap(),
        &[4.0, 0.0],
        "IG (riemann-middle, 4)",
    );
    let r = run(&req(
        Method::IntegratedGradients,
        Some((Rule::RiemannRight, 1)),
        None,
    ));
    assert_values(
        r.get("input").unwrap(),
        &[6.0, 1.0],
        "IG (riemann-right, 1)",
    );
}
