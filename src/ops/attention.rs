//! Multi-head self-attention for ViTs, forward and backward, on token tensors `x [B, T, C]`
//! with `H` heads of `D = C / H` channels:
//!
//! ```text
//! qkv    = x·Wqkvᵀ + bqkv          Wqkv [3C, C] (rows 0..C Q, C..2C K, 2C..3C V), bqkv [3C]
//! q,k,v  = split(qkv)              each [B, H, T, D]
//! P      = softmax_rows(q·kᵀ/√D)   [B, H, T, T], saved for the backward
//! O      = P·v                     [B, H, T, D]
//! merged = merge(O)                [B, T, C]
//! y      = merged·Woᵀ + bo         Wo [C, C], bo [C]
//! ```
//!
//! The backward runs the chain rule in reverse: `dWo = dyᵀ·merged`, `dbo = Σ_rows dy`,
//! `dmerged = dy·Wo`, `dO = split(dmerged)`, `dP = dO·vᵀ`,
//! `dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √D`, `dq = dS·k`, `dk = dSᵀ·q`, `dv = Pᵀ·dO`,
//! `dqkv = merge(dq, dk, dv)`, `dWqkv = dqkvᵀ·x`, `dbqkv = Σ_rows dqkv`, `dx = dqkv·Wqkv`.
//! The products run on [`Matmul`], the bias addition and bias gradients on
//! [`crate::ops::linear`]'s [`BiasAdd`] / [`ChannelSum`] (`[rows, cols]` is `outer = rows`,
//! `channels = cols`, `inner = 1`); the permutations and softmax kernels live in
//! `shaders/attention.wgsl`. Each piece has a CPU twin so it can be tested alone, and
//! [`attention_forward_cpu`] / [`attention_backward_cpu`] chain them exactly as the GPU does.

use crate::gpu::{Context, Dispatch, GpuError, OwnedSlice, Result, Shader, Slice};
use crate::ops::kernel::{check_sizes, grid_1d, grid_items, Encode, Kernel};
use crate::ops::linear::{bias_add_cpu, channel_sum_cpu, BiasAdd, ChannelSum};
use crate::ops::matmul::{matmul_cpu, Matmul, MatmulShape};

const SHADER: Shader = Shader {
    name: "attention",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/attention.wgsl")),
};

/// Sizes of one attention block: `batch` B, `tokens` T, `dim` C, `heads` H (H divides C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub tokens: usize,
    pub dim: usize,
    pub heads: usize,
}

