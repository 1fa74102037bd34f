//! Shape inference through an architecture: each layer's output shape (without the
//! batch axis), with errors naming the layer and the hyperparameter at fault.

use super::arch::{Architecture, LayerSpec, MAX_NUMEL};
use crate::{bail, Error, Result};

/// Output length of a convolution along one axis, as PyTorch computes it.
fn conv_out(len: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d.checked_mul(k - 1)?.checked_add(1)?;
    let padded = len.checked_add(p.checked_mul(2)?)?;
    if padded < span {
        return None;
    }
    Some((padded - span) / s + 1)
}

/// Output length of a pooling window along one axis, as PyTorch's
/// `pooling_output_shape` computes it (ceil_mode windows must start inside the
/// input or its left padding).
fn pool_out(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Option<usize> {
    let span = d.checked_mul(k - 1)?.checked_add(1)?;
    let padded = len.checked_add(p.checked_mul(2)?)?;
    if padded < span {
        return None;
    }
    let num = padded - span + if ceil { s - 1 } else { 0 };
    let mut out = num / s + 1;
    if ceil && (out - 1) * s >= len + p {
        out -= 1;
    }
    Some(out)
}

/// Normalises a PyTorch dimension (counting the batch axis) for a tensor of `ndim`
/// axes including the batch axis.
fn norm_dim(d: i64, ndim: usize) -> Option<usize> {
    let n = ndim as i64;
    let d = if d < 0 { d + n } else { d };
    (0..n).contains(&d).then_some(d as usize)
}

fn layer_err(i: usize, spec: &LayerSpec, msg: impl std::fmt::Display) -> Error {
    Error::new(format!("layer {i} ({}): {msg}", spec.type_name()))
}

/// The output shape (without batch axis) of layer `i` given its input shape, for inputs
/// whose batch axis is first.
fn batch_first_output_shape(i: usize, spec: &LayerSpec, input: &[usize]) -> Result<Vec<usize>> {
    let e = |msg: String| layer_err(i, spec, msg);
    let want_rank = |rank: usize, what: &str| -> Result<()> {
        if input.len() != rank {
            return Err(e(format!(
                "expects {what} inputs ({rank} axes without the batch axis), got shape {input:?}"
            )));
        }
        Ok(())
    };
    let out = match spec {
        LayerSpec::Linear {
            in_features,
            out_features,
            ..
        } => {
            let Some(&last) = input.last() else {
                return Err(e("expects at least one input axis".into()));
            };
            if last != *in_features {
                return Err(e(format!(
                    "in_features {in_features} but input has {last} features (shape {input:?})"
                )));
            }
            let mut o = input.to_vec();
            *o.last_mut().expect("non-empty") = *out_features;
            o
        }
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => {
            want_rank(3, "[C, H, W]")?;
            if input[0] != *in_channels {
                return Err(e(format!(
                    "in_channels {in_channels} but input has {} channels",
                    input[0]
                )));
            }
            let mut o = vec![*out_channels];
            for a in 0..2 {
                match conv_out(input[a + 1], k[a], s[a], p[a], d[a]) {
                    Some(n) => o.push(n),
                    None => {
                        return Err(e(format!(
                        "kernel_size {k:?} (dilation {d:?}) is larger than the padded input {:?}",
                        &input[1..]
                    )))
                    }
                }
            }
            o
        }
        LayerSpec::Conv1d {
            in_channels,
            out_channels,
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ..
        } => {
            want_rank(2, "[C, L]")?;
            if input[0] != *in_channels {
                return Err(e(format!(
                    "in_channels {in_channels} but input has {} channels",
                    input[0]
                )));
            }
            match conv_out(input[1], *k, *s, *p, *d) {
                Some(n) => vec![*out_channels, n],
                None => {
                    return Err(e(format!(
                        "kernel_size {k} (dilation {d}) is larger than the padded input length {}",
                        input[1]
                    )))
                }
            }
        }
        LayerSpec::MaxPool2d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ceil_mode,
        } => {
            want_rank(3, "[C, H, W]")?;
            pool2d(&e, input, *k, *s, *p, *d, *ceil_mode)?
        }
        LayerSpec::AvgPool2d {
            kernel_size: k,
            stride: s,
            padding: p,
            ceil_mode,
            ..
        } => {
            want_rank(3, "[C, H, W]")?;
            pool2d(&e, input, *k, *s, *p, [1, 1], *ceil_mode)?
        }
        LayerSpec::MaxPool1d {
            kernel_size: k,
            stride: s,
            padding: p,
            dilation: d,
            ceil_mode,
        } => {
            want_rank(2, "[C, L]")?;
            if *p > k / 2 {
                return Err(e(format!(
                    "padding {p} is more than half of kernel_size {k}"
                )));
            }
            match pool_out(input[1], *k, *s, *p, *d, *ceil_mode) {
                Some(n) if n >= 1 => vec![input[0], n],
                _ => {
                    return Err(e(format!(
                        "kernel_size {k} (dilation {d}) is larger than the padded input length {}",
                        input[1]
                    )))
                }
            }
        }
        LayerSpec::AdaptiveAvgPool2d { output_size } => {
            want_rank(3, "[C, H, W]")?;
            vec![input[0], output_size[0], output_size[1]]
        }
        LayerSpec::BatchNorm2d { num_features, .. } => {
            want_rank(3, "[C, H, W]")?;
            check_features(&e, *num_features, input)?;
            input.to_vec()
        }
        LayerSpec::BatchNorm1d { num_features, .. } => {
            if input.len() != 1 && input.len() != 2 {
                return Err(e(format!(
                    "expects [C] or [C, L] inputs, got shape {input:?}"
                )));
            }
            check_features(&e, *num_features, input)?;
            input.to_vec()
        }
        LayerSpec::ReLU
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid
        | LayerSpec::Identity
        | LayerSpec::LeakyReLU { .. }
        | LayerSpec::Dropout { .. } => input.to_vec(),
        LayerSpec::PReLU { num_parameters, .. } => {
            if *num_parameters != 1 && input.first() != Some(num_parameters) {
                return Err(e(format!(
                    "num_parameters {num_parameters} but input has {} channels (shape {input:?}); use 1 or the channel count",
                    input.first().copied().unwrap_or(0)
                )));
            }
            input.to_vec()
        }
        LayerSpec::Softmax { .. }
        | LayerSpec::LogSoftmax { .. }
        | LayerSpec::Flatten { .. }
        | LayerSpec::Permute { .. } => {
            return layer_output_shape(i, spec, input, 0).map(|(o, _)| o)
        }
        LayerSpec::Embedding { embedding_dim, .. } => {
            if i != 0 {
                return Err(e(
                    "Embedding must be the first layer (its input is token indices)".into(),
                ));
            }
            let mut o = input.to_vec();
            o.push(*embedding_dim);
            o
        }
    };
    Ok(out)
}

