//! The flat parameter table: every trainable tensor of a [`Model`] at its own offset in ONE
//! f32 array (one GPU buffer), plus a second table for the non-trainable state (BatchNorm's
//! running statistics).
//!
//! **Alignment.** Each tensor starts at a multiple of [`ALIGN`] = 64 elements (256 bytes).
//! WebGPU requires a storage-buffer binding's offset to be a multiple of
//! `minStorageBufferOffsetAlignment`, which is 256 bytes by default and may be no larger on
//! any device — so with 256-byte offsets every tensor (and its gradient, at the same offset
//! in a same-sized gradient buffer) can be bound on its own, on every adapter, while
//! optimizers and pruning still sweep the whole array in one dispatch. The gaps between
//! tensors are zero after [`mod@super::init`]; they stay zero under any optimizer as long as the
//! gradient buffer's gaps are zero too (gradients are written per tensor, never in the gaps).
//!
//! **Order** is PyTorch's `state_dict` order (nodes in order, each op's parameters in its
//! declaration order), so an export walks the table front to back.
//!
//! **State.** `running_mean`, `running_var` `[C]` and `num_batches_tracked` per BatchNorm.
//! PyTorch keeps `num_batches_tracked` as an int64 scalar (shape `[]`); here it is one f32
//! element (exact up to 2^24 ≈ 16.7 M steps) at its own aligned offset, with `shape` empty
//! (`len` 1) — an exporter writes it back as an int64 scalar.

use std::fmt::Write as _;

use super::spec::{join_name, Model, ParamKind, StateKind};

/// Every tensor's offset is a multiple of this many f32 elements (256 bytes).
pub const ALIGN: usize = 64;

/// `n` rounded up to a multiple of [`ALIGN`].
pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// One trainable tensor of the flat table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch name (`layer1.0.conv1.weight`, `blocks.0.attn.qkv.bias`, `cls_token`).
    pub name: String,
    /// PyTorch layout: conv `[out, in, kh, kw]`, linear `[out, in]`.
    pub shape: Vec<usize>,
    /// First element in the flat array (a multiple of [`ALIGN`]).
    pub offset: usize,
    /// Number of elements (the product of `shape`).
    pub len: usize,
    pub kind: ParamKind,
    /// Index in `Model::nodes` of the node owning the tensor (executors look weights up by it).
    pub node: usize,
    /// Pruned and regularised by VAR: the weights of convs, linears (the head included),
    /// attention projections, MLP layers and the patch embedding.
    pub prunable: bool,
}

impl ParamInfo {
    /// The tensor's elements in the flat array.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }

    /// `shape[1..]` multiplied: the fan-in of a weight matrix (`in·kh·kw` for a conv).
    pub fn fan_in(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// One non-trainable tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateInfo {
    pub name: String,
    /// `[C]`, or `[]` (a scalar, `len` 1) for `num_batches_tracked`.
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    pub kind: StateKind,
    /// Index in `Model::nodes` of the owning BatchNorm node.
    pub node: usize,
}

impl StateInfo {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The trainable tensors of a model, laid out in one array of `buffer_len` f32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTable {
    pub entries: Vec<ParamInfo>,
    /// Length of the flat array, gaps included (a multiple of [`ALIGN`]).
    pub buffer_len: usize,
}

impl ParamTable {
    /// Parameters in all (gaps excluded): the number PyTorch reports.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|p| p.len).sum()
    }

    /// Prunable parameters.
    pub fn prunable_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|p| p.prunable)
            .map(|p| p.len)
            .sum()
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&ParamInfo> {
        self.entries.iter().find(|p| p.name == name)
    }

    /// The tensors of node `node`, in the order of [`super::spec::Op::params`].
    pub fn of_node(&self, node: usize) -> impl Iterator<Item = &ParamInfo> {
        self.entries.iter().filter(move |p| p.node == node)
    }
}

/// The non-trainable tensors, laid out like [`ParamTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTable {
    pub entries: Vec<StateInfo>,
    pub buffer_len: usize,
}

impl StateTable {
    /// Elements in all, gaps excluded (each `num_batches_tracked` counts 1).
    pub fn count(&self) -> usize {
        self.entries.iter().map(|s| s.len).sum()
    }

    pub fn get(&self, name: &str) -> Option<&StateInfo> {
        self.entries.iter().find(|s| s.name == name)
    }

    /// The state tensors of node `node`, in the order of [`super::spec::Op::state`].
    pub fn of_node(&self, node: usize) -> impl Iterator<Item = &StateInfo> {
        self.entries.iter().filter(move |s| s.node == node)
    }
}

impl Model {
    /// The flat parameter table, in `state_dict` order, offsets aligned to [`ALIGN`].
    pub fn params(&self) -> ParamTable {
        let mut offset = 0;
        let mut entries = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            for decl in node.op.params() {
                let len = decl.shape.iter().product();
                entries.push(ParamInfo {
                    name: join_name(&node.name, decl.suffix),
                    shape: decl.shape,
                    offset,
                    len,
                    kind: decl.kind,
                    node: index,
                    prunable: decl.kind.prunable(),
                });
                offset = align_up(offset + len);
            }
        }
        ParamTable {
            entries,
            buffer_len: offset,
        }
    }

    /// The non-trainable state table, laid out like [`Model::params`].
    pub fn state(&self) -> StateTable {
        let mut offset = 0;
        let mut entries = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            for decl in node.op.state() {
                let len = decl.shape.iter().product(); // 1 for the scalar []
                entries.push(StateInfo {
                    name: join_name(&node.name, decl.suffix),
                    shape: decl.shape,
                    offset,
                    len,
                    kind: decl.kind,
                    node: index,
                });
                offset = align_up(offset + len);
            }
        }
        StateTable {
            entries,
            buffer_len: offset,
        }
    }

    /// A table of the parameters for the CLI: name, shape, count, prunable, then totals.
    pub fn summary(&self) -> String {
        let params = self.params();
        let state = self.state();
        let [c, h, w] = self.input;
        let mut s = format!(
            "{}: input [{c}, {h}, {w}], {} classes, {} nodes\n",
            self.name,
            self.classes,
            self.nodes.len()
        );
        let width = params
            .entries
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            s,
            "{:<width$}  {:<16}  {:>9}  prunable",
            "name", "shape", "count"
        );
        for p in &params.entries {
            let _ = writeln!(
                s,
                "{:<width$}  {:<16}  {:>9}  {}",
                p.name,
                format!("{:?}", p.shape),
                p.len,
                if p.prunable { "yes" } else { "no" }
            );
        }
        let total = params.count();
        let prunable = params.prunable_count();
        let _ = writeln!(
            s,
            "total {total} parameters, {prunable} prunable ({:.1} %); {} state values \
             (BatchNorm running statistics)",
            100.0 * prunable as f64 / total.max(1) as f64,
            state.count()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_64() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 64);
        assert_eq!(align_up(64), 64);
        assert_eq!(align_up(65), 128);
    }
}
