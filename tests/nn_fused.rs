//! `Model::record_using_fused` records each Conv2d that a ReLU follows as one
//! `Conv2dRelu` node. Every node it leaves must carry the values, tangents and adjoints
//! of `record_using`'s bit for bit (the fused node those of the ReLU), the input's
//! adjoint too, and the convolution's tangent conductance (adjoint × tangent, which the
//! attribution sweep then reads off the fused node) must be the same numbers.

mod support;

use mho::io::read_npy;
use mho::nn::Model;
use mho::tape::NodeId;
use mho::{Float, Tape, Tensor};
use proptest::prelude::*;
use std::path::Path;
use support::*;

/// One recording: the tape, the input node and the layer nodes.
struct Recording<T: Float> {
    tape: Tape<T>,
    input: NodeId,
    layers: Vec<NodeId>,
}

fn record<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    tangent: &Tensor<T>,
    fused: bool,
) -> Recording<T> {
    let mut tape = Tape::new();
    let params = model.record_params(&mut tape, false);
    let input = tape.variable(x.clone());
    tape.set_tangent(input, tangent.clone()).unwrap();
    let recorded = if fused {
        model.record_using_fused(&mut tape, input, &params)
    } else {
        model.record_using(&mut tape, input, &params)
    };
    let layers = recorded.unwrap().layer_outputs;
    let out = *layers.last().unwrap();
    // A seed with every output weighted differently.
    let len = tape.value(out).len();
    let seed = Tensor::new(
        tape.value(out).shape().to_vec(),
        (0..len)
            .map(|i| T::from_f64(1.0 + (i % 7) as f64 / 8.0))
            .collect(),
    )
    .unwrap();
    tape.backward(out, seed).unwrap();
    Recording {
        tape,
        input,
        layers,
    }
}

fn bits<T: Float>(t: Option<&Tensor<T>>) -> Option<Vec<u64>> {
    t.map(|t| t.data().iter().map(|v| v.to_f64().to_bits()).collect())
}

/// Compares the fused recording with the plain one; returns how many pairs were fused.
fn compare<T: Float>(
    model: &Model<T>,
    x: &Tensor<T>,
    tangent: &Tensor<T>,
) -> Result<usize, String> {
    let plain = record(model, x, tangent, false);
    let fused = record(model, x, tangent, true);
    let (p, f) = (&plain.tape, &fused.tape);
    if bits(p.adjoint(plain.input)) != bits(f.adjoint(fused.input)) {
        return Err("input adjoints differ".into());
    }
    let mut pairs = 0;
    for i in 0..plain.layers.len() {
        let paired = fused.layers.get(i + 1) == Some(&fused.layers[i]);
        let fused_node = fused.layers[i];
        // A fused conv layer's node is its ReLU's: compare with the plain ReLU node.
        let same_as = if paired {
            plain.layers[i + 1]
        } else {
            plain.layers[i]
        };
        for (what, a, b) in [
            (
                "value",
                bits(Some(p.value(same_as))),
                bits(Some(f.value(fused_node))),
            ),
            (
                "tangent",
                bits(p.tangent(same_as)),
                bits(f.tangent(fused_node)),
            ),
            (
                "adjoint",
                bits(p.adjoint(same_as)),
                bits(f.adjoint(fused_node)),
            ),
        ] {
            if a != b {
                return Err(format!("layer {i}: {what} differs"));
            }
        }
        if paired {
            pairs += 1;
            // The convolution's conductance terms: adjoint × tangent of its output in
            // the plain recording, of the ReLU's in the fused one.
            let conv = plain.layers[i];
            let terms = |tape: &Tape<T>, node: NodeId| -> Vec<u64> {
                let (a, t) = (tape.adjoint(node).unwrap(), tape.tangent(node).unwrap());
                a.data()
                    .iter()
                    .zip(t.data())
                    .map(|(a, t)| (a.to_f64() * t.to_f64()).to_bits())
                    .collect()
            };
            if terms(p, conv) != terms(f, fused_node) {
                return Err(format!("layer {i}: conductance terms differ"));
            }
        }
    }
    Ok(pairs)
}

/// The CIFAR-sized bench model in f32: its 3×3 convolutions take the Winograd path on
/// AVX-512 CPUs, the first one im2col; all four are followed by ReLUs.
#[test]
fn the_bench_model_fused_equals_plain_bit_for_bit() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench");
    let model: Model<f32> = Model::load(&dir.join("cifar_cnn.safetensors")).unwrap();
    let x = read_npy::<f32>(&dir.join("cifar_input.npy")).unwrap();
    let tangent = x.map(|v| 0.5 - v);
    assert_eq!(compare(&model, &x, &tangent), Ok(4));
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn random_networks_fused_equal_plain_bit_for_bit(net in nets_of(Kind::Any, &[Family::Cnn])) {
        let tangent = net.x.zip_map(&net.baseline, |a, b| a - b).unwrap();
        let pairs = compare(&net.model, &net.x, &tangent).map_err(|e| TestCaseError::fail(format!("{e}\n{net:?}")))?;
        let specs = net.model.architecture().layers.clone();
        let expected = specs
            .windows(2)
            .filter(|w| matches!(w, [mho::nn::LayerSpec::Conv2d { .. }, mho::nn::LayerSpec::ReLU]))
            .count();
        prop_assert_eq!(pairs, expected);
    }
}
