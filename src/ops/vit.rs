//! ViT glue around the attention blocks: patch embedding, class token + position
//! embedding, and the two heads' poolings (token mean, class-token select), forward and
//! backward. Residual connections reuse [`crate::ops::Elementwise::add`].
//!
//! Patch embedding of images `x [N, C, H, W]` with patch size P (stride P, H and W
//! multiples of P) into `E` channels is `patchify` (`[N, T, C·P·P]`, T = (H/P)·(W/P),
//! patches in row-major order, each vector ordered (c, py, px)), then
//! `out = cols·Wᵀ + b` with `W [E, C·P·P]` — a Conv2d weight `[E, C, P, P]` flattened — and
//! `b [E]`. Its backward is `dW = doutᵀ·cols`, `db = Σ_rows dout`, `dcols = dout·W` and
//! `dx = unpatchify(dcols)`, a pure permutation (patches do not overlap). The products run
//! on [`Matmul`]; the bias addition and the column sums (`db`, `dcls`, `dpos`) on
//! [`crate::ops::linear`]'s [`BiasAdd`] / [`ChannelSum`] (`[rows, cols]` is `outer = rows`,
//! `channels = cols`, `inner = 1`; fixed-order lane sums, never float atomics);
//! everything else in `shaders/vit.wgsl`.

use crate::gpu::{Context, Dispatch, GpuError, OwnedSlice, Result, Shader, Slice};
use crate::ops::elementwise::Elementwise;
use crate::ops::kernel::{check_sizes, grid_1d, Encode, Kernel};
use crate::ops::linear::{bias_add_cpu, channel_sum_cpu, BiasAdd, ChannelSum};
use crate::ops::matmul::{matmul_cpu, Matmul, MatmulShape};

const SHADER: Shader = Shader {
    name: "vit",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/vit.wgsl")),
};

/// An image batch `[n, c, h, w]` cut into `patch × patch` patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub patch: usize,
}

impl PatchShape {
    pub fn new(n: usize, c: usize, h: usize, w: usize, patch: usize) -> Self {
        PatchShape { n, c, h, w, patch }
    }
    /// Patches per image, `(H/P)·(W/P)`.
    pub fn tokens(&self) -> usize {
        (self.h / self.patch) * (self.w / self.patch)
    }
    /// Length of one patch vector, `C·P·P`.
    pub fn patch_len(&self) -> usize {
        self.c * self.patch * self.patch
    }
    /// Elements of the image batch (and of the patch matrix): `N·C·H·W`.
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn validate(&self) -> Result<()> {
        if self.patch == 0
            || !self.h.is_multiple_of(self.patch)
            || !self.w.is_multiple_of(self.patch)
        {
            return Err(GpuError::Validation {
                what: format!("a patch embedding of shape {self:?}"),
                message: format!(
                    "the image size {}×{} must be a multiple of the patch size {}",
                    self.h, self.w, self.patch
                ),
            });
        }
        Ok(())
    }
    /// Index in `[N, T, C·P·P]` of image element `(n, c, y, x)`.
    fn col_index(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        let p = self.patch;
        let t = (y / p) * (self.w / p) + x / p;
        let f = (c * p + y % p) * p + x % p;
        (n * self.tokens() + t) * self.patch_len() + f
    }
}

// ---------------------------------------------------------------------------------------
// CPU twins.

/// `x [N, C, H, W]` → `[N, T, C·P·P]`.
pub fn patchify_cpu(s: &PatchShape, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; s.len()];
    let mut i = 0;
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for xx in 0..s.w {
                    out[s.col_index(n, c, y, xx)] = x[i];
                    i += 1;
                }
            }
        }
    }
    out
}

/// Backward of [`patchify_cpu`]: `dcols [N, T, C·P·P]` → `dx [N, C, H, W]`.
pub fn unpatchify_cpu(s: &PatchShape, dcols: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; s.len()];
    let mut i = 0;
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for xx in 0..s.w {
                    out[i] = dcols[s.col_index(n, c, y, xx)];
                    i += 1;
                }
            }
        }
    }
    out
}

fn embed_products(s: &PatchShape, e: usize) -> [MatmulShape; 3] {
    let (rows, k) = (s.n * s.tokens(), s.patch_len());
    [
        // out = cols·Wᵀ
        MatmulShape::new(rows, e, k).transposed(false, true),
        // dW = doutᵀ·cols
        MatmulShape::new(e, k, rows).transposed(true, false),
        // dcols = dout·W
        MatmulShape::new(rows, k, e),
    ]
}

