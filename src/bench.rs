//! Benchmarks shared by the CLI (`varlab bench …`) and the page. They print figures; they
//! are never timed unit tests.

use serde::Serialize;

pub mod calibrate;
pub mod check;

use crate::gpu::{Context, Dispatch, Result};
use crate::ops::{Elementwise, Matmul, MatmulShape, Sum};
use crate::rng::Rng;

#[derive(Clone, Debug, Serialize)]
pub struct MatmulBench {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Best of `reps` runs, in milliseconds.
    pub ms: f64,
    pub gflops: f64,
    /// "gpu-timestamps" when measured with timestamp queries, else "wall-clock".
    pub method: &'static str,
}

/// One kernel (or a short chain of dispatches) at one shape.
#[derive(Clone, Debug, Serialize)]
pub struct OpBench {
    pub kernel: String,
    pub shape: String,
    pub ms: f64,
    /// Useful floating-point work per second (compute-bound kernels), if counted.
    pub gflops: Option<f64>,
    /// Bytes read + written per second (memory-bound kernels), if counted.
    pub gbytes: Option<f64>,
    pub method: &'static str,
}

/// Best-of-`reps` seconds for the dispatches, by GPU timestamps where the adapter has them,
/// else by wall clock around submit + a 4-byte readback of `sync` (which waits for the queue).
pub async fn time(
    ctx: &Context,
    dispatches: &[&Dispatch],
    sync: &wgpu::Buffer,
    reps: u32,
) -> Result<(f64, &'static str)> {
    // Warm-up: first use of the pipelines, buffers paged in.
    ctx.submit(dispatches)?;
    ctx.read::<u32>(sync).await?;
    if let Some(s) = ctx.time(dispatches, reps).await? {
        return Ok((s, "gpu-timestamps"));
    }
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = crate::time::now();
        ctx.submit(dispatches)?;
        ctx.read::<u32>(sync).await?;
        best = best.min(crate::time::now() - t0);
    }
    Ok((best, "wall-clock"))
}

/// Times `C = A·B` for square sizes `n×n×n`, best of `reps`.
pub async fn matmul(ctx: &Context, sizes: &[usize], reps: u32) -> Result<Vec<MatmulBench>> {
    let mut rows = Vec::new();
    let mut rng = Rng::new(0);
    for &size in sizes {
        let shape = MatmulShape::new(size, size, size);
        let a = ctx.storage("A", &rng.vec(shape.len_a()))?;
        let b = ctx.storage("B", &rng.vec(shape.len_b()))?;
        let c = ctx.zeros("C", shape.len_c())?;
        let op = Matmul::new(ctx, shape, 1.0, 0.0, &a, &b, &c).await?;
        let (seconds, method) =
            time(ctx, &op.dispatches.iter().collect::<Vec<_>>(), &c, reps).await?;
        rows.push(MatmulBench {
            m: size,
            n: size,
            k: size,
            ms: seconds * 1e3,
            gflops: shape.flops() / seconds.max(1e-12) * 1e-9,
            method,
        });
    }
    Ok(rows)
}

fn row(
    kernel: &str,
    shape: String,
    seconds: f64,
    flops: f64,
    bytes: f64,
    method: &'static str,
) -> OpBench {
    let per_s = |x: f64| (x > 0.0).then(|| x / seconds.max(1e-12) * 1e-9);
    OpBench {
        kernel: kernel.to_string(),
        shape,
        ms: seconds * 1e3,
        gflops: per_s(flops),
        gbytes: per_s(bytes),
        method,
    }
}

