//! How the GPU executor ([`super::gpu`]) prepares the dispatches of each node: forward
//! (training, frozen-statistics and eval variants) and backward (after a training-mode and
//! after an eval-mode forward), and where each backward sends its input gradients.

use std::any::Any;
use std::ops::Range;

use super::{plan_targets, Target};
use crate::gpu::{Context, Dispatch, Result, Slice};
use crate::nn::{Model, Op, Shape};
use crate::ops::activation::{Act, Activation};
use crate::ops::attention::{Attention, AttentionGrads, AttentionShape, AttentionWeights};
use crate::ops::conv::{Conv2d, Conv2dBackward};
use crate::ops::elementwise::Elementwise;
use crate::ops::linear::{Linear, LinearBackward, LinearShape};
use crate::ops::norm::{
    BatchNorm2d, BatchNorm2dBackward, BatchNorm2dConfig, BatchNorm2dEvalBackward, BatchNormBuffers,
    LayerNorm, LayerNormBackward, LayerNormConfig, NormGrads,
};
use crate::ops::pool::{Pool, PoolShape};
use crate::ops::vit::{ClsPos, PatchEmbed, PatchShape, VitKernel};

/// Builder state while preparing the dispatches.
pub(super) struct Build<'a> {
    pub(super) ctx: &'a Context,
    pub(super) n: usize,
    pub(super) shapes: &'a [Shape],
    pub(super) params: &'a wgpu::Buffer,
    pub(super) grads: &'a wgpu::Buffer,
    pub(super) state: &'a wgpu::Buffer,
    pub(super) acts: &'a [wgpu::Buffer],
    pub(super) dacts: &'a [wgpu::Buffer],
    pub(super) scratch: &'a [Option<wgpu::Buffer>],
    pub(super) sink: &'a wgpu::Buffer,
    /// Scratch running statistics for the frozen BatchNorm pass.
    pub(super) discard: &'a [wgpu::Buffer; 2],
    pub(super) node_params: &'a [Vec<Range<usize>>],
    pub(super) node_state: &'a [Vec<Range<usize>>],
    pub(super) keep: Vec<Box<dyn Any>>,
    pub(super) fwd_train: Vec<Dispatch>,
    pub(super) fwd_frozen: Vec<Dispatch>,
    pub(super) fwd_eval: Vec<Dispatch>,
    /// Per node, its backward dispatches (encoded in reverse node order), after a
    /// training-mode and after an eval-mode forward (they differ for BatchNorm only).
    pub(super) bwd: Vec<Vec<Dispatch>>,
    pub(super) bwd_eval: Vec<Vec<Dispatch>>,
}

