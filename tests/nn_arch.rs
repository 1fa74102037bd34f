//! The architecture JSON: PyTorch's defaults, pairs as integers, explicit round trip,
//! shape inference.

use mho::nn::{Architecture, LayerSpec};
use serde_json::json;

fn arch(input: &[usize], layers: serde_json::Value) -> mho::Result<Architecture> {
    Architecture::from_value(
        &json!({"format": "mho.sequential.v1", "input_shape": input, "layers": layers}),
    )
}

#[test]
fn pytorch_defaults_fill_omitted_arguments() {
    let a = arch(
        &[3, 9, 9],
        json!([
            {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "AvgPool2d", "kernel_size": [2, 1]},
            {"type": "BatchNorm2d", "num_features": 4},
            {"type": "LeakyReLU"},
            {"type": "PReLU"},
            {"type": "Dropout"},
            {"type": "Flatten"},
        ]),
    )
    .unwrap();
    assert_eq!(
        a.layers[0],
        LayerSpec::Conv2d {
            in_channels: 3,
            out_channels: 4,
            kernel_size: [3, 3],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true
        }
    );
    assert_eq!(
        a.layers[1],
        LayerSpec::MaxPool2d {
            kernel_size: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false
        }
    );
    assert!(matches!(
        a.layers[2],
        LayerSpec::AvgPool2d {
            stride: [2, 1],
            count_include_pad: true,
            ..
        }
    ));
    assert!(matches!(a.layers[3], LayerSpec::BatchNorm2d { eps, affine: true, .. } if eps == 1e-5));
    assert!(
        matches!(a.layers[4], LayerSpec::LeakyReLU { negative_slope } if negative_slope == 0.01)
    );
    assert!(matches!(a.layers[5], LayerSpec::PReLU { num_parameters: 1, init } if init == 0.25));
    assert!(matches!(a.layers[6], LayerSpec::Dropout { p } if p == 0.5));
    assert_eq!(
        a.layers[7],
        LayerSpec::Flatten {
            start_dim: 1,
            end_dim: -1
        }
    );
    assert_eq!(
        a.layer_shapes().unwrap(),
        vec![
            vec![4, 7, 7],
            vec![4, 3, 3],
            vec![4, 1, 3],
            vec![4, 1, 3],
            vec![4, 1, 3],
            vec![4, 1, 3],
            vec![4, 1, 3],
            vec![12]
        ]
    );
}

