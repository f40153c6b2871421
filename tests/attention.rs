//! Multi-head self-attention: every GPU kernel against its CPU twin, the whole block forward
//! and backward against the twin, and finite-difference checks of every twin backward.
//!
//! Tolerances (f32, ε = 2⁻²³), per element:
//! - split_qkv / merge_qkv / merge_heads / split_heads: exact (permutations).
//! - The bias addition and bias gradients are linear's `BiasAdd` / `ChannelSum`, tested in
//!   tests/conv.rs on the shapes used here.
//! - softmax_rows: `(16 + 4·R_row + 2n)·ε·p_i + 1e-12`, with `R_row = max_j x_j − min_j x_j`
//!   and n the row length: WGSL's `exp` may be off by `3 + 2|x|` ulp (spec), the row sum
//!   adds `n·ε` relative, the division a few ulp; doubled for margin.
//! - softmax_backward: `scale·p_i·(2ε|dp_i − s| + 2n·ε·Σ_j|dp_j·p_j|) + 4ε|ds_i| + 1e-12`,
//!   the rounding of the row sum `s` (tree vs sequential) propagated through
//!   `scale·p·(dp − s)`.
//! - whole block (forward y and the saved P; backward dx, dWqkv, dbqkv, dWo, dbo):
//!   `1e-4·(|c_i| + mean_j |c_j|)`. The chain has up to eight products, an `exp` and a
//!   softmax backward (which cancels), so a strict per-element bound is unwieldy; errors
//!   measured on lavapipe stay below 1e-6 relative to that scale, so 1e-4 keeps a margin
//!   of ~100× for other drivers while still catching any wrong index or factor (those
//!   give O(1) errors).
//! - Finite differences (CPU twins): ε = 1e-2, tolerance 1e-2 relative + 1e-3 absolute
//!   (see `varlab::ops::gradcheck`).

mod common;

use common::{assert_close, context, read};
use varlab::ops::attention::*;
#[cfg(not(target_arch = "wasm32"))]
use varlab::ops::gradcheck::check;
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The shapes of the GPU tests: (B, T, C, H).
const SHAPES: [(usize, usize, usize, usize); 2] = [(1, 5, 12, 3), (2, 17, 8, 2)];

fn shape((b, t, c, h): (usize, usize, usize, usize)) -> AttentionShape {
    AttentionShape::new(b, t, c, h)
}

fn scaled(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    rng.vec(n).into_iter().map(|v| v * scale).collect()
}

/// `|g − c| ≤ rtol·(|c_i| + mean |c|)` per element.
fn assert_scaled(what: &str, gpu: &[f32], cpu: &[f32], rtol: f32) {
    let mean = cpu.iter().map(|v| v.abs()).sum::<f32>() / cpu.len().max(1) as f32;
    assert_close(what, gpu, cpu, |i| rtol * (cpu[i].abs() + mean));
}

gpu_test!(
    async fn split_and_merge_kernels_match_cpu() {
        let ctx = context().await;
        for (seed, dims) in SHAPES.into_iter().enumerate() {
            let s = shape(dims);
            let n = s.len_x();
            let mut rng = Rng::new(100 + seed as u64);
            let qkv = rng.vec(3 * n);
            let gqkv = ctx.storage("qkv", &qkv).unwrap();
            let (gq, gk, gv) = (
                ctx.zeros("q", n).unwrap(),
                ctx.zeros("k", n).unwrap(),
                ctx.zeros("v", n).unwrap(),
            );
            let split = AttentionKernel::split_qkv(&ctx, &s, &gqkv, &gq, &gk, &gv)
                .await
                .unwrap();
            // merge_qkv back into a fresh buffer: the round trip must be the identity.
            let gback = ctx.zeros("qkv back", 3 * n).unwrap();
            let merge = AttentionKernel::merge_qkv(&ctx, &s, &gq, &gk, &gv, &gback)
                .await
                .unwrap();
            ctx.submit(&[&split.dispatch, &merge.dispatch]).unwrap();
            let (q, k, v) = split_qkv_cpu(&s, &qkv);
            assert_close("split_qkv q", &read(&ctx, &gq, n).await, &q, |_| 0.0);
            assert_close("split_qkv k", &read(&ctx, &gk, n).await, &k, |_| 0.0);
            assert_close("split_qkv v", &read(&ctx, &gv, n).await, &v, |_| 0.0);
            let back = read(&ctx, &gback, 3 * n).await;
            assert_close("merge_qkv", &back, &merge_qkv_cpu(&s, &q, &k, &v), |_| 0.0);
            assert_close("merge_qkv round trip", &back, &qkv, |_| 0.0);

            // Heads [B, H, T, D] <-> tokens [B, T, C], on independent random inputs.
            let heads = rng.vec(n);
            let tokens = rng.vec(n);
            let (gh, gt) = (
                ctx.storage("heads", &heads).unwrap(),
                ctx.storage("tokens", &tokens).unwrap(),
            );
            let (gm, gs) = (
                ctx.zeros("merged", n).unwrap(),
                ctx.zeros("split", n).unwrap(),
            );
            let merge = AttentionKernel::merge_heads(&ctx, &s, &gh, &gm)
                .await
                .unwrap();
            let split = AttentionKernel::split_heads(&ctx, &s, &gt, &gs)
                .await
                .unwrap();
            ctx.submit(&[&merge.dispatch, &split.dispatch]).unwrap();
            let merged = merge_heads_cpu(&s, &heads);
            assert_close("merge_heads", &read(&ctx, &gm, n).await, &merged, |_| 0.0);
            let split_cpu = split_heads_cpu(&s, &tokens);
            assert_close("split_heads", &read(&ctx, &gs, n).await, &split_cpu, |_| {
                0.0
            });
            assert_eq!(split_heads_cpu(&s, &merged), heads, "merge then split");
        }
    }
);

