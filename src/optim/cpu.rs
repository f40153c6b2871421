//! The CPU optimizer: the reference the GPU step is tested against, and the optimizer of
//! the CPU executor. One [`CpuOptimizer::step`] = the configured number of
//! forward+backward passes through a caller's closure, then the SGD update
//! ([`sgd_step`](super::sgd_step)'s arithmetic) with the regulariser's gradient inside it:
//! per regularised tensor one statistics pass (VAR, Hoyer; ℓ1 sums |w| inside the update),
//! then one read-modify-write of every weight ([`Penalty::update`]).
//!
//! S²-SAM (Ji et al., "A Single-Step, Sharpness-Aware Minimization is All You Need to
//! Achieve Efficient and Accurate Sparse Training", NeurIPS 2024; the authors' code,
//! `jjsrf/SSAM-NEURIPS2024`, `sam.py` with `v2`) takes SAM's ascent direction from the
//! gradient the PREVIOUS step computed, so each step has one forward+backward pass:
//!
//! ```text
//! ε_t = ρ · g_{t−1} / ‖g_{t−1}‖₂       (ε_0 = 0: the first step is plain SGD)
//! g_t = ∇L_B(w_t + ε_t)                 (the step's only pass, at the perturbed weights)
//! w_{t+1} = SGD(w_t, g_t)               (momentum and weight decay at w_t, as for SAM)
//! ```
//!
//! `g_{t−1}` is the loss gradient of the previous step (taken at its own perturbed point;
//! without the regulariser's term for S²-SAM+VAR, whose term is taken at w_t). The loss and
//! the BatchNorm statistics a step reports are those of the perturbed pass.
//!
//! Taking the next step's statistics inside the update pass (the new weights are at hand
//! there, so the statistics pass would disappear) was considered and left out: statistics
//! kept from one step to the next go stale, silently, whenever a caller changes the weights
//! between steps (a checkpoint loaded, a pruned copy, a test's fresh weights), and checking
//! that they did not costs the read it would save.

use super::config::{OptimConfig, OptimError};
use super::cram::{cram_ranks, cram_segments, SparsitySampler};
use super::reg::{blocked_sum, regularised, telemetry, Penalty, TensorVar};
use super::sgd::Sgd;
use crate::nn::ParamTable;
use crate::ops::select::{select_abs_cpu, zero_at_or_below_cpu};
use crate::ops::stats::global_norm_cpu;

/// The gradient callback of [`CpuOptimizer::step`]: `(params, first_pass, grads) ->
/// (mean loss, correct)`.
pub type GradFn<'a> = dyn FnMut(&[f32], bool, &mut [f32]) -> (f32, usize) + 'a;

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Mean loss of the first pass (at w).
    pub loss: f32,
    /// Correct predictions of the first pass.
    pub correct: usize,
    /// The regulariser's penalty at w before the update: λ·ψ (VAR kinds), λ₁Σ|w| (ℓ1),
    /// λ_h·Σ_ℓ H_ℓ (Hoyer); 0 for none.
    pub reg: f32,
    /// CrAM's sparsity of this step.
    pub sparsity_used: Option<f32>,
}

/// The element ranges of the tensors `penalty` regularises, sorted by offset (none for
/// [`Penalty::None`]). Tensors of a [`ParamTable`] do not overlap.
fn penalised_ranges(
    table: &ParamTable,
    regularize_all: bool,
    penalty: Penalty,
) -> Vec<std::ops::Range<usize>> {
    if penalty == Penalty::None {
        return Vec::new();
    }
    let mut ranges: Vec<_> = regularised(table, regularize_all)
        .iter()
        .map(|p| p.range())
        .collect();
    ranges.sort_by_key(|r| r.start);
    debug_assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
    ranges
}