#[test]
fn explicit_json_round_trips_for_every_layer_type() {
    let a = arch(
        &[4, 12],
        json!([
            {"type": "Conv1d", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 1, "padding": "same", "dilation": 2, "groups": 2, "bias": false},
            {"type": "BatchNorm1d", "num_features": 6, "eps": 0.001, "momentum": 0.3},
            {"type": "MaxPool1d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
            {"type": "ReLU", "inplace": true},
            {"type": "Permute", "dims": [0, 2, 1]},
            {"type": "Linear", "in_features": 6, "out_features": 8},
            {"type": "Tanh"},
            {"type": "Permute", "dims": [0, 2, 1]},
            {"type": "Flatten", "start_dim": 1, "end_dim": 2},
            {"type": "Sigmoid"},
            {"type": "Identity"},
            {"type": "LogSoftmax", "dim": -1},
            {"type": "Softmax", "dim": 1},
        ]),
    )
    .unwrap();
    let shapes = a.layer_shapes().unwrap();
    assert_eq!(shapes[0], vec![6, 12]); // "same" padding: dilation·(k−1)/2 = 2
    assert_eq!(shapes[2], vec![6, 7]); // PyTorch: MaxPool1d(3, 2, 1, ceil_mode=True) on 12 → 7
    assert_eq!(shapes[5], vec![7, 8]); // Linear over the last axis
    assert_eq!(shapes[8], vec![56]);
    let text = a.to_json();
    let b = Architecture::from_json(&text).unwrap();
    assert_eq!(a, b);
    assert_eq!(b.to_json(), text);

    let img = arch(
        &[3, 10, 10],
        json!([
            {"type": "AdaptiveAvgPool2d", "output_size": 4},
            {"type": "Flatten"},
        ]),
    )
    .unwrap();
    assert_eq!(img.output_shape().unwrap(), vec![48]);
    assert_eq!(Architecture::from_json(&img.to_json()).unwrap(), img);

    let tok = arch(
        &[5],
        json!([
            {"type": "Embedding", "num_embeddings": 10, "embedding_dim": 3, "padding_idx": -1},
            {"type": "Flatten"},
        ]),
    )
    .unwrap();
    assert!(tok.takes_tokens());
    assert!(matches!(
        tok.layers[0],
        LayerSpec::Embedding {
            padding_idx: Some(9),
            ..
        }
    ));
    assert_eq!(Architecture::from_json(&tok.to_json()).unwrap(), tok);
}

#[test]
fn shape_errors_name_the_layer_and_the_field() {
    let e = arch(
        &[8, 5, 5],
        json!([
            {"type": "Conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 1},
            {"type": "ReLU"},
            {"type": "Identity"},
            {"type": "Conv2d", "in_channels": 16, "out_channels": 8, "kernel_size": 1},
        ]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "layer 3 (Conv2d): in_channels 16 but input has 8 channels"
    );

    let e = arch(
        &[8],
        json!([{"type": "Conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 1}]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("layer 0 (Conv2d): expects [C, H, W]"), "{e}");

    let e = arch(&[8], json!([])).unwrap_err().to_string();
    assert!(e.contains("no layers"), "{e}");
    let e = arch(&[], json!([{"type": "ReLU"}]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_shape"), "{e}");
    let e = arch(&[4], json!([{"type": "Permute", "dims": [1, 0]}]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0 (Permute)") && e.contains("batch axis first"),
        "{e}"
    );
    let e = Architecture::from_json("[1, 2]").unwrap_err().to_string();
    assert!(e.contains("architecture"), "{e}");
    let e = arch(&[4], json!([{"kind": "ReLU"}]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 0") && e.contains("\"type\""), "{e}");
}

#[test]
fn pooling_output_sizes_match_pytorch() {
    // Sizes computed with PyTorch 2 (nn.MaxPool2d / nn.AvgPool2d on zeros).
    let cases = [
        (
            json!({"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "ceil_mode": true}),
            [1, 6, 6],
            [1, 3, 3],
        ),
        (
            json!({"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true}),
            [1, 6, 6],
            [1, 4, 4],
        ),
        (
            json!({"type": "MaxPool2d", "kernel_size": 2, "stride": 2, "ceil_mode": true}),
            [1, 7, 7],
            [1, 4, 4],
        ),
        (
            json!({"type": "MaxPool2d", "kernel_size": 2, "dilation": 2}),
            [1, 7, 7],
            [1, 3, 3],
        ),
        (
            json!({"type": "AvgPool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true}),
            [1, 5, 5],
            [1, 3, 3],
        ),
    ];
    for (layer, input, out) in cases {
        let a = arch(&input, json!([layer.clone()])).unwrap();
        assert_eq!(a.output_shape().unwrap(), out.to_vec(), "{layer}");
    }
}

#[test]
fn permutes_may_move_the_batch_axis_between_layers() {
    // PyTorch allows x.permute(1, 0) on [N, F]; mho tracks where the batch axis went.
    let a = arch(
        &[3, 4],
        json!([
            {"type": "Permute", "dims": [2, 0, 1]},
            {"type": "ReLU"},
            {"type": "Linear", "in_features": 3, "out_features": 5},
            {"type": "Softmax", "dim": -1},
            {"type": "Permute", "dims": [1, 0, 2]},
            {"type": "Flatten"},
        ]),
    )
    .unwrap();
    assert_eq!(a.batch_axes().unwrap(), vec![1, 1, 1, 1, 0, 0]);
    assert_eq!(
        a.layer_shapes().unwrap(),
        vec![
            vec![4, 3],
            vec![4, 3],
            vec![4, 5],
            vec![4, 5],
            vec![4, 5],
            vec![20]
        ]
    );
    let e = arch(
        &[2, 4, 4],
        json!([
            {"type": "Permute", "dims": [1, 0, 2, 3]},
            {"type": "Conv2d", "in_channels": 2, "out_channels": 2, "kernel_size": 1},
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("layer 1 (Conv2d)") && e.contains("batch axis first"),
        "{e}"
    );
    let e = arch(&[4], json!([{"type": "Permute", "dims": [1, 0]}, {"type": "Softmax", "dim": 1}, {"type": "Permute", "dims": [1, 0]}]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 1 (Softmax)") && e.contains("batch axis"),
        "{e}"
    );
    let e = arch(
        &[4, 2],
        json!([{"type": "Permute", "dims": [1, 0, 2]}, {"type": "Flatten", "start_dim": 0}]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("layer 1 (Flatten)") && e.contains("batch axis"),
        "{e}"
    );
}
