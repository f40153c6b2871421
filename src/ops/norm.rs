//! Normalisation layers, forward and backward, as PyTorch defines them:
//! - `BatchNorm2d` over NCHW activations `x [N, C, H, W]` with affine `gamma, beta [C]`:
//!   training mode normalises each channel by its batch mean and biased variance over the
//!   `M = N·H·W` values and updates `running_mean`/`running_var` with momentum
//!   (`r = (1 − momentum)·r + momentum·stat`, the UNBIASED variance `·M/(M − 1)` for
//!   `running_var`); eval mode normalises with the running statistics; the training-mode
//!   backward writes `dx, dgamma, dbeta`.
//! - `LayerNorm` over the last dimension of `x [rows, C]` with affine `gamma, beta [C]`.
//!
//! Both forwards write a `saved` buffer for the backward: BatchNorm `[2C]` = per-channel mean
//! at `c`, `rstd = 1/√(var_biased + eps)` at `C + c`; LayerNorm `[2·rows]` = per-row mean at
//! `r`, rstd at `rows + r`. eps defaults to 1e-5 and momentum to 0.1, as in PyTorch.
//! Gradients are written, not accumulated.

use super::kernel::{check_sizes, dispatch, grid_1d, grid_items, prepare, split_reduction, Kernel};
use crate::gpu::{Context, Dispatch, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "norm",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/norm.wgsl")),
};

/// Shape and hyper-parameters of a BatchNorm2d layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm2dConfig {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNorm2dConfig {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        BatchNorm2dConfig {
            n,
            c,
            h,
            w,
            eps: 1e-5,
            momentum: 0.1,
        }
    }
    /// Values per channel, `N·H·W`.
    pub fn m(&self) -> usize {
        self.n * self.h * self.w
    }
    /// Elements of `x` and `y`, `N·C·H·W`.
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index in `x` of the `j`-th value (`0 ≤ j < M`) of channel `c`.
    fn index(&self, c: usize, j: usize) -> usize {
        let hw = self.h * self.w;
        let (n, i) = (j / hw, j % hw);
        (n * self.c + c) * hw + i
    }
}

/// CPU twin of the BatchNorm2d training forward: writes `y [N,C,H,W]`, `saved [2C]` (mean,
/// rstd) and updates `running_mean`, `running_var [C]` in place. Sums are sequential f32;
/// the variance is the two-pass `Σ(x − mean)²/M`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_cpu(
    cfg: &BatchNorm2dConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
) {
    let (c_len, m) = (cfg.c, cfg.m());
    let mf = m as f32;
    for c in 0..c_len {
        let mut acc = 0.0f32;
        for j in 0..m {
            acc += x[cfg.index(c, j)];
        }
        let mean = acc / mf;
        let mut acc = 0.0f32;
        for j in 0..m {
            let d = x[cfg.index(c, j)] - mean;
            acc += d * d;
        }
        let var_b = acc / mf;
        let rstd = 1.0 / (var_b + cfg.eps).sqrt();
        let scale = gamma[c] * rstd;
        for j in 0..m {
            let i = cfg.index(c, j);
            y[i] = (x[i] - mean) * scale + beta[c];
        }
        saved[c] = mean;
        saved[c_len + c] = rstd;
        let mo = cfg.momentum;
        let var_u = var_b * mf / (m.max(2) - 1) as f32;
        running_mean[c] = (1.0 - mo) * running_mean[c] + mo * mean;
        running_var[c] = (1.0 - mo) * running_var[c] + mo * var_u;
    }
}

/// CPU twin of the BatchNorm2d eval forward:
/// `y = (x − running_mean)·(gamma/√(running_var + eps)) + beta`.
pub fn batch_norm_eval_cpu(
    cfg: &BatchNorm2dConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    let hw = cfg.h * cfg.w;
    for (i, (o, &v)) in y.iter_mut().zip(x).take(cfg.len()).enumerate() {
        let c = (i / hw) % cfg.c;
        let scale = gamma[c] / (running_var[c] + cfg.eps).sqrt();
        *o = (v - running_mean[c]) * scale + beta[c];
    }
}