/// An optimizer over one flat parameter array laid out by a [`ParamTable`].
pub struct CpuOptimizer {
    cfg: OptimConfig,
    table: ParamTable,
    penalty: Penalty,
    segments: Vec<Vec<(usize, usize)>>,
    /// The regularised tensors' element ranges in offset order (empty without a penalty).
    penalised: Vec<std::ops::Range<usize>>,
    /// Every tensor as `(offset, len)`: SAM's gradient norm.
    all_tensors: Vec<(usize, usize)>,
    sampler: SparsitySampler,
    momentum: Vec<f32>,
    grads: Vec<f32>,
    saved_w: Vec<f32>,
    saved_g: Vec<f32>,
    /// S²-SAM: the previous step's loss gradient and its global norm (0 before the first).
    prev_g: Vec<f32>,
    prev_norm: f32,
    mask: Option<Vec<f32>>,
}

impl CpuOptimizer {
    pub fn new(cfg: &OptimConfig, table: &ParamTable, seed: u64) -> Result<Self, OptimError> {
        cfg.validate()?;
        let n = table.buffer_len;
        let penalty = Penalty::from_config(cfg);
        let penalised = penalised_ranges(table, cfg.regularize_all, penalty);
        Ok(CpuOptimizer {
            cfg: cfg.clone(),
            table: table.clone(),
            penalty,
            segments: cram_segments(table, cfg.cram_scope),
            penalised,
            all_tensors: table.entries.iter().map(|p| (p.offset, p.len)).collect(),
            sampler: SparsitySampler::new(&cfg.cram_sparsity, seed),
            momentum: vec![0.0; n],
            grads: vec![0.0; n],
            saved_w: Vec::new(),
            saved_g: Vec::new(),
            prev_g: if cfg.kind.is_s2sam() {
                vec![0.0; n]
            } else {
                Vec::new()
            },
            prev_norm: 0.0,
            mask: None,
        })
    }

    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// One step. `grad(params, first_pass, grads) -> (mean_loss, correct)` runs
    /// forward+loss+backward on the CURRENT batch at `params`, writing `grads` (flat
    /// layout). `first_pass` is true for the pass whose BN running stats and metrics count
    /// (SAM/CrAM call it a second time with false).
    pub fn step(&mut self, params: &mut [f32], lr: f32, grad: &mut GradFn<'_>) -> StepReport {
        assert_eq!(params.len(), self.table.buffer_len, "flat parameter length");
        let kind = self.cfg.kind;
        if kind.is_s2sam() {
            return self.step_s2sam(params, lr, grad);
        }
        let (loss, correct) = grad(params, true, &mut self.grads);
        let mut sparsity_used = None;
        if kind.is_sam() || kind.is_cram() {
            self.saved_w.clear();
            self.saved_w.extend_from_slice(params);
            let scale = if kind.is_sam() {
                let norm = global_norm_cpu(&self.grads, &self.all_tensors);
                if norm > 0.0 {
                    self.cfg.rho / norm
                } else {
                    0.0
                }
            } else {
                self.cfg.rho
            };
            for (w, &g) in params.iter_mut().zip(&self.grads) {
                *w += scale * g;
            }
            if kind.is_cram() {
                let s = self.sampler.draw();
                sparsity_used = Some(s);
                let ks = cram_ranks(&self.segments, s);
                let sel = select_abs_cpu(params, &self.segments, &ks);
                zero_at_or_below_cpu(params, &self.segments, &sel);
                if self.cfg.cram_plus {
                    self.saved_g.clear();
                    self.saved_g.extend_from_slice(&self.grads);
                }
            }
            grad(params, false, &mut self.grads);
            params.copy_from_slice(&self.saved_w);
            if kind.is_cram() && self.cfg.cram_plus {
                for (g, &g0) in self.grads.iter_mut().zip(&self.saved_g) {
                    *g += g0;
                }
            }
        }
        let reg = self.update(params, lr);
        self.apply_mask(params);
        StepReport {
            loss,
            correct,
            reg: reg as f32,
            sparsity_used,
        }
    }

    /// Zeroes the pruned weights where a mask is set (after every update).
    fn apply_mask(&self, params: &mut [f32]) {
        if let Some(mask) = &self.mask {
            for (w, &m) in params.iter_mut().zip(mask) {
                *w *= m;
            }
        }
    }

