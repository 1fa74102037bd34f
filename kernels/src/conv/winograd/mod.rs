//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3).
//!
//! Each 2×2 block of outputs (a *tile*) of each channel pair needs 16 multiplications
//! instead of 36: with d the tile's 4×4 input patch and g a 3×3 filter,
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//!
//!      ⎡1  0 −1  0⎤        ⎡1   0   0⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢½   ½   ½⎥    Aᵀ = ⎡1  1  1  0⎤
//!      ⎢0 −1  1  0⎥        ⎢½  −½   ½⎥         ⎣0  1 −1 −1⎦
//!      ⎣0  1  0 −1⎦        ⎣0   0   1⎦
//! ```
//!
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
//! Summed over input channels, the element-wise product becomes 16 independent
//! matrix products, one per position t of the 4×4 transformed tile:
//! M_t (C_out × tiles) = U_t (C_out × C_in) · V_t (C_in × tiles), run by the gemm.
//! The transforms run 16 tiles at a time in AVX-512 registers for f32 ([`avx512`]);
//! [`portable`] does the same arithmetic one tile at a time, for f64, for f32 without
//! AVX-512 (or with a narrower width forced), and as the reference the tests hold the
//! fast path to, bit for bit.
//! The transforms only add, subtract and halve, so the result differs from the direct
//! sum by rounding alone (a few ε of the magnitudes involved; `tests/conv_winograd.rs`
//! holds it to the same tolerance as the im2col path).
//!
//! The input gradient of a 3×3 stride-1 convolution with padding p is itself a 3×3
//! stride-1 convolution of the output gradient, with the filters flipped and their
//! channel axes swapped, and padding 2 − p; it runs through the same code.
//!
//! Images are taken in blocks (several small images, or some tile rows of a large one)
//! whose transformed input and 16 products take about [`BLOCK_BYTES`], so that they
//! stay in the core's L2 cache between the transforms and the gemms.

mod avx512;
mod avx512_narrow;
mod portable;

use super::fast::{for_each_image, Epilogue};
use super::Conv2dGeometry;
use crate::check::threads;
use crate::gemm::gemm_threaded;
use crate::simd::{current_width, VectorWidth};
use crate::{Float, KernelError};

/// Positions of a transformed tile (4×4).
const POSITIONS: usize = 16;

/// Bytes of transformed input and products (16·(C_in + C_out) elements per tile) that
/// one block may take: most of a 2 MiB L2 cache.
pub const BLOCK_BYTES: usize = 3 << 19;

/// Fewest input and output channels for which the Winograd path is taken. With fewer,
/// the gemm's inner dimension (C_in) or its rows (C_out) are too short to run it well:
/// for the CIFAR network's first layer (3 → 32) and its input gradient (32 → 3) the
/// im2col path is faster, while at 16 and more channels Winograd is (docs/benchmarks.md).
/// Channel counts in between were not measured; 16 is not tuned.
pub const MIN_CHANNELS: usize = 16;

/// True when `g` is a 3×3 convolution with stride 1, no dilation, one group and
/// padding at most 2 on each axis: the shapes this module computes.
pub fn supports(g: &Conv2dGeometry) -> bool {
    g.kernel_h == 3
        && g.kernel_w == 3
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.padding[0] <= 2
        && g.padding[1] <= 2
}

/// True when the fast kernels of [`crate::conv`] route `g` here: supported, with at
/// least [`MIN_CHANNELS`] input and output channels, and the transforms' vectorized
/// path available (f32 on a CPU with AVX-512F; elsewhere im2col is faster).
pub fn preferred<T: Float>(g: &Conv2dGeometry) -> bool {
    supports(g) && g.in_channels.min(g.out_channels) >= MIN_CHANNELS && vectorized::<T>()
}

/// Whether the transforms run on [`avx512`] (f32, AVX-512F, and no narrower width
/// forced by [`crate::simd::force_width`]).
fn vectorized<T: Float>() -> bool {
    T::as_f32(&[]).is_some() && current_width() == VectorWidth::Avx512
}

