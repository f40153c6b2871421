//! Launcher plumbing shared by the kernel families: operand size checks, workgroup counts
//! and the "uniform params + pipeline + bind group" preparation of one dispatch.

use std::marker::PhantomData;

use crate::gpu::{Context, Dispatch, GpuError, Result, Shader, Slice};

/// Refuses operands (`(name, buffer or slice, f32 words)`) that our shaders cannot index with
/// a u32 or whose buffers (slices) are too small, with a [`GpuError::Validation`] about
/// `what` that names the operand.
pub(crate) fn check_sizes<'a, B: Into<Slice<'a>> + Copy>(
    what: &str,
    operands: &[(&str, B, usize)],
) -> Result<()> {
    let refuse = |message: String| {
        Err(GpuError::Validation {
            what: what.to_string(),
            message,
        })
    };
    for &(name, buffer, len) in operands {
        if len > u32::MAX as usize {
            return refuse(format!(
                "{name} has {len} elements, more than a u32 index can address"
            ));
        }
        let slice: Slice = buffer.into();
        if slice.len < len {
            return refuse(format!(
                "buffer {name} holds {} bytes but needs {}",
                4 * slice.len,
                4 * len
            ));
        }
    }
    Ok(())
}

/// Workgroups for a grid-stride kernel of 256 threads per workgroup over `n` elements: at
/// least one, capped at the per-dimension limit (the kernel loops over the rest).
pub(crate) fn grid_1d(ctx: &Context, n: usize) -> u32 {
    grid_items(ctx, n.div_ceil(256)).max(1)
}

/// Workgroups for a kernel that gives each of `items` its own workgroup and loops over the
/// rest (grid-stride over workgroups): capped at the per-dimension limit; 0 items gives 0
/// workgroups, which `encode` skips.
pub(crate) fn grid_items(ctx: &Context, items: usize) -> u32 {
    let cap = ctx.report.limits.max_compute_workgroups_per_dimension as usize;
    items.min(cap) as u32
}

/// Workgroups a split reduction aims for: enough to fill a large GPU (an H200 has 132
/// multiprocessors), few enough that the final pass stays small.
const SPLIT_TARGET_WORKGROUPS: usize = 256;
/// The most pieces one reduction is cut into (the final pass adds at most this many
/// partial sums per output, in ascending order).
pub(crate) const MAX_SPLITS: usize = 64;

/// How to cut a reduction of `len` terms per output, run by `groups` workgroups when not
/// split, into pieces for more workgroups: `(chunk, splits)` with `chunk` a multiple of
/// `align`, at least `min_chunk` terms per piece (else no split) and
/// `splits = ⌈len / chunk⌉ ≤ MAX_SPLITS`. `(len, 1)` (no split) when `groups` already fills
/// the device or `len < 2·min_chunk`. The pieces are fixed by the shape alone, so the
/// partial sums, added in ascending order, give the same result on every run.
pub fn split_reduction(
    groups: usize,
    len: usize,
    min_chunk: usize,
    align: usize,
) -> (usize, usize) {
    if groups >= SPLIT_TARGET_WORKGROUPS || len < 2 * min_chunk.max(1) {
        return (len.max(1), 1);
    }
    let wanted = SPLIT_TARGET_WORKGROUPS
        .div_ceil(groups.max(1))
        .min(len / min_chunk.max(1))
        .clamp(1, MAX_SPLITS);
    let chunk = len.div_ceil(wanted).div_ceil(align.max(1)) * align.max(1);
    (chunk, len.div_ceil(chunk))
}

/// Workgroups `[x, y, 1]` for `count` one-per-workgroup items of a kernel that cannot loop,
/// folded into two dimensions when `count` exceeds the per-dimension limit (the shader
/// recovers `y·nx + x`); a count beyond the limit squared is a typed `LimitExceeded` error.
/// 0 items gives 0 workgroups.
pub(crate) fn grid_2d(ctx: &Context, what: &str, count: usize) -> Result<[u32; 3]> {
    if count == 0 {
        return Ok([0, 1, 1]);
    }
    let x = grid_items(ctx, count);
    let y = ctx.check_workgroups(what, count.div_ceil(x as usize) as u64)?;
    Ok([x, y, 1])
}

