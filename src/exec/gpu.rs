//! The GPU executor: the twin of [`super::cpu`], running a [`Model`] node by node with the
//! GPU launchers of [`crate::ops`], everything prepared once so that a training step is one
//! list of dispatches (one submit).
//!
//! - Parameters, gradients and the BatchNorm state live in ONE flat buffer each
//!   ([`GpuExecutor::params`], [`GpuExecutor::grads`], [`GpuExecutor::state`]), laid out as
//!   [`Model::params`] / [`Model::state`]; each tensor is bound as a [`Slice`] (offsets are
//!   multiples of 256 bytes). Every activation slot has its own buffer and so does its
//!   gradient.
//! - The input batch (slot 0) and the labels come from a [`DeviceDataset`] through the
//!   gather kernel ([`GpuExecutor::attach`]); tests may write them directly
//!   ([`GpuExecutor::write_batch`]).
//! - Semantics are those of [`super::CpuExecutor`]: BatchNorm in training mode uses the batch
//!   statistics and updates the running ones (momentum 0.1, unbiased variance) and
//!   `num_batches_tracked`; in eval mode it uses the running statistics. Linear and
//!   LayerNorm act on the last dimension. The gradient of a slot read by several nodes is
//!   the sum: the first node of the backward writes it, the others write a scratch buffer
//!   that is added (`axpy`). Slot 0 gets no gradient.
//! - [`GpuExecutor::train_pass`] with `update_state = false` (the second forward/backward of
//!   SAM/CrAM at perturbed weights) normalises with the batch statistics but leaves the
//!   running statistics and `num_batches_tracked` untouched: its BatchNorm dispatches write
//!   their running-statistics update into scratch buffers, and it adds nothing to the
//!   metrics.
//! - [`GpuExecutor::forward_backward_eval`] runs the backward of an eval-mode forward, as
//!   the CPU executor does after `forward(.., false)`.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

use super::gpu_nodes::{plan, Build};
use super::Target;
use crate::gpu::{Context, Dispatch, GpuError, Result};
use crate::nn::{Model, Op, Shape};
use crate::ops::data::{DeviceDataset, Gather};
use crate::ops::loss::{SoftmaxCrossEntropy, METRICS_LEN};
use crate::ops::norm::CountBatches;

/// The metrics accumulated on the device since the last [`GpuExecutor::reset_metrics`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    /// Σ of the per-row cross-entropy losses.
    pub loss_sum: f32,
    /// Rows whose argmax is the label.
    pub correct: usize,
    /// Rows counted (padding rows of a partial last batch are not).
    pub rows: usize,
}

/// The datasets the gather reads, with their order buffers.
struct Attached {
    train: DeviceDataset,
    test: DeviceDataset,
    train_order: wgpu::Buffer,
    train_crops: wgpu::Buffer,
    /// Identity order of the test set (and an unused crop buffer).
    _test_order: wgpu::Buffer,
    _test_crops: wgpu::Buffer,
    train_gather: Gather,
    test_gather: Gather,
    /// Entries in the current epoch order and the crop padding when augmenting.
    order_len: usize,
    augment: Option<usize>,
}

/// Runs one [`Model`] on batches of a fixed size on the GPU.
pub struct GpuExecutor {
    model: Model,
    batch: usize,
    shapes: Vec<Shape>,
    params_len: usize,
    state_len: usize,
    /// Flat parameters, laid out as [`Model::params`].
    pub params: wgpu::Buffer,
    /// ∂loss/∂params, same layout (every tensor overwritten by each backward).
    pub grads: wgpu::Buffer,
    /// BatchNorm running statistics and batch counters, laid out as [`Model::state`].
    pub state: wgpu::Buffer,
    /// u32 `[N]`: the labels of the current batch.
    pub labels: wgpu::Buffer,
    /// f32 `[3]`: loss sum, correct count, rows counted (see [`crate::ops::loss`]).
    pub metrics: wgpu::Buffer,
    acts: Vec<wgpu::Buffer>,
    /// Reused by [`GpuExecutor::read_metrics`]; `staging_busy` while a read uses it.
    metrics_staging: wgpu::Buffer,
    staging_busy: AtomicBool,
    forward_train: Vec<Dispatch>,
    forward_frozen: Vec<Dispatch>,
    forward_eval: Vec<Dispatch>,
    loss_accumulate: Vec<Dispatch>,
    loss_plain: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    backward_eval: Vec<Dispatch>,
    reset: Dispatch,
    data: Option<Attached>,
    /// The launchers (and scratch buffers) the dispatches use, kept alive.
    _keep: Vec<Box<dyn Any>>,
}

