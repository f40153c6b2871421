//! The one CSV of a result (the CLI's `--csv`, `varlab merge --csv` and the page's CSV
//! export all call [`ExperimentResult::to_csv`]): one row per run × sparsity, the dense
//! network first as sparsity 0.

use super::{ExperimentResult, RunResult, SweepPoint};

/// The columns, in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "optimizer",
    "seed",
    "sparsity",
    "actual_sparsity",
    "accuracy",
    "accuracy_bn_recal",
    "dense_accuracy",
    "psi",
    "psi_init",
    "lambda_psi0",
    "diverged",
    "model",
    "dataset",
    "epochs",
];

impl ExperimentResult {
    /// One row per run × sparsity, the dense network first (sparsity 0, its accuracy in
    /// `accuracy` too); a diverged run has only its dense row, with empty accuracies.
    /// Numbers are written in their shortest exact form; a missing value is an empty cell.
    pub fn to_csv(&self) -> String {
        let mut out = CSV_COLUMNS.join(",") + "\n";
        let dense = |run: &RunResult| SweepPoint {
            sparsity: 0.0,
            actual_sparsity: 0.0,
            accuracy: run.dense_accuracy,
            accuracy_bn_recal: None,
        };
        for run in &self.runs {
            for p in std::iter::once(dense(run)).chain(run.sweep.iter().cloned()) {
                let row = [
                    text(&run.optimizer),
                    run.seed.to_string(),
                    p.sparsity.to_string(),
                    p.actual_sparsity.to_string(),
                    number(p.accuracy),
                    p.accuracy_bn_recal.map(number).unwrap_or_default(),
                    number(run.dense_accuracy),
                    run.psi.to_string(),
                    run.psi_init.to_string(),
                    run.lambda_psi0.to_string(),
                    run.diverged.is_some().to_string(),
                    text(&self.config.model),
                    text(
                        &serde_json::to_value(self.config.dataset)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    ),
                    self.config.epochs.to_string(),
                ];
                out += &row.join(",");
                out.push('\n');
            }
        }
        out
    }
}

/// An accuracy: empty when it is not a number (a diverged run).
fn number(x: f32) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        String::new()
    }
}

/// A text cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