/// CPU twin of the BatchNorm2d training-mode backward, from the forward's `saved`:
/// `dbeta = Σ dy`, `dgamma = Σ dy·xhat`, `dx = gamma·rstd/M·(M·dy − dbeta − xhat·dgamma)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_cpu(
    cfg: &BatchNorm2dConfig,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let (c_len, m) = (cfg.c, cfg.m());
    let mf = m as f32;
    for c in 0..c_len {
        let (mean, rstd) = (saved[c], saved[c_len + c]);
        let (mut sum_dy, mut sum_dy_xhat) = (0.0f32, 0.0f32);
        for j in 0..m {
            let i = cfg.index(c, j);
            sum_dy += dy[i];
            sum_dy_xhat += dy[i] * (x[i] - mean) * rstd;
        }
        let k = gamma[c] * rstd / mf;
        for j in 0..m {
            let i = cfg.index(c, j);
            let xhat = (x[i] - mean) * rstd;
            dx[i] = k * (mf * dy[i] - sum_dy - xhat * sum_dy_xhat);
        }
        dbeta[c] = sum_dy;
        dgamma[c] = sum_dy_xhat;
    }
}

/// Shape and eps of a LayerNorm over the last dimension of `[rows, c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormConfig {
    pub rows: usize,
    pub c: usize,
    pub eps: f32,
}

