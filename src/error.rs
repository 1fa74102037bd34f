//! mho's error type: one line that names what was wrong and where.

use std::fmt;

/// An error with a one-line message naming the op, file, argument or field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// Builds an error from any message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// Prefixes the message with context, e.g. the file or layer it concerns.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error(format!("{ctx}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<mho_kernels::KernelError> for Error {
    fn from(e: mho_kernels::KernelError) -> Self {
        Error(e.0)
    }
}

/// mho's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns early with an [`Error`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error(format!($($arg)*))) };
}

/// Returns early with an [`Error`] when the condition is false.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { $crate::bail!($($arg)*); } };
}
