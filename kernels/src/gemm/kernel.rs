//! Choosing the single-threaded f32 gemm: AVX-512, AVX2 + FMA (both detected at run
//! time, once) or matrixmultiply's sgemm; and the raw entry point behind
//! `f32::gemm_raw`.

use std::sync::OnceLock;

use super::blocked::{self, MicroKernel};
use super::portable::Portable;
use super::RawGemm;

/// A single-threaded f32 gemm implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The blocked driver with the 12×32 AVX-512F micro-kernel (x86_64).
    Avx512,
    /// The blocked driver with the 6×16 AVX2 + FMA micro-kernel (x86_64).
    Avx2,
    /// The blocked driver with the plain-Rust 4×16 micro-kernel (any CPU).
    Portable,
    /// matrixmultiply's sgemm (any CPU).
    MatrixMultiply,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 4] = [
        Kernel::Avx512,
        Kernel::Avx2,
        Kernel::Portable,
        Kernel::MatrixMultiply,
    ];

    /// Whether this CPU can run the kernel (detected once, then cached).
    pub fn is_available(self) -> bool {
        let [avx512, avx2] = *features();
        match self {
            Kernel::Avx512 => avx512,
            Kernel::Avx2 => avx2,
            Kernel::Portable | Kernel::MatrixMultiply => true,
        }
    }

    /// This kernel as a [`RawGemm`] (falling back to matrixmultiply if unavailable).
    pub(crate) fn raw(self) -> RawGemm<f32> {
        match self {
            Kernel::Avx512 => sgemm_raw_const::<0>,
            Kernel::Avx2 => sgemm_raw_const::<1>,
            Kernel::Portable => sgemm_raw_const::<2>,
            Kernel::MatrixMultiply => sgemm_raw_const::<3>,
        }
    }

    /// The kernel [`super::gemm`] uses for f32: AVX-512 if available, else AVX2 + FMA,
    /// else matrixmultiply.
    pub fn best() -> Kernel {
        if Kernel::Avx512.is_available() {
            Kernel::Avx512
        } else if Kernel::Avx2.is_available() {
            Kernel::Avx2
        } else {
            Kernel::MatrixMultiply
        }
    }
}

/// [AVX-512F, AVX2 + FMA] support of this CPU.
fn features() -> &'static [bool; 2] {
    static FEATURES: OnceLock<[bool; 2]> = OnceLock::new();
    FEATURES.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            [
                is_x86_feature_detected!("avx512f"),
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            ]
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            [false, false]
        }
    })
}

/// C ← α·A·B + β·C on raw strided f32 matrices with `kernel`, on this thread: A[i][p] at
/// `a + i·rsa + p·csa`, B[p][j] at `b + p·rsb + j·csb`, C[i][j] at `c + i·rsc + j·csc`.
/// β = 0 never reads C. An unavailable kernel, or C with columns not contiguous
/// (`csc ≠ 1`), falls back to matrixmultiply.
///
/// # Safety
/// Every element addressed by the sizes and strides lies inside the allocations behind
/// the pointers; `c` does not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_raw(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    /// The blocked driver with kernel `K` if it is available.
    macro_rules! blocked {
        ($kernel:ty) => {
            if csc == 1 && <$kernel>::available() {
                // SAFETY: forwarded contract (with csc = 1), and the kernel is available.
                unsafe {
                    blocked::gemm::<$kernel>(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc)
                };
                return;
            }
        };
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => blocked!(super::avx512::Avx512),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => blocked!(super::avx2::Avx2),
        Kernel::Portable => blocked!(Portable),
        _ => {}
    }
    // SAFETY: forwarded contract.
    unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
}

/// [`sgemm_raw`] with `Kernel::ALL[KERNEL]`.
///
/// # Safety
/// As [`sgemm_raw`].
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw_const<const KERNEL: usize>(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let kernel = Kernel::ALL[KERNEL];
    // SAFETY: forwarded contract.
    unsafe {
        sgemm_raw(
            kernel, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc,
        )
    }
}

/// [`sgemm_raw`] with [`Kernel::best`]: the f32 implementation of `Float::gemm_raw`.
///
/// # Safety
/// As [`sgemm_raw`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_raw_best(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let kernel = Kernel::best();
    // SAFETY: forwarded contract.
    unsafe {
        sgemm_raw(
            kernel, m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc,
        )
    }
}
