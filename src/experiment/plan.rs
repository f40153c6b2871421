//! Sweeps as independent jobs: a grid (models × λ × the config's optimizers × seeds)
//! expanded into one ordinary config per run ([`make_plan`]), and the finished runs' results
//! put back together as one [`ExperimentResult`] per compare of the grid ([`merge_plan`]).
//! A scheduler (Slurm job arrays, Kubernetes Indexed Jobs) runs the configs; varlab does no
//! dispatching of its own.

use serde::{Deserialize, Serialize};

use super::{lambda_for, psi_init, Config, ExperimentError, ExperimentResult, JobRecord};
use crate::optim::OptimKind;

/// The version of `plan.json` this build reads and writes.
pub const PLAN_VERSION: u32 = 1;
/// The most runs a plan may hold (`plan.json` of this many runs is about 30 MB).
pub const MAX_PLAN_RUNS: usize = 100_000;
/// Plans above this many runs are written only when asked for on purpose (`plan --yes`).
pub const LARGE_PLAN: usize = 10_000;

/// VAR's λ on one point of the grid: as given, or as λψ₀ (λ from ψ of the model's initial
/// weights for the first seed, as [`super::Experiment::new`] derives it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LambdaSetting {
    Absolute(f32),
    Psi0(f32),
}

/// `plan.json`: the grid's compares (groups) and the runs they share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub version: u32,
    /// The varlab version that planned it.
    pub varlab: String,
    /// How many runs (files `runs/0000.json` …).
    pub count: usize,
    pub groups: Vec<PlanGroup>,
    pub runs: Vec<PlanRun>,
}

/// One compare of the grid: the config `varlab compare` would run (all optimizers and
/// seeds), and the plan numbers of its runs in [`Config::run_plan`] order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanGroup {
    pub name: String,
    pub config: Config,
    pub runs: Vec<usize>,
}

/// One job: its config file and what it trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRun {
    pub index: usize,
    /// Relative to the plan's directory: `runs/0007.json`.
    pub file: String,
    pub model: String,
    pub optimizer: String,
    pub seed: u64,
    pub lambda: f32,
    /// [`Config::hash`] of the run's config.
    pub config_hash: String,
}

/// The file name of run `index`: four digits at least, as `printf %04d` writes them.
pub fn run_file(index: usize) -> String {
    format!("{index:04}.json")
}

/// Expands `base` over `models` and `lambdas` (each empty means the base's own) into the
/// plan and one config per run (`seeds: 1`, one optimizer, λ absolute). Runs that do not
/// use λ (SGD, SAM, CrAM, ℓ1, Hoyer) are the same at every λ and are planned once per
/// model, shared by the groups. The same grid always gives the same plan.
pub fn make_plan(
    base: &Config,
    models: &[String],
    lambdas: &[LambdaSetting],
) -> Result<(Plan, Vec<Config>), ExperimentError> {
    base.validate()?;
    let models = match models {
        [] => vec![base.model.clone()],
        m => m.to_vec(),
    };
    let own = match base.lambda_psi0 {
        Some(x) => LambdaSetting::Psi0(x),
        None => LambdaSetting::Absolute(base.lambda),
    };
    let lambdas = match lambdas {
        [] => vec![own],
        l => l.to_vec(),
    };
    let mut groups = Vec::new();
    let mut runs: Vec<PlanRun> = Vec::new();
    let mut configs: Vec<Config> = Vec::new();
    let mut by_hash = std::collections::HashMap::new();
    for model in &models {
        // The λ that runs without VAR carry: the first group's, so they are shared.
        let mut shared_lambda = None;
        for &setting in &lambdas {
            let config = group_config(base, model, setting)?;
            let shared = *shared_lambda.get_or_insert(config.lambda);
            let mut members = Vec::new();
            for planned in config.run_plan() {
                let uses_lambda = planned
                    .optimizer
                    .parse::<OptimKind>()
                    .is_ok_and(OptimKind::uses_var);
                let run = Config {
                    optimizers: vec![planned.optimizer.clone()],
                    seed: planned.seed,
                    seeds: 1,
                    lambda_psi0: None,
                    lambda: if uses_lambda { config.lambda } else { shared },
                    ..config.clone()
                };
                let hash = run.hash();
                let index = match by_hash.get(&hash) {
                    Some(&i) => i,
                    None => {
                        if runs.len() == MAX_PLAN_RUNS {
                            return Err(ExperimentError::Merge(format!(
                                "The grid makes more than {MAX_PLAN_RUNS} runs, the most a plan \
                                 holds; give fewer models, λ values, optimizers or seeds."
                            )));
                        }
                        by_hash.insert(hash.clone(), runs.len());
                        runs.push(PlanRun {
                            index: runs.len(),
                            file: format!("runs/{}", run_file(runs.len())),
                            model: model.clone(),
                            optimizer: planned.optimizer,
                            seed: planned.seed,
                            lambda: run.lambda,
                            config_hash: hash,
                        });
                        configs.push(run);
                        runs.len() - 1
                    }
                };
                members.push(index);
            }
            groups.push(PlanGroup {
                name: group_name(model, setting, models.len(), lambdas.len()),
                config,
                runs: members,
            });
        }
    }
    let plan = Plan {
        version: PLAN_VERSION,
        varlab: env!("CARGO_PKG_VERSION").into(),
        count: runs.len(),
        groups,
        runs,
    };
    Ok((plan, configs))
}