/// y ← conv2d(x, w) + bias by Winograd F(2×2, 3×3), for a geometry that [`supports`]
/// (else an error); layouts as in [`crate::conv::conv2d_forward`].
pub fn forward<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<(), KernelError> {
    forward_then(g, x, w, bias, y, &|_, _| {})
}

/// [`forward`], then `then` on every group of output images right after it is computed
/// (see [`crate::conv::conv2d_forward_then`]).
pub fn forward_then<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    then: Epilogue<'_, T>,
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d (winograd)";
    check(KERNEL, g)?;
    g.check_lens(
        KERNEL,
        ("input", x.len()),
        Some(("weight", w.len())),
        ("output", y.len()),
    )?;
    if let Some(bias) = bias {
        crate::check::check_len(KERNEL, "bias", bias.len(), &[g.out_channels])?;
    }
    let (cout, cin) = (g.out_channels, g.in_channels);
    let u = transform_filters(cout, cin, |k, c, a, b| w[((k * cin + c) * 3 + a) * 3 + b]);
    run(g, x, &u, bias, y, then)
}

/// dx ← ∂⟨dy, conv2d(x, w)⟩/∂x by Winograd F(2×2, 3×3), for a geometry that
/// [`supports`] (else an error); layouts as in [`crate::conv::conv2d_input_grad`].
pub fn input_grad<T: Float>(
    g: &Conv2dGeometry,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_input_grad (winograd)";
    check(KERNEL, g)?;
    g.check_lens(
        KERNEL,
        ("input gradient", dx.len()),
        Some(("weight", w.len())),
        ("output gradient", dy.len()),
    )?;
    // dx[c, i, j] = Σ_k Σ_ab dy[k, i + p − a, j + p − b] · w[k, c, a, b]
    //             = Σ_k Σ_ab dy[k, i − (2 − p) + a, j − (2 − p) + b] · w[k, c, 2 − a, 2 − b].
    let transposed = Conv2dGeometry::new(
        g.batch,
        g.out_channels,
        [g.out_h, g.out_w],
        g.in_channels,
        [3, 3],
        [1, 1],
        [2 - g.padding[0], 2 - g.padding[1]],
        [1, 1],
        1,
    )?;
    debug_assert_eq!((transposed.out_h, transposed.out_w), (g.in_h, g.in_w));
    let (cout, cin) = (g.out_channels, g.in_channels);
    let u = transform_filters(cin, cout, |c, k, a, b| {
        w[((k * cin + c) * 3 + (2 - a)) * 3 + (2 - b)]
    });
    run(&transposed, dy, &u, None, dx, &|_, _| {})
}

/// Refuses geometries this module does not compute.
fn check(kernel: &str, g: &Conv2dGeometry) -> Result<(), KernelError> {
    g.validate(kernel)?;
    if supports(g) {
        Ok(())
    } else {
        Err(crate::kernel_err!(
            "{kernel}: needs a 3×3 kernel, stride 1, dilation 1, one group and padding ≤ 2, got {g:?}"
        ))
    }
}

