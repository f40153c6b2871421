//! The experiment every front end drives: train each optimizer × seed of a [`Config`], then
//! one-shot prune each trained network at every sparsity of the sweep and evaluate it.
//!
//! [`Experiment::step`] does one unit of work — a training step, or one sparsity level of a
//! sweep — and returns an [`Event`], so the page can yield to the browser between calls and
//! pause or cancel simply by not calling it. [`Experiment::result`] is the serialisable
//! [`ExperimentResult`] of the runs finished so far.

pub mod config;
pub mod csv;
pub mod plan;
pub mod presets;
pub mod schema;
pub mod stats;
pub mod untrusted;

use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use config::{
    Config, ConfigError, DatasetKind, ExecutorChoice, Init, PlannedRun, Schedule, Scope,
};
pub use stats::Paired;

use crate::data::{DataError, Split};
use crate::export::{to_safetensors, ExportError};
use crate::gpu::Context;
use crate::nn::Model;
use crate::optim::{OptimConfig, OptimError, OptimKind};
use crate::prune::{apply_mask, magnitude_mask, prunable_stats, PruneOptions, WeightStats};
use crate::train::{Curves, GpuData, TrainError, Trainer};

/// Why an experiment cannot start or go on, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(
        "The {dataset} data has {found} {what} images, fewer than the {wanted} the config asks \
         for."
    )]
    TooFew {
        dataset: String,
        what: &'static str,
        found: usize,
        wanted: usize,
    },
    #[error("The experiment was cancelled.")]
    Cancelled,
    #[error("There is no run {run}: the experiment has {runs} (0 to {last}).", last = runs.saturating_sub(1))]
    NoSuchRun { run: usize, runs: usize },
    #[error("{0}")]
    Merge(String),
}

/// What kind of unit of work an [`Event`] reports (in JSON: `"train"`, `"run_done"`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run is being prepared (the next step builds it).
    #[default]
    Compile,
    /// A training step.
    Train,
    /// A training step that ended an epoch (with the test accuracy).
    Eval,
    /// One level of the pruning sweep.
    Prune,
    /// A run finished (its last sweep level, or its last step without a sweep).
    RunDone,
    /// Every run finished; further steps say the same.
    Done,
    /// A run diverged; the experiment goes on with the next run.
    Error,
}

/// What happened in one [`Experiment::step`]; fields that do not apply are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub run: usize,
    pub runs: usize,
    pub optimizer: String,
    pub seed: u64,
    pub step: Option<usize>,
    pub steps: Option<usize>,
    pub epoch: Option<usize>,
    pub epochs: Option<usize>,
    pub loss: Option<f32>,
    pub train_acc: Option<f32>,
    pub reg: Option<f32>,
    pub images_per_s: Option<f32>,
    pub eta_s: Option<f32>,
    pub test_acc: Option<f32>,
    pub sparsity: Option<f32>,
    pub accuracy: Option<f32>,
    pub message: Option<String>,
}

/// One point of a pruning sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub sparsity: f32,
    /// Zeroed / prunable weights, as pruned.
    pub actual_sparsity: f64,
    pub accuracy: f32,
    /// After re-estimating BatchNorm statistics (`bn_recal` images), or `None`.
    pub accuracy_bn_recal: Option<f32>,
}

/// Per-tensor weight statistics, dense and at one pruned sparsity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsReport {
    pub dense: Vec<WeightStats>,
    pub pruned: Option<PrunedWeights>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrunedWeights {
    pub sparsity: f32,
    pub tensors: Vec<WeightStats>,
}

/// Variance of |w| of one prunable tensor at each curve point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCurve {
    pub name: String,
    pub n: usize,
    pub var_abs: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub train_seconds: f64,
    pub ms_per_step: f64,
}

