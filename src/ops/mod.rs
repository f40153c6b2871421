//! Kernel families: each file holds the GPU launcher and its plain-Rust CPU twin side by
//! side. Tests run both on the same random inputs and compare (see `tests/kernels.rs` for
//! the tolerance of each).

pub mod activation;
pub mod elementwise;
pub mod gradcheck;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod reduce;

pub use elementwise::Elementwise;
pub use matmul::{Matmul, MatmulShape};
pub use reduce::Sum;