    /// S²-SAM's step (module docs): perturb by the kept gradient, one pass, restore, update,
    /// keep this step's loss gradient and its norm for the next step.
    fn step_s2sam(&mut self, params: &mut [f32], lr: f32, grad: &mut GradFn<'_>) -> StepReport {
        let scale = if self.prev_norm > 0.0 {
            self.cfg.rho / self.prev_norm
        } else {
            0.0
        };
        let perturbed = scale != 0.0;
        if perturbed {
            self.saved_w.resize(params.len(), 0.0);
            let (saved_w, prev_g) = (&mut self.saved_w, &self.prev_g);
            super::sgd::wide(
                #[inline(always)]
                || {
                    for ((w, saved), &g) in params.iter_mut().zip(saved_w.iter_mut()).zip(prev_g) {
                        *saved = *w;
                        *w += scale * g;
                    }
                },
            );
        }
        let (loss, correct) = grad(params, true, &mut self.grads);
        if perturbed {
            params.copy_from_slice(&self.saved_w);
        }
        let reg = if self.penalty == Penalty::None {
            // The update reads the gradient without changing it: keep it by a swap.
            let reg = self.update(params, lr);
            std::mem::swap(&mut self.grads, &mut self.prev_g);
            reg
        } else {
            // The update adds the regulariser's term to the gradient: keep it first.
            self.prev_g.clear();
            self.prev_g.extend_from_slice(&self.grads);
            self.update(params, lr)
        };
        // The gaps between tensors are zero: the whole array's sum is the tensors'.
        self.prev_norm = blocked_sum(&self.prev_g, |x| x * x).sqrt() as f32;
        self.apply_mask(params);
        StepReport {
            loss,
            correct,
            reg: reg as f32,
            sparsity_used: None,
        }
    }

    /// The SGD update of every weight with the regulariser's gradient inside it on the
    /// regularised tensors; returns the penalty at the weights before the update. The same
    /// arithmetic, element by element, as adding the gradient of [`Penalty::apply`] to the
    /// gradients and then calling [`sgd_step`](super::sgd_step) on the whole array.
    fn update(&mut self, params: &mut [f32], lr: f32) -> f64 {
        let sgd = Sgd {
            lr,
            momentum: self.cfg.momentum,
            weight_decay: self.cfg.weight_decay,
            nesterov: self.cfg.nesterov,
        };
        let (grads, momentum) = (&mut self.grads, &mut self.momentum);
        let mut reg = 0.0f64;
        let mut at = 0;
        for r in &self.penalised {
            let gap = at..r.start;
            sgd.update(
                &mut params[gap.clone()],
                &grads[gap.clone()],
                &mut momentum[gap],
            );
            reg += self.penalty.update(
                &sgd,
                &mut params[r.clone()],
                &mut grads[r.clone()],
                &mut momentum[r.clone()],
            ) as f64;
            at = r.end;
        }
        let rest = at..params.len();
        sgd.update(
            &mut params[rest.clone()],
            &grads[rest.clone()],
            &mut momentum[rest],
        );
        reg
    }

    /// The momentum buffer (flat layout).
    pub fn momentum(&self) -> &[f32] {
        &self.momentum
    }

    /// The gradient the last update used (regulariser included, weight decay not).
    pub fn last_grads(&self) -> &[f32] {
        if self.cfg.kind.is_s2sam() && self.penalty == Penalty::None {
            return &self.prev_g; // swapped in by the step
        }
        &self.grads
    }

    /// Multiplies the weights by `mask` after every update (keeps pruned weights at 0);
    /// `None` turns it off. A mask of the wrong length is refused.
    pub fn set_mask(&mut self, mask: Option<Vec<f32>>) -> Result<(), OptimError> {
        if let Some(m) = &mask {
            if m.len() != self.table.buffer_len {
                return Err(OptimError::MaskLength {
                    expected: self.table.buffer_len,
                    got: m.len(),
                });
            }
        }
        self.mask = mask;
        Ok(())
    }

    /// Per regularised tensor: m, V, ψ_ℓ and the configured penalty, at `params`.
    pub fn telemetry(&self, params: &[f32]) -> Vec<TensorVar> {
        telemetry(params, &self.table, self.cfg.regularize_all, &self.penalty)
    }
}