/// One optimizer × seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub optimizer: String,
    pub seed: u64,
    pub dense_accuracy: f32,
    pub dense_loss: f32,
    /// VAR's ψ = Σ_ℓ 1/(V_ℓ + ε) of the trained weights (prunable tensors).
    pub psi: f64,
    /// ψ of this run's initial weights, and λψ₀ = λ·ψ₀ for it (0 for runs without VAR).
    #[serde(default)]
    pub psi_init: f64,
    #[serde(default)]
    pub lambda_psi0: f64,
    pub prunable_weights: usize,
    pub total_params: usize,
    pub sweep: Vec<SweepPoint>,
    pub curves: Curves,
    pub layers: Vec<LayerCurve>,
    pub weights: WeightsReport,
    pub timing: Timing,
    /// Set when the run diverged (then `sweep` is empty).
    pub diverged: Option<String>,
}

/// Where the experiment runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub executor: String,
    pub adapter: String,
    pub version: String,
    /// Why the executor is not the one asked for (e.g. a software GPU adapter), if so.
    pub notice: Option<String>,
}

/// Whether `ctx`'s adapter is a software rasteriser (lavapipe, SwiftShader, WARP): there the
/// CPU executor trains many times faster than the "GPU", so `executor: auto` picks the CPU.
pub fn is_software_adapter(ctx: &Context) -> bool {
    ctx.report.is_software || is_software_adapter_name(&ctx.report.name)
}

/// Whether an adapter's name is a software rasteriser's (lavapipe/llvmpipe, SwiftShader,
/// WARP): the one list the page asks too (wasm `is_software_adapter_name`).
pub fn is_software_adapter_name(name: &str) -> bool {
    let name = name.to_lowercase();
    ["llvmpipe", "lavapipe", "swiftshader", "warp", "software"]
        .iter()
        .any(|s| name.contains(s))
}

/// The result file: config, environment and the finished runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub version: u32,
    pub config: Config,
    pub environment: Environment,
    pub runs: Vec<RunResult>,
    /// Every optimizer against the baseline (SGD when compared), per seed: see [`stats`].
    #[serde(default)]
    pub paired: Vec<Paired>,
    /// One sentence per optimizer saying what the paired statistics show.
    #[serde(default)]
    pub verdicts: Vec<String>,
    /// Set when the experiment was cut short (Ctrl-C, a closed tab): `runs` holds only
    /// the runs that finished, and this says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// Where each run was trained when the runs were trained as separate jobs (`varlab run`,
    /// merged by `varlab merge`); empty for an experiment trained in one go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobRecord>,
}

/// The provenance of one run trained as its own job: which planned run, from which config,
/// by which build, where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The run's number in its plan (`runs/NNNN.json`).
    pub index: usize,
    /// [`Config::hash`] of the run's own config.
    pub config_hash: String,
    pub version: String,
    /// The git commit varlab was built from (`unknown` outside a git checkout).
    pub commit: String,
    pub executor: String,
    pub adapter: String,
    pub host: String,
}

impl ExperimentResult {
    /// The result of `runs`, with its paired statistics and verdicts.
    pub fn new(config: Config, environment: Environment, runs: Vec<RunResult>) -> Self {
        let paired = stats::paired_stats(&config.optimizers, &config.sparsities, &runs);
        let verdicts = stats::verdicts(&paired);
        ExperimentResult {
            version: config::CONFIG_VERSION,
            config,
            environment,
            runs,
            paired,
            verdicts,
            partial: None,
            jobs: Vec::new(),
        }
    }

