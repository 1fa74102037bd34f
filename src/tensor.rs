//! Dense row-major tensors in PyTorch's layouts (NCHW images, NCL sequences,
//! Linear weight `[out, in]`, Conv2d weight `[out, in/groups, kh, kw]`).

use crate::{bail, buffers, ensure, Result};
use mho_kernels::Float;

/// A dense, row-major tensor of `f32` or `f64`.
#[derive(Debug, PartialEq)]
pub struct Tensor<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

/// The number of elements of a shape, or an error when the product overflows.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d)
            .ok_or_else(|| crate::Error::new(format!("shape {shape:?} has too many elements")))
    })
}

impl<T: Float> Tensor<T> {
    /// A tensor from its shape and row-major data; errors when the sizes disagree.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let n = checked_numel(&shape)?;
        ensure!(
            n == data.len(),
            "tensor of shape {shape:?} needs {n} elements, got {}",
            data.len()
        );
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::ZERO)
    }

    /// A tensor filled with one value.
    pub fn full(shape: &[usize], value: T) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: buffers::take_filled(n, value),
        }
    }

    /// A tensor whose elements are unspecified (a recycled buffer's old contents, or
    /// zeros), for outputs the caller overwrites completely: saves zeroing them first.
    pub fn for_overwrite(shape: &[usize]) -> Self {
        let n = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: buffers::take_for_overwrite(n),
        }
    }

    /// Gives the tensor's buffer back to [`buffers`] for reuse.
    pub fn recycle(self) {
        buffers::give(self.data);
    }

    /// A zero-dimensional tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: vec![],
            data: vec![value],
        }
    }

    /// A tensor from `f64` values, converted to `T`.
    pub fn from_f64(shape: &[usize], data: &[f64]) -> Result<Self> {
        Self::new(
            shape.to_vec(),
            data.iter().map(|&v| T::from_f64(v)).collect(),
        )
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The row-major elements.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The row-major elements, mutably.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the tensor, returning its elements.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The same elements under another shape with as many elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n = checked_numel(shape)?;
        ensure!(
            n == self.data.len(),
            "reshape: cannot view {:?} ({} elements) as {shape:?} ({n} elements)",
            self.shape,
            self.data.len()
        );
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// A copy converted to another float type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| U::from_f64(v.to_f64())).collect(),
        }
    }

    /// Elementwise map into a new tensor of the same shape.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// Elementwise combination with a tensor of the same shape.
    pub fn zip_map(&self, other: &Self, f: impl Fn(T, T) -> T) -> Result<Self> {
        ensure!(
            self.shape == other.shape,
            "elementwise: shapes {:?} and {:?} differ",
            self.shape,
            other.shape
        );
        Ok(Tensor {
            shape: self.shape.clone(),
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        })
    }

    /// Adds `other` (same shape) into `self`.
    pub fn add_assign(&mut self, other: &Self) -> Result<()> {
        ensure!(
            self.shape == other.shape,
            "accumulate: shapes {:?} and {:?} differ",
            self.shape,
            other.shape
        );
        for (a, &b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
        Ok(())
    }

    /// Σ self ⊙ other, accumulated in f64.
    pub fn dot(&self, other: &Self) -> Result<f64> {
        ensure!(
            self.shape == other.shape,
            "dot: shapes {:?} and {:?} differ",
            self.shape,
            other.shape
        );
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| a.to_f64() * b.to_f64())
            .sum())
    }

    /// The first element's index path that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.data.iter().position(|v| !v.is_finite())
    }

    /// The `i`-th slice along axis 0 (e.g. one example of a batch), as a tensor.
    pub fn index_axis0(&self, i: usize) -> Result<Self> {
        if self.shape.is_empty() {
            bail!("index_axis0: tensor is zero-dimensional");
        }
        ensure!(
            i < self.shape[0],
            "index_axis0: index {i} out of range for shape {:?}",
            self.shape
        );
        let inner: usize = self.shape[1..].iter().product();
        Ok(Tensor {
            shape: self.shape[1..].to_vec(),
            data: self.data[i * inner..(i + 1) * inner].to_vec(),
        })
    }

    /// Rows `range` along axis 0 (e.g. some examples of a batch), as a tensor.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Result<Self> {
        ensure!(!self.shape.is_empty(), "rows: tensor is zero-dimensional");
        ensure!(
            range.start <= range.end && range.end <= self.shape[0],
            "rows: {range:?} out of range for shape {:?}",
            self.shape
        );
        let inner: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = range.len();
        Ok(Tensor {
            shape,
            data: self.data[range.start * inner..range.end * inner].to_vec(),
        })
    }

    /// Stacks tensors of one shape along a new leading axis.
    pub fn stack(parts: &[Self]) -> Result<Self> {
        let Some(first) = parts.first() else {
            bail!("stack: no tensors");
        };
        let mut data = Vec::with_capacity(first.len() * parts.len());
        for p in parts {
            ensure!(
                p.shape == first.shape,
                "stack: shapes {:?} and {:?} differ",
                first.shape,
                p.shape
            );
            data.extend_from_slice(&p.data);
        }
        let mut shape = vec![parts.len()];
        shape.extend_from_slice(&first.shape);
        Ok(Tensor { shape, data })
    }

    /// Concatenates tensors along their leading axis (all other axes must agree).
    pub fn concat_rows(parts: &[&Self]) -> Result<Self> {
        let Some(first) = parts.first() else {
            bail!("concat_rows: no tensors");
        };
        ensure!(!first.shape.is_empty(), "concat_rows: scalars have no rows");
        let mut rows = 0usize;
        for p in parts {
            ensure!(
                p.shape.len() == first.shape.len() && p.shape[1..] == first.shape[1..],
                "concat_rows: shapes {:?} and {:?} differ beyond the first axis",
                first.shape,
                p.shape
            );
            rows += p.shape[0];
        }
        let mut data = buffers::take_for_overwrite(parts.iter().map(|p| p.len()).sum());
        let mut at = 0;
        for p in parts {
            data[at..at + p.len()].copy_from_slice(&p.data);
            at += p.len();
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Ok(Tensor { shape, data })
    }
}

impl<T: Float> Clone for Tensor<T> {
    /// A copy whose buffer comes from [`buffers`] when one is free (no fresh pages to
    /// map and zero for the large tensors reshapes and views copy).
    fn clone(&self) -> Self {
        let mut data = buffers::take_for_overwrite(self.data.len());
        data.copy_from_slice(&self.data);
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }
}
