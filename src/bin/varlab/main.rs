//! `varlab`: the native command-line front end.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use varlab::experiment::DatasetKind;
use varlab::gpu::Context;

mod cluster;
mod gpu_check;
mod io;
mod run;
use io::{say, sayln};
use run::{CompareArgs, Mode, SweepArgs, TrainArgs};

#[derive(Parser)]
#[command(
    name = "varlab",
    version,
    about = "Train, one-shot prune and compare small CNNs and ViTs on the GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train each optimizer (× seed) and report the dense test accuracy.
    Train {
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Train, then prune one-shot at each sparsity and evaluate (no fine-tuning).
    Sweep {
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Several optimizers × seeds, each swept; prints the paper-style table (mean ± std).
    Compare {
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        compare: CompareArgs,
    },
    /// Expand a compare over a grid (`--model a,b`, `--lambda x,y` or `--lambda-psi0 x,y`)
    /// into one config per run, `DIR/runs/NNNN.json`, and `DIR/plan.json`: work for a job
    /// scheduler (scripts/slurm/).
    Plan {
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        compare: CompareArgs,
        #[command(flatten)]
        plan: cluster::PlanArgs,
    },
    /// Train one planned run and its sweep; write its result atomically. A result already
    /// there for the same config is kept and the command exits 0 at once.
    Run(cluster::RunArgs),
    /// Merge planned runs' results into one compare result per grid point (table, paired
    /// statistics, JSON, CSV) and name the runs that are missing.
    Merge(cluster::MergeArgs),
    /// Print the default config JSON, or with --schema every field's type, default, limits,
    /// choices, URL key and help, and the optimizers (the table the page's form is built from).
    Config {
        #[arg(long)]
        schema: bool,
    },
    /// Show the GPU adapter, backend, limits and features (and run the smoke check).
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a model preset: every parameter tensor (PyTorch names and layouts) and the totals.
    Model {
        /// mlp, lenet5, cnn, resnet8, resnet20, resnet18 or vit-tiny.
        name: String,
        /// The input it is built for: mnist (1×28×28), cifar10 or cifar100 (3×32×32; 100
        /// classes).
        #[arg(long, default_value = "mnist", value_parser = DatasetKind::NAMES)]
        dataset: String,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Milliseconds per training step of each optimizer and the ratio to SGD, measured in
    /// one run with the optimizers alternating.
    Step {
        /// mlp, lenet5, cnn, resnet8, resnet20, resnet18 or vit-tiny.
        #[arg(long, default_value = "lenet5")]
        model: String,
        /// mnist (1×28×28), cifar10 or cifar100 (3×32×32) input.
        #[arg(long, default_value = "mnist", value_parser = DatasetKind::NAMES)]
        dataset: String,
        /// Comma list of optimizers.
        #[arg(long, value_delimiter = ',', default_values_t = ["sgd".to_string(), "var".to_string(), "sam".to_string(), "cram".to_string()])]
        optim: Vec<String>,
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
        batch: u32,
        /// cpu or gpu.
        #[arg(long, default_value = "gpu", value_parser = ["cpu", "gpu"])]
        executor: String,
        /// Steps of each optimizer per round.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100000))]
        steps: u32,
        /// Rounds, after one warm-up round: each runs every optimizer for --steps steps, in
        /// an order rotated by one per round. Reported: the median round, and the median and
        /// spread of each optimizer's per-round ratio to SGD.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// One GPU training step, dispatch by dispatch: the time of each kernel alone (timestamp
    /// queries), summed per kernel, and the slowest single dispatches.
    Profile {
        /// mlp, lenet5, cnn, resnet8, resnet20, resnet18 or vit-tiny.
        #[arg(long, default_value = "lenet5")]
        model: String,
        /// mnist (1×28×28), cifar10 or cifar100 (3×32×32) input.
        #[arg(long, default_value = "mnist", value_parser = DatasetKind::NAMES)]
        dataset: String,
        /// One optimizer.
        #[arg(long, default_value = "sgd")]
        optim: String,
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
        batch: u32,
        /// Repetitions; the best of each dispatch is reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
        reps: u32,
        /// How many of the slowest single dispatches to list.
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Also write every dispatch as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// The GPU check for a real device: every model at batch 128 and 512, ms/step of SGD,
    /// VAR, SAM and CrAM, FLOPs per step, TFLOP/s and share of peak FP32, then the GPU
    /// executor against the CPU executor on this device.
    Gpu(gpu_check::GpuCheckArgs),
    /// GFLOP/s of the tiled matmul for square sizes, best of N.
    Matmul {
        /// Comma-separated sizes n (each run is n×n×n).
        #[arg(long, value_delimiter = ',', default_values_t = [64usize, 128, 256])]
        sizes: Vec<usize>,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        reps: u32,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Time and GFLOP/s (or GB/s) of every kernel family at training-sized shapes.
    Ops {
        /// Multiplies the shapes (1 suits software adapters; 4–16 suit real GPUs).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        scale: u32,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        reps: u32,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

/// Why a command failed: bad input (exit code 2, like clap's own usage errors) or a failure
/// while running (exit code 1). Either way one sentence on stderr.
enum Fail {
    Usage(String),
    Run(String),
    /// Every run diverged (exit code 3): the table and files are written all the same.
    Diverged(String),
    /// Ctrl-C (exit code 130): the finished runs are written, marked partial.
    Interrupted(String),
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail::Run(message)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = pollster::block_on(run(cli));
    // A failure of the command itself comes first; then standard output's own (a closed
    // pipe: 141 without a word; a full disk: a sentence, exit code 1).
    let (code, message) = match outcome {
        Err(Fail::Usage(m)) => (2, Some(m)),
        Err(Fail::Run(m)) => (1, Some(m)),
        Err(Fail::Diverged(m)) => (3, Some(m)),
        Err(Fail::Interrupted(m)) => (130, Some(m)),
        Ok(()) => io::stdout_outcome().unwrap_or((0, None)),
    };
    if let Some(message) = message {
        eprintln!("varlab: {message}");
    }
    ExitCode::from(code)
}

/// `train`, `sweep` and `compare`: one experiment, then the table and the files.
async fn experiment(t: TrainArgs, s: SweepArgs, c: CompareArgs, mode: Mode) -> Result<(), Fail> {
    let cfg = run::config(&t, &s, &c)?;
    // Every output place is checked before any training, so a typo costs no run.
    for path in [&t.json, &c.csv].into_iter().flatten() {
        run::check_writable(path)?;
    }
    if let Some(dir) = &s.save {
        std::fs::create_dir_all(dir)
            .map_err(|e| Fail::Usage(format!("cannot create {}: {e}", dir.display())))?;
        run::check_writable(&dir.join("model.json"))?;
    }
    let split = run::load_data(&cfg, t.data.as_deref())?;
    let jobs = c.jobs.unwrap_or(1) as usize;
    let (result, exp) = run::drive(cfg, &split, mode, jobs).await?;
    say!("{}", run::table(&result));
    let json = serde_json::to_string_pretty(&result).expect("results serialise");
    let csv = result.to_csv();
    let files: Vec<(&std::path::Path, &[u8])> = [
        t.json.as_deref().map(|p| (p, json.as_bytes())),
        c.csv.as_deref().map(|p| (p, csv.as_bytes())),
    ]
    .into_iter()
    .flatten()
    .collect();
    run::write_files(&files)?;
    if let Some(dir) = &s.save {
        run::save_weights(dir, &exp, &result)?;
    }
    if run::interrupted() {
        return Err(Fail::Interrupted(format!(
            "{} The files hold the finished runs, marked partial (exit code 130).",
            result.partial.as_deref().unwrap_or("Interrupted.")
        )));
    }
    if !result.runs.is_empty() && result.runs.iter().all(|r| r.diverged.is_some()) {
        return Err(Fail::Diverged(format!(
            "every run ({}) diverged: no accuracy to report (exit code 3).",
            result.runs.len()
        )));
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Fail> {
    if let Command::Bench { what } = &cli.command {
        if let Some(path) = bench_json(what) {
            io::check_writable(path)?;
        }
    }
    match cli.command {
        Command::Train { train, compare } => {
            experiment(train, SweepArgs::default(), compare, Mode::Train).await
        }
        Command::Sweep {
            train,
            sweep,
            compare,
        } => experiment(train, sweep, compare, Mode::Sweep).await,
        Command::Compare {
            train,
            sweep,
            compare,
        } => experiment(train, sweep, compare, Mode::Compare).await,
        Command::Plan {
            train,
            sweep,
            compare,
            plan,
        } => cluster::plan(train, sweep, compare, plan),
        Command::Run(args) => cluster::run_one(args).await,
        Command::Config { schema } => {
            let text = match schema {
                true => serde_json::to_string_pretty(&varlab::experiment::schema::schema())
                    .map_err(|e| e.to_string())?,
                false => varlab::experiment::Config::default().to_json(),
            };
            sayln!("{text}");
            Ok(())
        }
        Command::Merge(args) => cluster::merge(args),
        Command::Model { name, dataset } => {
            let model = bench_model(&name, &dataset)?;
            say!("{}", model.summary());
            let memory = varlab::exec::gpu_memory(&model, 128).map_err(|e| e.to_string())?;
            sayln!("{}", memory.describe());
            Ok(())
        }
        Command::Bench {
            what: Bench::Ops { scale, reps, json },
        } => {
            let ctx = Context::new().await.map_err(|e| e.to_string())?;
            sayln!("adapter: {} ({})", ctx.report.name, ctx.report.backend);
            let rows = varlab::bench::ops(&ctx, scale as usize, reps)
                .await
                .map_err(|e| e.to_string())?;
            sayln!(
                "{:<28} {:>16} {:>10} {:>9} {:>8}  method",
                "kernel",
                "shape",
                "ms",
                "GFLOP/s",
                "GB/s"
            );
            let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
            for r in &rows {
                sayln!(
                    "{:<28} {:>16} {:>10.3} {:>9} {:>8}  {}",
                    r.kernel,
                    r.shape,
                    r.ms,
                    opt(r.gflops),
                    opt(r.gbytes),
                    r.method
                );
            }
            write_json(
                json,
                serde_json::json!({ "adapter": ctx.report, "rows": rows }),
            )
        }
        Command::Bench {
            what:
                Bench::Step {
                    model,
                    dataset,
                    optim,
                    batch,
                    executor,
                    steps,
                    rounds,
                    json,
                },
        } => {
            let model = bench_model(&model, &dataset)?;
            let base = varlab::experiment::Config::default();
            let optims = optim
                .iter()
                .map(|o| varlab::experiment::optim_config(&base, o))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Fail::Usage(e.to_string()))?;
            let (rows, environment) = if executor == "cpu" {
                let rows = varlab::bench::step_cpu(
                    &model,
                    &optims,
                    batch as usize,
                    steps as usize,
                    rounds as usize,
                )
                .map_err(|e| e.to_string())?;
                (
                    rows,
                    serde_json::json!({"executor": "cpu", "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)}),
                )
            } else {
                let ctx = Context::new().await.map_err(|e| e.to_string())?;
                let rows = varlab::bench::step_gpu(
                    &ctx,
                    &model,
                    &optims,
                    batch as usize,
                    steps as usize,
                    rounds as usize,
                )
                .await
                .map_err(|e| e.to_string())?;
                (
                    rows,
                    serde_json::json!({"executor": "gpu", "adapter": ctx.report, "timing": if ctx.report.timestamps { "gpu timestamps, best of the steps" } else { "wall clock" }}),
                )
            };
            print_step_bench(&model.name, batch, &executor, &rows);
            write_json(
                json,
                serde_json::json!({ "rows": rows, "environment": environment }),
            )
        }
        Command::Bench {
            what:
                Bench::Profile {
                    model,
                    dataset,
                    optim,
                    batch,
                    reps,
                    top,
                    json,
                },
        } => {
            let model = bench_model(&model, &dataset)?;
            let base = varlab::experiment::Config::default();
            let optim = varlab::experiment::optim_config(&base, &optim)
                .map_err(|e| Fail::Usage(e.to_string()))?;
            let ctx = Context::new().await.map_err(|e| e.to_string())?;
            let Some((step_ms, kernels)) =
                varlab::bench::profile_step(&ctx, &model, &optim, batch as usize, reps)
                    .await
                    .map_err(|e| e.to_string())?
            else {
                return Err(Fail::Run(format!(
                    "The adapter {} has no timestamp queries, so dispatches cannot be timed one by one.",
                    ctx.report.name
                )));
            };
            print_profile(&model.name, batch, step_ms, &kernels, top);
            write_json(
                json,
                serde_json::json!({ "adapter": ctx.report, "model": model.name, "optimizer": optim.kind.to_string(), "batch": batch, "step_ms": step_ms, "dispatches": kernels }),
            )
        }
        Command::Bench {
            what: Bench::Gpu(args),
        } => gpu_check::run(args).await,
        Command::Info { json } => {
            let ctx = Context::new().await.map_err(|e| e.to_string())?;
            let smoke = varlab::smoke::run(&ctx, &[])
                .await
                .map_err(|e| e.to_string())?;
            if json {
                sayln!("{}", serde_json::to_string_pretty(&smoke).unwrap());
                return Ok(());
            }
            let r = &smoke.adapter;
            sayln!("adapter      {}", r.name);
            sayln!(
                "backend      {} ({}, driver {} {})",
                r.backend,
                r.device_type,
                r.driver,
                r.driver_info
            );
            sayln!("software     {}", r.is_software);
            sayln!("timestamps   {}", r.timestamps);
            sayln!("features     {}", r.features.join(" "));
            let l = &r.limits;
            sayln!(
                "limits       max_buffer_size {} B, max_storage_buffer_binding_size {} B",
                l.max_buffer_size,
                l.max_storage_buffer_binding_size
            );
            sayln!("             {} storage buffers/stage, {} B workgroup storage, {} invocations/workgroup",
                l.max_storage_buffers_per_shader_stage, l.max_compute_workgroup_storage_size, l.max_compute_invocations_per_workgroup);
            sayln!(
                "             workgroup size ≤ {}×{}×{}, ≤ {} workgroups per dimension",
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_size_z,
                l.max_compute_workgroups_per_dimension
            );
            sayln!(
                "smoke        {}×{}×{} matmul vs CPU twin: max error {:.2e} (allowed {:.2e}) → {}",
                smoke.shape[0],
                smoke.shape[1],
                smoke.shape[2],
                smoke.max_abs_error,
                smoke.max_allowed_error,
                if smoke.matches_cpu {
                    "match"
                } else {
                    "MISMATCH"
                }
            );
            if smoke.matches_cpu {
                Ok(())
            } else {
                Err(Fail::Run(
                    "the GPU matmul disagrees with its CPU twin".into(),
                ))
            }
        }
        Command::Bench {
            what: Bench::Matmul { sizes, reps, json },
        } => {
            if let Some(&bad) = sizes.iter().find(|&&s| s == 0 || s > 8192) {
                return Err(Fail::Usage(format!("size {bad} is outside 1..=8192")));
            }
            let ctx = Context::new().await.map_err(|e| e.to_string())?;
            sayln!("adapter: {} ({})", ctx.report.name, ctx.report.backend);
            let rows = varlab::bench::matmul(&ctx, &sizes, reps)
                .await
                .map_err(|e| e.to_string())?;
            sayln!(
                "{:>6} {:>6} {:>6} {:>10} {:>9}  method",
                "m",
                "n",
                "k",
                "ms",
                "GFLOP/s"
            );
            for r in &rows {
                sayln!(
                    "{:>6} {:>6} {:>6} {:>10.3} {:>9.3}  {}",
                    r.m,
                    r.n,
                    r.k,
                    r.ms,
                    r.gflops,
                    r.method
                );
            }
            write_json(
                json,
                serde_json::json!({ "adapter": ctx.report, "rows": rows }),
            )
        }
    }
}

fn write_json(path: Option<std::path::PathBuf>, doc: serde_json::Value) -> Result<(), Fail> {
    match path {
        Some(path) => io::write_file(
            &path,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
        ),
        None => Ok(()),
    }
}

/// The `--json` place of a benchmark, checked before it runs.
fn bench_json(what: &Bench) -> Option<&std::path::Path> {
    match what {
        Bench::Step { json, .. }
        | Bench::Profile { json, .. }
        | Bench::Matmul { json, .. }
        | Bench::Ops { json, .. } => json.as_deref(),
        Bench::Gpu(args) => args.json.as_deref(),
    }
}

/// `varlab bench step`'s table: per optimizer the median ms/step and the per-round ratio to
/// SGD with its spread (95 % interval of the median, interquartile range, extremes).
fn print_step_bench(model: &str, batch: u32, executor: &str, rows: &[varlab::bench::StepBench]) {
    let (rounds, steps) = rows.first().map_or((0, 0), |r| (r.rounds, r.steps));
    sayln!(
        "{model} batch {batch}, {executor} executor: {rounds} rounds × {steps} steps per optimizer, in rotating order"
    );
    sayln!(
        "{:<10} {:>10} {:>8}   {:<17} {:<17} min–max of ×SGD",
        "optimizer",
        "ms/step",
        "× SGD",
        "95% CI of ×SGD",
        "IQR of ×SGD"
    );
    let pair = |a: f64, b: f64| format!("{a:.3}–{b:.3}");
    for r in rows {
        let ratio = r
            .ratio_to_sgd
            .map_or("—".to_string(), |x| format!("{x:.3}"));
        let (ci, iqr, range) = match (r.optimizer.as_str(), r.ratio_spread) {
            ("sgd", _) | (_, None) => Default::default(),
            (_, Some(s)) => (
                s.median_ci95.map_or("—".to_string(), |[a, b]| pair(a, b)),
                pair(s.q1, s.q3),
                pair(s.min, s.max),
            ),
        };
        let line = format!(
            "{:<10} {:>10.3} {:>8}   {:<17} {:<17} {}",
            r.optimizer, r.ms_per_step, ratio, ci, iqr, range
        );
        sayln!("{}", line.trim_end());
    }
}

/// The profile of one step: per kernel (entry point) the dispatches, their summed time alone
/// and its share; then the `top` slowest single dispatches with their workgroup counts.
fn print_profile(
    model: &str,
    batch: u32,
    step_ms: f64,
    kernels: &[varlab::bench::KernelTime],
    top: usize,
) {
    let total: f64 = kernels.iter().map(|k| k.ms).sum();
    sayln!(
        "{model} batch {batch}: step {step_ms:.3} ms in one pass; {} dispatches, {total:.3} ms timed one by one",
        kernels.len()
    );
    let mut per_kernel: Vec<(&str, usize, f64)> = Vec::new();
    for k in kernels {
        match per_kernel.iter_mut().find(|(name, _, _)| *name == k.kernel) {
            Some(row) => {
                row.1 += 1;
                row.2 += k.ms;
            }
            None => per_kernel.push((k.kernel, 1, k.ms)),
        }
    }
    per_kernel.sort_by(|a, b| b.2.total_cmp(&a.2));
    sayln!(
        "{:<24} {:>6} {:>12} {:>7}",
        "kernel",
        "count",
        "ms",
        "share"
    );
    for (name, count, ms) in &per_kernel {
        let share = 100.0 * ms / total.max(f64::MIN_POSITIVE);
        sayln!("{name:<24} {count:>6} {ms:>12.3} {share:>6.1}%");
    }
    let mut slowest: Vec<&varlab::bench::KernelTime> = kernels.iter().collect();
    slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    sayln!("slowest dispatches:");
    sayln!(
        "{:>6} {:<24} {:>20} {:>12}",
        "#",
        "kernel",
        "workgroups",
        "ms"
    );
    for k in slowest.iter().take(top) {
        let [x, y, z] = k.workgroups;
        sayln!(
            "{:>6} {:<24} {:>20} {:>12.3}",
            k.index,
            k.kernel,
            format!("{x}×{y}×{z}"),
            k.ms
        );
    }
}

/// The preset `name` built for a dataset's input and class count (clap checked the name).
fn bench_model(name: &str, dataset: &str) -> Result<varlab::nn::Model, Fail> {
    let kind = DatasetKind::from_name(dataset).unwrap_or(DatasetKind::Mnist);
    varlab::nn::Model::by_name(name, kind.input(), kind.classes())
        .map_err(|e| Fail::Usage(e.to_string()))
}
