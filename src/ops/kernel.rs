//! Launcher plumbing shared by the kernel families: operand size checks and the
//! "uniform params + pipeline + bind group" preparation of one dispatch.

use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

/// Refuses buffers smaller than the operands they hold (`(name, buffer, f32 words)`), with
/// a [`GpuError::Validation`] about `what` that names the operand.
pub(crate) fn check_sizes(what: &str, operands: &[(&str, &wgpu::Buffer, usize)]) -> Result<()> {
    for (name, buffer, len) in operands {
        if (buffer.size() as usize) < 4 * len {
            return Err(GpuError::Validation {
                what: what.to_string(),
                message: format!(
                    "buffer {name} holds {} bytes but needs {}",
                    buffer.size(),
                    4 * len
                ),
            });
        }
    }
    Ok(())
}

/// Prepares one dispatch of `shader`'s `entry`: `params` goes into a new uniform buffer
/// bound at 0, `buffers` at their bindings. Returns the dispatch and the uniform buffer,
/// which the caller keeps alongside it.
pub(crate) async fn prepare<P: bytemuck::Pod>(
    ctx: &Context,
    shader: &Shader,
    entry: &'static str,
    params: &P,
    workgroups: [u32; 3],
    buffers: &[(u32, &wgpu::Buffer)],
) -> Result<(Dispatch, wgpu::Buffer)> {
    let params = ctx.uniform(entry, params);
    let pipeline = ctx.pipeline(shader, entry).await?;
    let mut bindings: Vec<(u32, &wgpu::Buffer)> = vec![(0, &params)];
    bindings.extend_from_slice(buffers);
    let bind_group = ctx.bind(&pipeline, &bindings);
    let dispatch = Dispatch {
        label: entry,
        pipeline,
        bind_group,
        workgroups,
    };
    Ok((dispatch, params))
}
