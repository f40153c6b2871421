//! The wasm-bindgen API the page's JavaScript calls. Results cross as JSON strings;
//! errors as the sentences of [`crate::gpu::GpuError`].

use wasm_bindgen::prelude::*;

use crate::data::split_from_named_files;
use crate::experiment::{Config, DatasetKind, ExecutorChoice, Experiment};
use crate::gpu::Context;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Opens the GPU, runs the smoke matmul against its CPU twin and a small benchmark;
/// resolves to the JSON of [`crate::smoke::SmokeReport`].
#[wasm_bindgen]
pub async fn smoke() -> Result<String, JsError> {
    let ctx = Context::new().await?;
    let report = crate::smoke::run(&ctx, &[64, 128, 256]).await?;
    Ok(serde_json::to_string(&report)?)
}

/// The crate version, for the page's footer and exported results.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The default config JSON (the page's starting state).
#[wasm_bindgen]
pub fn default_config() -> String {
    Config::default().to_json()
}

/// Whether a WebGPU adapter named `name` is a software rasteriser, on which `executor: auto`
/// trains on the CPU executor (the page says so before Run).
#[wasm_bindgen]
pub fn is_software_adapter_name(name: &str) -> bool {
    crate::experiment::is_software_adapter_name(name)
}

/// The named presets: `[{id, title, about, config}, …]`, the page's default first.
#[wasm_bindgen]
pub fn presets() -> String {
    serde_json::to_string(&crate::experiment::presets::presets()).expect("presets serialise")
}

/// The paired statistics and verdict sentences of a result JSON (for a result merged or
/// imported on the page): `{"paired": [...], "verdicts": [...]}`.
#[wasm_bindgen]
pub fn result_stats(result_json: &str) -> Result<String, JsError> {
    #[derive(serde::Serialize)]
    struct Stats {
        paired: Vec<crate::experiment::Paired>,
        verdicts: Vec<String>,
    }
    let r: crate::experiment::ExperimentResult = serde_json::from_str(result_json)?;
    let r = crate::experiment::ExperimentResult::new(r.config, r.environment, r.runs);
    // Serialised from the struct (not `json!`), so f32 sparsities keep their short form.
    Ok(serde_json::to_string(&Stats {
        paired: r.paired,
        verdicts: r.verdicts,
    })?)
}

/// The config JSON normalised (defaults filled in), or an error naming the bad field.
#[wasm_bindgen]
pub fn validate_config(json: &str) -> Result<String, JsError> {
    Ok(Config::from_json(json)?.to_json())
}

/// `[{name, bytes: Uint8Array}, …]` from JavaScript as owned `(name, bytes)` pairs.
fn named_files(files: &js_sys::Array) -> Result<Vec<(String, Vec<u8>)>, JsError> {
    files
        .iter()
        .map(|f| {
            let name = js_sys::Reflect::get(&f, &"name".into())
                .ok()
                .and_then(|v| v.as_string())
                .ok_or_else(|| JsError::new("Each dataset file needs a 'name' string."))?;
            let bytes = js_sys::Reflect::get(&f, &"bytes".into())
                .ok()
                .filter(|v| v.is_instance_of::<js_sys::Uint8Array>())
                .ok_or_else(|| JsError::new(&format!("The file '{name}' has no bytes.")))?;
            Ok((name, js_sys::Uint8Array::new(&bytes).to_vec()))
        })
        .collect()
}

/// Checks dataset files without training: `{"dataset", "train", "test"}` or an error
/// sentence naming the file at fault. With `dataset` (`mnist`, `cifar10` or `cifar100`), files of
/// another data set are refused with a sentence.
#[wasm_bindgen]
pub fn parse_dataset(files: js_sys::Array, dataset: Option<String>) -> Result<String, JsError> {
    let split = split_from_named_files(&named_files(&files)?)?;
    let held = DatasetKind::of(&split.train);
    if let Some(want) = dataset.as_deref().and_then(DatasetKind::from_name) {
        check_kind(held, want)?;
    }
    Ok(serde_json::json!({
        "dataset": held.name(),
        "train": split.train.len(),
        "test": split.test.len(),
    })
    .to_string())
}

/// Files of one data set where the other is asked for: a sentence.
fn check_kind(held: DatasetKind, wanted: DatasetKind) -> Result<(), JsError> {
    match held == wanted {
        true => Ok(()),
        false => Err(JsError::new(&format!(
            "These files hold {}, not the {} asked for.",
            held.display(),
            wanted.display()
        ))),
    }
}

/// The config schema (`varlab config --schema`): every field's type, default, limits,
/// choices, URL key, label and help; the optimizers with their display names and fields; the
/// models; the built-in datasets' sizes. The page builds its form, URL keys and corrections
/// from it.
#[wasm_bindgen]
pub fn config_schema() -> String {
    crate::experiment::schema::schema().to_string()
}

