//! Seeded initialisation of the flat parameter and state arrays, with the project's one PRNG
//! ([`crate::rng::Rng`]), identical natively and in the browser.
//!
//! - Weight matrices: [`InitScheme::KaimingNormal`] (CNNs, MLP) draws `N(0, 2/fan_in)`
//!   (He et al. 2015, gain √2, `fan_in = in·kh·kw`, the head included);
//!   [`InitScheme::TruncNormal`] (ViT) draws a normal of the given std (0.02) truncated at
//!   ±2 std by rejection. Note the truncation is relative: timm's `trunc_normal_(std=.02)`
//!   truncates at the absolute ±2, which for std 0.02 is no truncation at all. The
//!   standard deviation of the truncated draw is ≈ 0.8796·std.
//! - Position embedding and class token: the truncated normal (std 0.02) in either scheme.
//! - Biases 0 (PyTorch's default draws them uniformly; zero is the common explicit choice);
//!   norm γ = 1, β = 0; BatchNorm `running_mean` 0, `running_var` 1, `num_batches_tracked` 0.
//! - The alignment gaps of both arrays are 0.
//!
//! **Streams.** Tensor `i` of the parameter table draws from its own generator seeded by
//! mixing `(seed, i)` ([`tensor_rng`]), never from one shared stream. So resizing one tensor
//! (another class count, another input size for the first layer) leaves every other tensor's
//! values unchanged for the same seed; inserting or removing a tensor shifts the indices
//! (and so the draws) of the tensors after it.

use super::spec::{InitScheme, Model, ParamKind, StateKind};
use crate::rng::Rng;

/// Std of the position embedding and class token.
pub const EMBED_STD: f32 = 0.02;

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
    for (i, p) in table.entries.iter().enumerate() {
        let out = &mut params[p.range()];
        let mut rng = tensor_rng(seed, i);
        match (p.kind, model.init) {
            (ParamKind::Bias | ParamKind::NormShift, _) => out.fill(0.0),
            (ParamKind::NormScale, _) => out.fill(1.0),
            (ParamKind::Weight, InitScheme::KaimingNormal) => {
                let std = (2.0 / p.fan_in().max(1) as f64).sqrt() as f32;
                out.iter_mut().for_each(|v| *v = std * rng.normal());
            }
            (ParamKind::Weight, InitScheme::TruncNormal { std }) => {
                out.iter_mut()
                    .for_each(|v| *v = trunc_normal(&mut rng, std));
            }
            (ParamKind::Embedding | ParamKind::Token, _) => {
                out.iter_mut()
                    .for_each(|v| *v = trunc_normal(&mut rng, EMBED_STD));
            }
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
