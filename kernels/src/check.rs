//! Argument checks shared by the kernels: slice lengths against geometry.

use crate::KernelError;

/// The product of `dims`, or an error naming the kernel when it overflows `usize`.
pub(crate) fn checked_product(
    kernel: &str,
    what: &str,
    dims: &[usize],
) -> Result<usize, KernelError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            crate::kernel_err!("{kernel}: {what} of shape {} overflows usize", shape(dims))
        })
}

/// Checks that a slice of `got` elements holds exactly a tensor of shape `dims`.
///
/// The message reads e.g. "conv2d: input has 100 elements, geometry needs 2x3x8x8=384".
pub(crate) fn check_len(
    kernel: &str,
    what: &str,
    got: usize,
    dims: &[usize],
) -> Result<(), KernelError> {
    let want = checked_product(kernel, what, dims)?;
    if got == want {
        Ok(())
    } else {
        Err(crate::kernel_err!(
            "{kernel}: {what} has {got} elements, geometry needs {}={want}",
            shape(dims)
        ))
    }
}

/// A shape written as "2x3x8x8".
pub(crate) fn shape(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    parts.join("x")
}

/// Fails with "`kernel`: `name` must be at least 1" when `value` is zero.
pub(crate) fn check_positive(kernel: &str, name: &str, value: usize) -> Result<(), KernelError> {
    if value == 0 {
        Err(crate::kernel_err!(
            "{kernel}: {name} must be at least 1, got 0"
        ))
    } else {
        Ok(())
    }
}

/// How many rayon threads the current pool has.
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}
