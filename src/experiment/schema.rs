//! The config's one table of facts: every field's type, limits, choices, short URL key and
//! help text, and the optimizers with the fields they read. [`Config::validate`] checks
//! against it, the CLI prints it (`varlab config --schema`), and the page builds its form,
//! URL keys and corrections from it (wasm `config_schema()`), so a limit or an optimizer is
//! changed in one place.

use serde::Serialize;
use serde_json::{json, Value};

use super::config::{Config, ConfigError, OPTIMIZER_NAMES};
use crate::nn::MODELS;

/// What kind of value a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A whole number in `[min, max]`.
    Int,
    /// A finite number in `[min, max]` (`null` too when `nullable`).
    Float,
    Bool,
    /// One of `options`.
    Enum,
    /// A non-empty subset of `options`, in order, at most `max_items`.
    Set,
    /// 1 to `max_items` numbers in `[min, max]`.
    List,
}

/// One config field.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Field {
    pub key: &'static str,
    /// The page's URL key.
    pub short: &'static str,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub options: &'static [&'static str],
    /// Where the field belongs: data, model, hyper, train, prune or engine.
    pub group: &'static str,
    /// A short name for a form.
    pub label: &'static str,
    /// One sentence of help (the CLI's and the page's).
    pub help: &'static str,
}

const fn field(key: &'static str, short: &'static str, kind: Kind, group: &'static str) -> Field {
    Field {
        key,
        short,
        kind,
        min: None,
        max: None,
        max_items: None,
        nullable: false,
        options: &[],
        group,
        label: "",
        help: "",
    }
}

impl Field {
    const fn range(self, min: f64, max: f64) -> Field {
        Field {
            min: Some(min),
            max: Some(max),
            ..self
        }
    }
    const fn items(self, n: usize) -> Field {
        Field {
            max_items: Some(n),
            ..self
        }
    }
    const fn options(self, options: &'static [&'static str]) -> Field {
        Field { options, ..self }
    }
    const fn text(self, label: &'static str, help: &'static str) -> Field {
        Field {
            label,
            help,
            ..self
        }
    }
    const fn nullable(self) -> Field {
        Field {
            nullable: true,
            ..self
        }
    }
}

/// The largest whole number a JSON reader (JavaScript) holds exactly: the seeds' limit.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

use Kind::*;