impl AttentionShape {
    pub fn new(batch: usize, tokens: usize, dim: usize, heads: usize) -> Self {
        AttentionShape {
            batch,
            tokens,
            dim,
            heads,
        }
    }
    /// `D = C / H`.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads.max(1)
    }
    /// `B·T`, the rows of every token-major product.
    pub fn rows(&self) -> usize {
        self.batch * self.tokens
    }
    /// Elements of `x`, `y` and of each of q, k, v, O: `B·T·C`.
    pub fn len_x(&self) -> usize {
        self.batch * self.tokens * self.dim
    }
    /// Elements of the attention probabilities `P`: `B·H·T·T`.
    pub fn len_p(&self) -> usize {
        self.batch * self.heads * self.tokens * self.tokens
    }
    /// `1/√D`, the score scale.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }
    fn validate(&self) -> Result<()> {
        if self.heads == 0 || self.dim == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(GpuError::Validation {
                what: format!("an attention block of shape {self:?}"),
                message: format!(
                    "the channel count {} must be a positive multiple of the head count {}",
                    self.dim, self.heads
                ),
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// CPU twins of the pieces.

/// Index in a `[B, H, T, D]` tensor of channel `c` of token `(b, t)`.
fn head_index(s: &AttentionShape, b: usize, t: usize, c: usize) -> usize {
    let d = s.head_dim();
    ((b * s.heads + c / d) * s.tokens + t) * d + c % d
}

/// `qkv [B, T, 3C]` → `(q, k, v)`, each `[B, H, T, D]`.
pub fn split_qkv_cpu(s: &AttentionShape, qkv: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = s.dim;
    let mut out = [
        vec![0.0; s.len_x()],
        vec![0.0; s.len_x()],
        vec![0.0; s.len_x()],
    ];
    for b in 0..s.batch {
        for t in 0..s.tokens {
            for (which, o) in out.iter_mut().enumerate() {
                for ch in 0..c {
                    o[head_index(s, b, t, ch)] = qkv[(b * s.tokens + t) * 3 * c + which * c + ch];
                }
            }
        }
    }
    let [q, k, v] = out;
    (q, k, v)
}

/// Backward of [`split_qkv_cpu`]: `dq, dk, dv [B, H, T, D]` → `dqkv [B, T, 3C]`.
pub fn merge_qkv_cpu(s: &AttentionShape, dq: &[f32], dk: &[f32], dv: &[f32]) -> Vec<f32> {
    let c = s.dim;
    let mut dqkv = vec![0.0; 3 * s.len_x()];
    for b in 0..s.batch {
        for t in 0..s.tokens {
            for (which, g) in [dq, dk, dv].into_iter().enumerate() {
                for ch in 0..c {
                    dqkv[(b * s.tokens + t) * 3 * c + which * c + ch] = g[head_index(s, b, t, ch)];
                }
            }
        }
    }
    dqkv
}

/// `heads [B, H, T, D]` → `tokens [B, T, C]` (channel `h·D + d`).
pub fn merge_heads_cpu(s: &AttentionShape, heads: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; s.len_x()];
    for b in 0..s.batch {
        for t in 0..s.tokens {
            for ch in 0..s.dim {
                out[(b * s.tokens + t) * s.dim + ch] = heads[head_index(s, b, t, ch)];
            }
        }
    }
    out
}

/// Backward of [`merge_heads_cpu`]: `tokens [B, T, C]` → `heads [B, H, T, D]`.
pub fn split_heads_cpu(s: &AttentionShape, tokens: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; s.len_x()];
    for b in 0..s.batch {
        for t in 0..s.tokens {
            for ch in 0..s.dim {
                out[head_index(s, b, t, ch)] = tokens[(b * s.tokens + t) * s.dim + ch];
            }
        }
    }
    out
}

/// Row softmax of `x [rows, cols]`: `exp(x − max_row) / Σ exp(x − max_row)`.
pub fn softmax_rows_cpu(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut s = 0.0f32;
        for &v in row {
            s += (v - m).exp();
        }
        for (o, &v) in o.iter_mut().zip(row) {
            *o = (v - m).exp() / s;
        }
    }
    out
}

/// Softmax backward of rows `[rows, cols]`, scaled:
/// `ds = scale · p ⊙ (dp − Σ_j dp_j·p_j)`, the gradient w.r.t. `x` of `p = softmax(scale·x)`;
/// with `scale = 1/√D` it folds the score scaling into the backward.
pub fn softmax_backward_cpu(p: &[f32], dp: &[f32], cols: usize, scale: f32) -> Vec<f32> {
    let mut ds = vec![0.0; p.len()];
    for ((pr, dr), o) in p
        .chunks_exact(cols)
        .zip(dp.chunks_exact(cols))
        .zip(ds.chunks_exact_mut(cols))
    {
        let mut s = 0.0f32;
        for (a, b) in dr.iter().zip(pr) {
            s += a * b;
        }
        for ((o, &pv), &dv) in o.iter_mut().zip(pr).zip(dr) {
            *o = scale * (pv * (dv - s));
        }
    }
    ds
}

// ---------------------------------------------------------------------------------------
// CPU twin of the whole block.

/// Everything the forward computes; the backward needs `q`, `k`, `v`, `p`, `merged`.
#[derive(Clone, Debug)]
pub struct AttentionSaved {
    /// `[B, T, 3C]`, bias included.
    pub qkv: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Softmax probabilities `[B, H, T, T]`.
    pub p: Vec<f32>,
    /// `P·v`, `[B, H, T, D]`.
    pub o: Vec<f32>,
    /// `[B, T, C]`.
    pub merged: Vec<f32>,
    /// The block output `[B, T, C]`.
    pub y: Vec<f32>,
}

