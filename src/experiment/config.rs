//! The one serialisable description of an experiment: what the page keeps in its URL and
//! exports, what `varlab … --config FILE` reads, and what every result carries.
//!
//! JSON, `version` 1. Every field has a default ([`Config::default`]), so a file may give
//! only what it changes; an unknown field is refused (serde `deny_unknown_fields`), and
//! [`Config::validate`] refuses out-of-range values with a sentence naming the field.

use serde::{Deserialize, Serialize};

pub use crate::nn::Init;
use crate::nn::{Model, SpecError, MODELS};
use crate::train::RunConfig;

/// The version this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// The optimizer names a config accepts, in the order the page lists them.
pub const OPTIMIZER_NAMES: [&str; 10] = crate::optim::OptimKind::NAMES;

/// The default λψ₀ (see [`Config::lambda_psi0`]).
pub const DEFAULT_LAMBDA_PSI0: f32 = 1.4;

/// Which dataset to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Mnist,
    Cifar10,
    Cifar100,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 3] = [
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];
    /// The names a config, the CLI and the page use, in [`DatasetKind::ALL`]'s order.
    pub const NAMES: [&'static str; 3] = ["mnist", "cifar10", "cifar100"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind named `name` ([`DatasetKind::NAMES`]).
    pub fn from_name(name: &str) -> Option<DatasetKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How sentences name it.
    pub fn display(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
        }
    }

    /// The image shape `[C, H, W]` the models are built for.
    pub fn input(self) -> [usize; 3] {
        match self {
            DatasetKind::Mnist => [1, 28, 28],
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => [3, 32, 32],
        }
    }

    /// The class count (the models' output size).
    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => crate::data::cifar100::CLASSES,
            _ => 10,
        }
    }

    /// The kind of a parsed dataset: one channel is MNIST, 100 classes CIFAR-100.
    pub fn of(ds: &crate::data::Dataset) -> DatasetKind {
        match (ds.channels, ds.classes) {
            (1, _) => DatasetKind::Mnist,
            (_, 100) => DatasetKind::Cifar100,
            _ => DatasetKind::Cifar10,
        }
    }
}

/// The learning-rate schedule after warm-up (a run's setting: see [`crate::train`]).
pub use crate::train::Schedule;

/// Global (one threshold over all prunable weights) or per-layer (each tensor loses the
/// same fraction) magnitude pruning; CrAM's compression uses the same choice.
pub use crate::prune::Scope;

/// Which executor trains: the GPU when one works (`auto`), or the one named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorChoice {
    Auto,
    Gpu,
    Cpu,
}

/// Everything an experiment needs besides the data bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub version: u32,
    pub dataset: DatasetKind,
    /// The first `train_size` training images and `test_size` test images are used.
    pub train_size: usize,
    pub test_size: usize,
    /// Random crop (padding 4) and horizontal flip of training images (CIFAR-10).
    pub augment: bool,
    pub model: String,
    /// The initialisation preset: `pytorch` (PyTorch's module defaults, timm's for the ViT;
    /// the default) or `kaiming-normal` (the first wave's). VAR's effect on the MLP shows
    /// from the first and not from the second (RESULTS.md).
    pub init: Init,
    /// Trained one after another, each from the same initial weights per seed.
    pub optimizers: Vec<String>,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    pub schedule: Schedule,
    /// Linear warm-up from 0 over this many epochs (may be fractional). With PyTorch's
    /// default init none is needed (lr 0.05: MLP 94.0 %, LeNet-5 96.3 % dense, every seed
    /// trains); Kaiming-normal LeNet-5 at lr 0.05 needed 0.3 (RESULTS.md).
    pub warmup_epochs: f32,
    /// VAR's λ. Ignored (and overwritten with the derived value when the experiment starts)
    /// while `lambda_psi0` is set.
    pub lambda: f32,
    /// VAR's λ as λψ₀, where ψ₀ is ψ of the model's initial weights for the first seed:
    /// λ = `lambda_psi0` / ψ₀, so one number means the same on every model and init
    /// (ψ₀ is ≈ 1.4e4 for the MLP with PyTorch's init, 1.6e3 with Kaiming-normal, ≈ 1e5
    /// for the ViT). `null` uses `lambda` as given. The default 1.4 is the λ = 1e-4 of the
    /// MLP measurement (METHODS.md: λψ₀ ≈ 0.3–1.5 works).
    pub lambda_psi0: Option<f32>,
    pub lambda_l1: f32,
    pub lambda_hoyer: f32,
    /// SAM's and CrAM's ρ.
    pub rho: f32,
    /// CrAM's sparsity (one value) or CrAM-Multi's set (several, one drawn per step).
    pub cram_sparsity: Vec<f32>,
    pub epochs: usize,
    pub batch: usize,
    /// The first seed; runs use `seed, seed + 1, …, seed + seeds − 1`.
    pub seed: u64,
    pub seeds: usize,
    /// The sparsities of the one-shot pruning sweep (fractions of the prunable weights).
    pub sparsities: Vec<f32>,
    pub scope: Scope,
    pub keep_first: bool,
    pub keep_last: bool,
    /// Training images used to re-estimate batch-norm statistics after pruning (0: off).
    pub bn_recal: usize,
    pub executor: ExecutorChoice,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            dataset: DatasetKind::Mnist,
            train_size: 10_000,
            test_size: 2_000,
            augment: false,
            model: "lenet5".into(),
            init: Init::Pytorch,
            optimizers: vec!["sgd".into(), "var".into()],
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            lambda: 1e-4,
            lambda_psi0: Some(DEFAULT_LAMBDA_PSI0),
            lambda_l1: 1e-5,
            lambda_hoyer: 1e-4,
            rho: 0.05,
            cram_sparsity: vec![0.5, 0.7, 0.9],
            epochs: 2,
            batch: 64,
            seed: 0,
            seeds: 1,
            sparsities: vec![0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
            scope: Scope::Global,
            keep_first: false,
            keep_last: false,
            bn_recal: 0,
            executor: ExecutorChoice::Auto,
        }
    }
}