/// Every kernel family at a few training-sized shapes. `scale` = 1 is sized for software
/// adapters (lavapipe, SwiftShader); larger values grow the shapes for real GPUs.
pub async fn ops(ctx: &Context, scale: usize, reps: u32) -> Result<Vec<OpBench>> {
    let mut rows = Vec::new();
    let mut rng = Rng::new(1);

    // Matmul as the layers use it: forward (x·Wᵀ), weight gradient (dYᵀ·X), input gradient.
    let batch = 128 * scale;
    for (label, shape) in [
        (
            "matmul x·Wᵀ",
            MatmulShape::new(batch, 300, 784).transposed(false, true),
        ),
        (
            "matmul dYᵀ·X",
            MatmulShape::new(300, 784, batch).transposed(true, false),
        ),
        ("matmul dY·W", MatmulShape::new(batch, 784, 300)),
    ] {
        let a = ctx.storage("A", &rng.vec(shape.len_a()))?;
        let b = ctx.storage("B", &rng.vec(shape.len_b()))?;
        let c = ctx.zeros("C", shape.len_c())?;
        let op = Matmul::new(ctx, shape, 1.0, 0.0, &a, &b, &c).await?;
        let (s, method) = time(ctx, &op.dispatches.iter().collect::<Vec<_>>(), &c, reps).await?;
        let shape_s = format!("{}×{}×{}", shape.m, shape.n, shape.k);
        rows.push(row(label, shape_s, s, shape.flops(), 0.0, method));
    }

    // Memory-bound elementwise and reduction kernels over a parameter-sized vector.
    let n = 266_610 * scale; // LeNet-300-100's parameter count
    let x = ctx.storage("x", &rng.vec(n))?;
    let y = ctx.storage("y", &rng.vec(n))?;
    let out = ctx.zeros("out", n)?;
    let add = Elementwise::add(ctx, n, &x, &y, &out).await?;
    let (s, method) = time(ctx, &[&add.dispatch], &out, reps).await?;
    rows.push(row(
        "add",
        n.to_string(),
        s,
        n as f64,
        12.0 * n as f64,
        method,
    ));
    let axpy = Elementwise::axpy(ctx, n, 0.5, &x, &y).await?;
    let (s, method) = time(ctx, &[&axpy.dispatch], &y, reps).await?;
    rows.push(row(
        "axpy",
        n.to_string(),
        s,
        2.0 * n as f64,
        12.0 * n as f64,
        method,
    ));
    let total = ctx.zeros("total", 1)?;
    let sum = Sum::new(ctx, n, &x, &total).await?;
    let [d1, d2] = &sum.dispatches;
    let (s, method) = time(ctx, &[d1, d2], &total, reps).await?;
    rows.push(row(
        "sum",
        n.to_string(),
        s,
        n as f64,
        4.0 * n as f64,
        method,
    ));

    // Statistics of every tensor of LeNet-300-100 at once (VAR's reduction) + histograms.
    let tensors = [
        (0, 235_200),
        (235_200, 300),
        (235_500, 30_000),
        (265_500, 100),
        (265_600, 1000),
        (266_600, 10),
    ];
    let tensors: Vec<(usize, usize)> = tensors
        .iter()
        .map(|&(o, l)| (o * scale, l * scale))
        .collect();
    let stats = crate::ops::stats::TensorStats::new(ctx, &x, &tensors, 1e-8).await?;
    let (s, method) = time(ctx, &stats.dispatches(), &stats.norm, reps).await?;
    rows.push(row(
        "tensor stats (6 tensors)",
        n.to_string(),
        s,
        6.0 * n as f64,
        4.0 * n as f64,
        method,
    ));
    let hist = crate::ops::stats::Histogram::new(ctx, &x, &stats, 256, false).await?;
    let [h1, h2] = hist.dispatches();
    let (s, method) = time(ctx, &[h1, h2], &hist.counts, reps).await?;
    rows.push(row(
        "histogram 256 bins",
        n.to_string(),
        s,
        0.0,
        4.0 * n as f64,
        method,
    ));
    rows.extend(layers(ctx, scale, reps).await?);
    Ok(rows)
}

