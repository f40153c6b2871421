//! Fully connected layer `y = x·Wᵀ + b` (PyTorch layout), forward and backward, plus
//! the per-channel bias kernels [`BiasAdd`] and [`ChannelSum`] that convolutions, attention
//! and the ViT glue reuse (a `[rows, cols]` tensor is `outer = rows`, `channels = cols`,
//! `inner = 1`).
//!
//! Shapes: `x` [N, in], `W` [out, in], `b` [out], `y` [N, out], all row-major f32.
//! Forward: one [`Matmul`] (`trans_b`), then `bias_add`. Backward: `dX = dY·W`,
//! `dW = dYᵀ·X` (two Matmuls) and `db = Σ_n dY[n, :]` (`column_sum`, split into pieces
//! over the rows when there are few columns, no atomics). Gradients are written, not
//! accumulated.

use super::kernel::{check_sizes, grid_1d, grid_items, prepare, split_reduction, Encode, Kernel};
use super::matmul::{Matmul, MatmulShape};
use crate::gpu::{Context, Dispatch, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "linear",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/linear.wgsl")),
};

/// Sizes of a linear layer applied to a batch of `n` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    pub n: usize,
    pub in_features: usize,
    pub out_features: usize,
}

impl LinearShape {
    pub fn new(n: usize, in_features: usize, out_features: usize) -> Self {
        LinearShape {
            n,
            in_features,
            out_features,
        }
    }
    pub fn len_x(&self) -> usize {
        self.n * self.in_features
    }
    pub fn len_w(&self) -> usize {
        self.out_features * self.in_features
    }
    pub fn len_y(&self) -> usize {
        self.n * self.out_features
    }
    /// `y = x·Wᵀ`: `m = n`, `n = out`, `k = in`, W stored [out, in].
    pub fn forward_product(&self) -> MatmulShape {
        MatmulShape::new(self.n, self.out_features, self.in_features).transposed(false, true)
    }
    /// `dX = dY·W`: [N, out]·[out, in].
    pub fn input_grad_product(&self) -> MatmulShape {
        MatmulShape::new(self.n, self.in_features, self.out_features)
    }
    /// `dW = dYᵀ·X`: dY stored [N, out] read transposed, times X [N, in].
    pub fn weight_grad_product(&self) -> MatmulShape {
        MatmulShape::new(self.out_features, self.in_features, self.n).transposed(true, false)
    }
}

/// CPU twin of the forward: `y[i, o] = Σ_k x[i, k]·W[o, k] (+ b[o])`, k ascending, the bias
/// added last (as the GPU does).
pub fn linear_cpu(s: &LinearShape, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let (inf, outf) = (s.in_features, s.out_features);
    assert!(x.len() >= s.len_x() && w.len() >= s.len_w() && y.len() >= s.len_y());
    for i in 0..s.n {
        for o in 0..outf {
            let mut acc = 0.0f32;
            for k in 0..inf {
                acc += x[i * inf + k] * w[o * inf + k];
            }
            if let Some(b) = b {
                acc += b[o];
            }
            y[i * outf + o] = acc;
        }
    }
}

/// CPU twin of the backward for `L = Σ dY·y`: `dx` [N, in] `= dY·W`, `dw` [out, in]
/// `= dYᵀ·x`, `db` [out] `= Σ_n dY[n, :]`. Each output is optional.
pub fn linear_backward_cpu(
    s: &LinearShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    let (inf, outf) = (s.in_features, s.out_features);
    if let Some(dx) = dx {
        for i in 0..s.n {
            for k in 0..inf {
                let mut acc = 0.0f32;
                for o in 0..outf {
                    acc += dy[i * outf + o] * w[o * inf + k];
                }
                dx[i * inf + k] = acc;
            }
        }
    }
    if let Some(dw) = dw {
        for o in 0..outf {
            for k in 0..inf {
                let mut acc = 0.0f32;
                for i in 0..s.n {
                    acc += dy[i * outf + o] * x[i * inf + k];
                }
                dw[o * inf + k] = acc;
            }
        }
    }
    if let Some(db) = db {
        channel_sum_cpu(s.n, outf, 1, dy, db);
    }
}

