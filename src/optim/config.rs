//! What an optimizer is asked to do: [`OptimConfig`], its kind and the checks that refuse
//! values no training run can use.

use std::fmt;
use std::str::FromStr;

/// The optimizers the lab compares (METHODS.md): plain SGD, SGD with VAR's regulariser,
/// SAM and CrAM (two forward+backward passes per step), their VAR combinations, the
/// ℓ1 and Hoyer-square regularisers, and S²-SAM (SAM with one pass per step, perturbing by
/// the previous step's gradient) alone and with VAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OptimKind {
    #[serde(rename = "sgd")]
    Sgd,
    #[serde(rename = "var")]
    Var,
    #[serde(rename = "sam")]
    Sam,
    #[serde(rename = "cram")]
    Cram,
    #[serde(rename = "sam+var")]
    SamVar,
    #[serde(rename = "cram+var")]
    CramVar,
    #[serde(rename = "l1")]
    L1,
    #[serde(rename = "hoyer")]
    Hoyer,
    #[serde(rename = "s2sam")]
    S2Sam,
    #[serde(rename = "s2sam+var")]
    S2SamVar,
}

impl OptimKind {
    /// Every optimizer's name, in [`OptimKind::ALL`]'s order (the order the page lists).
    pub const NAMES: [&'static str; 10] = {
        let mut names = [""; 10];
        let mut i = 0;
        while i < 10 {
            names[i] = OptimKind::ALL[i].name();
            i += 1;
        }
        names
    };

    pub const ALL: [OptimKind; 10] = [
        OptimKind::Sgd,
        OptimKind::Var,
        OptimKind::Sam,
        OptimKind::Cram,
        OptimKind::SamVar,
        OptimKind::CramVar,
        OptimKind::L1,
        OptimKind::Hoyer,
        OptimKind::S2Sam,
        OptimKind::S2SamVar,
    ];

    /// The name used on the command line, in JSON and on the page.
    pub const fn name(self) -> &'static str {
        match self {
            OptimKind::Sgd => "sgd",
            OptimKind::Var => "var",
            OptimKind::Sam => "sam",
            OptimKind::Cram => "cram",
            OptimKind::SamVar => "sam+var",
            OptimKind::CramVar => "cram+var",
            OptimKind::L1 => "l1",
            OptimKind::Hoyer => "hoyer",
            OptimKind::S2Sam => "s2sam",
            OptimKind::S2SamVar => "s2sam+var",
        }
    }

    /// Adds VAR's term λ·∂ψ/∂w to the gradient.
    pub fn uses_var(self) -> bool {
        matches!(
            self,
            OptimKind::Var | OptimKind::SamVar | OptimKind::CramVar | OptimKind::S2SamVar
        )
    }

    /// SAM's perturbation w + ρ·g/‖g‖ and a second pass.
    pub fn is_sam(self) -> bool {
        matches!(self, OptimKind::Sam | OptimKind::SamVar)
    }

    /// S²-SAM's one-pass perturbation w + ρ·g₋₁/‖g₋₁‖ by the previous step's gradient
    /// (see [`crate::optim::cpu`]).
    pub fn is_s2sam(self) -> bool {
        matches!(self, OptimKind::S2Sam | OptimKind::S2SamVar)
    }

    /// CrAM's compressed perturbation C_s(w + ρ·g) and a second pass.
    pub fn is_cram(self) -> bool {
        matches!(self, OptimKind::Cram | OptimKind::CramVar)
    }

    /// Forward+backward passes per step: 2 for SAM and CrAM kinds, else 1.
    pub fn passes(self) -> usize {
        if self.is_sam() || self.is_cram() {
            2
        } else {
            1
        }
    }

    /// Whether the step needs the per-tensor sums of the weights (VAR's m and V, Hoyer's
    /// Σ|w| and Σw²) before the update.
    pub fn needs_weight_stats(self) -> bool {
        self.uses_var() || self == OptimKind::Hoyer
    }
}

impl fmt::Display for OptimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimKind {
    type Err = OptimError;
    fn from_str(s: &str) -> Result<Self, OptimError> {
        OptimKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| OptimError::UnknownKind(s.to_string()))
    }
}

/// Where CrAM's compression picks its threshold: the pruning scope (see [`crate::prune`]).
pub use crate::prune::Scope;

impl FromStr for Scope {
    type Err = OptimError;
    fn from_str(s: &str) -> Result<Self, OptimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" => Ok(Scope::Global),
            "layer" => Ok(Scope::Layer),
            _ => Err(OptimError::UnknownScope(s.to_string())),
        }
    }
}

/// Most sparsities CrAM-Multi samples from.
pub const MAX_CRAM_SPARSITIES: usize = 16;

