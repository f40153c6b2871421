//! One training run: a model, an optimizer, a seed — stepped one batch at a time so that
//! every front end (the page's event loop, the CLI, tests) can show progress, pause and
//! cancel between steps.
//!
//! - Seeded: the initial weights come from `Model::init_params(seed)`, the epoch orders and
//!   augmentations from [`Rng`]s derived from the same seed, so a seed and a config give the
//!   same run on the same executor.
//! - Learning rate: linear warm-up from 0 over `warmup_epochs`, then the [`Schedule`].
//! - Batches: each epoch is a fresh shuffle of the training subset, cut into
//!   `len / batch` full batches (the remainder is dropped; a new shuffle next epoch).
//! - After every epoch the whole test subset is evaluated.
//! - Divergence: a NaN or infinite loss, or a mean loss above [`diverged_above`] (100 ×
//!   ln(classes), ≈ 230 for 10 classes: a network that guesses uniformly has ln(classes)),
//!   stops the run with [`TrainError::Diverged`]; the curves keep the last good points.

use std::rc::Rc;
use std::sync::Arc;

use crate::data::augment::{augment_batch, Crop, Shape as ImageShape, CIFAR_PAD};
use crate::data::{Dataset, Split};
use crate::exec::{CpuExecutor, DeviceDataset, GpuExecutor};
use crate::gpu::Context;
use crate::nn::Init;
use crate::nn::StateKind;
use crate::nn::{Model, ParamTable, SpecError, StateTable};
use crate::ops::data::pack_crop;
use crate::ops::loss::softmax_cross_entropy_cpu;
use crate::optim::GpuOptimizer;
use crate::optim::{CpuOptimizer, OptimConfig, OptimError};
use crate::rng::Rng;
use crate::time::now;

/// Why a run stopped early or could not start, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error(
        "Training diverged at step {step}: the loss became {loss:e}. The last good metrics are \
         kept; try a smaller learning rate (or a smaller λ/ρ)."
    )]
    Diverged { step: usize, loss: f32 },
}

/// The training loss above which a run counts as diverged: 100 × ln(`classes`), a hundred
/// times the cross-entropy of a uniform guess (≈ 230 for 10 classes). A loss of 1e15 that
/// never reaches NaN is as broken as one that does.
pub fn diverged_above(classes: usize) -> f32 {
    100.0 * (classes.max(2) as f32).ln()
}

/// The learning rate at `step` of `total` (warm-up over `warmup` steps, then `schedule`).
/// The learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Half a cosine from `lr` down to 0 at the last step.
    Cosine,
    /// `lr`, then `lr/10` from 50% of the steps and `lr/100` from 75%.
    Step,
    Constant,
}

/// What one run needs to know besides its optimizer, seed and data: made by
/// `experiment::Config::run_config`, so a run knows nothing of the experiment around it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// A model preset name (`Model::by_name`) and its initialisation.
    pub model: String,
    pub init: Init,
    pub batch: usize,
    pub epochs: usize,
    pub lr: f32,
    pub schedule: Schedule,
    /// Linear warm-up from 0 over this many epochs.
    pub warmup_epochs: f32,
    /// Random crop and flip of training images.
    pub augment: bool,
}

impl RunConfig {
    /// The model for images `[C, H, W]` and `classes`, with its `init`.
    pub fn build_model(&self, input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
        Ok(Model::by_name(&self.model, input, classes)?.with_init(self.init))
    }
}

pub fn learning_rate(lr: f32, schedule: Schedule, warmup: usize, step: usize, total: usize) -> f32 {
    if step < warmup {
        return lr * (step + 1) as f32 / warmup as f32;
    }
    let span = total.saturating_sub(warmup).max(1) as f32;
    let t = (step - warmup) as f32 / span;
    match schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => 0.5 * lr * (1.0 + (std::f32::consts::PI * t).cos()),
        Schedule::Step if t >= 0.75 => lr * 0.01,
        Schedule::Step if t >= 0.5 => lr * 0.1,
        Schedule::Step => lr,
    }
}

