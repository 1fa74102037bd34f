//! The unrolled 2×2, stride-2 max-pool path against the reference kernel, with many ties
//! (values from {0, 1, 2}), NaNs and −∞, odd input sizes (the last row/column left out),
//! several planes and both float types: the same values and the same argmax.

use mho_kernels::pool::{max_pool2d_forward, reference, Pool2dGeometry};
use mho_kernels::Float;

fn values<T: Float>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match s % 23 {
                0 => T::from_f64(f64::NAN),
                1 => T::from_f64(f64::NEG_INFINITY),
                k => T::from_f64((k % 3) as f64),
            }
        })
        .collect()
}

fn check<T: Float>(batch: usize, channels: usize, h: usize, w: usize, seed: u64) {
    let g = Pool2dGeometry::new(
        batch,
        channels,
        [h, w],
        [2, 2],
        [2, 2],
        [0, 0],
        [1, 1],
        false,
    )
    .unwrap();
    let x: Vec<T> = values(g.input_len(), seed);
    let (mut y, mut a) = (vec![T::ZERO; g.output_len()], vec![0usize; g.output_len()]);
    let (mut yr, mut ar) = (vec![T::ZERO; g.output_len()], vec![0usize; g.output_len()]);
    max_pool2d_forward(&g, &x, &mut y, &mut a).unwrap();
    reference::max_pool2d_forward(&g, &x, &mut yr, &mut ar).unwrap();
    assert_eq!(a, ar, "argmax, {batch}x{channels}x{h}x{w} seed {seed}");
    for (i, (p, q)) in y.iter().zip(&yr).enumerate() {
        assert!(
            (p.is_nan() && q.is_nan()) || p == q,
            "output {i}: {p} vs {q}, {batch}x{channels}x{h}x{w} seed {seed}"
        );
    }
}

#[test]
fn unrolled_two_by_two_matches_reference() {
    let mut seed = 1;
    for (b, c, h, w) in [
        (1, 1, 2, 2),
        (2, 3, 5, 7),
        (3, 4, 8, 8),
        (64, 32, 9, 6),
        (2, 2, 32, 33),
    ] {
        for _ in 0..4 {
            check::<f32>(b, c, h, w, seed);
            check::<f64>(b, c, h, w, seed + 1000);
            seed += 1;
        }
    }
}
