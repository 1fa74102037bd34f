//! The fast convolution kernels: im2col + gemm, parallel over the batch.

use rayon::prelude::*;

use super::lowering::{col2im, im2col};
use super::Conv2dGeometry;
use crate::check::{check_len, threads};
use crate::elementwise::sum_blocked;
use crate::gemm::gemm_threaded;
use crate::{Float, KernelError};

/// Convolutions cheaper than this many FLOPs run on the calling thread.
const PARALLEL_MIN_FLOPS: f64 = (1u64 << 21) as f64;

/// The weight gradient sums over at most this many fixed chunks of the batch.
const MAX_WEIGHT_GRAD_CHUNKS: usize = 8;

/// Upper bound on the elements of the weight gradient's per-chunk partial sums.
const MAX_WEIGHT_GRAD_PARTIAL_ELEMS: usize = 1 << 24;

/// Sizes of one image and one channel group, derived from a geometry.
#[derive(Clone, Copy)]
struct Sizes {
    /// Input channels per group.
    cin: usize,
    /// Output channels per group.
    cout: usize,
    /// H·W.
    in_plane: usize,
    /// OH·OW.
    out_plane: usize,
    /// (C_in/groups)·kh·kw: rows of the im2col matrix, columns of a weight row.
    col_rows: usize,
    /// Elements of one input image, C_in·H·W.
    in_image: usize,
    /// Elements of one output image, C_out·OH·OW.
    out_image: usize,
    /// Scratch elements for one im2col matrix (0 for pointwise convolutions).
    scratch: usize,
}

impl Sizes {
    /// Sizes of a geometry that passed `validate` (so none of these overflow).
    fn of(g: &Conv2dGeometry) -> Self {
        let in_plane = g.in_h * g.in_w;
        let out_plane = g.out_h * g.out_w;
        let col_rows = g.col_rows();
        Self {
            cin: g.group_in_channels(),
            cout: g.group_out_channels(),
            in_plane,
            out_plane,
            col_rows,
            in_image: g.in_channels * in_plane,
            out_image: g.out_channels * out_plane,
            scratch: if g.is_pointwise() {
                0
            } else {
                col_rows * out_plane
            },
        }
    }

    /// Group `group`'s input channels within one image.
    fn x_group<'a, T>(&self, x_image: &'a [T], group: usize) -> &'a [T] {
        &x_image[group * self.cin * self.in_plane..][..self.cin * self.in_plane]
    }

    /// Group `group`'s output channels within one image.
    fn y_group<'a, T>(&self, y_image: &'a [T], group: usize) -> &'a [T] {
        &y_image[group * self.cout * self.out_plane..][..self.cout * self.out_plane]
    }

    /// Group `group`'s rows of the weight, C_out/groups × col_rows.
    fn w_group<'a, T>(&self, w: &'a [T], group: usize) -> &'a [T] {
        &w[group * self.cout * self.col_rows..][..self.cout * self.col_rows]
    }
}

