//! Kernel families: each file holds the GPU launcher and its plain-Rust CPU twin side by
//! side. Tests run both on the same random inputs and compare (see `tests/kernels.rs` for
//! the tolerance of each).

pub mod activation;
pub mod attention;
pub mod conv;
mod conv_direct;
pub mod data;
pub mod elementwise;
#[cfg(target_arch = "x86_64")]
pub mod gemm_x86;
pub mod gradcheck;
pub(crate) mod kernel;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod select;
pub mod stats;
pub mod vit;

pub use elementwise::Elementwise;
pub use kernel::{split_reduction, Kernel};
pub use matmul::{Matmul, MatmulShape};
pub use reduce::Sum;