impl LayerNormConfig {
    /// PyTorch's default eps, 1e-5.
    pub fn new(rows: usize, c: usize) -> Self {
        LayerNormConfig { rows, c, eps: 1e-5 }
    }
    pub fn len(&self) -> usize {
        self.rows * self.c
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// CPU twin of the LayerNorm forward: `y [rows, c]`, `saved [2·rows]` (mean, rstd), with
/// sequential f32 sums and the two-pass biased variance.
pub fn layer_norm_cpu(
    cfg: &LayerNormConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved: &mut [f32],
) {
    let (rows, c) = (cfg.rows, cfg.c);
    let cf = c as f32;
    for r in 0..rows {
        let row = &x[r * c..(r + 1) * c];
        let mean = row.iter().fold(0.0f32, |a, &v| a + v) / cf;
        let var_b = row.iter().fold(0.0f32, |a, &v| a + (v - mean) * (v - mean)) / cf;
        let rstd = 1.0 / (var_b + cfg.eps).sqrt();
        for j in 0..c {
            y[r * c + j] = (row[j] - mean) * rstd * gamma[j] + beta[j];
        }
        saved[r] = mean;
        saved[rows + r] = rstd;
    }
}

/// CPU twin of the LayerNorm backward: with `g = dy·gamma`,
/// `dx = rstd·(g − mean_j(g) − xhat·mean_j(g·xhat))`, `dgamma = Σ_rows dy·xhat`,
/// `dbeta = Σ_rows dy`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward_cpu(
    cfg: &LayerNormConfig,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let (rows, c) = (cfg.rows, cfg.c);
    let cf = c as f32;
    dgamma[..c].fill(0.0);
    dbeta[..c].fill(0.0);
    for r in 0..rows {
        let (mean, rstd) = (saved[r], saved[rows + r]);
        let (mut sum_g, mut sum_g_xhat) = (0.0f32, 0.0f32);
        for j in 0..c {
            let i = r * c + j;
            let g = dy[i] * gamma[j];
            let xhat = (x[i] - mean) * rstd;
            sum_g += g;
            sum_g_xhat += g * xhat;
            dgamma[j] += dy[i] * xhat;
            dbeta[j] += dy[i];
        }
        let (mean_g, mean_g_xhat) = (sum_g / cf, sum_g_xhat / cf);
        for (j, &gm) in gamma[..c].iter().enumerate() {
            let i = r * c + j;
            let g = dy[i] * gm;
            let xhat = (x[i] - mean) * rstd;
            dx[i] = rstd * (g - mean_g - xhat * mean_g_xhat);
        }
    }
}

/// CPU twin of `bn_eval_backward`: the backward of BatchNorm2d after an eval-mode forward,
/// a fixed per-channel affine map:
/// with `saved` = (running mean, 1/√(running var + eps)) and `xhat = (x − mean)·rstd`,
/// `dx = dy·gamma·rstd`, `dgamma = Σ dy·xhat`, `dbeta = Σ dy`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_backward_cpu(
    cfg: &BatchNorm2dConfig,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let (c_len, hw) = (cfg.c, cfg.h * cfg.w);
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for (i, ((d, &v), &g)) in dx.iter_mut().zip(x).zip(dy).enumerate() {
        let c = (i / hw) % c_len;
        let (mean, rstd) = (saved[c], saved[c_len + c]);
        *d = g * gamma[c] * rstd;
        dgamma[c] += g * (v - mean) * rstd;
        dbeta[c] += g;
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    m: u32,
    eps: f32,
    momentum: f32,
    splits: u32,
    chunk: u32,
    lanes: u32,
    _pad: [u32; 3],
}

/// BatchNorm's per-channel sums need at least this many values per piece (4 per thread)
/// before they are split.
const BN_MIN_CHUNK: usize = 1024;

/// How the BatchNorm2d statistics (training forward and backward) cut each channel's
/// `M = N·H·W` values into pieces, each its own workgroup: `(chunk, splits)`, unsplit
/// (`(M, 1)`: one workgroup per channel, `bn_train` / `bn_backward`) when the channels fill
/// the device or `M` is short.
pub fn batch_norm_split(cfg: &BatchNorm2dConfig) -> (usize, usize) {
    split_reduction(cfg.c, cfg.m(), BN_MIN_CHUNK, 256)
}

/// LayerNorm's threads per row (a power of two, at most the workgroup's 64): about 4 values
/// each, so that short rows share a workgroup (16 lanes × 4 rows for C = 64).
pub fn layer_norm_lanes(c: usize) -> usize {
    c.div_ceil(4).next_power_of_two().clamp(1, 64)
}

/// How LayerNorm's dgamma/dbeta (column sums over the rows, 16 columns per workgroup) cut
/// the rows into pieces: `(rows per piece, splits)`.
pub fn layer_norm_params_split(cfg: &LayerNormConfig) -> (usize, usize) {
    split_reduction(cfg.c.div_ceil(16), cfg.rows, 64, 16)
}

/// The buffers of a BatchNorm2d forward. `x`, `y`: `[N,C,H,W]`; `gamma`, `beta`,
/// `running_mean`, `running_var`: `[C]`; `saved`: `[2C]`, written by the training pass.
pub struct BatchNormBuffers<'a> {
    pub x: Slice<'a>,
    pub gamma: Slice<'a>,
    pub beta: Slice<'a>,
    pub y: Slice<'a>,
    pub saved: Slice<'a>,
    pub running_mean: Slice<'a>,
    pub running_var: Slice<'a>,
}

/// A prepared BatchNorm2d forward: encode `train_list` (batch statistics, writes `y` and
/// `saved`, updates the running statistics) or `eval` (running statistics, writes `y`).
/// `train_list` is `[bn_train]` (one workgroup per channel) when [`batch_norm_split`] does
/// not split, else `bn_stats` then `bn_apply` (pieces of each channel in workgroups of
/// their own).
pub struct BatchNorm2d {
    pub cfg: BatchNorm2dConfig,
    pub train_list: Vec<Dispatch>,
    pub eval: Dispatch,
    /// `(chunk, splits)` of [`batch_norm_split`].
    pub split: (usize, usize),
    _buffers: Vec<wgpu::Buffer>,
}

