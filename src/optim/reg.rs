//! The regularisers, CPU side: VAR's ψ (METHODS.md) with its gradient, ℓ1 and Hoyer-square,
//! per tensor, and the per-tensor telemetry ([`TensorVar`]) the page shows.
//!
//! Each penalty's gradient is written as per-tensor coefficients times a per-weight term,
//! the form the fused GPU step evaluates (shaders/optim.wgsl):
//! - VAR: `λ·∂ψ_ℓ/∂w_i = −c·(w̃_i − m)·w_i/w̃_i` with `c = 2λ/(n·(V+ε)²)`;
//! - ℓ1: `λ₁·sign(w_i)` (0 at 0);
//! - Hoyer-square `H = (Σ|w|)²/Σw²`: `λ_h·∂H/∂w_i = a·sign(w_i) − b·w_i` with
//!   `a = 2λ_h·Σ|w|/Σw²`, `b = 2λ_h·(Σ|w|)²/(Σw²)²` (0 for an all-zero tensor).

use super::config::{OptimConfig, OptimKind};
use super::sgd::{wide, Sgd};
use crate::nn::{ParamInfo, ParamTable};
use crate::ops::stats::{tensor_stats_cpu, Stats};

/// VAR's smoothing of |w|: `w̃ = √(w² + R)`.
pub const R: f32 = 1e-8;
/// VAR's guard in `ψ_ℓ = 1/(V + EPS)`.
pub const EPS: f32 = 1e-8;

/// The tensors the regularisers act on: the prunable ones, or all with `regularize_all`.
pub fn regularised(table: &ParamTable, regularize_all: bool) -> Vec<&ParamInfo> {
    table
        .entries
        .iter()
        .filter(|p| regularize_all || p.prunable)
        .collect()
}

/// VAR's statistics of one tensor from its sums (f64): mean `m` of w̃, variance
/// `V = q − m²` (q = Σw²/n + R), clamped at 0. An empty tensor gives (0, 0).
pub fn moments(len: usize, sum_smooth_abs: f64, sum_sq: f64) -> (f64, f64) {
    if len == 0 {
        return (0.0, 0.0);
    }
    let n = len as f64;
    let m = sum_smooth_abs / n;
    let q = sum_sq / n + R as f64;
    (m, (q - m * m).max(0.0))
}

/// Per-tensor telemetry: VAR's `m`, `V`, `ψ_ℓ`, the sums behind ℓ1 and Hoyer, and the
/// λ-weighted penalty of the configured regulariser (`penalty`, 0 where none is known).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorVar {
    pub name: String,
    pub len: usize,
    /// Mean of w̃ (smoothed |w|).
    pub mean: f32,
    /// Variance of w̃ (clamped at 0).
    pub var: f32,
    /// `ψ_ℓ = 1/(V + ε)` (0 for an empty tensor).
    pub psi: f32,
    pub sum_abs: f32,
    pub sum_sq: f32,
    /// This tensor's share of the penalty: λψ_ℓ (VAR kinds), λ₁Σ|w| (ℓ1), λ_h·H (Hoyer), else 0.
    pub penalty: f32,
}

impl TensorVar {
    /// From the sums of [`crate::ops::stats`] (GPU or CPU twin).
    pub fn from_stats(info: &ParamInfo, s: &Stats, penalty: &Penalty) -> TensorVar {
        let (m, v) = moments(info.len, s.sum_smooth_abs as f64, s.sum_sq as f64);
        let psi = if info.len == 0 {
            0.0
        } else {
            1.0 / (v + EPS as f64)
        };
        let mut t = TensorVar {
            name: info.name.clone(),
            len: info.len,
            mean: m as f32,
            var: v as f32,
            psi: psi as f32,
            sum_abs: s.sum_abs,
            sum_sq: s.sum_sq,
            penalty: 0.0,
        };
        t.penalty = penalty.of(&t);
        t
    }
}

/// Per regularised tensor (prunable ones unless `regularize_all`): VAR's `m`, `V`, `ψ_ℓ`.
/// `penalty` is 0 here (no configuration); [`super::CpuOptimizer::telemetry`] fills it.
pub fn var_stats(params: &[f32], table: &ParamTable, regularize_all: bool) -> Vec<TensorVar> {
    telemetry(params, table, regularize_all, &Penalty::None)
}

