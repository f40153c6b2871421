//! The GPU engine of a run: one submit per step, metrics read back only at curve points.

use std::rc::Rc;

use super::{normalisation, Engine, Eval, Measured, Run, StepInput, TrainError};
use crate::data::augment::{Crop, CIFAR_PAD};
use crate::data::Split;
use crate::exec::{DeviceDataset, GpuExecutor};
use crate::gpu::Context;
use crate::nn::{Model, ParamTable, StateKind};
use crate::ops::data::pack_crop;
use crate::optim::{GpuOptimizer, OptimConfig};

/// The datasets uploaded once per experiment, and the device they live on.
#[derive(Clone)]
pub struct GpuData {
    pub ctx: Rc<Context>,
    pub train: DeviceDataset,
    pub test: DeviceDataset,
}

impl GpuData {
    /// Uploads both halves of `split` (normalised on the device by the gather kernel).
    pub fn new(ctx: Rc<Context>, split: &Split) -> Result<GpuData, TrainError> {
        let (mean, std) = normalisation(&split.train);
        Ok(GpuData {
            train: DeviceDataset::new(&ctx, &split.train, mean, std)?,
            test: DeviceDataset::new(&ctx, &split.test, mean, std)?,
            ctx,
        })
    }
}

/// The GPU side of a run: one submit per step, metrics read back only at the curve points.
pub(crate) struct GpuEngine {
    ctx: Rc<Context>,
    exec: GpuExecutor,
    opt: GpuOptimizer,
    /// CPU copies of the weights: the initial ones, then those of the last `sync`.
    params: Vec<f32>,
    state: Vec<f32>,
    /// The metrics buffer holds a finished window and must be zeroed with the next step.
    reset_pending: bool,
}

impl GpuEngine {
    /// The engine of `model` at batch `batch` on `data`'s device, from the initial `params`
    /// and `state`.
    pub(crate) async fn new(
        data: &GpuData,
        model: &Model,
        table: &ParamTable,
        optim: &OptimConfig,
        seed: u64,
        batch: usize,
        (params, state): (Vec<f32>, Vec<f32>),
    ) -> Result<GpuEngine, TrainError> {
        let ctx = data.ctx.clone();
        let mut exec = GpuExecutor::new(&ctx, model, batch).await?;
        exec.attach(&ctx, &data.train, &data.test).await?;
        exec.write_params(&ctx, &params)?;
        exec.write_state(&ctx, &state)?;
        let opt = GpuOptimizer::new(&ctx, optim, table, &exec.params, &exec.grads, seed).await?;
        ctx.submit(&[exec.reset_metrics()])?;
        Ok(GpuEngine {
            ctx,
            exec,
            opt,
            params,
            state,
            reset_pending: false,
        })
    }
}

impl Engine for GpuEngine {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn params(&self) -> (&[f32], &[f32]) {
        (&self.params, &self.state)
    }

    /// Reads the device's weights back into the CPU copies.
    async fn sync(&mut self) -> Result<(), TrainError> {
        self.params = self.exec.read_params(&self.ctx).await?;
        self.state = self.exec.read_state(&self.ctx).await?;
        Ok(())
    }

    /// One submit: (metrics reset,) gather, forward, loss, backward, optimizer. At `log`,
    /// the window's metrics and the optimizer's telemetry are read back (asynchronously).
    async fn step(
        &mut self,
        run: &Run<'_>,
        s: StepInput<'_>,
    ) -> Result<Option<Measured>, TrainError> {
        let ctx = self.ctx.clone();
        if s.in_epoch == 0 {
            let crops: Option<Vec<u32>> = s.augment.map(|rng| {
                let used = s.steps_per_epoch * run.batch;
                (0..s.order.len())
                    .map(|i| {
                        let crop = if i < used {
                            Crop::random(CIFAR_PAD, rng)
                        } else {
                            Crop::identity(CIFAR_PAD)
                        };
                        pack_crop(&crop)
                    })
                    .collect()
            });
            let crops = crops.as_ref().map(|c| (&c[..], CIFAR_PAD));
            self.exec.set_epoch_order(&ctx, s.order, crops)?;
        }
        self.exec.set_train_batch(&ctx, s.in_epoch)?;
        self.opt.set_step(&ctx, s.lr)?;
        {
            let first = self.exec.train_pass(true);
            let second = self.exec.forward_backward(false);
            let mut list = Vec::with_capacity(first.len() * 2 + 16);
            if self.reset_pending {
                list.push(self.exec.reset_metrics());
            }
            list.extend(self.opt.step_dispatches(&first, &second));
            ctx.submit(&list)?;
        }
        self.reset_pending = false;
        if !s.log {
            return Ok(None);
        }
        let m = self.exec.read_metrics(&ctx).await?;
        self.reset_pending = true;
        let tel = self.opt.read_telemetry(&ctx).await?;
        Ok(Some(Measured {
            loss: m.loss_sum / m.rows.max(1) as f32,
            correct: m.correct,
            steps: (m.rows / run.batch).max(1),
            reg: tel.iter().map(|t| t.penalty).sum(),
            layer_var: Some(tel.iter().map(|t| t.var as f64).collect()),
        }))
    }

    /// Given weights replace the trained ones on the device (done only after training).
    async fn evaluate(
        &mut self,
        _run: &Run<'_>,
        weights: Option<(&[f32], &[f32])>,
    ) -> Result<Eval, TrainError> {
        let ctx = self.ctx.clone();
        if let Some((params, state)) = weights {
            self.exec.write_params(&ctx, params)?;
            self.exec.write_state(&ctx, state)?;
        }
        // Training's metrics of this window were read at the epoch's end.
        ctx.submit(&[self.exec.reset_metrics()])?;
        for b in 0..self.exec.eval_batches() {
            self.exec.set_eval_batch(&ctx, b)?;
            ctx.submit(&self.exec.eval_pass())?;
        }
        let m = self.exec.read_metrics(&ctx).await?;
        self.reset_pending = true;
        let rows = m.rows.max(1) as f32;
        Ok(Eval {
            loss: m.loss_sum / rows,
            accuracy: m.correct as f32 / rows,
        })
    }

    /// Momentum is fixed (0.1) on the GPU: each batch starts from the fresh statistics s₀,
    /// so its own statistic is b = (s − 0.9·s₀)/0.1; the batches' statistics are averaged
    /// on the CPU.
    async fn recalibrate(
        &mut self,
        run: &Run<'_>,
        params: &[f32],
        fresh: &[f32],
        count: usize,
    ) -> Result<Vec<f32>, TrainError> {
        let ctx = self.ctx.clone();
        let b = run.batch;
        let order: Vec<u32> = (0..(count * b) as u32).collect();
        self.exec.set_epoch_order(&ctx, &order, None)?;
        self.exec.write_params(&ctx, params)?;
        let mut sum = vec![0.0f64; fresh.len()];
        for k in 0..count {
            self.exec.write_state(&ctx, fresh)?;
            self.exec.set_train_batch(&ctx, k)?;
            ctx.submit(&self.exec.recalibration_pass())?;
            let after = self.exec.read_state(&ctx).await?;
            for ((acc, &s), &s0) in sum.iter_mut().zip(&after).zip(fresh) {
                *acc += ((s - 0.9 * s0) / 0.1) as f64;
            }
        }
        let mut state = fresh.to_vec();
        for s in &run.model.state().entries {
            if s.kind == StateKind::NumBatchesTracked {
                state[s.range()].fill(count as f32);
            } else {
                for i in s.range() {
                    state[i] = (sum[i] / count as f64) as f32;
                }
            }
        }
        Ok(state)
    }
}
