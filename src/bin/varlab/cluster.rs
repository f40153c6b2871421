//! `varlab plan | run | merge`: a sweep as one job per run, for a scheduler (Slurm job
//! arrays, Kubernetes Indexed Jobs) to run; see scripts/slurm/ and the README.

use std::path::{Path, PathBuf};

use clap::Args;
use varlab::data::file::FileKind;
use varlab::experiment::plan::{make_plan, merge_plan, LambdaSetting, Plan, LARGE_PLAN};
use varlab::experiment::untrusted::{parse_plan, parse_result, parse_run_config};
use varlab::experiment::{ExperimentResult, JobRecord};

use super::io::{lock_out, read_input, say, sayln};
use super::run::{self, CompareArgs, Mode, SweepArgs, TrainArgs};
use super::Fail;

/// The options `plan` adds.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The directory to write `plan.json`, `runs/NNNN.json` and an empty `results/` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a plan of more than 10 000 runs (without it, such a plan is refused).
    #[arg(long)]
    pub yes: bool,
}

/// The options of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// A run's config (`DIR/runs/0007.json`).
    pub config: PathBuf,
    /// Where its result JSON goes (`DIR/results/0007.json`); written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// The run's number in its plan (default: from the config's file name).
    #[arg(long, allow_negative_numbers = true, value_parser = index_value)]
    pub index: Option<usize>,
    /// As for `compare`: MNIST's IDX directory, or CIFAR-10's .bin directory or tarball.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// The options of `merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The run results (`DIR/results/*.json`).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The plan (default: `plan.json` beside the results' directory).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Write the merged result JSON here (with several groups: one file per group,
    /// `NAME-GROUP.json`).
    #[arg(long)]
    pub json: PathBuf,
    /// Also write the CSV (one per group, as for --json).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// `--index`: a run number, said in a sentence when it is not one.
fn index_value(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .map_err(|_| format!("--index is a run's number in its plan, 0 or more; got {s}."))
}

/// The first value given twice in `values` (compared as the values they parse to).
fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
        .map(|(_, v)| v)
}

