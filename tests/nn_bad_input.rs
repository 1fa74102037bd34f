//! Every class of bad input is a one-line error naming the file and the field, tensor or
//! layer at fault — never a panic, never an allocation from an unchecked size.

mod nn_util;

use mho::io::{read_input, read_npy};
use mho::nn::Model;
use nn_util::*;
use serde_json::json;
use std::path::Path;

fn load_err(path: &Path) -> String {
    let e = Model::<f32>::load(path)
        .expect_err("load should fail")
        .to_string();
    assert!(!e.contains('\n'), "multi-line error: {e}");
    assert!(
        e.contains(&path.display().to_string()),
        "error does not name the file: {e}"
    );
    e
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error {e:?} does not mention {p:?}");
    }
}

/// A valid small model file, as (header, data).
fn valid(dir: &TempDir) -> (serde_json::Value, Vec<u8>) {
    let p = dir.path("valid.safetensors");
    cnn::<f32>(0).save(&p).unwrap();
    split_file(&std::fs::read(&p).unwrap())
}

fn with_arch(header: &serde_json::Value, arch: &str) -> serde_json::Value {
    let mut h = header.clone();
    h["__metadata__"]["architecture"] = json!(arch);
    h
}

fn write_model(
    dir: &TempDir,
    name: &str,
    header: &serde_json::Value,
    data: &[u8],
) -> std::path::PathBuf {
    let p = dir.path(name);
    write(&p, &raw_file(header, data));
    p
}

#[test]
fn missing_file_and_directory() {
    let dir = TempDir::new("missing");
    let e = load_err(&dir.path("nope.safetensors"));
    assert_has(&e, &["no such file"]);
    let e = load_err(&dir.0);
    assert_has(&e, &["is a directory"]);
}

#[test]
fn truncated_files() {
    let dir = TempDir::new("trunc");
    let (h, d) = valid(&dir);
    let full = raw_file(&h, &d);
    let p = dir.path("short.safetensors");
    write(&p, &full[..5]);
    assert_has(&load_err(&p), &["truncated"]);
    write(&p, &full[..full.len() - 3]);
    assert_has(&load_err(&p), &["past the end"]);
    write(&p, &full[..20]);
    assert_has(&load_err(&p), &["header length"]);
    write(&p, b"");
    assert_has(&load_err(&p), &["truncated"]);
}

#[test]
fn header_length_past_end_or_absurd() {
    let dir = TempDir::new("hlen");
    let (h, d) = valid(&dir);
    let mut bytes = raw_file(&h, &d);
    let p = dir.path("m.safetensors");
    let twice = bytes.len() as u64 * 2;
    bytes[..8].copy_from_slice(&twice.to_le_bytes());
    write(&p, &bytes);
    assert_has(&load_err(&p), &["header length", "past the end"]);
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    write(&p, &bytes);
    assert_has(&load_err(&p), &["header length", "limit"]);
}

#[test]
fn data_offsets_past_end_and_bad_lengths() {
    let dir = TempDir::new("offsets");
    let (h, d) = valid(&dir);
    let mut h2 = h.clone();
    h2["5.bias"]["data_offsets"] = json!([0, d.len() + 100]);
    let p = write_model(&dir, "a.safetensors", &h2, &d);
    assert_has(
        &load_err(&p),
        &["\"5.bias\"", "data_offsets", "past the end"],
    );
    let mut h3 = h.clone();
    h3["5.bias"]["data_offsets"] = json!([0, 3]);
    let p = write_model(&dir, "b.safetensors", &h3, &d);
    assert_has(&load_err(&p), &["\"5.bias\"", "needs 20 bytes"]);
    let mut h4 = h.clone();
    h4["5.bias"]["data_offsets"] = json!([8, 4]);
    let p = write_model(&dir, "c.safetensors", &h4, &d);
    assert_has(&load_err(&p), &["\"5.bias\"", "data_offsets"]);
}

#[test]
fn bad_header_json_and_bad_architecture_json() {
    let dir = TempDir::new("json");
    let (h, d) = valid(&dir);
    let p = dir.path("a.safetensors");
    let junk = b"{not json".to_vec();
    let mut bytes = (junk.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&junk);
    write(&p, &bytes);
    assert_has(&load_err(&p), &["header is not valid JSON"]);

    let p = write_model(&dir, "b.safetensors", &with_arch(&h, "{\"format\": "), &d);
    assert_has(&load_err(&p), &["architecture", "invalid JSON"]);

    let mut h2 = h.clone();
    h2.as_object_mut().unwrap().remove("__metadata__");
    let p = write_model(&dir, "c.safetensors", &h2, &d);
    assert_has(&load_err(&p), &["\"architecture\"", "metadata"]);

    let arch = mho::nn::Architecture::from_json(CNN_JSON)
        .unwrap()
        .to_value();
    let mut a = arch.clone();
    a["format"] = json!("mho.sequential.v9");
    let p = write_model(&dir, "d.safetensors", &with_arch(&h, &a.to_string()), &d);
    assert_has(&load_err(&p), &["format", "mho.sequential.v9"]);
}

