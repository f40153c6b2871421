//! Softmax cross-entropy fused with its gradient and on-GPU metrics, GPU against the CPU
//! twin, plus a finite-difference check of the twin's gradient w.r.t. the logits.
//!
//! Tolerances (f32, ε = 2⁻²³), per element, for logits of magnitude ≤ 4 (so the shifted
//! exponents `z − max` lie in [−8, 0]). WGSL allows exp to be `3 + 2·|x|` ulp off (≤ 19 ulp
//! here) and log 3 ulp or 2⁻²¹ absolute; the row sum of K exponentials adds `K·ε` relative.
//! With `A = K + 32`:
//! - dlogits: `A·ε·(softmax + onehot)/N + ε/N`.
//! - per-row loss: `A·ε·(1 + |loss| + |z_label − max|)`.
//! - loss sum (metrics[0]): the sum of the per-row bounds plus `2·N·ε·Σ|loss|` for the
//!   different summation order.
//! - correct count and rows counted: exact (the argmax compares the same f32 values on
//!   both sides; ties go to the first maximum on both).
//! - Finite differences of the mean loss (ε_fd = 1e-2): relative 1e-2, absolute 1e-5.

mod common;

use common::{assert_close, context};
use varlab::ops::loss::{softmax_cross_entropy_cpu, SoftmaxCrossEntropy, IGNORE, METRICS_LEN};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const E: f32 = f32::EPSILON;

struct Run {
    dlogits: Vec<f32>,
    rows: Vec<f32>,
    metrics: Vec<f32>,
}

/// Uploads, runs one step (after a reset when accumulating) and reads everything back.
async fn run(n: usize, k: usize, logits: &[f32], labels: &[u32], accumulate: bool) -> Run {
    let ctx = context().await;
    let gl = ctx.storage("logits", logits).unwrap();
    let gy = ctx.storage("labels", labels).unwrap();
    let gd = ctx.zeros("dlogits", n * k).unwrap();
    // Stale values in the metrics buffer: a non-accumulating step must overwrite them.
    let gm = ctx.storage("metrics", &[5.0f32, 6.0, 7.0]).unwrap();
    let op = SoftmaxCrossEntropy::new(&ctx, n, k, accumulate, &gl, &gy, &gd, &gm)
        .await
        .unwrap();
    let [d1, d2] = &op.dispatches;
    if accumulate {
        ctx.submit(&[&op.reset, d1, d2]).unwrap();
    } else {
        ctx.submit(&[d1, d2]).unwrap();
    }
    Run {
        dlogits: ctx.read(&gd).await.unwrap(),
        rows: ctx.read(&op.rows).await.unwrap(),
        metrics: ctx.read(&gm).await.unwrap(),
    }
}

fn random_case(n: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let logits: Vec<f32> = rng.vec(n * k).iter().map(|v| 4.0 * v).collect();
    let labels: Vec<u32> = (0..n).map(|_| (rng.next_u64() % k as u64) as u32).collect();
    (logits, labels)
}

