//! `mho train`: deterministic for a seed whatever the thread count; saved models load.

mod nn_util;

use nn_util::*;
use std::process::Command;

fn train(dir: &TempDir, name: &str, args: &[&str]) -> Vec<u8> {
    let out_path = dir.path(name);
    let out = Command::new(env!("CARGO_BIN_EXE_mho"))
        .args(["train", "--dataset", "digits", "--out"])
        .arg(&out_path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("epoch 1/1") && stdout.contains("held-out accuracy"),
        "{stdout}"
    );
    std::fs::read(out_path).unwrap()
}

#[test]
fn training_is_bit_identical_across_thread_counts() {
    let dir = TempDir::new("threads");
    for preset in ["digits-cnn", "digits-mlp"] {
        let base = ["--arch", preset, "--epochs", "1", "--seed", "5"];
        let one = train(
            &dir,
            &format!("{preset}-1.safetensors"),
            &[&base[..], &["--threads", "1"]].concat(),
        );
        let two = train(
            &dir,
            &format!("{preset}-2.safetensors"),
            &[&base[..], &["--threads", "2"]].concat(),
        );
        assert!(
            one == two,
            "{preset}: weights differ between --threads 1 and 2"
        );
        let other = train(
            &dir,
            &format!("{preset}-s.safetensors"),
            &["--arch", preset, "--epochs", "1", "--seed", "6"],
        );
        assert!(
            one != other,
            "{preset}: a different seed gave the same weights"
        );
        let m = mho::nn::Model::<f32>::load(&dir.path(&format!("{preset}-1.safetensors"))).unwrap();
        assert_eq!(m.input_shape(), &[1, 8, 8]);
        assert_eq!(m.output_shape(), &[10]);
    }
}

#[test]
fn training_from_an_architecture_file_with_sgd() {
    let dir = TempDir::new("archfile");
    let arch = dir.path("arch.json");
    std::fs::write(
        &arch,
        r#"{"format": "mho.sequential.v1", "input_shape": [1, 8, 8], "layers": [
            {"type": "Flatten"}, {"type": "Linear", "in_features": 64, "out_features": 10}]}"#,
    )
    .unwrap();
    let bytes = train(
        &dir,
        "m.safetensors",
        &[
            "--arch",
            arch.to_str().unwrap(),
            "--epochs",
            "1",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
        ],
    );
    let m = mho::nn::Model::<f32>::from_safetensors(&bytes).unwrap();
    assert_eq!(m.layer_names(), ["0", "1"]);
}
