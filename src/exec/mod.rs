//! Executors of a model spec ([`crate::nn::Model`]): they walk the nodes, run each op's
//! forward and backward, and fill a flat gradient array laid out like the parameter table.
//! - [`cpu`]: the plain-Rust executor assembled from the ops' CPU twins — the reference for
//!   the GPU executor and the fallback when WebGPU is missing.
//! - [`gpu`]: the same on the GPU with flat parameter/gradient/state buffers, datasets kept
//!   on the device and every step one prepared list of dispatches.

pub mod cpu;
pub mod fast;
pub mod gpu;
mod gpu_nodes;

pub use crate::ops::data::DeviceDataset;
pub use cpu::CpuExecutor;
pub use gpu::{GpuExecutor, Metrics};

use std::ops::Range;

/// Per node of `model`, the ranges of its parameters (in [`crate::nn::Op::params`] order) and
/// of its state tensors (in [`crate::nn::Op::state`] order) in the flat arrays.
#[allow(clippy::type_complexity)]
fn node_ranges(model: &crate::nn::Model) -> (Vec<Vec<Range<usize>>>, Vec<Vec<Range<usize>>>) {
    let count = model.nodes.len();
    let mut params = vec![Vec::new(); count];
    for p in &model.params().entries {
        params[p.node].push(p.range());
    }
    let mut state = vec![Vec::new(); count];
    for s in &model.state().entries {
        state[s.node].push(s.range());
    }
    (params, state)
}