impl GpuExecutor {
    /// Allocates the slots and flat buffers of `model` for batches of `batch` images and
    /// prepares every dispatch (the spec is checked first). The parameters and state start
    /// at zero: write them with [`GpuExecutor::write_params`] / [`GpuExecutor::write_state`].
    pub async fn new(ctx: &Context, model: &Model, batch: usize) -> Result<GpuExecutor> {
        let shapes = model.shapes(batch).map_err(|e| GpuError::Validation {
            what: format!("the model '{}'", model.name),
            message: e.to_string(),
        })?;
        check_memory(ctx, model, batch)?;
        let ptable = model.params();
        let stable = model.state();
        let count = model.nodes.len();
        let (node_params, node_state) = super::node_ranges(model);
        let params = ctx.zeros("parameters", ptable.buffer_len)?;
        let grads = ctx.zeros("gradients", ptable.buffer_len)?;
        let state = ctx.zeros("state", stable.buffer_len)?;
        let labels = ctx.zeros("labels", batch)?;
        let metrics = ctx.zeros("metrics", METRICS_LEN)?;
        let acts = shapes
            .iter()
            .map(|s| ctx.zeros("activations", s.numel()))
            .collect::<Result<Vec<_>>>()?;
        let dacts = shapes
            .iter()
            .map(|s| ctx.zeros("activation gradients", s.numel()))
            .collect::<Result<Vec<_>>>()?;
        let targets = plan(model);
        let mut scratch: Vec<Option<wgpu::Buffer>> = (0..shapes.len()).map(|_| None).collect();
        for (node, t) in model.nodes.iter().zip(&targets) {
            for (&s, &t) in node.inputs.iter().zip(t) {
                if t == Target::Accumulate && scratch[s].is_none() {
                    scratch[s] = Some(ctx.zeros("gradient scratch", shapes[s].numel())?);
                }
            }
        }
        let widest = shapes.iter().map(Shape::numel).max().unwrap_or(1);
        let sink = ctx.zeros("gradient sink", widest)?;
        let channels = model
            .nodes
            .iter()
            .map(|n| match n.op {
                Op::BatchNorm2d { c } => c,
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        let discard = [
            ctx.zeros("frozen running mean", channels)?,
            ctx.zeros("frozen running var", channels)?,
        ];
        let mut b = Build {
            ctx,
            n: batch,
            shapes: &shapes,
            params: &params,
            grads: &grads,
            state: &state,
            acts: &acts,
            dacts: &dacts,
            scratch: &scratch,
            sink: &sink,
            discard: &discard,
            node_params: &node_params,
            node_state: &node_state,
            keep: Vec::new(),
            fwd_train: Vec::new(),
            fwd_frozen: Vec::new(),
            fwd_eval: Vec::new(),
            bwd: vec![Vec::new(); count],
            bwd_eval: vec![Vec::new(); count],
        };
        for (i, t) in targets.iter().enumerate() {
            b.node(model, i, t).await?;
        }
        // num_batches_tracked of every BatchNorm: bumped by the training forward only.
        let counters: Vec<u32> = stable
            .entries
            .iter()
            .filter(|s| s.kind == crate::nn::StateKind::NumBatchesTracked)
            .map(|s| s.offset as u32)
            .collect();
        let counter = CountBatches::new(ctx, &state, &counters).await?;
        b.fwd_train.push(counter.dispatch.clone());
        let last = count;
        let classes = model.classes;
        let junk = ctx.zeros("discarded metrics", METRICS_LEN)?;
        let (logits, dlogits) = (&acts[last], &dacts[last]);
        let acc = SoftmaxCrossEntropy::new(
            ctx, batch, classes, true, logits, &labels, dlogits, &metrics,
        )
        .await?;
        let plain =
            SoftmaxCrossEntropy::new(ctx, batch, classes, false, logits, &labels, dlogits, &junk)
                .await?;
        let backward: Vec<Dispatch> = b.bwd.iter().rev().flatten().cloned().collect();
        let backward_eval: Vec<Dispatch> = b.bwd_eval.iter().rev().flatten().cloned().collect();
        let Build {
            mut keep,
            fwd_train,
            fwd_frozen,
            fwd_eval,
            ..
        } = b;
        let reset = acc.reset.clone();
        let loss_accumulate = acc.dispatches.to_vec();
        let loss_plain = plain.dispatches.to_vec();
        keep.push(Box::new((acc, plain, junk, counter)));
        keep.push(Box::new((dacts, scratch, sink, discard)));
        Ok(GpuExecutor {
            model: model.clone(),
            batch,
            shapes,
            params_len: ptable.buffer_len,
            state_len: stable.buffer_len,
            params,
            grads,
            state,
            labels,
            metrics,
            acts,
            metrics_staging: ctx.staging("metrics readback", (4 * METRICS_LEN) as u64),
            staging_busy: AtomicBool::new(false),
            forward_train: fwd_train,
            forward_frozen: fwd_frozen,
            forward_eval: fwd_eval,
            loss_accumulate,
            loss_plain,
            backward,
            backward_eval,
            reset,
            data: None,
            _keep: keep,
        })
    }

    /// The batch size the slots were allocated for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The model this executor runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The shape of every slot (index = slot).
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Prepares the gathers of batches from `train` (through an epoch order, see
    /// [`GpuExecutor::set_epoch_order`]; until one is set, the identity order) and from
    /// `test` (in order, for [`GpuExecutor::set_eval_batch`]). Both must hold images of the
    /// model's input shape. The executor keeps handles of the datasets' buffers (no copy).
    pub async fn attach(
        &mut self,
        ctx: &Context,
        train: &DeviceDataset,
        test: &DeviceDataset,
    ) -> Result<()> {
        for (what, d) in [("training", train), ("test", test)] {
            if d.image != self.model.input {
                return Err(GpuError::Validation {
                    what: format!("the {what} set"),
                    message: format!(
                        "its images are {:?} but the model '{}' takes {:?}",
                        d.image, self.model.name, self.model.input
                    ),
                });
            }
        }
        let identity = |len: usize| (0..len as u32).collect::<Vec<u32>>();
        let train_order = ctx.storage("training order", &identity(train.len))?;
        let train_crops = ctx.zeros("training crops", train.len)?;
        let test_order = ctx.storage("test order", &identity(test.len))?;
        let test_crops = ctx.zeros("test crops", 1)?;
        let x = &self.acts[0];
        let n = self.batch;
        let train_gather =
            Gather::new(ctx, train, n, &train_order, &train_crops, x, &self.labels).await?;
        let test_gather =
            Gather::new(ctx, test, n, &test_order, &test_crops, x, &self.labels).await?;
        self.data = Some(Attached {
            order_len: train.len,
            train: train.clone(),
            test: test.clone(),
            train_order,
            train_crops,
            _test_order: test_order,
            _test_crops: test_crops,
            train_gather,
            test_gather,
            augment: None,
        });
        Ok(())
    }

    fn attached(&self, what: &str) -> Result<&Attached> {
        self.data.as_ref().ok_or_else(|| GpuError::Validation {
            what: what.to_string(),
            message: "no datasets are attached to the executor (call attach first)".into(),
        })
    }

    /// Writes this epoch's order of the training set (image numbers; at most the set's
    /// length, each below it) and, to augment, one packed crop per entry
    /// ([`crate::ops::data::pack_crop`]) with their padding.
    pub fn set_epoch_order(
        &mut self,
        ctx: &Context,
        order: &[u32],
        crops: Option<(&[u32], usize)>,
    ) -> Result<()> {
        let data = self.attached("an epoch order")?;
        let len = data.train.len;
        let refuse = |message: String| {
            Err(GpuError::Validation {
                what: "an epoch order".into(),
                message,
            })
        };
        if order.is_empty() || order.len() > len {
            return refuse(format!(
                "it has {} entries; it needs 1 to {len} (the training set's size)",
                order.len()
            ));
        }
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= len) {
            return refuse(format!(
                "image {bad} is past the training set's {len} images"
            ));
        }
        if let Some((c, pad)) = crops {
            if c.len() != order.len() {
                return refuse(format!("{} crops for {} entries", c.len(), order.len()));
            }
            let span = 2 * pad as u32;
            if c.iter()
                .any(|&v| (v & 0xff) > span || ((v >> 8) & 0xff) > span)
            {
                return refuse(format!("a crop offset exceeds twice the padding {pad}"));
            }
            ctx.write(&data.train_crops, c);
        }
        ctx.write(&data.train_order, order);
        let data = self.data.as_mut().expect("attached");
        data.order_len = order.len();
        data.augment = crops.map(|(_, pad)| pad);
        Ok(())
    }

    /// Points the training gather at step `step` of the epoch: order entries
    /// `step·N .. step·N + N` (a partial last batch pads with ignored rows).
    pub fn set_train_batch(&self, ctx: &Context, step: usize) -> Result<()> {
        let d = self.attached("a training batch")?;
        d.train_gather
            .set(ctx, step * self.batch, d.order_len, d.augment);
        Ok(())
    }

    /// Points the test gather at batch `index` of the test set (in order; the last batch
    /// may be partial).
    pub fn set_eval_batch(&self, ctx: &Context, index: usize) -> Result<()> {
        let d = self.attached("a test batch")?;
        d.test_gather.set(ctx, index * self.batch, d.test.len, None);
        Ok(())
    }

    /// Batches per pass over the test set (the last one may be partial).
    pub fn eval_batches(&self) -> usize {
        self.data
            .as_ref()
            .map_or(0, |d| d.test.len.div_ceil(self.batch))
    }

    /// Forward (training mode), loss and backward writing [`GpuExecutor::grads`], on the
    /// batch in slot 0 and [`GpuExecutor::labels`]. With `update_state`, BatchNorm updates
    /// its running statistics and counters and the loss adds to the metrics; without, both
    /// are left untouched (batch statistics are still used).
    pub fn forward_backward(&self, update_state: bool) -> Vec<&Dispatch> {
        let (forward, loss) = if update_state {
            (&self.forward_train, &self.loss_accumulate)
        } else {
            (&self.forward_frozen, &self.loss_plain)
        };
        forward.iter().chain(loss).chain(&self.backward).collect()
    }

    /// The gather of the current training batch (when datasets are attached), then
    /// [`GpuExecutor::forward_backward`].
    pub fn train_pass(&self, update_state: bool) -> Vec<&Dispatch> {
        let gather = self.data.iter().flat_map(|d| d.train_gather.dispatches());
        gather.chain(self.forward_backward(update_state)).collect()
    }

    /// The gather of the current training batch (when attached) and a training-mode forward
    /// alone: BatchNorm updates its running statistics and counters, nothing else is
    /// computed. For re-calibrating the statistics after pruning (reset them with
    /// [`GpuExecutor::write_state`] first).
    pub fn recalibration_pass(&self) -> Vec<&Dispatch> {
        let gather = self.data.iter().flat_map(|d| d.train_gather.dispatches());
        gather.chain(&self.forward_train).collect()
    }

    /// Forward in eval mode, loss (not added to the metrics) and the backward of that forward
    /// (BatchNorm as the fixed affine map of its running statistics), writing
    /// [`GpuExecutor::grads`]. For gradient-based statistics of a trained model.
    pub fn forward_backward_eval(&self) -> Vec<&Dispatch> {
        self.forward_eval
            .iter()
            .chain(&self.loss_plain)
            .chain(&self.backward_eval)
            .collect()
    }

    /// Forward in eval mode on slot 0 and the loss, added to the metrics.
    pub fn forward_eval(&self) -> Vec<&Dispatch> {
        self.forward_eval
            .iter()
            .chain(&self.loss_accumulate)
            .collect()
    }

    /// The gather of the current test batch (when datasets are attached), then
    /// [`GpuExecutor::forward_eval`].
    pub fn eval_pass(&self) -> Vec<&Dispatch> {
        let gather = self.data.iter().flat_map(|d| d.test_gather.dispatches());
        gather.chain(self.forward_eval()).collect()
    }

    /// Zeroes the metrics.
    pub fn reset_metrics(&self) -> &Dispatch {
        &self.reset
    }

    /// The metrics accumulated since the last reset (never blocks in the browser). Reads go
    /// through one kept staging buffer; a read started while another is pending uses a
    /// fresh one.
    pub async fn read_metrics(&self, ctx: &Context) -> Result<Metrics> {
        let m: Vec<f32> = if self.staging_busy.swap(true, Ordering::Acquire) {
            ctx.read(&self.metrics).await?
        } else {
            let read = ctx.read_via(&self.metrics, &self.metrics_staging).await;
            self.staging_busy.store(false, Ordering::Release);
            read?
        };
        Ok(Metrics {
            loss_sum: m[0],
            correct: m[1] as usize,
            rows: m[2] as usize,
        })
    }

    fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
        if got == want {
            return Ok(());
        }
        Err(GpuError::Validation {
            what: what.to_string(),
            message: format!("it holds {got} values but the model's layout has {want}"),
        })
    }

    /// Writes the flat parameters (layout of [`Model::params`]).
    pub fn write_params(&self, ctx: &Context, params: &[f32]) -> Result<()> {
        Self::check_len("a parameter array", params.len(), self.params_len)?;
        ctx.write(&self.params, params);
        Ok(())
    }

    /// Writes the flat state (layout of [`Model::state`]).
    pub fn write_state(&self, ctx: &Context, state: &[f32]) -> Result<()> {
        Self::check_len("a state array", state.len(), self.state_len)?;
        ctx.write(&self.state, state);
        Ok(())
    }

    /// Writes an image batch `[N, C, H, W]` (normalised) into slot 0 and its labels
    /// (without the gather: tests, or batches prepared on the CPU).
    pub fn write_batch(&self, ctx: &Context, images: &[f32], labels: &[u32]) -> Result<()> {
        Self::check_len("an image batch", images.len(), self.shapes[0].numel())?;
        Self::check_len("a label batch", labels.len(), self.batch)?;
        ctx.write(&self.acts[0], images);
        ctx.write(&self.labels, labels);
        Ok(())
    }

    /// The flat parameters.
    pub async fn read_params(&self, ctx: &Context) -> Result<Vec<f32>> {
        read_len(ctx, &self.params, self.params_len).await
    }

    /// The flat gradients of the last backward.
    pub async fn read_grads(&self, ctx: &Context) -> Result<Vec<f32>> {
        read_len(ctx, &self.grads, self.params_len).await
    }

    /// The flat state (empty for a model without BatchNorm).
    pub async fn read_state(&self, ctx: &Context) -> Result<Vec<f32>> {
        read_len(ctx, &self.state, self.state_len).await
    }

    /// The activations of `slot` from the last forward (the last slot holds the logits).
    pub async fn read_slot(&self, ctx: &Context, slot: usize) -> Result<Vec<f32>> {
        ctx.read(&self.acts[slot]).await
    }

    /// The labels of the current batch.
    pub async fn read_labels(&self, ctx: &Context) -> Result<Vec<u32>> {
        ctx.read(&self.labels).await
    }
}

/// The first `len` values of `buffer` (buffers hold at least one word, even when empty).
/// Refuses, before allocating anything, a model whose largest buffer at `batch` exceeds the
/// adapter's per-buffer limits ([`super::memory`]), naming the batch that would fit.
fn check_memory(ctx: &Context, model: &Model, batch: usize) -> Result<()> {
    let Ok(memory) = super::memory::gpu_memory(model, batch) else {
        return Ok(()); // shape errors are reported by the caller's shape inference
    };
    let limits = &ctx.report.limits;
    let allowed = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if memory.largest.1 <= allowed {
        return Ok(());
    }
    use super::memory::human;
    let fits = memory.largest_batch_within(allowed);
    let advice = if fits == 0 {
        "not even one image fits; use a smaller model".to_string()
    } else {
        format!("use a batch of at most {fits}")
    };
    Err(GpuError::Validation {
        what: format!("the model '{}' at batch {batch}", model.name),
        message: format!(
            "its largest buffer ({}) needs {} and this adapter allows {} per buffer; the \
             executor needs {} in all ({} per image); {advice}, or a GPU with larger limits.",
            memory.largest.0,
            human(memory.largest.1),
            human(allowed),
            human(memory.total()),
            human(memory.per_image()),
        ),
    })
}

async fn read_len(ctx: &Context, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let mut v: Vec<f32> = ctx.read(buffer).await?;
    v.truncate(len);
    Ok(v)
}