/// What a split BatchNorm pass (forward or backward) needs besides its kernels: a buffer of
/// `2·C·splits` partial sums, the parameters with the split, and the grid (pieces × channels).
fn split_pass(
    ctx: &Context,
    cfg: &BatchNorm2dConfig,
    (chunk, splits): (usize, usize),
    what: &str,
) -> Result<(wgpu::Buffer, Params, [u32; 3])> {
    let pieces = ctx.zeros("batch norm pieces", 2 * cfg.c * splits)?;
    let params = Params {
        splits: splits as u32,
        chunk: chunk as u32,
        ..bn_params(cfg)
    };
    let channels = if cfg.is_empty() { 0 } else { cfg.c };
    let groups = [
        ctx.check_workgroups(what, splits as u64)?,
        grid_items(ctx, channels),
        1,
    ];
    Ok((pieces, params, groups))
}

fn bn_params(cfg: &BatchNorm2dConfig) -> Params {
    Params {
        n: cfg.n as u32,
        c: cfg.c as u32,
        hw: (cfg.h * cfg.w) as u32,
        m: cfg.m() as u32,
        eps: cfg.eps,
        momentum: cfg.momentum,
        splits: 1,
        chunk: cfg.m() as u32,
        lanes: 1,
        _pad: [0; 3],
    }
}

impl BatchNorm2d {
    pub async fn new(
        ctx: &Context,
        cfg: BatchNorm2dConfig,
        b: &BatchNormBuffers<'_>,
    ) -> Result<Self> {
        let what = format!("a BatchNorm2d over {cfg:?}");
        check_sizes(
            &what,
            &[
                ("x", b.x, cfg.len()),
                ("y", b.y, cfg.len()),
                ("gamma", b.gamma, cfg.c),
                ("beta", b.beta, cfg.c),
                ("saved", b.saved, 2 * cfg.c),
                ("running_mean", b.running_mean, cfg.c),
                ("running_var", b.running_var, cfg.c),
            ],
        )?;
        let channels = if cfg.is_empty() { 0 } else { cfg.c };
        let (train, params) = prepare(
            ctx,
            &SHADER,
            "bn_train",
            &bn_params(&cfg),
            [grid_items(ctx, channels), 1, 1],
            &[
                (1, b.x),
                (2, b.gamma),
                (3, b.beta),
                (4, b.y),
                (5, b.saved),
                (6, b.running_mean),
                (7, b.running_var),
            ],
        )
        .await?;
        let eval = dispatch(
            ctx,
            &SHADER,
            "bn_eval",
            [grid_1d(ctx, cfg.len()), 1, 1],
            &[
                (0, Slice::from(&params)),
                (1, b.x),
                (2, b.gamma),
                (3, b.beta),
                (4, b.y),
                (6, b.running_mean),
                (7, b.running_var),
            ],
        )
        .await?;
        let (chunk, splits) = batch_norm_split(&cfg);
        let mut buffers = vec![params];
        let train_list = if splits == 1 {
            vec![train]
        } else {
            let (pieces, params, groups) = split_pass(ctx, &cfg, (chunk, splits), &what)?;
            let (stats, split_params) = prepare(
                ctx,
                &SHADER,
                "bn_stats",
                &params,
                groups,
                &[(1, b.x), (15, Slice::from(&pieces))],
            )
            .await?;
            let apply = dispatch(
                ctx,
                &SHADER,
                "bn_apply",
                groups,
                &[
                    (0, Slice::from(&split_params)),
                    (1, b.x),
                    (2, b.gamma),
                    (3, b.beta),
                    (4, b.y),
                    (5, b.saved),
                    (6, b.running_mean),
                    (7, b.running_var),
                    (15, Slice::from(&pieces)),
                ],
            )
            .await?;
            buffers.extend([split_params, pieces]);
            vec![stats, apply]
        };
        Ok(BatchNorm2d {
            cfg,
            train_list,
            eval,
            split: (chunk, splits),
            _buffers: buffers,
        })
    }
}

