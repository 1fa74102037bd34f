//! 2-d (and, as height-1 special cases, 1-d) pooling on NCHW planes with PyTorch's
//! exact rules: output sizes (`ceil_mode` included), −∞ padding and first-index ties
//! for max pooling, the `count_include_pad` divisors of average pooling, and the bins
//! of adaptive average pooling.
//!
//! The fast kernels run the N·C planes in parallel on rayon when the work is large
//! enough; each plane is independent, so results never depend on the thread count.
//! [`reference`] has plain loops the tests compare against.

mod adaptive;
mod avg;
mod geometry;
mod max;
pub mod reference;
mod window;

pub use adaptive::{adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward};
pub use avg::{avg_pool2d_backward, avg_pool2d_forward};
pub use geometry::{AdaptivePool2dGeometry, Pool2dGeometry};
pub use max::{max_pool2d_backward, max_pool2d_forward, NO_ARGMAX};