/// Per-channel normalisation of a dataset: `x·scale[c] + shift[c]` for a byte `x`.
#[derive(Clone, Debug)]
pub struct Normalize {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl Normalize {
    /// `(x/255 − mean)/std` per channel.
    pub fn new(mean: &[f32], std: &[f32]) -> Normalize {
        let (scale, shift) = mean
            .iter()
            .zip(std)
            .map(|(&m, &s)| (1.0 / (255.0 * s), -m / s))
            .unzip();
        Normalize { scale, shift }
    }

    /// For the dataset (CIFAR-10's or MNIST's statistics, by channel count).
    pub fn for_dataset(ds: &Dataset) -> Normalize {
        let (mean, std) = normalisation(ds);
        Normalize::new(mean, std)
    }

    /// Writes images `indices` of `ds` into `out` (NCHW f32) and their labels into `labels`.
    pub fn gather(&self, ds: &Dataset, indices: &[u32], out: &mut [f32], labels: &mut [u32]) {
        let len = ds.image_len();
        let plane = ds.height * ds.width;
        for (j, &i) in indices.iter().enumerate() {
            let img = ds.image(i as usize).expect("index within the dataset");
            let dst = &mut out[j * len..(j + 1) * len];
            for c in 0..ds.channels {
                let (a, b) = (self.scale[c], self.shift[c]);
                for (o, &x) in dst[c * plane..(c + 1) * plane]
                    .iter_mut()
                    .zip(&img[c * plane..(c + 1) * plane])
                {
                    *o = x as f32 * a + b;
                }
            }
            labels[j] = ds.labels[i as usize] as u32;
        }
    }
}

/// The per-channel mean and std of `ds`'s kind (CIFAR-10 for 3 channels, else MNIST).
pub fn normalisation(ds: &Dataset) -> (&'static [f32], &'static [f32]) {
    if ds.channels == 3 {
        (&crate::data::CIFAR10_MEAN, &crate::data::CIFAR10_STD)
    } else {
        (&crate::data::MNIST_MEAN, &crate::data::MNIST_STD)
    }
}

/// A seeded Fisher–Yates shuffle of `0..n`.
pub fn shuffled(n: usize, rng: &mut Rng) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Loss and accuracy over a whole split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub loss: f32,
    pub accuracy: f32,
}

/// The points the charts draw, one every `log_every` steps (means over the window), and the
/// test accuracy after each epoch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Curves {
    pub step: Vec<usize>,
    pub loss: Vec<f32>,
    pub train_acc: Vec<f32>,
    /// The regulariser's value (λψ for VAR, the ℓ1/Hoyer penalty), 0 without one.
    pub reg: Vec<f32>,
    /// Epoch numbers (1-based) of `test_acc`.
    pub epoch: Vec<usize>,
    pub test_acc: Vec<f32>,
}