/// Every field, in the order the page lists (and corrects) them.
pub const FIELDS: &[Field] = &[
    field("dataset", "ds", Enum, "data")
        .options(&super::config::DatasetKind::NAMES)
        .text(
            "Data set",
            "MNIST (1×28×28), CIFAR-10 or CIFAR-100 (3×32×32; CIFAR-100's 100 fine labels).",
        ),
    field("train_size", "tr", Int, "data").range(1.0, 1e6).text(
        "Training images",
        "The first this many training images are used.",
    ),
    field("test_size", "te", Int, "data")
        .range(1.0, 1e6)
        .text("Test images", "The first this many test images are used."),
    field("augment", "au", Bool, "data").text(
        "Augment (random crop and flip)",
        "Random crop (padding 4) and horizontal flip of training images.",
    ),
    field("model", "m", Enum, "model")
        .options(&MODELS)
        .text("Model", "The network to train."),
    field("init", "in", Enum, "model")
        .options(&["pytorch", "kaiming-normal"])
        .text(
            "Initialisation",
            "PyTorch's module defaults (timm's for the ViT) or Kaiming-normal.",
        ),
    field("optimizers", "o", Set, "model")
        .options(&OPTIMIZER_NAMES)
        .items(16)
        .text(
            "Optimizers to compare",
            "Each is trained from the same initial weights per seed.",
        ),
    field("lr", "lr", Float, "hyper")
        .range(1e-6, 10.0)
        .text("Learning rate", "The peak learning rate."),
    field("momentum", "mo", Float, "hyper")
        .range(0.0, 0.999)
        .text("Momentum", "SGD's momentum."),
    field("weight_decay", "wd", Float, "hyper")
        .range(0.0, 0.1)
        .text("Weight decay", "L2 weight decay, added to the gradient."),
    field("nesterov", "ne", Bool, "hyper").text("Nesterov momentum", "Nesterov's momentum."),
    field("schedule", "sc", Enum, "hyper")
        .options(&["cosine", "step", "constant"])
        .text("Learning-rate schedule", "After the warm-up."),
    field("lambda", "l", Float, "hyper").range(0.0, 1.0).text(
        "λ (VAR strength)",
        "VAR's λ, used as given when λψ₀ is blank.",
    ),
    field("lambda_psi0", "lp", Float, "hyper")
        .range(0.0, 100.0)
        .nullable()
        .text(
            "λψ₀ (λ × ψ at init)",
            "VAR's λ as λψ₀: λ = λψ₀ / ψ of the first seed's initial weights (blank: use λ).",
        ),
    field("lambda_l1", "l1", Float, "hyper")
        .range(0.0, 1.0)
        .text("λ ℓ1", "The ℓ1 penalty's weight."),
    field("lambda_hoyer", "lh", Float, "hyper")
        .range(0.0, 1.0)
        .text("λ Hoyer", "The Hoyer-square penalty's weight."),
    field("rho", "r", Float, "hyper").range(0.0, 10.0).text(
        "ρ (SAM/CrAM radius)",
        "SAM's and CrAM's perturbation radius.",
    ),
    field("cram_sparsity", "cs", List, "hyper")
        .range(0.0, 0.9999)
        .items(16)
        .text(
            "CrAM sparsity set",
            "CrAM's sparsity, or several for CrAM-Multi (one drawn per step).",
        ),
    field("epochs", "e", Int, "train")
        .range(1.0, 10_000.0)
        .text("Epochs", "Passes over the training images."),
    field("warmup_epochs", "wu", Float, "train")
        .range(0.0, 1000.0)
        .text(
            "Warm-up epochs",
            "Linear warm-up of the learning rate from 0.",
        ),
    field("batch", "b", Int, "train")
        .range(1.0, 4096.0)
        .text("Batch size", "Images per step."),
    field("seed", "s", Int, "train")
        .range(0.0, MAX_SAFE_INTEGER)
        .text("Seed", "The first seed; runs use seed, seed + 1, …"),
    field("seeds", "n", Int, "train").range(1.0, 64.0).text(
        "Seeds per optimizer",
        "Runs per optimizer, for the paired statistics.",
    ),
    field("sparsities", "sp", List, "prune")
        .range(0.0, 0.9999)
        .items(32)
        .text(
            "Sparsities to test",
            "Fractions of the prunable weights pruned one-shot.",
        ),
    field("scope", "sco", Enum, "prune")
        .options(&["global", "layer"])
        .text(
            "Pruning scope",
            "One magnitude threshold over all prunable weights, or one per layer.",
        ),
    field("keep_first", "kf", Bool, "prune")
        .text("Keep the first layer dense", "Never prune the first layer."),
    field("keep_last", "kl", Bool, "prune")
        .text("Keep the last layer dense", "Never prune the last layer."),
    field("bn_recal", "bn", Int, "prune")
        .range(0.0, 100_000.0)
        .text(
            "BN re-calibration images",
            "Training images used to re-estimate BatchNorm statistics after pruning (0: off).",
        ),
    field("executor", "x", Enum, "engine")
        .options(&["auto", "gpu", "cpu"])
        .text(
            "Executor",
            "The faster of the GPU and the CPU here, measured before the first run (auto), or the one named.",
        ),
];

/// The field named `key`.
pub fn field_of(key: &str) -> &'static Field {
    FIELDS
        .iter()
        .find(|f| f.key == key)
        .unwrap_or_else(|| panic!("'{key}' is not a config field"))
}