/// [`var_stats`] with the penalty of `penalty` filled in.
pub fn telemetry(
    params: &[f32],
    table: &ParamTable,
    regularize_all: bool,
    penalty: &Penalty,
) -> Vec<TensorVar> {
    let tensors = regularised(table, regularize_all);
    let ranges: Vec<(usize, usize)> = tensors.iter().map(|p| (p.offset, p.len)).collect();
    let stats = tensor_stats_cpu(params, &ranges, R);
    tensors
        .iter()
        .zip(&stats)
        .map(|(info, s)| TensorVar::from_stats(info, s, penalty))
        .collect()
}

/// ψ_ℓ of one tensor: `1/(V + ε)` (sums in f64).
pub fn psi_tensor(w: &[f32]) -> f32 {
    let s = tensor_stats_cpu(w, &[(0, w.len())], R)[0];
    let (_, v) = moments(w.len(), s.sum_smooth_abs as f64, s.sum_sq as f64);
    (1.0 / (v + EPS as f64)) as f32
}

/// VAR's per-tensor coefficients `(c, m)` for weight `lambda`: `c = 2λ/(n·(V+ε)²)`.
pub fn var_coefficients(w: &[f32], lambda: f32) -> (f32, f32) {
    if w.is_empty() {
        return (0.0, 0.0);
    }
    let s = tensor_stats_cpu(w, &[(0, w.len())], R)[0];
    let (m, v) = moments(w.len(), s.sum_smooth_abs as f64, s.sum_sq as f64);
    let c = 2.0 * lambda as f64 / (w.len() as f64 * (v + EPS as f64).powi(2));
    (c as f32, m as f32)
}

/// Adds `scale·∂ψ_ℓ/∂w` of one tensor `w` to `out`.
pub fn psi_tensor_grad(w: &[f32], scale: f32, out: &mut [f32]) {
    let (c, m) = var_coefficients(w, scale);
    Term::Var { c, m }.add_to(w, out);
}

/// ψ = Σ_ℓ ψ_ℓ over the regularised tensors of the flat `params`.
pub fn psi(params: &[f32], table: &ParamTable, regularize_all: bool) -> f32 {
    regularised(table, regularize_all)
        .iter()
        .map(|p| psi_tensor(&params[p.range()]) as f64)
        .sum::<f64>() as f32
}

/// Adds `scale·∂ψ/∂w` to the flat `grads` (regularised tensors only).
pub fn psi_grad(
    params: &[f32],
    table: &ParamTable,
    regularize_all: bool,
    scale: f32,
    grads: &mut [f32],
) {
    for p in regularised(table, regularize_all) {
        psi_tensor_grad(&params[p.range()], scale, &mut grads[p.range()]);
    }
}

/// `w̃ = √(w² + R)`, VAR's smoothed |w|.
#[inline(always)]
pub fn smooth_abs(x: f32) -> f32 {
    (x * x + R).sqrt()
}

/// Elements per block of the blocked sums ([`blocked_sum`]).
pub const BLOCK: usize = 64;
/// Accumulators of a sum: two AVX2 registers of f32 (four SSE ones), so that its additions
/// run as independent dependency chains.
const LANES: usize = 16;

/// Per-lane sums in f64 ([`LaneSums::add_block`], [`LaneSums::total`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct LaneSums([f64; LANES]);

impl LaneSums {
    /// Adds `Σ f(x)` of one block (at most [`BLOCK`] elements): element `i` into f32 lane
    /// `i % 16` (at most 4 terms per lane), then each lane into its f64 accumulator. No
    /// horizontal additions per block, and each lane is its own dependency chain, so the
    /// loop vectorises. It must be the only reduction in its loop (two sums in one loop
    /// defeat LLVM's SLP vectoriser): [`smooth_sq_sums`] and [`abs_sq_sums`] run one per sum
    /// over each block while it is in L1.
    #[inline(always)]
    pub fn add_block(&mut self, block: &[f32], f: impl Fn(f32) -> f32) {
        let mut lanes = [0.0f32; LANES];
        let mut groups = block.chunks_exact(LANES);
        for v in &mut groups {
            for k in 0..LANES {
                lanes[k] += f(v[k]);
            }
        }
        for (l, &x) in lanes.iter_mut().zip(groups.remainder()) {
            *l += f(x);
        }
        for (acc, &l) in self.0.iter_mut().zip(&lanes) {
            *acc += l as f64;
        }
    }

