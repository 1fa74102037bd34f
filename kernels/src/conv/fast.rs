//! The fast convolution kernels: im2col + gemm over column tiles, parallel over the
//! batch.

use rayon::prelude::*;

use super::lowering::{col2im_add, im2col};
use super::sizes::Sizes;
use super::winograd;
use super::Conv2dGeometry;
use crate::check::{check_len, threads};
use crate::elementwise::sum_blocked;
use crate::gemm::gemm_threaded;
use crate::scratch::with_scratch;
use crate::simd::vectorized;
use crate::{Float, KernelError};

/// Convolutions cheaper than this many FLOPs run on the calling thread.
const PARALLEL_MIN_FLOPS: f64 = (1u64 << 21) as f64;

/// The weight gradient sums over at most this many fixed chunks of the batch.
const MAX_WEIGHT_GRAD_CHUNKS: usize = 8;

/// Upper bound on the elements of the weight gradient's per-chunk partial sums.
const MAX_WEIGHT_GRAD_PARTIAL_ELEMS: usize = 1 << 24;

/// Runs `per_image(n, out_image, scratch, gemm_may_parallelise)` for every image n,
/// where `out_image` is image n's part of `out` (`per_image_len` elements each).
///
/// With enough work and at least as many images as threads, images run in parallel
/// (each rayon job reusing one scratch buffer of `scratch_len`) and each gemm stays
/// on its thread; otherwise images run one after another and gemm may parallelise.
pub(super) fn for_each_image<T, F>(
    g: &Conv2dGeometry,
    out: &mut [T],
    per_image_len: usize,
    scratch_len: usize,
    per_image: F,
) -> Result<(), KernelError>
where
    T: Float,
    F: Fn(usize, &mut [T], &mut [T], bool) -> Result<(), KernelError> + Sync,
{
    let threads = threads();
    let batch_parallel = threads > 1 && g.batch >= threads && g.flops() >= PARALLEL_MIN_FLOPS;
    // `per_image` writes every part of the scratch it reads (im2col tiles, gemm outputs
    // with beta = 0), so the scratch may hold anything from an earlier call.
    if batch_parallel {
        out.par_chunks_mut(per_image_len)
            .enumerate()
            .try_for_each(|(n, image)| {
                with_scratch(scratch_len, |scratch| per_image(n, image, scratch, false))
            })
    } else {
        with_scratch(scratch_len, |scratch| {
            out.chunks_mut(per_image_len)
                .enumerate()
                .try_for_each(|(n, image)| per_image(n, image, scratch, true))
        })
    }
}

/// y ← conv2d(x, w) + bias: input `x` NCHW, weight `w` `[C_out, C_in/groups, kh, kw]`,
/// optional `bias` `[C_out]`, output `y` `[N, C_out, OH, OW]` (overwritten).
pub fn conv2d_forward<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<(), KernelError> {
    conv2d_forward_then(g, x, w, bias, y, &|_, _| {})
}

/// Work done on a convolution's output images while they are still in cache:
/// `then(first, images)` receives whole output images, `images` holding those of images
/// `first, first + 1, …` (`[k, C_out, OH, OW]`), on the thread that computed them.
pub type Epilogue<'a, T> = &'a (dyn Fn(usize, &mut [T]) + Sync);

/// [`conv2d_forward`], then `then` on every output image right after it is computed (a
/// ReLU, a mask), instead of in another pass over the whole output.
pub fn conv2d_forward_then<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    then: Epilogue<'_, T>,
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d";
    g.check_lens(
        KERNEL,
        ("input", x.len()),
        Some(("weight", w.len())),
        ("output", y.len()),
    )?;
    if let Some(bias) = bias {
        check_len(KERNEL, "bias", bias.len(), &[g.out_channels])?;
    }
    if winograd::preferred::<T>(g) {
        return winograd::forward_then(g, x, w, bias, y, then);
    }
    let s = Sizes::of::<T>(g);
    for_each_image(
        g,
        y,
        s.out_image,
        s.scratch_len(),
        |n, y_image, scratch, gemm_parallel| {
            forward_image(g, &s, x, w, bias, n, y_image, scratch, gemm_parallel)?;
            then(n, y_image);
            Ok(())
        },
    )
}