async fn check(n: usize, k: usize, seed: u64) {
    let (logits, labels) = random_case(n, k, seed);
    let got = run(n, k, &logits, &labels, false).await;
    let mut cd = vec![0.0; n * k];
    let cpu = softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut cd);

    let a = (k + 32) as f32;
    let nf = n as f32;
    assert_close("dlogits", &got.dlogits, &cd, |i| {
        let (r, j) = (i / k, i % k);
        let onehot = if labels[r] as usize == j { 1.0 } else { 0.0 };
        let sm = cd[i] * nf + onehot;
        (a * E * (sm + onehot) + E) / nf
    });
    let row_tol = |r: usize| {
        let z = &logits[r * k..(r + 1) * k];
        let mx = z.iter().fold(f32::MIN, |m, &v| m.max(v));
        a * E * (1.0 + cpu.row_loss[r].abs() + (z[labels[r] as usize] - mx).abs())
    };
    assert_close("row loss", &got.rows[..n], &cpu.row_loss, row_tol);
    let correct_rows: Vec<f32> = (0..n)
        .map(|r| {
            let z = &logits[r * k..(r + 1) * k];
            let first_max = (0..k).fold(0, |b, j| if z[j] > z[b] { j } else { b });
            (first_max == labels[r] as usize) as u32 as f32
        })
        .collect();
    assert_eq!(
        &got.rows[n..2 * n],
        &correct_rows[..],
        "per-row correctness"
    );

    let sum_abs: f32 = cpu.row_loss.iter().map(|v| v.abs()).sum();
    let sum_tol: f32 = (0..n).map(row_tol).sum::<f32>() + 2.0 * nf * E * sum_abs;
    assert!(
        (got.metrics[0] - cpu.loss_sum).abs() <= sum_tol,
        "loss sum: gpu {} vs cpu {} (tol {sum_tol})",
        got.metrics[0],
        cpu.loss_sum
    );
    assert_eq!(got.metrics[1], cpu.correct as f32, "correct count");
    assert_eq!(got.metrics[2], nf, "rows counted");
}

gpu_test!(
    async fn cross_entropy_n1_k10_matches_cpu() {
        check(1, 10, 1).await;
    }
);

gpu_test!(
    async fn cross_entropy_n37_k10_matches_cpu() {
        check(37, 10, 2).await;
    }
);

gpu_test!(
    async fn cross_entropy_more_classes_than_threads() {
        // K = 130 > 64 threads per row: each thread scans several logits.
        check(5, 130, 3).await;
    }
);

gpu_test!(
    async fn argmax_ties_go_to_the_first_maximum() {
        let k = 4;
        #[rustfmt::skip]
        let logits = [
            1.0f32, 1.0, 1.0, 1.0, // all equal: argmax 0
            1.0, 1.0, 1.0, 1.0,    // all equal, label 3: wrong
            0.0, 2.0, -1.0, 2.0,   // tie at 1 and 3, label 3: wrong
            0.0, 2.0, -1.0, 2.0,   // tie at 1 and 3, label 1: right
            -1e30, -1e30, 1e30, 0.0, // huge logits stay finite
        ];
        let labels = [0u32, 3, 3, 1, 2];
        let got = run(5, k, &logits, &labels, false).await;
        assert_eq!(&got.rows[5..10], &[1.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(got.metrics[1], 3.0);
        assert!(
            got.dlogits.iter().all(|v| v.is_finite()),
            "{:?}",
            got.dlogits
        );
        assert!((got.rows[0] - 4.0f32.ln()).abs() < 1e-6, "{}", got.rows[0]);
        assert_eq!(got.rows[4], 0.0, "a certain prediction costs nothing");
    }
);

gpu_test!(
    async fn metrics_accumulate_over_steps_and_reset() {
        let ctx = context().await;
        let (n, k) = (37, 10);
        let (logits, labels) = random_case(n, k, 4);
        let mut cd = vec![0.0; n * k];
        let cpu = softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut cd);
        let gl = ctx.storage("logits", &logits).unwrap();
        let gy = ctx.storage("labels", &labels).unwrap();
        let gd = ctx.zeros("dlogits", n * k).unwrap();
        let gm = ctx.zeros("metrics", METRICS_LEN).unwrap();
        let op = SoftmaxCrossEntropy::new(&ctx, n, k, true, &gl, &gy, &gd, &gm)
            .await
            .unwrap();
        let [d1, d2] = &op.dispatches;
        // Three steps in two submissions, one read at the end.
        ctx.submit(&[d1, d2, d1, d2]).unwrap();
        ctx.submit(&[d1, d2]).unwrap();
        let m: Vec<f32> = ctx.read(&gm).await.unwrap();
        let one: Vec<f32> = {
            let single = run(n, k, &logits, &labels, true).await;
            single.metrics
        };
        assert!(
            (m[0] - 3.0 * one[0]).abs() <= 4.0 * E * m[0].abs(),
            "loss sum over three steps {} vs 3 × {}",
            m[0],
            one[0]
        );
        assert!((one[0] - cpu.loss_sum).abs() < 1e-4 * cpu.loss_sum.abs());
        assert_eq!(m[1], 3.0 * cpu.correct as f32);
        assert_eq!(m[2], 3.0 * n as f32);
        ctx.submit(&[&op.reset]).unwrap();
        let m: Vec<f32> = ctx.read(&gm).await.unwrap();
        assert_eq!(m, vec![0.0; METRICS_LEN]);
        // reset then one step in the same submission = one step's metrics.
        ctx.submit(&[&op.reset, d1, d2]).unwrap();
        let m: Vec<f32> = ctx.read(&gm).await.unwrap();
        assert_eq!(m, one);
    }
);

gpu_test!(
    async fn an_invalid_label_shows_as_nan_and_gets_no_gradient() {
        let (n, k) = (3, 5);
        let (logits, _) = random_case(n, k, 5);
        let labels = [1u32, 5, 0];
        let got = run(n, k, &logits, &labels, false).await;
        let mut cd = vec![0.0; n * k];
        let cpu = softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut cd);
        assert!(got.rows[1].is_nan() && cpu.row_loss[1].is_nan());
        assert!(got.metrics[0].is_nan(), "{:?}", got.metrics);
        assert_eq!(&got.dlogits[k..2 * k], &[0.0; 5]);
        assert_eq!(got.rows[n + 1], 0.0);
    }
);

