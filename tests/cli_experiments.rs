//! `mho ablate`, `mho select` and `mho tour` on the embedded digits: the JSON contracts,
//! the tour's files, and one-line errors for bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mho"))
        .args(args)
        .output()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mho-exp-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bench/digits_cnn.safetensors")
        .to_string_lossy()
        .into_owned()
}

fn one_line_error(out: &Output, mentions: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(mentions),
        "{err}"
    );
    assert!(!err.contains("internal error"), "{err}");
}

#[test]
fn ablate_json_contract() {
    let m = model();
    let out = mho(&[
        "ablate",
        "--model",
        &m,
        "--dataset",
        "digits",
        "--layer",
        "4",
        "--examples",
        "6",
        "--max-k",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layer"], "4");
    assert_eq!(v["examples"], 6);
    for m in [
        "conductance",
        "activation",
        "gradient-x-activation",
        "internal-influence",
    ] {
        let r = &v["methods"][m];
        assert_eq!(r["flip_rate"].as_array().unwrap().len(), 5, "{m}");
        assert_eq!(r["output_drop"].as_array().unwrap().len(), 5, "{m}");
        let rho = r["spearman"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&rho), "{m}: {rho}");
    }
}

#[test]
fn select_json_contract() {
    let m = model();
    let out = mho(&[
        "select",
        "--model",
        &m,
        "--dataset",
        "digits",
        "--task",
        "group:0,6",
        "--k",
        "2,4",
        "--score-examples",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "group:0,6");
    assert_eq!(v["k"], serde_json::json!([2, 4]));
    for m in [
        "conductance",
        "activation",
        "gradient-x-activation",
        "internal-influence",
    ] {
        let acc = v["accuracy"][m].as_array().unwrap();
        assert_eq!(acc.len(), 2);
        assert!(acc
            .iter()
            .all(|a| (0.0..=1.0).contains(&a.as_f64().unwrap())));
    }
}

#[test]
fn experiments_reject_bad_input_in_one_line() {
    let m = model();
    let base = ["--model", m.as_str(), "--dataset", "digits"];
    let run = |extra: &[&str], cmd: &str| {
        let mut a = vec![cmd];
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        mho(&a)
    };
    // k larger than the layer's filter count (layer 4 has 32).
    one_line_error(
        &run(&["--layer", "4", "--max-k", "33"], "ablate"),
        "--max-k",
    );
    one_line_error(&run(&["--task", "random", "--k", "5,40"], "select"), "--k");
    // A class not in the dataset.
    one_line_error(&run(&["--task", "group:3,12"], "select"), "--task");
    one_line_error(&run(&["--task", "bananas"], "select"), "--task");
    // A layer that does not exist; a scalar-free but filterless layer cannot occur in digits.
    one_line_error(&run(&["--layer", "99"], "ablate"), "--layer");
    // A dataset that is not installed says what to do.
    let out = mho(&[
        "ablate",
        "--model",
        &m,
        "--dataset",
        "fashion-mnist",
        "--data",
        "/nonexistent",
        "--layer",
        "4",
    ]);
    one_line_error(&out, "fashion");
    // An unknown dataset.
    one_line_error(
        &mho(&[
            "select",
            "--model",
            &m,
            "--dataset",
            "cifar",
            "--task",
            "random",
        ]),
        "cifar",
    );
}

#[test]
fn tour_writes_report_and_pictures() {
    let dir = tmp("tour");
    let out = mho(&["tour", "--out", dir.to_str().unwrap(), "--examples", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "held-out accuracy",
        "Conservation",
        "Completeness error",
        "Ablation",
    ] {
        assert!(report.contains(needle), "report lacks {needle}");
    }
    for f in [
        "example0-ig.png",
        "completeness-vs-steps.png",
        "ablation.png",
        "digits-cnn.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    // A second run reuses the cached model.
    let again = mho(&["tour", "--out", dir.to_str().unwrap(), "--examples", "1"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("reusing"));
    std::fs::remove_dir_all(&dir).ok();
}
