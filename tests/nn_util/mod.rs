//! Helpers shared by the nn_* and cli_* tests: temporary directories, small models,
//! hand-built model files.
#![allow(dead_code)]

use mho::nn::{Architecture, Model};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "mho-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small CNN over [2, 6, 6] touching most parameterised layer types.
pub const CNN_JSON: &str = r#"{"format": "mho.sequential.v1", "input_shape": [2, 6, 6], "layers": [
  {"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "BatchNorm2d", "num_features": 4},
  {"type": "PReLU", "num_parameters": 4},
  {"type": "MaxPool2d", "kernel_size": 2},
  {"type": "Flatten"},
  {"type": "Linear", "in_features": 36, "out_features": 5},
  {"type": "Tanh"},
  {"type": "Linear", "in_features": 5, "out_features": 3, "bias": false}
]}"#;

/// A token model: Embedding → Conv1d over positions.
pub const EMB_JSON: &str = r#"{"format": "mho.sequential.v1", "input_shape": [7], "layers": [
  {"type": "Embedding", "num_embeddings": 11, "embedding_dim": 4, "padding_idx": 0},
  {"type": "Permute", "dims": [0, 2, 1]},
  {"type": "Conv1d", "in_channels": 4, "out_channels": 3, "kernel_size": 3},
  {"type": "ReLU"},
  {"type": "Flatten"},
  {"type": "Linear", "in_features": 15, "out_features": 2}
]}"#;

pub fn cnn<T: mho::Float>(seed: u64) -> Model<T> {
    let mut m = Model::init(Architecture::from_json(CNN_JSON).unwrap(), seed).unwrap();
    // Non-trivial running statistics so BatchNorm is exercised.
    let mean = mho::Tensor::from_f64(&[4], &[0.1, -0.2, 0.3, 0.05]).unwrap();
    let var = mho::Tensor::from_f64(&[4], &[0.5, 1.5, 2.0, 0.9]).unwrap();
    m.set_param("1.running_mean", mean).unwrap();
    m.set_param("1.running_var", var).unwrap();
    m
}

pub fn emb<T: mho::Float>(seed: u64) -> Model<T> {
    Model::init(Architecture::from_json(EMB_JSON).unwrap(), seed).unwrap()
}

/// The bytes of a safetensors file built by hand: header JSON then data.
pub fn raw_file(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// Splits a safetensors file into (header JSON, data bytes).
pub fn split_file(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

/// A minimal .npy (v1) file of f32 or raw elements with the given header fields.
pub fn npy_file(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_s}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// The fixtures directory of the model-format tests.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model_format")
}
