//! A sequential model: an [`Architecture`] plus each layer's parameters, with inference
//! ([`Model::forward`], no tape) and recording on a tape ([`Model::record`]) for
//! attribution and training.

use super::arch::{Architecture, LayerSpec};
use super::layer::{fused_steps, layer_steps, Arg};
use crate::tape::{NodeId, Tape};
use crate::tensor::Tensor;
use crate::{bail, ensure, Float, Result};
use std::sync::Arc;

/// The element type a parameter is stored as in a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The safetensors name ("F32", …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }
}

/// One parameter tensor of a layer.
#[derive(Clone, Debug)]
pub(crate) struct Param<T: Float> {
    /// The state_dict suffix: "weight", "bias", "running_mean" or "running_var".
    pub(crate) suffix: &'static str,
    /// The value in the model's float type.
    pub(crate) value: Tensor<T>,
    /// The dtype it is saved as.
    pub(crate) dtype: DType,
    /// The exact little-endian bytes it was loaded from (kept so that load → save is
    /// bit-identical even when `T` is narrower than the file's dtype); dropped when the
    /// value changes.
    pub(crate) raw: Option<Arc<[u8]>>,
}

/// A sequential model over `f32` or `f64`: layer i is named `"i"`, its parameters
/// `"i.weight"`, `"i.bias"`, `"i.running_mean"`, `"i.running_var"` as in PyTorch's
/// `nn.Sequential` state_dict.
#[derive(Clone, Debug)]
pub struct Model<T: Float> {
    pub(crate) arch: Architecture,
    pub(crate) shapes: Vec<Vec<usize>>,
    /// Per layer, its parameters in [`LayerSpec::param_shapes`] order.
    pub(crate) params: Vec<Vec<Param<T>>>,
}

/// What [`Model::record`] put on the tape.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `layer_outputs[i]` is layer i's output node: [N, ...layer_shapes()[i]] (with the
    /// batch axis at `batch_axes()[i]` instead of first after a batch-moving Permute).
    pub layer_outputs: Vec<NodeId>,
    /// The parameter leaves by state_dict name ("0.weight", …): the trainable ones
    /// (weights and biases, not running statistics) when recorded with `trainable`,
    /// otherwise empty.
    pub params: Vec<(String, NodeId)>,
}

/// A model's parameters as recorded on a tape by [`Model::record_params`].
#[derive(Clone, Debug)]
pub struct RecordedParams {
    /// `nodes[i][j]`: the node of layer i's j-th parameter.
    nodes: Vec<Vec<NodeId>>,
    /// The trainable ones by state_dict name (empty unless recorded as trainable).
    trained: Vec<(String, NodeId)>,
}

impl<T: Float> Model<T> {
    /// A model from an architecture and parameters given by state_dict name; every
    /// parameter the architecture needs must be present with its shape. Parameters are
    /// saved as F32.
    pub fn from_params(
        arch: Architecture,
        mut named: Vec<(String, Tensor<T>)>,
    ) -> Result<Model<T>> {
        let shapes = arch.layer_shapes()?;
        let mut params = Vec::with_capacity(arch.layers.len());
        for (i, spec) in arch.layers.iter().enumerate() {
            let mut layer = Vec::new();
            for (suffix, shape) in spec.param_shapes() {
                let name = format!("{i}.{suffix}");
                let Some(pos) = named.iter().position(|(n, _)| *n == name) else {
                    bail!("parameter \"{name}\" is missing (layer {i} {} needs {suffix} of shape {shape:?})", spec.type_name());
                };
                let (_, value) = named.swap_remove(pos);
                ensure!(
                    value.shape() == shape,
                    "parameter \"{name}\" has shape {:?}, layer {i} ({}) needs {shape:?}",
                    value.shape(),
                    spec.type_name()
                );
                layer.push(Param {
                    suffix,
                    value,
                    dtype: DType::F32,
                    raw: None,
                });
            }
            params.push(layer);
        }
        if let Some((name, _)) = named.first() {
            bail!("parameter \"{name}\" is not used by the architecture");
        }
        Ok(Model {
            arch,
            shapes,
            params,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The layer names, PyTorch's names for the children of a Sequential: "0", "1", ….
    pub fn layer_names(&self) -> Vec<String> {
        (0..self.arch.layers.len()).map(|i| i.to_string()).collect()
    }

    /// The shape of one input example (without the batch axis).
    pub fn input_shape(&self) -> &[usize] {
        &self.arch.input_shape
    }

    /// The shape of one output (without the batch axis).
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().map_or(&[], Vec::as_slice)
    }

    /// Each layer's output shape without the batch axis.
    pub fn layer_shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.shapes.clone())
    }

    /// Where the batch axis is in each layer's output: 0 unless a Permute moved it (then
    /// layer i's output is `layer_shapes()[i]` with the batch axis inserted at that
    /// position). The last layer always has it first.
    pub fn batch_axes(&self) -> Result<Vec<usize>> {
        self.arch.batch_axes()
    }

