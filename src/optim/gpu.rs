//! The GPU optimizer: the step of [`super::CpuOptimizer`] as one list of dispatches over the
//! flat `params`/`grads` buffers, for one submit. Its cost does not grow with the number of
//! layers: every pass covers all tensors at once through tables of tensor offsets.
//!
//! Dispatches added to the caller's `first` (and `second`) passes:
//! - SGD, ℓ1: `update` — 1;
//! - VAR, Hoyer: statistics of the regularised tensors (2, [`TensorStats`]) + `update` — 3;
//! - SAM: gradient norm (3) + `perturb` + `second` + `restore` + `update` — 6 (+2 SAM+VAR);
//! - CrAM: `perturb` + radix select (7, [`AbsSelect`]) + compress + `second` + `restore` +
//!   `update` — 11 (+2 CrAM+VAR); CrAM+ saves ∇L(w) inside `perturb` and adds it in `update`.
//! - S²-SAM: `perturb` by the kept gradient (before `first`) + `restore` + `update` (which
//!   keeps this step's gradient) + its norm (3) — 6 (+2 S²-SAM+VAR), no second pass.

use super::config::OptimConfig;
use super::cram::{cram_ranks, cram_segments, SparsitySampler};
use super::reg::{regularised, Penalty, TensorVar, EPS, R};
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};
use crate::nn::ParamTable;
use crate::ops::kernel::{check_sizes, dispatch, grid_1d, grid_2d, prepare};
use crate::ops::select::AbsSelect;
use crate::ops::stats::{chunks_of, TensorStats};

const SHADER: Shader = Shader {
    name: "optim",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/optim.wgsl")),
};
/// The regulariser as `shaders/optim.wgsl` reads it (its `REG_*` constants) and its λ.
fn reg_code(penalty: Penalty) -> (u32, f32) {
    match penalty {
        Penalty::None => (0, 0.0),
        Penalty::Var(l) => (1, l),
        Penalty::L1(l) => (2, l),
        Penalty::Hoyer(l) => (3, l),
    }
}

