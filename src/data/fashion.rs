//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence) from its IDX files: 60 000
//! training and 10 000 test images, 28×28, read from Debian's `dataset-fashion-mnist`
//! package or a directory given with `--data`.

use super::idx::read_idx;
use super::Dataset;
use crate::tensor::Tensor;
use crate::{bail, Result};
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn load_split(images: &Path, labels: &Path) -> Result<(Tensor<f32>, Vec<usize>)> {
    let im = read_idx(images, 3)?;
    let lb = read_idx(labels, 1)?;
    if im.dims[0] != lb.dims[0] {
        bail!(
            "{}: {} labels for {} images in {}",
            labels.display(),
            lb.dims[0],
            im.dims[0],
            images.display()
        );
    }
    if let Some(i) = lb.data.iter().position(|&l| l >= 10) {
        bail!(
            "{}: label {i} is {}, expected 0..9",
            labels.display(),
            lb.data[i]
        );
    }
    let (n, h, w) = (im.dims[0], im.dims[1], im.dims[2]);
    let x = Tensor::new(
        vec![n, 1, h, w],
        im.data.iter().map(|&p| p as f32 / 255.0).collect(),
    )?;
    Ok((x, lb.data.iter().map(|&l| l as usize).collect()))
}

/// Loads Fashion-MNIST from `dir` (default: Debian's install location). The held-out
/// set is the official 10 000-image test set.
pub fn load(dir: Option<&Path>) -> Result<Dataset> {
    let dir = dir.map_or_else(|| PathBuf::from(DEBIAN_DIR), Path::to_path_buf);
    let mut paths = Vec::with_capacity(4);
    for stem in FILES {
        match find(&dir, stem) {
            Some(p) => paths.push(p),
            None => bail!(
                "fashion-mnist: {} not found in {} (install it with `apt-get install dataset-fashion-mnist`, or pass --data DIR with the IDX files)",
                stem,
                dir.display()
            ),
        }
    }
    let (train_x, train_y) = load_split(&paths[0], &paths[1])?;
    let (test_x, test_y) = load_split(&paths[2], &paths[3])?;
    if train_x.shape()[1..] != test_x.shape()[1..] {
        bail!(
            "fashion-mnist: training images {:?} and test images {:?} differ in size",
            &train_x.shape()[1..],
            &test_x.shape()[1..]
        );
    }
    Ok(Dataset {
        name: "fashion-mnist".into(),
        train_x,
        train_y,
        test_x,
        test_y,
        classes: 10,
    })
}