/// The output shape (without the batch axis) of layer `i` and the position of the batch
/// axis in its output, given its input shape (without the batch axis) and the position
/// `b` of the batch axis in its input. Only Permute moves the batch axis; while it is
/// not first, only layers that act on other axes are allowed (elementwise layers,
/// Linear on a non-batch last axis, Softmax over another axis, Flatten of other axes,
/// Permute).
pub fn layer_output_shape(
    i: usize,
    spec: &LayerSpec,
    input: &[usize],
    b: usize,
) -> Result<(Vec<usize>, usize)> {
    let e = |msg: String| layer_err(i, spec, msg);
    let n = input.len() + 1;
    // The full shape, with a placeholder 1 for the batch axis.
    let mut full = input.to_vec();
    full.insert(b, 1);
    let drop_batch = |mut out: Vec<usize>, b: usize| {
        out.remove(b);
        out
    };
    let (out, nb) = match spec {
        LayerSpec::ReLU
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid
        | LayerSpec::Identity
        | LayerSpec::LeakyReLU { .. }
        | LayerSpec::Dropout { .. } => (input.to_vec(), b),
        LayerSpec::PReLU {
            num_parameters: 1, ..
        } => (input.to_vec(), b),
        LayerSpec::Linear { .. } if b != 0 => {
            if b == n - 1 {
                return Err(e(format!(
                    "would act on the batch axis (a Permute moved it last, shape {full:?} with the batch at axis {b})"
                )));
            }
            (batch_first_output_shape(i, spec, input)?, b)
        }
        LayerSpec::Softmax { dim } | LayerSpec::LogSoftmax { dim } => match norm_dim(*dim, n) {
            Some(d) if d == b => {
                return Err(e(format!(
                    "dim {dim} is the batch axis; examples must stay independent"
                )))
            }
            Some(_) => (input.to_vec(), b),
            None => {
                return Err(e(format!(
                    "dim {dim} is out of range for inputs of {n} axes (with the batch axis)"
                )))
            }
        },
        LayerSpec::Flatten { start_dim, end_dim } => {
            let (Some(s), Some(t)) = (norm_dim(*start_dim, n), norm_dim(*end_dim, n)) else {
                return Err(e(format!(
                    "start_dim {start_dim} / end_dim {end_dim} out of range for inputs of {n} axes (with the batch axis)"
                )));
            };
            if s > t {
                return Err(e(format!(
                    "start_dim {start_dim} comes after end_dim {end_dim}"
                )));
            }
            if (s..=t).contains(&b) {
                return Err(e(format!(
                    "axes {s}..={t} include the batch axis ({b}); examples must stay separate"
                )));
            }
            let mut o = full[..s].to_vec();
            o.push(full[s..=t].iter().product());
            o.extend_from_slice(&full[t + 1..]);
            let nb = if b < s { b } else { b - (t - s) };
            (drop_batch(o, nb), nb)
        }
        LayerSpec::Permute { dims } => {
            let mut seen = vec![false; n];
            if dims.len() != n
                || dims
                    .iter()
                    .any(|&d| d >= n || std::mem::replace(&mut seen[d], true))
            {
                return Err(e(format!(
                    "dims {dims:?} is not a permutation of 0..{n} (inputs have {n} axes with the batch axis)"
                )));
            }
            let o: Vec<usize> = dims.iter().map(|&d| full[d]).collect();
            let nb = dims.iter().position(|&d| d == b).expect("a permutation");
            (drop_batch(o, nb), nb)
        }
        _ if b != 0 => {
            return Err(e(format!(
                "needs the batch axis first, but a Permute moved it to axis {b}"
            )))
        }
        _ => (batch_first_output_shape(i, spec, input)?, 0),
    };
    check_numel(i, spec, &out)?;
    Ok((out, nb))
}