gpu_test!(
    async fn ignored_rows_count_nothing_and_get_no_gradient() {
        let (n, k) = (5, 7);
        let (logits, mut labels) = random_case(n, k, 8);
        labels[1] = IGNORE;
        labels[4] = IGNORE;
        let got = run(n, k, &logits, &labels, true).await;
        let mut cd = vec![0.0; n * k];
        let cpu = softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut cd);
        assert_eq!(cpu.counted, 3);
        assert_eq!((cpu.row_loss[1], cpu.row_loss[4]), (0.0, 0.0));
        assert_eq!(got.metrics[2], 3.0, "rows counted");
        assert_eq!(got.metrics[1], cpu.correct as f32);
        let tol = 1e-5 * cpu.loss_sum.abs().max(1.0);
        assert!(
            (got.metrics[0] - cpu.loss_sum).abs() <= tol,
            "{:?}",
            got.metrics
        );
        assert_eq!(&got.dlogits[k..2 * k], &[0.0; 7]);
        assert_eq!(&got.dlogits[4 * k..], &[0.0; 7]);
        assert_eq!(&got.rows[2 * n..], &[1.0, 0.0, 1.0, 1.0, 0.0]);
    }
);

gpu_test!(
    async fn short_buffers_are_refused() {
        let ctx = context().await;
        let logits = ctx.zeros("logits", 20).unwrap();
        let labels = ctx.zeros("labels", 1).unwrap();
        let metrics = ctx.zeros("metrics", 3).unwrap();
        let res =
            SoftmaxCrossEntropy::new(&ctx, 2, 10, false, &logits, &labels, &logits, &metrics).await;
        match res {
            Err(varlab::gpu::GpuError::Validation { message, .. }) => {
                assert!(message.contains("labels"), "{message}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a short label buffer was accepted"),
        }
    }
);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    for (n, k, seed) in [(1usize, 10usize, 6u64), (4, 7, 7)] {
        let (logits, labels) = random_case(n, k, seed);
        let mut dlogits = vec![0.0; n * k];
        softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut dlogits);
        // L = mean loss = loss_sum / N, upstream gradient 1.
        let forward = |z: &[f32]| {
            let mut scratch = vec![0.0; n * k];
            vec![softmax_cross_entropy_cpu(n, k, z, &labels, &mut scratch).loss_sum / n as f32]
        };
        varlab::ops::gradcheck::check(
            "cross-entropy",
            &logits,
            &[1.0],
            &dlogits,
            forward,
            1e-2,
            1e-2,
            1e-5,
        );
    }
}