/// The CPU side of a run: executor, flat arrays and the optimizer.
struct CpuEngine {
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
struct GpuEngine {
    ctx: Rc<Context>,
    exec: GpuExecutor,
    opt: GpuOptimizer,
    /// CPU copies of the weights: the initial ones, then those of the last [`Trainer::sync`].
    params: Vec<f32>,
    state: Vec<f32>,
    /// The metrics buffer holds a finished window and must be zeroed with the next step.
    reset_pending: bool,
}

enum Engine {
    Cpu(Box<CpuEngine>),
    Gpu(Box<GpuEngine>),
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub epoch: usize,
    pub epochs: usize,
    pub loss: f32,
    pub train_acc: f32,
    pub reg: f32,
    pub images_per_s: f32,
    pub eta_s: f32,
    /// Set on the step that finished an epoch: the test accuracy after it.
    pub test_acc: Option<f32>,
}

/// One run, stepped from outside.
pub struct Trainer {
    pub model: Model,
    pub table: ParamTable,
    split: Arc<Split>,
    norm: Normalize,
    engine: Engine,
    batch: usize,
    epochs: usize,
    lr: f32,
    schedule: Schedule,
    warmup: usize,
    augment: bool,
    steps_per_epoch: usize,
    step: usize,
    order: Vec<u32>,
    shuffle_rng: Rng,
    augment_rng: Rng,
    log_every: usize,
    window: (f64, usize, usize, f32),
    last: (f32, f32, f32),
    pub curves: Curves,
    /// Per prunable tensor (table order), the variance of |w| at each curve point.
    pub layer_var: Vec<Vec<f64>>,
    /// The test evaluation after the last finished epoch.
    pub last_eval: Option<Eval>,
    train_seconds: f64,
}

impl Trainer {
    /// Builds the model for `split` and the optimizer `optim`, initialised from `seed`, on
    /// the GPU when `gpu` is given (its datasets must be `split`'s), else on the CPU.
    pub async fn new(
        config: &RunConfig,
        optim: &OptimConfig,
        seed: u64,
        split: Arc<Split>,
        gpu: Option<&GpuData>,
    ) -> Result<Trainer, TrainError> {
        let train = &split.train;
        let input = [train.channels, train.height, train.width];
        let model = config.build_model(input, train.classes)?;
        let table = model.params();
        let batch = config.batch.min(train.len()).max(1);
        let (params, state) = model.init_params(seed);
        let steps_per_epoch = (train.len() / batch).max(1);
        let steps = steps_per_epoch * config.epochs;
        let layer_var = vec![Vec::new(); table.entries.iter().filter(|p| p.prunable).count()];
        let norm = Normalize::for_dataset(train);
        let image_len = train.image_len();
        let engine = match gpu {
            None => Engine::Cpu(Box::new(CpuEngine {
                exec: CpuExecutor::new(&model, batch)?,
                opt: CpuOptimizer::new(optim, &table, seed)?,
                params,
                state,
                images: vec![0.0; batch * image_len],
                labels: vec![0; batch],
                scratch_state: Vec::new(),
                eval: None,
            })),
            Some(g) => {
                let ctx = g.ctx.clone();
                let mut exec = GpuExecutor::new(&ctx, &model, batch).await?;
                exec.attach(&ctx, &g.train, &g.test).await?;
                exec.write_params(&ctx, &params)?;
                exec.write_state(&ctx, &state)?;
                let opt =
                    GpuOptimizer::new(&ctx, optim, &table, &exec.params, &exec.grads, seed).await?;
                ctx.submit(&[exec.reset_metrics()])?;
                Engine::Gpu(Box::new(GpuEngine {
                    ctx,
                    exec,
                    opt,
                    params,
                    state,
                    reset_pending: false,
                }))
            }
        };
        Ok(Trainer {
            engine,
            model,
            table,
            norm,
            batch,
            epochs: config.epochs,
            lr: config.lr,
            schedule: config.schedule,
            warmup: (config.warmup_epochs * steps_per_epoch as f32).round() as usize,
            augment: config.augment,
            steps_per_epoch,
            step: 0,
            order: Vec::new(),
            shuffle_rng: Rng::new(seed ^ 0x5348_5546_464c_4521),
            augment_rng: Rng::new(seed ^ 0x4155_474d_454e_5421),
            log_every: (steps / 200).max(1),
            window: (0.0, 0, 0, 0.0),
            last: (f32::NAN, f32::NAN, 0.0),
            curves: Curves::default(),
            layer_var,
            last_eval: None,
            train_seconds: 0.0,
            split,
        })
    }

    pub fn steps(&self) -> usize {
        self.steps_per_epoch * self.epochs
    }

    pub fn done(&self) -> bool {
        self.step >= self.steps()
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Seconds spent in training steps so far.
    pub fn train_seconds(&self) -> f64 {
        self.train_seconds
    }

    /// The weights and BatchNorm state: current on the CPU executor; on the GPU as of the
    /// last [`Trainer::sync`].
    pub fn params(&self) -> (&[f32], &[f32]) {
        match &self.engine {
            Engine::Cpu(e) => (&e.params, &e.state),
            Engine::Gpu(g) => (&g.params, &g.state),
        }
    }

    /// `gpu` or `cpu`.
    pub fn executor(&self) -> &'static str {
        match self.engine {
            Engine::Cpu(_) => "cpu",
            Engine::Gpu(_) => "gpu",
        }
    }