/// Gradients of the block (all written, none accumulated).
#[derive(Clone, Debug)]
pub struct AttentionGradsCpu {
    pub dx: Vec<f32>,
    pub dwqkv: Vec<f32>,
    pub dbqkv: Vec<f32>,
    pub dwo: Vec<f32>,
    pub dbo: Vec<f32>,
}

/// The products of one block, shared by the twin and the GPU launcher.
struct Products {
    qkv: MatmulShape,
    scores: MatmulShape,
    out: MatmulShape,
    proj: MatmulShape,
    // Backward.
    dwo: MatmulShape,
    dmerged: MatmulShape,
    dp: MatmulShape,
    dq: MatmulShape,
    dk: MatmulShape,
    dv: MatmulShape,
    dwqkv: MatmulShape,
    dx: MatmulShape,
}

impl Products {
    fn new(s: &AttentionShape) -> Self {
        let (rows, c, t, d, bh) = (s.rows(), s.dim, s.tokens, s.head_dim(), s.batch * s.heads);
        Products {
            qkv: MatmulShape::new(rows, 3 * c, c).transposed(false, true),
            scores: MatmulShape::new(t, t, d)
                .transposed(false, true)
                .batched(bh),
            out: MatmulShape::new(t, d, t).batched(bh),
            proj: MatmulShape::new(rows, c, c).transposed(false, true),
            dwo: MatmulShape::new(c, c, rows).transposed(true, false),
            dmerged: MatmulShape::new(rows, c, c),
            dp: MatmulShape::new(t, t, d)
                .transposed(false, true)
                .batched(bh),
            dq: MatmulShape::new(t, d, t).batched(bh),
            dk: MatmulShape::new(t, d, t)
                .transposed(true, false)
                .batched(bh),
            dv: MatmulShape::new(t, d, t)
                .transposed(true, false)
                .batched(bh),
            dwqkv: MatmulShape::new(3 * c, c, rows).transposed(true, false),
            dx: MatmulShape::new(rows, c, 3 * c),
        }
    }
}

fn mm(shape: &MatmulShape, a: &[f32], b: &[f32], alpha: f32) -> Vec<f32> {
    let mut c = vec![0.0; shape.len_c()];
    matmul_cpu(shape, a, b, alpha, 0.0, &mut c);
    c
}

/// CPU twin of the block forward. `x [B, T, C]`, `wqkv [3C, C]`, `bqkv [3C]`, `wo [C, C]`,
/// `bo [C]`.
pub fn attention_forward_cpu(
    s: &AttentionShape,
    x: &[f32],
    wqkv: &[f32],
    bqkv: &[f32],
    wo: &[f32],
    bo: &[f32],
) -> AttentionSaved {
    let pr = Products::new(s);
    let mut qkv = mm(&pr.qkv, x, wqkv, 1.0);
    bias_add_cpu(s.rows(), 3 * s.dim, 1, bqkv, &mut qkv);
    let (q, k, v) = split_qkv_cpu(s, &qkv);
    let scores = mm(&pr.scores, &q, &k, s.scale());
    let p = softmax_rows_cpu(&scores, s.tokens);
    let o = mm(&pr.out, &p, &v, 1.0);
    let merged = merge_heads_cpu(s, &o);
    let mut y = mm(&pr.proj, &merged, wo, 1.0);
    bias_add_cpu(s.rows(), s.dim, 1, bo, &mut y);
    AttentionSaved {
        qkv,
        q,
        k,
        v,
        p,
        o,
        merged,
        y,
    }
}