impl Field {
    /// The sentence part a [`ConfigError::Range`] gives: "a whole number from 1 to 4096".
    pub fn range_text(&self) -> String {
        let (lo, hi) = (self.min.unwrap_or(0.0), self.max.unwrap_or(0.0));
        match self.kind {
            Int => format!("a whole number from {lo} to {hi}"),
            Float if self.nullable => format!("a number in [{lo}, {hi}] (or null)"),
            Float => format!("a number in [{lo}, {hi}]"),
            List => format!(
                "a list of 1 to {} numbers in [{lo}, {hi}]",
                self.max_items.unwrap_or(0)
            ),
            Set => format!(
                "a list of 1 to {} of {}",
                self.max_items.unwrap_or(0),
                self.options.join(", ")
            ),
            Bool | Enum => format!("one of {}", self.options.join(", ")),
        }
    }

    fn refuse(&self, value: impl std::fmt::Display) -> ConfigError {
        ConfigError::Range {
            field: self.key,
            range: self.range_text(),
            value: value.to_string(),
        }
    }

    /// `v` within the field's whole-number range.
    pub fn check_int(&self, v: u64) -> Result<(), ConfigError> {
        let ok = (v as f64) >= self.min.unwrap_or(0.0) && (v as f64) <= self.max.unwrap_or(0.0);
        ok.then_some(()).ok_or_else(|| self.refuse(v))
    }

    /// `v` finite and within the field's range (compared as f32, the config's type).
    pub fn check_f32(&self, v: f32) -> Result<(), ConfigError> {
        let ok = v.is_finite() && self.contains(v);
        ok.then_some(()).ok_or_else(|| self.refuse(v))
    }

    /// 1 to `max_items` values, each finite and within the range.
    pub fn check_list(&self, v: &[f32]) -> Result<(), ConfigError> {
        let ok = !v.is_empty()
            && v.len() <= self.max_items.unwrap_or(0)
            && v.iter().all(|&x| x.is_finite() && self.contains(x));
        ok.then_some(())
            .ok_or_else(|| self.refuse(format!("{v:?}")))
    }

    fn contains(&self, v: f32) -> bool {
        v >= self.min.unwrap_or(0.0) as f32 && v <= self.max.unwrap_or(0.0) as f32
    }
}

/// The optimizers with their display names and the config fields each reads besides the
/// shared ones (lr, momentum, weight decay, Nesterov).
pub fn optimizers() -> Value {
    let params = |name: &str| -> &[&str] {
        match name {
            "var" => &["lambda", "lambda_psi0"],
            "sam" | "s2sam" => &["rho"],
            "cram" => &["rho", "cram_sparsity", "scope"],
            "sam+var" | "s2sam+var" => &["rho", "lambda", "lambda_psi0"],
            "cram+var" => &["rho", "cram_sparsity", "scope", "lambda", "lambda_psi0"],
            "l1" => &["lambda_l1"],
            "hoyer" => &["lambda_hoyer"],
            _ => &[],
        }
    };
    OPTIMIZER_NAMES
        .iter()
        .map(|&name| {
            json!({
                "name": name,
                "display": super::stats::display_name(name),
                "params": params(name),
            })
        })
        .collect()
}

/// The whole schema as JSON: the fields with their defaults (from [`Config::default`]),
/// the optimizers, the model names, and the sizes of the built-in datasets.
pub fn schema() -> Value {
    // Through text, so that f32 defaults keep their shortest form (0.05, not 0.0500000007).
    let text = serde_json::to_string(&Config::default()).expect("a config serialises");
    let defaults: Value = serde_json::from_str(&text).expect("valid JSON");
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).expect("a field serialises");
            v["default"] = defaults[f.key].clone();
            v
        })
        .collect();
    json!({
        "version": super::config::CONFIG_VERSION,
        "fields": fields,
        "optimizers": optimizers(),
        "models": MODELS,
        "datasets": {
            "mnist": {"train": 60000, "test": 10000},
            "cifar10": {"train": 50000, "test": 10000},
            "cifar100": {"train": 50000, "test": 10000},
        },
    })
}