/// Runs `per_image(n, out_image, scratch, gemm_may_parallelise)` for every image n,
/// where `out_image` is image n's part of `out` (`per_image_len` elements each).
///
/// With enough work and at least as many images as threads, images run in parallel
/// (each rayon job reusing one scratch buffer of `scratch_len`) and each gemm stays
/// on its thread; otherwise images run one after another and gemm may parallelise.
fn for_each_image<T, F>(
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
    if batch_parallel {
        out.par_chunks_mut(per_image_len)
            .enumerate()
            .try_for_each_init(
                || vec![T::ZERO; scratch_len],
                |scratch, (n, image)| per_image(n, image, scratch, false),
            )
    } else {
        let mut scratch = vec![T::ZERO; scratch_len];
        out.chunks_mut(per_image_len)
            .enumerate()
            .try_for_each(|(n, image)| per_image(n, image, &mut scratch, true))
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
    let s = Sizes::of(g);
    for_each_image(
        g,
        y,
        s.out_image,
        s.scratch,
        |n, y_image, col, gemm_parallel| {
            let x_image = &x[n * s.in_image..][..s.in_image];
            for group in 0..g.groups {
                let x_group = s.x_group(x_image, group);
                let columns: &[T] = if g.is_pointwise() {
                    x_group
                } else {
                    im2col(g, x_group, col);
                    col
                };
                let y_group = &mut y_image[group * s.cout * s.out_plane..][..s.cout * s.out_plane];
                let w_group = s.w_group(w, group);
                let (m, k, n_cols) = (s.cout, s.col_rows, s.out_plane);
                gemm_threaded(
                    gemm_parallel,
                    m,
                    k,
                    n_cols,
                    T::ONE,
                    w_group,
                    false,
                    columns,
                    false,
                    T::ZERO,
                    y_group,
                )?;
            }
            if let Some(bias) = bias {
                for (plane, &b) in y_image.chunks_exact_mut(s.out_plane).zip(bias) {
                    plane.iter_mut().for_each(|v| *v += b);
                }
            }
            Ok(())
        },
    )
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
    let s = Sizes::of(g);
    for_each_image(
        g,
        dx,
        s.in_image,
        s.scratch,
        |n, dx_image, col, gemm_parallel| {
            let dy_image = &dy[n * s.out_image..][..s.out_image];
            for group in 0..g.groups {
                let dy_group = s.y_group(dy_image, group);
                let w_group = s.w_group(w, group);
                let dx_group = &mut dx_image[group * s.cin * s.in_plane..][..s.cin * s.in_plane];
                let (k, n_cols) = (s.cout, s.out_plane);
                if g.is_pointwise() {
                    gemm_threaded(
                        gemm_parallel,
                        s.cin,
                        k,
                        n_cols,
                        T::ONE,
                        w_group,
                        true,
                        dy_group,
                        false,
                        T::ZERO,
                        dx_group,
                    )?;
                } else {
                    gemm_threaded(
                        gemm_parallel,
                        s.col_rows,
                        k,
                        n_cols,
                        T::ONE,
                        w_group,
                        true,
                        dy_group,
                        false,
                        T::ZERO,
                        col,
                    )?;
                    col2im(g, col, dx_group);
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
    let s = Sizes::of(g);
    let max_chunks =
        (1 + MAX_WEIGHT_GRAD_PARTIAL_ELEMS / dw.len().max(1)).min(MAX_WEIGHT_GRAD_CHUNKS);
    let images_per_chunk = g.batch.div_ceil(max_chunks.min(g.batch));
    let chunks = g.batch.div_ceil(images_per_chunk);
    let parallel = threads() > 1 && chunks > 1 && g.flops() >= PARALLEL_MIN_FLOPS;

    let mut partials: Vec<Vec<T>> = (1..chunks).map(|_| vec![T::ZERO; dw.len()]).collect();
    let mut sums: Vec<&mut [T]> = std::iter::once(&mut *dw)
        .chain(partials.iter_mut().map(Vec::as_mut_slice))
        .collect();
    let chunk_sum = |col: &mut Vec<T>, (chunk, dw_sum): (usize, &mut &mut [T])| {
        let first = chunk * images_per_chunk;
        let images = first..(first + images_per_chunk).min(g.batch);
        for n in images {
            let x_image = &x[n * s.in_image..][..s.in_image];
            let dy_image = &dy[n * s.out_image..][..s.out_image];
            let beta = if n == first { T::ZERO } else { T::ONE };
            for group in 0..g.groups {
                let x_group = s.x_group(x_image, group);
                let columns: &[T] = if g.is_pointwise() {
                    x_group
                } else {
                    im2col(g, x_group, col);
                    col
                };
                let dy_group = s.y_group(dy_image, group);
                let dw_group = &mut dw_sum[group * s.cout * s.col_rows..][..s.cout * s.col_rows];
                let (m, k, n_cols) = (s.cout, s.out_plane, s.col_rows);
                gemm_threaded(
                    !parallel,
                    m,
                    k,
                    n_cols,
                    T::ONE,
                    dy_group,
                    false,
                    columns,
                    true,
                    beta,
                    dw_group,
                )?;
            }
        }
        Ok::<(), KernelError>(())
    };
    if parallel {
        sums.par_iter_mut()
            .enumerate()
            .try_for_each_init(|| vec![T::ZERO; s.scratch], chunk_sum)?;
    } else {
        let mut col = vec![T::ZERO; s.scratch];
        sums.iter_mut()
            .enumerate()
            .try_for_each(|item| chunk_sum(&mut col, item))?;
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
    let s = Sizes::of(g);
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