/// The CSV of a result JSON: the engine's one CSV writer (the CLI's `--csv` writes the
/// same bytes for the same result).
#[wasm_bindgen]
pub fn results_csv(result_json: &str) -> Result<String, JsError> {
    let result: crate::experiment::ExperimentResult = serde_json::from_str(result_json)?;
    Ok(result.to_csv())
}

/// The runs of a config in the engine's one order: a JSON array of `{optimizer, seed}`;
/// run `i` of events, results and [`WebExperiment::create`]'s `runs` is entry `i`.
#[wasm_bindgen]
pub fn run_plan(config_json: &str) -> Result<String, JsError> {
    let config = Config::from_json(config_json)?;
    Ok(serde_json::to_string(&config.run_plan())?)
}

/// One result JSON from the result JSONs (an array) of disjoint shares of one experiment's
/// runs, in plan order, with the paired statistics recomputed: identical to the result of
/// the same runs trained in one go.
#[wasm_bindgen]
pub fn merge_results(parts_json: &str) -> Result<String, JsError> {
    let parts: Vec<crate::experiment::ExperimentResult> = serde_json::from_str(parts_json)?;
    let merged = crate::experiment::ExperimentResult::merge(parts)?;
    Ok(serde_json::to_string(&merged)?)
}

/// An [`Experiment`] the page steps from its event loop.
#[wasm_bindgen]
pub struct WebExperiment {
    exp: Experiment,
}

#[wasm_bindgen]
impl WebExperiment {
    /// Validates the config and the data files and prepares the runs: all of them, or only
    /// those numbered `runs` in [`run_plan`] (a worker's share; merge the shares' results
    /// with [`merge_results`]).
    pub async fn create(
        config_json: String,
        files: js_sys::Array,
        runs: Option<Vec<u32>>,
    ) -> Result<WebExperiment, JsError> {
        let config = Config::from_json(&config_json)?;
        let split = split_from_named_files(&named_files(&files)?)?;
        check_kind(DatasetKind::of(&split.train), config.dataset)?;
        let mut exp = Experiment::new(config, &split)?;
        if let Some(runs) = runs {
            let runs: Vec<usize> = runs.into_iter().map(|r| r as usize).collect();
            exp = exp.only(&runs)?;
        }
        let gpu = if exp.config.executor == ExecutorChoice::Cpu {
            Err(crate::gpu::GpuError::NoAdapter(String::new()))
        } else {
            Context::new().await
        };
        Ok(WebExperiment {
            exp: exp.choose_executor(gpu)?,
        })
    }

    /// `gpu` or `cpu`.
    pub fn executor(&self) -> String {
        self.exp.result().environment.executor
    }

    /// Why the executor differs from the one asked for (a sentence), or `undefined`.
    pub fn notice(&self) -> Option<String> {
        self.exp.environment().notice.clone()
    }

    /// The adapter's name (or the CPU executor's).
    pub fn adapter(&self) -> String {
        self.exp.result().environment.adapter
    }

    /// One unit of work; resolves to the event JSON ([`crate::experiment::Event`]).
    pub async fn step(&mut self) -> Result<String, JsError> {
        let event = self.exp.step().await?;
        Ok(serde_json::to_string(&event)?)
    }

    /// The result JSON of the finished runs.
    pub fn result(&self) -> String {
        serde_json::to_string(&self.exp.result()).expect("results serialise")
    }

    /// The safetensors bytes of finished run `run`, dense or pruned to `sparsity`.
    pub fn weights(&self, run: usize, sparsity: Option<f32>) -> Result<Vec<u8>, JsError> {
        Ok(self.exp.safetensors(run, sparsity)?)
    }
}

/// `varlab bench step` in the browser: ms per training step of each optimizer (comma list)
/// on the GPU executor, alternating, with the ratio to SGD; resolves to
/// `{"rows": [{optimizer, ms_per_step, ratio_to_sgd}], "environment": {…}}`. Used by
/// `scripts/bench-browser.mjs`.
#[wasm_bindgen]
pub async fn bench_step(
    model: String,
    dataset: String,
    optimizers: String,
    batch: usize,
    steps: usize,
    rounds: usize,
) -> Result<String, JsError> {
    let kind = DatasetKind::from_name(&dataset).unwrap_or(DatasetKind::Mnist);
    let model = crate::nn::Model::by_name(&model, kind.input(), kind.classes())?;
    let base = Config::default();
    let optims = optimizers
        .split(',')
        .map(|o| crate::experiment::optim_config(&base, o.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = Context::new().await?;
    let rows = crate::bench::step_gpu(&ctx, &model, &optims, batch, steps, rounds).await?;
    Ok(serde_json::json!({
        "rows": rows,
        "environment": {"executor": "gpu", "adapter": ctx.report, "browser": true},
    })
    .to_string())
}
