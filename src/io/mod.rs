//! Files in and out: `.npy` arrays and atomic writes.

pub mod atomic;
pub mod npy;

pub use atomic::{read_file, write_atomic};
pub use npy::{read_input, read_npy, read_npy_array, write_npy, NpyArray, NpyData};
