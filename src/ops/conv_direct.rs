//! Direct convolution for layers with few channels (`shaders/conv_direct.wgsl`), forward and
//! backward (dx, dW), chosen by [`super::conv::ConvMethod::for_shape`].
//!
//! Why: through im2col, LeNet-5's products are 6×784×25 and 16×100×150 per image, and the
//! matmul's 64×64 tiles are mostly idle for 6 or 16 output rows (the weight gradient's
//! 6×25 output fills 4 % of one tile, 128 times). Here every thread computes eight channels
//! of four pixels (forward, dx) or of one weight (dW), so the idle share is at most the
//! rounding of the channel count up to 8, and im2col's column buffer and the bias pass
//! disappear.
//!
//! The CPU twins are the direct loops [`super::conv::conv2d_cpu`] and
//! [`super::conv::conv2d_backward_cpu`]; the forward sums in their order, the gradients in
//! another (dx: by output channel; dW: per image, then over the images with `sum_batch`).

use super::conv::{helper, params, Conv2dShape};
use super::kernel::{grid_1d, prepare};
use crate::gpu::{Context, Dispatch, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "conv_direct",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/conv_direct.wgsl")),
};

/// Channels per thread (two vec4 accumulators).
const GROUP: usize = 8;
/// Weight terms a workgroup stages (`KMAX` in the shader): Cin·kh·kw for the forward,
/// Cout·kh·kw for dx.
/// 512: the two staged arrays (`wlo`, `whi`, a vec4 each per term) take 2·512·16 B =
/// 16 KiB, WebGPU's guaranteed `maxComputeWorkgroupStorageSize`. LeNet-5 needs 400.
pub(super) const KMAX: usize = 512;

/// Whether the direct kernels can stage `s`'s weights (forward and dx).
pub(super) fn fits(s: &Conv2dShape) -> bool {
    let khw = s.kh * s.kw;
    s.cin * khw <= KMAX && s.cout * khw <= KMAX
}
/// Threads per workgroup of `direct_dw`.
const DW_THREADS: usize = 64;

/// `y = conv(x, W) (+ b)` in one dispatch. Returns it and its uniform buffer.
pub(super) async fn forward<'a>(
    ctx: &Context,
    s: &Conv2dShape,
    x: Slice<'a>,
    w: Slice<'a>,
    b: Option<Slice<'a>>,
    y: Slice<'a>,
) -> Result<(Dispatch, wgpu::Buffer)> {
    let total = s.n * s.hw_out();
    let mut p = params(s, total);
    p.bias = b.is_some() as u32;
    // Four output pixels per thread.
    let workgroups = [
        grid_1d(ctx, total.div_ceil(4)),
        s.cout.div_ceil(GROUP) as u32,
        1,
    ];
    // Without a bias the binding still needs a buffer; the shader does not read it.
    let buffers = [(1, x), (2, w), (3, y), (4, b.unwrap_or(w))];
    prepare(ctx, &SHADER, "direct_forward", &p, workgroups, &buffers).await
}

/// `dx = convᵀ(dy, W)` in one dispatch (a gather). Returns it and its uniform buffer.
pub(super) async fn input_grad<'a>(
    ctx: &Context,
    s: &Conv2dShape,
    dy: Slice<'a>,
    w: Slice<'a>,
    dx: Slice<'a>,
) -> Result<(Dispatch, wgpu::Buffer)> {
    // One thread per four input pixels and group of eight channels.
    let total = s.n * s.h * s.w;
    let workgroups = [
        grid_1d(ctx, total.div_ceil(4)),
        s.cin.div_ceil(GROUP) as u32,
        1,
    ];
    let buffers = [(1, dy), (2, w), (3, dx)];
    prepare(
        ctx,
        &SHADER,
        "direct_dx",
        &params(s, total),
        workgroups,
        &buffers,
    )
    .await
}

/// `dW = Σ_n dy[n] ⋆ x[n]`: per-image sums into a scratch [N, Cout, K] then `sum_batch`,
/// or straight into `dw` for one image. Returns the dispatches and the buffers they use.
pub(super) async fn weight_grad<'a>(
    ctx: &Context,
    s: &Conv2dShape,
    x: Slice<'a>,
    dy: Slice<'a>,
    dw: Slice<'a>,
) -> Result<(Vec<Dispatch>, Vec<wgpu::Buffer>)> {
    let total = s.cout.div_ceil(GROUP) * s.k();
    let what = format!("a direct convolution's weight gradient of shape {s:?}");
    let images = ctx.check_workgroups(&what, s.n as u64)?;
    let workgroups = [
        ctx.check_workgroups(&what, total.div_ceil(DW_THREADS) as u64)?,
        images,
        1,
    ];
    let p = params(s, total);
    if s.n == 1 {
        let buffers = [(1, x), (2, dy), (3, dw)];
        let (d, params) = prepare(ctx, &SHADER, "direct_dw", &p, workgroups, &buffers).await?;
        return Ok((vec![d], vec![params]));
    }
    let parts = ctx.zeros("conv dW per image", s.n * s.len_w())?;
    let buffers = [(1, x), (2, dy), (3, Slice::from(&parts))];
    let (d, params) = prepare(ctx, &SHADER, "direct_dw", &p, workgroups, &buffers).await?;
    let (sum, sum_params) = helper(ctx, "sum_batch", s, s.len_w(), &parts, dw).await?;
    Ok((vec![d, sum], vec![params, parts, sum_params]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shader_stages_kmax_terms() {
        let line = format!("const KMAX: u32 = {KMAX}u;");
        assert!(
            SHADER.source.contains(&line),
            "shaders/conv_direct.wgsl lacks `{line}`"
        );
    }
}