/// CPU twin of `bias_add`: `y[o, c, i] += bias[c]` for `y` laid out [outer, channels, inner].
pub fn bias_add_cpu(outer: usize, channels: usize, inner: usize, bias: &[f32], y: &mut [f32]) {
    for (idx, v) in y[..outer * channels * inner].iter_mut().enumerate() {
        *v += bias[(idx / inner) % channels];
    }
}

/// CPU twin of `channel_sum`: `out[c] = Σ_{o, i} x[o, c, i]` (sequential; the GPU sums in a
/// tree, so the two agree to within the usual `n·ε·Σ|x|`).
pub fn channel_sum_cpu(outer: usize, channels: usize, inner: usize, x: &[f32], out: &mut [f32]) {
    for c in 0..channels {
        let mut acc = 0.0f32;
        for o in 0..outer {
            for i in 0..inner {
                acc += x[(o * channels + c) * inner + i];
            }
        }
        out[c] = acc;
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BiasParams {
    outer: u32,
    channels: u32,
    inner: u32,
    total: u32,
    chunk: u32,
    splits: u32,
    _pad: [u32; 2],
}

fn bias_params(outer: usize, channels: usize, inner: usize) -> BiasParams {
    BiasParams {
        outer: outer as u32,
        channels: channels as u32,
        inner: inner as u32,
        total: (outer * channels * inner) as u32,
        chunk: (outer * inner) as u32,
        splits: 1,
        _pad: [0; 2],
    }
}

/// Marker of [`BiasAdd`].
pub enum BiasAddOp {}

/// `y[o, c, i] += bias[c]` on a tensor [outer, channels, inner], prepared once.
pub type BiasAdd = Kernel<BiasAddOp>;

impl BiasAdd {
    pub async fn new<'a>(
        ctx: &Context,
        outer: usize,
        channels: usize,
        inner: usize,
        bias: impl Into<Slice<'a>>,
        y: impl Into<Slice<'a>>,
    ) -> Result<BiasAdd> {
        let (bias, y): (Slice, Slice) = (bias.into(), y.into());
        let total = outer * channels * inner;
        check_sizes(
            &format!("a bias add over [{outer}, {channels}, {inner}]"),
            &[("bias", bias, channels), ("y", y, total)],
        )?;
        let params = bias_params(outer, channels, inner);
        let workgroups = [grid_1d(ctx, total), 1, 1];
        let buffers = [(1, bias), (2, y)];
        Self::prepare(ctx, &SHADER, "bias_add", &params, workgroups, &buffers).await
    }
}

impl BiasAdd {
    /// [`BiasAdd::new`] over `[outer, channels, inner]` when a `bias` is given, its dispatch
    /// appended to `dispatches`.
    pub(crate) async fn append(
        ctx: &Context,
        (outer, channels, inner): (usize, usize, usize),
        bias: Option<Slice<'_>>,
        y: Slice<'_>,
        dispatches: &mut Vec<Dispatch>,
    ) -> Result<Option<BiasAdd>> {
        let Some(bias) = bias else { return Ok(None) };
        let op = BiasAdd::new(ctx, outer, channels, inner, bias, y).await?;
        dispatches.extend(op.list());
        Ok(Some(op))
    }
}

/// Column sums of a `[rows, cols]` matrix (`column_sum`) need at least this many rows per
/// piece before they are split (8 row lanes, 8 rows each).
const COLUMN_MIN_CHUNK: usize = 64;
/// Channel sums (`channel_sum`, 256 threads per piece) need at least this many terms per
/// piece before they are split.
const CHANNEL_MIN_CHUNK: usize = 1024;

/// How [`ChannelSum`] cuts the sum over `[outer, channels, inner]`: `(chunk, splits)` —
/// rows per piece for `inner = 1`, terms (of the `outer·inner` per channel) otherwise.
/// Unsplit (`splits = 1`) when the channels alone give enough workgroups or there are
/// few terms.
pub fn channel_sum_split(outer: usize, channels: usize, inner: usize) -> (usize, usize) {
    if inner == 1 {
        split_reduction(channels.div_ceil(32), outer, COLUMN_MIN_CHUNK, 8)
    } else {
        split_reduction(channels, outer * inner, CHANNEL_MIN_CHUNK, 256)
    }
}

/// `out[c] = Σ_{o, i} x[o, c, i]` (a bias gradient), prepared once. Written, not accumulated.
/// For `inner = 1` (column sums of `[rows, cols]`) the `column_sum` entry runs: 8 row lanes
/// per column, added in a fixed order; otherwise `channel_sum`, a tree per channel. When
/// there are few channels and many terms ([`channel_sum_split`]), the terms are cut into
/// pieces summed by their own workgroups into a scratch `[splits, channels]`, then a second
/// (unsplit) `column_sum` adds the pieces in ascending order: two dispatches, same result
/// on every run. Either way the result is within `outer·inner·ε·Σ|x|` of
/// [`channel_sum_cpu`]. Encode `dispatches` in order.
pub struct ChannelSum {
    pub dispatches: Vec<Dispatch>,
    /// `(chunk, splits)` as chosen by [`channel_sum_split`].
    pub split: (usize, usize),
    _buffers: Vec<wgpu::Buffer>,
}

impl ChannelSum {
    pub async fn new<'a>(
        ctx: &Context,
        outer: usize,
        channels: usize,
        inner: usize,
        x: impl Into<Slice<'a>>,
        out: impl Into<Slice<'a>>,
    ) -> Result<ChannelSum> {
        let (x, out): (Slice, Slice) = (x.into(), out.into());
        check_sizes(
            &format!("a channel sum over [{outer}, {channels}, {inner}]"),
            &[("x", x, outer * channels * inner), ("out", out, channels)],
        )?;
        let what = format!("a channel sum over [{outer}, {channels}, {inner}]");
        let (chunk, splits) = channel_sum_split(outer, channels, inner);
        // Rows of a matrix (inner = 1): 32 adjacent columns per workgroup, so that reads
        // are contiguous; otherwise one workgroup per channel, reading along `inner`.
        let (entry, groups) = if inner == 1 {
            ("column_sum", channels.div_ceil(32))
        } else {
            ("channel_sum", channels)
        };
        let wy = ctx.check_workgroups(&what, splits as u64)?;
        let workgroups = [grid_items(ctx, groups).max(1), wy, 1];
        let params = BiasParams {
            chunk: chunk as u32,
            splits: splits as u32,
            ..bias_params(outer, channels, inner)
        };
        if splits == 1 {
            let (dispatch, params) = prepare(
                ctx,
                &SHADER,
                entry,
                &params,
                workgroups,
                &[(1, x), (2, out)],
            )
            .await?;
            return Ok(ChannelSum {
                dispatches: vec![dispatch],
                split: (chunk, splits),
                _buffers: vec![params],
            });
        }
        let parts = ctx.zeros("channel sum pieces", splits * channels)?;
        let (pieces, p1) = prepare(
            ctx,
            &SHADER,
            entry,
            &params,
            workgroups,
            &[(1, x), (2, Slice::from(&parts))],
        )
        .await?;
        // The pieces are a [splits, channels] matrix: its column sums, unsplit.
        let final_params = bias_params(splits, channels, 1);
        let final_groups = [grid_items(ctx, channels.div_ceil(32)).max(1), 1, 1];
        let (total, p2) = prepare(
            ctx,
            &SHADER,
            "column_sum",
            &final_params,
            final_groups,
            &[(1, Slice::from(&parts)), (2, out)],
        )
        .await?;
        Ok(ChannelSum {
            dispatches: vec![pieces, total],
            split: (chunk, splits),
            _buffers: vec![p1, p2, parts],
        })
    }
}

