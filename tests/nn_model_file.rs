//! The model file: save → load is bit-identical for every dtype, load → save keeps the
//! loaded bytes, and the loaded model computes what the saved one did.

mod nn_util;

use mho::nn::{DType, Model};
use mho::{Tape, Tensor};
use nn_util::*;
use safetensors::SafeTensors;

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

/// (name, dtype, shape, bytes) of every tensor of a file, sorted by name.
fn tensors(bytes: &[u8]) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                format!("{:?}", t.dtype()),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    v.sort();
    v
}

fn sample_input(n: usize) -> Tensor<f64> {
    let data: Vec<f64> = (0..n * 72)
        .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
        .collect();
    Tensor::from_f64(&[n, 2, 6, 6], &data).unwrap()
}

#[test]
fn save_load_is_bit_identical_for_each_dtype() {
    let dir = TempDir::new("roundtrip");
    for dtype in DTYPES {
        let mut m = cnn::<f64>(3);
        m.set_save_dtype(dtype);
        let p1 = dir.path(&format!("a-{}.safetensors", dtype.name()));
        m.save(&p1).unwrap();
        let first = std::fs::read(&p1).unwrap();
        for t in tensors(&first) {
            assert_eq!(t.1, dtype.name(), "tensor {} saved as {}", t.0, t.1);
        }
        // Load as f32 and as f64; saving either gives back the same file, byte for byte.
        let m32 = Model::<f32>::load(&p1).unwrap();
        let m64 = Model::<f64>::load(&p1).unwrap();
        for (tag, bytes) in [
            ("f32", m32.to_safetensors().unwrap()),
            ("f64", m64.to_safetensors().unwrap()),
            ("f64→f32 cast", m64.cast::<f32>().to_safetensors().unwrap()),
        ] {
            assert_eq!(
                bytes,
                first,
                "{} file re-saved through {tag} differs",
                dtype.name()
            );
        }
        // Values: loaded parameters are the saved ones rounded to the dtype.
        for (name, v) in m.params() {
            let loaded = m64.param(&name).unwrap();
            assert_eq!(loaded.shape(), v.shape());
            assert_eq!(m64.param_dtype(&name), Some(dtype));
            for (a, b) in loaded.data().iter().zip(v.data()) {
                let r = match dtype {
                    DType::F32 => *b as f32 as f64,
                    DType::F64 => *b,
                    DType::F16 => half::f16::from_f64(*b).to_f64(),
                    DType::BF16 => half::bf16::from_f64(*b).to_f64(),
                };
                assert_eq!(a.to_bits(), r.to_bits(), "{name}");
            }
        }
        // Saved again after loading: still identical (load → save → load is a fixed point).
        let p2 = dir.path(&format!("b-{}.safetensors", dtype.name()));
        m32.save(&p2).unwrap();
        assert_eq!(std::fs::read(&p2).unwrap(), first);
    }
}

#[test]
fn model_made_by_mho_saves_f32() {
    let dir = TempDir::new("f32");
    let m = cnn::<f64>(1);
    let p = dir.path("m.safetensors");
    m.save(&p).unwrap();
    for t in tensors(&std::fs::read(&p).unwrap()) {
        assert_eq!(t.1, "F32", "{}", t.0);
    }
}

#[test]
fn loaded_model_computes_the_same_outputs() {
    let dir = TempDir::new("outputs");
    let m = cnn::<f64>(5);
    m.clone()
        .cast::<f32>()
        .save(&dir.path("m.safetensors"))
        .unwrap();
    let back = Model::<f32>::load(&dir.path("m.safetensors")).unwrap();
    let x = sample_input(3).cast::<f32>();
    let y1 = m.cast::<f32>().forward(&x).unwrap();
    let y2 = back.forward(&x).unwrap();
    assert_eq!(y1, y2);
    assert_eq!(y2.shape(), &[3, 3]);
}

#[test]
fn fixture_files_resave_with_their_tensor_bytes() {
    let dir = TempDir::new("fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let Ok(m) = Model::<f32>::load(&path) else {
            continue;
        };
        let out = dir.path("re.safetensors");
        m.save(&out).unwrap();
        let orig: Vec<_> = tensors(&std::fs::read(&path).unwrap())
            .into_iter()
            .filter(|t| !t.0.ends_with("num_batches_tracked"))
            .collect();
        assert_eq!(
            tensors(&std::fs::read(&out).unwrap()),
            orig,
            "{}",
            path.display()
        );
        let again = Model::<f64>::load(&out).unwrap();
        assert_eq!(again.architecture(), m.architecture());
        seen += 1;
    }
    eprintln!("re-saved {seen} fixture models");
}

