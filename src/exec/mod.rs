//! Executors of a model spec ([`crate::nn::Model`]): they walk the nodes, run each op's
//! forward and backward, and fill a flat gradient array laid out like the parameter table.
//! - [`cpu`]: the plain-Rust executor assembled from the ops' CPU twins — the reference for
//!   the GPU executor and the fallback when WebGPU is missing.

pub mod cpu;
pub mod fast;

pub use cpu::CpuExecutor;
