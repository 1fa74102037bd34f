//! Agreement with PyTorch: every `<name>.safetensors` in tests/fixtures/model_format/ with
//! its `<name>.input.npy` and `<name>.output.npy` (made by scripts/make_fixtures.py from
//! PyTorch) must give PyTorch's outputs in mho to 1e-5 relative, computing in f32 and in
//! f64. Fails when the directory holds no such triple.

mod nn_util;

use mho::io::{read_input, read_npy};
use mho::nn::Model;
use mho::{Float, Tensor};
use std::path::{Path, PathBuf};

fn triples() -> Vec<(String, PathBuf, PathBuf, PathBuf)> {
    let dir = nn_util::fixtures_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = entry.path();
        let Some(name) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".safetensors"))
        else {
            continue;
        };
        let input = dir.join(format!("{name}.input.npy"));
        let output = dir.join(format!("{name}.output.npy"));
        if input.is_file() && output.is_file() {
            out.push((name.to_string(), p.clone(), input, output));
        }
    }
    out.sort();
    out
}

fn compare<T: Float>(
    name: &str,
    model: &Path,
    input: &Path,
    expected: &Tensor<f64>,
) -> Result<f64, String> {
    let m = Model::<T>::load(model).map_err(|e| e.to_string())?;
    let x: Tensor<T> =
        read_input(input, m.input_shape(), m.takes_tokens()).map_err(|e| e.to_string())?;
    let y = m.forward(&x).map_err(|e| e.to_string())?;
    if y.shape() != expected.shape() {
        return Err(format!(
            "{name}: output shape {:?}, PyTorch {:?}",
            y.shape(),
            expected.shape()
        ));
    }
    let scale = expected.data().iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut worst = 0.0f64;
    for (i, (a, b)) in y.data().iter().zip(expected.data()).enumerate() {
        let (a, b) = (a.to_f64(), *b);
        // 1e-5 relative, with a floor of 1e-6 of the output's scale for values near 0.
        let tol = 1e-5 * b.abs().max(1e-6 * scale).max(1e-30);
        let err = (a - b).abs();
        worst = worst.max(err / b.abs().max(1e-6 * scale).max(1e-30));
        if err > tol {
            return Err(format!(
                "{name} ({}): element {i}: mho {a}, PyTorch {b}",
                T::NAME
            ));
        }
    }
    Ok(worst)
}

#[test]
fn pytorch_fixtures_agree() {
    let all = triples();
    assert!(
        !all.is_empty(),
        "no <name>.safetensors/.input.npy/.output.npy triples in {}",
        nn_util::fixtures_dir().display()
    );
    let mut failures = Vec::new();
    for (name, model, input, output) in &all {
        let expected: Tensor<f64> = read_npy(output).unwrap();
        for r in [
            compare::<f32>(name, model, input, &expected),
            compare::<f64>(name, model, input, &expected),
        ] {
            match r {
                Ok(worst) => eprintln!("{name}: worst relative error {worst:.2e}"),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