fn softmax_tolerance(x: &[f32], p: &[f32], cols: usize) -> Vec<f32> {
    let mut tol = vec![0.0; p.len()];
    for ((xr, pr), tr) in x
        .chunks_exact(cols)
        .zip(p.chunks_exact(cols))
        .zip(tol.chunks_exact_mut(cols))
    {
        let hi = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lo = xr.iter().fold(f32::INFINITY, |a, &b| a.min(b));
        let rel = (16.0 + 4.0 * (hi - lo) + 2.0 * cols as f32) * f32::EPSILON;
        for (t, &pv) in tr.iter_mut().zip(pr) {
            *t = rel * pv + 1e-12;
        }
    }
    tol
}

gpu_test!(
    async fn softmax_rows_and_backward_match_cpu() {
        let ctx = context().await;
        // (rows, cols): rows of one token, of 5 and 17 tokens, and rows longer than the
        // 64 threads of a workgroup.
        for (seed, (rows, cols, scale)) in [
            (1usize, 1usize, 1.0f32),
            (3 * 5, 5, 0.5),
            (2 * 2 * 17, 17, 0.5),
            (3, 130, 0.35),
        ]
        .into_iter()
        .enumerate()
        {
            let n = rows * cols;
            let mut rng = Rng::new(200 + seed as u64);
            let x = scaled(&mut rng, n, 4.0);
            let dp = rng.vec(n);
            let gx = ctx.storage("x", &x).unwrap();
            let gdp = ctx.storage("dp", &dp).unwrap();
            let soft = AttentionKernel::softmax_rows(&ctx, rows, cols, &gx)
                .await
                .unwrap();
            let back = AttentionKernel::softmax_backward(&ctx, rows, cols, scale, &gx, &gdp)
                .await
                .unwrap();
            ctx.submit(&[&soft.dispatch]).unwrap();
            let gpu_p = read(&ctx, &gx, n).await;
            let p = softmax_rows_cpu(&x, cols);
            let tol = softmax_tolerance(&x, &p, cols);
            assert_close("softmax_rows", &gpu_p, &p, |i| tol[i]);

            // The backward on the GPU's own P, so that only its rounding is compared.
            ctx.submit(&[&back.dispatch]).unwrap();
            let gpu_ds = read(&ctx, &gdp, n).await;
            let ds = softmax_backward_cpu(&gpu_p, &dp, cols, scale);
            let mut tol = vec![0.0f32; n];
            for r in 0..rows {
                let row = r * cols..(r + 1) * cols;
                let s: f32 = row.clone().map(|j| dp[j] * gpu_p[j]).sum();
                let mag: f32 = row.clone().map(|j| (dp[j] * gpu_p[j]).abs()).sum();
                for j in row {
                    let e = f32::EPSILON;
                    tol[j] = scale
                        * gpu_p[j]
                        * (2.0 * e * (dp[j] - s).abs() + 2.0 * cols as f32 * e * mag)
                        + 4.0 * e * ds[j].abs()
                        + 1e-12;
                }
            }
            assert_close("softmax_backward", &gpu_ds, &ds, |i| tol[i]);
        }
    }
);