/// CPU twin of the block backward for the upstream gradient `dy [B, T, C]`.
pub fn attention_backward_cpu(
    s: &AttentionShape,
    x: &[f32],
    wqkv: &[f32],
    wo: &[f32],
    saved: &AttentionSaved,
    dy: &[f32],
) -> AttentionGradsCpu {
    let pr = Products::new(s);
    let dwo = mm(&pr.dwo, dy, &saved.merged, 1.0);
    let mut dbo = vec![0.0; s.dim];
    channel_sum_cpu(s.rows(), s.dim, 1, dy, &mut dbo);
    let dmerged = mm(&pr.dmerged, dy, wo, 1.0);
    let d_o = split_heads_cpu(s, &dmerged);
    let dp = mm(&pr.dp, &d_o, &saved.v, 1.0);
    let ds = softmax_backward_cpu(&saved.p, &dp, s.tokens, s.scale());
    let dq = mm(&pr.dq, &ds, &saved.k, 1.0);
    let dk = mm(&pr.dk, &ds, &saved.q, 1.0);
    let dv = mm(&pr.dv, &saved.p, &d_o, 1.0);
    let dqkv = merge_qkv_cpu(s, &dq, &dk, &dv);
    let dwqkv = mm(&pr.dwqkv, &dqkv, x, 1.0);
    let mut dbqkv = vec![0.0; 3 * s.dim];
    channel_sum_cpu(s.rows(), 3 * s.dim, 1, &dqkv, &mut dbqkv);
    let dx = mm(&pr.dx, &dqkv, wqkv, 1.0);
    AttentionGradsCpu {
        dx,
        dwqkv,
        dbqkv,
        dwo,
        dbo,
    }
}

// ---------------------------------------------------------------------------------------
// GPU.

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    tokens: u32,
    dim: u32,
    heads: u32,
    head_dim: u32,
    rows: u32,
    cols: u32,
    scale: f32,
}

/// Marker of the kernels of `shaders/attention.wgsl`.
pub enum AttentionOps {}

/// One prepared kernel of `shaders/attention.wgsl`; each constructor documents its buffers.
pub type AttentionKernel = Kernel<AttentionOps>;