fn arch_with_layer(i: usize, layer: serde_json::Value) -> String {
    let mut a = mho::nn::Architecture::from_json(CNN_JSON)
        .unwrap()
        .to_value();
    a["layers"][i] = layer;
    a.to_string()
}

#[test]
fn unknown_layer_types_and_fields() {
    let dir = TempDir::new("types");
    let (h, d) = valid(&dir);
    let p = write_model(
        &dir,
        "a.safetensors",
        &with_arch(&h, &arch_with_layer(6, json!({"type": "Conv3d"}))),
        &d,
    );
    assert_has(&load_err(&p), &["layer 6", "unknown layer type \"Conv3d\""]);
    let p = write_model(
        &dir,
        "b.safetensors",
        &with_arch(
            &h,
            &arch_with_layer(3, json!({"type": "MaxPool2d", "kernal_size": 2})),
        ),
        &d,
    );
    assert_has(
        &load_err(&p),
        &["layer 3 (MaxPool2d)", "kernel_size", "missing"],
    );
    let p = write_model(
        &dir,
        "c.safetensors",
        &with_arch(&h, &arch_with_layer(6, json!({"type": "Tanh", "bogus": 1}))),
        &d,
    );
    assert_has(
        &load_err(&p),
        &["layer 6 (Tanh)", "unknown field \"bogus\""],
    );
}