/// Patch embedding forward: `x [N, C, H, W]`, `w [E, C·P·P]`, `b [E]` → `[N, T, E]`.
pub fn patch_embed_cpu(s: &PatchShape, e: usize, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let cols = patchify_cpu(s, x);
    let [fwd, _, _] = embed_products(s, e);
    let mut out = vec![0.0; fwd.len_c()];
    matmul_cpu(&fwd, &cols, w, 1.0, 0.0, &mut out);
    bias_add_cpu(s.n * s.tokens(), e, 1, b, &mut out);
    out
}

/// Patch embedding backward for `dout [N, T, E]`: `(dx [N, C, H, W], dw [E, C·P·P], db [E])`.
pub fn patch_embed_backward_cpu(
    s: &PatchShape,
    e: usize,
    x: &[f32],
    w: &[f32],
    dout: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let cols = patchify_cpu(s, x);
    let [_, dws, dcs] = embed_products(s, e);
    let mut dw = vec![0.0; dws.len_c()];
    matmul_cpu(&dws, dout, &cols, 1.0, 0.0, &mut dw);
    let mut db = vec![0.0; e];
    channel_sum_cpu(s.n * s.tokens(), e, 1, dout, &mut db);
    let mut dcols = vec![0.0; dcs.len_c()];
    matmul_cpu(&dcs, dout, w, 1.0, 0.0, &mut dcols);
    (unpatchify_cpu(s, &dcols), dw, db)
}

/// `tokens [N, T, E]`, `cls [E]`, `pos [T+1, E]` → `[N, T+1, E]`: row 0 `cls + pos[0]`, row
/// `t+1` `tokens[t] + pos[t+1]`.
pub fn cls_pos_cpu(
    n: usize,
    t: usize,
    e: usize,
    tokens: &[f32],
    cls: &[f32],
    pos: &[f32],
) -> Vec<f32> {
    let mut out = vec![0.0; n * (t + 1) * e];
    for ni in 0..n {
        for row in 0..=t {
            for j in 0..e {
                let v = if row == 0 {
                    cls[j]
                } else {
                    tokens[(ni * t + row - 1) * e + j]
                };
                out[(ni * (t + 1) + row) * e + j] = v + pos[row * e + j];
            }
        }
    }
    out
}

/// Backward of [`cls_pos_cpu`] for `dout [N, T+1, E]`:
/// `(dtokens [N, T, E], dcls [E] = Σ_n dout[n, 0], dpos [T+1, E] = Σ_n dout[n])`; `dcls` is
/// row 0 of `dpos`.
pub fn cls_pos_backward_cpu(
    n: usize,
    t: usize,
    e: usize,
    dout: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let per = (t + 1) * e;
    let mut dtokens = vec![0.0; n * t * e];
    for ni in 0..n {
        dtokens[ni * t * e..(ni + 1) * t * e].copy_from_slice(&dout[ni * per + e..(ni + 1) * per]);
    }
    let mut dpos = vec![0.0; per];
    channel_sum_cpu(n, per, 1, dout, &mut dpos);
    let dcls = dpos[..e].to_vec();
    (dtokens, dcls, dpos)
}

/// `x [N, T, E]` → `[N, E]`, the mean over tokens (summed in order, then divided by T).
pub fn mean_pool_cpu(n: usize, t: usize, e: usize, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; n * e];
    for ni in 0..n {
        for j in 0..e {
            let mut acc = 0.0f32;
            for ti in 0..t {
                acc += x[(ni * t + ti) * e + j];
            }
            out[ni * e + j] = acc / t as f32;
        }
    }
    out
}

/// Backward of [`mean_pool_cpu`]: `dx[n, t, e] = dout[n, e] / T`.
pub fn mean_pool_backward_cpu(n: usize, t: usize, e: usize, dout: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; n * t * e];
    for ni in 0..n {
        for ti in 0..t {
            for j in 0..e {
                dx[(ni * t + ti) * e + j] = dout[ni * e + j] / t as f32;
            }
        }
    }
    dx
}

/// `x [N, T, E]` → `[N, E]`, token 0 (the class token).
pub fn cls_select_cpu(n: usize, t: usize, e: usize, x: &[f32]) -> Vec<f32> {
    (0..n)
        .flat_map(|ni| x[ni * t * e..ni * t * e + e].to_vec())
        .collect()
}

/// Backward of [`cls_select_cpu`]: `dout [N, E]` into row 0 of `dx [N, T, E]`, zeros elsewhere.
pub fn cls_select_backward_cpu(n: usize, t: usize, e: usize, dout: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; n * t * e];
    for ni in 0..n {
        dx[ni * t * e..ni * t * e + e].copy_from_slice(&dout[ni * e..(ni + 1) * e]);
    }
    dx
}