/// The buffers of a normalisation backward: `x`, `dy`, `dx` shaped like the forward input,
/// `gamma`, `dgamma`, `dbeta`: `[C]`, `saved` as written by the forward.
pub struct NormGrads<'a> {
    pub x: Slice<'a>,
    pub dy: Slice<'a>,
    pub gamma: Slice<'a>,
    pub saved: Slice<'a>,
    pub dx: Slice<'a>,
    pub dgamma: Slice<'a>,
    pub dbeta: Slice<'a>,
}

impl NormGrads<'_> {
    /// Size checks for `len` activations, `c` channels and a `saved` of `saved` floats.
    fn check(&self, what: &str, len: usize, c: usize, saved: usize) -> Result<()> {
        check_sizes(
            what,
            &[
                ("x", self.x, len),
                ("dy", self.dy, len),
                ("dx", self.dx, len),
                ("gamma", self.gamma, c),
                ("saved", self.saved, saved),
                ("dgamma", self.dgamma, c),
                ("dbeta", self.dbeta, c),
            ],
        )
    }
}

/// A prepared BatchNorm2d training-mode backward: encode `dispatches` in order —
/// `bn_backward` (one workgroup per channel) when [`batch_norm_split`] does not split, else
/// `bn_backward_sums` then `bn_backward_apply` (pieces of each channel in workgroups of
/// their own, their sums added in ascending order).
pub struct BatchNorm2dBackward {
    pub dispatches: Vec<Dispatch>,
    _buffers: Vec<wgpu::Buffer>,
}

impl BatchNorm2dBackward {
    pub async fn new(ctx: &Context, cfg: BatchNorm2dConfig, g: &NormGrads<'_>) -> Result<Self> {
        let what = format!("a BatchNorm2d backward over {cfg:?}");
        g.check(&what, cfg.len(), cfg.c, 2 * cfg.c)?;
        let channels = if cfg.is_empty() { 0 } else { cfg.c };
        let (chunk, splits) = batch_norm_split(&cfg);
        let bindings = [
            (1, g.x),
            (2, g.gamma),
            (8, g.dy),
            (9, g.saved),
            (10, g.dx),
            (11, g.dgamma),
            (12, g.dbeta),
        ];
        if splits == 1 {
            let groups = [grid_items(ctx, channels), 1, 1];
            let (d, params) = prepare(
                ctx,
                &SHADER,
                "bn_backward",
                &bn_params(&cfg),
                groups,
                &bindings,
            )
            .await?;
            return Ok(BatchNorm2dBackward {
                dispatches: vec![d],
                _buffers: vec![params],
            });
        }
        let (pieces, params, groups) = split_pass(ctx, &cfg, (chunk, splits), &what)?;
        let (sums, params) = prepare(
            ctx,
            &SHADER,
            "bn_backward_sums",
            &params,
            groups,
            &[
                (1, g.x),
                (8, g.dy),
                (9, g.saved),
                (15, Slice::from(&pieces)),
            ],
        )
        .await?;
        let mut all: Vec<(u32, Slice)> = vec![(0, Slice::from(&params))];
        all.extend(bindings);
        all.push((15, Slice::from(&pieces)));
        let apply = dispatch(ctx, &SHADER, "bn_backward_apply", groups, &all).await?;
        Ok(BatchNorm2dBackward {
            dispatches: vec![sums, apply],
            _buffers: vec![params, pieces],
        })
    }
}

/// Marker of [`BatchNorm2dEvalBackward`].
pub enum BatchNorm2dEvalBackwardOp {}

/// A prepared BatchNorm2d backward after an eval-mode forward (twin:
/// [`batch_norm_eval_backward_cpu`]): reads the running statistics instead of `g.saved`
/// (unused). Encode `dispatch`.
pub type BatchNorm2dEvalBackward = Kernel<BatchNorm2dEvalBackwardOp>;