    /// Reads the GPU's weights back into [`Trainer::params`] (nothing to do on the CPU).
    pub async fn sync(&mut self) -> Result<(), TrainError> {
        if let Engine::Gpu(g) = &mut self.engine {
            g.params = g.exec.read_params(&g.ctx).await?;
            g.state = g.exec.read_state(&g.ctx).await?;
        }
        Ok(())
    }

    /// One training step (and, after the epoch's last step, the test evaluation).
    pub async fn step(&mut self) -> Result<Progress, TrainError> {
        let t0 = now();
        let in_epoch = self.step % self.steps_per_epoch;
        if in_epoch == 0 {
            self.order = shuffled(self.split.train.len(), &mut self.shuffle_rng);
        }
        let lr = learning_rate(self.lr, self.schedule, self.warmup, self.step, self.steps());
        self.step += 1;
        let log =
            self.step % self.log_every == 0 || self.step % self.steps_per_epoch == 0 || self.done();
        match &mut self.engine {
            Engine::Cpu(_) => self.cpu_step(in_epoch, lr, log)?,
            Engine::Gpu(_) => self.gpu_step(in_epoch, lr, log).await?,
        }
        if log {
            let w = &mut self.window;
            if w.2 > 0 {
                self.curves.step.push(self.step);
                self.curves.loss.push((w.0 / w.2 as f64) as f32);
                self.curves
                    .train_acc
                    .push(w.1 as f32 / (w.2 * self.batch) as f32);
                self.curves.reg.push(w.3);
            }
            *w = (0.0, 0, 0, 0.0);
        }
        self.train_seconds += now() - t0;
        let mut test_acc = None;
        if self.step % self.steps_per_epoch == 0 {
            let eval = self.evaluate(None).await?;
            self.last_eval = Some(eval);
            self.curves.epoch.push(self.step / self.steps_per_epoch);
            self.curves.test_acc.push(eval.accuracy);
            test_acc = Some(eval.accuracy);
        }
        let ips = (self.step * self.batch) as f64 / self.train_seconds.max(1e-9);
        let remaining = (self.steps() - self.step) * self.batch;
        Ok(Progress {
            step: self.step,
            steps: self.steps(),
            epoch: self.step.div_ceil(self.steps_per_epoch).max(1) - 1,
            epochs: self.epochs,
            loss: self.last.0,
            train_acc: self.last.1,
            reg: self.last.2,
            images_per_s: ips as f32,
            eta_s: (remaining as f64 / ips.max(1e-9)) as f32,
            test_acc,
        })
    }

    /// Records a finished window of `steps` steps (mean loss, correct count, regulariser)
    /// or stops on a non-finite loss.
    fn record(
        &mut self,
        loss: f32,
        correct: usize,
        steps: usize,
        reg: f32,
    ) -> Result<(), TrainError> {
        if !loss.is_finite() || loss > diverged_above(self.model.classes) {
            return Err(TrainError::Diverged {
                step: self.step,
                loss,
            });
        }
        self.last = (loss, correct as f32 / (steps * self.batch) as f32, reg);
        let w = &mut self.window;
        w.0 += loss as f64 * steps as f64;
        w.1 += correct;
        w.2 += steps;
        w.3 = reg;
        Ok(())
    }

    fn cpu_step(&mut self, in_epoch: usize, lr: f32, log: bool) -> Result<(), TrainError> {
        let Engine::Cpu(e) = &mut self.engine else {
            unreachable!("cpu_step on the CPU engine")
        };
        let idx = &self.order[in_epoch * self.batch..(in_epoch + 1) * self.batch];
        self.norm
            .gather(&self.split.train, idx, &mut e.images, &mut e.labels);
        if self.augment {
            let ds = &self.split.train;
            let shape = ImageShape {
                channels: ds.channels,
                height: ds.height,
                width: ds.width,
            };
            augment_batch(shape, CIFAR_PAD, &mut e.images, &mut self.augment_rng);
        }
        let (exec, images, labels) = (&mut e.exec, &e.images, &e.labels);
        let (state, scratch_state) = (&mut e.state, &mut e.scratch_state);
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
        let report = e.opt.step(&mut e.params, lr, &mut grad);
        // At curve points, the regulariser and the layers' variance of |w| at the weights
        // after the step (as the GPU engine reads them).
        let reg = if log {
            let tel = e.opt.telemetry(&e.params);
            for (series, t) in self.layer_var.iter_mut().zip(&tel) {
                series.push(t.var as f64);
            }
            tel.iter().map(|t| t.penalty).sum()
        } else {
            report.reg
        };
        self.record(report.loss, report.correct, 1, reg)?;
        Ok(())
    }