struct Block {
    x: Vec<f32>,
    wqkv: Vec<f32>,
    bqkv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    dy: Vec<f32>,
}

fn block(s: &AttentionShape, seed: u64) -> Block {
    let mut rng = Rng::new(seed);
    let c = s.dim;
    Block {
        x: rng.vec(s.len_x()),
        wqkv: scaled(&mut rng, 3 * c * c, 0.6),
        bqkv: scaled(&mut rng, 3 * c, 0.2),
        wo: scaled(&mut rng, c * c, 0.6),
        bo: scaled(&mut rng, c, 0.2),
        dy: rng.vec(s.len_x()),
    }
}

gpu_test!(
    async fn attention_block_forward_and_backward_match_cpu() {
        let ctx = context().await;
        for (seed, dims) in SHAPES.into_iter().enumerate() {
            let s = shape(dims);
            let (n, c) = (s.len_x(), s.dim);
            let b = block(&s, 400 + seed as u64);
            let up = |name: &str, v: &[f32]| ctx.storage(name, v).unwrap();
            let (gx, gwqkv, gbqkv, gwo, gbo, gdy) = (
                up("x", &b.x),
                up("wqkv", &b.wqkv),
                up("bqkv", &b.bqkv),
                up("wo", &b.wo),
                up("bo", &b.bo),
                up("dy", &b.dy),
            );
            let gy = ctx.zeros("y", n).unwrap();
            let weights = AttentionWeights {
                wqkv: (&gwqkv).into(),
                bqkv: (&gbqkv).into(),
                wo: (&gwo).into(),
                bo: (&gbo).into(),
            };
            let attn = Attention::new(&ctx, s, &gx, &weights, &gy).await.unwrap();
            let z = |name: &str, len: usize| ctx.zeros(name, len).unwrap();
            let (gdx, gdwqkv, gdbqkv, gdwo, gdbo) = (
                z("dx", n),
                z("dwqkv", 3 * c * c),
                z("dbqkv", 3 * c),
                z("dwo", c * c),
                z("dbo", c),
            );
            let grads = AttentionGrads {
                dx: (&gdx).into(),
                dwqkv: (&gdwqkv).into(),
                dbqkv: (&gdbqkv).into(),
                dwo: (&gdwo).into(),
                dbo: (&gdbo).into(),
            };
            let back = attn.backward(&ctx, &gdy, &grads).await.unwrap();
            let mut all = attn.forward_dispatches();
            all.extend(back.dispatches());
            ctx.submit(&all).unwrap();

            let saved = attention_forward_cpu(&s, &b.x, &b.wqkv, &b.bqkv, &b.wo, &b.bo);
            let g = attention_backward_cpu(&s, &b.x, &b.wqkv, &b.wo, &saved, &b.dy);
            let tag = |what: &str| format!("{what} {s:?}");
            let checks = [
                ("y", &gy, &saved.y),
                ("P", &attn.p, &saved.p),
                ("merged", &attn.merged, &saved.merged),
                ("dx", &gdx, &g.dx),
                ("dWqkv", &gdwqkv, &g.dwqkv),
                ("dbqkv", &gdbqkv, &g.dbqkv),
                ("dWo", &gdwo, &g.dwo),
                ("dbo", &gdbo, &g.dbo),
            ];
            for (what, buf, cpu) in checks {
                let gpu = read(&ctx, buf, cpu.len()).await;
                assert_scaled(&tag(what), &gpu, cpu, 1e-4);
            }
        }
    }
);

gpu_test!(
    async fn attention_refuses_bad_shapes_and_short_buffers() {
        let ctx = context().await;
        let buf = ctx.zeros("b", 4).unwrap();
        let big = ctx.zeros("big", 4096).unwrap();
        let w = AttentionWeights {
            wqkv: (&big).into(),
            bqkv: (&big).into(),
            wo: (&big).into(),
            bo: (&big).into(),
        };
        // 10 channels do not split into 3 heads.
        let err = Attention::new(&ctx, AttentionShape::new(1, 2, 10, 3), &big, &w, &big)
            .await
            .err()
            .expect("C not divisible by H was accepted");
        assert!(err.to_string().contains("head count"), "{err}");
        // x too short: the error names the operand.
        let err = Attention::new(&ctx, AttentionShape::new(1, 5, 12, 3), &buf, &w, &big)
            .await
            .err()
            .expect("a short x was accepted");
        assert!(err.to_string().contains("buffer x"), "{err}");
    }
);

