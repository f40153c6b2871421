//! Benchmarks shared by the CLI (`varlab bench …`) and the page. They print figures; they
//! are never timed unit tests.

use serde::Serialize;

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
        let (seconds, method) = time(ctx, &[&op.dispatch], &c, reps).await?;
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
        let (s, method) = time(ctx, &[&op.dispatch], &c, reps).await?;
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
    Ok(rows)
}
