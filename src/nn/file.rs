//! Model files: one `.safetensors` file, tensors named as PyTorch's `nn.Sequential`
//! state_dict names them, the architecture JSON in the metadata key `"architecture"`.
//!
//! Every size in the file is checked (header length, offsets, byte lengths, shapes
//! against the architecture) before the `safetensors` crate reads it, and every problem
//! is a one-line error naming the file and the tensor, field or layer.

use super::arch::Architecture;
use super::model::{DType, Model, Param};
use crate::io::{read_file, write_atomic};
use crate::tensor::Tensor;
use crate::{Error, Float, Result};
use safetensors::tensor::Dtype as StDtype;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The largest header accepted (the safetensors crate's own limit).
pub const MAX_HEADER: u64 = 100_000_000;

/// The metadata key holding the architecture JSON.
pub const ARCH_KEY: &str = "architecture";

/// A tensor's entry in the header, checked.
struct Entry {
    dtype: Option<DType>,
    dtype_name: String,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

fn parse_dtype(s: &str) -> Option<DType> {
    match s {
        "F32" => Some(DType::F32),
        "F64" => Some(DType::F64),
        "F16" => Some(DType::F16),
        "BF16" => Some(DType::BF16),
        _ => None,
    }
}

fn st_dtype_size(s: &str) -> Option<usize> {
    Some(match s {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Parses and checks the header: (architecture JSON text, entries by name).
fn check_header(bytes: &[u8]) -> Result<(String, BTreeMap<String, Entry>)> {
    let len = bytes.len() as u64;
    if len < 8 {
        return Err(Error::new(format!(
            "truncated: {len} bytes, shorter than the 8-byte header length"
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(Error::new(format!(
            "header length {n} is larger than the limit of {MAX_HEADER} bytes"
        )));
    }
    if 8 + n > len {
        return Err(Error::new(format!(
            "header length {n} runs past the end of the file ({len} bytes)"
        )));
    }
    let data_start = 8 + n as usize;
    let header: Value = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| Error::new(format!("header is not valid JSON: {e}")))?;
    let Some(map) = header.as_object() else {
        return Err(Error::new("header is not a JSON object"));
    };
    let data_len = bytes.len() - data_start;
    let mut entries = BTreeMap::new();
    let mut arch_text = None;
    for (name, v) in map {
        if name == "__metadata__" {
            let Some(meta) = v.as_object() else {
                return Err(Error::new("header: \"__metadata__\" is not an object"));
            };
            match meta.get(ARCH_KEY) {
                Some(Value::String(s)) => arch_text = Some(s.clone()),
                Some(_) => {
                    return Err(Error::new(format!(
                        "metadata \"{ARCH_KEY}\" is not a string"
                    )))
                }
                None => {}
            }
            continue;
        }
        let bad = |msg: &str| Error::new(format!("tensor \"{name}\": {msg}"));
        let obj = v
            .as_object()
            .ok_or_else(|| bad("header entry is not an object"))?;
        let dtype_name = obj
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing \"dtype\""))?
            .to_string();
        let size = st_dtype_size(&dtype_name)
            .ok_or_else(|| bad(&format!("unknown dtype \"{dtype_name}\"")))?;
        let shape_v = obj
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing \"shape\""))?;
        if shape_v.len() > 16 {
            return Err(bad(&format!("{} dimensions is too many", shape_v.len())));
        }
        let mut shape = Vec::with_capacity(shape_v.len());
        for d in shape_v {
            let d = d
                .as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| bad(&format!("shape entry {d} is not a size")))?;
            shape.push(d);
        }
        let offs = obj
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bad("missing \"data_offsets\" [begin, end]"))?;
        let (Some(begin), Some(end)) = (offs[0].as_u64(), offs[1].as_u64()) else {
            return Err(bad("data_offsets are not sizes"));
        };
        if begin > end {
            return Err(bad(&format!(
                "data_offsets [{begin}, {end}] end before they begin"
            )));
        }
        if end > data_len as u64 {
            return Err(bad(&format!(
                "data_offsets [{begin}, {end}] run past the end of the data ({data_len} bytes)"
            )));
        }
        let (begin, end) = (begin as usize, end as usize);
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(size));
        if numel != Some(end - begin) {
            return Err(bad(&format!(
                "shape {shape:?} of {dtype_name} needs {} bytes, data_offsets give {}",
                numel.map_or("too many".to_string(), |n| n.to_string()),
                end - begin
            )));
        }
        entries.insert(
            name.clone(),
            Entry {
                dtype: parse_dtype(&dtype_name),
                dtype_name,
                shape,
                begin,
                end,
            },
        );
    }
    let arch_text = arch_text.ok_or_else(|| {
        Error::new(format!(
            "no \"{ARCH_KEY}\" in the metadata (not an mho model file; see docs/model-format.md)"
        ))
    })?;
    Ok((arch_text, entries))
}