/// The layer kernels at the shapes of the models (LeNet-5's convolutions, a ResNet
/// block's batch norm, a ViT-tiny block), batch `32·scale`.
async fn layers(ctx: &Context, scale: usize, reps: u32) -> Result<Vec<OpBench>> {
    use crate::ops::activation::{Act, Activation};
    use crate::ops::attention::{Attention, AttentionShape, AttentionWeights};
    use crate::ops::conv::{Conv2d, Conv2dBackward, Conv2dShape, ConvMethod};
    use crate::ops::loss::SoftmaxCrossEntropy;
    use crate::ops::norm::{
        BatchNorm2d, BatchNorm2dConfig, BatchNormBuffers, LayerNorm, LayerNormConfig,
    };
    use crate::ops::pool::{Pool, PoolShape};

    let mut rows = Vec::new();
    let mut rng = Rng::new(2);
    let n = 32 * scale;
    let mut buf = |len: usize| ctx.storage("bench", &rng.vec(len));

    // Convolution: LeNet-5's conv1 (1→6 channels, 28×28, pad 2) and conv2 (6→16, 14×14),
    // 5×5 kernels, by both methods.
    let conv1 = Conv2dShape::new(n, 1, 28, 28, 6, 5).padding(2, 2);
    let conv2 = Conv2dShape::new(n, 6, 14, 14, 16, 5);
    for (cs, name) in [(conv1, "conv1"), (conv2, "conv2")] {
        for method in [ConvMethod::Im2col, ConvMethod::Direct] {
            let m = format!("{method:?}").to_lowercase();
            let shape = format!("{n}×{}×{}×{}→{}, k5", cs.cin, cs.h, cs.w, cs.cout);
            let (x, w, b, y) = (
                buf(cs.len_x())?,
                buf(cs.len_w())?,
                buf(cs.cout)?,
                buf(cs.len_y())?,
            );
            let conv = Conv2d::with_method(ctx, method, cs, &x, &w, Some((&b).into()), &y).await?;
            let d: Vec<&Dispatch> = conv.dispatches.iter().collect();
            let (s, how) = time(ctx, &d, &y, reps).await?;
            let flops = cs.forward_product().flops();
            let label = format!("{name} forward ({m})");
            rows.push(row(&label, shape.clone(), s, flops, 0.0, how));
            let (dy, dw, db) = (buf(cs.len_y())?, buf(cs.len_w())?, buf(cs.cout)?);
            // LeNet-5 wants no dx of its first layer.
            let dx = (name != "conv1").then(|| buf(cs.len_x())).transpose()?;
            let back = Conv2dBackward::new(
                ctx,
                &conv,
                &x,
                &w,
                &dy,
                dx.as_ref().map(Into::into),
                Some((&dw).into()),
                Some((&db).into()),
            )
            .await?;
            let d: Vec<&Dispatch> = back.dispatches.iter().collect();
            let (s, how) = time(ctx, &d, &dw, reps).await?;
            let label = format!("{name} backward ({m})");
            let flops = if dx.is_some() { 2.0 * flops } else { flops };
            rows.push(row(&label, shape, s, flops, 0.0, how));
        }
    }

    // Max-pool 2×2 after LeNet-5's conv1: 6 channels, 28×28.
    let ps = PoolShape::new(n, 6, 28, 28, 2, 2);
    let (x, y, arg) = (
        buf(ps.len_x())?,
        buf(ps.len_y())?,
        ctx.zeros("argmax", ps.len_y())?,
    );
    let pool = Pool::max(ctx, ps, &x, &y, &arg).await?;
    let (s, method) = time(ctx, &[&pool.dispatch], &y, reps).await?;
    let bytes = 4.0 * (ps.len_x() + 2 * ps.len_y()) as f64;
    rows.push(row(
        "max-pool 2×2",
        format!("{n}×6×28×28"),
        s,
        0.0,
        bytes,
        method,
    ));

    // Batch norm (training) in a ResNet-20 stage: 16 channels, 32×32.
    let cfg = BatchNorm2dConfig::new(n, 16, 32, 32);
    let (x, y, g, be) = (buf(cfg.len())?, buf(cfg.len())?, buf(16)?, buf(16)?);
    let (saved, rm, rv) = (buf(32)?, buf(16)?, buf(16)?);
    let bufs = BatchNormBuffers {
        x: (&x).into(),
        gamma: (&g).into(),
        beta: (&be).into(),
        y: (&y).into(),
        saved: (&saved).into(),
        running_mean: (&rm).into(),
        running_var: (&rv).into(),
    };
    let bn = BatchNorm2d::new(ctx, cfg, &bufs).await?;
    let list: Vec<&Dispatch> = bn.train_list.iter().collect();
    let (s, method) = time(ctx, &list, &y, reps).await?;
    rows.push(row(
        "batch norm (train)",
        format!("{n}×16×32×32"),
        s,
        0.0,
        12.0 * cfg.len() as f64,
        method,
    ));

    // ViT-tiny on 32×32 images, patch 4: 65 tokens of width 64, 4 heads.
    let (t, c) = (65, 64);
    let lcfg = LayerNormConfig::new(n * t, c);
    let (x, y, g, be, saved) = (
        buf(n * t * c)?,
        buf(n * t * c)?,
        buf(c)?,
        buf(c)?,
        buf(2 * n * t)?,
    );
    let ln = LayerNorm::new(ctx, lcfg, &x, &g, &be, &y, &saved).await?;
    let (s, method) = time(ctx, &[&ln.dispatch], &y, reps).await?;
    rows.push(row(
        "layer norm",
        format!("{}×{c}", n * t),
        s,
        0.0,
        8.0 * (n * t * c) as f64,
        method,
    ));
    let hidden = buf(n * t * 4 * c)?;
    let hidden_out = buf(n * t * 4 * c)?;
    let gelu = Activation::forward(ctx, Act::Gelu, n * t * 4 * c, &hidden, &hidden_out).await?;
    let (s, method) = time(ctx, &[&gelu.dispatch], &hidden_out, reps).await?;
    rows.push(row(
        "GELU",
        (n * t * 4 * c).to_string(),
        s,
        0.0,
        8.0 * (n * t * 4 * c) as f64,
        method,
    ));
    let a = AttentionShape::new(n, t, c, 4);
    let (wqkv, bqkv, wo, bo) = (buf(3 * c * c)?, buf(3 * c)?, buf(c * c)?, buf(c)?);
    let weights = AttentionWeights {
        wqkv: (&wqkv).into(),
        bqkv: (&bqkv).into(),
        wo: (&wo).into(),
        bo: (&bo).into(),
    };
    let attn = Attention::new(ctx, a, &x, &weights, &y).await?;
    let d: Vec<&Dispatch> = attn.dispatches.iter().collect();
    let (s, method) = time(ctx, &d, &y, reps).await?;
    let flops = 2.0 * (n * t) as f64 * (4 * c * c) as f64 + 4.0 * (n * t * t * c) as f64;
    rows.push(row(
        "attention block forward",
        format!("{n}×{t}×{c}, 4 heads"),
        s,
        flops,
        0.0,
        method,
    ));

    // Softmax cross-entropy with metrics, batch 4·n, 10 classes.
    let (b, k) = (4 * n, 10);
    let logits = buf(b * k)?;
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 10).collect();
    let labels = ctx.storage("labels", &labels)?;
    let (dlogits, metrics) = (
        buf(b * k)?,
        ctx.zeros("metrics", crate::ops::loss::METRICS_LEN)?,
    );
    let xent =
        SoftmaxCrossEntropy::new(ctx, b, k, true, &logits, &labels, &dlogits, &metrics).await?;
    let [x1, x2] = &xent.dispatches;
    let (s, method) = time(ctx, &[x1, x2], &metrics, reps).await?;
    rows.push(row(
        "softmax cross-entropy",
        format!("{b}×{k}"),
        s,
        0.0,
        8.0 * (b * k) as f64,
        method,
    ));
    Ok(rows)
}