    /// One submit: (metrics reset,) gather, forward, loss, backward, optimizer. At `log`,
    /// the window's metrics and the optimizer's telemetry are read back (asynchronously).
    async fn gpu_step(&mut self, in_epoch: usize, lr: f32, log: bool) -> Result<(), TrainError> {
        let Engine::Gpu(g) = &mut self.engine else {
            unreachable!("gpu_step on the GPU engine")
        };
        let ctx = g.ctx.clone();
        if in_epoch == 0 {
            let crops: Option<Vec<u32>> = self.augment.then(|| {
                let used = self.steps_per_epoch * self.batch;
                (0..self.order.len())
                    .map(|i| {
                        let crop = if i < used {
                            Crop::random(CIFAR_PAD, &mut self.augment_rng)
                        } else {
                            Crop::identity(CIFAR_PAD)
                        };
                        pack_crop(&crop)
                    })
                    .collect()
            });
            let crops = crops.as_ref().map(|c| (&c[..], CIFAR_PAD));
            g.exec.set_epoch_order(&ctx, &self.order, crops)?;
        }
        g.exec.set_train_batch(&ctx, in_epoch)?;
        g.opt.set_step(&ctx, lr);
        {
            let first = g.exec.train_pass(true);
            let second = g.exec.forward_backward(false);
            let mut list = Vec::with_capacity(first.len() * 2 + 16);
            if g.reset_pending {
                list.push(g.exec.reset_metrics());
            }
            list.extend(g.opt.step_dispatches(&first, &second));
            ctx.submit(&list)?;
        }
        g.reset_pending = false;
        if !log {
            return Ok(());
        }
        let m = g.exec.read_metrics(&ctx).await?;
        g.reset_pending = true;
        let tel = g.opt.read_telemetry(&ctx).await?;
        let reg: f32 = tel.iter().map(|t| t.penalty).sum();
        for (series, t) in self.layer_var.iter_mut().zip(&tel) {
            series.push(t.var as f64);
        }
        let steps = m.rows / self.batch;
        let loss = m.loss_sum / m.rows.max(1) as f32;
        self.record(loss, m.correct, steps.max(1), reg)
    }

    /// Loss and accuracy on the whole test subset, with the trained weights or with
    /// `weights = (params, state)` (e.g. pruned); BatchNorm in eval mode. On the GPU, given
    /// weights replace the trained ones on the device (done only after training).
    pub async fn evaluate(
        &mut self,
        weights: Option<(&[f32], &[f32])>,
    ) -> Result<Eval, TrainError> {
        match &mut self.engine {
            Engine::Cpu(_) => self.cpu_evaluate(weights),
            Engine::Gpu(g) => {
                let ctx = g.ctx.clone();
                if let Some((params, state)) = weights {
                    g.exec.write_params(&ctx, params)?;
                    g.exec.write_state(&ctx, state)?;
                }
                // Training's metrics of this window were read at the epoch's end.
                ctx.submit(&[g.exec.reset_metrics()])?;
                for b in 0..g.exec.eval_batches() {
                    g.exec.set_eval_batch(&ctx, b)?;
                    ctx.submit(&g.exec.eval_pass())?;
                }
                let m = g.exec.read_metrics(&ctx).await?;
                g.reset_pending = true;
                let rows = m.rows.max(1) as f32;
                Ok(Eval {
                    loss: m.loss_sum / rows,
                    accuracy: m.correct as f32 / rows,
                })
            }
        }
    }

