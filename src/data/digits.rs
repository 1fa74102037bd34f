//! The UCI optical recognition of handwritten digits (8×8, 1797 images), as shipped in
//! scikit-learn (`sklearn/datasets/data/digits.csv.gz`), embedded in the binary.
//!
//! Credit: E. Alpaydin and C. Kaynak, UCI Machine Learning Repository, CC BY 4.0
//! (see data/README.md).

use super::Dataset;
use crate::nn::rng::Rng;
use crate::tensor::Tensor;
use crate::{ensure, Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;

/// The gzipped CSV: one image per line, 64 pixel values 0–16 then the label.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Number of images in the dataset.
pub const N_IMAGES: usize = 1797;

/// Number of held-out images (the last 20% of a fixed shuffle).
pub const N_HELD_OUT: usize = 360;

/// The seed of the fixed shuffle that defines the split (never change it: held-out
/// accuracies in docs and tests depend on it).
const SPLIT_SEED: u64 = 0x00D1_6175;

/// Loads the digits: 1437 training and 360 held-out images, [1, 8, 8], scaled to [0, 1].
pub fn load() -> Result<Dataset> {
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::new(format!("embedded digits: cannot decompress: {e}")))?;
    let mut images: Vec<Vec<f32>> = Vec::with_capacity(N_IMAGES);
    let mut labels = Vec::with_capacity(N_IMAGES);
    for (line_no, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let vals: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::new(format!("embedded digits: line {}: {e}", line_no + 1)))?;
        ensure!(
            vals.len() == 65,
            "embedded digits: line {}: {} values, expected 65",
            line_no + 1,
            vals.len()
        );
        images.push(vals[..64].iter().map(|&v| (v / 16.0) as f32).collect());
        labels.push(vals[64] as usize);
    }
    ensure!(
        images.len() == N_IMAGES,
        "embedded digits: {} images, expected {N_IMAGES}",
        images.len()
    );
    let mut order: Vec<usize> = (0..N_IMAGES).collect();
    Rng::new(SPLIT_SEED, 0).shuffle(&mut order);
    let n_train = N_IMAGES - N_HELD_OUT;
    let gather = |idx: &[usize]| -> Result<(Tensor<f32>, Vec<usize>)> {
        let mut data = Vec::with_capacity(idx.len() * 64);
        let mut ys = Vec::with_capacity(idx.len());
        for &i in idx {
            data.extend_from_slice(&images[i]);
            ys.push(labels[i]);
        }
        Ok((Tensor::new(vec![idx.len(), 1, 8, 8], data)?, ys))
    };
    let (train_x, train_y) = gather(&order[..n_train])?;
    let (test_x, test_y) = gather(&order[n_train..])?;
    Ok(Dataset {
        name: "digits".into(),
        train_x,
        train_y,
        test_x,
        test_y,
        classes: 10,
    })
}