// ---------------------------------------------------------------------------------------
// GPU.

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    patch: u32,
    tokens: u32,
    dim: u32,
    _pad: u32,
}

/// Marker of the kernels of `shaders/vit.wgsl`.
pub enum VitOps {}

/// One prepared kernel of `shaders/vit.wgsl`; each constructor documents its buffers.
pub type VitKernel = Kernel<VitOps>;

impl VitKernel {
    async fn build<'a, B: Into<Slice<'a>> + Copy>(
        ctx: &Context,
        entry: &'static str,
        params: Params,
        elements: usize,
        buffers: &[(u32, B)],
    ) -> Result<Self> {
        let workgroups = [grid_1d(ctx, elements), 1, 1];
        Self::prepare(ctx, &SHADER, entry, &params, workgroups, buffers).await
    }

    fn image_params(s: &PatchShape) -> Params {
        Params {
            n: s.n as u32,
            c: s.c as u32,
            h: s.h as u32,
            w: s.w as u32,
            patch: s.patch as u32,
            tokens: s.tokens() as u32,
            ..Default::default()
        }
    }

    /// `x [N, C, H, W]` → `cols [N, T, C·P·P]` (twin: [`patchify_cpu`]).
    pub async fn patchify<'a>(
        ctx: &Context,
        s: &PatchShape,
        x: impl Into<Slice<'a>>,
        cols: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (x, cols): (Slice, Slice) = (x.into(), cols.into());
        s.validate()?;
        check_sizes("patchify", &[("x", x, s.len()), ("cols", cols, s.len())])?;
        let p = Self::image_params(s);
        Self::build(ctx, "patchify", p, s.len(), &[(1, x), (2, cols)]).await
    }

    /// `dcols [N, T, C·P·P]` → `dx [N, C, H, W]` (twin: [`unpatchify_cpu`]).
    pub async fn unpatchify<'a>(
        ctx: &Context,
        s: &PatchShape,
        dcols: impl Into<Slice<'a>>,
        dx: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (dcols, dx): (Slice, Slice) = (dcols.into(), dx.into());
        s.validate()?;
        check_sizes(
            "unpatchify",
            &[("dcols", dcols, s.len()), ("dx", dx, s.len())],
        )?;
        let p = Self::image_params(s);
        Self::build(ctx, "unpatchify", p, s.len(), &[(3, dcols), (4, dx)]).await
    }

    fn token_params(n: usize, t: usize, e: usize) -> Params {
        Params {
            n: n as u32,
            tokens: t as u32,
            dim: e as u32,
            ..Default::default()
        }
    }

    /// `tokens [N, T, E]`, `cls [E]`, `pos [T+1, E]` → `out [N, T+1, E]` (twin:
    /// [`cls_pos_cpu`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn cls_pos<'a>(
        ctx: &Context,
        n: usize,
        t: usize,
        e: usize,
        tokens: impl Into<Slice<'a>>,
        cls: impl Into<Slice<'a>>,
        pos: impl Into<Slice<'a>>,
        out: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (tokens, cls): (Slice, Slice) = (tokens.into(), cls.into());
        let (pos, out): (Slice, Slice) = (pos.into(), out.into());
        let len = n * (t + 1) * e;
        check_sizes(
            "cls_pos",
            &[
                ("tokens", tokens, n * t * e),
                ("cls", cls, e),
                ("pos", pos, (t + 1) * e),
                ("out", out, len),
            ],
        )?;
        let p = Self::token_params(n, t, e);
        Self::build(
            ctx,
            "cls_pos",
            p,
            len,
            &[(9, tokens), (10, cls), (11, pos), (12, out)],
        )
        .await
    }

    /// `dout [N, T+1, E]` → `dtokens [N, T, E]` (rows 1..=T).
    pub async fn cls_pos_tokens(
        ctx: &Context,
        n: usize,
        t: usize,
        e: usize,
        dout: &wgpu::Buffer,
        dtokens: &wgpu::Buffer,
    ) -> Result<Self> {
        check_sizes(
            "cls_pos_tokens",
            &[
                ("dout", dout, n * (t + 1) * e),
                ("dtokens", dtokens, n * t * e),
            ],
        )?;
        let p = Self::token_params(n, t, e);
        Self::build(
            ctx,
            "cls_pos_tokens",
            p,
            n * t * e,
            &[(7, dout), (8, dtokens)],
        )
        .await
    }

    /// A token pooling `src = x [N, T, E]` → `dst = out [N, E]`, or with `backward` its
    /// gradient `src = dout [N, E]` → `dst = dx [N, T, E]`.
    async fn pool(
        ctx: &Context,
        entry: &'static str,
        (n, t, e): (usize, usize, usize),
        backward: bool,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
    ) -> Result<Self> {
        let (tokens, rows) = (n * t * e, n * e);
        let operands = if backward {
            [("dout", src, rows), ("dx", dst, tokens)]
        } else {
            [("x", src, tokens), ("out", dst, rows)]
        };
        check_sizes(entry, &operands)?;
        let p = Self::token_params(n, t, e);
        Self::build(ctx, entry, p, tokens.max(rows), &[(7, src), (8, dst)]).await
    }

    /// `x [N, T, E]` → `out [N, E]`, the token mean (twin: [`mean_pool_cpu`]).
    pub async fn mean_pool(
        ctx: &Context,
        shape: (usize, usize, usize),
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::pool(ctx, "mean_pool", shape, false, x, out).await
    }

    /// `dout [N, E]` → `dx [N, T, E] = dout / T` (twin: [`mean_pool_backward_cpu`]).
    pub async fn mean_pool_backward(
        ctx: &Context,
        shape: (usize, usize, usize),
        dout: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::pool(ctx, "mean_pool_back", shape, true, dout, dx).await
    }

    /// `x [N, T, E]` → `out [N, E]`, token 0 (twin: [`cls_select_cpu`]).
    pub async fn cls_select(
        ctx: &Context,
        shape: (usize, usize, usize),
        x: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::pool(ctx, "cls_select", shape, false, x, out).await
    }

    /// `dout [N, E]` → `dx [N, T, E]`, row 0 set, the rest zeroed (twin:
    /// [`cls_select_backward_cpu`]).
    pub async fn cls_select_backward(
        ctx: &Context,
        shape: (usize, usize, usize),
        dout: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<Self> {
        Self::pool(ctx, "cls_select_back", shape, true, dout, dx).await
    }
}