    /// [`LaneSums::add_block`] for a full block (`block.len() == BLOCK`, from
    /// `chunks_exact(BLOCK)`): the same additions, compiled for that constant length (no
    /// tail code, loops unrolled). Only where the loop over blocks holds one sum: unrolled,
    /// two sums' lanes get paired by the SLP vectoriser into scalar square roots (measured
    /// 4× slower), so [`two_sums`] keeps [`LaneSums::add_block`].
    #[inline(always)]
    pub fn add_full(&mut self, block: &[f32], f: impl Fn(f32) -> f32) {
        let block: &[f32; BLOCK] = block.try_into().expect("a full block");
        self.add_block(block, f);
    }

    /// The sum of the lanes.
    pub fn total(&self) -> f64 {
        self.0.iter().sum()
    }
}

/// `Σ f(x)` over `w` in blocks of [`BLOCK`] = 64: within a block 16 f32 lanes of at most 4
/// terms, each lane then added into its own f64 accumulator ([`LaneSums`]) — f32
/// arithmetic where it vectorises, f64 where the sums grow.
///
/// Accuracy: a term passes through at most 4 f32 roundings (its own, and 3 additions in its
/// lane) before the f64 accumulation (~1e-16 relative), so for terms of one sign (every sum
/// here: w̃, w², |w|) the relative error is at most 4·2⁻²⁴ ≈ 2.4e-7 of the sum;
/// `tests/optim.rs` holds the sums within 1e-6 of f64 sums per element.
pub fn blocked_sum(w: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    wide(
        #[inline(always)]
        || {
            let mut sums = LaneSums::default();
            for block in w.chunks(BLOCK) {
                sums.add_block(block, f);
            }
            sums.total()
        },
    )
}

/// VAR's statistics pass: `(Σw̃, Σw²)` of `w` in one read of it, summed as [`blocked_sum`]
/// does (same accuracy).
pub fn smooth_sq_sums(w: &[f32]) -> (f64, f64) {
    two_sums(w, smooth_abs, |x| x * x)
}

/// `(Σ|w|, Σw²)` of `w` in one read of it ([`blocked_sum`]'s accuracy): Hoyer's statistics.
pub fn abs_sq_sums(w: &[f32]) -> (f64, f64) {
    two_sums(w, f32::abs, |x| x * x)
}

/// `(Σf(x), Σh(x))` over `w` in one read of it, block by block: both sums of a block while
/// it is in L1, each in a loop of its own, with [`blocked_sum`]'s additions.
#[inline(always)]
fn two_sums(w: &[f32], f: impl Fn(f32) -> f32, h: impl Fn(f32) -> f32) -> (f64, f64) {
    wide(
        #[inline(always)]
        || {
            let (mut sum_f, mut sum_h) = (LaneSums::default(), LaneSums::default());
            for block in w.chunks(BLOCK) {
                sum_f.add_block(block, &f);
                sum_h.add_block(block, &h);
            }
            (sum_f.total(), sum_h.total())
        },
    )
}

/// One tensor's penalty gradient with its statistics folded into constants: what the
/// update adds to each element's gradient (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Term {
    None,
    /// VAR: `−c·(w̃ − m)·w/w̃`.
    Var {
        c: f32,
        m: f32,
    },
    /// ℓ1: `λ·sign(w)`.
    L1(f32),
    /// Hoyer-square: `a·sign(w) − b·w`.
    Hoyer {
        a: f32,
        b: f32,
    },
}

impl Term {
    /// VAR's term at `x` (w̃ computed again: a square root costs less than storing w̃ in
    /// the statistics pass and reading it back here, which doubled VAR's extra memory
    /// traffic and measured slower).
    #[inline(always)]
    pub fn var(c: f32, m: f32, x: f32) -> f32 {
        let s = smooth_abs(x);
        -(c * (s - m) * x / s)
    }

    /// ℓ1's term at `x`.
    #[inline(always)]
    pub fn l1(lambda: f32, x: f32) -> f32 {
        lambda * sign(x)
    }

    /// Hoyer-square's term at `x`.
    #[inline(always)]
    pub fn hoyer(a: f32, b: f32, x: f32) -> f32 {
        a * sign(x) - b * x
    }

