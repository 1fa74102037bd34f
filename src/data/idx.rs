//! IDX files (the MNIST format), optionally gzipped: header validated (magic, unsigned
//! byte elements, dimensions) and sizes checked before anything is allocated.

use crate::io::read_file;
use crate::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// The largest IDX payload accepted (1 GiB).
const MAX_BYTES: usize = 1 << 30;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with `ndim` dimensions (`.gz` files are
/// decompressed). Errors name the file.
pub fn read_idx(path: &Path, ndim: usize) -> Result<IdxArray> {
    let ctx = |msg: String| Error::new(format!("{}: {msg}", path.display()));
    let raw = read_file(path, "IDX file")?;
    let gz = raw.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    let mut head = [0u8; 4];
    reader
        .read_exact(&mut head)
        .map_err(|e| ctx(format!("cannot read the IDX header: {e}")))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(ctx(format!(
            "not an IDX file (magic {:02x}{:02x}{:02x}{:02x})",
            head[0], head[1], head[2], head[3]
        )));
    }
    if head[2] != 0x08 {
        return Err(ctx(format!(
            "IDX element type 0x{:02x} is not unsigned byte (0x08)",
            head[2]
        )));
    }
    if head[3] as usize != ndim {
        return Err(ctx(format!(
            "IDX file has {} dimensions, expected {ndim}",
            head[3]
        )));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        reader
            .read_exact(&mut d)
            .map_err(|e| ctx(format!("truncated IDX header: {e}")))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_BYTES)
        .ok_or_else(|| ctx(format!("IDX dimensions {dims:?} are too large")))?;
    if !gz && raw.len() != 4 + 4 * ndim + n {
        return Err(ctx(format!(
            "IDX dimensions {dims:?} need {} bytes, the file has {}",
            4 + 4 * ndim + n,
            raw.len()
        )));
    }
    let mut data = Vec::with_capacity(n.min(raw.len().saturating_mul(64)));
    reader
        .by_ref()
        .take(n as u64)
        .read_to_end(&mut data)
        .map_err(|e| ctx(format!("cannot decompress: {e}")))?;
    if data.len() != n {
        return Err(ctx(format!(
            "truncated: IDX dimensions {dims:?} need {n} bytes of data, found {}",
            data.len()
        )));
    }
    let mut extra = [0u8; 1];
    if matches!(reader.read(&mut extra), Ok(1)) {
        return Err(ctx(format!(
            "unexpected bytes after the {n} bytes of data for dimensions {dims:?}"
        )));
    }
    Ok(IdxArray { dims, data })
}