/// One row of `varlab bench step`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepBench {
    pub optimizer: String,
    /// Median over the rounds of the mean time per step in the round.
    pub ms_per_step: f64,
    /// Median over the rounds of this optimizer's time per step divided by SGD's in the same
    /// round (`None` without SGD in the list). Pairing by round cancels the machine's drifts
    /// slower than a round.
    pub ratio_to_sgd: Option<f64>,
    /// How those per-round ratios spread (`None` without SGD).
    pub ratio_spread: Option<Spread>,
    /// Rounds measured (after one warm-up round) and steps per optimizer in each.
    pub rounds: usize,
    pub steps: usize,
}

/// The spread of a sample: its extremes, quartiles and a 95 % confidence interval of its
/// median.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Spread {
    pub min: f64,
    /// First quartile (linear interpolation between order statistics).
    pub q1: f64,
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    pub max: f64,
    /// Distribution-free 95 % confidence interval of the median: the order statistics whose
    /// ranks the binomial(n, ½) distribution puts 2.5 % outside on each side (coverage ≥ 95 %);
    /// `None` below 6 values, where no such pair exists. A ratio whose interval lies below
    /// 1.05 is resolved below the 5 % target.
    pub median_ci95: Option<[f64; 2]>,
}

impl Spread {
    /// The spread of `values` (not empty; NaN-free).
    pub fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Spread {
            min: v[0],
            q1: quantile(&v, 0.25),
            median: quantile(&v, 0.5),
            q3: quantile(&v, 0.75),
            max: v[v.len() - 1],
            median_ci95: median_ci95_ranks(v.len()).map(|(lo, hi)| [v[lo], v[hi]]),
        }
    }
}