impl AttentionKernel {
    async fn build(
        ctx: &Context,
        entry: &'static str,
        params: Params,
        workgroups: [u32; 3],
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> Result<Self> {
        Self::prepare(ctx, &SHADER, entry, &params, workgroups, buffers).await
    }

    fn shape_params(s: &AttentionShape) -> Params {
        Params {
            batch: s.batch as u32,
            tokens: s.tokens as u32,
            dim: s.dim as u32,
            heads: s.heads as u32,
            head_dim: s.head_dim() as u32,
            rows: 0,
            cols: 0,
            scale: 1.0,
        }
    }

    /// `qkv [B, T, 3C]` → `q, k, v [B, H, T, D]` (twin: [`split_qkv_cpu`]).
    pub async fn split_qkv(
        ctx: &Context,
        s: &AttentionShape,
        qkv: &wgpu::Buffer,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) -> Result<Self> {
        s.validate()?;
        let n = s.len_x();
        check_sizes(
            "split_qkv",
            &[("qkv", qkv, 3 * n), ("q", q, n), ("k", k, n), ("v", v, n)],
        )?;
        let wg = [grid_1d(ctx, 3 * n), 1, 1];
        let p = Self::shape_params(s);
        Self::build(ctx, "split_qkv", p, wg, &[(1, qkv), (2, q), (3, k), (4, v)]).await
    }

    /// `dq, dk, dv [B, H, T, D]` → `dqkv [B, T, 3C]` (twin: [`merge_qkv_cpu`]).
    pub async fn merge_qkv(
        ctx: &Context,
        s: &AttentionShape,
        dq: &wgpu::Buffer,
        dk: &wgpu::Buffer,
        dv: &wgpu::Buffer,
        dqkv: &wgpu::Buffer,
    ) -> Result<Self> {
        s.validate()?;
        let n = s.len_x();
        check_sizes(
            "merge_qkv",
            &[
                ("dqkv", dqkv, 3 * n),
                ("dq", dq, n),
                ("dk", dk, n),
                ("dv", dv, n),
            ],
        )?;
        let wg = [grid_1d(ctx, 3 * n), 1, 1];
        let p = Self::shape_params(s);
        Self::build(
            ctx,
            "merge_qkv",
            p,
            wg,
            &[(1, dqkv), (2, dq), (3, dk), (4, dv)],
        )
        .await
    }

    /// `heads [B, H, T, D]` → `tokens [B, T, C]` (twin: [`merge_heads_cpu`]).
    pub async fn merge_heads(
        ctx: &Context,
        s: &AttentionShape,
        heads: &wgpu::Buffer,
        tokens: &wgpu::Buffer,
    ) -> Result<Self> {
        s.validate()?;
        let n = s.len_x();
        check_sizes("merge_heads", &[("heads", heads, n), ("tokens", tokens, n)])?;
        let p = Self::shape_params(s);
        let wg = [grid_1d(ctx, n), 1, 1];
        Self::build(ctx, "merge_heads", p, wg, &[(5, heads), (6, tokens)]).await
    }

    /// `tokens [B, T, C]` → `heads [B, H, T, D]` (twin: [`split_heads_cpu`]).
    pub async fn split_heads(
        ctx: &Context,
        s: &AttentionShape,
        tokens: &wgpu::Buffer,
        heads: &wgpu::Buffer,
    ) -> Result<Self> {
        s.validate()?;
        let n = s.len_x();
        check_sizes("split_heads", &[("tokens", tokens, n), ("heads", heads, n)])?;
        let p = Self::shape_params(s);
        let wg = [grid_1d(ctx, n), 1, 1];
        Self::build(ctx, "split_heads", p, wg, &[(5, heads), (6, tokens)]).await
    }

    fn row_params(rows: usize, cols: usize, scale: f32) -> Params {
        Params {
            batch: 0,
            tokens: 0,
            dim: 0,
            heads: 0,
            head_dim: 0,
            rows: rows as u32,
            cols: cols as u32,
            scale,
        }
    }

    /// In place: each row of `x [rows, cols]` becomes its softmax (twin:
    /// [`softmax_rows_cpu`]).
    pub async fn softmax_rows(
        ctx: &Context,
        rows: usize,
        cols: usize,
        x: &wgpu::Buffer,
    ) -> Result<Self> {
        check_sizes("softmax_rows", &[("x", x, rows * cols)])?;
        let p = Self::row_params(rows, cols, 1.0);
        let wg = [grid_items(ctx, rows).max(1), 1, 1];
        Self::build(ctx, "softmax_rows", p, wg, &[(7, x)]).await
    }

    /// In place: `dp [rows, cols]` becomes `scale · p ⊙ (dp − rowsum(dp ⊙ p))` (twin:
    /// [`softmax_backward_cpu`]).
    pub async fn softmax_backward(
        ctx: &Context,
        rows: usize,
        cols: usize,
        scale: f32,
        p: &wgpu::Buffer,
        dp: &wgpu::Buffer,
    ) -> Result<Self> {
        let n = rows * cols;
        check_sizes("softmax_backward", &[("p", p, n), ("dp", dp, n)])?;
        let params = Self::row_params(rows, cols, scale);
        let wg = [grid_items(ctx, rows).max(1), 1, 1];
        Self::build(ctx, "softmax_backward", params, wg, &[(7, dp), (8, p)]).await
    }
}

/// The parameters of one block on the GPU: `wqkv [3C, C]`, `bqkv [3C]`, `wo [C, C]`,
/// `bo [C]` (PyTorch's `attn.qkv` and `attn.proj`).
pub struct AttentionWeights<'a> {
    pub wqkv: Slice<'a>,
    pub bqkv: Slice<'a>,
    pub wo: Slice<'a>,
    pub bo: Slice<'a>,
}

/// Where the backward writes: `dx [B, T, C]`, `dwqkv [3C, C]`, `dbqkv [3C]`, `dwo [C, C]`,
/// `dbo [C]` (all overwritten).
pub struct AttentionGrads<'a> {
    pub dx: Slice<'a>,
    pub dwqkv: Slice<'a>,
    pub dbqkv: Slice<'a>,
    pub dwo: Slice<'a>,
    pub dbo: Slice<'a>,
}

/// A prepared attention block forward, `x → y`. Encode `dispatches` in order. The
/// intermediate buffers are public so they can be inspected; [`Attention::backward`]
/// reuses `q`, `k`, `v`, `p` and `merged`.
pub struct Attention {
    pub shape: AttentionShape,
    pub dispatches: Vec<Dispatch>,
    /// `[B, T, 3C]`.
    pub qkv: wgpu::Buffer,
    pub q: wgpu::Buffer,
    pub k: wgpu::Buffer,
    pub v: wgpu::Buffer,
    /// Softmax probabilities `[B, H, T, T]`.
    pub p: wgpu::Buffer,
    /// `[B, H, T, D]`.
    pub o: wgpu::Buffer,
    /// `[B, T, C]`.
    pub merged: wgpu::Buffer,
    x: wgpu::Buffer,
    wqkv: OwnedSlice,
    wo: OwnedSlice,
    _matmuls: Vec<Matmul>,
    _kernels: Vec<AttentionKernel>,
    _biases: Vec<BiasAdd>,
}

