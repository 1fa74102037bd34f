//! Gradient checks (VJP vs finite differences, JVP vs finite differences, and the
//! dot-product identity) for softmax, reductions, shape ops, batch norm, embedding,
//! selection and cross entropy, over random shapes and parameters.

mod common;

use common::{check_all, Rng};
use mho::ops::{
    BatchNorm, Concat, CrossEntropy, Embedding, Flatten, GatherRows, Identity, LogSoftmax, Mean,
    Permute, Reshape, Select, Softmax, Sum, SumAxis,
};
use mho::{Op, Tensor};
use proptest::prelude::*;
use proptest::sample::Index;

/// Shapes of rank `ranks` with sides 1 to 4.
fn shapes(ranks: std::ops::Range<usize>) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, ranks)
}

/// Runs (a), (b), (c) on one case, as a proptest result.
fn check(op: &dyn Op<f64>, inputs: &[Tensor<f64>], seed: u64) -> Result<(), TestCaseError> {
    check_all(op, inputs, seed).map_err(TestCaseError::fail)
}

/// A random permutation of 0..n.
fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i + 1));
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn softmax_and_log_softmax(shape in shapes(1..5), dim: Index, seed: u64) {
        let dim = dim.index(shape.len());
        let x = Rng::new(seed).tensor(&shape, -4.0, 4.0);
        check(&Softmax { dim }, std::slice::from_ref(&x), seed)?;
        check(&LogSoftmax { dim }, &[x], seed)?;
    }

    #[test]
    fn reductions(shape in shapes(0..5), axis: Index, keepdim: bool, seed: u64) {
        let x = Rng::new(seed).tensor(&shape, -2.0, 2.0);
        check(&Sum, std::slice::from_ref(&x), seed)?;
        check(&Mean, std::slice::from_ref(&x), seed)?;
        if !shape.is_empty() {
            check(&SumAxis { axis: axis.index(shape.len()), keepdim }, &[x], seed)?;
        }
    }

    #[test]
    fn reshape_and_identity(shape in shapes(0..5), ones in 0usize..3, seed: u64) {
        let x = Rng::new(seed).tensor(&shape, -2.0, 2.0);
        let mut target: Vec<usize> = shape.iter().rev().copied().collect();
        target.extend(std::iter::repeat_n(1, ones));
        check(&Reshape { shape: target }, std::slice::from_ref(&x), seed)?;
        check(&Identity, &[x], seed)?;
    }

    #[test]
    fn flatten(
        shape in shapes(0..5),
        a: Index,
        b: Index,
        neg_start: bool,
        neg_end: bool,
        seed: u64,
    ) {
        let rank = shape.len().max(1);
        let (start, end) = {
            let (a, b) = (a.index(rank), b.index(rank));
            (a.min(b) as i64, a.max(b) as i64)
        };
        let start_dim = if neg_start { start - rank as i64 } else { start };
        let end_dim = if neg_end { end - rank as i64 } else { end };
        let x = Rng::new(seed).tensor(&shape, -2.0, 2.0);
        check(&Flatten { start_dim, end_dim }, &[x], seed)?;
    }

    #[test]
    fn permute(shape in shapes(0..5), seed: u64) {
        let mut rng = Rng::new(seed);
        let dims = permutation(&mut rng, shape.len());
        let x = rng.tensor(&shape, -2.0, 2.0);
        check(&Permute { dims }, &[x], seed)?;
    }

    #[test]
    fn concat(
        shape in shapes(1..4),
        axis: Index,
        sizes in prop::collection::vec(0usize..4, 1..4),
        seed: u64,
    ) {
        let axis = axis.index(shape.len());
        let mut rng = Rng::new(seed);
        let inputs: Vec<Tensor<f64>> = sizes
            .iter()
            .map(|&s| {
                let mut sh = shape.clone();
                sh[axis] = s;
                rng.tensor(&sh, -2.0, 2.0)
            })
            .collect();
        check(&Concat { axis }, &inputs, seed)?;
    }

    #[test]
    fn batch_norm(shape in shapes(2..5), large_eps: bool, seed: u64) {
        let mut rng = Rng::new(seed);
        let c = shape[1];
        let inputs = [
            rng.tensor(&shape, -2.0, 2.0),
            rng.tensor(&[c], -1.0, 1.0),
            rng.tensor(&[c], 0.5, 2.0),
            rng.tensor(&[c], -1.5, 1.5),
            rng.tensor(&[c], -1.0, 1.0),
        ];
        let eps = if large_eps { 0.1 } else { 1e-5 };
        check(&BatchNorm { eps }, &inputs, seed)?;
    }

    #[test]
    fn embedding(num in 1usize..6, dim in 1usize..5, index_shape in shapes(0..3), seed: u64) {
        let mut rng = Rng::new(seed);
        let n: usize = index_shape.iter().product();
        let indices = (0..n).map(|_| rng.below(num)).collect();
        let w = rng.tensor(&[num, dim], -2.0, 2.0);
        check(&Embedding { indices, index_shape }, &[w], seed)?;
    }

    #[test]
    fn gather_rows_and_select(shape in shapes(1..5), axis: Index, index: Index, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.tensor(&shape, -2.0, 2.0);
        let axis = axis.index(shape.len());
        check(&Select { axis, index: index.index(shape[axis]) }, &[x], seed)?;
        let (n, k) = (shape[0], shape.get(1).copied().unwrap_or(3));
        let indices = (0..n).map(|_| rng.below(k)).collect();
        check(&GatherRows { indices }, &[rng.tensor(&[n, k], -2.0, 2.0)], seed)?;
    }

    #[test]
    fn cross_entropy(n in 1usize..6, k in 1usize..6, seed: u64) {
        let mut rng = Rng::new(seed);
        let targets = (0..n).map(|_| rng.below(k)).collect();
        check(&CrossEntropy { targets }, &[rng.tensor(&[n, k], -4.0, 4.0)], seed)?;
    }
}