/// The `p`-quantile of `sorted` (ascending, not empty), interpolating linearly between
/// neighbouring order statistics (R's type 7, NumPy's default).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (h.floor() as usize, h - h.floor());
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// 0-based ranks `(lo, hi)` of a 95 % confidence interval for the median of `n` sorted
/// values: with the largest `j` such that `P(Binomial(n, ½) < j) ≤ 2.5 %`, the `j`-th
/// smallest and the `j`-th largest value, i.e. ranks `(j − 1, n − j)`. `None` for `n < 6`
/// (even the extremes cover less than 95 %).
pub fn median_ci95_ranks(n: usize) -> Option<(usize, usize)> {
    // P(X = k) for X ~ Binomial(n, ½) from its logarithm, accumulated from k = 0 (terms too
    // small for an f64 are negligible next to 2.5 %).
    let mut ln_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0; // P(X < j)
    let mut j = 0;
    while j < n / 2 && below + ln_pmf.exp() <= 0.025 {
        below += ln_pmf.exp();
        ln_pmf += ((n - j) as f64 / (j + 1) as f64).ln();
        j += 1;
    }
    (j > 0).then(|| (j - 1, n - j))
}

/// The rows from `times[i][round]` (ms per step of optimizer `i` in each round): medians,
/// and each optimizer's per-round ratio to SGD's time in the same round.
fn summarise(names: &[String], times: &[Vec<f64>], steps: usize) -> Vec<StepBench> {
    let sgd = names.iter().position(|n| n == "sgd");
    names
        .iter()
        .zip(times)
        .map(|(name, t)| {
            let spread = sgd.map(|s| {
                let ratios: Vec<f64> = t.iter().zip(&times[s]).map(|(a, b)| a / b).collect();
                Spread::of(&ratios)
            });
            StepBench {
                optimizer: name.clone(),
                ms_per_step: Spread::of(t).median,
                ratio_to_sgd: spread.map(|s| s.median),
                ratio_spread: spread,
                rounds: t.len(),
                steps,
            }
        })
        .collect()
}

/// The order in which round `round` runs `count` optimizers: rotated by one each round, so
/// every optimizer runs in every position (after each of the others) equally often.
fn rotation(round: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |j| (round + j) % count)
}

