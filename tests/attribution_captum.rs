//! Agreement with Captum 0.9 on the fixtures of `scripts/make_fixtures.py`
//! (tests/fixtures/captum/README.md): every case of every model, f64 within 1e-6 of the
//! case's largest |expected|, f32 within 2e-3 of it. `expected` is Captum's output except
//! where Captum is known wrong (trapezoid weights), as the fixtures' notes say.

use mho::attribution::{
    attribute, Baseline, ConductanceForm, LayerSelection, Method, Request, Rule,
};
use mho::nn::Model;
use mho::{Float, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captum")
}

fn tensor(v: &Value) -> Tensor<f64> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    Tensor::new(shape, data).unwrap()
}

struct Outcome {
    cases: usize,
    worst: f64,
}

fn run_case<T: Float>(model: &Model<T>, doc: &Value, case: &Value) -> (Tensor<f64>, Tensor<f64>) {
    let method: Method = case["method"].as_str().unwrap().parse().unwrap();
    let x: Tensor<T> = tensor(&doc["input"]).cast();
    let mut req = Request::new(method, doc["target"].as_u64().unwrap() as usize);
    req.baseline = Baseline::Tensor(tensor(&doc["baseline"]));
    if let Some(rule) = case["rule"].as_str() {
        req.rule = rule.parse::<Rule>().unwrap();
        req.steps = case["steps"].as_u64().unwrap() as usize;
    }
    if method == Method::Conductance {
        req.form = ConductanceForm::Difference;
    }
    let layer = case["layer"].as_str().unwrap().to_string();
    if method != Method::IntegratedGradients {
        req.layers = LayerSelection::Names(vec![layer.clone()]);
    }
    if let Some(nr) = case["neuron"].as_array() {
        req.neurons = vec![nr.iter().map(|i| i.as_u64().unwrap() as usize).collect()];
    }
    req.batch_steps = 7; // chunked, to exercise the bounded-memory path too
    let report =
        attribute(model, &x, &req).unwrap_or_else(|e| panic!("{method} layer {layer}: {e}"));
    let got = report
        .get(&layer)
        .unwrap_or_else(|| panic!("no attributions under {layer}"))
        .clone();
    (got, tensor(&case["expected"]))
}

fn check_model(name: &str) -> Outcome {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    let path = dir().join(doc["model"].as_str().unwrap());
    let m64 = Model::<f64>::load(&path).unwrap();
    let m32 = Model::<f32>::load(&path).unwrap();
    let mut out = Outcome {
        cases: 0,
        worst: 0.0,
    };
    for case in doc["cases"].as_array().unwrap() {
        let f64_case = case["precision"] == "f64";
        let (got, want) = if f64_case {
            run_case(&m64, &doc, case)
        } else {
            run_case(&m32, &doc, case)
        };
        assert_eq!(got.shape(), want.shape(), "{name}: {case:?}");
        let scale = want
            .data()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(1e-12);
        let err = got
            .data()
            .iter()
            .zip(want.data())
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        let tol = if f64_case { 1e-6 } else { 2e-3 };
        assert!(
            err <= tol,
            "{name}: {} layer {} rule {} steps {} {}: relative error {err:e} > {tol:e}",
            case["method"],
            case["layer"],
            case["rule"],
            case["steps"],
            case["precision"]
        );
        out.cases += 1;
        out.worst = out.worst.max(if f64_case { err } else { 0.0 });
    }
    out
}

macro_rules! captum_model {
    ($test:ident, $name:expr) => {
        #[test]
        fn $test() {
            let o = check_model($name);
            assert!(o.cases > 10, "{}: only {} cases", $name, o.cases);
            eprintln!(
                "{}: {} cases, worst f64 relative error {:e}",
                $name, o.cases, o.worst
            );
        }
    };
}

captum_model!(captum_mlp_smooth, "mlp_smooth");
captum_model!(captum_cnn_bn, "cnn_bn");
captum_model!(captum_prelu_net, "prelu_net");
captum_model!(captum_softmax_head, "softmax_head");
captum_model!(captum_conv1d_net, "conv1d_net");
captum_model!(captum_linear, "linear");