/// One dispatch of `shader`'s `entry` with `bindings` (uniform params included, if any).
pub(crate) async fn dispatch<'a, B: Into<Slice<'a>> + Copy>(
    ctx: &Context,
    shader: &Shader,
    entry: &'static str,
    workgroups: [u32; 3],
    bindings: &[(u32, B)],
) -> Result<Dispatch> {
    let pipeline = ctx.pipeline(shader, entry).await?;
    let bind_group = ctx.bind(&pipeline, bindings);
    Ok(Dispatch {
        label: entry,
        pipeline,
        bind_group,
        workgroups,
    })
}

/// Prepares one dispatch of `shader`'s `entry`: `params` goes into a new uniform buffer
/// bound at 0, `buffers` at their bindings. Returns the dispatch and the uniform buffer,
/// which the caller keeps alongside it (and may bind to further dispatches).
pub(crate) async fn prepare<'a, P: bytemuck::Pod, B: Into<Slice<'a>> + Copy>(
    ctx: &Context,
    shader: &Shader,
    entry: &'static str,
    params: &P,
    workgroups: [u32; 3],
    buffers: &[(u32, B)],
) -> Result<(Dispatch, wgpu::Buffer)> {
    let params = ctx.uniform(entry, params);
    let mut bindings: Vec<(u32, Slice)> = vec![(0, Slice::from(&params))];
    bindings.extend(buffers.iter().map(|&(i, b)| (i, b.into())));
    let dispatch = dispatch(ctx, shader, entry, workgroups, &bindings).await?;
    Ok((dispatch, params))
}

/// For a launcher whose checked operands are exactly its bindings, `(binding, name, buffer,
/// f32 words)`: the bindings, once [`check_sizes`] accepts them.
pub(crate) fn checked_bindings<'a, B: Into<Slice<'a>> + Copy>(
    what: &str,
    operands: &[(u32, &str, B, usize)],
) -> Result<Vec<(u32, B)>> {
    let sizes: Vec<(&str, B, usize)> = operands.iter().map(|&(_, n, b, l)| (n, b, l)).collect();
    check_sizes(what, &sizes)?;
    Ok(operands.iter().map(|&(i, _, b, _)| (i, b)).collect())
}

/// A prepared single-dispatch kernel: encode `dispatch`; the uniform buffer it reads is kept
/// alongside. Each family names its own type with a marker (`Elementwise` is
/// `Kernel<ElementwiseOps>`, `BiasAdd` is `Kernel<BiasAddOp>`, ...), so that each keeps its
/// own constructors.
pub struct Kernel<F> {
    pub dispatch: Dispatch,
    _params: wgpu::Buffer,
    _family: PhantomData<F>,
}

impl<F> Kernel<F> {
    /// [`prepare`], kept as a launcher.
    pub(crate) async fn prepare<'a, P: bytemuck::Pod, B: Into<Slice<'a>> + Copy>(
        ctx: &Context,
        shader: &Shader,
        entry: &'static str,
        params: &P,
        workgroups: [u32; 3],
        buffers: &[(u32, B)],
    ) -> Result<Self> {
        let (dispatch, params) = prepare(ctx, shader, entry, params, workgroups, buffers).await?;
        Ok(Kernel {
            dispatch,
            _params: params,
            _family: PhantomData,
        })
    }
}

/// Launchers whose dispatches are listed into a step: a single-dispatch [`Kernel`], or a
/// [`super::Matmul`] (two dispatches when split along K).
pub trait Encode {
    fn list(&self) -> Vec<Dispatch>;
}

impl<F> Encode for Kernel<F> {
    fn list(&self) -> Vec<Dispatch> {
        vec![self.dispatch.clone()]
    }
}

impl Encode for super::Matmul {
    fn list(&self) -> Vec<Dispatch> {
        self.dispatches.clone()
    }
}