impl BatchNorm2dEvalBackward {
    pub async fn new(
        ctx: &Context,
        cfg: BatchNorm2dConfig,
        g: &NormGrads<'_>,
        running_mean: Slice<'_>,
        running_var: Slice<'_>,
    ) -> Result<Self> {
        let what = format!("a BatchNorm2d eval-mode backward over {cfg:?}");
        g.check(&what, cfg.len(), cfg.c, 0)?;
        check_sizes(
            &what,
            &[
                ("running_mean", running_mean, cfg.c),
                ("running_var", running_var, cfg.c),
            ],
        )?;
        let channels = if cfg.is_empty() { 0 } else { cfg.c };
        Self::prepare(
            ctx,
            &SHADER,
            "bn_eval_backward",
            &bn_params(&cfg),
            [grid_items(ctx, channels), 1, 1],
            &[
                (1, g.x),
                (2, g.gamma),
                (6, running_mean),
                (7, running_var),
                (8, g.dy),
                (10, g.dx),
                (11, g.dgamma),
                (12, g.dbeta),
            ],
        )
        .await
    }
}

/// Workgroups of 64 threads that hold every row of a LayerNorm, 64 / lanes rows each.
fn ln_row_groups(cfg: &LayerNormConfig) -> usize {
    if cfg.is_empty() {
        return 0;
    }
    cfg.rows.div_ceil(64 / layer_norm_lanes(cfg.c))
}

fn ln_params(cfg: &LayerNormConfig) -> Params {
    Params {
        n: cfg.rows as u32,
        c: cfg.c as u32,
        hw: 1,
        m: cfg.c as u32,
        eps: cfg.eps,
        momentum: 0.0,
        splits: 1,
        chunk: cfg.rows as u32,
        lanes: layer_norm_lanes(cfg.c) as u32,
        _pad: [0; 3],
    }
}

/// A prepared LayerNorm forward over `x [rows, C]`: writes `y [rows, C]` and
/// `saved [2·rows]`, [`layer_norm_lanes`] threads per row (several rows per workgroup when
/// rows are short). Encode `dispatch`.
pub struct LayerNorm {
    pub cfg: LayerNormConfig,
    pub dispatch: Dispatch,
    _params: wgpu::Buffer,
}

impl LayerNorm {
    /// `gamma`, `beta`: whole buffers or slices of the flat parameters.
    pub async fn new<'a>(
        ctx: &Context,
        cfg: LayerNormConfig,
        x: impl Into<Slice<'a>>,
        gamma: impl Into<Slice<'a>>,
        beta: impl Into<Slice<'a>>,
        y: impl Into<Slice<'a>>,
        saved: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (x, gamma, beta): (Slice, Slice, Slice) = (x.into(), gamma.into(), beta.into());
        let (y, saved): (Slice, Slice) = (y.into(), saved.into());
        let what = format!("a LayerNorm over {cfg:?}");
        check_sizes(
            &what,
            &[
                ("x", x, cfg.len()),
                ("y", y, cfg.len()),
                ("gamma", gamma, cfg.c),
                ("beta", beta, cfg.c),
                ("saved", saved, 2 * cfg.rows),
            ],
        )?;
        let groups = ln_row_groups(&cfg);
        let (dispatch, params) = prepare(
            ctx,
            &SHADER,
            "ln_forward",
            &ln_params(&cfg),
            [grid_items(ctx, groups), 1, 1],
            &[(1, x), (2, gamma), (3, beta), (4, y), (5, saved)],
        )
        .await?;
        Ok(LayerNorm {
            cfg,
            dispatch,
            _params: params,
        })
    }
}

/// A prepared LayerNorm backward: encode `dispatches` in order — dx per row (rows sharing
/// workgroups as in the forward), then dgamma/dbeta reduced over the rows: one dispatch, or
/// when [`layer_norm_params_split`] cuts the rows into pieces, the pieces then
/// `ln_params_finish` adding them in ascending order.
pub struct LayerNormBackward {
    pub dispatches: Vec<Dispatch>,
    _buffers: Vec<wgpu::Buffer>,
}

