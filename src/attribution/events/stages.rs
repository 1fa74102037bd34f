//! The model as the events see it: each layer a [`Stage`] — linear maps by their Jacobian's
//! columns (computed from the weights, or probed), rectifiers, max-pool windows.

use super::state::{pick, Dense};
use crate::nn::{LayerSpec, Model};
use crate::tensor::Tensor;
use crate::{bail, ensure, Result};
use mho_kernels::Float;

/// A convolution's geometry and weights, enough to list the outputs each input feeds.
pub(super) struct Conv {
    pub(super) in_plane: usize,
    pub(super) in_w: usize,
    pub(super) out_plane: usize,
    pub(super) out_w: usize,
    pub(super) in_per_group: usize,
    pub(super) out_per_group: usize,
    pub(super) kernel: usize,
    pub(super) kw: usize,
    /// [out channel][in channel of the group][ky][kx].
    pub(super) weight: Vec<f64>,
    /// |weight|, for the magnitude sums of the first pass.
    weight_mag: Vec<f64>,
    /// Per output channel (zeros without a bias).
    pub(super) bias: Vec<f64>,
    /// For each input row: the (kernel row, output row) pairs that read it.
    pub(super) rows_of: Vec<Vec<(usize, usize)>>,
    /// For each input column: the (kernel column, output column) pairs that read it.
    pub(super) cols_of: Vec<Vec<(usize, usize)>>,
    /// For stride 1 and dilation 1: (input height, output height, kernel height, padding
    /// of rows, padding of columns), for the passes over whole planes.
    pub(super) plain: Option<[usize; 5]>,
}

impl Conv {
    /// Calls `f(output unit, weight)` for every output that input unit `u` feeds.
    #[inline]
    pub(super) fn for_each_output(&self, u: usize, mut f: impl FnMut(usize, f64)) {
        let c = u / self.in_plane;
        let iy = u % self.in_plane / self.in_w;
        let ix = u % self.in_w;
        let group = c / self.in_per_group;
        let cl = c % self.in_per_group;
        for o in group * self.out_per_group..(group + 1) * self.out_per_group {
            let wbase = (o * self.in_per_group + cl) * self.kernel;
            let obase = o * self.out_plane;
            for &(ky, oy) in &self.rows_of[iy] {
                for &(kx, ox) in &self.cols_of[ix] {
                    f(
                        obase + oy * self.out_w + ox,
                        self.weight[wbase + ky * self.kw + kx],
                    );
                }
            }
        }
    }

    /// For stride 1, dilation 1 and one group, the geometry of the passes over whole
    /// planes as products of matrices: (input height, output height, kernel height,
    /// padding of rows, padding of columns, input channels, output channels).
    fn unrolled(&self) -> Option<[usize; 7]> {
        let [h, oh, kh, pad_h, pad_w] = self.plain?;
        let (c_in, c_out) = (self.in_per_group, self.out_per_group);
        (self.bias.len() == c_out).then_some([h, oh, kh, pad_h, pad_w, c_in, c_out])
    }

