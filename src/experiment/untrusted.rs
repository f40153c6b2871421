//! JSON that comes from outside — a plan, a run's result, a config — read and then checked
//! before any of it is used as a size or an index: a plan's count is capped and its run
//! numbers are in range, a result's accuracies are finite and in [0, 1]. Every refusal is
//! one sentence naming the file and the field.

use serde::de::DeserializeOwned;

use super::plan::{run_file, Plan, MAX_PLAN_RUNS, PLAN_VERSION};
use super::{Config, ExperimentError, ExperimentResult};

fn refuse(file: &str, why: String) -> ExperimentError {
    ExperimentError::Merge(format!("{file}: {why}"))
}

/// The key whose value starts before byte `at` of `text`: the last `"key":` before it.
fn key_before(text: &str, at: usize) -> Option<&str> {
    let head = text.get(..at)?;
    let colon = head.rfind("\":")?;
    let open = head[..colon].rfind('"')?;
    let key = &head[open + 1..colon];
    (!key.is_empty() && key.len() < 64).then_some(key)
}

/// The byte offset of `line` (1-based) and `column` (1-based) in `text`.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column).min(text.len())
}

/// A serde error as a sentence naming the file, the line and the field it is in.
pub fn json_error(file: &str, text: &str, e: &serde_json::Error) -> String {
    let full = e.to_string();
    let (line, column) = (e.line(), e.column());
    let what = full
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&full);
    let what = match what.strip_prefix("invalid type: null, expected ") {
        Some(expected) => format!("null where {expected} goes"),
        None => what.to_string(),
    };
    match (e.is_data(), key_before(text, offset(text, line, column))) {
        (true, Some(key)) => format!("{file}, line {line}: field `{key}`: {what}."),
        _ if line > 0 => format!("{file}, line {line}: {what}."),
        _ => format!("{file}: {what}."),
    }
}

/// `text` read as a `T`, with [`json_error`]'s sentence on failure.
pub fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, ExperimentError> {
    serde_json::from_str(text).map_err(|e| refuse_plain(json_error(file, text, &e)))
}

fn refuse_plain(sentence: String) -> ExperimentError {
    ExperimentError::Merge(sentence)
}

/// A plan read from `text` (the file `file`) and checked: its version, a count of 1 to
/// [`MAX_PLAN_RUNS`] runs listed in order, and groups that each name some of them.
pub fn parse_plan(file: &str, text: &str) -> Result<Plan, ExperimentError> {
    let value: serde_json::Value = parse(file, text)?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == PLAN_VERSION as u64 => {}
        Some(v) => {
            return Err(refuse(
                file,
                format!(
                    "a plan of version {v}; this varlab ({}) reads version {PLAN_VERSION}.",
                    env!("CARGO_PKG_VERSION")
                ),
            ))
        }
        None => {
            return Err(refuse(
                file,
                "not a plan: it has no `version` number (varlab plan writes plan.json).".into(),
            ))
        }
    }
    let plan: Plan = parse(file, text)?;
    check_plan(file, &plan)?;
    Ok(plan)
}