#[test]
fn record_matches_forward_and_names_layers() {
    let m = cnn::<f64>(2);
    assert_eq!(m.layer_names(), ["0", "1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(m.input_shape(), &[2, 6, 6]);
    assert_eq!(m.output_shape(), &[3]);
    let shapes = m.layer_shapes().unwrap();
    assert_eq!(shapes[0], vec![4, 6, 6]);
    assert_eq!(shapes[3], vec![4, 3, 3]);
    assert_eq!(shapes[4], vec![36]);
    let x = sample_input(2);
    let all = m.forward_all(&x).unwrap();
    let mut tape = Tape::new();
    let input = tape.variable(x.clone());
    let rec = m.record(&mut tape, input, false).unwrap();
    assert!(rec.params.is_empty());
    assert_eq!(rec.layer_outputs.len(), 8);
    for (i, id) in rec.layer_outputs.iter().enumerate() {
        assert_eq!(tape.value(*id), &all[i], "layer {i}");
        let mut s = vec![2];
        s.extend_from_slice(&shapes[i]);
        assert_eq!(tape.value(*id).shape(), &s[..]);
    }
    // Distinct nodes per layer.
    let mut ids = rec.layer_outputs.clone();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    assert_eq!(
        tape.value(*rec.layer_outputs.last().unwrap()),
        &m.forward(&x).unwrap()
    );

    let mut tape = Tape::new();
    let input = tape.constant(x);
    let rec = m.record(&mut tape, input, true).unwrap();
    let names: Vec<&str> = rec.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "5.weight", "5.bias",
            "7.weight"
        ]
    );
    for (_, id) in &rec.params {
        assert!(tape.requires_grad(*id));
    }
}

#[test]
fn token_models_take_indices() {
    let m = emb::<f32>(4);
    let x = Tensor::<f32>::from_f64(
        &[2, 7],
        &[1., 2., 3., 0., 10., 4., 4., 5., 6., 7., 8., 9., 1., 0.],
    )
    .unwrap();
    let y = m.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 2]);
    // padding_idx row is zero at initialisation.
    let w = m.param("0.weight").unwrap();
    assert!(w.data()[..4].iter().all(|&v| v == 0.0));
    let bad = Tensor::<f32>::from_f64(&[1, 7], &[1., 2., 3., 0., 11., 4., 4.]).unwrap();
    let e = m.forward(&bad).unwrap_err().to_string();
    assert!(e.contains("token index"), "{e}");
}

#[test]
fn init_follows_pytorch_defaults_and_seed() {
    let a = cnn::<f64>(9);
    let b = cnn::<f64>(9);
    let c = cnn::<f64>(10);
    assert_eq!(a.param("0.weight"), b.param("0.weight"));
    assert_ne!(a.param("0.weight"), c.param("0.weight"));
    let bound = 1.0 / (2.0 * 9.0f64).sqrt(); // fan_in = in_channels · 3 · 3
    for name in ["0.weight", "0.bias"] {
        let w = a.param(name).unwrap();
        assert!(w.data().iter().all(|v| v.abs() <= bound), "{name}");
        assert!(w.data().iter().any(|v| v.abs() > bound / 2.0), "{name}");
    }
    let bound = 1.0 / 36.0f64.sqrt();
    assert!(a
        .param("5.weight")
        .unwrap()
        .data()
        .iter()
        .all(|v| v.abs() <= bound));
    assert!(a
        .param("1.weight")
        .unwrap()
        .data()
        .iter()
        .all(|&v| v == 1.0));
    assert!(a.param("1.bias").unwrap().data().iter().all(|&v| v == 0.0));
    assert!(a
        .param("2.weight")
        .unwrap()
        .data()
        .iter()
        .all(|&v| v == 0.25));
    let fresh = Model::<f64>::init(a.architecture().clone(), 0).unwrap();
    assert!(fresh
        .param("1.running_var")
        .unwrap()
        .data()
        .iter()
        .all(|&v| v == 1.0));
    assert!(fresh
        .param("1.running_mean")
        .unwrap()
        .data()
        .iter()
        .all(|&v| v == 0.0));
}