/// Every setting of an optimizer; the learning rate is not here (a schedule gives it per
/// step). Ranges are those [`OptimConfig::validate`] enforces.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OptimConfig {
    pub kind: OptimKind,
    /// Heavy-ball momentum μ, default 0.9, in [0, 1).
    pub momentum: f32,
    /// Coupled weight decay (added to the gradient, as PyTorch's SGD), default 5e-4, in [0, 1).
    pub weight_decay: f32,
    pub nesterov: bool,
    /// VAR's λ, default 5e-5, in [0, 1000]. λ·ψ at initialisation near 0.3 … 1.4 worked on
    /// the small models of METHODS.md.
    pub lambda: f32,
    /// ℓ1's λ₁ (penalty λ₁·Σ|w|, a pull of λ₁ per weight toward 0), default 5e-5, in [0, 1].
    pub lambda_l1: f32,
    /// Hoyer-square's λ_h (penalty λ_h·Σ_ℓ (Σ|w|)²/Σw², which is about 0.64·n per Gaussian
    /// layer of n weights), default 1e-5, in [0, 1].
    pub lambda_hoyer: f32,
    /// SAM/CrAM/S²-SAM's ρ, default 0.05, in [0, 10].
    pub rho: f32,
    /// CrAM's sparsity: one value is fixed, several are CrAM-Multi (one drawn per step).
    /// Between 1 and [`MAX_CRAM_SPARSITIES`] values, each in [0, 1); default {0.5, 0.7, 0.9}.
    pub cram_sparsity: Vec<f32>,
    pub cram_scope: Scope,
    /// CrAM+: the update uses ∇L(w) + ∇L(C_s(w + ρ∇L(w))).
    pub cram_plus: bool,
    /// false: VAR/ℓ1/Hoyer act on the prunable tensors only ([`crate::nn::ParamInfo::prunable`]);
    /// true: on every tensor.
    pub regularize_all: bool,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimKind::Sgd,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            lambda: 5e-5,
            lambda_l1: 5e-5,
            lambda_hoyer: 1e-5,
            rho: 0.05,
            cram_sparsity: vec![0.5, 0.7, 0.9],
            cram_scope: Scope::Global,
            cram_plus: false,
            regularize_all: false,
        }
    }
}

/// A refused optimizer setting, as one sentence naming it, its value and what is allowed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OptimError {
    #[error("{name} must be a finite number in {range}; got {value}.")]
    OutOfRange {
        name: &'static str,
        range: &'static str,
        value: f32,
    },
    #[error("cram_sparsity must list between 1 and {MAX_CRAM_SPARSITIES} sparsities; got {0}.")]
    SparsityCount(usize),
    #[error("Unknown optimizer '{0}'; expected one of {names}.", names = OptimKind::NAMES.join(", "))]
    UnknownKind(String),
    #[error("The weight mask has {got} values but the parameter array has {expected}.")]
    MaskLength { expected: usize, got: usize },
    #[error("Unknown CrAM scope '{0}'; expected global or layer.")]
    UnknownScope(String),
}

impl OptimConfig {
    /// Refuses NaN, infinite, negative and absurd values, naming the first bad parameter.
    pub fn validate(&self) -> Result<(), OptimError> {
        let checks: [(&'static str, f32, &'static str, bool); 6] = [
            ("momentum", self.momentum, "[0, 1)", self.momentum < 1.0),
            (
                "weight_decay",
                self.weight_decay,
                "[0, 1)",
                self.weight_decay < 1.0,
            ),
            (
                "λ (lambda)",
                self.lambda,
                "[0, 1000]",
                self.lambda <= 1000.0,
            ),
            (
                "λ₁ (lambda_l1)",
                self.lambda_l1,
                "[0, 1]",
                self.lambda_l1 <= 1.0,
            ),
            (
                "λ_h (lambda_hoyer)",
                self.lambda_hoyer,
                "[0, 1]",
                self.lambda_hoyer <= 1.0,
            ),
            ("ρ (rho)", self.rho, "[0, 10]", self.rho <= 10.0),
        ];
        let sparsities = self
            .cram_sparsity
            .iter()
            .map(|&s| ("cram_sparsity", s, "[0, 1)", s < 1.0));
        for (name, value, range, below_max) in checks.into_iter().chain(sparsities) {
            if !(value.is_finite() && value >= 0.0 && below_max) {
                return Err(OptimError::OutOfRange { name, range, value });
            }
        }
        let n = self.cram_sparsity.len();
        if n == 0 || n > MAX_CRAM_SPARSITIES {
            return Err(OptimError::SparsityCount(n));
        }
        Ok(())
    }
}
