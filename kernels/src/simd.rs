//! Running a loop compiled for the widest vector extension the CPU has.
//!
//! mho is built for the baseline of its target (x86-64: SSE2, four f32 lanes), so plain
//! loops over slices vectorize only that wide. [`vectorized`] runs a closure inside a
//! function compiled with AVX-512F (or AVX2 + FMA) enabled, chosen at run time; the
//! closure, inlined there, is vectorized sixteen (or eight) lanes wide.
//!
//! Results do not change: the compiler never reassociates or contracts floating-point
//! operations (no fast-math), so a loop computes the same operations in the same order
//! per element whatever the vector width. `kernels/tests/simd.rs` runs the kernels that
//! use it at every width the CPU has and requires bit-identical results.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::gemm::Kernel;

/// A width forced by [`force_width`] (index into [`VectorWidth::ALL`] + 1), or 0.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Makes every later [`vectorized`] call in the process use `width` (the baseline where
/// the CPU lacks it), or the widest available again with `None`. For tests that compare
/// the widths; not for concurrent use with other work.
#[doc(hidden)]
pub fn force_width(width: Option<VectorWidth>) {
    let code = width.map_or(0, |w| {
        1 + VectorWidth::ALL
            .iter()
            .position(|&v| v == w)
            .expect("a width of ALL") as u8
    });
    FORCED.store(code, Ordering::Relaxed);
}

/// The width [`vectorized`] uses now.
pub fn current_width() -> VectorWidth {
    match FORCED.load(Ordering::Relaxed) {
        0 => VectorWidth::best(),
        code => {
            let width = VectorWidth::ALL[usize::from(code - 1)];
            if width.is_available() {
                width
            } else {
                VectorWidth::Baseline
            }
        }
    }
}

/// The widest vector extension [`vectorized`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorWidth {
    /// AVX-512F (x86_64), when the CPU has it.
    Avx512,
    /// AVX2 + FMA (x86_64), when the CPU has them.
    Avx2,
    /// The build's baseline (SSE2 on x86_64).
    Baseline,
}

impl VectorWidth {
    /// Every width, widest first.
    pub const ALL: [VectorWidth; 3] = [
        VectorWidth::Avx512,
        VectorWidth::Avx2,
        VectorWidth::Baseline,
    ];

    /// Whether this CPU can run code of this width.
    pub fn is_available(self) -> bool {
        match self {
            VectorWidth::Avx512 => Kernel::Avx512.is_available(),
            VectorWidth::Avx2 => Kernel::Avx2.is_available(),
            VectorWidth::Baseline => true,
        }
    }

    /// The widest width this CPU has.
    pub fn best() -> VectorWidth {
        Self::ALL
            .into_iter()
            .find(|w| w.is_available())
            .unwrap_or(VectorWidth::Baseline)
    }
}

/// Runs `f` compiled for the widest vector extension this CPU has (see the module
/// documentation). Use it around a hot loop, not around a call the compiler will not
/// inline: only code inlined into `f` gets the wider vectors.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    vectorized_with(current_width(), f)
}

/// [`vectorized`] at a given width (the baseline if the CPU lacks it): for tests that
/// compare the widths.
#[inline(always)]
pub fn vectorized_with<R>(width: VectorWidth, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if width == VectorWidth::Avx512 && width.is_available() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (AVX-512F detected at run time
            // just above; every CPU with it has the other two), the only requirement of
            // the target features; `run_avx512` is otherwise safe.
            return unsafe { run_avx512(f) };
        }
        if width == VectorWidth::Avx2 && width.is_available() {
            // SAFETY: the CPU has AVX2 and FMA (detected at run time just above).
            return unsafe { run_avx2(f) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = width;
    f()
}

/// Calls `f` with AVX-512F, AVX2 and FMA enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Calls `f` with AVX2 and FMA enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