/// Decodes little-endian bytes of `dtype` into `T`, or names the first non-finite value.
fn decode<T: Float>(bytes: &[u8], dtype: DType) -> std::result::Result<Vec<T>, (usize, f64)> {
    let vals: Vec<f64> = match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")) as f64)
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
    };
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        return Err((i, vals[i]));
    }
    // f32 files stay exact for T = f32 (f32 → f64 → f32 is the identity).
    Ok(vals.into_iter().map(T::from_f64).collect())
}

/// Encodes values as little-endian bytes of `dtype` (rounding to nearest).
fn encode<T: Float>(vals: &[T], dtype: DType) -> Vec<u8> {
    let mut out = Vec::with_capacity(vals.len() * dtype.size());
    for &v in vals {
        match dtype {
            DType::F32 => out.extend_from_slice(&v.to_f32().to_le_bytes()),
            DType::F64 => out.extend_from_slice(&v.to_f64().to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f64(v.to_f64()).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f64(v.to_f64()).to_le_bytes()),
        }
    }
    out
}

fn from_bytes<T: Float>(bytes: &[u8]) -> Result<Model<T>> {
    let (arch_text, mut entries) = check_header(bytes)?;
    let arch = Architecture::from_json(&arch_text)
        .map_err(|e| e.context(format_args!("metadata \"{ARCH_KEY}\"")))?;
    let shapes = arch.layer_shapes()?;
    // Every tensor the architecture needs, present with a float dtype and its shape.
    let mut wanted = Vec::new();
    for (i, spec) in arch.layers.iter().enumerate() {
        for (suffix, shape) in spec.param_shapes() {
            let name = format!("{i}.{suffix}");
            let Some(e) = entries.remove(&name) else {
                return Err(Error::new(format!(
                    "tensor \"{name}\" is missing (layer {i} {} needs {suffix} of shape {shape:?})",
                    spec.type_name()
                )));
            };
            let Some(dtype) = e.dtype else {
                return Err(Error::new(format!(
                    "tensor \"{name}\" has dtype {}; expected F32, F64, F16 or BF16",
                    e.dtype_name
                )));
            };
            if e.shape != shape {
                return Err(Error::new(format!(
                    "tensor \"{name}\" has shape {:?}, layer {i} ({}) needs {shape:?}",
                    e.shape,
                    spec.type_name()
                )));
            }
            wanted.push((i, suffix, name, shape, dtype, e.end - e.begin));
        }
    }
    // Left-overs: BatchNorm's num_batches_tracked is ignored, anything else is an error.
    for name in entries.keys() {
        let ok = name
            .strip_suffix(".num_batches_tracked")
            .and_then(|l| l.parse::<usize>().ok())
            .and_then(|l| arch.layers.get(l))
            .is_some_and(|s| {
                matches!(
                    s,
                    super::arch::LayerSpec::BatchNorm1d { .. }
                        | super::arch::LayerSpec::BatchNorm2d { .. }
                )
            });
        if !ok {
            return Err(Error::new(format!(
                "tensor \"{name}\" is not a parameter of the architecture"
            )));
        }
    }
    // The safetensors crate re-validates the layout (contiguous offsets, exact length).
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        Error::new(match e {
            safetensors::SafeTensorError::InvalidOffset(name) => {
                format!("tensor \"{name}\": data_offsets leave a gap or overlap another tensor")
            }
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                "the data section is longer than the tensors in the header".to_string()
            }
            other => format!("invalid safetensors layout: {other:?}"),
        })
    })?;
    let mut params: Vec<Vec<Param<T>>> = (0..arch.layers.len()).map(|_| Vec::new()).collect();
    for (i, suffix, name, shape, dtype, len) in wanted {
        let view = st
            .tensor(&name)
            .map_err(|err| Error::new(format!("tensor \"{name}\": {err:?}")))?;
        let raw = view.data();
        if raw.len() != len {
            return Err(Error::new(format!(
                "tensor \"{name}\": inconsistent data length"
            )));
        }
        let vals = decode::<T>(raw, dtype).map_err(|(k, v)| {
            Error::new(format!(
                "tensor \"{name}\": element {k} is {v}; parameters must be finite"
            ))
        })?;
        params[i].push(Param {
            suffix,
            value: Tensor::new(shape, vals)?,
            dtype,
            raw: Some(Arc::from(raw)),
        });
    }
    Ok(Model {
        arch,
        shapes,
        params,
    })
}

