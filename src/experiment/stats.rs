//! Paired statistics of a comparison. Runs with the same seed start from the same weights
//! and see the same batches, so the honest comparison of two optimizers is per seed: the
//! difference of their accuracies seed by seed, its mean ± sample std, the paired t
//! (mean / (std/√n)), and in how many seeds the optimizer came out above the baseline.
//! At ≥ 95 % sparsity seeds differ by 5–17 points, so means alone say little.
//!
//! `significant` is a two-sided test at 5 % for one cell. A sweep tests 7–8 sparsities,
//! so one cell in ~15 comes out "significant" by chance when nothing differs: a claim should
//! rest on neighbouring sparsities agreeing, or on more seeds, not on one cell.

use serde::{Deserialize, Serialize};

use super::RunResult;

/// One optimizer against the baseline at one sparsity (or dense).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub optimizer: String,
    pub baseline: String,
    /// `None`: the dense (unpruned) accuracy.
    pub sparsity: Option<f32>,
    /// `accuracy`, or `accuracy_bn_recal` (after BatchNorm re-calibration).
    pub metric: String,
    /// Seeds where both runs finished.
    pub n: usize,
    /// Mean and sample std of `optimizer − baseline`, as fractions (0.034 = 3.4 points).
    pub mean: f64,
    pub std: f64,
    /// The paired t; `None` with fewer than 2 seeds or no spread.
    pub t: Option<f64>,
    /// Seeds where the optimizer is above, and below, the baseline.
    pub wins: usize,
    pub losses: usize,
    /// |t| above the two-sided 5 % critical value for n − 1 degrees of freedom.
    pub significant: bool,
}

