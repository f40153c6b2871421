//! CrAM's shared pieces, used by the CPU and the GPU optimizer alike: the per-step
//! sparsity of CrAM-Multi, the element ranges CrAM compresses, and the rank per range.

use super::config::Scope;
use crate::nn::ParamTable;
use crate::ops::select::count_for_sparsity;
use crate::rng::Rng;

/// CrAM-Multi's per-step choice: the configured sparsities drawn uniformly with a seeded
/// RNG (one value is used as is, without a draw). The GPU optimizer uses the same sampler,
/// so both see the same sequence for the same seed.
#[derive(Clone, Debug)]
pub struct SparsitySampler {
    values: Vec<f32>,
    rng: Rng,
}

impl SparsitySampler {
    pub fn new(values: &[f32], seed: u64) -> SparsitySampler {
        SparsitySampler {
            values: values.to_vec(),
            rng: Rng::new(seed),
        }
    }

    /// This step's sparsity.
    pub fn draw(&mut self) -> f32 {
        match self.values.len() {
            0 => 0.0,
            1 => self.values[0],
            n => self.values[(self.rng.next_u64() % n as u64) as usize],
        }
    }
}

/// The element ranges CrAM compresses: every prunable tensor as one segment (global
/// threshold) or each its own (per layer). Non-prunable tensors are never compressed.
pub fn cram_segments(table: &ParamTable, scope: Scope) -> Vec<Vec<(usize, usize)>> {
    let prunable = table
        .entries
        .iter()
        .filter(|p| p.prunable)
        .map(|p| (p.offset, p.len));
    match scope {
        Scope::Global => vec![prunable.collect()],
        Scope::Layer => prunable.map(|r| vec![r]).collect(),
    }
}

/// The rank per segment that sparsity `s` asks for.
pub fn cram_ranks(segments: &[Vec<(usize, usize)>], s: f32) -> Vec<usize> {
    segments
        .iter()
        .map(|seg| count_for_sparsity(s, seg.iter().map(|r| r.1).sum()))
        .collect()
}
