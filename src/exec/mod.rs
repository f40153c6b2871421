//! Executors of a model spec ([`crate::nn::Model`]): they walk the nodes, run each op's
//! forward and backward, and fill a flat gradient array laid out like the parameter table.
//! - [`cpu`]: the plain-Rust executor assembled from the ops' CPU twins — the reference for
//!   the GPU executor and the fallback when WebGPU is missing.
//! - [`gpu`]: the same on the GPU with flat parameter/gradient/state buffers, datasets kept
//!   on the device and every step one prepared list of dispatches.

pub mod cpu;
pub mod fast;
pub mod gather;
pub mod gpu;
mod gpu_nodes;
pub mod memory;

pub use crate::ops::data::DeviceDataset;
pub use cpu::CpuExecutor;
pub use gpu::{GpuExecutor, Metrics};
pub use memory::{gpu_memory, GpuMemory};

use std::ops::Range;

use crate::nn::Shape;
use crate::ops::conv::Conv2dShape;

/// Where a node's backward sends the gradient of one of its inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// The slot wants no gradient (the image batch; on the CPU also a slot computed from it
    /// by parameter-free ops only, such as the MLP's flattened input). Kernels that must
    /// write a gradient write a sink (GPU) or the scratch (CPU).
    Sink,
    /// The first node of the backward reading the slot: write the slot's gradient.
    Direct,
    /// A later reader: write the scratch, then add it to the slot's gradient.
    Accumulate,
}

/// For every node and input, where its backward sends the input's gradient, `needs[s]`
/// saying whether slot `s` wants one. The backward runs the nodes in reverse, so the last
/// reader of a slot writes its gradient and earlier readers add to it (the sums, in that
/// order, of the zeroed buffers they replace: the same bits).
fn plan_targets(model: &crate::nn::Model, needs: &[bool]) -> Vec<Vec<Target>> {
    let mut written = vec![false; model.nodes.len() + 1];
    let mut targets = vec![Vec::new(); model.nodes.len()];
    for (i, node) in model.nodes.iter().enumerate().rev() {
        targets[i] = node
            .inputs
            .iter()
            .map(|&s| {
                if !needs[s] {
                    Target::Sink
                } else if written[s] {
                    Target::Accumulate
                } else {
                    written[s] = true;
                    Target::Direct
                }
            })
            .collect();
    }
    targets
}

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

/// The convolution of an `Op::Conv2d` over input `xs` (square kernel, stride, padding): the
/// one geometry both executors use.
pub(crate) fn conv_shape(
    n: usize,
    cin: usize,
    xs: &Shape,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Conv2dShape {
    Conv2dShape::new(n, cin, xs[2], xs[3], cout, k)
        .stride(stride, stride)
        .padding(pad, pad)
}
