//! Sum reduction of a flat f32 array into one value, in two dispatches.

use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

const SHADER: Shader = Shader {
    name: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
};
/// Workgroups of the first pass; also the length of the partial-sum buffer.
const MAX_PARTIALS: usize = 256;

/// CPU twin: the sum, accumulated in f64 and rounded once.
pub fn sum_cpu(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// A prepared sum: `out[0] = Σ x[0..n]`. Encode both `dispatches`, in order.
pub struct Sum {
    pub dispatches: [Dispatch; 2],
    _buffers: [wgpu::Buffer; 3],
}

impl Sum {
    pub async fn new(ctx: &Context, n: usize, x: &wgpu::Buffer, out: &wgpu::Buffer) -> Result<Sum> {
        if (x.size() as usize) < 4 * n {
            return Err(GpuError::Validation {
                what: format!("a sum of {n} elements"),
                message: format!("the input holds only {} bytes", x.size()),
            });
        }
        let groups = n.div_ceil(256).clamp(1, MAX_PARTIALS);
        let partials = ctx.zeros("sum partials", groups)?;
        let pipeline = ctx.pipeline(&SHADER, "sum").await?;
        let first = ctx.uniform(
            "sum params",
            &Params {
                n: n as u32,
                _pad: [0; 3],
            },
        );
        let second = ctx.uniform(
            "sum params",
            &Params {
                n: groups as u32,
                _pad: [0; 3],
            },
        );
        let d1 = Dispatch {
            label: "sum partials",
            bind_group: ctx.bind(&pipeline, &[(0, &first), (1, x), (2, &partials)]),
            pipeline: pipeline.clone(),
            workgroups: [groups as u32, 1, 1],
        };
        let d2 = Dispatch {
            label: "sum total",
            bind_group: ctx.bind(&pipeline, &[(0, &second), (1, &partials), (2, out)]),
            pipeline,
            workgroups: [1, 1, 1],
        };
        Ok(Sum {
            dispatches: [d1, d2],
            _buffers: [partials, first, second],
        })
    }
}
