//! varlab: train, one-shot prune and compare small CNNs and ViTs with WGSL compute
//! shaders — in the browser (WebGPU) or natively (wgpu on Vulkan/Metal/DX12).
//!
//! Data flows one way: data → gpu → ops → nn → exec → optim/prune → experiment →
//! front ends (the web page through [`web`], the `varlab` CLI, tests).

/// The git commit this build is from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("VARLAB_COMMIT");

pub mod bench;
pub mod data;
pub mod exec;
pub mod experiment;
pub mod export;
pub mod gpu;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod prune;
pub mod rng;
pub mod smoke;
pub mod time;
pub mod train;

#[cfg(target_arch = "wasm32")]
pub mod web;
