//! The CPU executor: a [`Model`] run node by node with the ops' CPU twins
//! ([`crate::ops`]), forward and backward, in plain Rust (it compiles for wasm32 too).
//!
//! It is the reference the GPU executor is tested against and the fallback when WebGPU is
//! missing. Every activation slot of [`Model::shapes`] gets its own buffer, and so does its
//! gradient; each node keeps what its backward needs (max-pool argmax, norm statistics,
//! the attention intermediates).
//!
//! - [`CpuExecutor::forward`] walks the nodes in order. BatchNorm2d in training mode
//!   normalises with the batch statistics, updates `running_mean`/`running_var` in the state
//!   array (momentum 0.1, unbiased variance, as PyTorch) and adds 1 to
//!   `num_batches_tracked`; in eval mode it uses the running statistics. Linear and
//!   LayerNorm act on the last dimension, so on a token tensor `[N, T, C]` they run over
//!   `N·T` rows.
//! - [`CpuExecutor::loss_and_backward`] takes the softmax cross-entropy of the last
//!   forward's logits (mean over the batch, [`softmax_cross_entropy_cpu`]) and runs the
//!   backward through every node in reverse order. Activation gradients are summed over all
//!   the nodes that read a slot (residual `Add`s, a slot feeding both a block and its
//!   shortcut); parameter gradients are written, in the flat layout of the parameter table.
//!   After an eval-mode forward the backward treats BatchNorm as the fixed affine map it was.
//!
//! Speed: linear, convolution (im2col), attention and patch-embedding products run as real
//! GEMMs ([`crate::ops::matmul::gemm`]: natively on AVX2+FMA the blocked
//! `ops::gemm_x86`, else `matrixmultiply`, with simd128 in wasm) through [`super::fast`];
//! im2col, col2im and the max-pool backward go by rows ([`super::gather`], the twins' bits);
//! the other layers are the twins' loops. The backward allocates nothing in steady state
//! (the ViT ops' twins aside, which return their gradients): parameter gradients are written
//! in place, each slot's gradient is written by its last reader and added to by the others
//! (a scratch kept across steps), and slots that need no gradient (the image batch, the
//! MLP's flattened input) get none, so the first layer's `dx` product is skipped.

use std::ops::Range;

use super::{fast, plan_targets, Target};
use crate::nn::{Model, Op, Shape, SpecError};
use crate::ops::activation::{gelu_backward_cpu, gelu_cpu, relu_backward_cpu, relu_cpu};
use crate::ops::attention::{
    attention_backward_cpu, attention_forward_cpu, AttentionSaved, AttentionShape,
};
use crate::ops::loss::softmax_cross_entropy_cpu;
use crate::ops::norm::{
    batch_norm_backward_cpu, batch_norm_eval_backward_cpu, batch_norm_eval_cpu,
    batch_norm_train_cpu, layer_norm_backward_cpu, layer_norm_cpu, BatchNorm2dConfig,
    LayerNormConfig,
};
use crate::ops::pool::{avg_pool_backward_cpu, avg_pool_cpu, max_pool_cpu, PoolShape};
use crate::ops::vit::{
    cls_pos_backward_cpu, cls_pos_cpu, cls_select_backward_cpu, cls_select_cpu,
    mean_pool_backward_cpu, mean_pool_cpu, patch_embed_backward_cpu, patch_embed_cpu, PatchShape,
};

/// What a node's forward keeps for its backward.
enum Saved {
    None,
    /// Max-pool: the flat in-plane index of each window's maximum.
    Argmax(Vec<u32>),
    /// BatchNorm `[2C]` / LayerNorm `[2·rows]`: the means, then the reciprocal standard
    /// deviations the forward normalised with (BatchNorm eval: the running ones).
    Norm(Vec<f32>),
    /// The attention block's intermediates (`None` before the first forward).
    Attention(Option<Box<AttentionSaved>>),
}