/// A prepared attention block backward; encode `dispatches` in order after the forward.
pub struct AttentionBackward {
    pub dispatches: Vec<Dispatch>,
    /// `dO [B, H, T, D]`.
    pub d_o: wgpu::Buffer,
    /// `dP [B, H, T, T]`, turned into `dS` (already scaled by `1/√D`) in place.
    pub dp: wgpu::Buffer,
    /// `[B, T, 3C]`.
    pub dqkv: wgpu::Buffer,
    _scratch: Vec<wgpu::Buffer>,
    _matmuls: Vec<Matmul>,
    _kernels: Vec<AttentionKernel>,
    _bias_grads: Vec<ChannelSum>,
}

impl Attention {
    /// Prepares `y = attention(x)` for `x, y [B, T, C]`.
    pub async fn new(
        ctx: &Context,
        shape: AttentionShape,
        x: &wgpu::Buffer,
        w: &AttentionWeights<'_>,
        y: &wgpu::Buffer,
    ) -> Result<Attention> {
        let s = shape;
        s.validate()?;
        let (n, c, rows) = (s.len_x(), s.dim, s.rows());
        check_sizes(
            &format!("an attention block of shape {s:?}"),
            &[
                ("x", Slice::from(x), n),
                ("wqkv", w.wqkv, 3 * c * c),
                ("bqkv", w.bqkv, 3 * c),
                ("wo", w.wo, c * c),
                ("bo", w.bo, c),
                ("y", Slice::from(y), n),
            ],
        )?;
        let pr = Products::new(&s);
        let qkv = ctx.zeros("attention qkv", 3 * n)?;
        let q = ctx.zeros("attention q", n)?;
        let k = ctx.zeros("attention k", n)?;
        let v = ctx.zeros("attention v", n)?;
        let p = ctx.zeros("attention probabilities", s.len_p())?;
        let o = ctx.zeros("attention heads out", n)?;
        let merged = ctx.zeros("attention merged", n)?;

        let m_qkv = Matmul::new(ctx, pr.qkv, 1.0, 0.0, x, w.wqkv, &qkv).await?;
        let k_bias = BiasAdd::new(ctx, rows, 3 * c, 1, w.bqkv, &qkv).await?;
        let k_split = AttentionKernel::split_qkv(ctx, &s, &qkv, &q, &k, &v).await?;
        let m_scores = Matmul::new(ctx, pr.scores, s.scale(), 0.0, &q, &k, &p).await?;
        let k_soft =
            AttentionKernel::softmax_rows(ctx, s.batch * s.heads * s.tokens, s.tokens, &p).await?;
        let m_out = Matmul::new(ctx, pr.out, 1.0, 0.0, &p, &v, &o).await?;
        let k_merge = AttentionKernel::merge_heads(ctx, &s, &o, &merged).await?;
        let m_proj = Matmul::new(ctx, pr.proj, 1.0, 0.0, &merged, w.wo, y).await?;
        let k_bias_o = BiasAdd::new(ctx, rows, c, 1, w.bo, y).await?;

        let dispatches = [
            m_qkv.list(),
            k_bias.list(),
            k_split.list(),
            m_scores.list(),
            k_soft.list(),
            m_out.list(),
            k_merge.list(),
            m_proj.list(),
            k_bias_o.list(),
        ]
        .concat();
        Ok(Attention {
            shape: s,
            dispatches,
            qkv,
            q,
            k,
            v,
            p,
            o,
            merged,
            x: x.clone(),
            wqkv: w.wqkv.owned(),
            wo: w.wo.owned(),
            _matmuls: vec![m_qkv, m_scores, m_out, m_proj],
            _kernels: vec![k_split, k_soft, k_merge],
            _biases: vec![k_bias, k_bias_o],
        })
    }

