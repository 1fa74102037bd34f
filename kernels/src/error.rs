//! The kernels' error type: invalid geometry or mismatched buffer sizes.

use std::fmt;

/// A kernel refused its arguments; the message names the kernel and the shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// Builds a `KernelError` from a format string.
#[macro_export]
macro_rules! kernel_err {
    ($($arg:tt)*) => { $crate::KernelError(format!($($arg)*)) };
}
