//! Softmax cross-entropy over logits `[N, K]` with integer labels (a u32 buffer `[N]`), fused
//! with its gradient and with metrics kept on the GPU, as PyTorch's
//! `F.cross_entropy(logits, labels)` (mean reduction):
//! - `dlogits = (softmax(z) − onehot(label)) / N` (the gradient of the batch MEAN loss),
//!   computed stably (the row maximum is subtracted before exp);
//! - per-row loss `log Σ_j exp(z_j − max) − (z_label − max)` and per-row correctness
//!   (argmax = label, ties resolved to the first maximum as `torch.argmax`), then reduced on
//!   the GPU into a metrics buffer of [`METRICS_LEN`] f32:
//!   `[loss sum, correct count, rows counted]`. The correct count is stored as f32 — exact
//!   for counts up to 2^24 ≈ 16.7 M, i.e. reset the running metrics at least that often.
//!
//! With `accumulate` the step's three values are ADDED to `metrics`, so a training loop can
//! encode the loss every step and read `metrics` only every few steps (mean loss =
//! `metrics[0] / metrics[2]`, accuracy = `metrics[1] / metrics[2]`); encode `reset` (or
//! write zeros with `ctx.write`) to start a new window. Without `accumulate` each run
//! overwrites `metrics` with this step's values.
//!
//! A label ≥ K is invalid: its row's loss is NaN (so the metrics show it), it counts as
//! incorrect, and its gradient row is zero. The label [`IGNORE`] marks a padding row (the
//! rows past the end of a partial last batch, as the GPU executor's gather writes them):
//! its loss is 0, it is neither correct nor counted in `rows counted`, and its gradient row
//! is zero (the other rows keep the `1/N` scale).

use super::kernel::{check_sizes, dispatch, grid_items, prepare};
use crate::gpu::{Context, Dispatch, Result, Shader};

const SHADER: Shader = Shader {
    name: "loss",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/loss.wgsl")),
};

/// f32 values in the metrics buffer: loss sum, correct count, rows counted.
pub const METRICS_LEN: usize = 3;

/// The label of a padding row: not counted, no loss, no gradient (see the module comment).
pub const IGNORE: u32 = u32::MAX;

/// What the CPU twin computes besides `dlogits`.
#[derive(Clone, Debug, PartialEq)]
pub struct XentCpu {
    /// Loss of each row.
    pub row_loss: Vec<f32>,
    /// Σ row_loss, summed in row order in f32.
    pub loss_sum: f32,
    /// Rows whose first argmax equals the label.
    pub correct: u32,
    /// Rows whose label is not [`IGNORE`].
    pub counted: u32,
}

/// CPU twin: writes `dlogits [N, K] = (softmax − onehot)/N` and returns the per-row losses,
/// their sum and the correct count, exactly as the GPU defines them (see the module comment).
pub fn softmax_cross_entropy_cpu(
    n: usize,
    k: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> XentCpu {
    let inv_n = 1.0 / n as f32;
    let mut row_loss = Vec::with_capacity(n);
    let mut correct = 0;
    for r in 0..n {
        let z = &logits[r * k..(r + 1) * k];
        let (mut mx, mut arg) = (f32::MIN, u32::MAX);
        for (j, &v) in z.iter().enumerate() {
            if v > mx {
                mx = v;
                arg = j as u32;
            }
        }
        let s: f32 = z.iter().fold(0.0f32, |a, &v| a + (v - mx).exp());
        let label = labels[r];
        let valid = (label as usize) < k;
        let ignored = label == IGNORE;
        let inv_s = 1.0 / s;
        for (j, &v) in z.iter().enumerate() {
            let onehot = if j as u32 == label { 1.0 } else { 0.0 };
            let g = ((v - mx).exp() * inv_s - onehot) * inv_n;
            dlogits[r * k + j] = if valid { g } else { 0.0 };
        }
        row_loss.push(if valid {
            s.ln() - (z[label as usize] - mx)
        } else if ignored {
            0.0
        } else {
            f32::NAN
        });
        if valid && arg == label {
            correct += 1;
        }
    }
    let loss_sum = row_loss.iter().fold(0.0f32, |a, &v| a + v);
    let counted = labels[..n].iter().filter(|&&l| l != IGNORE).count() as u32;
    XentCpu {
        row_loss,
        loss_sum,
        correct,
        counted,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    k: u32,
    accumulate: u32,
    nan_bits: u32,
}

/// A prepared softmax cross-entropy step over `logits [n, k]`. Encode both `dispatches` in
/// order (per-row loss/gradient/correctness, then the reduction into `metrics`); encode
/// `reset` to zero `metrics`.
pub struct SoftmaxCrossEntropy {
    pub n: usize,
    pub k: usize,
    pub dispatches: [Dispatch; 2],
    pub reset: Dispatch,
    /// `[3N]` f32: per-row loss at `r`, per-row correctness (0 or 1) at `N + r`, whether the
    /// row counts (0 for an [`IGNORE`] label, else 1) at `2N + r`.
    pub rows: wgpu::Buffer,
    _params: wgpu::Buffer,
}

impl SoftmaxCrossEntropy {
    /// `labels`: u32 `[n]`; `dlogits`: `[n, k]`, written (must not be `logits`); `metrics`:
    /// at least [`METRICS_LEN`] f32, written or (with `accumulate`) added to.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &Context,
        n: usize,
        k: usize,
        accumulate: bool,
        logits: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        dlogits: &wgpu::Buffer,
        metrics: &wgpu::Buffer,
    ) -> Result<Self> {
        check_sizes(
            &format!("a softmax cross-entropy over [{n}, {k}] logits"),
            &[
                ("logits", logits, n * k),
                ("labels", labels, n),
                ("dlogits", dlogits, n * k),
                ("metrics", metrics, METRICS_LEN),
            ],
        )?;
        let rows = ctx.zeros("cross-entropy rows", 3 * n)?;
        let params = Params {
            n: n as u32,
            k: k as u32,
            accumulate: accumulate as u32,
            nan_bits: f32::NAN.to_bits(),
        };
        let workgroups = [grid_items(ctx, n), 1, 1];
        let buffers = [(1, logits), (2, labels), (3, dlogits), (4, &rows)];
        let (row_pass, params) =
            prepare(ctx, &SHADER, "xent_rows", &params, workgroups, &buffers).await?;
        let bindings = [(0, &params), (5, &rows), (6, metrics)];
        let reduce_pass = dispatch(ctx, &SHADER, "xent_reduce", [1, 1, 1], &bindings).await?;
        let reset = dispatch(ctx, &SHADER, "xent_reset", [1, 1, 1], &[(6, metrics)]).await?;
        Ok(SoftmaxCrossEntropy {
            n,
            k,
            dispatches: [row_pass, reduce_pass],
            reset,
            rows,
            _params: params,
        })
    }
}