/// `varlab plan`: the grid of the compare options, one config per run.
pub fn plan(t: TrainArgs, s: SweepArgs, c: CompareArgs, p: PlanArgs) -> Result<(), Fail> {
    for (flag, given) in [
        ("--json", t.json.is_some()),
        ("--csv", c.csv.is_some()),
        ("--save", s.save.is_some()),
    ] {
        if given {
            return Err(Fail::Usage(format!(
                "{flag} is not an option of plan: `varlab run` writes each result, `varlab merge` the merged files."
            )));
        }
    }
    for (flag, given) in [("--jobs", c.jobs.is_some()), ("--data", t.data.is_some())] {
        if given {
            return Err(Fail::Usage(format!(
                "{flag} is not an option of plan: give it to `varlab run` for each run."
            )));
        }
    }
    let twice = |flag: &str, value: String| {
        Fail::Usage(format!(
            "--{flag} gives {value} twice; each value makes a group of the plan, so give each once."
        ))
    };
    if let Some(m) = t.model.as_deref().and_then(repeated) {
        return Err(twice("model", m.clone()));
    }
    for (flag, list) in [("lambda", &t.lambda), ("lambda-psi0", &t.lambda_psi0)] {
        if let Some(v) = list.as_deref().and_then(repeated) {
            return Err(twice(flag, format!("{v:e}")));
        }
    }
    let models = t.model.clone().unwrap_or_default();
    let lambdas: Vec<LambdaSetting> = match (&t.lambda, &t.lambda_psi0) {
        (Some(l), _) => l.iter().map(|&l| LambdaSetting::Absolute(l)).collect(),
        (None, Some(x)) => x.iter().map(|&x| LambdaSetting::Psi0(x)).collect(),
        (None, None) => Vec::new(),
    };
    // The base config takes the first of each list; the grid then sets each value.
    let first = TrainArgs {
        model: t.model.as_ref().map(|m| m[..1].to_vec()),
        lambda: t.lambda.as_ref().map(|l| l[..1].to_vec()),
        lambda_psi0: t.lambda_psi0.as_ref().map(|l| l[..1].to_vec()),
        ..t
    };
    let base = run::config(&first, &s, &c)?;
    let (plan, configs) = make_plan(&base, &models, &lambdas).map_err(usage)?;
    if plan.count > LARGE_PLAN && !p.yes {
        return Err(Fail::Usage(format!(
            "this plan has {} runs ({} files), more than {LARGE_PLAN}: pass --yes to write it, \
             or give fewer models, λ values, optimizers or seeds.",
            plan.count,
            plan.count + 1
        )));
    }
    let plan_path = p.out.join("plan.json");
    if let Some(what) = varlab::data::file::special(&p.out).filter(|w| *w != "a directory") {
        return Err(Fail::Usage(format!(
            "cannot write the plan into {}: it is {what}, not a directory.",
            p.out.display()
        )));
    }
    let text = serde_json::to_string_pretty(&plan).expect("a plan serialises") + "\n";
    if plan_path.exists() {
        let before = read_input(&plan_path, FileKind::Plan)?;
        if before != text {
            return Err(Fail::Usage(format!(
                "{} already holds a different plan; choose another --out or delete it.",
                p.out.display()
            )));
        }
    }
    for dir in [p.out.join("runs"), p.out.join("results")] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Fail::Usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    for (run, config) in plan.runs.iter().zip(&configs) {
        run::write_file(&p.out.join(&run.file), config.to_json().as_bytes())?;
    }
    run::write_file(&plan_path, text.as_bytes())?;
    sayln!(
        "planned {} runs in {} group(s): {}",
        plan.count,
        plan.groups.len(),
        plan.groups
            .iter()
            .map(|g| format!("{} ({} runs)", g.name, g.runs.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    sayln!(
        "configs: {}/runs/0000.json …; plan: {}",
        p.out.display(),
        plan_path.display()
    );
    sayln!(
        "next: varlab run {}/runs/NNNN.json --out {}/results/NNNN.json for each run, then varlab merge {}/results/*.json --json merged.json",
        p.out.display(),
        p.out.display(),
        p.out.display()
    );
    Ok(())
}

/// `varlab run`: one planned run and its pruning sweep; a result already there for the same
/// config is kept (exit 0 at once), so a re-submitted array redoes only what is missing.
pub async fn run_one(a: RunArgs) -> Result<(), Fail> {
    let text = read_input(&a.config, FileKind::Config)?;
    let cfg = parse_run_config(&a.config.display().to_string(), &text).map_err(usage)?;
    let index = match a.index {
        Some(i) => i,
        None => index_from_name(&a.config)?,
    };
    let hash = cfg.hash();
    if is_finished(&a.out, &hash) {
        sayln!(
            "{} is already done (run {index}, config hash {hash}): kept.",
            a.out.display()
        );
        return Ok(());
    }
    run::check_writable(&a.out)?;
    // Held until the process ends: a second `run` on this --out is told and stops.
    let _lock = lock_out(&a.out)?;
    if is_finished(&a.out, &hash) {
        sayln!(
            "{} was finished by another run while this one waited (run {index}): kept.",
            a.out.display()
        );
        return Ok(());
    }
    let split = run::load_data(&cfg, a.data.as_deref())?;
    let (mut result, _) = run::drive(cfg, &split, Mode::Compare, 1).await?;
    if run::interrupted() {
        return Err(Fail::Interrupted(
            "interrupted: no result written (the run will be redone).".into(),
        ));
    }
    result.jobs = vec![JobRecord {
        index,
        config_hash: hash,
        version: env!("CARGO_PKG_VERSION").into(),
        commit: varlab::COMMIT.into(),
        executor: result.environment.executor.clone(),
        adapter: result.environment.adapter.clone(),
        host: host(),
    }];
    say!("{}", run::table(&result));
    let json = serde_json::to_string_pretty(&result).expect("results serialise");
    run::write_file(&a.out, json.as_bytes())
}

/// The plan number in a run config's name: `runs/0007.json` is run 7.
fn index_from_name(path: &Path) -> Result<usize, Fail> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Fail::Usage(format!(
                "cannot tell the run's number from the name {}; pass --index",
                path.display()
            ))
        })
}