/// Image n of [`conv2d_forward`] by im2col and gemm, into `y_image`.
#[allow(clippy::too_many_arguments)]
fn forward_image<T: Float>(
    g: &Conv2dGeometry,
    s: &Sizes,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    n: usize,
    y_image: &mut [T],
    scratch: &mut [T],
    gemm_parallel: bool,
) -> Result<(), KernelError> {
    let x_image = &x[n * s.in_image..][..s.in_image];
    let (col, tile) = scratch.split_at_mut(s.col_scratch);
    for group in 0..g.groups {
        let x_group = s.x_group(x_image, group);
        let w_group = s.w_group(w, group);
        let y_group = s.y_group_mut(y_image, group);
        let (m, k) = (s.cout, s.col_rows);
        if s.pointwise {
            gemm_threaded(
                gemm_parallel,
                m,
                k,
                s.out_plane,
                T::ONE,
                w_group,
                false,
                x_group,
                false,
                T::ZERO,
                y_group,
            )?;
            continue;
        }
        for rows in s.tiles() {
            let cols = rows.len() * s.out_w;
            let col = &mut col[..k * cols];
            im2col(g, x_group, rows.clone(), col);
            if cols == s.out_plane {
                gemm_threaded(
                    gemm_parallel,
                    m,
                    k,
                    cols,
                    T::ONE,
                    w_group,
                    false,
                    col,
                    false,
                    T::ZERO,
                    y_group,
                )?;
                continue;
            }
            let tile = &mut tile[..m * cols];
            gemm_threaded(
                gemm_parallel,
                m,
                k,
                cols,
                T::ONE,
                w_group,
                false,
                col,
                false,
                T::ZERO,
                tile,
            )?;
            let first = rows.start * s.out_w;
            for (dst, src) in y_group
                .chunks_exact_mut(s.out_plane)
                .zip(tile.chunks_exact(cols))
            {
                dst[first..first + cols].copy_from_slice(src);
            }
        }
    }
    if let Some(bias) = bias {
        vectorized(
            #[inline(always)]
            || {
                for (plane, &b) in y_image.chunks_exact_mut(s.out_plane).zip(bias) {
                    plane.iter_mut().for_each(|v| *v += b);
                }
            },
        );
    }
    Ok(())
}

/// dx ← ∂⟨dy, conv2d(x, w)⟩/∂x: output gradient `dy` `[N, C_out, OH, OW]`, weight `w`,
/// input gradient `dx` NCHW (overwritten).
pub fn conv2d_input_grad<T: Float>(
    g: &Conv2dGeometry,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_input_grad";
    g.check_lens(
        KERNEL,
        ("input gradient", dx.len()),
        Some(("weight", w.len())),
        ("output gradient", dy.len()),
    )?;
    if winograd::preferred::<T>(g) {
        return winograd::input_grad(g, dy, w, dx);
    }
    let s = Sizes::of::<T>(g);
    for_each_image(
        g,
        dx,
        s.in_image,
        s.scratch_len(),
        |n, dx_image, scratch, gemm_parallel| {
            let dy_image = &dy[n * s.out_image..][..s.out_image];
            let (col, tile) = scratch.split_at_mut(s.col_scratch);
            for group in 0..g.groups {
                let dy_group = s.y_group(dy_image, group);
                let w_group = s.w_group(w, group);
                let dx_group = &mut dx_image[group * s.cin * s.in_plane..][..s.cin * s.in_plane];
                let k = s.cout;
                if s.pointwise {
                    gemm_threaded(
                        gemm_parallel,
                        s.cin,
                        k,
                        s.out_plane,
                        T::ONE,
                        w_group,
                        true,
                        dy_group,
                        false,
                        T::ZERO,
                        dx_group,
                    )?;
                    continue;
                }
                dx_group.fill(T::ZERO);
                for rows in s.tiles() {
                    let cols = rows.len() * s.out_w;
                    let dy_tile = s.dy_tile(dy_group, &rows, tile);
                    let col = &mut col[..s.col_rows * cols];
                    gemm_threaded(
                        gemm_parallel,
                        s.col_rows,
                        k,
                        cols,
                        T::ONE,
                        w_group,
                        true,
                        dy_tile,
                        false,
                        T::ZERO,
                        col,
                    )?;
                    vectorized(
                        #[inline(always)]
                        || col2im_add(g, col, rows, dx_group),
                    );
                }
            }
            Ok(())
        },
    )
}