impl Encode for ChannelSum {
    fn list(&self) -> Vec<Dispatch> {
        self.dispatches.clone()
    }
}

impl ChannelSum {
    /// [`ChannelSum::new`] over `[outer, channels, inner]` when an `out` is given, its
    /// dispatch appended to `dispatches`.
    pub(crate) async fn append(
        ctx: &Context,
        (outer, channels, inner): (usize, usize, usize),
        x: Slice<'_>,
        out: Option<Slice<'_>>,
        dispatches: &mut Vec<Dispatch>,
    ) -> Result<Option<ChannelSum>> {
        let Some(out) = out else { return Ok(None) };
        let op = ChannelSum::new(ctx, outer, channels, inner, x, out).await?;
        dispatches.extend(op.list());
        Ok(Some(op))
    }
}

/// A prepared forward `y = x·Wᵀ (+ b)`: encode `dispatches` in order.
pub struct Linear {
    pub shape: LinearShape,
    pub dispatches: Vec<Dispatch>,
    _matmul: Matmul,
    _bias: Option<BiasAdd>,
}

impl Linear {
    /// `w`, `b`: whole buffers or slices of the flat parameters.
    pub async fn new<'a>(
        ctx: &Context,
        shape: LinearShape,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        b: Option<Slice<'a>>,
        y: impl Into<Slice<'a>>,
    ) -> Result<Linear> {
        let (x, w, y): (Slice, Slice, Slice) = (x.into(), w.into(), y.into());
        let what = format!("a linear layer of shape {shape:?}");
        check_sizes(
            &what,
            &[
                ("x", x, shape.len_x()),
                ("W", w, shape.len_w()),
                ("y", y, shape.len_y()),
            ],
        )?;
        let matmul = Matmul::new(ctx, shape.forward_product(), 1.0, 0.0, x, w, y).await?;
        let mut dispatches = matmul.list();
        let dims = (shape.n, shape.out_features, 1);
        let bias = BiasAdd::append(ctx, dims, b, y, &mut dispatches).await?;
        Ok(Linear {
            shape,
            dispatches,
            _matmul: matmul,
            _bias: bias,
        })
    }
}

