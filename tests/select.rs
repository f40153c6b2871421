//! The radix select (k-th smallest |w| per segment) and the zeroing kernel against their
//! CPU twins. Both are exact: the threshold is compared bit for bit, `below` and the
//! zeroed buffer exactly.

mod common;

use common::context;
use varlab::gpu::Context;
use varlab::ops::select::{count_for_sparsity, select_abs_cpu, zero_at_or_below_cpu, AbsSelect};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Ranges of odd sizes with gaps, one spanning several 4096-element chunks, one all zero.
fn ranges() -> Vec<(usize, usize)> {
    let sizes = [1usize, 7, 301, 4099, 64, 33];
    let mut out = Vec::new();
    let mut offset = 3;
    for s in sizes {
        out.push((offset, s));
        offset += s + 5;
    }
    out
}

/// Gaussian values with ties: many exact zeros (both signs), repeated values, ±pairs.
fn weights(seed: u64) -> Vec<f32> {
    let r = ranges();
    let end = r.iter().map(|&(o, l)| o + l).max().unwrap();
    let mut rng = Rng::new(seed);
    let mut w: Vec<f32> = (0..end).map(|_| 0.1 * rng.normal()).collect();
    for (i, v) in w.iter_mut().enumerate() {
        match i % 7 {
            0 => *v = 0.0,
            1 => *v = -0.0,
            2 => *v = if i % 2 == 0 { 0.125 } else { -0.125 },
            _ => {}
        }
    }
    // The 64-element tensor is all zero.
    let (o, l) = r[4];
    w[o..o + l].fill(0.0);
    w
}

async fn check(ctx: &Context, w: &[f32], segments: &[Vec<(usize, usize)>], ks: &[usize]) {
    let gw = ctx.storage("w", w).unwrap();
    let op = AbsSelect::new(ctx, &gw, segments).await.unwrap();
    op.set_k(ctx, ks).unwrap();
    let mut list = op.dispatches();
    assert_eq!(list.len(), 7);
    list.push(op.zero_dispatch());
    ctx.submit(&list).unwrap();
    let gpu = op.read(ctx).await.unwrap();
    let cpu = select_abs_cpu(w, segments, ks);
    assert_eq!(gpu, cpu, "ks {ks:?}");
    let mut zeroed = w.to_vec();
    zero_at_or_below_cpu(&mut zeroed, segments, &cpu);
    let got: Vec<f32> = ctx.read(&gw).await.unwrap();
    // Compare bit patterns except the sign of zeros.
    for (i, (g, c)) in got.iter().zip(&zeroed).enumerate() {
        assert!(g == c, "element {i}: gpu {g} vs cpu {c}");
    }
}

gpu_test!(
    async fn select_per_tensor_matches_cpu() {
        let ctx = context().await;
        let w = weights(1);
        let segments: Vec<Vec<(usize, usize)>> = ranges().into_iter().map(|r| vec![r]).collect();
        for s in [0.0f32, 0.3, 0.5, 0.97] {
            let ks: Vec<usize> = segments
                .iter()
                .map(|seg| count_for_sparsity(s, seg[0].1))
                .collect();
            check(&ctx, &w, &segments, &ks).await;
        }
        // The largest rank: the maximum of each segment.
        let ks: Vec<usize> = segments.iter().map(|seg| seg[0].1).collect();
        check(&ctx, &w, &segments, &ks).await;
    }
);

gpu_test!(
    async fn select_global_matches_cpu() {
        let ctx = context().await;
        let w = weights(2);
        let segments = vec![ranges()];
        let n: usize = ranges().iter().map(|r| r.1).sum();
        for k in [1, 2, n / 3, n / 2 + 1, n - 1, n] {
            check(&ctx, &w, &segments, &[k]).await;
        }
    }
);

gpu_test!(
    async fn select_refuses_a_rank_beyond_the_segment() {
        let ctx = context().await;
        let gw = ctx.storage("w", &[1.0f32, 2.0, 3.0]).unwrap();
        let op = AbsSelect::new(&ctx, &gw, &[vec![(0, 3)]]).await.unwrap();
        let err = op.set_k(&ctx, &[4]).expect_err("accepted");
        assert!(err.to_string().contains("rank 4"), "{err}");
        assert!(op.set_k(&ctx, &[1, 1]).is_err());
    }
);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn cpu_select_handles_ties_and_zeros() {
    use varlab::ops::select::Selected;
    let w = [0.0f32, -0.5, 0.5, 0.25, -0.0, 0.5, 1.0];
    let seg = vec![vec![(0, 7)]];
    let s = select_abs_cpu(&w, &seg, &[4]);
    assert_eq!(
        s,
        vec![Selected {
            threshold: 0.5,
            k: 4,
            below: 3
        }]
    );
    let mut z = w;
    zero_at_or_below_cpu(&mut z, &seg, &s);
    // All three tied 0.5s go: at least k zeroed.
    assert_eq!(z, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(count_for_sparsity(0.5, 7), 4);
    assert_eq!(count_for_sparsity(0.0, 7), 0);
}