/// A config that cannot run, as one sentence naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("The config is not valid JSON for varlab: {0}")]
    Json(String),
    #[error("The config has version {0}; this build of varlab reads version {CONFIG_VERSION}.")]
    Version(u32),
    #[error("'{field}' must be {range}; got {value}.")]
    Range {
        field: &'static str,
        range: String,
        value: String,
    },
    #[error("Unknown model '{0}'; the models are {models}.", models = MODELS.join(", "))]
    Model(String),
    #[error("Unknown optimizer '{0}'; the optimizers are {names}.", names = OPTIMIZER_NAMES.join(", "))]
    Optimizer(String),
}

impl Config {
    /// Parses and validates a config JSON. A file that gives `lambda` but not `lambda_psi0`
    /// (every file written before λψ₀ existed) means that λ: its `lambda_psi0` is `null`.
    /// One that gives `lambda` but neither `lambda_psi0` nor `init` was written before
    /// `init` existed, when every model trained from Kaiming-normal: its `init` is
    /// `kaiming-normal`, so it reruns as it ran.
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        let has = |key: &str| value.as_object().is_some_and(|o| o.contains_key(key));
        let absolute_lambda = has("lambda") && !has("lambda_psi0");
        let before_init = absolute_lambda && !has("init");
        let mut config: Config =
            serde_json::from_value(value).map_err(|e| ConfigError::Json(e.to_string()))?;
        if absolute_lambda {
            config.lambda_psi0 = None;
        }
        if before_init {
            config.init = Init::KaimingNormal;
        }
        config.validate()?;
        Ok(config)
    }

    /// What one run needs of this config (the optimizer's settings apart).
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            model: self.model.clone(),
            init: self.init,
            batch: self.batch,
            epochs: self.epochs,
            lr: self.lr,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            augment: self.augment,
        }
    }

    /// The model of this config for images `[C, H, W]` and `classes`, with its `init`.
    pub fn build_model(&self, input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
        self.run_config().build_model(input, classes)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serialises")
    }

    /// A fingerprint of every field (FNV-1a, 64 bits, of the compact JSON), as 16 hex
    /// digits: two configs with the same hash train the same runs. Cluster jobs use it to
    /// keep a finished result and to match results to their plan.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).expect("a config always serialises");
        let h = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{h:016x}")
    }

    /// Refuses what cannot run or makes no sense, naming the field and its valid range
    /// (the limits are [`super::schema::FIELDS`]'s).
    pub fn validate(&self) -> Result<(), ConfigError> {
        use super::schema::field_of as f;
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::Version(self.version));
        }
        f("train_size").check_int(self.train_size as u64)?;
        f("test_size").check_int(self.test_size as u64)?;
        if !MODELS.contains(&self.model.as_str()) {
            return Err(ConfigError::Model(self.model.clone()));
        }
        let optimizers = f("optimizers");
        if self.optimizers.is_empty() || self.optimizers.len() > optimizers.max_items.unwrap_or(0) {
            return Err(ConfigError::Range {
                field: optimizers.key,
                range: optimizers.range_text(),
                value: format!("{:?}", self.optimizers),
            });
        }
        if let Some(bad) = self
            .optimizers
            .iter()
            .find(|o| !OPTIMIZER_NAMES.contains(&o.as_str()))
        {
            return Err(ConfigError::Optimizer(bad.clone()));
        }
        for (key, value) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
            ("warmup_epochs", self.warmup_epochs),
            ("lambda", self.lambda),
            ("lambda_l1", self.lambda_l1),
            ("lambda_hoyer", self.lambda_hoyer),
            ("rho", self.rho),
        ] {
            f(key).check_f32(value)?;
        }
        if let Some(x) = self.lambda_psi0 {
            f("lambda_psi0").check_f32(x)?;
        }
        f("cram_sparsity").check_list(&self.cram_sparsity)?;
        f("epochs").check_int(self.epochs as u64)?;
        f("batch").check_int(self.batch as u64)?;
        f("seeds").check_int(self.seeds as u64)?;
        f("seed").check_int(self.seed)?;
        f("sparsities").check_list(&self.sparsities)?;
        f("bn_recal").check_int(self.bn_recal as u64)?;
        Ok(())
    }

    /// The seeds of the runs, in order.
    pub fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|i| self.seed + i).collect()
    }

    /// The runs of the experiment in the one order every front end uses (seed by seed, each
    /// seed's optimizers in the config's order): run `i` of a result, an event, a worker or a
    /// cluster job is entry `i` here.
    pub fn run_plan(&self) -> Vec<PlannedRun> {
        self.seed_list()
            .into_iter()
            .flat_map(|seed| {
                self.optimizers.iter().map(move |o| PlannedRun {
                    optimizer: o.clone(),
                    seed,
                })
            })
            .collect()
    }
}

/// One optimizer × seed of an experiment (see [`Config::run_plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub optimizer: String,
    pub seed: u64,
}