    /// [`Term::var`] as the `term` of [`Sgd::update_with`] (a closure forced inline, so that
    /// it is compiled into the AVX2 loop of [`wide`]).
    pub fn var_of(c: f32, m: f32) -> impl Fn(f32) -> f32 + Copy {
        #[inline(always)]
        move |x| Term::var(c, m, x)
    }

    /// [`Term::l1`] as the `term` of [`Sgd::update_with`].
    pub fn l1_of(lambda: f32) -> impl Fn(f32) -> f32 + Copy {
        #[inline(always)]
        move |x| Term::l1(lambda, x)
    }

    /// [`Term::hoyer`] as the `term` of [`Sgd::update_with`].
    pub fn hoyer_of(a: f32, b: f32) -> impl Fn(f32) -> f32 + Copy {
        #[inline(always)]
        move |x| Term::hoyer(a, b, x)
    }

    /// `sgd`'s update of `w` and its momentum `v`, the term added to `g` inside the pass
    /// ([`Sgd::update_with`]).
    pub fn update(self, sgd: &Sgd, w: &mut [f32], g: &mut [f32], v: &mut [f32]) {
        match self {
            Term::None => sgd.update(w, g, v),
            Term::Var { c, m } => sgd.update_with(w, g, v, Term::var_of(c, m)),
            Term::L1(lambda) => sgd.update_with(w, g, v, Term::l1_of(lambda)),
            Term::Hoyer { a, b } => sgd.update_with(w, g, v, Term::hoyer_of(a, b)),
        }
    }

    /// Adds the term at every `w` to `g` (one gradient pass).
    pub fn add_to(self, w: &[f32], g: &mut [f32]) {
        match self {
            Term::None => {}
            Term::Var { c, m } => add_each(w, g, Term::var_of(c, m)),
            Term::L1(lambda) => add_each(w, g, Term::l1_of(lambda)),
            Term::Hoyer { a, b } => add_each(w, g, Term::hoyer_of(a, b)),
        }
    }
}

/// `g ← g + term(w)`, element by element.
#[inline(always)]
fn add_each(w: &[f32], g: &mut [f32], term: impl Fn(f32) -> f32) {
    for (o, &x) in g.iter_mut().zip(w) {
        *o += term(x);
    }
}

/// The configured regulariser and its weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Penalty {
    None,
    /// λ·ψ_ℓ.
    Var(f32),
    /// λ₁·Σ|w|.
    L1(f32),
    /// λ_h·(Σ|w|)²/Σw².
    Hoyer(f32),
}

impl Penalty {
    pub fn from_config(cfg: &OptimConfig) -> Penalty {
        match cfg.kind {
            k if k.uses_var() => Penalty::Var(cfg.lambda),
            OptimKind::L1 => Penalty::L1(cfg.lambda_l1),
            OptimKind::Hoyer => Penalty::Hoyer(cfg.lambda_hoyer),
            _ => Penalty::None,
        }
    }

    /// This penalty for one tensor's telemetry.
    pub fn of(&self, t: &TensorVar) -> f32 {
        match *self {
            Penalty::None => 0.0,
            Penalty::Var(lambda) => lambda * t.psi,
            Penalty::L1(lambda) => lambda * t.sum_abs,
            Penalty::Hoyer(lambda) => lambda * hoyer_of(t.sum_abs as f64, t.sum_sq as f64) as f32,
        }
    }

    /// The penalty of one tensor `w`.
    pub fn value(&self, w: &[f32]) -> f32 {
        let s = tensor_stats_cpu(w, &[(0, w.len())], R)[0];
        match *self {
            Penalty::None => 0.0,
            Penalty::Var(lambda) => lambda * psi_tensor(w),
            Penalty::L1(lambda) => lambda * s.sum_abs,
            Penalty::Hoyer(lambda) => lambda * hoyer_of(s.sum_abs as f64, s.sum_sq as f64) as f32,
        }
    }