/// U_t[k][c] = (G g_kc Gᵀ)_t for every output channel k and input channel c, laid out
/// `[16][ins][outs]` (U_t transposed: its gemm packing then copies runs of rows);
/// `tap(k, c, a, b)` reads filter g_kc at row a, column b.
fn transform_filters<T: Float>(
    outs: usize,
    ins: usize,
    tap: impl Fn(usize, usize, usize, usize) -> T,
) -> Vec<T> {
    let half = T::from_f64(0.5);
    // G·v for a 3-vector v.
    let g3 = |v: [T; 3]| {
        [
            v[0],
            half * (v[0] + v[1] + v[2]),
            half * (v[0] - v[1] + v[2]),
            v[2],
        ]
    };
    // First filter by filter into `[outs][ins][16]` (every write the next element), then
    // transposed to `[16][ins][outs]` sixteen output channels at a time.
    let mut by_filter = vec![T::ZERO; POSITIONS * outs * ins];
    for (f, out) in by_filter.chunks_exact_mut(POSITIONS).enumerate() {
        let (k, c) = (f / ins, f % ins);
        // Columns first: gc[b] = G·(g[·][b]), then rows of the 4×3 result.
        let cols: [[T; 4]; 3] =
            std::array::from_fn(|b| g3(std::array::from_fn(|a| tap(k, c, a, b))));
        for (a, out_row) in out.chunks_exact_mut(4).enumerate() {
            out_row.copy_from_slice(&g3([cols[0][a], cols[1][a], cols[2][a]]));
        }
    }
    let mut u = vec![T::ZERO; POSITIONS * outs * ins];
    const KS: usize = 16;
    for c in 0..ins {
        for k0 in (0..outs).step_by(KS) {
            let ks = KS.min(outs - k0);
            for t in 0..POSITIONS {
                let dst = &mut u[(t * ins + c) * outs + k0..][..ks];
                for (kk, d) in dst.iter_mut().enumerate() {
                    *d = by_filter[((k0 + kk) * ins + c) * POSITIONS + t];
                }
            }
        }
    }
    u
}

/// Tile counts and block sizes of a geometry.
///
/// Within a block, tile (row tr, column tx) of the block's image i sits at slot
/// `(i·rows + tr)·across + tx`; a block holds a group of whole images when an image is
/// small (so the gemm's n stays long), else some tile rows of one image.
#[derive(Clone, Copy)]
pub(super) struct Tiles {
    /// Tile columns, ⌈OW/2⌉.
    pub(super) across: usize,
    /// Tile rows, ⌈OH/2⌉.
    pub(super) down: usize,
    /// Tile rows per block.
    block_rows: usize,
    /// Images per block.
    group: usize,
}

/// Slots per block are rounded up to a multiple of this many elements (64 bytes of
/// f32), so that with a 64-byte-aligned buffer every row the gemm reads starts on a
/// cache line. The spare slots of V are zeroed (the gemm reads them: the scratch must
/// not feed it stale values or NaN); their products are never read back.
const ALIGN: usize = 16;

impl Tiles {
    fn of<T>(g: &Conv2dGeometry) -> Self {
        let across = g.out_w.div_ceil(2);
        let down = g.out_h.div_ceil(2);
        let block_tiles =
            BLOCK_BYTES / (POSITIONS * (g.in_channels + g.out_channels) * std::mem::size_of::<T>());
        let most = (block_tiles / across).clamp(1, down);
        // As few blocks as fit, equally tall.
        let block_rows = down.div_ceil(down.div_ceil(most));
        // Whole images: as many as fit, but no more than a thread's share of the batch.
        let group = if block_rows < down {
            1
        } else {
            (block_tiles / (down * across))
                .min(g.batch.div_ceil(threads()))
                .max(1)
        };
        Self {
            across,
            down,
            block_rows,
            group,
        }
    }

    /// Slots of a block of `images` images and `rows` tile rows.
    fn slots(&self, images: usize, rows: usize) -> usize {
        (images * rows * self.across).next_multiple_of(ALIGN)
    }
}

/// Elements left unused after each position's plane of V and of M (one cache line of
/// f32). Without the gap, when a plane's size is a multiple of 4 KiB, the 16 planes an
/// output tile reads (and an input tile writes) all fall in one set of the 12-way L1
/// cache; where a vector holds fewer than 16 tiles (images at most 8 tiles across),
/// each line is then fetched from L2 twice. With it the planes spread over 16 sets:
/// the digits network's 16→32 8×8 layer ran 20–30% faster (docs/benchmarks.md).
const PLANE_GAP: usize = ALIGN;