    /// One result from the results of disjoint subsets of the same experiment's runs (the
    /// page's workers, `varlab compare --jobs`): the runs in plan order
    /// ([`Config::run_plan`]), the statistics recomputed, `partial` saying which runs are
    /// missing. Given the same runs it is identical to the result of training them in one go.
    pub fn merge(parts: Vec<ExperimentResult>) -> Result<ExperimentResult, ExperimentError> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Err(ExperimentError::Merge(
                "There are no results to merge.".into(),
            ));
        };
        let plan = first.config.run_plan();
        let mut slots: Vec<Option<RunResult>> = vec![None; plan.len()];
        let mut partial: Vec<String> = Vec::new();
        // A part's own `partial` counted its own runs; the merged one counts the plan's.
        let mut jobs = Vec::new();
        let environment = first.environment.clone();
        let config = first.config.clone();
        for part in std::iter::once(first).chain(parts) {
            if part.config != config {
                return Err(ExperimentError::Merge(
                    "The results are of different experiments (their configs differ).".into(),
                ));
            }
            jobs.extend(part.jobs);
            for run in part.runs {
                let Some(i) = plan
                    .iter()
                    .position(|p| p.optimizer == run.optimizer && p.seed == run.seed)
                else {
                    return Err(ExperimentError::Merge(format!(
                        "{} seed {} is not a run of this experiment.",
                        run.optimizer, run.seed
                    )));
                };
                if slots[i].is_some() {
                    return Err(ExperimentError::Merge(format!(
                        "{} seed {} appears twice.",
                        run.optimizer, run.seed
                    )));
                }
                slots[i] = Some(run);
            }
        }
        let missing: Vec<String> = plan
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(p, _)| format!("{} seed {}", p.optimizer, p.seed))
            .collect();
        let runs: Vec<RunResult> = slots.into_iter().flatten().collect();
        let mut result = ExperimentResult::new(config, environment, runs);
        if !missing.is_empty() {
            partial.push(format!(
                "{} of {} runs finished; missing: {}.",
                plan.len() - missing.len(),
                plan.len(),
                missing.join(", ")
            ));
        }
        result.partial = (!partial.is_empty()).then(|| partial.join(" "));
        jobs.sort_by_key(|j: &JobRecord| j.index);
        result.jobs = jobs;
        Ok(result)
    }
}

