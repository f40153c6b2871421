//! Elementwise kernels over flat f32 arrays: `add`, `scale`, `axpy`.

use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

const SHADER: Shader = Shader {
    name: "elementwise",
    source: include_str!("../../shaders/elementwise.wgsl"),
};

/// CPU twin of `add`: `out = x + y`.
pub fn add_cpu(x: &[f32], y: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = a + b;
    }
}

/// CPU twin of `scale`: `out = alpha · x`.
pub fn scale_cpu(alpha: f32, x: &[f32], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(x) {
        *o = alpha * a;
    }
}

/// CPU twin of `axpy`: `y = alpha · x + y`.
pub fn axpy_cpu(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, a) in y.iter_mut().zip(x) {
        *o += alpha * a;
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    alpha: f32,
    _pad: [u32; 2],
}

/// Workgroups for `n` elements at 256 per workgroup, capped at the per-dimension limit
/// (the kernels loop over the rest).
pub(crate) fn grid_1d(ctx: &Context, n: usize) -> u32 {
    let cap = ctx.report.limits.max_compute_workgroups_per_dimension as usize;
    n.div_ceil(256).clamp(1, cap) as u32
}

fn check_len(what: &str, buffers: &[(&str, &wgpu::Buffer)], n: usize) -> Result<()> {
    for (name, buffer) in buffers {
        if (buffer.size() as usize) < 4 * n {
            return Err(GpuError::Validation {
                what: format!("{what} of {n} elements"),
                message: format!("buffer {name} holds only {} bytes", buffer.size()),
            });
        }
    }
    Ok(())
}

/// A prepared elementwise kernel.
pub struct Elementwise {
    pub dispatch: Dispatch,
    _params: wgpu::Buffer,
}

impl Elementwise {
    async fn new(
        ctx: &Context,
        entry: &'static str,
        n: usize,
        alpha: f32,
        buffers: &[(u32, &str, &wgpu::Buffer)],
    ) -> Result<Self> {
        let named: Vec<(&str, &wgpu::Buffer)> = buffers.iter().map(|(_, s, b)| (*s, *b)).collect();
        check_len(entry, &named, n)?;
        let params = ctx.uniform(
            entry,
            &Params {
                n: n as u32,
                alpha,
                _pad: [0; 2],
            },
        );
        let pipeline = ctx.pipeline(&SHADER, entry).await?;
        let mut bindings: Vec<(u32, &wgpu::Buffer)> = vec![(0, &params)];
        bindings.extend(buffers.iter().map(|(i, _, b)| (*i, *b)));
        let bind_group = ctx.bind(&pipeline, &bindings);
        Ok(Elementwise {
            dispatch: Dispatch {
                label: entry,
                pipeline,
                bind_group,
                workgroups: [grid_1d(ctx, n), 1, 1],
            },
            _params: params,
        })
    }

    /// `out = x + y` over the first `n` elements.
    pub async fn add(
        ctx: &Context,
        n: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::new(
            ctx,
            "add",
            n,
            0.0,
            &[(1, "x", x), (2, "y", y), (3, "out", out)],
        )
        .await
    }

    /// `out = alpha · x` over the first `n` elements.
    pub async fn scale(
        ctx: &Context,
        n: usize,
        alpha: f32,
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::new(ctx, "scale", n, alpha, &[(1, "x", x), (3, "out", out)]).await
    }

    /// `y = alpha · x + y` over the first `n` elements.
    pub async fn axpy(
        ctx: &Context,
        n: usize,
        alpha: f32,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::new(ctx, "axpy", n, alpha, &[(1, "x", x), (2, "y", y)]).await
    }
}
