//! `mho attribute` end to end, on the Captum fixture `tests/fixtures/captum/cnn_bn.safetensors`
//! (Conv2d, BatchNorm2d, ReLU, MaxPool2d, Conv2d, ReLU, AvgPool2d, Flatten, Linear; input
//! [2, 6, 6], 4 outputs) with inputs written to a temporary directory as .npy:
//!
//! - the JSON contract: `method`, `rule`, `steps`, `target`, `precision`,
//!   `outputs.input` / `outputs.baseline` (one F per example), `attributions.NAME.shape` /
//!   `.data` (row-major, `data.len()` = Π shape), `delta` (Σ attributions − (F(x) − F(x'))),
//!   and values equal to the library's `attribute` on the same model and input;
//! - `--layer all` (and no `--layer`) reports every layer; `--neuron` twice reports under
//!   `NAME:I,J,K`, once under `NAME`; `--out` writes the same JSON to the file and nothing
//!   to stdout; `--rule exact` adds `pieces`;
//! - bad input — unknown method, rule or conductance form, a layer that does not exist, a
//!   neuron index out of range, a target beyond the outputs, steps 0, riemann-trapezoid
//!   with one step, a baseline .npy of the wrong shape or missing, --max-pieces exceeded
//!   with --rule exact, an input of the wrong shape or holding NaN: exit code ≠ 0, exactly
//!   one line on stderr starting with `error:` naming the argument, no panic ("internal
//!   error" never appears), nothing on stdout and no --out file;
//! - `--rule exact` in f32 (the default precision) on the fixture with a Softmax head.

use mho::attribution::{attribute, Baseline, LayerSelection, Method, Request, Rule};
use mho::io::write_npy;
use mho::nn::rng::Rng;
use mho::nn::Model;
use mho::Tensor;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "mho-cli-attribute-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captum")
        .join(name)
}

fn model_path() -> PathBuf {
    fixture("cnn_bn.safetensors")
}

/// A deterministic random input batch [2, 2, 6, 6] (values in [−2, 2]).
fn input() -> Tensor<f64> {
    let mut r = Rng::new(11, 0);
    Tensor::new(
        vec![2, 2, 6, 6],
        (0..144).map(|_| r.uniform_range(-2.0, 2.0)).collect(),
    )
    .unwrap()
}

/// A temp dir holding `x.npy` (the input batch).
fn setup(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    write_npy(&dir.path("x.npy"), &input()).unwrap();
    dir
}

