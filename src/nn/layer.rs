//! How each layer type is computed: the ops (from [`crate::ops`]) a layer applies, in
//! order, and what each op takes as inputs. Shared by [`super::Model::forward`] (ops'
//! `forward` directly) and [`super::Model::record`] (ops on a tape).

use super::arch::LayerSpec;
use crate::ops;
use crate::tape::Op;
use crate::tensor::Tensor;
use crate::{bail, Float, Result};

/// An input of one op of a layer.
pub(crate) enum Arg<T: Float> {
    /// The previous op's output (the layer's input for the first op).
    Prev,
    /// The layer's j-th parameter (in [`LayerSpec::param_shapes`] order).
    Param(usize),
    /// A constant made for this call.
    Const(Tensor<T>),
}

/// One op of a layer and its inputs.
pub(crate) struct Step<T: Float> {
    pub(crate) op: Box<dyn Op<T>>,
    pub(crate) args: Vec<Arg<T>>,
}

fn step<T: Float>(op: impl Op<T> + 'static, args: Vec<Arg<T>>) -> Step<T> {
    Step {
        op: Box::new(op),
        args,
    }
}

/// The steps of layer `spec` fused with the layer `next` after it, when the pair has a
/// fused op: Conv2d then ReLU is one [`ops::Conv2dRelu`] (its arguments those of the
/// convolution, its output the ReLU's).
pub(crate) fn fused_steps<T: Float>(
    spec: &LayerSpec,
    next: Option<&LayerSpec>,
) -> Option<Vec<Step<T>>> {
    match (conv2d(spec), next) {
        (Some((conv, args)), Some(LayerSpec::ReLU)) => {
            Some(vec![step(ops::Conv2dRelu { conv }, args)])
        }
        _ => None,
    }
}

/// A Conv2d layer's op and arguments (input, weight, and bias if any); `None` for other
/// layers.
fn conv2d<T: Float>(spec: &LayerSpec) -> Option<(ops::Conv2d, Vec<Arg<T>>)> {
    let LayerSpec::Conv2d {
        stride,
        padding,
        dilation,
        groups,
        bias,
        ..
    } = spec
    else {
        return None;
    };
    let mut args = vec![Arg::Prev, Arg::Param(0)];
    if *bias {
        args.push(Arg::Param(1));
    }
    let conv = ops::Conv2d {
        stride: *stride,
        padding: *padding,
        dilation: *dilation,
        groups: *groups,
        bias: *bias,
    };
    Some((conv, args))
}

/// Normalises a PyTorch dim (counting the batch axis) for a tensor of rank `ndim`.
fn norm_dim(dim: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    let d = if dim < 0 { dim + n } else { dim };
    if !(0..n).contains(&d) {
        bail!("dim {dim} is out of range for rank {ndim}");
    }
    Ok(d as usize)
}

