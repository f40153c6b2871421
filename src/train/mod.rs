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

mod cpu;
mod gpu;

use std::sync::Arc;

use crate::data::{Dataset, Split};
use crate::nn::{Init, Model, ParamTable, SpecError, StateKind, StateTable};
use crate::optim::{OptimConfig, OptimError};
use crate::rng::Rng;
use crate::time::now;
use cpu::CpuEngine;
pub use gpu::GpuData;
use gpu::GpuEngine;

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

/// The learning rate at `step` of `total` (warm-up over `warmup` steps, then `schedule`).
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

/// The per-channel mean and std of `ds`'s kind (CIFAR-100 for 3 channels and 100 classes,
/// CIFAR-10 for 3 channels, else MNIST).
pub fn normalisation(ds: &Dataset) -> (&'static [f32], &'static [f32]) {
    if ds.channels == 3 && ds.classes == crate::data::cifar100::CLASSES {
        (&crate::data::CIFAR100_MEAN, &crate::data::CIFAR100_STD)
    } else if ds.channels == 3 {
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

/// What an engine (the CPU's or the GPU's) reads of its run besides its own state.
pub(crate) struct Run<'a> {
    pub model: &'a Model,
    pub split: &'a Split,
    pub norm: &'a Normalize,
    pub batch: usize,
}

/// One training step's place and settings.
pub(crate) struct StepInput<'a> {
    /// The step's batch within the epoch, and the epoch's order of the training images.
    pub in_epoch: usize,
    pub order: &'a [u32],
    pub steps_per_epoch: usize,
    pub lr: f32,
    /// A curve point: measure the regulariser and the layers' variance of |w|.
    pub log: bool,
    /// The augmentation's random numbers when training images are augmented.
    pub augment: Option<&'a mut Rng>,
}

/// What a step measured: every step on the CPU, at curve points on the GPU (then over the
/// `steps` since the last one).
pub(crate) struct Measured {
    /// Mean loss and correct predictions over the `steps` steps.
    pub loss: f32,
    pub correct: usize,
    pub steps: usize,
    /// The regulariser's penalty.
    pub reg: f32,
    /// At curve points: per prunable tensor, the variance of |w| after the step.
    pub layer_var: Option<Vec<f64>>,
}

/// What a run needs of the executor it trains on: the CPU's ([`cpu`]) and the GPU's
/// ([`gpu`]) implement the same functions, and [`Trainer`] calls them without knowing which.
pub(crate) trait Engine {
    /// `cpu` or `gpu`.
    fn name(&self) -> &'static str;
    /// The weights and BatchNorm state (on the GPU as of the last `sync`).
    fn params(&self) -> (&[f32], &[f32]);
    /// Brings [`Engine::params`] up to date with the executor.
    async fn sync(&mut self) -> Result<(), TrainError>;
    /// One optimizer step on the batch `s` names.
    async fn step(
        &mut self,
        run: &Run<'_>,
        s: StepInput<'_>,
    ) -> Result<Option<Measured>, TrainError>;
    /// Loss and accuracy on the test subset, with the trained weights or `weights`.
    async fn evaluate(
        &mut self,
        run: &Run<'_>,
        weights: Option<(&[f32], &[f32])>,
    ) -> Result<Eval, TrainError>;
    /// The BatchNorm state of `params` re-estimated from `count` training batches, starting
    /// from `fresh` (reset) statistics.
    async fn recalibrate(
        &mut self,
        run: &Run<'_>,
        params: &[f32],
        fresh: &[f32],
        count: usize,
    ) -> Result<Vec<f32>, TrainError>;
}

/// The engine a run trains on.
enum Engines {
    Cpu(Box<CpuEngine>),
    Gpu(Box<GpuEngine>),
}

/// The [`Run`] of a trainer, borrowing only the fields it names (so that the engine can be
/// borrowed mutably beside it).
macro_rules! run_of {
    ($t:expr) => {
        Run {
            model: &$t.model,
            split: &$t.split,
            norm: &$t.norm,
            batch: $t.batch,
        }
    };
}

/// `$body` with `$e` bound to whichever engine `$engines` holds.
macro_rules! on_engine {
    ($engines:expr, $e:ident => $body:expr) => {
        match $engines {
            Engines::Cpu($e) => $body,
            Engines::Gpu($e) => $body,
        }
    };
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
    engine: Engines,
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
        let steps_per_epoch = (train.len() / batch).max(1);
        let steps = steps_per_epoch * config.epochs;
        let layer_var = vec![Vec::new(); table.entries.iter().filter(|p| p.prunable).count()];
        let norm = Normalize::for_dataset(train);
        let image_len = train.image_len();
        let initial = model.init_params(seed);
        let engine = match gpu {
            None => Engines::Cpu(Box::new(CpuEngine::new(
                &model, &table, optim, seed, batch, image_len, initial,
            )?)),
            Some(g) => Engines::Gpu(Box::new(
                GpuEngine::new(g, &model, &table, optim, seed, batch, initial).await?,
            )),
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
        on_engine!(&self.engine, e => e.params())
    }

    /// `gpu` or `cpu`.
    pub fn executor(&self) -> &'static str {
        on_engine!(&self.engine, e => e.name())
    }

    /// Reads the GPU's weights back into [`Trainer::params`] (nothing to do on the CPU).
    pub async fn sync(&mut self) -> Result<(), TrainError> {
        on_engine!(&mut self.engine, e => e.sync().await)
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
        let log = self.step.is_multiple_of(self.log_every)
            || self.step.is_multiple_of(self.steps_per_epoch)
            || self.done();
        let run = run_of!(self);
        let input = StepInput {
            in_epoch,
            order: &self.order,
            steps_per_epoch: self.steps_per_epoch,
            lr,
            log,
            augment: self.augment.then_some(&mut self.augment_rng),
        };
        let measured = on_engine!(&mut self.engine, e => e.step(&run, input).await)?;
        if let Some(m) = measured {
            if let Some(vars) = &m.layer_var {
                for (series, &v) in self.layer_var.iter_mut().zip(vars) {
                    series.push(v);
                }
            }
            self.record(m.loss, m.correct, m.steps, m.reg)?;
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
        if self.step.is_multiple_of(self.steps_per_epoch) {
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

    /// Loss and accuracy on the whole test subset, with the trained weights or with
    /// `weights = (params, state)` (e.g. pruned); BatchNorm in eval mode. On the GPU, given
    /// weights replace the trained ones on the device (done only after training).
    pub async fn evaluate(
        &mut self,
        weights: Option<(&[f32], &[f32])>,
    ) -> Result<Eval, TrainError> {
        let run = run_of!(self);
        on_engine!(&mut self.engine, e => e.evaluate(&run, weights).await)
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
        let state = self.params().1.to_vec();
        if table.entries.is_empty() || images == 0 {
            return Ok(state);
        }
        let fresh = fresh_state(&table, &state);
        let b = self.batch;
        let count = (images.min(self.split.train.len()) / b).max(1);
        let run = run_of!(self);
        on_engine!(&mut self.engine, e => e.recalibrate(&run, params, &fresh, count).await)
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
