//! `mho predict` and `mho eval` end to end.

mod nn_util;

use nn_util::*;
use std::process::Command;

fn mho() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mho"))
}

#[test]
fn predict_prints_outputs_json_and_writes_npy() {
    let dir = TempDir::new("predict");
    let model = dir.path("m.safetensors");
    cnn::<f32>(1).save(&model).unwrap();
    let x: Vec<f32> = (0..144).map(|i| (i % 13) as f32 / 13.0).collect();
    let input = dir.path("x.npy");
    write(
        &input,
        &npy_file("<f4", false, &[2, 2, 6, 6], &f32_bytes(&x)),
    );

    let out = mho()
        .args(["predict", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outputs"]["shape"], serde_json::json!([2, 3]));
    let data: Vec<f32> = v["outputs"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let m = mho::nn::Model::<f32>::load(&model).unwrap();
    let expect = m
        .forward(&mho::Tensor::new(vec![2, 2, 6, 6], x.clone()).unwrap())
        .unwrap();
    assert_eq!(data, expect.data(), "JSON values read back exactly");

    // --out FILE.json, and --out FILE.npy; a single example without the batch axis.
    let single = dir.path("one.npy");
    write(
        &single,
        &npy_file("<f4", false, &[2, 6, 6], &f32_bytes(&x[..72])),
    );
    let js = dir.path("y.json");
    let st = mho()
        .args(["predict", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&single)
        .arg("--out")
        .arg(&js)
        .status()
        .unwrap();
    assert!(st.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
    assert_eq!(v["outputs"]["shape"], serde_json::json!([1, 3]));
    let npy = dir.path("y.npy");
    let st = mho()
        .args(["predict", "--dtype", "f64", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&npy)
        .status()
        .unwrap();
    assert!(st.success());
    let y = mho::io::read_npy_array(&npy).unwrap();
    assert_eq!(y.shape, vec![2, 3]);
    assert!(matches!(y.data, mho::io::NpyData::F64(_)));
}

#[test]
fn eval_reports_accuracy_json() {
    let dir = TempDir::new("eval");
    let model = dir.path("m.safetensors");
    let st = mho()
        .args([
            "train",
            "--dataset",
            "digits",
            "--arch",
            "digits-mlp",
            "--epochs",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&model)
        .status()
        .unwrap();
    assert!(st.success());
    let out = mho()
        .args(["eval", "--dataset", "digits", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n"], 360);
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.8 && acc <= 1.0, "{acc}");
}