/// Runs one [`Model`] on batches of a fixed size on the CPU.
pub struct CpuExecutor {
    model: Model,
    batch: usize,
    shapes: Vec<Shape>,
    params_len: usize,
    state_len: usize,
    /// Per node, the ranges of its parameters in the flat array, in [`Op::params`] order.
    node_params: Vec<Vec<Range<usize>>>,
    /// Per node, the ranges of its state tensors, in [`Op::state`] order.
    node_state: Vec<Vec<Range<usize>>>,
    /// One buffer per slot; slot 0 is the image batch, the last slot the logits.
    acts: Vec<Vec<f32>>,
    /// ∂loss/∂slot, same sizes as `acts`.
    dacts: Vec<Vec<f32>>,
    saved: Vec<Saved>,
    /// `Some(train)` once a forward has run: the mode of the last forward.
    last_mode: Option<bool>,
    /// BatchNorm's running-statistics momentum in training mode (PyTorch's 0.1).
    bn_momentum: f32,
    /// im2col scratch of the convolutions (one image's columns).
    cols: Vec<f32>,
    /// Per node and input, where the backward sends the input's gradient ([`plan`]).
    targets: Vec<Vec<Target>>,
    /// The input gradients that are added to a slot's (or dropped), grown to the largest.
    dx_scratch: Vec<f32>,
}

impl CpuExecutor {
    /// Allocates the slots of `model` for batches of `batch` images (checking the spec).
    pub fn new(model: &Model, batch: usize) -> Result<Self, SpecError> {
        let shapes = model.shapes(batch)?;
        let params = model.params();
        let state = model.state();
        let (node_params, node_state) = super::node_ranges(model);
        let saved = model
            .nodes
            .iter()
            .map(|node| {
                let x = &shapes[node.inputs[0]];
                match node.op {
                    Op::MaxPool { .. } => Saved::Argmax(vec![0; shapes[node.output].numel()]),
                    Op::BatchNorm2d { c } => Saved::Norm(vec![0.0; 2 * c]),
                    Op::LayerNorm { c } => Saved::Norm(vec![0.0; 2 * (x.numel() / c)]),
                    Op::Attention { .. } => Saved::Attention(None),
                    _ => Saved::None,
                }
            })
            .collect();
        let acts: Vec<Vec<f32>> = shapes.iter().map(|s| vec![0.0; s.numel()]).collect();
        Ok(CpuExecutor {
            model: model.clone(),
            batch,
            params_len: params.buffer_len,
            state_len: state.buffer_len,
            node_state,
            dacts: acts.clone(),
            acts,
            saved,
            shapes,
            last_mode: None,
            bn_momentum: 0.1,
            cols: Vec::new(),
            targets: plan(model, &node_params),
            node_params,
            dx_scratch: Vec::new(),
        })
    }

    /// The batch size the slots were allocated for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Sets BatchNorm's running-statistics momentum for later training-mode forwards
    /// (`r ← (1 − m)·r + m·batch_stat`). Re-calibration after pruning uses `1/k` on the
    /// k-th batch, which makes the running statistics the plain average over the batches.
    pub fn set_bn_momentum(&mut self, momentum: f32) {
        self.bn_momentum = momentum;
    }

    /// The shape of every slot (index = slot).
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// The activations of `slot` from the last forward.
    pub fn activation(&self, slot: usize) -> &[f32] {
        &self.acts[slot]
    }

    /// Runs the model on `images` (`[N, C, H, W]`, normalised) and returns the logits
    /// `[N, classes]`. `params` and `state` are the flat arrays of [`Model::params`] and
    /// [`Model::state`]; in training mode (`train`) BatchNorm updates `state`.
    ///
    /// Panics if an array's length differs from its table's `buffer_len` (or `images` from
    /// `N·C·H·W`).
    pub fn forward(
        &mut self,
        params: &[f32],
        state: &mut [f32],
        images: &[f32],
        train: bool,
    ) -> &[f32] {
        assert_eq!(params.len(), self.params_len, "parameter array length");
        assert_eq!(state.len(), self.state_len, "state array length");
        assert_eq!(images.len(), self.acts[0].len(), "image batch length");
        self.acts[0].copy_from_slice(images);
        for i in 0..self.model.nodes.len() {
            self.forward_node(i, params, state, train);
        }
        self.last_mode = Some(train);
        &self.acts[self.model.nodes.len()]
    }