/// A tensor to serialise: dtype, shape and little-endian bytes.
struct Out<'a> {
    dtype: StDtype,
    shape: Vec<usize>,
    bytes: std::borrow::Cow<'a, [u8]>,
}

impl safetensors::View for &Out<'_> {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

impl<T: Float> Model<T> {
    /// Loads a model file; parameters stored as F32, F64, F16 or BF16 are converted to `T`.
    /// Errors are one line naming the file and the tensor, field or layer at fault.
    pub fn load(path: &Path) -> Result<Model<T>> {
        let bytes = read_file(path, "model")?;
        from_bytes(&bytes).map_err(|e| e.context(format_args!("model {}", path.display())))
    }

    /// Reads a model from the bytes of a model file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Model<T>> {
        from_bytes(bytes)
    }

    /// The bytes of the model file: each parameter in the dtype it was loaded as (F32
    /// for models made by mho), bit-identical to the loaded bytes when unchanged.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut outs = Vec::new();
        for (i, layer) in self.params.iter().enumerate() {
            for p in layer {
                let bytes = match &p.raw {
                    Some(raw) => std::borrow::Cow::Borrowed(&raw[..]),
                    None => std::borrow::Cow::Owned(encode(p.value.data(), p.dtype)),
                };
                let dtype = match p.dtype {
                    DType::F32 => StDtype::F32,
                    DType::F64 => StDtype::F64,
                    DType::F16 => StDtype::F16,
                    DType::BF16 => StDtype::BF16,
                };
                outs.push((
                    format!("{i}.{}", p.suffix),
                    Out {
                        dtype,
                        shape: p.value.shape().to_vec(),
                        bytes,
                    },
                ));
            }
        }
        let meta: HashMap<String, String> = [(ARCH_KEY.to_string(), self.arch.to_json())]
            .into_iter()
            .collect();
        safetensors::tensor::serialize(outs.iter().map(|(n, o)| (n.as_str(), o)), &Some(meta))
            .map_err(|e| Error::new(format!("cannot serialise the model: {e:?}")))
    }

    /// Saves the model file atomically (a temporary file in the same directory, then a
    /// rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self
            .to_safetensors()
            .map_err(|e| e.context(format_args!("model {}", path.display())))?;
        write_atomic(path, &bytes)
    }
}