    /// True when inputs are token indices (the first layer is an Embedding).
    pub fn takes_tokens(&self) -> bool {
        self.arch.takes_tokens()
    }

    /// Every parameter by state_dict name, in layer order.
    pub fn params(&self) -> Vec<(String, &Tensor<T>)> {
        self.params
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| {
                layer
                    .iter()
                    .map(move |p| (format!("{i}.{}", p.suffix), &p.value))
            })
            .collect()
    }

    /// One parameter by state_dict name ("3.weight").
    pub fn param(&self, name: &str) -> Option<&Tensor<T>> {
        self.find(name).map(|(i, j)| &self.params[i][j].value)
    }

    /// The dtype a parameter is saved as.
    pub fn param_dtype(&self, name: &str) -> Option<DType> {
        self.find(name).map(|(i, j)| self.params[i][j].dtype)
    }

    /// Replaces one parameter's value (same shape); it is saved in its current dtype.
    pub fn set_param(&mut self, name: &str, value: Tensor<T>) -> Result<()> {
        let Some((i, j)) = self.find(name) else {
            bail!("no parameter \"{name}\" in this model");
        };
        let p = &mut self.params[i][j];
        ensure!(
            p.value.shape() == value.shape(),
            "parameter \"{name}\" has shape {:?}, got {:?}",
            p.value.shape(),
            value.shape()
        );
        p.value = value;
        p.raw = None;
        Ok(())
    }

    /// Sets the dtype every parameter is saved as (values are rounded to it on save).
    pub fn set_save_dtype(&mut self, dtype: DType) {
        for p in self.params.iter_mut().flatten() {
            if p.dtype != dtype {
                p.dtype = dtype;
                p.raw = None;
            }
        }
    }

    fn find(&self, name: &str) -> Option<(usize, usize)> {
        let (layer, suffix) = name.split_once('.')?;
        let i: usize = layer.parse().ok()?;
        let j = self
            .params
            .get(i)?
            .iter()
            .position(|p| p.suffix == suffix)?;
        Some((i, j))
    }

    /// The same model computing in another float type (saved dtypes and loaded bytes kept).
    pub fn cast<U: Float>(&self) -> Model<U> {
        Model {
            arch: self.arch.clone(),
            shapes: self.shapes.clone(),
            params: self
                .params
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|p| Param {
                            suffix: p.suffix,
                            value: p.value.cast(),
                            dtype: p.dtype,
                            raw: p.raw.clone(),
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// Checks a batch: shape [N, ...input_shape] with N ≥ 1, and for token models whole
    /// non-negative values below the vocabulary size.
    fn check_input(&self, x: &Tensor<T>) -> Result<()> {
        let s = x.shape();
        ensure!(
            s.len() == self.arch.input_shape.len() + 1
                && s[1..] == self.arch.input_shape[..]
                && s[0] > 0,
            "input of shape {s:?} does not match [N, ...{:?}]",
            self.arch.input_shape
        );
        if let Some(LayerSpec::Embedding { num_embeddings, .. }) = self.arch.layers.first() {
            if let Some(i) = x.data().iter().position(|v| {
                let f = v.to_f64();
                !(f >= 0.0 && f.fract() == 0.0 && f < *num_embeddings as f64)
            }) {
                bail!(
                    "input element {i} = {} is not a token index in 0..{num_embeddings}",
                    x.data()[i]
                );
            }
        }
        Ok(())
    }

    /// Inference without a tape: `x` is [N, ...input_shape] (token indices as float
    /// values for Embedding models); returns [N, ...output_shape].
    pub fn forward(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.check_input(x)?;
        let mut cur = x.clone();
        for (i, spec) in self.arch.layers.iter().enumerate() {
            cur = self.forward_layer(i, spec, &cur)?;
        }
        Ok(cur)
    }

    /// Every layer's output for a batch (layer i at index i), without a tape.
    pub fn forward_all(&self, x: &Tensor<T>) -> Result<Vec<Tensor<T>>> {
        self.check_input(x)?;
        let mut outs: Vec<Tensor<T>> = Vec::with_capacity(self.arch.layers.len());
        for (i, spec) in self.arch.layers.iter().enumerate() {
            let input = outs.last().unwrap_or(x);
            let y = self.forward_layer(i, spec, input)?;
            outs.push(y);
        }
        Ok(outs)
    }

    /// Applies layer `i` alone to a batch of its inputs, without a tape.
    pub fn layer_forward(&self, i: usize, x: &Tensor<T>) -> Result<Tensor<T>> {
        let Some(spec) = self.arch.layers.get(i) else {
            bail!("no layer {i} (the model has {})", self.arch.layers.len());
        };
        self.forward_layer(i, spec, x)
    }

    fn forward_layer(&self, i: usize, spec: &LayerSpec, x: &Tensor<T>) -> Result<Tensor<T>> {
        let ctx = |e: crate::Error| e.context(format_args!("layer {i} ({})", spec.type_name()));
        let steps = layer_steps::<T>(spec, x).map_err(ctx)?;
        let mut cur: Option<Tensor<T>> = None;
        for step in steps {
            let args: Vec<&Tensor<T>> = step
                .args
                .iter()
                .map(|a| match a {
                    Arg::Prev => cur.as_ref().unwrap_or(x),
                    Arg::Param(j) => &self.params[i][*j].value,
                    Arg::Const(t) => t,
                })
                .collect();
            let y = step.op.forward(&args).map_err(ctx)?;
            cur = Some(y);
        }
        Ok(cur.unwrap_or_else(|| x.clone()))
    }

    /// Records every layer on `tape`, starting from the node `input` ([N, ...input_shape]).
    /// Parameters are `tape.constant`s, or `tape.variable`s when `trainable` (running
    /// statistics stay constants), listed by state_dict name in [`Recorded::params`].
    pub fn record(&self, tape: &mut Tape<T>, input: NodeId, trainable: bool) -> Result<Recorded> {
        let params = self.record_params(tape, trainable);
        self.record_using(tape, input, &params)
    }

    /// Puts every parameter on `tape` once: `tape.constant`s, or `tape.variable`s for
    /// weights and biases when `trainable`. Pass the result to [`Model::record_using`]
    /// for each pass that shares them (the attribution sweep records its weights once and
    /// truncates the tape back to them between step chunks).
    pub fn record_params(&self, tape: &mut Tape<T>, trainable: bool) -> RecordedParams {
        let mut nodes = Vec::with_capacity(self.params.len());
        let mut trained = Vec::new();
        for (i, layer) in self.params.iter().enumerate() {
            let mut ids = Vec::with_capacity(layer.len());
            for p in layer {
                let id = if trainable && matches!(p.suffix, "weight" | "bias") {
                    let id = tape.variable(p.value.clone());
                    trained.push((format!("{i}.{}", p.suffix), id));
                    id
                } else {
                    tape.constant(p.value.clone())
                };
                ids.push(id);
            }
            nodes.push(ids);
        }
        RecordedParams { nodes, trained }
    }

    /// Records every layer on `tape` from the node `input` ([N, ...input_shape]), reading
    /// the parameters from `params` (from [`Model::record_params`] on the same tape).
    pub fn record_using(
        &self,
        tape: &mut Tape<T>,
        input: NodeId,
        params: &RecordedParams,
    ) -> Result<Recorded> {
        self.record_with(tape, input, params, false)
    }

    /// [`Model::record_using`], recording each Conv2d layer that a ReLU layer follows
    /// together with it as one [`crate::ops::Conv2dRelu`] node, which is then the output
    /// node of both layers. Values, adjoints and tangents of every node left on the tape
    /// are those of [`Model::record_using`] bit for bit; the convolution's own output
    /// (the pre-activation), its adjoint and its tangent are not computed. For the
    /// attribution sweep when it reads no pre-activation.
    pub fn record_using_fused(
        &self,
        tape: &mut Tape<T>,
        input: NodeId,
        params: &RecordedParams,
    ) -> Result<Recorded> {
        self.record_with(tape, input, params, true)
    }

    fn record_with(
        &self,
        tape: &mut Tape<T>,
        input: NodeId,
        params: &RecordedParams,
        fuse: bool,
    ) -> Result<Recorded> {
        self.check_input(tape.value(input))?;
        ensure!(
            params.nodes.len() == self.params.len()
                && params
                    .nodes
                    .iter()
                    .zip(&self.params)
                    .all(|(ids, ps)| ids.len() == ps.len()),
            "record: parameters recorded for another model"
        );
        let layers = &self.arch.layers;
        let mut layer_outputs = Vec::with_capacity(layers.len());
        let mut cur = input;
        for (i, spec) in layers.iter().enumerate() {
            if fuse && layer_outputs.len() > i {
                continue; // the ReLU recorded with the layer before it
            }
            let ctx = |e: crate::Error| e.context(format_args!("layer {i} ({})", spec.type_name()));
            let fused = fuse
                .then(|| fused_steps::<T>(spec, layers.get(i + 1)))
                .flatten();
            let pair = fused.is_some();
            let steps = match fused {
                Some(steps) => steps,
                None => layer_steps::<T>(spec, tape.value(cur)).map_err(ctx)?,
            };
            for step in steps {
                let mut ids = Vec::with_capacity(step.args.len());
                for a in step.args {
                    ids.push(match a {
                        Arg::Prev => cur,
                        Arg::Param(j) => params.nodes[i][j],
                        Arg::Const(t) => tape.constant(t),
                    });
                }
                cur = tape.apply_boxed(step.op, &ids).map_err(ctx)?;
            }
            layer_outputs.push(cur);
            if pair {
                layer_outputs.push(cur);
            }
        }
        Ok(Recorded {
            layer_outputs,
            params: params.trained.clone(),
        })
    }
}
