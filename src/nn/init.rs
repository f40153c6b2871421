//! Seeded initialisation of the flat parameter and state arrays, with the project's one PRNG
//! ([`crate::rng::Rng`]), identical natively and in the browser.
//!
//! Two presets ([`Init`], the config's `init`):
//!
//! - **`pytorch`** (the default, [`InitScheme::Pytorch`]): exactly what PyTorch's modules do
//!   when nobody overrides them. `nn.Linear`/`nn.Conv2d`: weight `kaiming_uniform_(a=√5)`,
//!   which is `U(±1/√fan_in)`, and bias `U(±1/√fan_in)` with the weight's fan-in.
//!   In a transformer (a model with attention) timm's ViT init: every linear (attention,
//!   MLP, head) `trunc_normal_(std=0.02)` with timm's *absolute* bounds ±2 (so, in effect,
//!   `N(0, 0.02²)`), biases 0; the patch-embedding conv keeps PyTorch's default; `pos_embed`
//!   `trunc_normal_(std=0.02)`, `cls_token` `N(0, 1e-6²)`.
//! - **`kaiming-normal`** (the first wave's init): CNN/MLP weights `N(0, 2/fan_in)` (He et
//!   al. 2015, gain √2, `fan_in = in·kh·kw`, the head included); ViT weights, position
//!   embedding and class token a normal of std 0.02 truncated at ±2 *std* (relative;
//!   the std of that draw is ≈ 0.8796·0.02); biases 0.
//!
//! In both: norm γ = 1, β = 0; BatchNorm `running_mean` 0, `running_var` 1,
//! `num_batches_tracked` 0; the alignment gaps of both arrays are 0.
//!
//! Why it matters (METHODS.md, RESULTS.md): `|w|` uniform on `[0, 1/√fan_in]` has variance
//! `1/(12·fan_in)`, so ψ at init is `Σ 12·fan_in`, ~9× larger than with Kaiming-normal, and
//! VAR's effect on the MLP at 98–99 % sparsity shows only from PyTorch's default.
//!
//! **Streams.** Tensor `i` of the parameter table draws from its own generator seeded by
//! mixing `(seed, i)` ([`tensor_rng`]), never from one shared stream. So resizing one tensor
//! (another class count, another input size for the first layer) leaves every other tensor's
//! values unchanged for the same seed; inserting or removing a tensor shifts the indices
//! (and so the draws) of the tensors after it.

use serde::{Deserialize, Serialize};

use super::params::{ParamInfo, ParamTable};
use super::spec::{InitScheme, Model, Op, ParamKind, StateKind};
use crate::rng::Rng;

/// Std of the position embedding (both presets) and the class token (`kaiming-normal`).
pub const EMBED_STD: f32 = 0.02;
/// Std of timm's class token.
pub const CLS_STD: f32 = 1e-6;
/// Std of timm's linear weights (`trunc_normal_(std=.02)`, bounds ±2 absolute).
pub const TIMM_STD: f32 = 0.02;

/// The initialisation preset of a config (`"init"`; CLI `--init`; page key `in`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// PyTorch's (and timm's, for the ViT) module defaults.
    #[default]
    Pytorch,
    /// Kaiming-normal weights and zero biases (the ViT: relative truncated normal).
    KaimingNormal,
}

impl Init {
    /// The names a config accepts, in the order the page lists them.
    pub const NAMES: [&'static str; 2] = ["pytorch", "kaiming-normal"];

    pub fn name(self) -> &'static str {
        match self {
            Init::Pytorch => "pytorch",
            Init::KaimingNormal => "kaiming-normal",
        }
    }
}

impl Model {
    /// Whether the model has attention: then the `pytorch` preset is timm's ViT init.
    pub fn is_transformer(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.op, Op::Attention { .. }))
    }

    /// This model with the preset `init`.
    pub fn with_init(mut self, init: Init) -> Model {
        self.init = match init {
            Init::Pytorch => InitScheme::Pytorch,
            Init::KaimingNormal if self.is_transformer() => {
                InitScheme::TruncNormal { std: EMBED_STD }
            }
            Init::KaimingNormal => InitScheme::KaimingNormal,
        };
        self
    }
}

/// A draw from `N(0, std²)` truncated to the absolute interval `[lo, hi]` (rejection), as
/// timm's `trunc_normal_(std, a, b)`.
pub fn trunc_normal_abs(rng: &mut Rng, std: f32, lo: f32, hi: f32) -> f32 {
    loop {
        let v = std * rng.normal();
        if (lo..=hi).contains(&v) {
            return v;
        }
    }
}

/// `U(−bound, bound)`.
fn uniform(rng: &mut Rng, bound: f32) -> f32 {
    rng.range(-bound, bound)
}

