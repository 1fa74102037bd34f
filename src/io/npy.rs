//! NumPy `.npy` files: reading (format versions 1, 2 and 3; float32, float64, int64,
//! int32; little-endian; C order) and writing (float32 / float64, version 1).
//!
//! Every size in a header is checked against the file length before anything is
//! allocated; every error names the file.

use super::atomic::{read_file, write_atomic};
use crate::tensor::{checked_numel, Tensor};
use crate::{bail, ensure, Error, Float, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The largest header accepted (numpy itself refuses headers above 10 000 bytes by default).
const MAX_HEADER: usize = 1 << 20;

/// The elements of an array, in the file's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f8`.
    F64(Vec<f64>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<i8`.
    I64(Vec<i64>),
}

impl NpyData {
    /// NumPy's name of the element type.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
        }
    }

    /// True for the integer types.
    pub fn is_integer(&self) -> bool {
        matches!(self, NpyData::I32(_) | NpyData::I64(_))
    }
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape (C order).
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: NpyData,
}

/// The parsed header dictionary.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A tiny parser for the Python dict literal of a `.npy` header.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.pos))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = self.peek().ok_or("unexpected end")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a quoted string at byte {}", self.pos));
        }
        self.pos += 1;
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos] != q {
            self.pos += 1;
        }
        if self.pos >= self.s.len() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        self.pos += 1;
        Ok(out)
    }

    fn word(&mut self) -> String {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            let w = self.word();
            // Python 2 era headers may write longs as "3L".
            let w = w.trim_end_matches('L');
            let d: u64 = w
                .parse()
                .map_err(|_| format!("shape entry \"{w}\" is not a non-negative integer"))?;
            if dims.len() >= 32 {
                return Err("shape has more than 32 dimensions".into());
            }
            dims.push(usize::try_from(d).map_err(|_| format!("shape entry {d} is too large"))?);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

fn parse_header(text: &[u8]) -> std::result::Result<Header, String> {
    let mut lx = Lexer { s: text, pos: 0 };
    lx.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if lx.eat(b'}') {
            break;
        }
        let key = lx.string()?;
        lx.expect(b':')?;
        match key.as_str() {
            "descr" => {
                if lx.peek() == Some(b'[') {
                    return Err("structured dtypes are not supported".into());
                }
                descr = Some(lx.string()?);
            }
            "fortran_order" => {
                fortran = Some(match lx.word().as_str() {
                    "True" => true,
                    "False" => false,
                    w => {
                        return Err(format!(
                            "fortran_order: expected True or False, got \"{w}\""
                        ))
                    }
                })
            }
            "shape" => shape = Some(lx.tuple()?),
            other => return Err(format!("unknown header key \"{other}\"")),
        }
        if !lx.eat(b',') {
            lx.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("header has no 'descr'")?,
        fortran_order: fortran.ok_or("header has no 'fortran_order'")?,
        shape: shape.ok_or("header has no 'shape'")?,
    })
}

/// Reads a `.npy` file of float32, float64, int32 or int64 elements.
pub fn read_npy_array(path: &Path) -> Result<NpyArray> {
    let bytes = read_file(path, "array")?;
    parse_npy(&bytes).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    if hlen > MAX_HEADER {
        return Err(format!(
            "header length {hlen} is larger than {MAX_HEADER} bytes"
        ));
    }
    let data_start = start + hlen;
    if data_start > bytes.len() {
        return Err(format!(
            "header length {hlen} runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let header = parse_header(&bytes[start..data_start]).map_err(|e| format!("bad header: {e}"))?;
    if header.fortran_order {
        return Err(
            "fortran_order is True; save the array in C order (np.ascontiguousarray)".into(),
        );
    }
    let (kind, size) = match header.descr.as_str() {
        "<f4" | "=f4" => ("f4", 4),
        "<f8" | "=f8" => ("f8", 8),
        "<i4" | "=i4" => ("i4", 4),
        "<i8" | "=i8" => ("i8", 8),
        d if d.starts_with('>') => {
            return Err(format!(
                "dtype '{d}' is big-endian; only little-endian is supported"
            ))
        }
        d => {
            return Err(format!(
                "dtype '{d}' is not supported (float32, float64, int32 or int64)"
            ))
        }
    };
    let numel = checked_numel(&header.shape).map_err(|e| e.0)?;
    let need = numel
        .checked_mul(size)
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    let have = bytes.len() - data_start;
    if need > have {
        return Err(format!(
            "truncated: shape {:?} needs {need} bytes of data, the file has {have}",
            header.shape
        ));
    }
    if need < have {
        return Err(format!(
            "{} unexpected bytes after the data of shape {:?}",
            have - need,
            header.shape
        ));
    }
    let raw = &bytes[data_start..];
    let data = match kind {
        "f4" => NpyData::F32(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "f8" => NpyData::F64(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        "i4" => NpyData::I32(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => NpyData::I64(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

/// Converts an array to a float tensor. Float arrays must hold only finite values (the
/// error names the file and the first bad element's index); integer arrays are
/// converted exactly when |value| ≤ 2⁵³.
fn to_tensor<T: Float>(path: &Path, arr: NpyArray) -> Result<Tensor<T>> {
    let bad = |i: usize, v: f64| -> Error {
        let idx = unravel(i, &arr.shape);
        Error::new(format!(
            "{}: element {idx:?} is {v}; inputs must be finite",
            path.display()
        ))
    };
    let data: Vec<T> = match &arr.data {
        NpyData::F32(v) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(i, v[i] as f64));
            }
            v.iter().map(|&x| T::from_f32(x)).collect()
        }
        NpyData::F64(v) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(i, v[i]));
            }
            v.iter().map(|&x| T::from_f64(x)).collect()
        }
        NpyData::I32(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        NpyData::I64(v) => {
            if let Some(i) = v.iter().position(|x| x.unsigned_abs() > 1 << 53) {
                bail!(
                    "{}: element {:?} = {} is too large to be an index",
                    path.display(),
                    unravel(i, &arr.shape),
                    v[i]
                );
            }
            v.iter().map(|&x| T::from_f64(x as f64)).collect()
        }
    };
    Tensor::new(arr.shape, data).map_err(|e| e.context(path.display()))
}

/// The multi-index of flat index `i` in a C-order array of `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        if shape[a] > 0 {
            idx[a] = i % shape[a];
            i /= shape[a];
        }
    }
    idx
}

