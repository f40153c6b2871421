//! `varlab bench gpu`: the GPU check ([`varlab::bench::check`]) — per model and batch the
//! ms/step of SGD, VAR, SAM and CrAM with FLOPs, TFLOP/s and share of peak, then the
//! GPU-vs-CPU equivalence of every model on this device.

use clap::Args;
use varlab::bench::check::{self, Equivalence, Row, MODELS};
use varlab::gpu::Context;
use varlab::nn::Model;

use super::Fail;
use crate::io::sayln;

#[derive(Args, Debug)]
pub struct GpuCheckArgs {
    /// Comma list of models (default: every model, on its data set's input).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Comma list of batch sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 512])]
    batch: Vec<usize>,
    /// Comma list of optimizers.
    #[arg(long, value_delimiter = ',', default_values_t = ["sgd".to_string(), "var".to_string(), "sam".to_string(), "cram".to_string()])]
    optim: Vec<String>,
    /// Steps per optimizer per round (timed by GPU timestamps, best step; else wall clock).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100000))]
    steps: u32,
    /// Rounds after one warm-up round (the median round is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// The device's peak FP32 TFLOP/s (default: from the table by adapter name).
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// Batch of the GPU-vs-CPU equivalence check (0 skips it).
    #[arg(long, default_value_t = 16)]
    check_batch: usize,
    /// Also write the adapter, rows and checks as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Runs the check, printing each table as it is measured; fails (exit code 1) when a model's
/// GPU executor disagrees with its CPU executor.
pub async fn run(a: GpuCheckArgs) -> Result<(), Fail> {
    let ctx = Context::new().await.map_err(|e| e.to_string())?;
    let report = &ctx.report;
    let software = varlab::experiment::is_software_adapter(&ctx);
    let (peak, source) = match (a.peak_tflops, check::peak_fp32_tflops(&report.name)) {
        (Some(p), _) => (Some(p), "given"),
        (None, Some(p)) => (Some(p), "data sheet table"),
        (None, None) => (None, "unknown"),
    };
    sayln!(
        "adapter: {} ({}, {}){}; peak FP32: {}; timing: {}",
        report.name,
        report.backend,
        report.device_type,
        if software {
            " — a SOFTWARE adapter: figures say nothing of a real GPU"
        } else {
            ""
        },
        peak.map_or("unknown".into(), |p| format!("{p} TFLOP/s ({source})")),
        if report.timestamps {
            "GPU timestamps, best step of each round"
        } else {
            "wall clock"
        },
    );
    let base = varlab::experiment::Config::default();
    let optims = a
        .optim
        .iter()
        .map(|o| varlab::experiment::optim_config(&base, o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Fail::Usage(e.to_string()))?;
    let models = models(&a.models)?;
    let mut rows = Vec::new();
    for model in &models {
        for &batch in &a.batch {
            let forward = check::forward_flops(model, batch).map_err(|e| e.to_string())?;
            let steps = varlab::bench::step_gpu(
                &ctx,
                model,
                &optims,
                batch,
                a.steps as usize,
                a.rounds as usize,
            )
            .await
            .map_err(|e| e.to_string())?;
            let table: Vec<Row> = steps
                .iter()
                .zip(&optims)
                .map(|(s, o)| {
                    let flops = check::step_flops(forward, o.kind);
                    Row::new(&model.name, batch, o.kind, s.ms_per_step, flops, peak)
                })
                .collect();
            print_rows(&table);
            rows.extend(table);
        }
    }
    let mut checks: Vec<Equivalence> = Vec::new();
    if a.check_batch > 0 {
        sayln!(
            "GPU vs CPU executor, one forward/backward at batch {}:",
            a.check_batch
        );
        for model in &models {
            let e = check::equivalence(&ctx, model, a.check_batch)
                .await
                .map_err(|e| e.to_string())?;
            sayln!(
                "  {:<9} loss {:.6} vs {:.6}, worst gradient error {:.3} of its tolerance ({}): {}",
                e.model,
                e.loss_gpu,
                e.loss_cpu,
                e.worst_grad_error,
                e.worst_tensor,
                if e.ok { "same" } else { "DIFFERENT" }
            );
            checks.push(e);
        }
    }
    super::write_json(
        a.json,
        serde_json::json!({ "adapter": report, "software": software, "peak_fp32_tflops": peak,
            "peak_source": source, "rows": rows, "equivalence": checks }),
    )?;
    match checks
        .iter()
        .filter(|e| !e.ok)
        .map(|e| e.model.as_str())
        .collect::<Vec<_>>()
    {
        bad if bad.is_empty() => Ok(()),
        bad => Err(Fail::Run(format!(
            "The GPU executor disagrees with the CPU executor on {}.",
            bad.join(", ")
        ))),
    }
}

/// The models named (or all of [`MODELS`]), each on its input.
fn models(names: &[String]) -> Result<Vec<Model>, Fail> {
    let wanted = |n: &str| names.is_empty() || names.iter().any(|w| w == n);
    if let Some(bad) = names.iter().find(|n| !MODELS.iter().any(|(m, _)| m == n)) {
        let all: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
        return Err(Fail::Usage(format!(
            "Unknown model '{bad}'; the models are {}.",
            all.join(", ")
        )));
    }
    MODELS
        .iter()
        .filter(|(m, _)| wanted(m))
        .map(|&(m, input)| Model::by_name(m, input, 10).map_err(|e| Fail::Usage(e.to_string())))
        .collect()
}

fn print_rows(rows: &[Row]) {
    let Some(first) = rows.first() else { return };
    sayln!("{} batch {}:", first.model, first.batch);
    sayln!(
        "  {:<10} {:>10} {:>12} {:>10} {:>8}",
        "optimizer",
        "ms/step",
        "GFLOP/step",
        "TFLOP/s",
        "% peak"
    );
    for r in rows {
        sayln!(
            "  {:<10} {:>10.3} {:>12.3} {:>10.4} {:>8}",
            r.optimizer,
            r.ms_per_step,
            r.gflop_per_step,
            r.tflops,
            r.peak_share
                .map_or("—".into(), |s| format!("{:.2}", 100.0 * s))
        );
    }
}