/// Two-sided 5 % critical values of Student's t for 1 … 30 degrees of freedom (then 1.96
/// is within 0.1 of the exact value: 2.04 at 30, 2.00 at 60).
const T_CRIT: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The two-sided 5 % critical value of t for `df` degrees of freedom (`df` ≥ 1).
pub fn t_critical(df: usize) -> f64 {
    T_CRIT.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// Mean and sample standard deviation (0 for fewer than 2 values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The paired statistics of `diffs` (one value per seed).
fn paired(
    optimizer: &str,
    baseline: &str,
    sparsity: Option<f32>,
    metric: &str,
    diffs: &[f64],
) -> Paired {
    let n = diffs.len();
    let (mean, std) = mean_std(diffs);
    // Accuracies are f32 counts over at most a few 10⁵ images: differences that are the
    // same up to f32 rounding (a spread below 1e-6) have no spread, and no t.
    let std = if std < 1e-6 { 0.0 } else { std };
    let t = (n >= 2 && std > 0.0).then(|| mean / (std / (n as f64).sqrt()));
    Paired {
        optimizer: optimizer.to_string(),
        baseline: baseline.to_string(),
        sparsity,
        metric: metric.to_string(),
        n,
        mean,
        std,
        t,
        wins: diffs.iter().filter(|&&d| d > 0.0).count(),
        losses: diffs.iter().filter(|&&d| d < 0.0).count(),
        significant: t.is_some_and(|t| t.abs() > t_critical(n - 1)),
    }
}

/// The baseline of a comparison: `sgd` when it is among `optimizers`, else the first.
pub fn baseline(optimizers: &[String]) -> Option<&str> {
    optimizers
        .iter()
        .find(|o| o.as_str() == "sgd")
        .or(optimizers.first())
        .map(String::as_str)
}

/// Every other optimizer against the baseline, dense and at each of `sparsities`; with
/// BatchNorm re-calibration also on the re-calibrated accuracies. Diverged runs and seeds
/// where either run is missing are left out of a pair (and so of `n`).
pub fn paired_stats(optimizers: &[String], sparsities: &[f32], runs: &[RunResult]) -> Vec<Paired> {
    let Some(base) = baseline(optimizers) else {
        return Vec::new();
    };
    let ok = |r: &&RunResult, name: &str| r.optimizer == name && r.diverged.is_none();
    // The baseline's first run of each seed: pairing is linear in the runs (a merged file may
    // hold 10⁴ of them).
    let mut by_seed = std::collections::HashMap::new();
    for b in runs.iter().filter(|b| ok(b, base)) {
        by_seed.entry(b.seed).or_insert(b);
    }
    let mut out = Vec::new();
    for name in optimizers.iter().filter(|o| o.as_str() != base) {
        let pairs: Vec<(&RunResult, &RunResult)> = runs
            .iter()
            .filter(|r| ok(r, name))
            .filter_map(|r| by_seed.get(&r.seed).map(|&b| (r, b)))
            .collect();
        let dense: Vec<f64> = pairs
            .iter()
            .map(|(r, b)| r.dense_accuracy as f64 - b.dense_accuracy as f64)
            .collect();
        out.push(paired(name, base, None, "accuracy", &dense));
        for (i, &s) in sparsities.iter().enumerate() {
            let at = |r: &RunResult| r.sweep.get(i).map(|p| p.accuracy as f64);
            let diffs: Vec<f64> = pairs
                .iter()
                .filter_map(|(r, b)| Some(at(r)? - at(b)?))
                .collect();
            out.push(paired(name, base, Some(s), "accuracy", &diffs));
        }
        for (i, &s) in sparsities.iter().enumerate() {
            let at = |r: &RunResult| {
                r.sweep
                    .get(i)
                    .and_then(|p| p.accuracy_bn_recal.map(f64::from))
            };
            let diffs: Vec<f64> = pairs
                .iter()
                .filter_map(|(r, b)| Some(at(r)? - at(b)?))
                .collect();
            if !diffs.is_empty() {
                out.push(paired(name, base, Some(s), "accuracy_bn_recal", &diffs));
            }
        }
    }
    out
}

/// How a sentence names an optimizer (`CrAM`, `SAM+VAR`, `ℓ1`).
pub fn display_name(name: &str) -> String {
    match name {
        "cram" => "CrAM".into(),
        "cram+var" => "CrAM+VAR".into(),
        "s2sam" => "S²-SAM".into(),
        "s2sam+var" => "S²-SAM+VAR".into(),
        "l1" => "ℓ1".into(),
        "hoyer" => "Hoyer".into(),
        other => other.to_uppercase(),
    }
}

fn percent(s: f32) -> String {
    let p = 100.0 * s as f64;
    if (p - p.round()).abs() < 1e-3 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// `+3.4`, `−0.4` (a real minus sign).
fn signed(x: f64) -> String {
    format!("{x:+.1}").replace('-', "−")
}

/// `+3.4 ± 3.3 points`.
fn points(p: &Paired) -> String {
    format!("{} ± {:.1} points", signed(100.0 * p.mean), 100.0 * p.std)
}

/// One plain sentence per optimizer against the baseline, from the pruned (not
/// re-calibrated) accuracies: where it is above or below by more than the seed spread, or
/// that it is within it; with one seed, that no verdict is possible.
pub fn verdicts(paired: &[Paired]) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    for p in paired {
        if !names.contains(&p.optimizer.as_str()) {
            names.push(&p.optimizer);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let rows: Vec<&Paired> = paired
                .iter()
                .filter(|p| p.optimizer == name && p.metric == "accuracy" && p.sparsity.is_some())
                .collect();
            verdict(&rows)
        })
        .collect()
}

fn verdict(rows: &[&Paired]) -> Option<String> {
    let first = rows.first()?;
    let (me, base) = (
        display_name(&first.optimizer),
        display_name(&first.baseline),
    );
    let n = rows.iter().map(|p| p.n).max().unwrap_or(0);
    if n == 0 {
        return Some(format!(
            "{me} and {base}: no pair of finished runs to compare."
        ));
    }
    let largest = rows
        .iter()
        .filter(|p| p.n > 0)
        .max_by(|a, b| a.mean.abs().total_cmp(&b.mean.abs()))?;
    if n < 2 {
        return Some(format!(
            "{me} − {base} with one seed: {} points at {}; no verdict is possible from one \
             seed (run 4 or more).",
            signed(100.0 * largest.mean),
            percent(largest.sparsity.unwrap_or(0.0))
        ));
    }
    let t = |p: &Paired| {
        p.t.map(|t| format!("paired t = {}", signed(t)))
            .unwrap_or_default()
    };
    let ups: Vec<&Paired> = rows
        .iter()
        .copied()
        .filter(|p| p.significant && p.mean > 0.0)
        .collect();
    let best_up = ups.iter().copied().max_by(|a, b| a.mean.total_cmp(&b.mean));
    let also: Vec<String> = ups
        .iter()
        .filter(|p| !std::ptr::eq(**p, best_up.unwrap_or(p)))
        .map(|p| percent(p.sparsity.unwrap_or(0.0)))
        .collect();
    let worst_down = rows
        .iter()
        .filter(|p| p.significant && p.mean < 0.0)
        .min_by(|a, b| a.mean.total_cmp(&b.mean));
    let mut out = match best_up {
        Some(p) => format!(
            "{me} above {base} at {} in {} of {} seeds, {} ({}){}.",
            percent(p.sparsity.unwrap_or(0.0)),
            p.wins,
            p.n,
            points(p),
            t(p),
            match also.len() {
                0 => String::new(),
                _ => format!("; also above at {}", also.join(" and ")),
            }
        ),
        None => format!(
            "{me} is within the seed spread of {base} at every sparsity ({n} seeds; largest \
             difference {} at {}).",
            points(largest),
            percent(largest.sparsity.unwrap_or(0.0))
        ),
    };
    if let Some(p) = worst_down {
        out += &format!(
            " It is below {base} at {} in {} of {} seeds, {} ({}).",
            percent(p.sparsity.unwrap_or(0.0)),
            p.losses,
            p.n,
            points(p),
            t(p)
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_difference_up_to_f32_rounding_has_no_spread() {
        // One image of 300 fewer in every seed, as f32 accuracies widened to f64.
        let d = |a: f32, b: f32| a as f64 - b as f64;
        let diffs = [
            d(100.0 / 300.0, 101.0 / 300.0),
            d(107.0 / 300.0, 108.0 / 300.0),
        ];
        assert_ne!(diffs[0], diffs[1], "the rounding this test is about");
        let p = paired("var", "sgd", Some(0.7), "accuracy", &diffs);
        assert_eq!((p.std, p.t, p.significant), (0.0, None, false));
        assert_eq!(p.losses, 2);
    }
}
