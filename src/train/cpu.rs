//! The CPU engine of a run: the CPU executor, flat weight arrays and the CPU optimizer.

use super::{Engine, Eval, Measured, Run, StepInput, TrainError};
use crate::data::augment::{augment_batch, Shape as ImageShape, CIFAR_PAD};
use crate::exec::CpuExecutor;
use crate::nn::{Model, ParamTable};
use crate::ops::loss::softmax_cross_entropy_cpu;
use crate::optim::{CpuOptimizer, OptimConfig};

/// The CPU side of a run: executor, flat arrays and the optimizer.
pub(crate) struct CpuEngine {
    exec: CpuExecutor,
    params: Vec<f32>,
    state: Vec<f32>,
    opt: CpuOptimizer,
    images: Vec<f32>,
    labels: Vec<u32>,
    /// BatchNorm state for SAM's/CrAM's second pass, which must not update the real one.
    scratch_state: Vec<f32>,
    /// Evaluation executors: full batches, and the last partial one.
    eval: Option<(CpuExecutor, Option<CpuExecutor>)>,
}

impl CpuEngine {
    /// The engine of `model` at batch `batch`, from the initial `params` and `state`.
    pub(crate) fn new(
        model: &Model,
        table: &ParamTable,
        optim: &OptimConfig,
        seed: u64,
        batch: usize,
        image_len: usize,
        (params, state): (Vec<f32>, Vec<f32>),
    ) -> Result<CpuEngine, TrainError> {
        Ok(CpuEngine {
            exec: CpuExecutor::new(model, batch)?,
            opt: CpuOptimizer::new(optim, table, seed)?,
            params,
            state,
            images: vec![0.0; batch * image_len],
            labels: vec![0; batch],
            scratch_state: Vec::new(),
            eval: None,
        })
    }
}

impl Engine for CpuEngine {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn params(&self) -> (&[f32], &[f32]) {
        (&self.params, &self.state)
    }

    async fn sync(&mut self) -> Result<(), TrainError> {
        Ok(())
    }

    /// Gathers (and augments) the batch, then one optimizer step; measures every step.
    async fn step(
        &mut self,
        run: &Run<'_>,
        s: StepInput<'_>,
    ) -> Result<Option<Measured>, TrainError> {
        let b = run.batch;
        let idx = &s.order[s.in_epoch * b..(s.in_epoch + 1) * b];
        let train = &run.split.train;
        run.norm
            .gather(train, idx, &mut self.images, &mut self.labels);
        if let Some(rng) = s.augment {
            let shape = ImageShape {
                channels: train.channels,
                height: train.height,
                width: train.width,
            };
            augment_batch(shape, CIFAR_PAD, &mut self.images, rng);
        }
        let (exec, images, labels) = (&mut self.exec, &self.images, &self.labels);
        let (state, scratch_state) = (&mut self.state, &mut self.scratch_state);
        let mut grad = |p: &[f32], first: bool, g: &mut [f32]| {
            let st = if first {
                &mut *state
            } else {
                scratch_state.clear();
                scratch_state.extend_from_slice(state);
                &mut *scratch_state
            };
            exec.forward(p, st, images, true);
            exec.loss_and_backward(p, labels, g)
        };
        let report = self.opt.step(&mut self.params, s.lr, &mut grad);
        // At curve points, the regulariser and the layers' variance of |w| at the weights
        // after the step (as the GPU engine reads them).
        let (reg, layer_var) = if s.log {
            let tel = self.opt.telemetry(&self.params);
            let reg = tel.iter().map(|t| t.penalty).sum();
            (reg, Some(tel.iter().map(|t| t.var as f64).collect()))
        } else {
            (report.reg, None)
        };
        Ok(Some(Measured {
            loss: report.loss,
            correct: report.correct,
            steps: 1,
            reg,
            layer_var,
        }))
    }

    async fn evaluate(
        &mut self,
        run: &Run<'_>,
        weights: Option<(&[f32], &[f32])>,
    ) -> Result<Eval, TrainError> {
        let test = &run.split.test;
        let n = test.len();
        let b = run.batch.min(n);
        if self.eval.is_none() {
            let tail = n % b;
            let tail_exec = if tail > 0 {
                Some(CpuExecutor::new(run.model, tail)?)
            } else {
                None
            };
            self.eval = Some((CpuExecutor::new(run.model, b)?, tail_exec));
        }
        let (params, state) = weights.unwrap_or((&self.params, &self.state));
        let mut state = state.to_vec();
        let (full, tail) = self.eval.as_mut().expect("built above");
        let len = test.image_len();
        let mut images = vec![0.0; b * len];
        let mut labels = vec![0u32; b];
        let classes = run.model.classes;
        let mut dlogits = vec![0.0; b * classes];
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let all: Vec<u32> = (0..n as u32).collect();
        for chunk in all.chunks(b) {
            let exec = if chunk.len() == b {
                &mut *full
            } else {
                tail.as_mut()
                    .expect("a tail executor for the partial batch")
            };
            let m = chunk.len();
            run.norm
                .gather(test, chunk, &mut images[..m * len], &mut labels[..m]);
            let logits = exec.forward(params, &mut state, &images[..m * len], false);
            // Loss and argmax from the logits alone: no backward for an evaluation.
            let x = softmax_cross_entropy_cpu(
                m,
                classes,
                logits,
                &labels[..m],
                &mut dlogits[..m * classes],
            );
            loss_sum += x.loss_sum as f64;
            correct += x.correct as usize;
        }
        Ok(Eval {
            loss: (loss_sum / n as f64) as f32,
            accuracy: correct as f32 / n as f32,
        })
    }

    /// Forward passes in training mode with the momentum 1/(k+1): the plain average of the
    /// batches' statistics.
    async fn recalibrate(
        &mut self,
        run: &Run<'_>,
        params: &[f32],
        fresh: &[f32],
        count: usize,
    ) -> Result<Vec<f32>, TrainError> {
        let b = run.batch;
        let mut state = fresh.to_vec();
        let train = &run.split.train;
        let len = train.image_len();
        let mut imgs = vec![0.0; b * len];
        let mut labels = vec![0u32; b];
        for k in 0..count {
            let idx: Vec<u32> = (k * b..(k + 1) * b).map(|i| i as u32).collect();
            run.norm.gather(train, &idx, &mut imgs, &mut labels);
            self.exec.set_bn_momentum(1.0 / (k + 1) as f32);
            self.exec.forward(params, &mut state, &imgs, true);
        }
        self.exec.set_bn_momentum(0.1);
        Ok(state)
    }
}