/// Reads a `.npy` file as a float tensor (float or integer elements; floats must be finite).
pub fn read_npy<T: Float>(path: &Path) -> Result<Tensor<T>> {
    let arr = read_npy_array(path)?;
    to_tensor(path, arr)
}

/// Reads a model input: an array shaped `input_shape` (a batch axis is added) or
/// `[N, ...input_shape]`. `tokens` says the model's first layer is an Embedding: then
/// integer arrays (or floats holding whole numbers) are expected; otherwise float32 or
/// float64. Errors name the file and what was wrong.
pub fn read_input<T: Float>(path: &Path, input_shape: &[usize], tokens: bool) -> Result<Tensor<T>> {
    let arr = read_npy_array(path)?;
    if arr.data.is_integer() && !tokens {
        bail!(
            "{}: dtype {} but this model takes float32 or float64 inputs",
            path.display(),
            arr.data.dtype_name()
        );
    }
    let shape = arr.shape.clone();
    let batched = if shape == input_shape {
        let mut s = vec![1];
        s.extend_from_slice(input_shape);
        s
    } else if shape.len() == input_shape.len() + 1 && shape[1..] == *input_shape {
        shape.clone()
    } else {
        bail!(
            "{}: shape {shape:?} does not match the model's input shape {input_shape:?} (or [N, ...] of it)",
            path.display()
        );
    };
    ensure!(
        batched[0] > 0,
        "{}: shape {shape:?} holds no examples",
        path.display()
    );
    let t: Tensor<T> = to_tensor(path, arr)?;
    if tokens {
        if let Some(i) = t.data().iter().position(|v| {
            let f = v.to_f64();
            f < 0.0 || f.fract() != 0.0
        }) {
            bail!(
                "{}: element {:?} = {} is not a token index (a non-negative integer)",
                path.display(),
                unravel(i, &shape),
                t.data()[i]
            );
        }
    }
    t.reshape(&batched)
}

/// The bytes of a version-1 `.npy` file holding `t` (`<f4` for f32, `<f8` for f64).
pub fn npy_bytes<T: Float>(t: &Tensor<T>) -> Vec<u8> {
    let (descr, size) = if T::NAME == "f32" {
        ("<f4", 4)
    } else {
        ("<f8", 8)
    };
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.len() * size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in t.data() {
        if size == 4 {
            out.extend_from_slice(&v.to_f32().to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_f64().to_le_bytes());
        }
    }
    out
}

/// Writes `t` as a `.npy` file (atomically).
pub fn write_npy<T: Float>(path: &Path, t: &Tensor<T>) -> Result<()> {
    write_atomic(path, &npy_bytes(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_bytes() {
        let t = Tensor::<f32>::from_f64(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let b = npy_bytes(&t);
        assert_eq!((b.len() - t.len() * 4) % 64, 0);
        let a = parse_npy(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(t.data().to_vec()));
        let s = Tensor::<f64>::from_f64(&[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let a = parse_npy(&npy_bytes(&s)).unwrap();
        assert_eq!(a.shape, vec![4]);
    }

    #[test]
    fn header_errors() {
        assert!(parse_npy(b"hello").is_err());
        let t = Tensor::<f32>::from_f64(&[2], &[1.0, 2.0]).unwrap();
        let b = npy_bytes(&t);
        assert!(parse_npy(&b[..b.len() - 1])
            .unwrap_err()
            .contains("truncated"));
    }
}