fn check_numel(i: usize, spec: &LayerSpec, out: &[usize]) -> Result<()> {
    if out.contains(&0) {
        return Err(layer_err(i, spec, format!("output shape {out:?} is empty")));
    }
    match out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_NUMEL => Ok(()),
        _ => Err(layer_err(
            i,
            spec,
            format!("output shape {out:?} has more than {MAX_NUMEL} elements per example"),
        )),
    }
}

fn check_features(
    e: &impl Fn(String) -> Error,
    num_features: usize,
    input: &[usize],
) -> Result<()> {
    if input[0] != num_features {
        return Err(e(format!(
            "num_features {num_features} but input has {} channels",
            input[0]
        )));
    }
    Ok(())
}

fn pool2d(
    e: &impl Fn(String) -> Error,
    input: &[usize],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    ceil: bool,
) -> Result<Vec<usize>> {
    if p[0] > k[0] / 2 || p[1] > k[1] / 2 {
        return Err(e(format!(
            "padding {p:?} is more than half of kernel_size {k:?}"
        )));
    }
    let mut o = vec![input[0]];
    for a in 0..2 {
        match pool_out(input[a + 1], k[a], s[a], p[a], d[a], ceil) {
            Some(n) if n >= 1 => o.push(n),
            _ => {
                return Err(e(format!(
                    "kernel_size {k:?} (dilation {d:?}) is larger than the padded input {:?}",
                    &input[1..]
                )))
            }
        }
    }
    Ok(o)
}

impl Architecture {
    /// Each layer's output shape without the batch axis; errors name the layer index,
    /// its type and the mismatch ("layer 3 (Conv2d): in_channels 16 but input has 8 channels").
    pub fn layer_shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.infer()?.0)
    }

    /// Where the batch axis is in each layer's output: 0 except after a Permute that
    /// moved it (e.g. `Permute([1, 0])` turns [N, F] into [F, N]: batch axis 1). The last
    /// layer's output always has it first.
    pub fn batch_axes(&self) -> Result<Vec<usize>> {
        Ok(self.infer()?.1)
    }

    /// Shape inference: (each layer's output shape without the batch axis, the batch
    /// axis's position in each layer's output).
    fn infer(&self) -> Result<(Vec<Vec<usize>>, Vec<usize>)> {
        if self.layers.is_empty() {
            bail!("architecture: no layers");
        }
        let numel = self
            .input_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        match numel {
            Some(n) if n <= MAX_NUMEL && n > 0 => {}
            _ => bail!(
                "architecture: input_shape {:?} is empty or has more than {MAX_NUMEL} elements",
                self.input_shape
            ),
        }
        for (i, spec) in self.layers.iter().enumerate() {
            for (name, shape) in spec.param_shapes() {
                match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
                    Some(n) if n <= MAX_NUMEL => {}
                    _ => bail!(
                        "layer {i} ({}): {name} of shape {shape:?} has more than {MAX_NUMEL} elements",
                        spec.type_name()
                    ),
                }
            }
        }
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut axes = Vec::with_capacity(self.layers.len());
        let mut cur = self.input_shape.clone();
        let mut b = 0;
        for (i, spec) in self.layers.iter().enumerate() {
            (cur, b) = layer_output_shape(i, spec, &cur, b)?;
            shapes.push(cur.clone());
            axes.push(b);
        }
        if b != 0 {
            bail!(
                "layer {} ({}): the model's output must have the batch axis first (it is axis {b}); add a Permute",
                self.layers.len() - 1,
                self.layers[self.layers.len() - 1].type_name()
            );
        }
        Ok((shapes, axes))
    }

    /// The model's output shape without the batch axis.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        Ok(self.layer_shapes()?.pop().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_sizes_match_pytorch() {
        // nn.MaxPool2d(2)(torch.zeros(1,1,7,7)).shape == (1,1,3,3); ceil_mode → 4
        assert_eq!(pool_out(7, 2, 2, 0, 1, false), Some(3));
        assert_eq!(pool_out(7, 2, 2, 0, 1, true), Some(4));
        // MaxPool1d(3, stride=2, padding=1, ceil_mode=True) on 6 → 4 (last window starts in padding? no: 3)
        assert_eq!(pool_out(6, 3, 2, 1, 1, true), Some(4));
        assert_eq!(pool_out(5, 3, 2, 1, 1, true), Some(3));
        assert_eq!(conv_out(8, 3, 1, 1, 1), Some(8));
        assert_eq!(conv_out(2, 5, 1, 0, 1), None);
    }
}