/// A prepared backward: writes whichever of `dx` [N, in], `dw` [out, in], `db` [out] are
/// given, from `x`, `W` and the upstream gradient `dy` [N, out]. Encode `dispatches` in order.
pub struct LinearBackward {
    pub shape: LinearShape,
    pub dispatches: Vec<Dispatch>,
    _matmuls: Vec<Matmul>,
    _bias: Option<ChannelSum>,
}

impl LinearBackward {
    #[allow(clippy::too_many_arguments)]
    pub async fn new<'a>(
        ctx: &Context,
        shape: LinearShape,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        dy: impl Into<Slice<'a>>,
        dx: Option<Slice<'a>>,
        dw: Option<Slice<'a>>,
        db: Option<Slice<'a>>,
    ) -> Result<LinearBackward> {
        let (x, w, dy): (Slice, Slice, Slice) = (x.into(), w.into(), dy.into());
        let what = format!("a linear backward of shape {shape:?}");
        check_sizes(
            &what,
            &[
                ("x", x, shape.len_x()),
                ("W", w, shape.len_w()),
                ("dy", dy, shape.len_y()),
            ],
        )?;
        let mut dispatches = Vec::new();
        let mut matmuls = Vec::new();
        if let Some(dx) = dx {
            let op = Matmul::new(ctx, shape.input_grad_product(), 1.0, 0.0, dy, w, dx).await?;
            dispatches.extend(op.list());
            matmuls.push(op);
        }
        if let Some(dw) = dw {
            let op = Matmul::new(ctx, shape.weight_grad_product(), 1.0, 0.0, dy, x, dw).await?;
            dispatches.extend(op.list());
            matmuls.push(op);
        }
        let dims = (shape.n, shape.out_features, 1);
        let bias = ChannelSum::append(ctx, dims, dy, db, &mut dispatches).await?;
        Ok(LinearBackward {
            shape,
            dispatches,
            _matmuls: matmuls,
            _bias: bias,
        })
    }
}
