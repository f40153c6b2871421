//! `executor: auto` by measurement: a few real training steps of the run's model and
//! optimizer at the run's batch on each usable executor, timed by the wall clock, and the one
//! with more images per second trains. The CLI measures both in its process; the page
//! measures the GPU in its engine worker and the CPU in one CPU worker, multiplies the CPU
//! figure by the workers its pool would train with, and caches the result.
//!
//! Each measurement runs one warm-up step (buffers paged in, any pipeline compiled late),
//! then rounds of 1, 2, 4, … steps until [`BUDGET_S`] has passed: on the GPU each round is
//! that many submits and one metrics read-back, so the figure includes the submit and the
//! wait as training sees them, and a round's read-back latency is shared by its steps. A
//! warm-up step that alone takes [`BUDGET_S`] or more is the figure (one slow step says
//! enough, and the calibration stays short).

use serde::Serialize;

use crate::exec::CpuExecutor;
use crate::gpu::{Context, Result};
use crate::nn::Model;
use crate::optim::{CpuOptimizer, OptimConfig};
use crate::train::TrainError;

/// Seconds of timed steps per executor, after the warm-up step.
pub const BUDGET_S: f64 = 0.4;
/// At most this many timed steps per executor (fast devices stop here).
const MAX_STEPS: usize = 512;

/// Seconds per training step of `model` with `optim` at `batch` on the GPU executor (a
/// synthetic batch written once), by the wall clock.
pub async fn gpu_seconds_per_step(
    ctx: &Context,
    model: &Model,
    optim: &OptimConfig,
    batch: usize,
) -> Result<f64> {
    let (exec, opt) = super::synthetic_gpu_step(ctx, model, optim, batch).await?;
    let first = exec.forward_backward(true);
    let second = exec.forward_backward(false);
    let mut list = vec![exec.reset_metrics()];
    list.extend(opt.step_dispatches(&first, &second));
    let t0 = crate::time::now();
    ctx.submit(&list)?;
    exec.read_metrics(ctx).await?;
    let warm = crate::time::now() - t0;
    if warm >= BUDGET_S {
        return Ok(warm);
    }
    let t0 = crate::time::now();
    let (mut steps, mut round) = (0, 1);
    loop {
        for _ in 0..round {
            ctx.submit(&list)?;
        }
        exec.read_metrics(ctx).await?;
        steps += round;
        let elapsed = crate::time::now() - t0;
        if elapsed >= BUDGET_S || steps >= MAX_STEPS {
            return Ok(elapsed / steps as f64);
        }
        round *= 2;
    }
}

/// Seconds per training step of `model` with `optim` at `batch` on the CPU executor (a
/// synthetic batch), by the wall clock, with the threads this process allows.
pub fn cpu_seconds_per_step(
    model: &Model,
    optim: &OptimConfig,
    batch: usize,
) -> std::result::Result<f64, TrainError> {
    let mut rng = crate::rng::Rng::new(1);
    let images = rng.vec(batch * model.input.iter().product::<usize>());
    let labels: Vec<u32> = (0..batch).map(|i| (i % model.classes) as u32).collect();
    let mut exec = CpuExecutor::new(model, batch)?;
    let mut opt = CpuOptimizer::new(optim, &model.params(), 0)?;
    let (mut params, mut state) = model.init_params(0);
    let mut scratch = state.clone();
    let mut step = || {
        scratch.copy_from_slice(&state);
        let mut grad = |p: &[f32], first: bool, g: &mut [f32]| {
            let st = if first { &mut state } else { &mut scratch };
            exec.forward(p, st, &images, true);
            exec.loss_and_backward(p, &labels, g)
        };
        opt.step(&mut params, 0.01, &mut grad);
    };
    let t0 = crate::time::now();
    step();
    let warm = crate::time::now() - t0;
    if warm >= BUDGET_S {
        return Ok(warm);
    }
    let t0 = crate::time::now();
    let mut steps = 0;
    loop {
        step();
        steps += 1;
        let elapsed = crate::time::now() - t0;
        if elapsed >= BUDGET_S || steps >= MAX_STEPS {
            return Ok(elapsed / steps as f64);
        }
    }
}

/// Both executors' throughput and the choice between them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// Images per second of the GPU executor; `None` where no GPU could train.
    pub gpu_images_per_s: Option<f64>,
    /// Images per second of one CPU executor.
    pub cpu_images_per_s: f64,
    /// CPU executors that would train at once (the page's workers; 1 in the CLI): the CPU's
    /// figure counts `cpu_images_per_s × cpu_workers`.
    pub cpu_workers: usize,
    /// `gpu` or `cpu`: the executor with more images per second (the CPU on a tie).
    pub executor: &'static str,
}

impl Calibration {
    /// The choice between the measured figures (`gpu` `None` when the GPU could not train).
    pub fn new(gpu: Option<f64>, cpu: f64, cpu_workers: usize) -> Calibration {
        let workers = cpu_workers.max(1);
        let on_gpu = gpu.is_some_and(|g| g > cpu * workers as f64);
        Calibration {
            gpu_images_per_s: gpu,
            cpu_images_per_s: cpu,
            cpu_workers: workers,
            executor: if on_gpu { "gpu" } else { "cpu" },
        }
    }

    /// From seconds per step at `batch` images.
    pub fn from_step_times(gpu: Option<f64>, cpu: f64, batch: usize, workers: usize) -> Self {
        let rate = |s: f64| batch as f64 / s.max(1e-12);
        Calibration::new(gpu.map(rate), rate(cpu), workers)
    }

    /// "GPU 1 850 img/s, CPU 2 200 img/s × 3 workers: training on the CPU."
    pub fn sentence(&self) -> String {
        let gpu = match self.gpu_images_per_s {
            Some(g) => format!("GPU {} img/s", grouped(g)),
            None => "GPU unavailable".into(),
        };
        let workers = match self.cpu_workers {
            1 => String::new(),
            w => format!(" × {w} workers"),
        };
        let on = self.executor.to_uppercase();
        format!(
            "{gpu}, CPU {} img/s{workers}: training on the {on}.",
            grouped(self.cpu_images_per_s)
        )
    }
}

/// `x` rounded to a whole number with its thousands separated by spaces: `12 345`.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faster_executor_trains_and_the_sentence_gives_both_figures() {
        let c = Calibration::new(Some(1850.4), 2200.0, 1);
        assert_eq!(c.executor, "cpu");
        assert_eq!(
            c.sentence(),
            "GPU 1 850 img/s, CPU 2 200 img/s: training on the CPU."
        );
        // The workers multiply the CPU's figure.
        let c = Calibration::new(Some(5000.0), 2000.0, 3);
        assert_eq!(c.executor, "cpu");
        assert_eq!(
            c.sentence(),
            "GPU 5 000 img/s, CPU 2 000 img/s × 3 workers: training on the CPU."
        );
        assert_eq!(Calibration::new(Some(7000.0), 2000.0, 3).executor, "gpu");
        let none = Calibration::new(None, 86.0, 1);
        assert_eq!(none.executor, "cpu");
        assert_eq!(
            none.sentence(),
            "GPU unavailable, CPU 86 img/s: training on the CPU."
        );
        let c = Calibration::from_step_times(Some(0.064), 0.128, 128, 1);
        assert_eq!(
            (c.gpu_images_per_s, c.cpu_images_per_s),
            (Some(2000.0), 1000.0)
        );
        assert_eq!(c.executor, "gpu");
        assert_eq!(grouped(999.6), "1 000");
        assert_eq!(grouped(1234567.0), "1 234 567");
    }
}