    /// Calls `f(row, output position, input unit)` for every tap of the unrolled input
    /// (row = (input channel, ky, kx), as in the weight's layout) that is not padding.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let Some([h, oh, kh, pad_h, pad_w, c_in, _]) = self.unrolled() else {
            return;
        };
        let (w, ow, kw) = (self.in_w, self.out_w, self.kw);
        for c in 0..c_in {
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = (c * kh + ky) * kw + kx;
                    for oy in 0..oh {
                        let Some(iy) = (oy + ky).checked_sub(pad_h).filter(|&y| y < h) else {
                            continue;
                        };
                        for ox in 0..ow {
                            if let Some(ix) = (ox + kx).checked_sub(pad_w).filter(|&x| x < w) {
                                f(row, oy * ow + ox, c * self.in_plane + iy * w + ix);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The first pass's values, slopes and their magnitude sums at every output, for a
    /// whole layer at once: the inputs unrolled (each output's taps in a column) and
    /// multiplied by the weights and by their magnitudes in two products (f64 gemm), where
    /// the convolution has stride 1, dilation 1 and one group. Returns false (and does
    /// nothing) for other convolutions.
    pub(super) fn forward_all(&self, below: &Dense, above: &mut Dense) -> bool {
        let Some([.., c_in, c_out]) = self.unrolled() else {
            return false;
        };
        let (n, rows) = (self.out_plane, c_in * self.kernel);
        // Columns: the values' taps, then the slopes'.
        let mut x = vec![0.0; rows * 2 * n];
        let mut x_mag = vec![0.0; rows * 2 * n];
        self.for_each_tap(|r, p, u| {
            let at = r * 2 * n + p;
            (x[at], x[at + n]) = (below.a[u], below.s[u]);
            (x_mag[at], x_mag[at + n]) = (below.mag_a[u], below.mag_s[u]);
        });
        let (mut y, mut y_mag) = (vec![0.0; c_out * 2 * n], vec![0.0; c_out * 2 * n]);
        let product = |wt: &[f64], x: &[f64], y: &mut [f64]| {
            mho_kernels::gemm::gemm(c_out, rows, 2 * n, 1.0, wt, false, x, false, 0.0, y)
        };
        if product(&self.weight, &x, &mut y).is_err()
            || product(&self.weight_mag, &x_mag, &mut y_mag).is_err()
        {
            return false;
        }
        for o in 0..c_out {
            let (b, v) = (self.bias[o], o * n..(o + 1) * n);
            let (row, row_mag) = (&y[2 * o * n..2 * (o + 1) * n], &y_mag[2 * o * n..]);
            for (p, out) in v.enumerate() {
                above.a[out] = b + row[p];
                above.s[out] = row[n + p];
                above.mag_a[out] = b.abs() + row_mag[p];
                above.mag_s[out] = row_mag[n + p];
            }
        }
        true
    }

    /// Sets `cum[u]` for every input unit u to Σ w·up[v] over the outputs v it feeds, for
    /// a whole layer at once: Wᵀ·C in one product (f64 gemm), then each tap's row added
    /// back to its input, where the convolution has stride 1, dilation 1 and one group.
    /// Returns false (and does nothing) for other convolutions.
    pub(super) fn transpose_all(&self, up: &[f64], cum: &mut [f64]) -> bool {
        let Some([.., c_in, c_out]) = self.unrolled() else {
            return false;
        };
        let (n, rows) = (self.out_plane, c_in * self.kernel);
        let mut t = vec![0.0; rows * n];
        if mho_kernels::gemm::gemm(
            rows,
            c_out,
            n,
            1.0,
            &self.weight,
            true,
            up,
            false,
            0.0,
            &mut t,
        )
        .is_err()
        {
            return false;
        }
        cum.fill(0.0);
        self.for_each_tap(|r, p, u| cum[u] += t[r * n + p]);
        true
    }
}

/// For each input position along one axis: the (kernel index, output index) pairs with
/// out·stride − padding + k·dilation = in.
fn taps(
    len_in: usize,
    len_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Vec<Vec<(usize, usize)>> {
    let mut taps = vec![Vec::new(); len_in];
    for o in 0..len_out {
        for j in 0..k {
            let pos = (o * stride + j * dilation) as isize - padding as isize;
            if pos >= 0 && (pos as usize) < len_in {
                taps[pos as usize].push((j, o));
            }
        }
    }
    taps
}

/// Max-pool windows as lists of input units.
pub(super) struct Windows {
    /// Window w's candidates are `cand[start[w]..start[w + 1]]`, in window order.
    pub(super) start: Vec<usize>,
    pub(super) cand: Vec<u32>,
    /// The windows containing input unit u are `of[of_start[u]..of_start[u + 1]]`.
    pub(super) of_start: Vec<usize>,
    pub(super) of: Vec<u32>,
    /// The most windows any input unit is in.
    pub(super) most: usize,
}

/// One model layer as the integration sees it.
pub(super) enum Stage {
    /// y = x (Flatten, Identity, Dropout at inference).
    Identity,
    /// y = x·Wᵀ + b over the last axis; `wt` is Wᵀ, [in][out].
    Linear {
        inp: usize,
        out: usize,
        wt: Vec<f64>,
        bias: Vec<f64>,
    },
    Conv(Conv),
    /// y = scale·x + shift, unit by unit (batch normalisation at inference).
    Diagonal {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    /// Any other linear layer, by its Jacobian's columns (found by probing the layer):
    /// input u feeds outputs `rows[start[u]..start[u + 1]]` with weights `vals[…]`.
    Sparse {
        start: Vec<usize>,
        rows: Vec<u32>,
        vals: Vec<f64>,
        bias: Vec<f64>,
    },
    /// y = x where x > 0, else the unit's negative slope times x: `slopes[0]` for every
    /// unit, or `slopes[u / per]` (PReLU, one per channel).
    Rectifier {
        slopes: Vec<f64>,
        per: usize,
    },
    MaxPool(Windows),
}

impl Stage {
    /// A rectifier's slope at unit `u` on its positive (`on`) or negative side.
    #[inline]
    pub(super) fn slope(&self, u: usize, on: bool) -> f64 {
        match self {
            Stage::Rectifier { slopes, per } => {
                let negative = if slopes.len() == 1 {
                    slopes[0]
                } else {
                    slopes[u / per]
                };
                // Chosen by a mask, not a branch: which side a unit is on is
                // unpredictable, and the events ask for slopes all the time.
                pick(on, 1.0, negative)
            }
            _ => 1.0,
        }
    }
}

/// Largest number of units any layer boundary may have (unit indices are u32).
const MAX_UNITS: usize = u32::MAX as usize;

/// The model as stages, or `None` when a layer is not one the events handle.
pub(super) fn stages<T: Float>(model: &Model<T>) -> Result<Option<Vec<Stage>>> {
    let specs = &model.architecture().layers;
    let shapes = model.layer_shapes()?;
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let in_shape: &[usize] = if i == 0 {
            model.input_shape()
        } else {
            &shapes[i - 1]
        };
        let out_shape = &shapes[i];
        let units = |s: &[usize]| s.iter().product::<usize>();
        if units(in_shape) > MAX_UNITS || units(out_shape) > MAX_UNITS {
            return Ok(None);
        }
        let param = |name: &str| -> Result<Vec<f64>> {
            let key = format!("{i}.{name}");
            match model.param(&key) {
                Some(t) => Ok(t.data().iter().map(|v| v.to_f64()).collect()),
                None => bail!("layer {i}: no parameter {key}"),
            }
        };
        let stage = match spec {
            LayerSpec::Flatten { .. } | LayerSpec::Identity | LayerSpec::Dropout { .. } => {
                Stage::Identity
            }
            LayerSpec::ReLU => Stage::Rectifier {
                slopes: vec![0.0],
                per: 1,
            },
            LayerSpec::LeakyReLU { negative_slope } => Stage::Rectifier {
                slopes: vec![*negative_slope],
                per: 1,
            },
            LayerSpec::PReLU { num_parameters, .. } => {
                let slopes = param("weight")?;
                let units_in = units(in_shape);
                let channels = in_shape.first().copied().unwrap_or(1);
                ensure!(
                    slopes.len() == *num_parameters
                        && (slopes.len() == 1 || (slopes.len() == channels && channels > 0)),
                    "layer {i}: {} PReLU slopes for input {in_shape:?}",
                    slopes.len()
                );
                Stage::Rectifier {
                    per: (units_in / slopes.len()).max(1),
                    slopes,
                }
            }
            LayerSpec::BatchNorm1d {
                num_features,
                eps,
                affine,
            }
            | LayerSpec::BatchNorm2d {
                num_features,
                eps,
                affine,
            } => {
                let (mean, var) = (param("running_mean")?, param("running_var")?);
                let c = *num_features;
                let (gamma, beta) = if *affine {
                    (param("weight")?, param("bias")?)
                } else {
                    (vec![1.0; c], vec![0.0; c])
                };
                let n = units(in_shape);
                ensure!(
                    c > 0
                        && [&mean, &var, &gamma, &beta].iter().all(|p| p.len() == c)
                        && in_shape.first() == Some(&c),
                    "layer {i}: batch norm of {c} features on input {in_shape:?}"
                );
                let per = n / c;
                let scale: Vec<f64> = (0..n)
                    .map(|u| gamma[u / per] / (var[u / per] + eps).sqrt())
                    .collect();
                let shift = (0..n)
                    .map(|u| beta[u / per] - mean[u / per] * scale[u])
                    .collect();
                Stage::Diagonal { scale, shift }
            }
            LayerSpec::AvgPool2d { .. }
            | LayerSpec::AdaptiveAvgPool2d { .. }
            | LayerSpec::Permute { .. } => match probe(model, i, units(in_shape))? {
                Some(stage) => stage,
                None => return Ok(None),
            },
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
            } => {
                if *in_features == 0 || *out_features == 0 {
                    return Ok(None);
                }
                let key = format!("{i}.weight");
                let Some(w) = model.param(&key) else {
                    bail!("layer {i}: no parameter {key}");
                };
                let w = w.data();
                ensure!(
                    w.len() == in_features * out_features,
                    "layer {i}: weight of {} values for {in_features}→{out_features}",
                    w.len()
                );
                // Wᵀ in f64, written in order (reads striding through W cost less than
                // writes).
                let mut wt = Vec::with_capacity(w.len());
                for k in 0..*in_features {
                    wt.extend((0..*out_features).map(|o| w[o * in_features + k].to_f64()));
                }
                Stage::Linear {
                    inp: *in_features,
                    out: *out_features,
                    wt,
                    bias: if *bias {
                        param("bias")?
                    } else {
                        vec![0.0; *out_features]
                    },
                }
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
                let ([h, w], [oh, ow]) = match (in_shape, out_shape.as_slice()) {
                    ([_, h, w], [_, oh, ow]) => ([*h, *w], [*oh, *ow]),
                    _ => return Ok(None),
                };
                Stage::Conv(conv(
                    [*in_channels, h, w],
                    [*out_channels, oh, ow],
                    *kernel_size,
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                    param("weight")?,
                    if *bias { Some(param("bias")?) } else { None },
                )?)
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
                let (l, ol) = match (in_shape, out_shape.as_slice()) {
                    ([_, l], [_, ol]) => (*l, *ol),
                    _ => return Ok(None),
                };
                Stage::Conv(conv(
                    [*in_channels, 1, l],
                    [*out_channels, 1, ol],
                    [1, *kernel_size],
                    [1, *stride],
                    [0, *padding],
                    [1, *dilation],
                    *groups,
                    param("weight")?,
                    if *bias { Some(param("bias")?) } else { None },
                )?)
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => match (in_shape, out_shape.as_slice()) {
                ([c, h, w], [_, oh, ow]) => Stage::MaxPool(windows(
                    [*c, *h, *w],
                    [*oh, *ow],
                    *kernel_size,
                    *stride,
                    *padding,
                    *dilation,
                )),
                _ => return Ok(None),
            },
            LayerSpec::MaxPool1d {
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => match (in_shape, out_shape.as_slice()) {
                ([c, l], [_, ol]) => Stage::MaxPool(windows(
                    [*c, 1, *l],
                    [1, *ol],
                    [1, *kernel_size],
                    [1, *stride],
                    [0, *padding],
                    [1, *dilation],
                )),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        out.push(stage);
    }
    Ok(Some(out))
}

/// Largest Jacobian [`probe`] builds, in entries (inputs × (inputs + outputs)).
const MAX_PROBE: usize = 1 << 22;

/// Layer `i` (linear, with `units_in` inputs) as the columns of its Jacobian, found by
/// running it on the unit vectors and on zeros (the bias); `None` if it is too big to probe.
fn probe<T: Float>(model: &Model<T>, i: usize, units_in: usize) -> Result<Option<Stage>> {
    let shapes = model.layer_shapes()?;
    let units_out: usize = shapes[i].iter().product();
    if units_in.saturating_mul(units_in.saturating_add(units_out)) > MAX_PROBE {
        return Ok(None);
    }
    let in_shape = if i == 0 {
        model.input_shape().to_vec()
    } else {
        shapes[i - 1].clone()
    };
    let mut shape = vec![units_in + 1];
    shape.extend(&in_shape);
    let mut eye = vec![T::ZERO; (units_in + 1) * units_in];
    for u in 0..units_in {
        eye[(u + 1) * units_in + u] = T::ONE;
    }
    let y = model.layer_forward(i, &Tensor::new(shape, eye)?)?;
    let y = y.data();
    let bias: Vec<f64> = y[..units_out].iter().map(|v| v.to_f64()).collect();
    let (mut start, mut rows, mut vals) = (vec![0], Vec::new(), Vec::new());
    for u in 0..units_in {
        let col = &y[(u + 1) * units_out..(u + 2) * units_out];
        for (v, (&yv, &b)) in col.iter().zip(&bias).enumerate() {
            let w = yv.to_f64() - b;
            if w != 0.0 {
                rows.push(v as u32);
                vals.push(w);
            }
        }
        start.push(rows.len());
    }
    Ok(Some(Stage::Sparse {
        start,
        rows,
        vals,
        bias,
    }))
}

#[allow(clippy::too_many_arguments)]
fn conv(
    [c_in, h, w]: [usize; 3],
    [c_out, oh, ow]: [usize; 3],
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    weight: Vec<f64>,
    bias: Option<Vec<f64>>,
) -> Result<Conv> {
    ensure!(
        groups >= 1 && c_in % groups == 0 && c_out % groups == 0,
        "convolution: {groups} groups for {c_in} → {c_out} channels"
    );
    let in_per_group = c_in / groups;
    ensure!(
        weight.len() == c_out * in_per_group * kh * kw,
        "convolution: weight of {} values for {c_out}×{in_per_group}×{kh}×{kw}",
        weight.len()
    );
    let bias = bias.unwrap_or_else(|| vec![0.0; c_out]);
    ensure!(
        bias.len() == c_out,
        "convolution: bias of {} values",
        bias.len()
    );
    Ok(Conv {
        in_plane: h * w,
        in_w: w,
        out_plane: oh * ow,
        out_w: ow,
        in_per_group,
        out_per_group: c_out / groups,
        kernel: kh * kw,
        kw,
        weight_mag: weight.iter().map(|w| w.abs()).collect(),
        weight,
        bias,
        rows_of: taps(h, oh, kh, stride[0], padding[0], dilation[0]),
        cols_of: taps(w, ow, kw, stride[1], padding[1], dilation[1]),
        plain: (stride == [1, 1] && dilation == [1, 1])
            .then_some([h, oh, kh, padding[0], padding[1]]),
    })
}

fn windows(
    [c, h, w]: [usize; 3],
    [oh, ow]: [usize; 2],
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Windows {
    let mut start = vec![0];
    let mut cand = Vec::new();
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                for i in 0..kh {
                    let y = (oy * stride[0] + i * dilation[0]) as isize - padding[0] as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    for j in 0..kw {
                        let x = (ox * stride[1] + j * dilation[1]) as isize - padding[1] as isize;
                        if x < 0 || x >= w as isize {
                            continue;
                        }
                        cand.push(((ch * h + y as usize) * w + x as usize) as u32);
                    }
                }
                start.push(cand.len());
            }
        }
    }
    let mut counts = vec![0usize; c * h * w + 1];
    for &u in &cand {
        counts[u as usize + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let of_start = counts.clone();
    let mut of = vec![0u32; cand.len()];
    let mut fill = counts;
    for win in 0..start.len() - 1 {
        for &u in &cand[start[win]..start[win + 1]] {
            of[fill[u as usize]] = win as u32;
            fill[u as usize] += 1;
        }
    }
    let most = of_start.windows(2).map(|r| r[1] - r[0]).max().unwrap_or(0);
    Windows {
        start,
        cand,
        of_start,
        of,
        most,
    }
}