/// The optimizer settings of `name` from the shared hyper-parameters of `config`.
pub fn optim_config(config: &Config, name: &str) -> Result<OptimConfig, OptimError> {
    let cfg = OptimConfig {
        kind: name.parse::<OptimKind>()?,
        momentum: config.momentum,
        weight_decay: config.weight_decay,
        nesterov: config.nesterov,
        lambda: config.lambda,
        lambda_l1: config.lambda_l1,
        lambda_hoyer: config.lambda_hoyer,
        rho: config.rho,
        cram_sparsity: config.cram_sparsity.clone(),
        cram_scope: config.scope,
        cram_plus: false,
        regularize_all: false,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The trained weights of a finished run (kept for exports).
pub struct RunWeights {
    pub params: Vec<f32>,
    pub state: Vec<f32>,
}

/// A finished run: its number in the plan, its result and its weights.
pub struct FinishedRun {
    pub run: usize,
    pub result: RunResult,
    pub weights: RunWeights,
}

enum Phase {
    /// Run `i` is to be started (the next step says `compile`, the one after builds it).
    Start,
    Build,
    Train(Box<Trainer>),
    /// Sweep level `level` of the trained run.
    Sweep {
        trainer: Box<Trainer>,
        level: usize,
        result: Box<RunResult>,
    },
    Done,
}

/// A whole comparison, stepped from outside.
pub struct Experiment {
    pub config: Config,
    pub model: Model,
    sweep: bool,
    split: Arc<Split>,
    /// The runs this experiment trains, each with its number in [`Config::run_plan`]: all
    /// of them, or the subset [`Experiment::only`] kept (a worker's share).
    plan: Vec<(usize, PlannedRun)>,
    /// The number of runs in the whole plan.
    planned: usize,
    run: usize,
    phase: Phase,
    /// In the order they finished (or were adopted).
    finished: Vec<FinishedRun>,
    environment: Environment,
    gpu: Option<GpuData>,
}

impl Experiment {
    /// Checks `config` against the data and takes the configured subsets.
    pub fn new(config: Config, split: &Split) -> Result<Experiment, ExperimentError> {
        config.validate()?;
        for (what, ds, wanted) in [
            ("training", &split.train, config.train_size),
            ("test", &split.test, config.test_size),
        ] {
            if ds.len() < wanted {
                return Err(ExperimentError::TooFew {
                    dataset: ds.name.clone(),
                    what,
                    found: ds.len(),
                    wanted,
                });
            }
        }
        let t = &split.train;
        let model = config
            .build_model([t.channels, t.height, t.width], t.classes)
            .map_err(TrainError::from)?;
        let mut config = config;
        if let Some(x) = config.lambda_psi0 {
            config.lambda = lambda_for(x, psi_init(&model, config.seed));
            config.validate()?;
        }
        let split = Arc::new(Split {
            train: split.train.subset(config.train_size),
            test: split.test.subset(config.test_size),
        });
        let plan: Vec<_> = config.run_plan().into_iter().enumerate().collect();
        let notice = lambda_notice(&config, &model);
        Ok(Experiment {
            environment: Environment {
                executor: "cpu".into(),
                adapter: "CPU executor".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                notice,
            },
            config,
            model,
            sweep: true,
            split,
            planned: plan.len(),
            plan,
            run: 0,
            phase: Phase::Start,
            finished: Vec::new(),
            gpu: None,
        })
    }

    /// Trains only the runs numbered `runs` in [`Config::run_plan`] (in plan order): one
    /// worker's or job's share. Events and [`Experiment::safetensors`] keep the plan's
    /// numbers; [`ExperimentResult::merge`] puts the shares together.
    pub fn only(mut self, runs: &[usize]) -> Result<Experiment, ExperimentError> {
        if let Some(&run) = runs.iter().find(|&&r| r >= self.planned) {
            return Err(ExperimentError::NoSuchRun {
                run,
                runs: self.planned,
            });
        }
        self.plan.retain(|(i, _)| runs.contains(i));
        if self.plan.is_empty() {
            self.phase = Phase::Done;
        }
        Ok(self)
    }

    /// Picks the executor for the config's `executor` choice given the GPU that opened (or
    /// the reason none did): `gpu` insists on it; `auto` uses it unless it is missing or a
    /// software rasteriser, and says why in [`Environment::notice`]; `cpu` ignores it.
    pub fn choose_executor(
        mut self,
        gpu: Result<Context, crate::gpu::GpuError>,
    ) -> Result<Experiment, ExperimentError> {
        match (self.config.executor, gpu) {
            (ExecutorChoice::Cpu, _) => Ok(self),
            (ExecutorChoice::Gpu, Ok(ctx)) => self.with_gpu(Rc::new(ctx)),
            (ExecutorChoice::Gpu, Err(e)) => Err(TrainError::Gpu(e).into()),
            (ExecutorChoice::Auto, Ok(ctx)) if is_software_adapter(&ctx) => {
                let name = match ctx.report.name.trim() {
                    "" => "this GPU adapter".to_string(),
                    name => format!("the GPU adapter '{name}'"),
                };
                self.add_notice(format!(
                    "Training runs on the CPU executor: {name} is a software rasteriser, on \
                     which the CPU executor is many times faster."
                ));
                Ok(self)
            }
            (ExecutorChoice::Auto, Ok(ctx)) => self.with_gpu(Rc::new(ctx)),
            (ExecutorChoice::Auto, Err(e)) => {
                self.add_notice(format!("{e} Training runs on the CPU executor instead."));
                Ok(self)
            }
        }
    }

    /// `auto` decided by measurement (`crate::bench::calibrate`): trains on the GPU of `ctx`
    /// when it was the faster, else on the CPU executor; `sentence` (both figures and the
    /// choice) goes into [`Environment::notice`].
    pub fn choose_measured(
        mut self,
        ctx: Context,
        gpu_faster: bool,
        sentence: String,
    ) -> Result<Experiment, ExperimentError> {
        self.add_notice(sentence);
        if gpu_faster {
            return self.with_gpu(Rc::new(ctx));
        }
        Ok(self)
    }

    /// Adds a sentence to [`Environment::notice`] (after any already there).
    fn add_notice(&mut self, text: String) {
        self.environment.notice = Some(match self.environment.notice.take() {
            Some(before) => format!("{before} {text}"),
            None => text,
        });
    }

    /// Trains on the GPU of `ctx`: uploads the (subset) datasets once for every run.
    pub fn with_gpu(mut self, ctx: Rc<Context>) -> Result<Experiment, ExperimentError> {
        self.environment.executor = "gpu".into();
        self.environment.adapter = format!("{} ({})", ctx.report.name, ctx.report.backend);
        self.gpu = Some(GpuData::new(ctx, &self.split).map_err(ExperimentError::Train)?);
        Ok(self)
    }

    /// Where the runs train and on what.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Train only: finished runs skip the pruning sweep.
    pub fn skip_sweep(&mut self) {
        self.sweep = false;
    }

    /// The safetensors bytes of finished run `run` (its number in the plan): dense
    /// (`sparsity` `None`) or pruned as the sweep prunes.
    pub fn safetensors(&self, run: usize, sparsity: Option<f32>) -> Result<Vec<u8>, ExportError> {
        let FinishedRun {
            result: r,
            weights: w,
            ..
        } = self
            .find(run)
            .ok_or_else(|| ExportError::Format(format!("there is no finished run {run}")))?;
        let params = match sparsity {
            None => w.params.clone(),
            Some(s) => {
                let pruned =
                    magnitude_mask(&w.params, &self.model.params(), &self.prune_options(s));
                apply_mask(&w.params, &pruned.mask)
            }
        };
        let meta = [
            ("model", self.config.model.clone()),
            ("optimizer", r.optimizer.clone()),
            ("seed", r.seed.to_string()),
            ("sparsity", sparsity.unwrap_or(0.0).to_string()),
            ("varlab", env!("CARGO_PKG_VERSION").to_string()),
        ];
        to_safetensors(&self.model, &params, &w.state, &meta)
    }

    /// The model card written beside exported weights: architecture, config, accuracies.
    pub fn model_card(&self, result: &ExperimentResult, files: &[String]) -> serde_json::Value {
        let table = self.model.params();
        serde_json::json!({
            "model": self.config.model,
            "input": self.model.input,
            "classes": self.model.classes,
            "parameters": table.count(),
            "prunable_weights": table.prunable_count(),
            "tensors": table.entries.iter().map(|p| serde_json::json!({
                "name": p.name, "shape": p.shape, "prunable": p.prunable
            })).collect::<Vec<_>>(),
            "config": shortest(&result.config),
            "runs": result.runs.iter().map(|r| serde_json::json!({
                "optimizer": r.optimizer, "seed": r.seed,
                "dense_accuracy": shortest(&r.dense_accuracy), "sweep": shortest(&r.sweep),
            })).collect::<Vec<_>>(),
            "files": files,
            "load": "from safetensors.torch import load_file; model.load_state_dict(load_file(path))",
        })
    }

    fn prune_options(&self, sparsity: f32) -> PruneOptions {
        PruneOptions {
            sparsity,
            scope: self.config.scope,
            keep_first: self.config.keep_first,
            keep_last: self.config.keep_last,
        }
    }

    /// Runs this experiment trains (all optimizers × seeds unless [`Experiment::only`]).
    pub fn run_count(&self) -> usize {
        self.plan.len()
    }

    /// The plan numbers of the runs finished so far, in plan order (the order of
    /// [`Experiment::result`]'s runs).
    pub fn finished(&self) -> Vec<usize> {
        let mut runs: Vec<usize> = self.finished.iter().map(|f| f.run).collect();
        runs.sort_unstable();
        runs
    }

    /// Finished run `run` (a plan number).
    fn find(&self, run: usize) -> Option<&FinishedRun> {
        self.finished.iter().find(|f| f.run == run)
    }

    /// Hands over the finished runs (their results and weights), e.g. from a thread's share
    /// of the runs to the experiment that [`Experiment::adopt`]s them.
    pub fn take_finished(&mut self) -> Vec<FinishedRun> {
        std::mem::take(&mut self.finished)
    }

    /// Takes in runs of the same config finished elsewhere (another thread's
    /// [`Experiment::only`] share), so that [`Experiment::result`] and the exports cover
    /// them; a run already finished here is refused.
    pub fn adopt(&mut self, runs: Vec<FinishedRun>) -> Result<(), ExperimentError> {
        for f in runs {
            if f.run >= self.planned {
                return Err(ExperimentError::NoSuchRun {
                    run: f.run,
                    runs: self.planned,
                });
            }
            if self.find(f.run).is_some() {
                return Err(ExperimentError::Merge(format!(
                    "{} seed {} appears twice.",
                    f.result.optimizer, f.result.seed
                )));
            }
            self.finished.push(f);
        }
        Ok(())
    }

    /// Stores the current run's result and weights and moves on to the next run.
    fn finish(&mut self, result: RunResult, params: Vec<f32>, state: Vec<f32>) {
        self.finished.push(FinishedRun {
            run: self.plan[self.run].0,
            result,
            weights: RunWeights { params, state },
        });
        self.next_run();
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The result of the runs finished so far, in plan order.
    pub fn result(&self) -> ExperimentResult {
        let runs = self
            .finished()
            .into_iter()
            .filter_map(|run| self.find(run).map(|f| f.result.clone()))
            .collect();
        ExperimentResult::new(self.config.clone(), self.environment.clone(), runs)
    }

    /// The dense weights of finished run `run` (a plan number).
    pub fn weights(&self, run: usize) -> Option<&RunWeights> {
        self.find(run).map(|f| &f.weights)
    }

    fn event(&self, kind: EventKind) -> Event {
        let (run, PlannedRun { optimizer, seed }) = self
            .plan
            .get(self.run.min(self.plan.len().saturating_sub(1)))
            .cloned()
            .unwrap_or_default();
        Event {
            kind,
            run,
            runs: self.planned,
            optimizer,
            seed,
            ..Event::default()
        }
    }

    /// Does the next unit of work and says what it was. After the last run it returns
    /// `done` events.
    pub async fn step(&mut self) -> Result<Event, ExperimentError> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Done => Ok(self.event(EventKind::Done)),
            Phase::Start => {
                self.phase = Phase::Build;
                let mut ev = self.event(EventKind::Compile);
                ev.message = Some(format!(
                    "Preparing {} on the {} executor",
                    self.config.model, self.environment.executor
                ));
                Ok(ev)
            }
            Phase::Build => {
                let (_, PlannedRun { optimizer, seed }) = self.plan[self.run].clone();
                let optim = optim_config(&self.config, &optimizer).map_err(TrainError::from)?;
                let trainer = Trainer::new(
                    &self.config.run_config(),
                    &optim,
                    seed,
                    self.split.clone(),
                    self.gpu.as_ref(),
                )
                .await?;
                self.phase = Phase::Train(Box::new(trainer));
                self.train_step().await
            }
            Phase::Train(trainer) => {
                self.phase = Phase::Train(trainer);
                self.train_step().await
            }
            Phase::Sweep {
                trainer,
                level,
                result,
            } => self.sweep_step(trainer, level, result).await,
        }
    }

    async fn train_step(&mut self) -> Result<Event, ExperimentError> {
        let Phase::Train(trainer) = &mut self.phase else {
            unreachable!("train_step runs in the training phase")
        };
        match trainer.step().await {
            Ok(p) => {
                let done = trainer.done();
                let mut ev = self.event(match p.test_acc {
                    Some(_) => EventKind::Eval,
                    None => EventKind::Train,
                });
                ev.step = Some(p.step);
                ev.steps = Some(p.steps);
                ev.epoch = Some(p.epoch);
                ev.epochs = Some(p.epochs);
                ev.loss = Some(p.loss);
                ev.train_acc = Some(p.train_acc);
                ev.reg = Some(p.reg);
                ev.images_per_s = Some(p.images_per_s);
                ev.eta_s = Some(p.eta_s);
                ev.test_acc = p.test_acc;
                if done {
                    let Phase::Train(trainer) = std::mem::replace(&mut self.phase, Phase::Done)
                    else {
                        unreachable!()
                    };
                    self.finish_training(trainer).await?;
                    if !self.sweep {
                        ev.kind = EventKind::RunDone;
                    }
                }
                Ok(ev)
            }
            Err(TrainError::Diverged { step, loss }) => {
                let Phase::Train(mut trainer) = std::mem::replace(&mut self.phase, Phase::Done)
                else {
                    unreachable!()
                };
                trainer.sync().await?;
                let message = TrainError::Diverged { step, loss }.to_string();
                let mut result = self.run_result(&trainer, f32::NAN, f32::NAN);
                result.diverged = Some(message.clone());
                let mut ev = self.event(EventKind::Error);
                ev.message = Some(message);
                let (params, state) = trainer.params();
                self.finish(result, params.to_vec(), state.to_vec());
                Ok(ev)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish_training(&mut self, mut trainer: Box<Trainer>) -> Result<(), ExperimentError> {
        // The GPU's trained weights come back once, for the results, the sweep and exports.
        trainer.sync().await?;
        let eval = match trainer.last_eval {
            Some(eval) => eval,
            None => trainer.evaluate(None).await?,
        };
        let result = self.run_result(&trainer, eval.accuracy, eval.loss);
        if self.sweep {
            self.phase = Phase::Sweep {
                trainer,
                level: 0,
                result: Box::new(result),
            };
        } else {
            let (params, state) = trainer.params();
            self.finish(result, params.to_vec(), state.to_vec());
        }
        Ok(())
    }

    fn run_result(&self, trainer: &Trainer, accuracy: f32, loss: f32) -> RunResult {
        let (_, PlannedRun { optimizer, seed }) = self.plan[self.run].clone();
        let (params, _) = trainer.params();
        let dense = prunable_stats(params, &trainer.table);
        let psi = crate::optim::psi(params, &trainer.table, false) as f64;
        let psi_init = psi_init(&self.model, seed);
        let uses_var = optimizer
            .parse::<OptimKind>()
            .is_ok_and(OptimKind::uses_var);
        let steps = trainer.curves.step.last().copied().unwrap_or(0).max(1);
        RunResult {
            optimizer,
            seed,
            dense_accuracy: accuracy,
            dense_loss: loss,
            psi,
            psi_init,
            lambda_psi0: if uses_var {
                self.config.lambda as f64 * psi_init
            } else {
                0.0
            },
            prunable_weights: trainer.table.prunable_count(),
            total_params: trainer.table.count(),
            sweep: Vec::new(),
            curves: trainer.curves.clone(),
            layers: trainer
                .table
                .entries
                .iter()
                .filter(|p| p.prunable)
                .zip(&trainer.layer_var)
                .map(|(p, v)| LayerCurve {
                    name: p.name.clone(),
                    n: p.len,
                    var_abs: v.clone(),
                })
                .collect(),
            weights: WeightsReport {
                dense,
                pruned: None,
            },
            timing: Timing {
                train_seconds: trainer.train_seconds(),
                ms_per_step: 1e3 * trainer.train_seconds() / steps as f64,
            },
            diverged: None,
        }
    }

    async fn sweep_step(
        &mut self,
        mut trainer: Box<Trainer>,
        level: usize,
        mut result: Box<RunResult>,
    ) -> Result<Event, ExperimentError> {
        let s = self.config.sparsities[level];
        let opts = self.prune_options(s);
        let (params, state) = trainer.params();
        let (params, state) = (params.to_vec(), state.to_vec());
        let pruned = magnitude_mask(&params, &trainer.table, &opts);
        let w = apply_mask(&params, &pruned.mask);
        let eval = trainer.evaluate(Some((&w, &state))).await?;
        let has_bn = !trainer.model.state().entries.is_empty();
        let recal = if self.config.bn_recal > 0 && has_bn {
            let st = trainer.recalibrate(&w, self.config.bn_recal).await?;
            Some(trainer.evaluate(Some((&w, &st))).await?.accuracy)
        } else {
            None
        };
        result.sweep.push(SweepPoint {
            sparsity: s,
            actual_sparsity: pruned.actual_sparsity,
            accuracy: eval.accuracy,
            accuracy_bn_recal: recal,
        });
        let shown = result.weights.pruned.as_ref().map(|p| p.sparsity);
        if shown.is_none() || (s - 0.9).abs() < (shown.unwrap_or(0.0) - 0.9).abs() {
            result.weights.pruned = Some(PrunedWeights {
                sparsity: s,
                tensors: prunable_stats(&w, &trainer.table),
            });
        }
        let mut ev = self.event(EventKind::Prune);
        ev.sparsity = Some(s);
        ev.accuracy = Some(eval.accuracy);
        if level + 1 < self.config.sparsities.len() {
            self.phase = Phase::Sweep {
                trainer,
                level: level + 1,
                result,
            };
        } else {
            ev.kind = EventKind::RunDone;
            self.finish(*result, params, state);
        }
        Ok(ev)
    }

    fn next_run(&mut self) {
        self.run += 1;
        self.phase = if self.run < self.plan.len() {
            Phase::Start
        } else {
            Phase::Done
        };
    }
}

/// `x` as a JSON value whose f32 numbers keep their shortest decimal form (0.02, not the
/// 0.019999999552965164 that `serde_json::json!` gives by widening f32 to f64).
fn shortest<T: serde::Serialize>(x: &T) -> serde_json::Value {
    serde_json::to_string(x)
        .and_then(|text| serde_json::from_str(&text))
        .unwrap_or(serde_json::Value::Null)
}

/// ψ of `model`'s initial weights for `seed` (the prunable tensors, as VAR regularises).
pub fn psi_init(model: &Model, seed: u64) -> f64 {
    let (params, _) = model.init_params(seed);
    crate::optim::reg::psi(&params, &model.params(), false) as f64
}

/// The λ that gives `lambda_psi0` at ψ₀ = `psi0`, in the config's range [0, 1].
pub fn lambda_for(lambda_psi0: f32, psi0: f64) -> f32 {
    ((lambda_psi0 as f64 / psi0.max(1e-30)) as f32).min(1.0)
}

/// λψ at initialisation below which VAR barely acts, and above which it outweighs the loss
/// (a cross-entropy of about 2.3 at the start); METHODS.md finds 0.3 … 1.4 works.
const LAMBDA_PSI_RANGE: (f32, f32) = (0.05, 5.0);

/// A sentence when a VAR run's λψ at initialisation is far outside the useful range. ψ scales
/// with the model (≈ 1.1e3 for LeNet-5, ≈ 1.1e5 for ViT-tiny, whose small initial weights
/// have a small variance), so one λ does not suit every preset; the sentence names the λ
/// that gives λψ ≈ 0.5 for this model.
pub fn lambda_notice(config: &Config, model: &Model) -> Option<String> {
    let uses_var = |name: &String| name.parse::<OptimKind>().is_ok_and(OptimKind::uses_var);
    if !config.optimizers.iter().any(uses_var) {
        return None;
    }
    let psi = psi_init(model, config.seed) as f32;
    let load = config.lambda * psi;
    if (LAMBDA_PSI_RANGE.0..=LAMBDA_PSI_RANGE.1).contains(&load) {
        return None;
    }
    let effect = if load > LAMBDA_PSI_RANGE.1 {
        "VAR's term outweighs the loss (about 2.3 at the start)"
    } else {
        "VAR's term is too small to act"
    };
    Some(format!(
        "With λ = {:e} the {} model starts at λψ = {load:.3} (ψ = {psi:.0}), so {effect}; \
         λ = {:.1e} gives λψ₀ ≈ 1 (0.3–1.5 works well; or set λψ₀ itself).",
        config.lambda,
        config.model,
        1.0 / psi
    ))
}
