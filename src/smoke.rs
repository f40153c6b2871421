//! The smoke check the page runs on load (and `varlab info --smoke`): one matmul on the
//! GPU compared with its CPU twin, plus a small GFLOP/s figure.

use serde::Serialize;

use crate::bench::MatmulBench;
use crate::gpu::{AdapterReport, Context, Result};
use crate::ops::matmul::{compare, matmul_cpu, Matmul, MatmulShape};
use crate::rng::Rng;

#[derive(Clone, Debug, Serialize)]
pub struct SmokeReport {
    pub adapter: AdapterReport,
    pub shape: [usize; 3],
    pub max_abs_error: f32,
    /// The documented bound: 2·k·ε_f32·Σ|a·b| per element (rounding of a k-term sum).
    pub max_allowed_error: f32,
    pub matches_cpu: bool,
    pub bench: Vec<MatmulBench>,
}

pub async fn run(ctx: &Context, bench_sizes: &[usize]) -> Result<SmokeReport> {
    let shape = MatmulShape::new(67, 45, 33);
    let mut rng = Rng::new(42);
    let a = rng.vec(shape.len_a());
    let b = rng.vec(shape.len_b());
    let ga = ctx.storage("A", &a)?;
    let gb = ctx.storage("B", &b)?;
    let gc = ctx.zeros("C", shape.len_c())?;
    let op = Matmul::new(ctx, shape, 1.0, 0.0, &ga, &gb, &gc).await?;
    ctx.submit(&op.dispatches.iter().collect::<Vec<_>>())?;
    let gpu: Vec<f32> = ctx.read(&gc).await?;
    let mut cpu = vec![0.0; shape.len_c()];
    matmul_cpu(&shape, &a, &b, 1.0, 0.0, &mut cpu);
    let (max_abs_error, max_allowed_error, matches_cpu) = compare(&shape, &a, &b, &gpu, &cpu);
    let bench = crate::bench::matmul(ctx, bench_sizes, 3).await?;
    Ok(SmokeReport {
        adapter: ctx.report.clone(),
        shape: [shape.m, shape.n, shape.k],
        max_abs_error,
        max_allowed_error,
        matches_cpu,
        bench,
    })
}