#[test]
fn concat_rows_joins_leading_axes_and_refuses_mismatches() {
    let a = Tensor::new(vec![1, 2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let b = Tensor::new(vec![2, 2, 2], (5..13).map(|v| v as f32).collect()).unwrap();
    let c = Tensor::concat_rows(&[&a, &b]).unwrap();
    assert_eq!(c.shape(), [3, 2, 2]);
    assert_eq!(c.data(), (1..13).map(|v| v as f32).collect::<Vec<_>>());
    let wrong = Tensor::<f32>::zeros(&[1, 4]);
    let err = Tensor::concat_rows(&[&a, &wrong]).unwrap_err().to_string();
    assert!(err.contains("differ beyond the first axis"), "{err}");
    let err = Tensor::<f32>::concat_rows(&[]).unwrap_err().to_string();
    assert!(err.contains("no tensors"), "{err}");
    let s = Tensor::scalar(1.0f32);
    assert!(Tensor::concat_rows(&[&s, &s]).is_err());
}

#[test]
fn clones_are_equal_independent_and_take_pooled_buffers() {
    // Large enough to come from (and go back to) the buffer pool.
    let n = 1 << 16;
    mho::buffers::release();
    let a = Tensor::new(vec![n], (0..n).map(|v| v as f32).collect()).unwrap();
    // A buffer given to the pool is the one the next clone of that size gets.
    let spare = Tensor::<f32>::zeros(&[n]);
    let spare_at = spare.data().as_ptr();
    spare.recycle();
    let mut b = a.clone();
    assert_eq!(b.data().as_ptr(), spare_at);
    assert_eq!(a, b);
    b.data_mut()[7] = -1.0;
    assert_eq!(a.data()[7], 7.0);
    b.recycle();
    mho::buffers::release();
}
