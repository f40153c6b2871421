//! Per-tensor statistics, global norm and histograms against their CPU twins.
//!
//! Tolerances: sums `2·n·ε·Σ|term|` (the GPU adds in chunks and trees in f32, the twin in
//! f64); max |w| exactly; the global norm `n·ε` relative. Histograms: every tensor's total
//! count exactly, and per bin within a few counts — WGSL division may differ from IEEE by
//! 2.5 ULP, which can move a value lying on a bin edge to the neighbouring bin; cumulative
//! counts are therefore compared with a slack of 1 per 1000 values (at least 2).

mod common;

use common::context;
use varlab::ops::stats::{
    global_norm_cpu, histogram_cpu, tensor_stats_cpu, Histogram, TensorStats,
};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Tensors of awkward sizes, one of them empty, one spanning several chunks, with gaps.
fn table() -> Vec<(usize, usize)> {
    let sizes = [1usize, 255, 0, 4097, 10_001, 3, 9000];
    let mut out = Vec::new();
    let mut offset = 5; // the table need not start at 0
    for s in sizes {
        out.push((offset, s));
        offset += s + 7;
    }
    out
}

fn weights(seed: u64) -> Vec<f32> {
    let t = table();
    let end = t.iter().map(|&(o, l)| o + l).max().unwrap();
    let mut rng = Rng::new(seed);
    let mut w: Vec<f32> = (0..end).map(|_| 0.05 * rng.normal()).collect();
    // Many exact zeros and a few large values, as in a pruned or polarised layer.
    for (i, v) in w.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = 0.0;
        }
        if i % 997 == 0 {
            *v = 2.5;
        }
    }
    w
}

gpu_test!(
    async fn tensor_stats_and_global_norm_match_cpu() {
        let ctx = context().await;
        let t = table();
        let w = weights(1);
        let gw = ctx.storage("w", &w).unwrap();
        let op = TensorStats::new(&ctx, &gw, &t, 1e-8).await.unwrap();
        ctx.submit(&op.dispatches()).unwrap();
        let gpu = op.read(&ctx).await.unwrap();
        let cpu = tensor_stats_cpu(&w, &t, 1e-8);
        assert_eq!(gpu.len(), t.len());
        for (i, ((g, c), &(o, l))) in gpu.iter().zip(&cpu).zip(&t).enumerate() {
            let abs: f32 = w[o..o + l].iter().map(|v| v.abs() + 1e-4).sum();
            let sq: f32 = w[o..o + l].iter().map(|v| v * v).sum();
            let tol = |mag: f32| 2.0 * l.max(1) as f32 * f32::EPSILON * mag + 1e-30;
            assert!(
                (g.sum_smooth_abs - c.sum_smooth_abs).abs() <= tol(abs),
                "tensor {i}: {g:?} vs {c:?}"
            );
            assert!(
                (g.sum_abs - c.sum_abs).abs() <= tol(abs),
                "tensor {i}: {g:?} vs {c:?}"
            );
            assert!(
                (g.sum_sq - c.sum_sq).abs() <= tol(sq),
                "tensor {i}: {g:?} vs {c:?}"
            );
            assert_eq!(g.max_abs, c.max_abs, "tensor {i}");
        }
        // The empty tensor has all-zero statistics.
        assert_eq!(gpu[2], Default::default());
        let norm = ctx.read::<f32>(&op.norm).await.unwrap()[0];
        let want = global_norm_cpu(&w, &t);
        assert!(
            (norm - want).abs() <= w.len() as f32 * f32::EPSILON * want,
            "{norm} vs {want}"
        );
    }
);

gpu_test!(
    async fn histograms_match_cpu() {
        let ctx = context().await;
        let t = table();
        let w = weights(2);
        let gw = ctx.storage("w", &w).unwrap();
        let stats = TensorStats::new(&ctx, &gw, &t, 1e-8).await.unwrap();
        for (bins, signed) in [(1usize, false), (37, true), (64, false), (1024, true)] {
            let hist = Histogram::new(&ctx, &gw, &stats, bins, signed)
                .await
                .unwrap();
            let [s1, s2, s3] = stats.dispatches();
            let [h1, h2] = hist.dispatches();
            // Twice, to show the clear pass resets the counts.
            ctx.submit(&[s1, s2, s3, h1, h2]).unwrap();
            ctx.submit(&[h1, h2]).unwrap();
            let gpu: Vec<u32> = ctx.read(&hist.counts).await.unwrap();
            let cpu = histogram_cpu(&w, &t, bins, signed);
            for (i, &(_, len)) in t.iter().enumerate() {
                let g = &gpu[i * bins..(i + 1) * bins];
                let c = &cpu[i * bins..(i + 1) * bins];
                assert_eq!(
                    g.iter().sum::<u32>() as usize,
                    len,
                    "tensor {i}: total count"
                );
                let slack = (len / 1000).max(2) as i64;
                let (mut cg, mut cc) = (0i64, 0i64);
                for b in 0..bins {
                    cg += g[b] as i64;
                    cc += c[b] as i64;
                    assert!((cg - cc).abs() <= slack, "tensor {i}, {bins} bins, signed {signed}: cumulative count at bin {b}: gpu {cg} vs cpu {cc}");
                }
            }
        }
    }
);

gpu_test!(
    async fn histogram_bins_out_of_range_are_refused() {
        let ctx = context().await;
        let gw = ctx.storage("w", &[1.0f32, 2.0]).unwrap();
        let stats = TensorStats::new(&ctx, &gw, &[(0, 2)], 1e-8).await.unwrap();
        for bins in [0, 1025] {
            let err = Histogram::new(&ctx, &gw, &stats, bins, false)
                .await
                .err()
                .expect("accepted");
            assert!(err.to_string().contains("bins"), "{err}");
        }
    }
);