/// Chunk-table marker of a tensor without a regulariser.
const NONE: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StepParams {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: u32,
    lambda: f32,
    reg: u32,
    chunks: u32,
    use_mask: u32,
    add_extra: u32,
    r: f32,
    eps: f32,
    /// S²-SAM: `update` copies the loss gradient into the kept buffer.
    keep_grad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PerturbParams {
    n: u32,
    rho: f32,
    normalise: u32,
    save_grad: u32,
}

/// The two-pass machinery of SAM and CrAM.
struct Perturbation {
    perturb: Dispatch,
    restore: Dispatch,
    /// SAM: the gradient's global norm (3 dispatches).
    norm: Option<TensorStats>,
    /// CrAM: the compression's threshold select.
    select: Option<AbsSelect>,
    segments: Vec<Vec<(usize, usize)>>,
    _buffers: Vec<wgpu::Buffer>,
}

/// S²-SAM's one-pass machinery: `perturb` (w ← w + ρ·g₋₁/‖g₋₁‖, saving w) goes before the
/// caller's pass, `restore` after it; `update` keeps the new gradient and `norm` its norm.
struct OnePass {
    perturb: Dispatch,
    restore: Dispatch,
    norm: TensorStats,
    _buffers: Vec<wgpu::Buffer>,
}

/// A prepared optimizer over flat buffers laid out by a [`ParamTable`].
pub struct GpuOptimizer {
    cfg: OptimConfig,
    table: ParamTable,
    penalty: Penalty,
    step: StepParams,
    step_uniform: wgpu::Buffer,
    update: Dispatch,
    /// Statistics of the regularised tensors at w (the step's reduction; telemetry).
    reg_stats: TensorStats,
    momentum: wgpu::Buffer,
    mask: wgpu::Buffer,
    perturbation: Option<Perturbation>,
    one_pass: Option<OnePass>,
    sampler: SparsitySampler,
    sparsity: Option<f32>,
    _buffers: Vec<wgpu::Buffer>,
}

fn config_error(e: impl std::fmt::Display) -> GpuError {
    GpuError::Validation {
        what: "the optimizer configuration".into(),
        message: e.to_string(),
    }
}

/// S²-SAM's dispatches over the kept gradient `kept` (zeros before the first step, so the
/// first perturbation is 0).
async fn one_pass(
    ctx: &Context,
    cfg: &OptimConfig,
    table: &ParamTable,
    params: &wgpu::Buffer,
    kept: &wgpu::Buffer,
) -> Result<OnePass> {
    let n = table.buffer_len;
    let all: Vec<(usize, usize)> = table.entries.iter().map(|p| (p.offset, p.len)).collect();
    let norm = TensorStats::new(ctx, kept, &all, R).await?;
    let saved_w = ctx.zeros("saved weights", n)?;
    let unused = ctx.zeros("saved gradient (unused)", 1)?;
    let q = PerturbParams {
        n: n as u32,
        rho: cfg.rho,
        normalise: 1,
        save_grad: 0,
    };
    let q_uniform = ctx.uniform("perturb", &q);
    let grid = [grid_1d(ctx, n), 1, 1];
    let perturb = dispatch(
        ctx,
        &SHADER,
        "perturb",
        grid,
        &[
            (8, &q_uniform),
            (1, params),
            (2, kept),
            (9, &saved_w),
            (10, &unused),
            (11, &norm.norm),
        ],
    )
    .await?;
    let restore = dispatch(
        ctx,
        &SHADER,
        "restore",
        grid,
        &[(8, &q_uniform), (1, params), (9, &saved_w)],
    )
    .await?;
    Ok(OnePass {
        perturb,
        restore,
        norm,
        _buffers: vec![saved_w, unused, q_uniform],
    })
}

impl GpuOptimizer {
    pub async fn new(
        ctx: &Context,
        cfg: &OptimConfig,
        table: &ParamTable,
        params: &wgpu::Buffer,
        grads: &wgpu::Buffer,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate().map_err(config_error)?;
        let n = table.buffer_len;
        check_sizes(
            "the optimizer step",
            &[("params", params, n), ("grads", grads, n)],
        )?;
        let kind = cfg.kind;
        let penalty = Penalty::from_config(cfg);
        let (reg, lambda) = reg_code(penalty);

        // Statistics slot of every regularised tensor; update chunks over all tensors.
        let reg_tensors = regularised(table, cfg.regularize_all);
        let reg_ranges: Vec<(usize, usize)> =
            reg_tensors.iter().map(|p| (p.offset, p.len)).collect();
        let reg_stats = TensorStats::new(ctx, params, &reg_ranges, R).await?;
        let mut chunks: Vec<[u32; 4]> = Vec::new();
        for p in &table.entries {
            let slot = reg_tensors
                .iter()
                .position(|r| r.offset == p.offset)
                .map_or(NONE, |s| s as u32);
            chunks.extend(
                chunks_of(p.offset, p.len).map(|(a, b)| [a as u32, b as u32, slot, p.len as u32]),
            );
        }

        let momentum = ctx.zeros("momentum", n)?;
        let mask = ctx.zeros("weight mask", n)?;
        let chunk_buf = ctx.storage("optimizer chunks", &chunks)?;
        let saved_g = if kind.is_cram() && cfg.cram_plus {
            ctx.zeros("saved gradient", n)?
        } else {
            ctx.zeros("saved gradient (unused)", 1)?
        };
        let step = StepParams {
            lr: 0.0,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            nesterov: cfg.nesterov as u32,
            lambda,
            reg,
            chunks: chunks.len() as u32,
            use_mask: 0,
            add_extra: (kind.is_cram() && cfg.cram_plus) as u32,
            r: R,
            eps: EPS,
            keep_grad: kind.is_s2sam() as u32,
        };
        let kept = ctx.zeros("kept gradient", if kind.is_s2sam() { n } else { 1 })?;
        let (update, step_uniform) = prepare(
            ctx,
            &SHADER,
            "update",
            &step,
            grid_2d(ctx, "the optimizer step", chunks.len())?,
            &[
                (1, params),
                (2, grads),
                (3, &momentum),
                (4, &chunk_buf),
                (5, &reg_stats.stats),
                (6, &mask),
                (7, &saved_g),
                (12, &kept),
            ],
        )
        .await?;
        let one_pass = if kind.is_s2sam() {
            Some(one_pass(ctx, cfg, table, params, &kept).await?)
        } else {
            None
        };

        let perturbation = if kind.is_sam() || kind.is_cram() {
            let saved_w = ctx.zeros("saved weights", n)?;
            let norm = if kind.is_sam() {
                let all: Vec<(usize, usize)> =
                    table.entries.iter().map(|p| (p.offset, p.len)).collect();
                Some(TensorStats::new(ctx, grads, &all, R).await?)
            } else {
                None
            };
            let segments = if kind.is_cram() {
                cram_segments(table, cfg.cram_scope)
            } else {
                Vec::new()
            };
            let select = if kind.is_cram() {
                Some(AbsSelect::new(ctx, params, &segments).await?)
            } else {
                None
            };
            let unused_norm = ctx.zeros("unused norm", 1)?;
            let norm_buf = norm.as_ref().map_or(&unused_norm, |s| &s.norm);
            let q = PerturbParams {
                n: n as u32,
                rho: cfg.rho,
                normalise: kind.is_sam() as u32,
                save_grad: (kind.is_cram() && cfg.cram_plus) as u32,
            };
            // The perturbation's parameters sit at binding 8 (the step's own are at 0).
            let q_uniform = ctx.uniform("perturb", &q);
            let grid = [grid_1d(ctx, n), 1, 1];
            let perturb = dispatch(
                ctx,
                &SHADER,
                "perturb",
                grid,
                &[
                    (8, &q_uniform),
                    (1, params),
                    (2, grads),
                    (9, &saved_w),
                    (10, &saved_g),
                    (11, norm_buf),
                ],
            )
            .await?;
            let restore = dispatch(
                ctx,
                &SHADER,
                "restore",
                grid,
                &[(8, &q_uniform), (1, params), (9, &saved_w)],
            )
            .await?;
            Some(Perturbation {
                perturb,
                restore,
                norm,
                select,
                segments,
                _buffers: vec![saved_w, q_uniform, unused_norm],
            })
        } else {
            None
        };

        Ok(GpuOptimizer {
            cfg: cfg.clone(),
            table: table.clone(),
            penalty,
            step,
            step_uniform,
            update,
            reg_stats,
            momentum,
            mask,
            perturbation,
            one_pass,
            sampler: SparsitySampler::new(&cfg.cram_sparsity, seed),
            sparsity: None,
            _buffers: vec![chunk_buf, saved_g, kept],
        })
    }

    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Written with ctx.write before the step's submit: learning rate, and (CrAM-Multi)
    /// the sparsity sampled for this step (the same sequence as [`super::CpuOptimizer`]'s
    /// for the same seed).
    pub fn set_step(&mut self, ctx: &Context, lr: f32) -> Result<()> {
        self.step.lr = lr;
        ctx.write(&self.step_uniform, &[self.step]);
        if let Some(select) = self.perturbation.as_ref().and_then(|p| p.select.as_ref()) {
            let s = self.sampler.draw();
            self.sparsity = Some(s);
            let segments = &self.perturbation.as_ref().unwrap().segments;
            select.set_k(ctx, &cram_ranks(segments, s))?;
        }
        Ok(())
    }

    /// CrAM's sparsity of the step last set up by [`Self::set_step`].
    pub fn sparsity(&self) -> Option<f32> {
        self.sparsity
    }

    /// The step's dispatch list, for ONE submit: `first` = forward+loss+backward updating
    /// BN stats/metrics, `second` = the same without (used by SAM/CrAM only).
    pub fn step_dispatches<'a>(
        &'a self,
        first: &[&'a Dispatch],
        second: &[&'a Dispatch],
    ) -> Vec<&'a Dispatch> {
        let mut list: Vec<&Dispatch> = Vec::with_capacity(first.len() + second.len() + 16);
        if let Some(op) = &self.one_pass {
            list.push(&op.perturb);
            list.extend_from_slice(first);
            list.push(&op.restore);
        } else {
            list.extend_from_slice(first);
        }
        if let Some(pt) = &self.perturbation {
            if let Some(norm) = &pt.norm {
                list.extend(norm.dispatches());
            }
            list.push(&pt.perturb);
            if let Some(select) = &pt.select {
                list.extend(select.dispatches());
                list.push(select.zero_dispatch());
            }
            list.extend_from_slice(second);
            list.push(&pt.restore);
        }
        if self.cfg.kind.needs_weight_stats() {
            let [chunk_pass, tensor_pass, _] = self.reg_stats.dispatches();
            list.extend([chunk_pass, tensor_pass]);
        }
        list.push(&self.update);
        if let Some(op) = &self.one_pass {
            list.extend(op.norm.dispatches());
        }
        list
    }

    /// Dispatches this optimizer adds to the caller's passes (see the module docs).
    pub fn dispatch_count(&self) -> usize {
        self.step_dispatches(&[], &[]).len()
    }

    /// Multiplies the weights by `mask` after every update (keeps pruned weights at 0);
    /// `None` turns it off. Refuses a mask of the wrong length.
    pub fn set_mask(&mut self, ctx: &Context, mask: Option<&[f32]>) -> Result<()> {
        if let Some(m) = mask {
            if m.len() != self.table.buffer_len {
                return Err(GpuError::Validation {
                    what: "the weight mask".into(),
                    message: format!(
                        "it has {} values but the parameter array has {}",
                        m.len(),
                        self.table.buffer_len
                    ),
                });
            }
            if !m.is_empty() {
                ctx.write(&self.mask, m);
            }
        }
        self.step.use_mask = mask.is_some() as u32;
        ctx.write(&self.step_uniform, &[self.step]);
        Ok(())
    }

    pub async fn read_momentum(&self, ctx: &Context) -> Result<Vec<f32>> {
        let mut v: Vec<f32> = ctx.read(&self.momentum).await?;
        v.truncate(self.table.buffer_len);
        Ok(v)
    }

    /// Per regularised tensor: m, V, ψ_ℓ and the configured penalty (λψ_ℓ for VAR) at the
    /// CURRENT weights — it submits the statistics reduction itself (2 dispatches) and reads
    /// it back, so it works for every kind, SGD included. Not needed by the step.
    pub async fn read_telemetry(&self, ctx: &Context) -> Result<Vec<TensorVar>> {
        let [chunk_pass, tensor_pass, _] = self.reg_stats.dispatches();
        ctx.submit(&[chunk_pass, tensor_pass])?;
        let stats = self.reg_stats.read(ctx).await?;
        let tensors = regularised(&self.table, self.cfg.regularize_all);
        Ok(tensors
            .iter()
            .zip(&stats)
            .map(|(info, s)| TensorVar::from_stats(info, s, &self.penalty))
            .collect())
    }
}
