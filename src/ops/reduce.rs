//! Sum reduction of a flat f32 array into one value, in two dispatches.

use super::kernel::{check_sizes, grid_1d, prepare};
use crate::gpu::{Context, Dispatch, Result, Shader};

const SHADER: Shader = Shader {
    name: "reduce",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/reduce.wgsl")),
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
        check_sizes(
            &format!("a sum of {n} elements"),
            &[("x", x, n), ("out", out, 1)],
        )?;
        let groups = (grid_1d(ctx, n) as usize).min(MAX_PARTIALS);
        let partials = ctx.zeros("sum partials", groups)?;
        let params = |n: usize| Params {
            n: n as u32,
            _pad: [0; 3],
        };
        let (d1, first) = prepare(
            ctx,
            &SHADER,
            "sum",
            &params(n),
            [groups as u32, 1, 1],
            &[(1, x), (2, &partials)],
        )
        .await?;
        let (d2, second) = prepare(
            ctx,
            &SHADER,
            "sum",
            &params(groups),
            [1, 1, 1],
            &[(1, &partials), (2, out)],
        )
        .await?;
        Ok(Sum {
            dispatches: [d1, d2],
            _buffers: [partials, first, second],
        })
    }
}
