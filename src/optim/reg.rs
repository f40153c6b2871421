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
    add_var_grad(c, m, w, out);
}

/// Adds VAR's gradient `−c·(w̃ − m)·w/w̃` for coefficients `(c, m)` to `out`.
fn add_var_grad(c: f32, m: f32, w: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(w) {
        let smooth = (x * x + R).sqrt();
        *o -= c * (smooth - m) * x / smooth;
    }
}

/// Adds ℓ1's gradient `λ·sign(w)` to `out`.
fn add_l1_grad(lambda: f32, w: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(w) {
        *o += lambda * sign(x);
    }
}

/// Adds Hoyer-square's gradient `a·sign(w) − b·w` to `out`.
fn add_hoyer_grad(a: f32, b: f32, w: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(w) {
        *o += a * sign(x) - b * x;
    }
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

/// Σ√(w² + r), Σw² and Σ|w| of `w` in one pass: f32 arithmetic (it vectorises) summed
/// in blocks of 64, each block added into f64. Relative error of each sum ≤ ~64·2⁻²⁴ ≈ 4e-6
/// of the block's magnitude, against the f64-per-element [`tensor_stats_cpu`] (the tests
/// hold the two within 1e-5).
pub fn fast_sums(w: &[f32]) -> (f64, f64, f64) {
    let (mut s0, mut s1, mut s2) = (0.0f64, 0.0f64, 0.0f64);
    for block in w.chunks(64) {
        let (mut a, mut b, mut c) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
        let mut lanes = block.chunks_exact(8);
        for v in &mut lanes {
            for k in 0..8 {
                a[k] += (v[k] * v[k] + R).sqrt();
                b[k] += v[k] * v[k];
                c[k] += v[k].abs();
            }
        }
        for &x in lanes.remainder() {
            a[0] += (x * x + R).sqrt();
            b[0] += x * x;
            c[0] += x.abs();
        }
        s0 += a.iter().sum::<f32>() as f64;
        s1 += b.iter().sum::<f32>() as f64;
        s2 += c.iter().sum::<f32>() as f64;
    }
    (s0, s1, s2)
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

    /// The penalty of `w` and its gradient added to `g`, from ONE statistics pass and one
    /// gradient pass: what the CPU optimizer runs every step ([`Penalty::value`] and
    /// [`Penalty::add_grad`] compute the same, each from its own f64 passes).
    pub fn apply(&self, w: &[f32], g: &mut [f32]) -> f32 {
        if *self == Penalty::None || w.is_empty() {
            return 0.0;
        }
        let (smooth, sq, abs) = fast_sums(w);
        match *self {
            Penalty::None => 0.0,
            Penalty::Var(lambda) => {
                let (m, v) = moments(w.len(), smooth, sq);
                let psi = 1.0 / (v + EPS as f64);
                let c = 2.0 * lambda as f64 / (w.len() as f64 * (v + EPS as f64).powi(2));
                add_var_grad(c as f32, m as f32, w, g);
                (lambda as f64 * psi) as f32
            }
            Penalty::L1(lambda) => {
                add_l1_grad(lambda, w, g);
                lambda * abs as f32
            }
            Penalty::Hoyer(lambda) => {
                let (a, b) = hoyer_coefficients(lambda, abs as f32, sq as f32);
                add_hoyer_grad(a, b, w, g);
                lambda * hoyer_of(abs, sq) as f32
            }
        }
    }

    /// Adds the penalty's gradient at one tensor `w` to `g`.
    pub fn add_grad(&self, w: &[f32], g: &mut [f32]) {
        match *self {
            Penalty::None => {}
            Penalty::Var(lambda) => psi_tensor_grad(w, lambda, g),
            Penalty::L1(lambda) => add_l1_grad(lambda, w, g),
            Penalty::Hoyer(lambda) => {
                let s = tensor_stats_cpu(w, &[(0, w.len())], R)[0];
                let (a, b) = hoyer_coefficients(lambda, s.sum_abs, s.sum_sq);
                add_hoyer_grad(a, b, w, g);
            }
        }
    }
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

/// sign with sign(0) = 0 (WGSL's `sign`; Rust's `signum` gives ±1 at ±0).
pub fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
