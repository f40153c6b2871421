//! One-shot magnitude pruning and the weight statistics shown beside it.
//!
//! The prunable tensors are those of [`ParamInfo::prunable`] (conv, linear, attention and
//! patch-embedding weights — the set VAR regularises). Sparsity is always a fraction of the
//! prunable weights `N` (the denominator every report states): pruning to `s` zeroes exactly
//! `round(s·N)` of them, the smallest `|w|` first. Ties are broken by position in the flat
//! array (lower first), so the same weights always give the same mask.
//!
//! - [`Scope::Global`]: one threshold over every candidate tensor.
//! - [`Scope::Layer`]: each candidate tensor loses `round(s·n)` of its own `n` weights.
//! - `keep_first` / `keep_last` leave the first / last prunable tensor (the stem and the
//!   classifier head) dense. Globally the `round(s·N)` weights are then taken from the other
//!   tensors (as far as they have weights); per layer those tensors are simply skipped. Either
//!   way the reported `actual_sparsity` is zeroed / N.
//!
//! Selection is `select_nth_unstable` on `(|w|, index)` keys: O(N), no full sort.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::nn::{ParamInfo, ParamTable};

/// Global (one magnitude threshold over all prunable weights) or per-layer (each prunable
/// tensor loses the same fraction) pruning; CrAM's compression uses the same choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    Layer,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Global => "global",
            Scope::Layer => "layer",
        })
    }
}

/// How to prune.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PruneOptions {
    pub sparsity: f32,
    pub scope: Scope,
    pub keep_first: bool,
    pub keep_last: bool,
}

/// What a pruning did.
#[derive(Clone, Debug, PartialEq)]
pub struct Pruned {
    /// 1 where a weight is kept, 0 where it was zeroed; prunable tensors only (the flat
    /// layout of the table; non-prunable positions are 1).
    pub mask: Vec<f32>,
    /// Weights zeroed by this pruning.
    pub zeroed: usize,
    /// The denominator: all prunable weights.
    pub prunable: usize,
    /// zeroed / prunable.
    pub actual_sparsity: f64,
}

/// The prunable tensors pruning may touch, in table order.
fn candidates(table: &ParamTable, keep_first: bool, keep_last: bool) -> Vec<&ParamInfo> {
    let prunable: Vec<&ParamInfo> = table.entries.iter().filter(|p| p.prunable).collect();
    let last = prunable.len().saturating_sub(1);
    prunable
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| !(keep_first && i == 0 || keep_last && i == last))
        .map(|(_, p)| p)
        .collect()
}

/// A key that orders by `|w|`, then by flat index (both ascending).
fn key(w: f32, index: usize) -> u64 {
    ((w.abs().to_bits() as u64) << 32) | index as u64
}

/// Zeroes (in `mask`) the `k` smallest keys of `keys`.
fn zero_smallest(keys: &mut [u64], k: usize, mask: &mut [f32]) {
    if k == 0 {
        return;
    }
    let k = k.min(keys.len());
    if k < keys.len() {
        keys.select_nth_unstable(k - 1);
    }
    for &key in &keys[..k] {
        mask[(key & 0xFFFF_FFFF) as usize] = 0.0;
    }
}

/// The magnitude-pruning mask of `params` (laid out as `table`).
///
/// # Panics
/// When `params` is shorter than the table or the flat array has more than 2³² elements.
pub fn magnitude_mask(params: &[f32], table: &ParamTable, opts: &PruneOptions) -> Pruned {
    assert!(params.len() >= table.buffer_len, "parameter array length");
    assert!(
        params.len() <= u32::MAX as usize,
        "flat array too large for pruning keys"
    );
    let mut mask = vec![1.0f32; params.len()];
    let prunable = table.prunable_count();
    let cands = candidates(table, opts.keep_first, opts.keep_last);
    let s = opts.sparsity.clamp(0.0, 1.0) as f64;
    match opts.scope {
        Scope::Global => {
            let mut keys: Vec<u64> = cands
                .iter()
                .flat_map(|p| p.range().map(|i| key(params[i], i)))
                .collect();
            let k = (s * prunable as f64).round() as usize;
            zero_smallest(&mut keys, k, &mut mask);
        }
        Scope::Layer => {
            for p in cands {
                let mut keys: Vec<u64> = p.range().map(|i| key(params[i], i)).collect();
                let k = (s * p.len as f64).round() as usize;
                zero_smallest(&mut keys, k, &mut mask);
            }
        }
    }
    let zeroed = mask.iter().filter(|&&m| m == 0.0).count();
    Pruned {
        mask,
        zeroed,
        prunable,
        actual_sparsity: if prunable == 0 {
            0.0
        } else {
            zeroed as f64 / prunable as f64
        },
    }
}

/// `params` with the zeroed weights of `mask` set to 0.
pub fn apply_mask(params: &[f32], mask: &[f32]) -> Vec<f32> {
    params.iter().zip(mask).map(|(w, m)| w * m).collect()
}

/// Bins of [`WeightStats::hist`].
pub const HIST_BINS: usize = 64;

/// The statistics of one tensor the page and the results show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    pub name: String,
    pub n: usize,
    /// Variance of |w| (population).
    pub var_abs: f64,
    /// Kurtosis of w: E[(w − μ)⁴] / σ⁴ (3 for a Gaussian; 0 when σ = 0).
    pub kurtosis: f64,
    /// Fraction of weights with |w| < 1e-3 (exact zeros included).
    pub frac_below_1e3: f64,
    /// The histogram of w over [`hist_min`, `hist_max`] in [`HIST_BINS`] equal bins.
    pub hist_min: f32,
    pub hist_max: f32,
    pub hist: Vec<u32>,
}

/// [`WeightStats`] of one tensor.
pub fn weight_stats(name: &str, w: &[f32]) -> WeightStats {
    let n = w.len().max(1) as f64;
    let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mean_abs = w.iter().map(|&x| x.abs() as f64).sum::<f64>() / n;
    let (mut m2, mut m4, mut var_abs) = (0.0, 0.0, 0.0);
    for &x in w {
        let d = x as f64 - mean;
        m2 += d * d;
        m4 += d * d * d * d;
        let a = x.abs() as f64 - mean_abs;
        var_abs += a * a;
    }
    let (m2, m4) = (m2 / n, m4 / n);
    let lo = w.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0) - 1e-6, hi.max(0.0) + 1e-6)
    };
    let mut hist = vec![0u32; HIST_BINS];
    let scale = HIST_BINS as f32 / (hi - lo);
    for &x in w {
        let b = (((x - lo) * scale) as usize).min(HIST_BINS - 1);
        hist[b] += 1;
    }
    WeightStats {
        name: name.to_string(),
        n: w.len(),
        var_abs: var_abs / n,
        kurtosis: if m2 > 0.0 { m4 / (m2 * m2) } else { 0.0 },
        frac_below_1e3: w.iter().filter(|x| x.abs() < 1e-3).count() as f64 / n,
        hist_min: lo,
        hist_max: hi,
        hist,
    }
}

/// [`WeightStats`] of every prunable tensor of `params`, in table order.
pub fn prunable_stats(params: &[f32], table: &ParamTable) -> Vec<WeightStats> {
    table
        .entries
        .iter()
        .filter(|p| p.prunable)
        .map(|p| weight_stats(&p.name, &params[p.range()]))
        .collect()
}