/// A prepared patch embedding `x [N, C, H, W]` → `out [N, T, E]` with `w [E, C·P·P]` and
/// `b [E]`. Encode `dispatches` in order; `cols` keeps the patch matrix for the backward.
pub struct PatchEmbed {
    pub shape: PatchShape,
    pub embed: usize,
    pub dispatches: Vec<Dispatch>,
    /// `[N, T, C·P·P]`.
    pub cols: wgpu::Buffer,
    w: OwnedSlice,
    _matmul: Matmul,
    _patchify: VitKernel,
    _bias: BiasAdd,
}

/// A prepared patch-embedding backward; encode `dispatches` after the forward.
pub struct PatchEmbedBackward {
    pub dispatches: Vec<Dispatch>,
    /// `dcols [N, T, C·P·P]`.
    pub dcols: wgpu::Buffer,
    _matmuls: Vec<Matmul>,
    _unpatchify: VitKernel,
    _db: ChannelSum,
}

impl PatchEmbed {
    /// `w`, `b`: whole buffers or slices of the flat parameters.
    pub async fn new<'a>(
        ctx: &Context,
        shape: PatchShape,
        embed: usize,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        b: impl Into<Slice<'a>>,
        out: impl Into<Slice<'a>>,
    ) -> Result<PatchEmbed> {
        let (x, w): (Slice, Slice) = (x.into(), w.into());
        let (b, out): (Slice, Slice) = (b.into(), out.into());
        let s = shape;
        s.validate()?;
        let rows = s.n * s.tokens();
        check_sizes(
            &format!("a patch embedding of shape {s:?} into {embed} channels"),
            &[
                ("x", x, s.len()),
                ("w", w, embed * s.patch_len()),
                ("b", b, embed),
                ("out", out, rows * embed),
            ],
        )?;
        let [fwd, _, _] = embed_products(&s, embed);
        let cols = ctx.zeros("patch columns", s.len())?;
        let k_patch = VitKernel::patchify(ctx, &s, x, &cols).await?;
        let m = Matmul::new(ctx, fwd, 1.0, 0.0, &cols, w, out).await?;
        let k_bias = BiasAdd::new(ctx, rows, embed, 1, b, out).await?;
        Ok(PatchEmbed {
            shape: s,
            embed,
            dispatches: [k_patch.list(), m.list(), k_bias.list()].concat(),
            cols,
            w: w.owned(),
            _matmul: m,
            _patchify: k_patch,
            _bias: k_bias,
        })
    }

    pub fn forward_dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }

    /// Prepares the backward for `dout [N, T, E]`, writing `dx [N, C, H, W]`,
    /// `dw [E, C·P·P]` and `db [E]` (overwritten).
    pub async fn backward<'a>(
        &self,
        ctx: &Context,
        dout: impl Into<Slice<'a>>,
        dx: impl Into<Slice<'a>>,
        dw: impl Into<Slice<'a>>,
        db: impl Into<Slice<'a>>,
    ) -> Result<PatchEmbedBackward> {
        let (dout, dx): (Slice, Slice) = (dout.into(), dx.into());
        let (dw, db): (Slice, Slice) = (dw.into(), db.into());
        let (s, e) = (self.shape, self.embed);
        let rows = s.n * s.tokens();
        check_sizes(
            &format!("a patch embedding backward of shape {s:?} into {e} channels"),
            &[
                ("dout", dout, rows * e),
                ("dx", dx, s.len()),
                ("dw", dw, e * s.patch_len()),
                ("db", db, e),
            ],
        )?;
        let [_, dws, dcs] = embed_products(&s, e);
        let dcols = ctx.zeros("patch column gradients", s.len())?;
        let m_dw = Matmul::new(ctx, dws, 1.0, 0.0, dout, &self.cols, dw).await?;
        let k_db = ChannelSum::new(ctx, rows, e, 1, dout, db).await?;
        let m_dc = Matmul::new(ctx, dcs, 1.0, 0.0, dout, &self.w, &dcols).await?;
        let k_un = VitKernel::unpatchify(ctx, &s, &dcols, dx).await?;
        Ok(PatchEmbedBackward {
            dispatches: [m_dw.list(), k_db.list(), m_dc.list(), k_un.list()].concat(),
            dcols,
            _matmuls: vec![m_dw, m_dc],
            _unpatchify: k_un,
            _db: k_db,
        })
    }
}