/// Whether `out` holds a finished result of the config with `hash`.
fn is_finished(out: &Path, hash: &str) -> bool {
    let name = out.display().to_string();
    let read = read_input(out, FileKind::Result).ok();
    let result = read.and_then(|text| parse_result(&name, &text).ok());
    result.is_some_and(|r: ExperimentResult| {
        r.partial.is_none() && !r.runs.is_empty() && r.jobs.iter().any(|j| j.config_hash == hash)
    })
}

/// This machine's name, for the provenance of a result.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `varlab merge`: the run results back into one compare result per group of the plan,
/// with the table; says which planned runs are missing (exit code 1 then, the files
/// written all the same and marked partial).
pub fn merge(m: MergeArgs) -> Result<(), Fail> {
    // A pattern the shell left as it was matched no file: say that, not what follows.
    for path in &m.results {
        let text = path.to_string_lossy();
        if !path.exists() && text.contains(['*', '?', '[']) {
            return Err(Fail::Usage(format!(
                "no file matched {text}: no run has written a result there yet."
            )));
        }
    }
    let plan_path = match &m.plan {
        Some(p) => p.clone(),
        None => default_plan(&m.results[0]),
    };
    let plan_text = read_input(&plan_path, FileKind::Plan).map_err(|e| match e {
        Fail::Usage(m) => Fail::Usage(format!(
            "{m} (merge needs the plan: pass --plan DIR/plan.json)"
        )),
        other => other,
    })?;
    let plan: Plan = parse_plan(&plan_path.display().to_string(), &plan_text).map_err(usage)?;
    let mut results = Vec::new();
    for path in &m.results {
        let name = path.display().to_string();
        let text = read_input(path, FileKind::Result)?;
        results.push((name.clone(), parse_result(&name, &text).map_err(usage)?));
    }
    let several = plan.groups.len() > 1;
    for group in &plan.groups {
        let name = |p: &Path| match several {
            true => suffixed(p, &group.name),
            false => p.to_path_buf(),
        };
        for path in [Some(&m.json), m.csv.as_ref()].into_iter().flatten() {
            run::check_writable(&name(path))?;
        }
    }
    let merged = merge_plan(&plan, results).map_err(usage)?;
    let several = merged.len() > 1;
    let mut missing = 0;
    for group in &merged {
        if several {
            sayln!("\n== {} ==", group.group);
        }
        say!("{}", run::table(&group.result));
        let json = serde_json::to_string_pretty(&group.result).expect("results serialise");
        let csv = group.result.to_csv();
        let name = |p: &Path| match several {
            true => suffixed(p, &group.group),
            false => p.to_path_buf(),
        };
        let json_path = name(&m.json);
        let csv_path = m.csv.as_deref().map(name);
        let mut files: Vec<(&Path, &[u8])> = vec![(&json_path, json.as_bytes())];
        if let Some(p) = &csv_path {
            files.push((p, csv.as_bytes()));
        }
        run::write_files(&files)?;
        sayln!("wrote {}", json_path.display());
        missing += group.missing.len();
    }
    match missing {
        0 => Ok(()),
        n => Err(Fail::Run(format!(
            "{n} planned run(s) have no result (listed above; the files are marked partial). Re-submit the array: finished runs are kept."
        ))),
    }
}

/// `DIR/plan.json` for results in `DIR/results/`.
fn default_plan(first: &Path) -> PathBuf {
    let dir = first.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.join("..").join("plan.json")
}

/// `merged.json` → `merged-GROUP.json`.
fn suffixed(path: &Path, group: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("merged");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{group}.{ext}"),
        None => format!("{stem}-{group}"),
    };
    path.with_file_name(name)
}

fn usage(e: impl std::fmt::Display) -> Fail {
    Fail::Usage(e.to_string())
}