/// dw ← ∂⟨dy, conv2d(x, w)⟩/∂w: input `x` NCHW, output gradient `dy`, weight gradient
/// `dw` `[C_out, C_in/groups, kh, kw]` (overwritten).
///
/// The batch is cut into a fixed number of chunks (depending only on the geometry);
/// each chunk's sum is computed on one thread and the chunk sums are added in order,
/// so the result is bit-identical for a given geometry whatever the thread count.
pub fn conv2d_weight_grad<T: Float>(
    g: &Conv2dGeometry,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_weight_grad";
    g.check_lens(
        KERNEL,
        ("input", x.len()),
        Some(("weight gradient", dw.len())),
        ("output gradient", dy.len()),
    )?;
    let s = Sizes::of::<T>(g);
    let max_chunks =
        (1 + MAX_WEIGHT_GRAD_PARTIAL_ELEMS / dw.len().max(1)).min(MAX_WEIGHT_GRAD_CHUNKS);
    let images_per_chunk = g.batch.div_ceil(max_chunks.min(g.batch));
    let chunks = g.batch.div_ceil(images_per_chunk);
    let parallel = threads() > 1 && chunks > 1 && g.flops() >= PARALLEL_MIN_FLOPS;

    // Chunk 0 sums straight into dw, the others into partial buffers.
    let mut partials: Vec<Vec<T>> = (1..chunks).map(|_| vec![T::ZERO; dw.len()]).collect();
    let mut sums: Vec<&mut [T]> = std::iter::once(&mut *dw)
        .chain(partials.iter_mut().map(Vec::as_mut_slice))
        .collect();
    let chunk_sum = |scratch: &mut Vec<T>, (chunk, dw_sum): (usize, &mut &mut [T])| {
        let (col, tile) = scratch.split_at_mut(s.col_scratch);
        let first = chunk * images_per_chunk;
        for n in first..(first + images_per_chunk).min(g.batch) {
            let x_image = &x[n * s.in_image..][..s.in_image];
            let dy_image = &dy[n * s.out_image..][..s.out_image];
            for group in 0..g.groups {
                let x_group = s.x_group(x_image, group);
                let dy_group = s.y_group(dy_image, group);
                let dw_group = s.w_group_mut(dw_sum, group);
                let (m, n_cols) = (s.cout, s.col_rows);
                if s.pointwise {
                    let beta = if n == first { T::ZERO } else { T::ONE };
                    gemm_threaded(
                        !parallel,
                        m,
                        s.in_plane,
                        n_cols,
                        T::ONE,
                        dy_group,
                        false,
                        x_group,
                        true,
                        beta,
                        dw_group,
                    )?;
                    continue;
                }
                for (tile_index, rows) in s.tiles().enumerate() {
                    let cols = rows.len() * s.out_w;
                    let col = &mut col[..n_cols * cols];
                    im2col(g, x_group, rows.clone(), col);
                    let dy_tile = s.dy_tile(dy_group, &rows, tile);
                    let beta = if n == first && tile_index == 0 {
                        T::ZERO
                    } else {
                        T::ONE
                    };
                    gemm_threaded(
                        !parallel,
                        m,
                        cols,
                        n_cols,
                        T::ONE,
                        dy_tile,
                        false,
                        col,
                        true,
                        beta,
                        dw_group,
                    )?;
                }
            }
        }
        Ok::<(), KernelError>(())
    };
    if parallel {
        sums.par_iter_mut()
            .enumerate()
            .try_for_each_init(|| vec![T::ZERO; s.scratch_len()], chunk_sum)?;
    } else {
        let mut scratch = vec![T::ZERO; s.scratch_len()];
        sums.iter_mut()
            .enumerate()
            .try_for_each(|item| chunk_sum(&mut scratch, item))?;
    }
    drop(sums);
    for partial in &partials {
        dw.iter_mut().zip(partial).for_each(|(d, p)| *d += *p);
    }
    Ok(())
}

/// db ← ∂⟨dy, conv2d(x, w) + b⟩/∂b: the sum of `dy` over batch and positions for each
/// output channel, written to `db` `[C_out]` (overwritten).
pub fn conv2d_bias_grad<T: Float>(
    g: &Conv2dGeometry,
    dy: &[T],
    db: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "conv2d_bias_grad";
    g.validate(KERNEL)?;
    check_len(KERNEL, "output gradient", dy.len(), &g.output_dims())?;
    check_len(KERNEL, "bias gradient", db.len(), &[g.out_channels])?;
    let s = Sizes::of::<T>(g);
    let channel_sum = |(channel, out): (usize, &mut T)| {
        *out = (0..g.batch)
            .map(|n| sum_blocked(&dy[n * s.out_image + channel * s.out_plane..][..s.out_plane]))
            .fold(T::ZERO, |acc, v| acc + v);
    };
    if threads() > 1 && dy.len() >= 1 << 16 {
        db.par_iter_mut().enumerate().for_each(channel_sum);
    } else {
        db.iter_mut().enumerate().for_each(channel_sum);
    }
    Ok(())
}
