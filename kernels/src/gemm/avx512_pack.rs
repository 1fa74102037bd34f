//! AVX-512 packing for the two layouts that need a transpose: op(A) with contiguous
//! rows (A not transposed) and op(B) with contiguous columns (B transposed). Both go
//! through 16×16 in-register transposes instead of one float at a time. op(A) with
//! contiguous columns (A transposed, as the Winograd convolution's filters are) is
//! copied a column at a time by one masked load and store.

use std::arch::x86_64::*;

/// Floats per zmm register.
const LANES: usize = 16;

/// The mask of the first `lanes` ≤ 16 lanes.
fn first(lanes: usize) -> __mmask16 {
    ((1u32 << lanes) - 1) as __mmask16
}

/// Transposes 16 rows of 16 floats.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; LANES]) -> [__m512; LANES] {
    // 32-bit, then 64-bit interleaves within 128-bit lanes: u[4g + x] holds, in lane L,
    // column 4L + x of rows 4g..4g+4.
    let t: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    let u: [__m512; LANES] = std::array::from_fn(|i| {
        let (g, x) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + x / 2], t[4 * g + 2 + x / 2]);
        if x % 2 == 0 {
            _mm512_shuffle_ps::<0x44>(a, b)
        } else {
            _mm512_shuffle_ps::<0xEE>(a, b)
        }
    });
    // Gather lane L of u[x], u[4 + x], u[8 + x], u[12 + x] into row 4L + x.
    let v: [__m512; 8] = std::array::from_fn(|i| {
        let (x, half) = (i % 4, i / 4);
        _mm512_shuffle_f32x4::<0x88>(u[8 * half + x], u[8 * half + 4 + x])
    });
    let w: [__m512; 8] = std::array::from_fn(|i| {
        let (x, half) = (i % 4, i / 4);
        _mm512_shuffle_f32x4::<0xDD>(u[8 * half + x], u[8 * half + 4 + x])
    });
    std::array::from_fn(|row| {
        let (lane, x) = (row / 4, row % 4);
        // v[x] / w[x] hold lanes (0, 2) / (1, 3) of u[x], u[4 + x]; v[4 + x] / w[4 + x]
        // the same of u[8 + x], u[12 + x].
        let (a, b) = if lane % 2 == 0 {
            (v[x], v[4 + x])
        } else {
            (w[x], w[4 + x])
        };
        if lane < 2 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(a, b)
        }
    })
}

/// dst[p·ld + i] ← src[i·stride + p] for p < len and i < width, reading only rows
/// i < rows (the others are zero).
///
/// # Safety
/// The CPU has AVX-512F; src[i·stride + p] is readable for i < rows ≤ 16, p < len;
/// dst[p·ld + i] is writable for p < len, i < width ≤ 16, and overlaps no source.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose_into(
    dst: *mut f32,
    ld: usize,
    width: usize,
    src: *const f32,
    stride: isize,
    rows: usize,
    len: usize,
) {
    let store = first(width);
    for p0 in (0..len).step_by(LANES) {
        let load = first(LANES.min(len - p0));
        let block: [__m512; LANES] = std::array::from_fn(|i| {
            if i < rows {
                // SAFETY: row i < rows, columns p0.. p0 + popcount(load) ≤ len; masked
                // lanes are not read.
                unsafe { _mm512_maskz_loadu_ps(load, src.offset(i as isize * stride).add(p0)) }
            } else {
                _mm512_setzero_ps()
            }
        });
        let columns = transpose16(block);
        for (q, column) in columns.iter().enumerate().take(len - p0) {
            // SAFETY: row p0 + q < len of dst, lanes < width (masked store).
            unsafe { _mm512_mask_storeu_ps(dst.add((p0 + q) * ld), store, *column) };
        }
    }
}

/// dst[p·ld + i] ← src[p·stride + i] for p < len and i < width, reading only i < rows
/// (the others are zero): `len` columns of `rows` ≤ 16 contiguous floats, each copied
/// by one masked load and one masked store.
///
/// # Safety
/// The CPU has AVX-512F; src[p·stride + i] is readable for p < len, i < rows ≤ width;
/// dst[p·ld + i] is writable for p < len, i < width ≤ 16, and overlaps no source.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn copy_columns(
    dst: *mut f32,
    ld: usize,
    width: usize,
    src: *const f32,
    stride: isize,
    rows: usize,
    len: usize,
) {
    let (load, store) = (first(rows), first(width));
    for p in 0..len {
        // SAFETY: the lanes i < rows of column p are readable, the lanes i < width of
        // dst row p writable (contract); masked-off lanes are not accessed.
        unsafe {
            let column = _mm512_maskz_loadu_ps(load, src.offset(p as isize * stride));
            _mm512_mask_storeu_ps(dst.add(p * ld), store, column);
        }
    }
}