// ---------------------------------------------------------------------------------------
// Finite differences of the CPU twins.

#[cfg(not(target_arch = "wasm32"))]
const FD: (f32, f64, f64) = (1e-2, 1e-2, 1e-3);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn softmax_backward_matches_finite_differences() {
    let (eps, tol, atol) = FD;
    for (rows, cols, scale) in [(3usize, 5usize, 0.5f32), (2, 17, 1.0)] {
        let mut rng = Rng::new(500 + cols as u64);
        let x = scaled(&mut rng, rows * cols, 2.0);
        let r = rng.vec(rows * cols);
        let fwd = |x: &[f32]| {
            let sx: Vec<f32> = x.iter().map(|v| v * scale).collect();
            softmax_rows_cpu(&sx, cols)
        };
        let p = fwd(&x);
        let ds = softmax_backward_cpu(&p, &r, cols, scale);
        check("softmax", &x, &r, &ds, fwd, eps, tol, atol);
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn split_and_merge_backwards_match_finite_differences() {
    let (eps, tol, atol) = FD;
    let s = AttentionShape::new(2, 5, 8, 2);
    let n = s.len_x();
    let mut rng = Rng::new(600);
    // split_qkv: backward is merge_qkv.
    let qkv = rng.vec(3 * n);
    let r = rng.vec(3 * n);
    let analytic = merge_qkv_cpu(&s, &r[..n], &r[n..2 * n], &r[2 * n..]);
    let fwd = |x: &[f32]| {
        let (q, k, v) = split_qkv_cpu(&s, x);
        [q, k, v].concat()
    };
    check("split_qkv", &qkv, &r, &analytic, fwd, eps, tol, atol);
    // merge_heads: backward is split_heads.
    let heads = rng.vec(n);
    let r = rng.vec(n);
    let fwd = |x: &[f32]| merge_heads_cpu(&s, x);
    check(
        "merge_heads",
        &heads,
        &r,
        &split_heads_cpu(&s, &r),
        fwd,
        eps,
        tol,
        atol,
    );
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn attention_block_backward_matches_finite_differences() {
    let (eps, tol, atol) = FD;
    for (seed, dims) in [(1usize, 5usize, 12usize, 3usize), (2, 5, 8, 2)]
        .into_iter()
        .enumerate()
    {
        let s = shape(dims);
        let b = block(&s, 700 + seed as u64);
        let saved = attention_forward_cpu(&s, &b.x, &b.wqkv, &b.bqkv, &b.wo, &b.bo);
        let g = attention_backward_cpu(&s, &b.x, &b.wqkv, &b.wo, &saved, &b.dy);
        let f = |x: &[f32], wqkv: &[f32], bqkv: &[f32], wo: &[f32], bo: &[f32]| {
            attention_forward_cpu(&s, x, wqkv, bqkv, wo, bo).y
        };
        let dy = &b.dy;
        check(
            "attention dx",
            &b.x,
            dy,
            &g.dx,
            |v| f(v, &b.wqkv, &b.bqkv, &b.wo, &b.bo),
            eps,
            tol,
            atol,
        );
        check(
            "attention dWqkv",
            &b.wqkv,
            dy,
            &g.dwqkv,
            |v| f(&b.x, v, &b.bqkv, &b.wo, &b.bo),
            eps,
            tol,
            atol,
        );
        check(
            "attention dbqkv",
            &b.bqkv,
            dy,
            &g.dbqkv,
            |v| f(&b.x, &b.wqkv, v, &b.wo, &b.bo),
            eps,
            tol,
            atol,
        );
        check(
            "attention dWo",
            &b.wo,
            dy,
            &g.dwo,
            |v| f(&b.x, &b.wqkv, &b.bqkv, v, &b.bo),
            eps,
            tol,
            atol,
        );
        check(
            "attention dbo",
            &b.bo,
            dy,
            &g.dbo,
            |v| f(&b.x, &b.wqkv, &b.bqkv, &b.wo, v),
            eps,
            tol,
            atol,
        );
    }
}