impl LayerNormBackward {
    pub async fn new(ctx: &Context, cfg: LayerNormConfig, g: &NormGrads<'_>) -> Result<Self> {
        let what = format!("a LayerNorm backward over {cfg:?}");
        g.check(&what, cfg.len(), cfg.c, 2 * cfg.rows)?;
        let (chunk, splits) = layer_norm_params_split(&cfg);
        let params = Params {
            splits: splits as u32,
            chunk: chunk as u32,
            ..ln_params(&cfg)
        };
        let (dx_pass, params) = prepare(
            ctx,
            &SHADER,
            "ln_backward_dx",
            &params,
            [grid_items(ctx, ln_row_groups(&cfg)), 1, 1],
            &[(1, g.x), (2, g.gamma), (8, g.dy), (9, g.saved), (10, g.dx)],
        )
        .await?;
        // Unsplit, the pieces are not written (a word-sized stand-in is bound).
        let pieces = ctx.zeros("layer norm pieces", (2 * cfg.c * splits).max(1))?;
        let tiles = if cfg.is_empty() {
            0
        } else {
            cfg.c.div_ceil(16)
        };
        let wy = ctx.check_workgroups(&what, splits as u64)?;
        let params_pass = dispatch(
            ctx,
            &SHADER,
            "ln_backward_params",
            [grid_items(ctx, tiles), wy, 1],
            &[
                (0, Slice::from(&params)),
                (1, g.x),
                (8, g.dy),
                (9, g.saved),
                (11, g.dgamma),
                (12, g.dbeta),
                (15, Slice::from(&pieces)),
            ],
        )
        .await?;
        let mut dispatches = vec![dx_pass, params_pass];
        if splits > 1 {
            let finish = dispatch(
                ctx,
                &SHADER,
                "ln_params_finish",
                [grid_1d(ctx, cfg.c), 1, 1],
                &[
                    (0, Slice::from(&params)),
                    (11, g.dgamma),
                    (12, g.dbeta),
                    (15, Slice::from(&pieces)),
                ],
            )
            .await?;
            dispatches.push(finish);
        }
        Ok(LayerNormBackward {
            dispatches,
            _buffers: vec![params, pieces],
        })
    }
}

/// CPU twin of [`CountBatches`]: `state[o] += 1` for every offset `o` (the
/// `num_batches_tracked` entries of a model's BatchNorms).
pub fn count_batches_cpu(state: &mut [f32], offsets: &[u32]) {
    for &o in offsets {
        state[o as usize] += 1.0;
    }
}

/// A prepared `state[o] += 1` for each of a set of distinct offsets into a state buffer:
/// what a training forward does to every BatchNorm's `num_batches_tracked`. Encode
/// `dispatch` (it does nothing for an empty set).
pub struct CountBatches {
    pub dispatch: Dispatch,
    _params: wgpu::Buffer,
    _offsets: wgpu::Buffer,
}

impl CountBatches {
    /// `offsets`: distinct word offsets into `state`.
    pub async fn new(ctx: &Context, state: &wgpu::Buffer, offsets: &[u32]) -> Result<Self> {
        let end = offsets.iter().map(|&o| o as usize + 1).max().unwrap_or(0);
        check_sizes("a batch counter", &[("state", state, end)])?;
        let list = ctx.storage("batch counter offsets", offsets)?;
        let params = Params {
            n: offsets.len() as u32,
            c: 0,
            hw: 0,
            m: 0,
            eps: 0.0,
            momentum: 0.0,
            splits: 1,
            chunk: 0,
            lanes: 1,
            _pad: [0; 3],
        };
        let workgroups = [grid_items(ctx, offsets.len().div_ceil(64)), 1, 1];
        let (dispatch, params) = prepare(
            ctx,
            &SHADER,
            "count_batches",
            &params,
            workgroups,
            &[(13, &list), (14, state)],
        )
        .await?;
        Ok(CountBatches {
            dispatch,
            _params: params,
            _offsets: list,
        })
    }
}