/// The generator of tensor `index` for `seed`: two SplitMix64 mixes, so nearby seeds and
/// indices give unrelated streams.
pub fn tensor_rng(seed: u64, index: usize) -> Rng {
    let a = Rng::new(seed).next_u64();
    Rng::new(Rng::new(a ^ index as u64).next_u64())
}

/// A draw from `N(0, std²)` truncated to `[−2·std, 2·std]` (rejection; ~4.6 % rejected).
pub fn trunc_normal(rng: &mut Rng, std: f32) -> f32 {
    loop {
        let z = rng.normal();
        if z.abs() <= 2.0 {
            return z * std;
        }
    }
}

/// The initial parameters (`model.params().buffer_len` floats) and state
/// (`model.state().buffer_len` floats) for `seed`.
pub fn init(model: &Model, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let table = model.params();
    let mut params = vec![0.0f32; table.buffer_len];
    let transformer = model.is_transformer();
    for (i, p) in table.entries.iter().enumerate() {
        let out = &mut params[p.range()];
        let mut rng = tensor_rng(seed, i);
        match model.init {
            InitScheme::Pytorch => pytorch_draw(model, &table, p, transformer, out, &mut rng),
            InitScheme::KaimingNormal => first_wave_draw(p, None, out, &mut rng),
            InitScheme::TruncNormal { std } => first_wave_draw(p, Some(std), out, &mut rng),
        }
    }
    let table = model.state();
    let mut state = vec![0.0f32; table.buffer_len];
    for s in &table.entries {
        let value = match s.kind {
            StateKind::RunningVar => 1.0,
            StateKind::RunningMean | StateKind::NumBatchesTracked => 0.0,
        };
        state[s.range()].fill(value);
    }
    (params, state)
}

/// One tensor under the `pytorch` preset (module docs).
fn pytorch_draw(
    model: &Model,
    table: &ParamTable,
    p: &ParamInfo,
    transformer: bool,
    out: &mut [f32],
    rng: &mut Rng,
) {
    // The fan-in of the node's weight (a bias shares its weight's bound).
    let fan_in = table
        .of_node(p.node)
        .find(|w| w.kind == ParamKind::Weight)
        .map_or(1, |w| w.fan_in().max(1));
    let bound = 1.0 / (fan_in as f64).sqrt() as f32;
    let timm = transformer && !matches!(model.nodes[p.node].op, Op::PatchEmbed { .. });
    match p.kind {
        ParamKind::NormScale => out.fill(1.0),
        ParamKind::NormShift => out.fill(0.0),
        ParamKind::Bias if timm => out.fill(0.0),
        ParamKind::Weight if timm => out
            .iter_mut()
            .for_each(|v| *v = trunc_normal_abs(rng, TIMM_STD, -2.0, 2.0)),
        ParamKind::Weight | ParamKind::Bias => {
            out.iter_mut().for_each(|v| *v = uniform(rng, bound))
        }
        ParamKind::Embedding => out
            .iter_mut()
            .for_each(|v| *v = trunc_normal_abs(rng, EMBED_STD, -2.0, 2.0)),
        ParamKind::Token => out.iter_mut().for_each(|v| *v = CLS_STD * rng.normal()),
    }
}

/// One tensor under the first wave's `kaiming-normal` preset: weights `N(0, 2/fan_in)`, or
/// the relatively truncated normal of std `trunc` (the ViT); biases 0.
fn first_wave_draw(p: &ParamInfo, trunc: Option<f32>, out: &mut [f32], rng: &mut Rng) {
    match (p.kind, trunc) {
        (ParamKind::Bias | ParamKind::NormShift, _) => out.fill(0.0),
        (ParamKind::NormScale, _) => out.fill(1.0),
        (ParamKind::Weight, None) => {
            let std = (2.0 / p.fan_in().max(1) as f64).sqrt() as f32;
            out.iter_mut().for_each(|v| *v = std * rng.normal());
        }
        (ParamKind::Weight, Some(std)) => out.iter_mut().for_each(|v| *v = trunc_normal(rng, std)),
        (ParamKind::Embedding | ParamKind::Token, _) => out
            .iter_mut()
            .for_each(|v| *v = trunc_normal(rng, EMBED_STD)),
    }
}

impl Model {
    /// [`init`] for this model.
    pub fn init_params(&self, seed: u64) -> (Vec<f32>, Vec<f32>) {
        init(self, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_across_indices_and_seeds() {
        let a = tensor_rng(1, 0).next_u64();
        assert_ne!(a, tensor_rng(1, 1).next_u64());
        assert_ne!(a, tensor_rng(2, 0).next_u64());
        assert_eq!(a, tensor_rng(1, 0).next_u64());
    }

    #[test]
    fn trunc_normal_stays_within_two_std() {
        let mut r = Rng::new(3);
        assert!((0..10000).all(|_| trunc_normal(&mut r, 0.5).abs() <= 1.0));
    }
}