/// The checks of [`parse_plan`] on a plan already read.
pub fn check_plan(file: &str, plan: &Plan) -> Result<(), ExperimentError> {
    let count = plan.count;
    if count == 0 || count > MAX_PLAN_RUNS {
        return Err(refuse(
            file,
            format!("field `count` is {count}; a plan holds 1 to {MAX_PLAN_RUNS} runs."),
        ));
    }
    if plan.runs.len() != count {
        return Err(refuse(
            file,
            format!(
                "field `count` says {count} runs but `runs` lists {}.",
                plan.runs.len()
            ),
        ));
    }
    for (i, run) in plan.runs.iter().enumerate() {
        let file_name = format!("runs/{}", run_file(i));
        if run.index != i || run.file != file_name {
            return Err(refuse(
                file,
                format!(
                    "entry {i} of `runs` is run {} in {}; it should be run {i} in {file_name}.",
                    run.index, run.file
                ),
            ));
        }
    }
    if plan.groups.is_empty() {
        return Err(refuse(
            file,
            "field `groups` is empty: the plan has nothing to merge.".into(),
        ));
    }
    for group in &plan.groups {
        let name = &group.name;
        if group.runs.is_empty() {
            return Err(refuse(file, format!("group '{name}' names no run.")));
        }
        if let Some(bad) = group.runs.iter().find(|&&r| r >= count) {
            return Err(refuse(
                file,
                format!(
                    "group '{name}' names run {bad}, but the plan has {count} runs (0 to {}).",
                    count - 1
                ),
            ));
        }
        group
            .config
            .validate()
            .map_err(|e| refuse(file, format!("group '{name}': {e}")))?;
        let expected = group.config.run_plan().len();
        if group.runs.len() != expected {
            return Err(refuse(
                file,
                format!(
                    "group '{name}' names {} runs where its config makes {expected}.",
                    group.runs.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A result read from `text` (the file `file`) and checked: every accuracy of a run that
/// did not diverge is a number in [0, 1], every sweep's sparsity one of the config's.
pub fn parse_result(file: &str, text: &str) -> Result<ExperimentResult, ExperimentError> {
    let result: ExperimentResult = parse(file, text)?;
    check_result(file, &result)?;
    Ok(result)
}

/// The checks of [`parse_result`] on a result already read.
pub fn check_result(file: &str, result: &ExperimentResult) -> Result<(), ExperimentError> {
    result
        .config
        .validate()
        .map_err(|e| refuse(file, format!("its `config`: {e}")))?;
    let accuracy = |v: f32, field: String| {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(refuse(
                file,
                format!("field `{field}` is {v}; an accuracy is a number in [0, 1]."),
            ))
        }
    };
    for (i, run) in result.runs.iter().enumerate() {
        if !result.config.optimizers.contains(&run.optimizer) {
            return Err(refuse(
                file,
                format!(
                    "run {i} is of optimizer '{}', which its config does not train.",
                    run.optimizer
                ),
            ));
        }
        let last_seed = result.config.seed as u128 + result.config.seeds as u128;
        if (run.seed as u128) < result.config.seed as u128 || run.seed as u128 >= last_seed {
            return Err(refuse(
                file,
                format!(
                    "run {i} has seed {}, outside the config's seeds {} to {}.",
                    run.seed,
                    result.config.seed,
                    last_seed - 1
                ),
            ));
        }
        if run.diverged.is_some() {
            continue;
        }
        accuracy(run.dense_accuracy, format!("runs[{i}].dense_accuracy"))?;
        if run.sweep.len() > result.config.sparsities.len() {
            return Err(refuse(
                file,
                format!(
                    "run {i} has {} sweep points for the config's {} sparsities.",
                    run.sweep.len(),
                    result.config.sparsities.len()
                ),
            ));
        }
        for (j, p) in run.sweep.iter().enumerate() {
            accuracy(p.accuracy, format!("runs[{i}].sweep[{j}].accuracy"))?;
            if let Some(a) = p.accuracy_bn_recal {
                accuracy(a, format!("runs[{i}].sweep[{j}].accuracy_bn_recal"))?;
            }
        }
    }
    Ok(())
}

/// A run's config as `varlab run` takes it: one optimizer and one seed. Given a plan or a
/// config of several runs, the sentence says what it got and what to give.
pub fn parse_run_config(file: &str, text: &str) -> Result<Config, ExperimentError> {
    let value: serde_json::Value = parse(file, text)?;
    if ["count", "groups", "runs"]
        .iter()
        .all(|k| value.get(k).is_some())
    {
        return Err(refuse(
            file,
            "this is a plan (plan.json), not a run's config; give one of its runs, \
             DIR/runs/NNNN.json."
                .into(),
        ));
    }
    if value.get("runs").is_some() && value.get("environment").is_some() {
        return Err(refuse(
            file,
            "this is a result, not a run's config; give DIR/runs/NNNN.json.".into(),
        ));
    }
    let config = Config::from_json(text).map_err(|e| refuse(file, e.to_string()))?;
    let runs = config.run_plan().len();
    if runs != 1 {
        return Err(refuse(
            file,
            format!(
                "a config of {runs} runs ({} optimizer(s) × {} seed(s)); `varlab run` trains \
                 one: give a run from `varlab plan --config {file} --out DIR`, or train them \
                 all with `varlab compare --config {file}`.",
                config.optimizers.len(),
                config.seeds
            ),
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_names_the_field_and_line() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: f32,
            dense_accuracy: f32,
        }
        let text = "{\n  \"a\": 1,\n  \"dense_accuracy\": null\n}";
        let e = serde_json::from_str::<T>(text).unwrap_err();
        assert_eq!(
            json_error("r.json", text, &e),
            "r.json, line 3: field `dense_accuracy`: null where f32 goes."
        );
    }
}