fn mho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mho"))
        .arg("attribute")
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs `mho attribute` with the model, the input and `args`, expects success, returns the
/// JSON from stdout.
fn ok(dir: &TempDir, args: &[&str]) -> Value {
    let (m, x) = (s(&model_path()), s(&dir.path("x.npy")));
    let mut all = vec!["--model", &m, "--input", &x];
    all.extend_from_slice(args);
    let out = mho(&all);
    assert!(
        out.status.success(),
        "mho attribute {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Checks the keys common to every document and each attribution's shape/data.
fn check_contract(v: &Value, method: &str, rule: &str, steps: u64, target: u64, precision: &str) {
    assert_eq!(v["method"], method, "{v}");
    assert_eq!(v["rule"], rule);
    assert_eq!(v["steps"], steps);
    assert_eq!(v["target"], target);
    assert_eq!(v["precision"], precision);
    assert_eq!(floats(&v["outputs"]["input"]).len(), 2);
    assert_eq!(floats(&v["outputs"]["baseline"]).len(), 2);
    let attrs = v["attributions"].as_object().expect("attributions object");
    assert!(!attrs.is_empty());
    for (name, a) in attrs {
        let shape = usizes(&a["shape"]);
        assert_eq!(shape[0], 2, "{name}: batch axis");
        assert_eq!(
            floats(&a["data"]).len(),
            shape.iter().product::<usize>(),
            "{name}: data length"
        );
    }
    assert!(v["delta"].is_object(), "delta object");
}

/// The library's result on the same model and input (f64).
fn library(req: &Request) -> mho::attribution::Report {
    let model = Model::<f64>::load(&model_path()).unwrap();
    attribute(&model, &input(), req).unwrap()
}

#[track_caller]
fn assert_same(json: &Value, lib: &Tensor<f64>, what: &str) {
    assert_eq!(usizes(&json["shape"]), lib.shape(), "{what}");
    let got = floats(&json["data"]);
    let scale = lib.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(lib.data()) {
        assert!((g - w).abs() <= 1e-12 * scale, "{what}: {g} vs {w}");
    }
}

#[test]
fn integrated_gradients_json_contract() {
    let dir = setup("ig");
    let v = ok(
        &dir,
        &[
            "--target",
            "1",
            "--method",
            "integrated-gradients",
            "--rule",
            "riemann-middle",
            "--steps",
            "20",
            "--precision",
            "f64",
        ],
    );
    check_contract(&v, "integrated-gradients", "riemann-middle", 20, 1, "f64");
    let attrs = v["attributions"].as_object().unwrap();
    assert_eq!(attrs.keys().collect::<Vec<_>>(), vec!["input"]);
    assert_eq!(
        usizes(&v["attributions"]["input"]["shape"]),
        vec![2, 2, 6, 6]
    );
    let mut req = Request::new(Method::IntegratedGradients, 1);
    req.rule = Rule::RiemannMiddle;
    req.steps = 20;
    let lib = library(&req);
    assert_same(&v["attributions"]["input"], lib.get("input").unwrap(), "IG");
    assert_eq!(floats(&v["outputs"]["input"]), lib.outputs_input);
    assert_eq!(floats(&v["outputs"]["baseline"]), lib.outputs_baseline);
    // delta = Σ IG − (F(x) − F(x')) per example.
    let data = floats(&v["attributions"]["input"]["data"]);
    let delta = floats(&v["delta"]["input"]);
    assert_eq!(delta.len(), 2);
    for e in 0..2 {
        let sum: f64 = data[e * 72..(e + 1) * 72].iter().sum();
        let change = floats(&v["outputs"]["input"])[e] - floats(&v["outputs"]["baseline"])[e];
        assert!((delta[e] - (sum - change)).abs() <= 1e-12 * (1.0 + sum.abs()));
    }
    assert!(v.get("pieces").is_none(), "pieces only with --rule exact");
}

#[test]
fn defaults_are_gauss_legendre_50_in_f32() {
    let dir = setup("defaults");
    let v = ok(&dir, &["--target", "0", "--method", "integrated-gradients"]);
    check_contract(&v, "integrated-gradients", "gauss-legendre", 50, 0, "f32");
}

#[test]
fn layer_all_gives_every_layer() {
    let dir = setup("all");
    let names: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    for extra in [&["--layer", "all"][..], &[][..]] {
        let mut args = vec![
            "--target",
            "2",
            "--method",
            "conductance",
            "--precision",
            "f64",
        ];
        args.extend_from_slice(extra);
        let v = ok(&dir, &args);
        check_contract(&v, "conductance", "gauss-legendre", 50, 2, "f64");
        let mut keys: Vec<String> = v["attributions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort_by_key(|k| k.parse::<usize>().unwrap());
        assert_eq!(keys, names, "{extra:?}");
        let mut dkeys: Vec<String> = v["delta"].as_object().unwrap().keys().cloned().collect();
        dkeys.sort_by_key(|k| k.parse::<usize>().unwrap());
        assert_eq!(dkeys, names);
        let req = Request::new(Method::Conductance, 2);
        let lib = library(&req);
        for name in &names {
            assert_same(
                &v["attributions"][name.as_str()],
                lib.get(name).unwrap(),
                name,
            );
        }
        assert_eq!(usizes(&v["attributions"]["3"]["shape"]), vec![2, 4, 3, 3]);
    }
    // Several named layers, and the input.
    let v = ok(
        &dir,
        &[
            "--target",
            "2",
            "--method",
            "internal-influence",
            "--layer",
            "3",
            "--layer",
            "input",
        ],
    );
    let mut keys: Vec<&String> = v["attributions"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["3", "input"]);
}

#[test]
fn neuron_twice_gives_layer_and_index_keys() {
    let dir = setup("neuron");
    let v = ok(
        &dir,
        &[
            "--target",
            "1",
            "--method",
            "neuron-conductance",
            "--layer",
            "3",
            "--neuron",
            "0,1,1",
            "--neuron",
            "2,0,2",
            "--precision",
            "f64",
            "--steps",
            "16",
        ],
    );
    check_contract(&v, "neuron-conductance", "gauss-legendre", 16, 1, "f64");
    let mut keys: Vec<&String> = v["attributions"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["3:0,1,1", "3:2,0,2"]);
    let mut req = Request::new(Method::NeuronConductance, 1);
    req.layers = LayerSelection::Names(vec!["3".into()]);
    req.neurons = vec![vec![0, 1, 1], vec![2, 0, 2]];
    req.steps = 16;
    let lib = library(&req);
    for k in ["3:0,1,1", "3:2,0,2"] {
        assert_eq!(usizes(&v["attributions"][k]["shape"]), vec![2, 2, 6, 6]);
        assert_same(&v["attributions"][k], lib.get(k).unwrap(), k);
    }
    // One neuron: under the layer's name.
    let v = ok(
        &dir,
        &[
            "--target",
            "1",
            "--method",
            "neuron-conductance",
            "--layer",
            "3",
            "--neuron",
            "1,2,0",
        ],
    );
    assert_eq!(
        v["attributions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["3"]
    );
}

#[test]
fn out_writes_the_file() {
    let dir = setup("out");
    let out = dir.path("result.json");
    let (m, x, o) = (s(&model_path()), s(&dir.path("x.npy")), s(&out));
    let args = [
        "--model",
        &m,
        "--input",
        &x,
        "--target",
        "3",
        "--method",
        "gradient-x-activation",
        "--precision",
        "f64",
    ];
    let res = mho(&[&args[..], &["--out", o.as_str()]].concat());
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(res.stdout.is_empty(), "with --out, nothing on stdout");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let printed: Value = serde_json::from_slice(&mho(&args).stdout).unwrap();
    assert_eq!(written, printed);
    check_contract(
        &written,
        "gradient-x-activation",
        "gauss-legendre",
        0,
        3,
        "f64",
    );
}

#[test]
fn exact_rule_reports_pieces() {
    let dir = setup("exact");
    let v = ok(
        &dir,
        &[
            "--target",
            "1",
            "--method",
            "conductance",
            "--rule",
            "exact",
            "--precision",
            "f64",
        ],
    );
    check_contract(&v, "conductance", "exact", 0, 1, "f64");
    let pieces = usizes(&v["pieces"]);
    assert_eq!(pieces.len(), 2);
    assert!(pieces.iter().all(|&p| p >= 1), "{pieces:?}");
    for (name, d) in v["delta"].as_object().unwrap() {
        let change: Vec<f64> = (0..2)
            .map(|e| floats(&v["outputs"]["input"])[e] - floats(&v["outputs"]["baseline"])[e])
            .collect();
        for (e, d) in floats(d).iter().enumerate() {
            assert!(
                d.abs() <= 1e-9 * change[e].abs(),
                "layer {name}: delta {d:e}"
            );
        }
    }
}

/// `--rule exact` in f32, the default precision, on the Captum fixture with a Tanh layer
/// and a Softmax head: the issue asks for completeness within 1e-4 in f32. The fixture's
/// weights and this input are exact in f32, so the reference F(x) − F(x') is the f64
/// model's (free of the f32 forward's own rounding).
#[test]
fn exact_rule_in_f32_on_a_softmax_head() {
    let dir = TempDir::new("exact32");
    let mut r = Rng::new(5, 0);
    let x = Tensor::new(
        vec![2, 7],
        (0..14)
            .map(|_| r.uniform_range(-1.0, 1.0) as f32 as f64)
            .collect(),
    )
    .unwrap();
    write_npy(&dir.path("x.npy"), &x).unwrap();
    let model = fixture("softmax_head.safetensors");
    let (m, xp) = (s(&model), s(&dir.path("x.npy")));
    let out = mho(&[
        "--model",
        &m,
        "--input",
        &xp,
        "--target",
        "3",
        "--method",
        "integrated-gradients",
        "--rule",
        "exact",
    ]);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["precision"], "f32");
    let m64 = Model::<f64>::load(&model).unwrap();
    let fx = m64.forward(&x).unwrap();
    let fb = m64.forward(&Tensor::zeros(&[2, 7])).unwrap();
    let k = fx.len() / 2;
    let ig = floats(&v["attributions"]["input"]["data"]);
    for e in 0..2 {
        let change = fx.data()[e * k + 3] - fb.data()[e * k + 3];
        let sum: f64 = ig[e * 7..(e + 1) * 7].iter().sum();
        assert!(
            (sum - change).abs() <= 1e-4 * change.abs(),
            "example {e}: Σ IG {sum:e}, F(x) − F(x') {change:e}"
        );
    }
}

// ---------------------------------------------------------------- bad input

/// Runs `mho attribute` with `args` plus `--out`, expects failure: exit code ≠ 0 and not
/// the internal-error code, one stderr line `error: …` mentioning every one of `names`,
/// nothing on stdout, no --out file. Returns the line.
fn fails(dir: &TempDir, args: &[&str], names: &[&str]) -> String {
    let out_file = dir.path("must-not-exist.json");
    let o = s(&out_file);
    let res = mho(&[args, &["--out", o.as_str()]].concat());
    let err = String::from_utf8_lossy(&res.stderr).to_string();
    let code = res.status.code();
    assert!(
        code.is_some() && code != Some(0) && code != Some(70),
        "mho attribute {args:?}: exit {code:?}, stderr {err}"
    );
    assert!(res.stdout.is_empty(), "{args:?}: stdout on failure");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: stderr is not one line: {err}");
    assert!(lines[0].starts_with("error:"), "{err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{args:?}: {err}"
    );
    for n in names {
        assert!(err.contains(n), "{args:?}: {err:?} does not name {n:?}");
    }
    assert!(!out_file.exists(), "{args:?}: --out file created");
    lines[0].to_string()
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let dir = setup("bad");
    let (m, x) = (s(&model_path()), s(&dir.path("x.npy")));
    let base = ["--model", m.as_str(), "--input", x.as_str()];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .map(|a| a.to_string())
            .chain(extra.iter().map(|a| a.to_string()))
            .collect()
    };
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (
            with(&["--target", "0", "--method", "saliency"]),
            &["--method", "saliency"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "integrated-gradients",
                "--rule",
                "simpson",
            ]),
            &["--rule", "simpson"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "conductance",
                "--conductance-form",
                "chord",
            ]),
            &["--conductance-form"],
        ),
        (
            with(&["--target", "0", "--method", "conductance", "--layer", "9"]),
            &["--layer", "9"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "conductance",
                "--layer",
                "relu",
            ]),
            &["--layer", "relu"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "neuron-conductance",
                "--layer",
                "3",
                "--neuron",
                "4,0,0",
            ]),
            &["--neuron"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "neuron-conductance",
                "--layer",
                "3",
                "--neuron",
                "0,0",
            ]),
            &["--neuron"],
        ),
        (
            with(&["--target", "4", "--method", "integrated-gradients"]),
            &["--target", "4"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "integrated-gradients",
                "--steps",
                "0",
            ]),
            &["--steps"],
        ),
        (
            with(&[
                "--target",
                "0",
                "--method",
                "integrated-gradients",
                "--rule",
                "riemann-trapezoid",
                "--steps",
                "1",
            ]),
            &["--steps", "riemann-trapezoid"],
        ),
    ];
    for (args, names) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&dir, &args, names);
    }
}