impl PatchEmbedBackward {
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }
}

/// Prepared class token + position embedding over `tokens [N, T, E]` → `out [N, T+1, E]`,
/// with its backward `dout → (dtokens, dcls, dpos)`.
pub struct ClsPos {
    pub forward: VitKernel,
    /// `dtokens`, then `dpos = Σ_n dout[n]` (the column sums of `dout` seen as
    /// `[N, (T+1)·E]`) into a private buffer, then `dcls = Σ_n dout[n, 0]`, which is row 0
    /// of it (a one-row column sum, i.e. a copy), then its copy into `dpos`; encode all four
    /// in this order (the column sums are two dispatches each when split). (The private
    /// buffer keeps one dispatch from reading and writing the
    /// same buffer when `dcls` and `dpos` are slices of one flat gradient buffer, which
    /// WebGPU forbids.)
    pub backward: Vec<Dispatch>,
    _dtokens: VitKernel,
    _sums: [ChannelSum; 2],
    _copy: Elementwise,
    _dpos_sum: wgpu::Buffer,
}

impl ClsPos {
    #[allow(clippy::too_many_arguments)]
    pub async fn new<'a>(
        ctx: &Context,
        (n, t, e): (usize, usize, usize),
        tokens: &'a wgpu::Buffer,
        cls: impl Into<Slice<'a>>,
        pos: impl Into<Slice<'a>>,
        out: &'a wgpu::Buffer,
        dout: &'a wgpu::Buffer,
        (dtokens, dcls, dpos): (&'a wgpu::Buffer, Slice<'a>, Slice<'a>),
    ) -> Result<ClsPos> {
        let per = (t + 1) * e;
        check_sizes(
            "cls_pos backward",
            &[("dcls", dcls, e), ("dpos", dpos, per)],
        )?;
        let forward = VitKernel::cls_pos(ctx, n, t, e, tokens, cls, pos, out).await?;
        let k_dtokens = VitKernel::cls_pos_tokens(ctx, n, t, e, dout, dtokens).await?;
        let dpos_sum = ctx.zeros("cls_pos dpos", per)?;
        let k_dpos = ChannelSum::new(ctx, n, per, 1, dout, &dpos_sum).await?;
        let k_dcls = ChannelSum::new(ctx, 1, e, 1, &dpos_sum, dcls).await?;
        let copy = Elementwise::scale(ctx, per, 1.0, &dpos_sum, dpos).await?;
        Ok(ClsPos {
            forward,
            backward: [k_dtokens.list(), k_dpos.list(), k_dcls.list(), copy.list()].concat(),
            _dtokens: k_dtokens,
            _sums: [k_dpos, k_dcls],
            _copy: copy,
            _dpos_sum: dpos_sum,
        })
    }

    pub fn backward_dispatches(&self) -> Vec<&Dispatch> {
        self.backward.iter().collect()
    }
}
