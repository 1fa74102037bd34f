//! Every failure of the command line is one line `error: …` on stderr naming the file or
//! argument, with a non-zero exit code, no panic and no half-written output file.

mod nn_util;

use nn_util::*;
use std::path::Path;
use std::process::Command;

/// Runs mho, expects failure with `code`, returns the single stderr line.
fn fails(args: &[&str], code: i32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mho"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "mho {args:?}: stderr {err}");
    assert!(
        out.stdout.is_empty(),
        "mho {args:?} printed to stdout on failure"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "mho {args:?}: stderr is not one line: {err}"
    );
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    lines[0].to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "{e:?} does not mention {p:?}");
    }
}

#[test]
fn model_and_input_errors() {
    let dir = TempDir::new("clierr");
    let model = dir.path("m.safetensors");
    cnn::<f32>(0).save(&model).unwrap();
    let good = dir.path("x.npy");
    write(
        &good,
        &npy_file("<f4", false, &[2, 6, 6], &f32_bytes(&[0.5; 72])),
    );
    let out = dir.path("out.json");
    let o = s(&out);

    let missing = dir.path("missing.safetensors");
    let e = fails(
        &[
            "predict",
            "--model",
            s(&missing),
            "--input",
            s(&good),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["missing.safetensors", "no such file"]);
    let e = fails(
        &[
            "predict",
            "--model",
            s(&dir.0),
            "--input",
            s(&good),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["is a directory"]);

    let trunc = dir.path("trunc.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    write(&trunc, &bytes[..bytes.len() / 2]);
    let e = fails(
        &[
            "predict",
            "--model",
            s(&trunc),
            "--input",
            s(&good),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["trunc.safetensors"]);

    let nan = dir.path("nan.npy");
    let mut v = vec![0.5f32; 72];
    v[3] = f32::NAN;
    write(&nan, &npy_file("<f4", false, &[2, 6, 6], &f32_bytes(&v)));
    let e = fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&nan),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["nan.npy", "[0, 0, 3]", "NaN"]);

    let wrong = dir.path("wrong.npy");
    write(
        &wrong,
        &npy_file("<f4", false, &[3, 6, 6], &f32_bytes(&[0.5; 108])),
    );
    let e = fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&wrong),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["wrong.npy", "[3, 6, 6]", "[2, 6, 6]"]);

    let ints = dir.path("ints.npy");
    write(&ints, &npy_file("<i4", false, &[2, 6, 6], &[0u8; 288]));
    let e = fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&ints),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["ints.npy", "int32"]);

    // No output file was left behind by any failure, and no temporary file either.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(!out.exists(), "half-written output left: {left:?}");
    assert!(
        left.iter().all(|n| !n.to_string_lossy().contains(".tmp")),
        "{left:?}"
    );

    let e = fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&good),
            "--out",
            s(&dir.path("no/such/dir/y.json")),
        ],
        1,
    );
    has(&e, &["--out", "does not exist"]);
    let e = fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&good),
            "--out",
            s(&dir.0),
        ],
        1,
    );
    has(&e, &["--out", "is a directory"]);
}

#[test]
fn usage_errors_are_one_line() {
    let e = fails(&["predict", "--model"], 2);
    has(&e, &["--model"]);
    let e = fails(&["frobnicate"], 2);
    has(&e, &["frobnicate"]);
    let e = fails(
        &[
            "train",
            "--dataset",
            "digits",
            "--epochs",
            "zero",
            "--out",
            "/tmp/x.safetensors",
        ],
        2,
    );
    has(&e, &["--epochs"]);
    let e = fails(
        &["predict", "--model", "m", "--input", "x", "--dtype", "f16"],
        2,
    );
    has(&e, &["f16"]);
}

#[test]
fn train_and_eval_errors() {
    let dir = TempDir::new("trainerr");
    let out = dir.path("m.safetensors");
    let o = s(&out);
    let e = fails(&["train", "--dataset", "cifar", "--out", o], 1);
    has(&e, &["unknown dataset \"cifar\""]);
    let e = fails(
        &[
            "train",
            "--dataset",
            "digits",
            "--arch",
            "resnet-9000",
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["--arch resnet-9000", "digits-cnn"]);
    let e = fails(
        &[
            "train",
            "--dataset",
            "digits",
            "--threads",
            "0",
            "--epochs",
            "1",
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["--threads"]);
    let e = fails(&["train", "--dataset", "digits", "--lr=-1", "--out", o], 1);
    has(&e, &["--lr"]);
    let arch = dir.path("bad.json");
    std::fs::write(&arch, r#"{"format": "mho.sequential.v1", "input_shape": [1, 8, 8], "layers": [{"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3}]}"#).unwrap();
    let e = fails(
        &[
            "train",
            "--dataset",
            "digits",
            "--arch",
            s(&arch),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["bad.json", "layer 0 (Conv2d)", "in_channels 3"]);
    let arch2 = dir.path("mismatch.json");
    std::fs::write(&arch2, r#"{"format": "mho.sequential.v1", "input_shape": [1, 8, 8], "layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 64, "out_features": 7}]}"#).unwrap();
    let e = fails(
        &[
            "train",
            "--dataset",
            "digits",
            "--arch",
            s(&arch2),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["[7]", "[10]"]);
    let empty = TempDir::new("nofashion");
    let e = fails(
        &[
            "train",
            "--dataset",
            "fashion-mnist",
            "--data",
            s(&empty.0),
            "--out",
            o,
        ],
        1,
    );
    has(&e, &["apt-get install dataset-fashion-mnist", "--data DIR"]);
    let bad_idx = TempDir::new("badidx");
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(bad_idx.path(f), [0u8, 0, 8, 3, 0, 0, 0, 9]).unwrap();
    }
    let e = fails(
        &[
            "eval",
            "--dataset",
            "fashion-mnist",
            "--data",
            s(&bad_idx.0),
            "--model",
            s(&out),
        ],
        1,
    );
    has(&e, &["m.safetensors", "no such file"]);
    let model = dir.path("cnn.safetensors");
    cnn::<f32>(0).save(&model).unwrap();
    let e = fails(
        &[
            "eval",
            "--dataset",
            "fashion-mnist",
            "--data",
            s(&bad_idx.0),
            "--model",
            s(&model),
        ],
        1,
    );
    has(&e, &["train-images-idx3-ubyte", "IDX"]);
    let e = fails(&["eval", "--dataset", "digits", "--model", s(&model)], 1);
    has(&e, &["[2, 6, 6]", "[1, 8, 8]"]);
    assert!(!out.exists());
}