    /// The penalty of `w` and its gradient's [`Term`], from ONE statistics pass (blocked
    /// f32 sums, [`blocked_sum`]). [`Penalty::value`] and [`Penalty::add_grad`] compute the
    /// same from f64 passes.
    pub fn prepare(&self, w: &[f32]) -> (f32, Term) {
        if w.is_empty() {
            return (0.0, Term::None);
        }
        match *self {
            Penalty::None => (0.0, Term::None),
            Penalty::Var(lambda) => {
                let (sum_smooth, sum_sq) = smooth_sq_sums(w);
                let (m, v) = moments(w.len(), sum_smooth, sum_sq);
                let psi = 1.0 / (v + EPS as f64);
                let c = 2.0 * lambda as f64 / (w.len() as f64 * (v + EPS as f64).powi(2));
                let term = Term::Var {
                    c: c as f32,
                    m: m as f32,
                };
                ((lambda as f64 * psi) as f32, term)
            }
            Penalty::L1(lambda) => (l1_value(lambda, blocked_sum(w, f32::abs)), Term::L1(lambda)),
            Penalty::Hoyer(lambda) => {
                let (sum_abs, sum_sq) = abs_sq_sums(w);
                let (a, b) = hoyer_coefficients(lambda, sum_abs as f32, sum_sq as f32);
                (
                    lambda * hoyer_of(sum_abs, sum_sq) as f32,
                    Term::Hoyer { a, b },
                )
            }
        }
    }

    /// The penalty of `w` and its gradient added to `g`: [`Penalty::prepare`], then one
    /// gradient pass. The CPU optimizer instead applies the term inside the SGD update
    /// ([`Penalty::update`]).
    pub fn apply(&self, w: &[f32], g: &mut [f32]) -> f32 {
        let (value, term) = self.prepare(w);
        term.add_to(w, g);
        value
    }

    /// One tensor's share of the CPU optimizer's step: `sgd`'s update of `w` and its momentum
    /// `v` with the penalty's gradient added to `g` inside the same pass
    /// ([`Sgd::update_with`]); VAR and Hoyer first take their statistics in one read of `w`
    /// ([`Penalty::prepare`]), ℓ1 needs none for its gradient and sums |w| for its value
    /// inside the update pass ([`Sgd::update_summing`]). Bitwise the same weights, momentum
    /// and gradients as [`Penalty::apply`] followed by [`super::sgd_step`]. Returns the
    /// penalty at `w` before the update.
    pub fn update(&self, sgd: &Sgd, w: &mut [f32], g: &mut [f32], v: &mut [f32]) -> f32 {
        match *self {
            Penalty::L1(lambda) => {
                let sum_abs = sgd.update_summing(w, g, v, Term::l1_of(lambda), f32::abs);
                l1_value(lambda, sum_abs)
            }
            _ => {
                let (value, term) = self.prepare(w);
                term.update(sgd, w, g, v);
                value
            }
        }
    }

    /// Adds the penalty's gradient at one tensor `w` to `g` (statistics in f64).
    pub fn add_grad(&self, w: &[f32], g: &mut [f32]) {
        match *self {
            Penalty::None => {}
            Penalty::Var(lambda) => psi_tensor_grad(w, lambda, g),
            Penalty::L1(lambda) => Term::L1(lambda).add_to(w, g),
            Penalty::Hoyer(lambda) => {
                let s = tensor_stats_cpu(w, &[(0, w.len())], R)[0];
                let (a, b) = hoyer_coefficients(lambda, s.sum_abs, s.sum_sq);
                Term::Hoyer { a, b }.add_to(w, g);
            }
        }
    }
}

/// ℓ1's penalty `λ₁·Σ|w|` from the sum.
fn l1_value(lambda: f32, sum_abs: f64) -> f32 {
    lambda * sum_abs as f32
}

/// `(Σ|w|)²/Σw²`, 0 for an all-zero tensor.
fn hoyer_of(sum_abs: f64, sum_sq: f64) -> f64 {
    if sum_sq > 0.0 {
        sum_abs * sum_abs / sum_sq
    } else {
        0.0
    }
}

/// Hoyer-square's `(a, b)` (module docs), in f32 as the GPU computes them.
pub fn hoyer_coefficients(lambda: f32, sum_abs: f32, sum_sq: f32) -> (f32, f32) {
    if sum_sq > 0.0 {
        let a = 2.0 * lambda * sum_abs / sum_sq;
        (a, a * sum_abs / sum_sq)
    } else {
        (0.0, 0.0)
    }
}

/// sign with sign(0) = 0 (WGSL's `sign`; Rust's `signum` gives ±1 at ±0), and 0 for NaN.
/// Written without branches (two comparisons turned into 0/1), so loops using it vectorise.
#[inline(always)]
pub fn sign(x: f32) -> f32 {
    f32::from(u8::from(x > 0.0)) - f32::from(u8::from(x < 0.0))
}