/// Where a block lies: its images' tile rows `rows`, its slots per channel, and the
/// distance between consecutive positions' planes in V and M.
pub(super) struct Block {
    /// Tile rows of every image of the block.
    pub(super) rows: std::ops::Range<usize>,
    /// Slots per channel (the gemm's n), a multiple of [`ALIGN`].
    pub(super) slots: usize,
    /// Elements from position t's plane of V (`[C_in][slots]`) to position t + 1's:
    /// C_in·slots + [`PLANE_GAP`].
    pub(super) v_plane: usize,
    /// Elements from position t's plane of M (`[C_out][slots]`) to position t + 1's:
    /// C_out·slots + [`PLANE_GAP`].
    pub(super) m_plane: usize,
}

impl Block {
    /// Slot of tile (tr, tx) of the block's image `image` (tr counted from the block's
    /// first row).
    pub(super) fn slot(&self, tiles: &Tiles, image: usize, tr: usize, tx: usize) -> usize {
        (image * self.rows.len() + tr) * tiles.across + tx
    }
}

/// The convolution of `x` by filters already transformed into `u` (`[16][C_in][C_out]`),
/// plus bias, into `y`; `g` is supported and the lengths are checked.
fn run<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    u: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    then: Epilogue<'_, T>,
) -> Result<(), KernelError> {
    let (cin, cout) = (g.in_channels, g.out_channels);
    let in_image = cin * g.in_h * g.in_w;
    let out_image = cout * g.out_h * g.out_w;
    let tiles = Tiles::of::<T>(g);
    let most = tiles.slots(tiles.group, tiles.block_rows);
    let v_len = POSITIONS * (cin * most + PLANE_GAP);
    let m_len = POSITIONS * (cout * most + PLANE_GAP);
    let scratch_len = ALIGN + v_len + m_len;
    let fast = vectorized::<T>();
    let group_out = tiles.group * out_image;
    for_each_image(
        g,
        y,
        group_out,
        scratch_len,
        |n, y_group, scratch, gemm_parallel| {
            let images = y_group.len() / out_image;
            let x_group = &x[n * tiles.group * in_image..][..images * in_image];
            let skip = match scratch.as_ptr().align_offset(64) {
                s if s < ALIGN => s,
                _ => 0,
            };
            let (v, rest) = scratch[skip..].split_at_mut(v_len);
            let m = &mut rest[..m_len];
            let mut first = 0;
            while first < tiles.down {
                let last = (first + tiles.block_rows).min(tiles.down);
                let p = tiles.slots(images, last - first);
                let block = Block {
                    rows: first..last,
                    slots: p,
                    v_plane: cin * p + PLANE_GAP,
                    m_plane: cout * p + PLANE_GAP,
                };
                let v = &mut v[..POSITIONS * block.v_plane];
                let m = &mut m[..POSITIONS * block.m_plane];
                let used = images * block.rows.len() * tiles.across;
                if used < p {
                    for plane in v.chunks_exact_mut(block.v_plane) {
                        plane[..cin * p]
                            .chunks_exact_mut(p)
                            .for_each(|row| row[used..].fill(T::ZERO));
                    }
                }
                match (fast, T::as_f32(x_group), T::as_f32_mut(v)) {
                    (true, Some(x32), Some(v32)) => {
                        avx512::transform_input(g, &tiles, &block, x32, v32)
                    }
                    _ => portable::transform_input(g, &tiles, &block, x_group, v),
                }
                for t in 0..POSITIONS {
                    gemm_threaded(
                        gemm_parallel,
                        cout,
                        cin,
                        p,
                        T::ONE,
                        &u[t * cin * cout..][..cin * cout],
                        true,
                        &v[t * block.v_plane..][..cin * p],
                        false,
                        T::ZERO,
                        &mut m[t * block.m_plane..][..cout * p],
                    )?;
                }
                match (fast, T::as_f32(m), T::as_f32_mut(y_group)) {
                    // T is f32 here, so is the bias.
                    (true, Some(m32), Some(y32)) => {
                        let bias32 = bias.and_then(T::as_f32);
                        avx512::transform_output(g, &tiles, &block, m32, bias32, y32)
                    }
                    _ => portable::transform_output(g, &tiles, &block, m, bias, y_group),
                }
                first = last;
            }
            then(n * tiles.group, y_group);
            Ok(())
        },
    )
}