/// The ops layer `spec` applies to the batch `x` ([N, ...]), in order; the last op's
/// output is the layer's output. Every layer applies at least one op, so each layer's
/// output is its own node on a tape.
pub(crate) fn layer_steps<T: Float>(spec: &LayerSpec, x: &Tensor<T>) -> Result<Vec<Step<T>>> {
    use Arg::{Const, Param, Prev};
    let shape = x.shape();
    Ok(match spec {
        LayerSpec::Linear {
            in_features,
            out_features,
            bias,
        } => {
            let mut args = vec![Prev, Param(0)];
            if *bias {
                args.push(Param(1));
            }
            let lin = step(ops::Linear { bias: *bias }, args);
            if shape.len() == 2 {
                vec![lin]
            } else {
                // PyTorch's Linear acts on the last axis: fold the others into rows.
                let rows = x.len() / in_features;
                let mut out_shape = shape.to_vec();
                *out_shape.last_mut().expect("rank > 2") = *out_features;
                vec![
                    step(
                        ops::Reshape {
                            shape: vec![rows, *in_features],
                        },
                        vec![Prev],
                    ),
                    lin,
                    step(ops::Reshape { shape: out_shape }, vec![Prev]),
                ]
            }
        }
        LayerSpec::Conv2d { .. } => match conv2d(spec) {
            Some((conv, args)) => vec![step(conv, args)],
            None => bail!("conv2d: not a Conv2d layer"),
        },
        LayerSpec::Conv1d {
            stride,
            padding,
            dilation,
            groups,
            bias,
            ..
        } => {
            let mut args = vec![Prev, Param(0)];
            if *bias {
                args.push(Param(1));
            }
            vec![step(
                ops::Conv1d {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                    bias: *bias,
                },
                args,
            )]
        }
        LayerSpec::MaxPool2d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => vec![step(
            ops::MaxPool2d {
                kernel: *kernel_size,
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                ceil_mode: *ceil_mode,
            },
            vec![Prev],
        )],
        LayerSpec::MaxPool1d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => vec![step(
            ops::MaxPool1d {
                kernel: *kernel_size,
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                ceil_mode: *ceil_mode,
            },
            vec![Prev],
        )],
        LayerSpec::AvgPool2d {
            kernel_size,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => vec![step(
            ops::AvgPool2d {
                kernel: *kernel_size,
                stride: *stride,
                padding: *padding,
                ceil_mode: *ceil_mode,
                count_include_pad: *count_include_pad,
            },
            vec![Prev],
        )],
        LayerSpec::AdaptiveAvgPool2d { output_size } => vec![step(
            ops::AdaptiveAvgPool2d {
                output_size: *output_size,
            },
            vec![Prev],
        )],
        LayerSpec::BatchNorm2d {
            num_features,
            eps,
            affine,
        }
        | LayerSpec::BatchNorm1d {
            num_features,
            eps,
            affine,
        } => {
            // Parameters in state_dict order: [weight, bias,] running_mean, running_var.
            let args = if *affine {
                vec![Prev, Param(2), Param(3), Param(0), Param(1)]
            } else {
                vec![
                    Prev,
                    Param(0),
                    Param(1),
                    Const(Tensor::full(&[*num_features], T::ONE)),
                    Const(Tensor::zeros(&[*num_features])),
                ]
            };
            vec![step(ops::BatchNorm { eps: *eps }, args)]
        }
        LayerSpec::ReLU => vec![step(ops::Relu, vec![Prev])],
        LayerSpec::Tanh => vec![step(ops::Tanh, vec![Prev])],
        LayerSpec::Sigmoid => vec![step(ops::Sigmoid, vec![Prev])],
        LayerSpec::Identity | LayerSpec::Dropout { .. } => vec![step(ops::Identity, vec![Prev])],
        LayerSpec::LeakyReLU { negative_slope } => vec![step(
            ops::LeakyRelu {
                negative_slope: *negative_slope,
            },
            vec![Prev],
        )],
        LayerSpec::PReLU { .. } => vec![step(ops::Prelu, vec![Prev, Param(0)])],
        LayerSpec::Softmax { dim } => vec![step(
            ops::Softmax {
                dim: norm_dim(*dim, shape.len())?,
            },
            vec![Prev],
        )],
        LayerSpec::LogSoftmax { dim } => vec![step(
            ops::LogSoftmax {
                dim: norm_dim(*dim, shape.len())?,
            },
            vec![Prev],
        )],
        LayerSpec::Flatten { start_dim, end_dim } => vec![step(
            ops::Flatten {
                start_dim: *start_dim,
                end_dim: *end_dim,
            },
            vec![Prev],
        )],
        LayerSpec::Permute { dims } => vec![step(ops::Permute { dims: dims.clone() }, vec![Prev])],
        LayerSpec::Embedding { num_embeddings, .. } => {
            let mut indices = Vec::with_capacity(x.len());
            for &v in x.data() {
                let f = v.to_f64();
                if !(f >= 0.0 && f.fract() == 0.0 && f < *num_embeddings as f64) {
                    bail!("input value {v} is not a token index in 0..{num_embeddings}");
                }
                indices.push(f as usize);
            }
            vec![step(
                ops::Embedding {
                    indices,
                    index_shape: shape.to_vec(),
                },
                vec![Param(0)],
            )]
        }
    })
}
