//! Writing output files atomically: a temporary file in the same directory, renamed over
//! the destination once complete, so a failed run never leaves a half-written file.

use crate::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::new(format!("{}: not a file name", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// Writes `bytes` to `path` atomically (temporary file + rename). Errors name the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.is_dir() {
        return Err(Error::new(format!("{}: is a directory", path.display())));
    }
    let tmp = temp_path(path)?;
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::new(format!("{}: cannot write: {e}", path.display())));
    }
    Ok(())
}

/// Reads a whole file, with errors naming it (missing file, directory, unreadable).
pub fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(format!(
                "{what} {}: no such file",
                path.display()
            )))
        }
        Err(e) => {
            return Err(Error::new(format!(
                "{what} {}: cannot read: {e}",
                path.display()
            )))
        }
        Ok(m) if m.is_dir() => {
            return Err(Error::new(format!(
                "{what} {}: is a directory, not a file",
                path.display()
            )))
        }
        Ok(_) => {}
    }
    fs::read(path).map_err(|e| Error::new(format!("{what} {}: cannot read: {e}", path.display())))
}