    fn forward_node(&mut self, i: usize, params: &[f32], state: &mut [f32], train: bool) {
        let node = &self.model.nodes[i];
        let (before, after) = self.acts.split_at_mut(i + 1);
        let y = &mut after[0][..];
        let x = &before[node.inputs[0]][..];
        let xs = &self.shapes[node.inputs[0]];
        let pr = &self.node_params[i];
        let p = |j: usize| &params[pr[j].clone()];
        let n = self.batch;
        match node.op {
            Op::Conv2d {
                cin,
                cout,
                k,
                stride,
                pad,
                bias,
            } => {
                let s = super::conv_shape(n, cin, xs, cout, k, stride, pad);
                fast::conv_forward(&s, x, p(0), bias.then(|| p(1)), y, &mut self.cols);
            }
            Op::Linear { inp, out, bias } => {
                fast::linear_forward(x.len() / inp, inp, out, x, p(0), bias.then(|| p(1)), y);
            }
            Op::BatchNorm2d { c } => {
                let cfg = BatchNorm2dConfig {
                    momentum: self.bn_momentum,
                    ..BatchNorm2dConfig::new(n, c, xs[2], xs[3])
                };
                let st = &self.node_state[i];
                let Saved::Norm(saved) = &mut self.saved[i] else {
                    unreachable!("BatchNorm saves its statistics")
                };
                if train {
                    // running_mean lies before running_var in the state table.
                    let (lo, hi) = state.split_at_mut(st[1].start);
                    let (mean, var) = (&mut lo[st[0].clone()], &mut hi[..c]);
                    batch_norm_train_cpu(&cfg, x, p(0), p(1), y, saved, mean, var);
                    state[st[2].start] += 1.0;
                } else {
                    let (mean, var) = (&state[st[0].clone()], &state[st[1].clone()]);
                    batch_norm_eval_cpu(&cfg, x, p(0), p(1), mean, var, y);
                    saved[..c].copy_from_slice(mean);
                    for (r, &v) in saved[c..].iter_mut().zip(var) {
                        *r = 1.0 / (v + cfg.eps).sqrt();
                    }
                }
            }
            Op::LayerNorm { c } => {
                let cfg = LayerNormConfig::new(x.len() / c, c);
                let Saved::Norm(saved) = &mut self.saved[i] else {
                    unreachable!("LayerNorm saves its statistics")
                };
                layer_norm_cpu(&cfg, x, p(0), p(1), y, saved);
            }
            Op::Relu => relu_cpu(x, y),
            Op::Gelu => gelu_cpu(x, y),
            Op::MaxPool { k, s } => {
                let ps = PoolShape::new(n, xs[1], xs[2], xs[3], k, s);
                let Saved::Argmax(argmax) = &mut self.saved[i] else {
                    unreachable!("MaxPool saves its argmax")
                };
                max_pool_cpu(&ps, x, y, argmax);
            }
            Op::AvgPool { k, s } => {
                avg_pool_cpu(&PoolShape::new(n, xs[1], xs[2], xs[3], k, s), x, y);
            }
            Op::GlobalAvgPool => {
                avg_pool_cpu(&PoolShape::global(n, xs[1], xs[2], xs[3]), x, y);
            }
            Op::Flatten => y.copy_from_slice(x),
            Op::Add => {
                let b = &before[node.inputs[1]];
                for ((o, &u), &v) in y.iter_mut().zip(x).zip(b) {
                    *o = u + v;
                }
            }
            Op::PatchEmbed { c, e, patch } => {
                let s = PatchShape::new(n, c, xs[2], xs[3], patch);
                y.copy_from_slice(&patch_embed_cpu(&s, e, x, p(0), p(1)));
            }
            Op::ClsPos { tokens, e } => {
                y.copy_from_slice(&cls_pos_cpu(n, tokens, e, x, p(0), p(1)));
            }
            Op::Attention { dim, heads } => {
                let s = AttentionShape::new(n, xs[1], dim, heads);
                let out = attention_forward_cpu(&s, x, p(0), p(1), p(2), p(3));
                y.copy_from_slice(&out.y);
                self.saved[i] = Saved::Attention(Some(Box::new(out)));
            }
            Op::TokenMeanPool => y.copy_from_slice(&mean_pool_cpu(n, xs[1], xs[2], x)),
            Op::ClsSelect => y.copy_from_slice(&cls_select_cpu(n, xs[1], xs[2], x)),
        }
    }

    /// The softmax cross-entropy of the last forward's logits against `labels` (`[N]`, each
    /// below the class count) and the backward through the whole model: writes ∂loss/∂params
    /// into `grads` (the layout of `params`, [`Model::params`]`.buffer_len` long; every
    /// tensor's range is written, the alignment gaps are left as they are). `params` must be
    /// the array the forward ran with. Returns the mean loss over the batch and the number of
    /// rows whose argmax is the label.
    ///
    /// Panics without a preceding [`CpuExecutor::forward`], on wrong lengths or labels.
    pub fn loss_and_backward(
        &mut self,
        params: &[f32],
        labels: &[u32],
        grads: &mut [f32],
    ) -> (f32, usize) {
        let train = self
            .last_mode
            .expect("loss_and_backward needs a forward first");
        assert_eq!(params.len(), self.params_len, "parameter array length");
        assert_eq!(grads.len(), self.params_len, "gradient array length");
        assert_eq!(labels.len(), self.batch, "one label per image");
        let classes = self.model.classes;
        assert!(
            labels.iter().all(|&l| (l as usize) < classes),
            "labels must be below the class count {classes}"
        );
        let last = self.model.nodes.len();
        let xent = softmax_cross_entropy_cpu(
            self.batch,
            classes,
            &self.acts[last],
            labels,
            &mut self.dacts[last],
        );
        for i in (0..last).rev() {
            self.backward_node(i, params, grads, train);
        }
        (xent.loss_sum / self.batch as f32, xent.correct as usize)
    }