/// The compare config of one grid point, with λ resolved as an experiment resolves it.
fn group_config(
    base: &Config,
    model: &str,
    setting: LambdaSetting,
) -> Result<Config, ExperimentError> {
    let mut config = Config {
        model: model.into(),
        ..base.clone()
    };
    match setting {
        LambdaSetting::Absolute(l) => {
            config.lambda = l;
            config.lambda_psi0 = None;
        }
        LambdaSetting::Psi0(x) => {
            let built = config
                .build_model(config.dataset.input(), config.dataset.classes())
                .map_err(crate::train::TrainError::from)?;
            config.lambda_psi0 = Some(x);
            config.lambda = lambda_for(x, psi_init(&built, config.seed));
        }
    }
    config.validate()?;
    Ok(config)
}

/// `mlp`, `lambda1e-4`, `mlp-lpsi1.4`: what differs between the groups.
fn group_name(model: &str, setting: LambdaSetting, models: usize, lambdas: usize) -> String {
    let lambda = match setting {
        LambdaSetting::Absolute(l) => format!("lambda{l:e}"),
        LambdaSetting::Psi0(x) => format!("lpsi{x}"),
    };
    match (models > 1, lambdas > 1) {
        (true, true) => format!("{model}-{lambda}"),
        (true, false) => model.to_string(),
        (false, true) => lambda,
        (false, false) => model.to_string(),
    }
}

/// What [`merge_plan`] made of one group, and what it could not find.
pub struct Merged {
    pub group: String,
    pub result: ExperimentResult,
    /// The group's planned runs without a result, as `run 7 (var seed 1)`.
    pub missing: Vec<String>,
}

/// Puts the run results (each a one-run [`ExperimentResult`] written by `varlab run`, with
/// its [`JobRecord`]) back together, one result per group of `plan`, with the statistics
/// of a compare. A result that is not a run of this plan, or was trained from a config
/// other than the planned one, is refused with a sentence naming it.
pub fn merge_plan(
    plan: &Plan,
    results: Vec<(String, ExperimentResult)>,
) -> Result<Vec<Merged>, ExperimentError> {
    super::untrusted::check_plan("the plan", plan)?;
    let mut by_index: Vec<Option<(JobRecord, ExperimentResult)>> = vec![None; plan.count];
    for (name, result) in results {
        let refuse = |why: String| ExperimentError::Merge(format!("{name}: {why}"));
        let job = match result.jobs.as_slice() {
            [job] => job.clone(),
            _ => {
                return Err(refuse(
                    "not the result of one planned run (`varlab run`).".into(),
                ))
            }
        };
        let Some(planned) = plan.runs.get(job.index) else {
            return Err(refuse(format!(
                "run {} is not in the plan ({} runs).",
                job.index, plan.count
            )));
        };
        if job.config_hash != planned.config_hash {
            return Err(refuse(format!(
                "trained from a config (hash {}) other than run {}'s in the plan (hash {}).",
                job.config_hash, job.index, planned.config_hash
            )));
        }
        super::untrusted::check_result(&name, &result)?;
        let what = |r: &str, s: u64| format!("{r} seed {s}");
        let trained: Vec<String> = result
            .runs
            .iter()
            .map(|r| what(&r.optimizer, r.seed))
            .collect();
        if trained != [what(&planned.optimizer, planned.seed)] {
            return Err(refuse(format!(
                "holds {} where run {} of the plan is {}.",
                match trained.as_slice() {
                    [] => "no run".to_string(),
                    t => t.join(", "),
                },
                job.index,
                what(&planned.optimizer, planned.seed)
            )));
        }
        if by_index[job.index].is_some() {
            return Err(refuse(format!("run {} appears twice.", job.index)));
        }
        let index = job.index;
        by_index[index] = Some((job, result));
    }
    let mut merged = Vec::new();
    for group in &plan.groups {
        let found: Vec<&(JobRecord, ExperimentResult)> = group
            .runs
            .iter()
            .filter_map(|&i| by_index[i].as_ref())
            .collect();
        let missing: Vec<String> = group
            .runs
            .iter()
            .filter(|&&i| by_index[i].is_none())
            .map(|&i| {
                let r = &plan.runs[i];
                format!("run {i} ({} seed {})", r.optimizer, r.seed)
            })
            .collect();
        let environment = match found.first() {
            Some((_, r)) => r.environment.clone(),
            None => super::Environment {
                executor: String::new(),
                adapter: String::new(),
                version: plan.varlab.clone(),
                notice: None,
            },
        };
        let runs = found.iter().flat_map(|(_, r)| r.runs.clone()).collect();
        let mut result = ExperimentResult::new(group.config.clone(), environment, runs);
        result.jobs = found.iter().map(|(job, _)| job.clone()).collect();
        if !missing.is_empty() {
            result.partial = Some(format!(
                "{} of {} planned runs finished; missing: {}.",
                group.runs.len() - missing.len(),
                group.runs.len(),
                missing.join(", ")
            ));
        }
        merged.push(Merged {
            group: group.name.clone(),
            result,
            missing,
        });
    }
    Ok(merged)
}
