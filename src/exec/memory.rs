//! What the GPU executor allocates for a model and a batch, computed from the spec without a
//! device: the slot buffers and their gradients, the accumulation scratch and sink, and the
//! convolutions' im2col columns and per-image weight gradients (the buffers that grow with
//! the batch), plus the flat parameter, gradient and state buffers. Small per-node buffers
//! (BatchNorm and LayerNorm partial sums, max-pool indices, attention scratch, uniforms) are
//! left out: they are kilobytes where the rest is megabytes. [`GpuExecutor::new`] checks the
//! largest buffer against the adapter's limits before allocating anything, so a model that
//! cannot fit is refused with one sentence naming the batch that would.
//!
//! [`GpuExecutor::new`]: super::GpuExecutor::new

use super::gpu_nodes::plan;
use super::{conv_shape, Target};
use crate::nn::{Model, Op, SpecError};
use crate::ops::conv::ConvMethod;

/// The GPU executor's memory for one model and batch, in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuMemory {
    pub batch: usize,
    /// Buffers whose size grows with the batch (activations, gradients, scratch, columns).
    pub batch_bytes: u64,
    /// Parameters, gradients and state: the same at every batch.
    pub fixed_bytes: u64,
    /// The largest single buffer: what it holds (and for which node) and its bytes.
    pub largest: (String, u64),
}

impl GpuMemory {
    /// Batch-dependent bytes per image.
    pub fn per_image(&self) -> u64 {
        self.batch_bytes / self.batch.max(1) as u64
    }

    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.batch_bytes + self.fixed_bytes
    }

    /// The largest batch whose largest buffer stays within `allowed` bytes (0 when not even
    /// one image does). Buffers grow linearly with the batch.
    pub fn largest_batch_within(&self, allowed: u64) -> usize {
        let per = (self.largest.1 / self.batch.max(1) as u64).max(1);
        (allowed / per) as usize
    }

    /// One line for summaries: total, per image, largest buffer.
    pub fn describe(&self) -> String {
        format!(
            "GPU executor at batch {}: {} ({} per image, {} fixed); largest buffer {} ({})",
            self.batch,
            human(self.total()),
            human(self.per_image()),
            human(self.fixed_bytes),
            human(self.largest.1),
            self.largest.0
        )
    }
}

/// Bytes as kB/MB/GB (powers of 1000), three significant figures.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    let (v, unit) = if b >= 1e9 {
        (b / 1e9, "GB")
    } else if b >= 1e6 {
        (b / 1e6, "MB")
    } else if b >= 1e3 {
        (b / 1e3, "kB")
    } else {
        return format!("{bytes} B");
    };
    format!("{v:.3} {unit}")
}

/// What [`GpuExecutor::new`](super::GpuExecutor::new) allocates for `model` at `batch`.
pub fn gpu_memory(model: &Model, batch: usize) -> Result<GpuMemory, SpecError> {
    let shapes = model.shapes(batch)?;
    let mut batch_bytes = 0u64;
    let mut largest = (String::new(), 0u64);
    let mut add = |what: String, floats: usize| {
        let bytes = 4 * floats.max(1) as u64;
        batch_bytes += bytes;
        if bytes > largest.1 {
            largest = (what, bytes);
        }
    };
    // Every slot and its gradient.
    for (s, shape) in shapes.iter().enumerate() {
        add(format!("activations of slot {s}"), shape.numel());
        add(format!("activation gradients of slot {s}"), shape.numel());
    }
    let targets = plan(model);
    let mut scratch = vec![false; shapes.len()];
    for (node, t) in model.nodes.iter().zip(&targets) {
        for (&s, &t) in node.inputs.iter().zip(t) {
            if t == Target::Accumulate && !scratch[s] {
                scratch[s] = true;
                add(format!("gradient scratch of slot {s}"), shapes[s].numel());
            }
        }
    }
    let widest = shapes.iter().map(|s| s.numel()).max().unwrap_or(1);
    add("gradient sink".into(), widest);
    for (node, t) in model.nodes.iter().zip(&targets) {
        let Op::Conv2d {
            cin,
            cout,
            k,
            stride,
            pad,
            ..
        } = node.op
        else {
            continue;
        };
        let s = conv_shape(batch, cin, &shapes[node.inputs[0]], cout, k, stride, pad);
        let im2col = ConvMethod::for_shape(&s) == ConvMethod::Im2col;
        if im2col {
            add(format!("conv cols of {}", node.name), s.len_cols());
            if t[0] != Target::Sink {
                add(format!("conv dcols of {}", node.name), s.len_cols());
            }
        }
        if batch > 1 {
            add(
                format!("conv dW per image of {}", node.name),
                batch * s.len_w(),
            );
        }
    }
    let fixed_floats = 2 * model.params().buffer_len + model.state().buffer_len;
    Ok(GpuMemory {
        batch,
        batch_bytes,
        fixed_bytes: 4 * fixed_floats as u64,
        largest,
    })
}