/// Training-step time of each optimizer on the CPU executor: synthetic batches of `batch`
/// images for `model`. The optimizers are interleaved finely: every round runs each of them
/// for `steps` steps, in an order rotated by one per round ([`rotation`]), for `rounds`
/// rounds after a warm-up round. Reports the median round per optimizer and the median and
/// spread of its per-round ratio to SGD ([`Spread`]).
pub fn step_cpu(
    model: &crate::nn::Model,
    optims: &[crate::optim::OptimConfig],
    batch: usize,
    steps: usize,
    rounds: usize,
) -> std::result::Result<Vec<StepBench>, crate::train::TrainError> {
    use crate::exec::CpuExecutor;
    use crate::optim::CpuOptimizer;
    let table = model.params();
    let mut rng = crate::rng::Rng::new(1);
    let images = rng.vec(batch * model.input.iter().product::<usize>());
    let labels: Vec<u32> = (0..batch).map(|i| (i % model.classes) as u32).collect();
    struct Run {
        exec: CpuExecutor,
        opt: CpuOptimizer,
        params: Vec<f32>,
        state: Vec<f32>,
        /// The BN state the second pass of SAM/CrAM writes (kept apart from `state`).
        scratch: Vec<f32>,
    }
    let mut runs = optims
        .iter()
        .map(|cfg| {
            let (params, state) = model.init_params(0);
            Ok(Run {
                exec: CpuExecutor::new(model, batch)?,
                opt: CpuOptimizer::new(cfg, &table, 0)?,
                params,
                scratch: state.clone(),
                state,
            })
        })
        .collect::<std::result::Result<Vec<Run>, crate::train::TrainError>>()?;
    let mut times = vec![Vec::with_capacity(rounds); runs.len()];
    for round in 0..=rounds {
        for i in rotation(round, runs.len()) {
            let run = &mut runs[i];
            let t0 = crate::time::now();
            for _ in 0..steps {
                let (exec, state, scratch) = (&mut run.exec, &mut run.state, &mut run.scratch);
                scratch.copy_from_slice(state);
                let mut grad = |p: &[f32], first: bool, g: &mut [f32]| {
                    let st = if first { &mut *state } else { &mut *scratch };
                    exec.forward(p, st, &images, true);
                    exec.loss_and_backward(p, &labels, g)
                };
                run.opt.step(&mut run.params, 0.01, &mut grad);
            }
            // Round 0 warms caches and allocations up and is not counted.
            if round > 0 {
                times[i].push(1e3 * (crate::time::now() - t0) / steps as f64);
            }
        }
    }
    Ok(summarise(&kind_names(optims), &times, steps))
}

fn kind_names(optims: &[crate::optim::OptimConfig]) -> Vec<String> {
    optims.iter().map(|c| c.kind.to_string()).collect()
}

/// A GPU executor and optimizer for `model` with `cfg`, initialised (seed 0) and holding a
/// synthetic batch of `batch` images, ready to encode training steps for benchmarks.
async fn synthetic_gpu_step(
    ctx: &Context,
    model: &crate::nn::Model,
    cfg: &crate::optim::OptimConfig,
    batch: usize,
) -> Result<(crate::exec::GpuExecutor, crate::optim::GpuOptimizer)> {
    let mut rng = crate::rng::Rng::new(1);
    let images = rng.vec(batch * model.input.iter().product::<usize>());
    let labels: Vec<u32> = (0..batch).map(|i| (i % model.classes) as u32).collect();
    let exec = crate::exec::GpuExecutor::new(ctx, model, batch).await?;
    let (params, state) = model.init_params(0);
    exec.write_params(ctx, &params)?;
    exec.write_state(ctx, &state)?;
    exec.write_batch(ctx, &images, &labels)?;
    let table = model.params();
    let mut opt =
        crate::optim::GpuOptimizer::new(ctx, cfg, &table, &exec.params, &exec.grads, 0).await?;
    opt.set_step(ctx, 0.01)?;
    Ok((exec, opt))
}

/// Training-step time of each optimizer on the GPU executor: a synthetic batch written once
/// (the step's gather is left out: it is the same for every optimizer), the whole step's
/// dispatch list — forward, loss, backward (twice for SAM/CrAM) and the optimizer — timed
/// with GPU timestamps over `steps` repetitions (best of them), or by the wall clock of
/// `steps` submits and a read-back where the adapter has no timestamps. The optimizers are
/// interleaved as in [`step_cpu`] (rotating order, one warm-up round), and reported the same
/// way.
pub async fn step_gpu(
    ctx: &Context,
    model: &crate::nn::Model,
    optims: &[crate::optim::OptimConfig],
    batch: usize,
    steps: usize,
    rounds: usize,
) -> Result<Vec<StepBench>> {
    let mut runs = Vec::new();
    for cfg in optims {
        runs.push(synthetic_gpu_step(ctx, model, cfg, batch).await?);
    }
    let mut times = vec![Vec::with_capacity(rounds); runs.len()];
    for round in 0..=rounds {
        for i in rotation(round, runs.len()) {
            let (exec, opt) = &mut runs[i];
            let first = exec.forward_backward(true);
            let second = exec.forward_backward(false);
            let mut list = vec![exec.reset_metrics()];
            list.extend(opt.step_dispatches(&first, &second));
            let secs = match ctx.time(&list, steps as u32).await? {
                Some(best) => best,
                None => {
                    let t0 = crate::time::now();
                    for _ in 0..steps {
                        ctx.submit(&list)?;
                    }
                    exec.read_metrics(ctx).await?;
                    (crate::time::now() - t0) / steps as f64
                }
            };
            // Round 0 compiles and warms up and is not counted.
            if round > 0 {
                times[i].push(1e3 * secs);
            }
        }
    }
    Ok(summarise(&kind_names(optims), &times, steps))
}

