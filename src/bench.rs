//! Benchmarks shared by the CLI (`varlab bench …`) and the page. They print figures; they
//! are never timed unit tests.

use serde::Serialize;

use crate::gpu::{Context, Result};
use crate::ops::{Matmul, MatmulShape};
use crate::rng::Rng;

#[derive(Clone, Debug, Serialize)]
pub struct MatmulBench {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Best of `reps` runs, in milliseconds.
    pub ms: f64,
    pub gflops: f64,
    /// "gpu-timestamps" when measured with timestamp queries, else "wall-clock" (submit
    /// plus a readback of the result, so it includes that copy).
    pub method: &'static str,
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
        // Warm-up: first use of the pipeline, buffers paged in.
        ctx.submit(&[&op.dispatch])?;
        ctx.read::<f32>(&c).await?;
        let (seconds, method) = match ctx.time(&[&op.dispatch], reps).await? {
            Some(s) => (s, "gpu-timestamps"),
            None => {
                let mut best = f64::INFINITY;
                for _ in 0..reps.max(1) {
                    let t0 = crate::time::now();
                    ctx.submit(&[&op.dispatch])?;
                    ctx.read::<f32>(&c).await?;
                    best = best.min(crate::time::now() - t0);
                }
                (best, "wall-clock")
            }
        };
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