    fn backward_node(&mut self, i: usize, params: &[f32], grads: &mut [f32], train: bool) {
        let node = &self.model.nodes[i];
        let targets = &self.targets[i];
        let (before, after) = self.dacts.split_at_mut(i + 1);
        let dy = &after[0][..];
        if let Op::Add = node.op {
            // Both inputs receive dy (the same slot twice receives it twice).
            for (&slot, &t) in node.inputs.iter().zip(targets) {
                match t {
                    Target::Sink => {}
                    Target::Direct => before[slot].copy_from_slice(dy),
                    Target::Accumulate => accumulate(&mut before[slot], dy),
                }
            }
            return;
        }
        let (slot, target) = (node.inputs[0], targets[0]);
        let x = &self.acts[slot][..];
        let xs = &self.shapes[slot];
        let pr = &self.node_params[i];
        let p = |j: usize| &params[pr[j].clone()];
        let want_dx = target != Target::Sink;
        let scratch = &mut self.dx_scratch;
        let n = self.batch;
        match node.op {
            Op::Conv2d {
                cin,
                cout,
                k,
                stride,
                pad,
                bias,
            } => {
                let s = super::conv_shape(n, cin, xs, cout, k, stride, pad);
                let (dw, db) = param_grads(grads, pr, bias);
                let dx = want_dx.then(|| dx_buffer(target, before, slot, scratch, x.len()));
                fast::conv_backward(&s, x, p(0), dy, dx, dw, db, &mut self.cols);
            }
            Op::Linear { inp, out, bias } => {
                let (dw, db) = param_grads(grads, pr, bias);
                let dx = want_dx.then(|| dx_buffer(target, before, slot, scratch, x.len()));
                fast::linear_backward(x.len() / inp, inp, out, x, p(0), dy, dx, dw, db);
            }
            Op::BatchNorm2d { c } => {
                let cfg = BatchNorm2dConfig::new(n, c, xs[2], xs[3]);
                let Saved::Norm(saved) = &self.saved[i] else {
                    unreachable!("BatchNorm saves its statistics")
                };
                let (dgamma, dbeta) = param_grads(grads, pr, true);
                let (dbeta, dx) = (
                    dbeta.expect("BatchNorm's beta"),
                    dx_buffer(target, before, slot, scratch, x.len()),
                );
                if train {
                    batch_norm_backward_cpu(&cfg, x, dy, p(0), saved, dx, dgamma, dbeta);
                } else {
                    batch_norm_eval_backward_cpu(&cfg, x, dy, p(0), saved, dx, dgamma, dbeta);
                }
            }
            Op::LayerNorm { c } => {
                let cfg = LayerNormConfig::new(x.len() / c, c);
                let Saved::Norm(saved) = &self.saved[i] else {
                    unreachable!("LayerNorm saves its statistics")
                };
                let (dgamma, dbeta) = param_grads(grads, pr, true);
                let (dbeta, dx) = (
                    dbeta.expect("LayerNorm's beta"),
                    dx_buffer(target, before, slot, scratch, x.len()),
                );
                layer_norm_backward_cpu(&cfg, x, dy, p(0), saved, dx, dgamma, dbeta);
            }
            Op::Relu if want_dx => {
                relu_backward_cpu(x, dy, dx_buffer(target, before, slot, scratch, x.len()))
            }
            Op::Gelu if want_dx => {
                gelu_backward_cpu(x, dy, dx_buffer(target, before, slot, scratch, x.len()))
            }
            Op::MaxPool { k, s } if want_dx => {
                let ps = PoolShape::new(n, xs[1], xs[2], xs[3], k, s);
                let Saved::Argmax(argmax) = &self.saved[i] else {
                    unreachable!("MaxPool saves its argmax")
                };
                let dx = dx_buffer(target, before, slot, scratch, x.len());
                super::gather::max_pool_backward(&ps, argmax, dy, dx);
            }
            Op::AvgPool { k, s } if want_dx => {
                let ps = PoolShape::new(n, xs[1], xs[2], xs[3], k, s);
                avg_pool_backward_cpu(&ps, dy, dx_buffer(target, before, slot, scratch, x.len()));
            }
            Op::GlobalAvgPool if want_dx => {
                let ps = PoolShape::global(n, xs[1], xs[2], xs[3]);
                avg_pool_backward_cpu(&ps, dy, dx_buffer(target, before, slot, scratch, x.len()));
            }
            Op::Flatten if want_dx => {
                dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(dy)
            }
            // The ViT ops' twins return their gradients (these still allocate).
            Op::PatchEmbed { c, e, patch } => {
                let s = PatchShape::new(n, c, xs[2], xs[3], patch);
                let (full_dx, dw, db) = patch_embed_backward_cpu(&s, e, x, p(0), dy);
                if want_dx {
                    dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(&full_dx);
                }
                write_grads(grads, pr, &[&dw, &db]);
            }
            Op::ClsPos { tokens, e } => {
                let (dtokens, dcls, dpos) = cls_pos_backward_cpu(n, tokens, e, dy);
                if want_dx {
                    dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(&dtokens);
                }
                write_grads(grads, pr, &[&dcls, &dpos]);
            }
            Op::Attention { dim, heads } => {
                let s = AttentionShape::new(n, xs[1], dim, heads);
                let Saved::Attention(Some(saved)) = &self.saved[i] else {
                    unreachable!("Attention saves its intermediates in the forward")
                };
                let g = attention_backward_cpu(&s, x, p(0), p(2), saved, dy);
                if want_dx {
                    dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(&g.dx);
                }
                write_grads(grads, pr, &[&g.dwqkv, &g.dbqkv, &g.dwo, &g.dbo]);
            }
            Op::TokenMeanPool if want_dx => {
                let g = mean_pool_backward_cpu(n, xs[1], xs[2], dy);
                dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(&g);
            }
            Op::ClsSelect if want_dx => {
                let g = cls_select_backward_cpu(n, xs[1], xs[2], dy);
                dx_buffer(target, before, slot, scratch, x.len()).copy_from_slice(&g);
            }
            // Parameter-free ops whose input needs no gradient: nothing to do.
            _ => {}
        }
        if target == Target::Accumulate {
            accumulate(&mut before[slot], &self.dx_scratch[..x.len()]);
        }
    }
}