/// One dispatch of a profiled training step.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    /// Position in the step's dispatch list.
    pub index: usize,
    /// The WGSL entry point.
    pub kernel: &'static str,
    pub workgroups: [u32; 3],
    /// Best of the repetitions, in milliseconds, with the dispatch in a pass of its own.
    pub ms: f64,
}

/// A training step of `model` with `optim` on the GPU executor, dispatch by dispatch: the
/// whole step timed in one pass (as training runs it), and every dispatch timed alone (see
/// [`Context::profile`]). `None` where the adapter has no timestamps.
pub async fn profile_step(
    ctx: &Context,
    model: &crate::nn::Model,
    optim: &crate::optim::OptimConfig,
    batch: usize,
    reps: u32,
) -> Result<Option<(f64, Vec<KernelTime>)>> {
    let (exec, opt) = synthetic_gpu_step(ctx, model, optim, batch).await?;
    let first = exec.forward_backward(true);
    let second = exec.forward_backward(false);
    let mut list = vec![exec.reset_metrics()];
    list.extend(opt.step_dispatches(&first, &second));
    // The first run compiles and warms up.
    let Some(_) = ctx.time(&list, 1).await? else {
        return Ok(None);
    };
    let step = ctx.time(&list, reps).await?.unwrap_or(0.0);
    let times = ctx.profile(&list, reps).await?.unwrap_or_default();
    let kernels = list
        .iter()
        .zip(times)
        .enumerate()
        .map(|(index, (d, secs))| KernelTime {
            index,
            kernel: d.label,
            workgroups: d.workgroups,
            ms: 1e3 * secs,
        })
        .collect();
    Ok(Some((1e3 * step, kernels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 1.0), 8.0);
        assert_eq!(quantile(&[5.0], 0.75), 5.0);
    }

    #[test]
    fn median_interval_ranks_follow_the_binomial_table() {
        // The classic table: n = 6 → extremes; n = 10 → 2nd and 9th; n = 30 → 10th and 21st;
        // n = 100 → 40th and 61st (1-based).
        assert_eq!(median_ci95_ranks(5), None);
        assert_eq!(median_ci95_ranks(6), Some((0, 5)));
        assert_eq!(median_ci95_ranks(10), Some((1, 8)));
        assert_eq!(median_ci95_ranks(30), Some((9, 20)));
        assert_eq!(median_ci95_ranks(100), Some((39, 60)));
        // Large counts do not underflow into a collapsed interval.
        let (lo, hi) = median_ci95_ranks(5000).unwrap();
        assert!(lo > 2300 && lo < 2500 && hi == 4999 - lo, "{lo} {hi}");
    }

    #[test]
    fn ratios_are_paired_by_round() {
        let names = ["var".to_string(), "sgd".to_string()];
        // SGD drifts by 2× over the rounds; VAR is 1.1× SGD in every round.
        let sgd: Vec<f64> = (0..8).map(|r| 1.0 + r as f64 / 7.0).collect();
        let var: Vec<f64> = sgd.iter().map(|t| 1.1 * t).collect();
        let rows = summarise(&names, &[var, sgd], 3);
        let spread = rows[0].ratio_spread.unwrap();
        assert!((rows[0].ratio_to_sgd.unwrap() - 1.1).abs() < 1e-12);
        assert!(spread.max - spread.min < 1e-12, "{spread:?}");
        assert_eq!(rows[1].ratio_to_sgd, Some(1.0));
        assert_eq!((rows[0].rounds, rows[0].steps), (8, 3));
        let alone = summarise(&names[..1], &[vec![1.0]], 1);
        assert_eq!(alone[0].ratio_to_sgd, None);
    }

    #[test]
    fn rotation_puts_every_optimizer_in_every_position() {
        let orders: Vec<Vec<usize>> = (0..3).map(|r| rotation(r, 3).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
    }
}
