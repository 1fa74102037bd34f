//! Adaptive average pooling, forward and backward.

use std::ops::Range;

use rayon::prelude::*;

use super::geometry::adaptive_bin;
use super::window::worth_parallel;
use super::AdaptivePool2dGeometry;
use crate::check::check_len;
use crate::{Float, KernelError};

/// The bins of both axes.
fn bins(g: &AdaptivePool2dGeometry) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let rows = (0..g.out_h)
        .map(|i| adaptive_bin(i, g.out_h, g.in_h))
        .collect();
    let cols = (0..g.out_w)
        .map(|i| adaptive_bin(i, g.out_w, g.in_w))
        .collect();
    (rows, cols)
}

/// Adaptive average pooling with PyTorch's bins: output i along an axis averages
/// inputs ⌊i·in/out⌋ .. ⌈(i+1)·in/out⌉ (as PyTorch, the sum is divided by the bin
/// height, then by its width). `y` is overwritten.
pub fn adaptive_avg_pool2d_forward<T: Float>(
    g: &AdaptivePool2dGeometry,
    x: &[T],
    y: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "adaptive_avg_pool2d";
    g.validate(KERNEL)?;
    check_len(KERNEL, "input", x.len(), &g.input_dims())?;
    check_len(KERNEL, "output", y.len(), &g.output_dims())?;
    let (rows, cols) = bins(g);
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    let plane = |(p, y_plane): (usize, &mut [T])| {
        let x_plane = &x[p * in_plane..][..in_plane];
        let mut outputs = y_plane.iter_mut();
        for row in &rows {
            for col in &cols {
                let Some(y) = outputs.next() else { return };
                let mut sum = T::ZERO;
                for ih in row.clone() {
                    for &v in &x_plane[ih * g.in_w..][col.clone()] {
                        sum += v;
                    }
                }
                *y = sum / T::from_f64(row.len() as f64) / T::from_f64(col.len() as f64);
            }
        }
    };
    let work = x.len().saturating_add(y.len());
    if worth_parallel(g.batch * g.channels, work) {
        y.par_chunks_mut(out_plane).enumerate().for_each(plane);
    } else {
        y.chunks_mut(out_plane).enumerate().for_each(plane);
    }
    Ok(())
}

/// The adjoint of [`adaptive_avg_pool2d_forward`] (dx overwritten).
pub fn adaptive_avg_pool2d_backward<T: Float>(
    g: &AdaptivePool2dGeometry,
    dy: &[T],
    dx: &mut [T],
) -> Result<(), KernelError> {
    const KERNEL: &str = "adaptive_avg_pool2d_backward";
    g.validate(KERNEL)?;
    check_len(KERNEL, "output gradient", dy.len(), &g.output_dims())?;
    check_len(KERNEL, "input gradient", dx.len(), &g.input_dims())?;
    let (rows, cols) = bins(g);
    let in_plane = g.in_h * g.in_w;
    let out_plane = g.out_h * g.out_w;
    let plane = |(p, dx_plane): (usize, &mut [T])| {
        dx_plane.fill(T::ZERO);
        let mut grads = dy[p * out_plane..][..out_plane].iter();
        for row in &rows {
            for col in &cols {
                let Some(&d) = grads.next() else { return };
                let share = d / T::from_f64(row.len() as f64) / T::from_f64(col.len() as f64);
                for ih in row.clone() {
                    for v in &mut dx_plane[ih * g.in_w..][col.clone()] {
                        *v += share;
                    }
                }
            }
        }
    };
    let work = dx.len().saturating_add(dy.len());
    if worth_parallel(g.batch * g.channels, work) {
        dx.par_chunks_mut(in_plane).enumerate().for_each(plane);
    } else {
        dx.chunks_mut(in_plane).enumerate().for_each(plane);
    }
    Ok(())
}