#[test]
fn bad_baselines_are_one_line_errors() {
    let dir = setup("badbase");
    let (m, x) = (s(&model_path()), s(&dir.path("x.npy")));
    let wrong = dir.path("wrong.npy");
    write_npy(&wrong, &Tensor::<f64>::zeros(&[2, 6, 5])).unwrap();
    let missing = dir.path("missing.npy");
    for b in [s(&wrong), s(&missing)] {
        fails(
            &dir,
            &[
                "--model",
                &m,
                "--input",
                &x,
                "--target",
                "0",
                "--method",
                "integrated-gradients",
                "--baseline",
                &b,
            ],
            &["--baseline"],
        );
    }
    // A baseline of one example's shape is broadcast; the whole batch's shape is fine too.
    let one = dir.path("one.npy");
    write_npy(&one, &Tensor::<f64>::full(&[2, 6, 6], 0.25)).unwrap();
    let v = ok(
        &dir,
        &[
            "--target",
            "0",
            "--method",
            "integrated-gradients",
            "--baseline",
            &s(&one),
        ],
    );
    let lib = {
        let mut req = Request::new(Method::IntegratedGradients, 0);
        req.baseline = Baseline::Constant(0.25);
        library(&req)
    };
    let got = floats(&v["outputs"]["baseline"]);
    for (g, w) in got.iter().zip(&lib.outputs_baseline) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn max_pieces_exceeded_is_a_one_line_error() {
    let dir = setup("pieces");
    let v = ok(
        &dir,
        &[
            "--target",
            "1",
            "--method",
            "integrated-gradients",
            "--rule",
            "exact",
            "--precision",
            "f64",
        ],
    );
    let most = *usizes(&v["pieces"]).iter().max().unwrap();
    assert!(most >= 2, "the fixture's path has kinks: pieces {most}");
    let (m, x) = (s(&model_path()), s(&dir.path("x.npy")));
    let limit = (most - 1).to_string();
    fails(
        &dir,
        &[
            "--model",
            &m,
            "--input",
            &x,
            "--target",
            "1",
            "--method",
            "integrated-gradients",
            "--rule",
            "exact",
            "--precision",
            "f64",
            "--max-pieces",
            &limit,
        ],
        &["--max-pieces"],
    );
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = setup("badin");
    let m = s(&model_path());
    let wrong = dir.path("wrong-shape.npy");
    write_npy(&wrong, &Tensor::<f64>::zeros(&[2, 3, 6, 6])).unwrap();
    let nan = dir.path("nan.npy");
    let mut d = input().into_data();
    d[5] = f64::NAN;
    write_npy(&nan, &Tensor::new(vec![2, 2, 6, 6], d).unwrap()).unwrap();
    for bad in [&wrong, &nan] {
        for rule in ["gauss-legendre", "exact"] {
            // The message names the argument or the file it gave.
            let line = fails(
                &dir,
                &[
                    "--model",
                    &m,
                    "--input",
                    &s(bad),
                    "--target",
                    "0",
                    "--method",
                    "integrated-gradients",
                    "--rule",
                    rule,
                ],
                &[],
            );
            let name = bad.file_name().unwrap().to_str().unwrap();
            assert!(
                line.contains("--input") || line.contains(name),
                "{line:?} names neither --input nor {name}"
            );
        }
    }
}