    fn cpu_evaluate(&mut self, weights: Option<(&[f32], &[f32])>) -> Result<Eval, TrainError> {
        let Engine::Cpu(e) = &mut self.engine else {
            unreachable!("cpu_evaluate on the CPU engine")
        };
        let test = &self.split.test;
        let n = test.len();
        let b = self.batch.min(n);
        if e.eval.is_none() {
            let tail = n % b;
            let tail_exec = if tail > 0 {
                Some(CpuExecutor::new(&self.model, tail)?)
            } else {
                None
            };
            e.eval = Some((CpuExecutor::new(&self.model, b)?, tail_exec));
        }
        let (params, state) = weights.unwrap_or((&e.params, &e.state));
        let mut state = state.to_vec();
        let (full, tail) = e.eval.as_mut().expect("built above");
        let len = test.image_len();
        let mut images = vec![0.0; b * len];
        let mut labels = vec![0u32; b];
        let classes = self.model.classes;
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
            self.norm
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

    /// Re-estimates the BatchNorm running statistics of `params` from the first `images`
    /// training images (at least one batch; forward only, training mode, the plain average
    /// over the batches as PyTorch's `momentum=None`); returns the new state. Without
    /// BatchNorm, the trained state is returned unchanged. Only after training.
    pub async fn recalibrate(
        &mut self,
        params: &[f32],
        images: usize,
    ) -> Result<Vec<f32>, TrainError> {
        let table = self.model.state();
        let mut state = self.params().1.to_vec();
        if table.entries.is_empty() || images == 0 {
            return Ok(state);
        }
        let fresh = fresh_state(&table, &state);
        let b = self.batch;
        let count = (images.min(self.split.train.len()) / b).max(1);
        match &mut self.engine {
            Engine::Cpu(e) => {
                state = fresh;
                let train = &self.split.train;
                let len = train.image_len();
                let mut imgs = vec![0.0; b * len];
                let mut labels = vec![0u32; b];
                for k in 0..count {
                    let idx: Vec<u32> = (k * b..(k + 1) * b).map(|i| i as u32).collect();
                    self.norm.gather(train, &idx, &mut imgs, &mut labels);
                    e.exec.set_bn_momentum(1.0 / (k + 1) as f32);
                    e.exec.forward(params, &mut state, &imgs, true);
                }
                e.exec.set_bn_momentum(0.1);
            }
            Engine::Gpu(g) => {
                // Momentum is fixed (0.1) on the GPU: each batch starts from the fresh
                // statistics s₀, so its own statistic is b = (s − 0.9·s₀)/0.1; the batches'
                // statistics are averaged on the CPU.
                let ctx = g.ctx.clone();
                let order: Vec<u32> = (0..(count * b) as u32).collect();
                g.exec.set_epoch_order(&ctx, &order, None)?;
                g.exec.write_params(&ctx, params)?;
                let mut sum = vec![0.0f64; state.len()];
                for k in 0..count {
                    g.exec.write_state(&ctx, &fresh)?;
                    g.exec.set_train_batch(&ctx, k)?;
                    ctx.submit(&g.exec.recalibration_pass())?;
                    let after = g.exec.read_state(&ctx).await?;
                    for ((acc, &s), &s0) in sum.iter_mut().zip(&after).zip(&fresh) {
                        *acc += ((s - 0.9 * s0) / 0.1) as f64;
                    }
                }
                state = fresh;
                for s in &table.entries {
                    if s.kind == StateKind::NumBatchesTracked {
                        state[s.range()].fill(count as f32);
                    } else {
                        for i in s.range() {
                            state[i] = (sum[i] / count as f64) as f32;
                        }
                    }
                }
            }
        }
        Ok(state)
    }
}

/// `state` with every BatchNorm reset as PyTorch's `reset_running_stats` does: running
/// mean 0, running variance 1, batch counter 0.
fn fresh_state(table: &StateTable, state: &[f32]) -> Vec<f32> {
    let mut fresh = state.to_vec();
    for s in &table.entries {
        let value = match s.kind {
            StateKind::RunningVar => 1.0,
            StateKind::RunningMean | StateKind::NumBatchesTracked => 0.0,
        };
        fresh[s.range()].fill(value);
    }
    fresh
}