    /// The forward's dispatches, in order.
    pub fn forward_dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }

    /// Prepares the backward for the upstream gradient `dy [B, T, C]`, writing `grads`.
    /// It reads the buffers this forward saved, so run it after the forward.
    pub async fn backward(
        &self,
        ctx: &Context,
        dy: &wgpu::Buffer,
        grads: &AttentionGrads<'_>,
    ) -> Result<AttentionBackward> {
        let s = self.shape;
        let (n, c, rows) = (s.len_x(), s.dim, s.rows());
        check_sizes(
            &format!("an attention backward of shape {s:?}"),
            &[
                ("dy", Slice::from(dy), n),
                ("dx", grads.dx, n),
                ("dwqkv", grads.dwqkv, 3 * c * c),
                ("dbqkv", grads.dbqkv, 3 * c),
                ("dwo", grads.dwo, c * c),
                ("dbo", grads.dbo, c),
            ],
        )?;
        let pr = Products::new(&s);
        let dmerged = ctx.zeros("attention dmerged", n)?;
        let d_o = ctx.zeros("attention dO", n)?;
        let dp = ctx.zeros("attention dP", s.len_p())?;
        let dq = ctx.zeros("attention dq", n)?;
        let dk = ctx.zeros("attention dk", n)?;
        let dv = ctx.zeros("attention dv", n)?;
        let dqkv = ctx.zeros("attention dqkv", 3 * n)?;

        let m_dwo = Matmul::new(ctx, pr.dwo, 1.0, 0.0, dy, &self.merged, grads.dwo).await?;
        let k_dbo = ChannelSum::new(ctx, rows, c, 1, dy, grads.dbo).await?;
        let m_dmerged = Matmul::new(ctx, pr.dmerged, 1.0, 0.0, dy, &self.wo, &dmerged).await?;
        let k_split = AttentionKernel::split_heads(ctx, &s, &dmerged, &d_o).await?;
        let m_dp = Matmul::new(ctx, pr.dp, 1.0, 0.0, &d_o, &self.v, &dp).await?;
        let bht = s.batch * s.heads * s.tokens;
        let k_soft =
            AttentionKernel::softmax_backward(ctx, bht, s.tokens, s.scale(), &self.p, &dp).await?;
        let m_dq = Matmul::new(ctx, pr.dq, 1.0, 0.0, &dp, &self.k, &dq).await?;
        let m_dk = Matmul::new(ctx, pr.dk, 1.0, 0.0, &dp, &self.q, &dk).await?;
        let m_dv = Matmul::new(ctx, pr.dv, 1.0, 0.0, &self.p, &d_o, &dv).await?;
        let k_merge = AttentionKernel::merge_qkv(ctx, &s, &dq, &dk, &dv, &dqkv).await?;
        let m_dwqkv = Matmul::new(ctx, pr.dwqkv, 1.0, 0.0, &dqkv, &self.x, grads.dwqkv).await?;
        let k_dbqkv = ChannelSum::new(ctx, rows, 3 * c, 1, &dqkv, grads.dbqkv).await?;
        let m_dx = Matmul::new(ctx, pr.dx, 1.0, 0.0, &dqkv, &self.wqkv, grads.dx).await?;

        let dispatches = [
            m_dwo.list(),
            k_dbo.list(),
            m_dmerged.list(),
            k_split.list(),
            m_dp.list(),
            k_soft.list(),
            m_dq.list(),
            m_dk.list(),
            m_dv.list(),
            k_merge.list(),
            m_dwqkv.list(),
            k_dbqkv.list(),
            m_dx.list(),
        ]
        .concat();
        Ok(AttentionBackward {
            dispatches,
            d_o,
            dp,
            dqkv,
            _scratch: vec![dmerged, dq, dk, dv],
            _matmuls: vec![m_dwo, m_dmerged, m_dp, m_dq, m_dk, m_dv, m_dwqkv, m_dx],
            _kernels: vec![k_split, k_soft, k_merge],
            _bias_grads: vec![k_dbo, k_dbqkv],
        })
    }
}

impl AttentionBackward {
    /// The backward's dispatches, in order.
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }
}