/// For every node and input, where its backward sends the input's gradient
/// ([`super::plan_targets`]). A slot needs a gradient when some parameter lies before it.
fn plan(model: &Model, node_params: &[Vec<Range<usize>>]) -> Vec<Vec<Target>> {
    let mut needs = vec![false; model.nodes.len() + 1];
    for (node, params) in model.nodes.iter().zip(node_params) {
        needs[node.output] = !params.is_empty() || node.inputs.iter().any(|&s| needs[s]);
    }
    plan_targets(model, &needs)
}

/// The buffer a node's backward writes its input gradient to: the slot's gradient itself
/// ([`Target::Direct`]), else the first `len` values of the scratch (grown on first use).
fn dx_buffer<'a>(
    target: Target,
    dacts: &'a mut [Vec<f32>],
    slot: usize,
    scratch: &'a mut Vec<f32>,
    len: usize,
) -> &'a mut [f32] {
    if target == Target::Direct {
        return &mut dacts[slot];
    }
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    &mut scratch[..len]
}

/// A node's first two parameter gradients inside `grads`: the weight's range, and the
/// bias's (the next one, after it in the table) when `bias`.
fn param_grads<'a>(
    grads: &'a mut [f32],
    ranges: &[Range<usize>],
    bias: bool,
) -> (&'a mut [f32], Option<&'a mut [f32]>) {
    let w = ranges[0].clone();
    if !bias {
        return (&mut grads[w], None);
    }
    let b = ranges[1].clone();
    assert!(w.end <= b.start, "the bias lies after the weight");
    let (lo, hi) = grads.split_at_mut(b.start);
    (&mut lo[w], Some(&mut hi[..b.len()]))
}

/// Copies each of a node's parameter gradients into its range of `grads`.
fn write_grads(grads: &mut [f32], ranges: &[Range<usize>], gs: &[&[f32]]) {
    for (r, g) in ranges.iter().zip(gs) {
        grads[r.clone()].copy_from_slice(g);
    }
}

/// `dst += src`, element by element.
fn accumulate(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "gradient length");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
