//! The architecture of a sequential model: the JSON stored under the `"architecture"`
//! metadata key of a model file (format `"mho.sequential.v1"`, see docs/model-format.md).
//!
//! Layers are named after PyTorch modules and carry PyTorch's constructor arguments,
//! with PyTorch's defaults for omitted ones.

use super::json::{Fields, MAX_SIZE};
use crate::{bail, ensure, Error, Result};
use serde_json::{json, Map, Value};

/// The value of the `"format"` field this version reads and writes.
pub const FORMAT: &str = "mho.sequential.v1";

/// The largest number of layers accepted in one architecture.
pub const MAX_LAYERS: usize = 10_000;

/// The largest number of elements of one example at any layer, or of one parameter.
pub const MAX_NUMEL: usize = 1 << 28;

/// One layer of a sequential model, with its PyTorch constructor arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// `nn.Linear`: y = x Wᵀ + b over the last axis.
    Linear {
        /// Size of the last input axis.
        in_features: usize,
        /// Size of the last output axis.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `nn.Conv2d` over [C, H, W] inputs.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel_size: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Zero padding on each side (rows, columns).
        padding: [usize; 2],
        /// Dilation (rows, columns).
        dilation: [usize; 2],
        /// Number of channel groups.
        groups: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `nn.Conv1d` over [C, L] inputs.
    Conv1d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel length.
        kernel_size: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
        /// Dilation.
        dilation: usize,
        /// Number of channel groups.
        groups: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `nn.MaxPool2d` over [C, H, W] inputs.
    MaxPool2d {
        /// Window height and width.
        kernel_size: [usize; 2],
        /// Stride (default: the kernel size).
        stride: [usize; 2],
        /// Implicit −∞ padding on each side.
        padding: [usize; 2],
        /// Dilation of the window.
        dilation: [usize; 2],
        /// Round the output size up instead of down.
        ceil_mode: bool,
    },
    /// `nn.MaxPool1d` over [C, L] inputs.
    MaxPool1d {
        /// Window length.
        kernel_size: usize,
        /// Stride (default: the kernel size).
        stride: usize,
        /// Implicit −∞ padding on each side.
        padding: usize,
        /// Dilation of the window.
        dilation: usize,
        /// Round the output size up instead of down.
        ceil_mode: bool,
    },
    /// `nn.AvgPool2d` over [C, H, W] inputs.
    AvgPool2d {
        /// Window height and width.
        kernel_size: [usize; 2],
        /// Stride (default: the kernel size).
        stride: [usize; 2],
        /// Zero padding on each side.
        padding: [usize; 2],
        /// Round the output size up instead of down.
        ceil_mode: bool,
        /// Count padded zeros in the divisor.
        count_include_pad: bool,
    },
    /// `nn.AdaptiveAvgPool2d` over [C, H, W] inputs.
    AdaptiveAvgPool2d {
        /// Output height and width.
        output_size: [usize; 2],
    },
    /// `nn.BatchNorm2d` in inference form (running statistics) over [C, H, W] inputs.
    BatchNorm2d {
        /// Channels.
        num_features: usize,
        /// Added to the variance.
        eps: f64,
        /// Whether the layer has a weight and a bias.
        affine: bool,
    },
    /// `nn.BatchNorm1d` in inference form over [C] or [C, L] inputs.
    BatchNorm1d {
        /// Channels (features).
        num_features: usize,
        /// Added to the variance.
        eps: f64,
        /// Whether the layer has a weight and a bias.
        affine: bool,
    },
    /// `nn.ReLU`.
    ReLU,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.Identity`.
    Identity,
    /// `nn.LeakyReLU`.
    LeakyReLU {
        /// Slope for negative inputs.
        negative_slope: f64,
    },
    /// `nn.PReLU`: a learned negative slope per channel (or one shared).
    PReLU {
        /// 1 (shared) or the number of channels (axis 1 with the batch axis).
        num_parameters: usize,
        /// Initial slope (used only when initialising a fresh model).
        init: f64,
    },
    /// `nn.Softmax`.
    Softmax {
        /// The axis, counting the batch axis as 0 (negative counts from the end).
        dim: i64,
    },
    /// `nn.LogSoftmax`.
    LogSoftmax {
        /// The axis, counting the batch axis as 0 (negative counts from the end).
        dim: i64,
    },
    /// `nn.Flatten`.
    Flatten {
        /// First axis flattened, counting the batch axis as 0.
        start_dim: i64,
        /// Last axis flattened (negative counts from the end).
        end_dim: i64,
    },
    /// `nn.Dropout` (the identity at inference and in mho's training).
    Dropout {
        /// Drop probability (recorded, unused).
        p: f64,
    },
    /// A permutation of axes, `x.permute(*dims)`; dims include the batch axis, which stays first.
    Permute {
        /// The permutation, starting with 0.
        dims: Vec<usize>,
    },
    /// `nn.Embedding`: token indices → vectors. Only as the first layer.
    Embedding {
        /// Vocabulary size.
        num_embeddings: usize,
        /// Vector size.
        embedding_dim: usize,
        /// Index whose vector is initialised to zero and not trained.
        padding_idx: Option<usize>,
    },
}

/// A sequential model's architecture: the input shape (without the batch axis) and
/// the layers in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// Always [`FORMAT`].
    pub format: String,
    /// The shape of one example: [C, H, W], [C, L] or [F] (token positions for Embedding).
    pub input_shape: Vec<usize>,
    /// The layers; layer i is named `"i"`.
    pub layers: Vec<LayerSpec>,
}

impl LayerSpec {
    /// The PyTorch module name, as written in the `"type"` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "Linear",
            LayerSpec::Conv2d { .. } => "Conv2d",
            LayerSpec::Conv1d { .. } => "Conv1d",
            LayerSpec::MaxPool2d { .. } => "MaxPool2d",
            LayerSpec::MaxPool1d { .. } => "MaxPool1d",
            LayerSpec::AvgPool2d { .. } => "AvgPool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "AdaptiveAvgPool2d",
            LayerSpec::BatchNorm2d { .. } => "BatchNorm2d",
            LayerSpec::BatchNorm1d { .. } => "BatchNorm1d",
            LayerSpec::ReLU => "ReLU",
            LayerSpec::Tanh => "Tanh",
            LayerSpec::Sigmoid => "Sigmoid",
            LayerSpec::Identity => "Identity",
            LayerSpec::LeakyReLU { .. } => "LeakyReLU",
            LayerSpec::PReLU { .. } => "PReLU",
            LayerSpec::Softmax { .. } => "Softmax",
            LayerSpec::LogSoftmax { .. } => "LogSoftmax",
            LayerSpec::Flatten { .. } => "Flatten",
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::Permute { .. } => "Permute",
            LayerSpec::Embedding { .. } => "Embedding",
        }
    }

    /// The layer's parameter tensors as (state_dict suffix, shape), in state_dict order.
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => weight_and_bias(vec![out_features, in_features], bias),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                ..
            } => weight_and_bias(
                vec![
                    out_channels,
                    in_channels / groups,
                    kernel_size[0],
                    kernel_size[1],
                ],
                bias,
            ),
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                ..
            } => weight_and_bias(vec![out_channels, in_channels / groups, kernel_size], bias),
            LayerSpec::BatchNorm2d {
                num_features,
                affine,
                ..
            }
            | LayerSpec::BatchNorm1d {
                num_features,
                affine,
                ..
            } => {
                let mut p = Vec::new();
                if affine {
                    p.push(("weight", vec![num_features]));
                    p.push(("bias", vec![num_features]));
                }
                p.push(("running_mean", vec![num_features]));
                p.push(("running_var", vec![num_features]));
                p
            }
            LayerSpec::PReLU { num_parameters, .. } => vec![("weight", vec![num_parameters])],
            LayerSpec::Embedding {
                num_embeddings,
                embedding_dim,
                ..
            } => vec![("weight", vec![num_embeddings, embedding_dim])],
            _ => Vec::new(),
        }
    }

    /// Parses layer `index` from its JSON object.
    pub fn from_json(index: usize, value: &Value) -> Result<LayerSpec> {
        let Some(map) = value.as_object() else {
            bail!("layer {index}: expected a JSON object, got {value}");
        };
        let kind = match map.get("type") {
            Some(Value::String(s)) => s.as_str(),
            Some(v) => bail!("layer {index}: field \"type\": expected a string, got {v}"),
            None => bail!("layer {index}: field \"type\" is missing"),
        };
        let mut f = Fields::new(index, kind, map);
        let spec = parse_layer(&mut f, kind)?;
        f.finish()?;
        Ok(spec)
    }

    /// The layer as a JSON object with every argument explicit.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.type_name()));
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match self {
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => {
                put("in_features", json!(in_features));
                put("out_features", json!(out_features));
                put("bias", json!(bias));
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                put("in_channels", json!(in_channels));
                put("out_channels", json!(out_channels));
                put("kernel_size", json!(kernel_size));
                put("stride", json!(stride));
                put("padding", json!(padding));
                put("dilation", json!(dilation));
                put("groups", json!(groups));
                put("bias", json!(bias));
            }
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                put("in_channels", json!(in_channels));
                put("out_channels", json!(out_channels));
                put("kernel_size", json!(kernel_size));
                put("stride", json!(stride));
                put("padding", json!(padding));
                put("dilation", json!(dilation));
                put("groups", json!(groups));
                put("bias", json!(bias));
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                dilation,
                ceil_mode,
            } => {
                put("kernel_size", json!(kernel_size));
                put("stride", json!(stride));
                put("padding", json!(padding));
                put("dilation", json!(dilation));
                put("ceil_mode", json!(ceil_mode));
            }
            LayerSpec::MaxPool1d {
                kernel_size,
                stride,
                padding,
                dilation,
                ceil_mode,
            } => {
                put("kernel_size", json!(kernel_size));
                put("stride", json!(stride));
                put("padding", json!(padding));
                put("dilation", json!(dilation));
                put("ceil_mode", json!(ceil_mode));
            }
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
            } => {
                put("kernel_size", json!(kernel_size));
                put("stride", json!(stride));
                put("padding", json!(padding));
                put("ceil_mode", json!(ceil_mode));
                put("count_include_pad", json!(count_include_pad));
            }
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                put("output_size", json!(output_size));
            }
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
                put("num_features", json!(num_features));
                put("eps", json!(eps));
                put("affine", json!(affine));
            }
            LayerSpec::ReLU | LayerSpec::Tanh | LayerSpec::Sigmoid | LayerSpec::Identity => {}
            LayerSpec::LeakyReLU { negative_slope } => {
                put("negative_slope", json!(negative_slope));
            }
            LayerSpec::PReLU {
                num_parameters,
                init,
            } => {
                put("num_parameters", json!(num_parameters));
                put("init", json!(init));
            }
            LayerSpec::Softmax { dim } | LayerSpec::LogSoftmax { dim } => {
                put("dim", json!(dim));
            }
            LayerSpec::Flatten { start_dim, end_dim } => {
                put("start_dim", json!(start_dim));
                put("end_dim", json!(end_dim));
            }
            LayerSpec::Dropout { p } => {
                put("p", json!(p));
            }
            LayerSpec::Permute { dims } => {
                put("dims", json!(dims));
            }
            LayerSpec::Embedding {
                num_embeddings,
                embedding_dim,
                padding_idx,
            } => {
                put("num_embeddings", json!(num_embeddings));
                put("embedding_dim", json!(embedding_dim));
                put("padding_idx", json!(padding_idx));
            }
        }
        Value::Object(m)
    }
}

/// A weight of the given shape, then (if the layer has one) a bias with one element per
/// output, `weight[0]`: the parameters of Linear and Conv layers.
fn weight_and_bias(weight: Vec<usize>, bias: bool) -> Vec<(&'static str, Vec<usize>)> {
    let out = weight[0];
    let mut p = vec![("weight", weight)];
    if bias {
        p.push(("bias", vec![out]));
    }
    p
}

/// Reads a convolution's `padding`, which may also be `"valid"` or `"same"` (as in
/// PyTorch; `"same"` needs stride 1 and an even total padding per axis).
fn conv_padding(
    f: &mut Fields<'_>,
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
    two_d: bool,
) -> Result<Vec<usize>> {
    let n = kernel.len();
    if let Some(s) = f.str_opt_peek("padding")? {
        return match s {
            "valid" => Ok(vec![0; n]),
            "same" => {
                if stride.iter().any(|&s| s != 1) {
                    return Err(f.field_err("padding", "\"same\" needs stride 1"));
                }
                let mut p = Vec::with_capacity(n);
                for i in 0..n {
                    let total = dilation[i] * (kernel[i] - 1);
                    if !total.is_multiple_of(2) {
                        return Err(f.field_err(
                            "padding",
                            "\"same\" would pad unevenly for this kernel size; give numbers",
                        ));
                    }
                    p.push(total / 2);
                }
                Ok(p)
            }
            other => Err(f.field_err(
                "padding",
                format!("expected a number, \"valid\" or \"same\", got \"{other}\""),
            )),
        };
    }
    if two_d {
        Ok(f.pair_or("padding", 0, [0, 0])?.to_vec())
    } else {
        Ok(vec![f.single_opt("padding", 0)?.unwrap_or(0)])
    }
}

fn check_padding_mode(f: &mut Fields<'_>) -> Result<()> {
    match f.str_opt("padding_mode")? {
        None | Some("zeros") => Ok(()),
        Some(other) => Err(f.field_err(
            "padding_mode",
            format!("\"{other}\" is not supported (only \"zeros\")"),
        )),
    }
}

fn parse_layer(f: &mut Fields<'_>, kind: &str) -> Result<LayerSpec> {
    Ok(match kind {
        "Linear" => LayerSpec::Linear {
            in_features: f.size("in_features", 1)?,
            out_features: f.size("out_features", 1)?,
            bias: f.bool_or("bias", true)?,
        },
        "Conv2d" => {
            let in_channels = f.size("in_channels", 1)?;
            let out_channels = f.size("out_channels", 1)?;
            let kernel_size = f.pair("kernel_size", 1)?;
            let stride = f.pair_or("stride", 1, [1, 1])?;
            let dilation = f.pair_or("dilation", 1, [1, 1])?;
            let p = conv_padding(f, &kernel_size, &stride, &dilation, true)?;
            let groups = f.size_or("groups", 1, 1)?;
            let bias = f.bool_or("bias", true)?;
            check_padding_mode(f)?;
            check_groups(f, in_channels, out_channels, groups)?;
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding: [p[0], p[1]],
                dilation,
                groups,
                bias,
            }
        }
        "Conv1d" => {
            let in_channels = f.size("in_channels", 1)?;
            let out_channels = f.size("out_channels", 1)?;
            let kernel_size = f.single("kernel_size", 1)?;
            let stride = f.single_opt("stride", 1)?.unwrap_or(1);
            let dilation = f.single_opt("dilation", 1)?.unwrap_or(1);
            let p = conv_padding(f, &[kernel_size], &[stride], &[dilation], false)?;
            let groups = f.size_or("groups", 1, 1)?;
            let bias = f.bool_or("bias", true)?;
            check_padding_mode(f)?;
            check_groups(f, in_channels, out_channels, groups)?;
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding: p[0],
                dilation,
                groups,
                bias,
            }
        }
        "MaxPool2d" => {
            let kernel_size = f.pair("kernel_size", 1)?;
            let spec = LayerSpec::MaxPool2d {
                kernel_size,
                stride: f.pair_or("stride", 1, kernel_size)?,
                padding: f.pair_or("padding", 0, [0, 0])?,
                dilation: f.pair_or("dilation", 1, [1, 1])?,
                ceil_mode: f.bool_or("ceil_mode", false)?,
            };
            f.bool_must_be("return_indices", false, "mho returns values only")?;
            spec
        }
        "MaxPool1d" => {
            let kernel_size = f.single("kernel_size", 1)?;
            let spec = LayerSpec::MaxPool1d {
                kernel_size,
                stride: f.single_opt("stride", 1)?.unwrap_or(kernel_size),
                padding: f.single_opt("padding", 0)?.unwrap_or(0),
                dilation: f.single_opt("dilation", 1)?.unwrap_or(1),
                ceil_mode: f.bool_or("ceil_mode", false)?,
            };
            f.bool_must_be("return_indices", false, "mho returns values only")?;
            spec
        }
        "AvgPool2d" => {
            let kernel_size = f.pair("kernel_size", 1)?;
            let spec = LayerSpec::AvgPool2d {
                kernel_size,
                stride: f.pair_or("stride", 1, kernel_size)?,
                padding: f.pair_or("padding", 0, [0, 0])?,
                ceil_mode: f.bool_or("ceil_mode", false)?,
                count_include_pad: f.bool_or("count_include_pad", true)?,
            };
            f.must_be_null("divisor_override", "only the default divisor")?;
            spec
        }
        "AdaptiveAvgPool2d" => LayerSpec::AdaptiveAvgPool2d {
            output_size: f.pair("output_size", 1)?,
        },
        "BatchNorm2d" | "BatchNorm1d" => {
            let num_features = f.size("num_features", 1)?;
            let eps = f.f64_or("eps", 1e-5)?;
            if eps <= 0.0 {
                return Err(f.field_err("eps", format!("{eps} must be positive")));
            }
            let affine = f.bool_or("affine", true)?;
            f.ignore("momentum");
            f.bool_must_be(
                "track_running_stats",
                true,
                "mho's BatchNorm uses running statistics",
            )?;
            if kind == "BatchNorm2d" {
                LayerSpec::BatchNorm2d {
                    num_features,
                    eps,
                    affine,
                }
            } else {
                LayerSpec::BatchNorm1d {
                    num_features,
                    eps,
                    affine,
                }
            }
        }
        "ReLU" => {
            f.ignore("inplace");
            LayerSpec::ReLU
        }
        "Tanh" => LayerSpec::Tanh,
        "Sigmoid" => LayerSpec::Sigmoid,
        "Identity" => LayerSpec::Identity,
        "LeakyReLU" => {
            f.ignore("inplace");
            LayerSpec::LeakyReLU {
                negative_slope: f.f64_or("negative_slope", 0.01)?,
            }
        }
        "PReLU" => LayerSpec::PReLU {
            num_parameters: f.size_or("num_parameters", 1, 1)?,
            init: f.f64_or("init", 0.25)?,
        },
        "Softmax" => LayerSpec::Softmax { dim: f.dim("dim")? },
        "LogSoftmax" => LayerSpec::LogSoftmax { dim: f.dim("dim")? },
        "Flatten" => LayerSpec::Flatten {
            start_dim: f.dim_or("start_dim", 1)?,
            end_dim: f.dim_or("end_dim", -1)?,
        },
        "Dropout" => {
            f.ignore("inplace");
            let p = f.f64_or("p", 0.5)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(f.field_err("p", format!("{p} is not in [0, 1]")));
            }
            LayerSpec::Dropout { p }
        }
        "Permute" => LayerSpec::Permute {
            dims: f.dims_list("dims")?,
        },
        "Embedding" => {
            let num_embeddings = f.size("num_embeddings", 1)?;
            let embedding_dim = f.size("embedding_dim", 1)?;
            let padding_idx = match f.dim_or_null("padding_idx")? {
                None => None,
                Some(p) => {
                    let n = num_embeddings as i64;
                    if p >= n || p < -n {
                        return Err(f.field_err(
                            "padding_idx",
                            format!("{p} is out of range for {num_embeddings} embeddings"),
                        ));
                    }
                    Some(if p < 0 { (p + n) as usize } else { p as usize })
                }
            };
            f.must_be_null("max_norm", "weights are not renormalised")?;
            f.bool_must_be("scale_grad_by_freq", false, "not implemented")?;
            f.ignore("norm_type");
            f.ignore("sparse");
            LayerSpec::Embedding {
                num_embeddings,
                embedding_dim,
                padding_idx,
            }
        }
        other => {
            return Err(f.err(format!(
                "unknown layer type \"{other}\" (known: {})",
                KNOWN_TYPES.join(", ")
            )))
        }
    })
}

/// Every layer type mho reads.
pub const KNOWN_TYPES: &[&str] = &[
    "Linear",
    "Conv2d",
    "Conv1d",
    "MaxPool2d",
    "MaxPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "BatchNorm2d",
    "BatchNorm1d",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Identity",
    "LeakyReLU",
    "PReLU",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Dropout",
    "Permute",
    "Embedding",
];

fn check_groups(f: &Fields<'_>, cin: usize, cout: usize, groups: usize) -> Result<()> {
    if !cin.is_multiple_of(groups) {
        return Err(f.field_err(
            "groups",
            format!("in_channels {cin} is not divisible by groups {groups}"),
        ));
    }
    if !cout.is_multiple_of(groups) {
        return Err(f.field_err(
            "groups",
            format!("out_channels {cout} is not divisible by groups {groups}"),
        ));
    }
    Ok(())
}

impl Architecture {
    /// An architecture from its parts, validated (shapes inferred through every layer).
    pub fn new(input_shape: Vec<usize>, layers: Vec<LayerSpec>) -> Result<Architecture> {
        let arch = Architecture {
            format: FORMAT.to_string(),
            input_shape,
            layers,
        };
        arch.layer_shapes()?;
        Ok(arch)
    }

    /// Parses and validates the architecture JSON.
    pub fn from_json(text: &str) -> Result<Architecture> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::new(format!("architecture: invalid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses and validates an architecture from a JSON value.
    pub fn from_value(value: &Value) -> Result<Architecture> {
        let Some(map) = value.as_object() else {
            bail!("architecture: expected a JSON object");
        };
        for key in map.keys() {
            ensure!(
                matches!(key.as_str(), "format" | "input_shape" | "layers"),
                "architecture: unknown field \"{key}\""
            );
        }
        match map.get("format") {
            Some(Value::String(s)) if s == FORMAT => {}
            Some(v) => bail!("architecture: field \"format\": expected \"{FORMAT}\", got {v}"),
            None => bail!("architecture: field \"format\" is missing (expected \"{FORMAT}\")"),
        }
        let Some(shape) = map.get("input_shape").and_then(Value::as_array) else {
            bail!("architecture: field \"input_shape\": expected a list of positive integers");
        };
        ensure!(
            (1..=4).contains(&shape.len()),
            "architecture: field \"input_shape\": expected 1 to 4 dimensions, got {}",
            shape.len()
        );
        let mut input_shape = Vec::with_capacity(shape.len());
        for d in shape {
            match d.as_u64() {
                Some(n) if n >= 1 && n <= MAX_SIZE as u64 => input_shape.push(n as usize),
                _ => bail!(
                    "architecture: field \"input_shape\": {d} is not an integer in 1..={MAX_SIZE}"
                ),
            }
        }
        let Some(layers) = map.get("layers").and_then(Value::as_array) else {
            bail!("architecture: field \"layers\": expected a list of layer objects");
        };
        ensure!(
            !layers.is_empty(),
            "architecture: field \"layers\": no layers"
        );
        ensure!(
            layers.len() <= MAX_LAYERS,
            "architecture: field \"layers\": {} layers is more than the limit {MAX_LAYERS}",
            layers.len()
        );
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerSpec::from_json(i, l))
            .collect::<Result<Vec<_>>>()?;
        Architecture::new(input_shape, layers)
    }

    /// The architecture as a JSON value with every argument explicit.
    pub fn to_value(&self) -> Value {
        json!({
            "format": FORMAT,
            "input_shape": self.input_shape,
            "layers": self.layers.iter().map(LayerSpec::to_json).collect::<Vec<_>>(),
        })
    }

    /// The architecture as compact JSON text (what is stored in a model file).
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The architecture as indented JSON text.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_else(|_| self.to_json())
    }

    /// True when the first layer is an Embedding (inputs are token indices).
    pub fn takes_tokens(&self) -> bool {
        matches!(self.layers.first(), Some(LayerSpec::Embedding { .. }))
    }
}