#[test]
fn impossible_hyperparameters() {
    let dir = TempDir::new("hyper");
    let (h, d) = valid(&dir);
    let conv = |extra: serde_json::Value| {
        let mut l = json!({"type": "Conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        l
    };
    let cases: Vec<(serde_json::Value, usize, Vec<&str>)> = vec![
        (
            conv(json!({"stride": 0})),
            0,
            vec!["layer 0 (Conv2d)", "stride", "less than 1"],
        ),
        (
            conv(json!({"kernel_size": 9, "padding": 0})),
            0,
            vec!["layer 0 (Conv2d)", "kernel_size"],
        ),
        (
            conv(json!({"groups": 3})),
            0,
            vec!["layer 0 (Conv2d)", "groups"],
        ),
        (
            conv(json!({"in_channels": 3})),
            0,
            vec!["layer 0 (Conv2d)", "in_channels 3 but input has 2 channels"],
        ),
        (
            conv(json!({"kernel_size": [3, 3, 3]})),
            0,
            vec!["kernel_size", "[a, b]"],
        ),
        (
            conv(json!({"padding": "same", "stride": 2})),
            0,
            vec!["padding", "stride 1"],
        ),
        (
            conv(json!({"padding_mode": "reflect"})),
            0,
            vec!["padding_mode"],
        ),
        (
            json!({"type": "MaxPool2d", "kernel_size": 2, "padding": 2}),
            3,
            vec!["layer 3 (MaxPool2d)", "padding"],
        ),
        (
            json!({"type": "MaxPool2d", "kernel_size": 20}),
            3,
            vec!["layer 3 (MaxPool2d)", "larger than"],
        ),
        (
            json!({"type": "BatchNorm2d", "num_features": 4, "eps": -1.0}),
            1,
            vec!["layer 1", "eps"],
        ),
        (
            json!({"type": "BatchNorm2d", "num_features": 5}),
            1,
            vec!["layer 1", "num_features 5"],
        ),
        (
            json!({"type": "PReLU", "num_parameters": 3}),
            2,
            vec!["layer 2 (PReLU)", "num_parameters 3"],
        ),
        (
            json!({"type": "Softmax", "dim": 0}),
            6,
            vec!["layer 6 (Softmax)", "batch axis"],
        ),
        (
            json!({"type": "Softmax", "dim": 5}),
            6,
            vec!["layer 6 (Softmax)", "out of range"],
        ),
        (
            json!({"type": "Dropout", "p": 1.5}),
            6,
            vec!["layer 6 (Dropout)", "\"p\""],
        ),
        (
            json!({"type": "Flatten", "start_dim": 0}),
            4,
            vec!["layer 4 (Flatten)", "batch"],
        ),
        (
            json!({"type": "Linear", "in_features": 35, "out_features": 5}),
            5,
            vec!["layer 5 (Linear)", "in_features 35 but input has 36"],
        ),
        (
            json!({"type": "Linear", "in_features": "36", "out_features": 5}),
            5,
            vec!["layer 5 (Linear)", "in_features", "integer"],
        ),
        (
            json!({"type": "Embedding", "num_embeddings": 3, "embedding_dim": 2}),
            6,
            vec!["layer 6 (Embedding)", "first layer"],
        ),
    ];
    for (k, (layer, i, parts)) in cases.into_iter().enumerate() {
        let p = write_model(
            &dir,
            &format!("h{k}.safetensors"),
            &with_arch(&h, &arch_with_layer(i, layer)),
            &d,
        );
        assert_has(&load_err(&p), &parts);
    }
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let dir = TempDir::new("absurd");
    let (h, d) = valid(&dir);
    // An architecture asking for a 10¹²-element weight.
    let huge = json!({"type": "Linear", "in_features": 36, "out_features": 1_000_000_000_000u64});
    let p = write_model(
        &dir,
        "a.safetensors",
        &with_arch(&h, &arch_with_layer(5, huge)),
        &d,
    );
    assert_has(
        &load_err(&p),
        &["layer 5 (Linear)", "out_features", "limit"],
    );
    let big = json!({"type": "Linear", "in_features": 36, "out_features": 16_000_000});
    let p = write_model(
        &dir,
        "b.safetensors",
        &with_arch(&h, &arch_with_layer(5, big)),
        &d,
    );
    assert_has(&load_err(&p), &["layer 5 (Linear)", "weight", "elements"]);
    // A tensor header claiming 2⁶⁰ elements.
    let mut h2 = h.clone();
    h2["5.bias"]["shape"] = json!([1u64 << 30, 1u64 << 30]);
    let p = write_model(&dir, "c.safetensors", &h2, &d);
    assert_has(&load_err(&p), &["\"5.bias\"", "needs"]);
    // An input shape of 10⁹ × 10⁹.
    let mut a = mho::nn::Architecture::from_json(CNN_JSON)
        .unwrap()
        .to_value();
    a["input_shape"] = json!([2, 1_000_000_000u64, 6]);
    let p = write_model(&dir, "d.safetensors", &with_arch(&h, &a.to_string()), &d);
    assert_has(&load_err(&p), &["input_shape"]);
}

#[test]
fn tensors_missing_misshapen_mistyped_or_extra() {
    let dir = TempDir::new("tensors");
    let (h, d) = valid(&dir);

    let mut h1 = h.clone();
    h1.as_object_mut().unwrap().remove("5.weight");
    let p = write_model(&dir, "a.safetensors", &h1, &d);
    assert_has(
        &load_err(&p),
        &["tensor \"5.weight\" is missing", "layer 5"],
    );

    // Same byte length, wrong shape.
    let mut h2 = h.clone();
    h2["5.weight"]["shape"] = json!([36, 5]);
    let p = write_model(&dir, "b.safetensors", &h2, &d);
    assert_has(
        &load_err(&p),
        &["tensor \"5.weight\"", "shape [36, 5]", "[5, 36]"],
    );

    // Same byte length, integer dtype.
    let mut h3 = h.clone();
    h3["5.bias"]["dtype"] = json!("I32");
    let p = write_model(&dir, "c.safetensors", &h3, &d);
    assert_has(&load_err(&p), &["tensor \"5.bias\"", "dtype I32"]);

    let mut h4 = h.clone();
    h4["5.bias"]["dtype"] = json!("Q7");
    let p = write_model(&dir, "d.safetensors", &h4, &d);
    assert_has(&load_err(&p), &["tensor \"5.bias\"", "Q7"]);

    // An extra tensor the architecture does not use (zero-length, so offsets stay valid).
    let mut h5 = h.clone();
    h5["9.weight"] = json!({"dtype": "F32", "shape": [0], "data_offsets": [0, 0]});
    let p = write_model(&dir, "e.safetensors", &h5, &d);
    assert_has(&load_err(&p), &["tensor \"9.weight\"", "not a parameter"]);

    // num_batches_tracked of a BatchNorm layer is ignored.
    let mut h6 = h.clone();
    h6["1.num_batches_tracked"] = json!({"dtype": "I64", "shape": [0], "data_offsets": [0, 0]});
    let p = write_model(&dir, "f.safetensors", &h6, &d);
    Model::<f32>::load(&p).unwrap();

    // Non-finite parameters.
    let (hh, mut dd) = (h.clone(), d.clone());
    let off = hh["5.bias"]["data_offsets"][0].as_u64().unwrap() as usize;
    dd[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let p = write_model(&dir, "g.safetensors", &hh, &dd);
    assert_has(&load_err(&p), &["tensor \"5.bias\"", "NaN"]);
}

#[test]
fn bad_npy_inputs() {
    let dir = TempDir::new("npy");
    let shape = [2usize, 6, 6];
    let good: Vec<f32> = (0..72).map(|i| i as f32 / 72.0).collect();
    let p = dir.path("x.npy");
    let err = |bytes: Vec<u8>, tokens: bool| -> String {
        write(&p, &bytes);
        let e = read_input::<f32>(&p, &shape, tokens)
            .expect_err("should fail")
            .to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(!e.contains('\n'));
        e
    };
    // Good: shaped input_shape (a batch axis is added) or [N, ...].
    write(&p, &npy_file("<f4", false, &shape, &f32_bytes(&good)));
    assert_eq!(
        read_input::<f32>(&p, &shape, false).unwrap().shape(),
        &[1, 2, 6, 6]
    );
    write(
        &p,
        &npy_file("<f4", false, &[1, 2, 6, 6], &f32_bytes(&good)),
    );
    assert_eq!(
        read_input::<f64>(&p, &shape, false).unwrap().shape(),
        &[1, 2, 6, 6]
    );

    let mut nan = good.clone();
    nan[40] = f32::NAN;
    assert_has(
        &err(npy_file("<f4", false, &shape, &f32_bytes(&nan)), false),
        &["[1, 0, 4]", "NaN", "finite"],
    );
    let mut inf = good.clone();
    inf[0] = f32::INFINITY;
    assert_has(
        &err(npy_file("<f4", false, &shape, &f32_bytes(&inf)), false),
        &["inf"],
    );
    assert_has(
        &err(
            npy_file("<f4", false, &[2, 6, 5], &f32_bytes(&good[..60])),
            false,
        ),
        &["shape [2, 6, 5]", "[2, 6, 6]"],
    );
    assert_has(
        &err(
            npy_file("<f4", false, &shape, &f32_bytes(&good[..71])),
            false,
        ),
        &["truncated"],
    );
    assert_has(
        &err(npy_file("<f4", true, &shape, &f32_bytes(&good)), false),
        &["fortran_order"],
    );
    assert_has(
        &err(npy_file(">f4", false, &shape, &f32_bytes(&good)), false),
        &["big-endian"],
    );
    assert_has(
        &err(npy_file("|u1", false, &shape, &[0u8; 72]), false),
        &["'|u1'", "not supported"],
    );
    assert_has(
        &err(npy_file("<i8", false, &shape, &[0u8; 576]), false),
        &["int64", "float32 or float64"],
    );
    assert_has(&err(b"not an npy file".to_vec(), false), &["magic"]);
    let mut bad_len = npy_file("<f4", false, &shape, &f32_bytes(&good));
    bad_len[8..10].copy_from_slice(&60000u16.to_le_bytes());
    assert_has(&err(bad_len, false), &["header length", "past the end"]);
    assert_has(
        &err(npy_file("<f4", false, &[1 << 40, 1 << 40], &[]), false),
        &["too"],
    );
    // Token inputs: integers accepted, fractions refused.
    let toks: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    write(&p, &npy_file("<i8", false, &[3], &toks));
    assert_eq!(
        read_input::<f32>(&p, &[3], true).unwrap().data(),
        &[1.0, 2.0, 3.0]
    );
    write(
        &p,
        &npy_file("<f4", false, &[3], &f32_bytes(&[1.0, 2.5, 3.0])),
    );
    let e = read_input::<f32>(&p, &[3], true).unwrap_err().to_string();
    assert_has(&e, &["token index", "[1]"]);
    // Missing file / directory.
    let e = read_npy::<f32>(&dir.path("none.npy"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["none.npy", "no such file"]);
    let e = read_npy::<f32>(&dir.0).unwrap_err().to_string();
    assert_has(&e, &["is a directory"]);
}

#[test]
fn wrong_input_shape_to_forward() {
    let m = cnn::<f32>(0);
    let x = mho::Tensor::<f32>::zeros(&[2, 2, 6, 5]);
    let e = m.forward(&x).unwrap_err().to_string();
    assert_has(&e, &["[2, 2, 6, 5]", "[2, 6, 6]"]);
    let mut tape = mho::Tape::new();
    let id = tape.constant(mho::Tensor::<f32>::zeros(&[2, 6, 6]));
    assert!(m.record(&mut tape, id, false).is_err());
}