impl Build<'_> {
    fn p(&self, i: usize, j: usize) -> Slice<'_> {
        let r = &self.node_params[i][j];
        Slice::new(self.params, r.start, r.len())
    }
    fn g(&self, i: usize, j: usize) -> Slice<'_> {
        let r = &self.node_params[i][j];
        Slice::new(self.grads, r.start, r.len())
    }
    fn st(&self, i: usize, j: usize) -> Slice<'_> {
        let r = &self.node_state[i][j];
        Slice::new(self.state, r.start, r.len())
    }
    /// The buffer a kernel writes input `slot`'s gradient into for `target`.
    fn dx(&self, slot: usize, target: Target) -> &wgpu::Buffer {
        match target {
            Target::Sink => self.sink,
            Target::Direct => &self.dacts[slot],
            Target::Accumulate => self.scratch[slot].as_ref().expect("scratch planned"),
        }
    }
    /// The buffers of the normalisation backward of node `i`, which reads `slot`.
    fn norm_grads<'s>(
        &'s self,
        (i, slot): (usize, usize),
        saved: &'s wgpu::Buffer,
        t: Target,
    ) -> NormGrads<'s> {
        NormGrads {
            x: (&self.acts[slot]).into(),
            dy: (&self.dacts[i + 1]).into(),
            gamma: self.p(i, 0),
            saved: saved.into(),
            dx: self.dx(slot, t).into(),
            dgamma: self.g(i, 0),
            dbeta: self.g(i, 1),
        }
    }

    /// A dispatch shared by the three forward variants.
    fn forward(&mut self, dispatches: &[Dispatch]) {
        for list in [
            &mut self.fwd_train,
            &mut self.fwd_frozen,
            &mut self.fwd_eval,
        ] {
            list.extend_from_slice(dispatches);
        }
    }
    /// After a kernel wrote `scratch[slot]`: add it to the slot's gradient.
    async fn finish_dx(&mut self, i: usize, slot: usize, target: Target) -> Result<()> {
        if target == Target::Accumulate {
            let len = self.shapes[slot].numel();
            let scratch = self.scratch[slot].as_ref().expect("scratch planned");
            let op = Elementwise::axpy(self.ctx, len, 1.0, scratch, &self.dacts[slot]).await?;
            self.bwd[i].push(op.dispatch.clone());
            self.bwd_eval[i].push(op.dispatch.clone());
            self.keep.push(Box::new(op));
        }
        Ok(())
    }
    /// The gradient `dy` passed through unchanged to `slot` (Add, Flatten): copied into the
    /// first reader's gradient, added for later ones.
    async fn pass_through(&mut self, i: usize, slot: usize, target: Target) -> Result<()> {
        let len = self.shapes[slot].numel();
        let dy = &self.dacts[i + 1];
        let op = match target {
            Target::Sink => return Ok(()),
            Target::Direct => Elementwise::scale(self.ctx, len, 1.0, dy, &self.dacts[slot]).await?,
            Target::Accumulate => {
                Elementwise::axpy(self.ctx, len, 1.0, dy, &self.dacts[slot]).await?
            }
        };
        self.bwd[i].push(op.dispatch.clone());
        self.bwd_eval[i].push(op.dispatch.clone());
        self.keep.push(Box::new(op));
        Ok(())
    }

    /// Prepares node `i`'s forward (three variants) and backward.
    pub(super) async fn node(&mut self, model: &Model, i: usize, targets: &[Target]) -> Result<()> {
        let ctx = self.ctx;
        let node = &model.nodes[i];
        let slot = node.inputs[0];
        let xs = &self.shapes[slot];
        let (x, y, dy) = (&self.acts[slot], &self.acts[i + 1], &self.dacts[i + 1]);
        let n = self.n;
        let t = targets[0];
        let want = (t != Target::Sink).then(|| Slice::from(self.dx(slot, t)));
        let mut bwd: Vec<Dispatch> = Vec::new();
        // Set where the eval-mode backward differs from `bwd`.
        let mut bwd_eval: Option<Vec<Dispatch>> = None;
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
                let b = bias.then(|| self.p(i, 1));
                let fwd = Conv2d::new(ctx, s, x, self.p(i, 0), b, y).await?;
                let db = bias.then(|| self.g(i, 1));
                let back = Conv2dBackward::new(
                    ctx,
                    &fwd,
                    x,
                    self.p(i, 0),
                    dy,
                    want,
                    Some(self.g(i, 0)),
                    db,
                )
                .await?;
                self.forward(&fwd.dispatches);
                bwd.extend_from_slice(&back.dispatches);
                self.keep.push(Box::new(fwd));
                self.keep.push(Box::new(back));
            }
            Op::Linear { inp, out, bias } => {
                let s = LinearShape::new(xs.numel() / inp, inp, out);
                let b = bias.then(|| self.p(i, 1));
                let fwd = Linear::new(ctx, s, x, self.p(i, 0), b, y).await?;
                let db = bias.then(|| self.g(i, 1));
                let back =
                    LinearBackward::new(ctx, s, x, self.p(i, 0), dy, want, Some(self.g(i, 0)), db)
                        .await?;
                self.forward(&fwd.dispatches);
                bwd.extend_from_slice(&back.dispatches);
                self.keep.push(Box::new(fwd));
                self.keep.push(Box::new(back));
            }
            Op::BatchNorm2d { c } => {
                let cfg = BatchNorm2dConfig::new(n, c, xs[2], xs[3]);
                let saved = ctx.zeros("batch norm saved", 2 * c)?;
                let buffers = BatchNormBuffers {
                    x: x.into(),
                    gamma: self.p(i, 0),
                    beta: self.p(i, 1),
                    y: y.into(),
                    saved: (&saved).into(),
                    running_mean: self.st(i, 0),
                    running_var: self.st(i, 1),
                };
                let live = BatchNorm2d::new(ctx, cfg, &buffers).await?;
                let d = &self.discard;
                let discarded = BatchNormBuffers {
                    running_mean: Slice::new(&d[0], 0, c),
                    running_var: Slice::new(&d[1], 0, c),
                    ..buffers
                };
                let frozen = BatchNorm2d::new(ctx, cfg, &discarded).await?;
                let grads = self.norm_grads((i, slot), &saved, t);
                let back = BatchNorm2dBackward::new(ctx, cfg, &grads).await?;
                let (mean, var) = (self.st(i, 0), self.st(i, 1));
                let eval_back = BatchNorm2dEvalBackward::new(ctx, cfg, &grads, mean, var).await?;
                bwd_eval = Some(vec![eval_back.dispatch.clone()]);
                self.fwd_train.extend_from_slice(&live.train_list);
                self.fwd_eval.push(live.eval.clone());
                self.fwd_frozen.extend_from_slice(&frozen.train_list);
                bwd.extend_from_slice(&back.dispatches);
                self.keep
                    .push(Box::new((live, frozen, back, eval_back, saved)));
            }
            Op::LayerNorm { c } => {
                let cfg = LayerNormConfig::new(xs.numel() / c, c);
                let saved = ctx.zeros("layer norm saved", 2 * cfg.rows)?;
                let fwd =
                    LayerNorm::new(ctx, cfg, x, self.p(i, 0), self.p(i, 1), y, &saved).await?;
                let back = LayerNormBackward::new(ctx, cfg, &self.norm_grads((i, slot), &saved, t))
                    .await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                bwd.extend_from_slice(&back.dispatches);
                self.keep.push(Box::new((fwd, back, saved)));
            }
            Op::Relu | Op::Gelu => {
                let act = if node.op == Op::Relu {
                    Act::Relu
                } else {
                    Act::Gelu
                };
                let len = xs.numel();
                let fwd = Activation::forward(ctx, act, len, x, y).await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                if t != Target::Sink {
                    let back = Activation::backward(ctx, act, len, x, dy, self.dx(slot, t)).await?;
                    bwd.push(back.dispatch.clone());
                    self.keep.push(Box::new(back));
                }
                self.keep.push(Box::new(fwd));
            }
            Op::MaxPool { k, s } => {
                let ps = PoolShape::new(n, xs[1], xs[2], xs[3], k, s);
                let argmax = ctx.zeros("max pool argmax", ps.len_y())?;
                let fwd = Pool::max(ctx, ps, x, y, &argmax).await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                if t != Target::Sink {
                    let back = Pool::max_backward(ctx, ps, &argmax, dy, self.dx(slot, t)).await?;
                    bwd.push(back.dispatch.clone());
                    self.keep.push(Box::new(back));
                }
                self.keep.push(Box::new((fwd, argmax)));
            }
            Op::AvgPool { .. } | Op::GlobalAvgPool => {
                let ps = match node.op {
                    Op::AvgPool { k, s } => PoolShape::new(n, xs[1], xs[2], xs[3], k, s),
                    _ => PoolShape::global(n, xs[1], xs[2], xs[3]),
                };
                let fwd = Pool::avg(ctx, ps, x, y).await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                if t != Target::Sink {
                    let back = Pool::avg_backward(ctx, ps, dy, self.dx(slot, t)).await?;
                    bwd.push(back.dispatch.clone());
                    self.keep.push(Box::new(back));
                }
                self.keep.push(Box::new(fwd));
            }
            Op::Flatten => {
                let fwd = Elementwise::scale(ctx, xs.numel(), 1.0, x, y).await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                self.keep.push(Box::new(fwd));
            }
            Op::Add => {
                let b = &self.acts[node.inputs[1]];
                let fwd = Elementwise::add(ctx, xs.numel(), x, b, y).await?;
                self.forward(std::slice::from_ref(&fwd.dispatch));
                self.keep.push(Box::new(fwd));
            }
            Op::PatchEmbed { c, e, patch } => {
                let s = PatchShape::new(n, c, xs[2], xs[3], patch);
                let fwd = PatchEmbed::new(ctx, s, e, x, self.p(i, 0), self.p(i, 1), y).await?;
                let back = fwd
                    .backward(ctx, dy, self.dx(slot, t), self.g(i, 0), self.g(i, 1))
                    .await?;
                self.forward(&fwd.dispatches);
                bwd.extend_from_slice(&back.dispatches);
                self.keep.push(Box::new((fwd, back)));
            }
            Op::ClsPos { tokens, e } => {
                let grads = (self.dx(slot, t), self.g(i, 0), self.g(i, 1));
                let op = ClsPos::new(
                    ctx,
                    (n, tokens, e),
                    x,
                    self.p(i, 0),
                    self.p(i, 1),
                    y,
                    dy,
                    grads,
                )
                .await?;
                self.forward(std::slice::from_ref(&op.forward.dispatch));
                bwd.extend_from_slice(&op.backward);
                self.keep.push(Box::new(op));
            }
            Op::Attention { dim, heads } => {
                let s = AttentionShape::new(n, xs[1], dim, heads);
                let w = AttentionWeights {
                    wqkv: self.p(i, 0),
                    bqkv: self.p(i, 1),
                    wo: self.p(i, 2),
                    bo: self.p(i, 3),
                };
                let fwd = Attention::new(ctx, s, x, &w, y).await?;
                let grads = AttentionGrads {
                    dx: self.dx(slot, t).into(),
                    dwqkv: self.g(i, 0),
                    dbqkv: self.g(i, 1),
                    dwo: self.g(i, 2),
                    dbo: self.g(i, 3),
                };
                let back = fwd.backward(ctx, dy, &grads).await?;
                self.forward(&fwd.dispatches);
                bwd.extend_from_slice(&back.dispatches);
                self.keep.push(Box::new((fwd, back)));
            }
            Op::TokenMeanPool | Op::ClsSelect => {
                let shape = (n, xs[1], xs[2]);
                let mean = node.op == Op::TokenMeanPool;
                let fwd = if mean {
                    VitKernel::mean_pool(ctx, shape, x, y).await?
                } else {
                    VitKernel::cls_select(ctx, shape, x, y).await?
                };
                self.forward(std::slice::from_ref(&fwd.dispatch));
                if t != Target::Sink {
                    let dx = self.dx(slot, t);
                    let back = if mean {
                        VitKernel::mean_pool_backward(ctx, shape, dy, dx).await?
                    } else {
                        VitKernel::cls_select_backward(ctx, shape, dy, dx).await?
                    };
                    bwd.push(back.dispatch.clone());
                    self.keep.push(Box::new(back));
                }
                self.keep.push(Box::new(fwd));
            }
        }
        self.bwd_eval[i] = bwd_eval.unwrap_or_else(|| bwd.clone());
        self.bwd[i] = bwd;
        match node.op {
            Op::Add | Op::Flatten => {
                for (j, &s) in node.inputs.iter().enumerate() {
                    self.pass_through(i, s, targets[j]).await?;
                }
            }
            _ => self.finish_dx(i, slot, t).await?,
        }
        Ok(())
    }
}

/// For every node and input, where its backward sends the input's gradient
/// ([`super::plan_targets`]): every slot but the image batch wants one.
pub(super) fn plan(model: &Model) -> Vec<Vec<Target>> {
    let needs: Vec<bool> = (0..=model.nodes.len()).map(|s| s != 0).collect();
    plan_targets(model, &needs)
}
