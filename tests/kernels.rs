//! Every WGSL kernel against its CPU twin on random inputs of odd sizes.
//!
//! Tolerances (f32, ε = 2⁻²³):
//! - matmul: per element `2·k·ε·Σ_k |a_ik·b_kj|` — the worst-case rounding bound of a
//!   k-term sum; GPU and CPU sum in the same order, so errors are usually far smaller.
//! - add / scale / axpy: exact equality, except `axpy`, which a GPU may fuse into one FMA:
//!   `ε·|α·x + y| + ε·|α·x|`.
//! - sum: `2·n·ε·Σ|x|` — the GPU adds in a tree, the twin sequentially in f64.

mod common;

use common::{assert_close, context};
use varlab::gpu::GpuError;
use varlab::ops::elementwise::{add_cpu, axpy_cpu, scale_cpu};
use varlab::ops::matmul::{compare, matmul_cpu};
use varlab::ops::reduce::sum_cpu;
use varlab::ops::{Elementwise, Matmul, MatmulShape, Sum};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Checks one product against the CPU twin; returns how many K splits the GPU used.
async fn check_matmul(shape: MatmulShape, alpha: f32, beta: f32, seed: u64) -> usize {
    let ctx = context().await;
    let mut rng = Rng::new(seed);
    let a = rng.vec(shape.len_a());
    let b = rng.vec(shape.len_b());
    let c0 = rng.vec(shape.len_c());
    let (ga, gb, gc) = (
        ctx.storage("A", &a).unwrap(),
        ctx.storage("B", &b).unwrap(),
        ctx.storage("C", &c0).unwrap(),
    );
    let op = Matmul::new(&ctx, shape, alpha, beta, &ga, &gb, &gc)
        .await
        .unwrap();
    ctx.submit(&op.dispatches.iter().collect::<Vec<_>>())
        .unwrap();
    let mut gpu: Vec<f32> = ctx.read(&gc).await.unwrap();
    gpu.truncate(shape.len_c());
    let mut cpu = c0.clone();
    matmul_cpu(&shape, &a, &b, alpha, beta, &mut cpu);
    if beta == 0.0 && alpha == 1.0 {
        let (worst, allowed, ok) = compare(&shape, &a, &b, &gpu, &cpu);
        assert!(ok, "{shape:?}: max error {worst} above bound {allowed}");
    } else {
        // alpha/beta add two roundings per element on top of the product's.
        let k = shape.k.max(1) as f32;
        let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
        let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
        let mut mag = c0.iter().map(|v| v.abs()).collect::<Vec<_>>();
        matmul_cpu(&shape, &abs_a, &abs_b, alpha.abs(), beta.abs(), &mut mag);
        assert_close("matmul alpha/beta", &gpu, &cpu, |i| {
            2.0 * (k + 2.0) * f32::EPSILON * mag[i] + 1e-30
        });
    }
    op.split.1
}

#[test]
fn split_k_only_for_few_tiles_and_long_k() {
    use varlab::ops::matmul::split_k;
    assert_eq!(split_k(1, 8320), (272, 31)); // a ViT weight gradient: 64×64 over 8 320 rows
    assert_eq!(split_k(128, 8320), (8320, 1)); // enough tiles already
    assert_eq!(split_k(1, 511), (511, 1)); // too short to split
    for (tiles, k) in [(1, 512), (3, 1000), (7, 100_000), (127, 4096)] {
        let (chunk, splits) = split_k(tiles, k);
        assert_eq!(chunk % 16, 0, "{tiles} tiles, k {k}");
        assert!(splits > 1 && chunk * splits >= k && chunk * (splits - 1) < k);
        assert!(chunk >= 256 && tiles * splits <= 2 * 128);
    }
}

#[test]
fn split_reductions_fill_the_device_in_fixed_pieces() {
    use varlab::ops::linear::channel_sum_split;
    use varlab::ops::split_reduction;
    // ViT-tiny's bias gradients at batch 128: 8 320 rows of 64 or 192 columns (2 or 6
    // column blocks of 32).
    assert_eq!(channel_sum_split(8320, 64, 1), (136, 62));
    assert_eq!(channel_sum_split(8320, 192, 1), (200, 42));
    // LeNet-5's first conv bias at batch 128: 6 channels of 128·28·28 terms.
    assert_eq!(channel_sum_split(128, 6, 784), (2560, 40));
    // Enough workgroups already, or too few terms: unsplit.
    assert_eq!(split_reduction(256, 100_000, 64, 8), (100_000, 1));
    assert_eq!(split_reduction(1, 127, 64, 8), (127, 1));
    assert_eq!(split_reduction(1, 0, 64, 8), (1, 1));
    for (groups, len, min, align) in [(1, 128, 64, 8), (3, 4099, 64, 8), (2, 100_003, 1024, 256)] {
        let (chunk, splits) = split_reduction(groups, len, min, align);
        assert!(splits > 1 && splits <= 64, "{groups} {len}");
        assert!(chunk % align == 0 && chunk >= min);
        assert!(chunk * splits >= len && chunk * (splits - 1) < len);
    }
}

gpu_test!(
    async fn matmul_1x1x1() {
        check_matmul(MatmulShape::new(1, 1, 1), 1.0, 0.0, 1).await;
    }
);

gpu_test!(
    async fn matmul_odd_33x17x29_all_transposes() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let shape = MatmulShape::new(33, 17, 29).transposed(ta, tb);
            check_matmul(shape, 1.0, 0.0, 2).await;
        }
    }
);

gpu_test!(
    async fn matmul_odd_130x70x257() {
        check_matmul(MatmulShape::new(130, 70, 257), 1.0, 0.0, 3).await;
        check_matmul(
            MatmulShape::new(130, 70, 257).transposed(true, true),
            1.0,
            0.0,
            4,
        )
        .await;
    }
);

gpu_test!(
    async fn matmul_split_along_k_matches_the_twin() {
        // One output tile and K = 1 000: three K ranges, then the reduction (odd sizes, all
        // transposes, alpha and beta applied once, after the splits are added).
        for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            let shape = MatmulShape::new(33, 17, 1000).transposed(ta, tb);
            assert_eq!(check_matmul(shape, 1.0, 0.0, 20 + i as u64).await, 3);
        }
        let shape = MatmulShape::new(19, 65, 600)
            .transposed(true, false)
            .batched(3);
        assert_eq!(check_matmul(shape, -0.5, 1.0, 30).await, 2);
    }
);

gpu_test!(
    async fn matmul_batched_with_alpha_beta_accumulates() {
        let shape = MatmulShape::new(19, 65, 7)
            .transposed(false, true)
            .batched(3);
        check_matmul(shape, -0.5, 1.0, 5).await;
        check_matmul(MatmulShape::new(5, 3, 0), 1.0, 0.25, 6).await;
        // A weight shared by every batch item, as in a convolution over im2col columns.
        let shared = MatmulShape::new(7, 33, 27)
            .batched(2)
            .broadcast(true, false);
        check_matmul(shared, 1.0, 0.0, 7).await;
        let shared_b = MatmulShape::new(9, 5, 70).batched(3).broadcast(false, true);
        check_matmul(shared_b.transposed(true, true), 1.0, 0.0, 8).await;
    }
);

gpu_test!(
    async fn matmul_refuses_too_many_workgroups_with_the_limit_named() {
        let ctx = context().await;
        let limit = ctx.report.limits.max_compute_workgroups_per_dimension as usize;
        // A batch larger than the z-dimension limit, with 1×1×1 items so buffers stay tiny.
        let shape = MatmulShape::new(1, 1, 1).batched(limit + 1);
        let buf = ctx.zeros("x", shape.len_a()).unwrap();
        let err = match Matmul::new(&ctx, shape, 1.0, 0.0, &buf, &buf, &buf).await {
            Err(e) => e,
            Ok(_) => panic!("a dispatch above the workgroup limit was accepted"),
        };
        assert!(
            matches!(
                err,
                GpuError::LimitExceeded {
                    limit: "max_compute_workgroups_per_dimension",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("max_compute_workgroups_per_dimension"));
    }
);

gpu_test!(
    async fn storage_above_the_binding_limit_is_refused() {
        let ctx = context().await;
        let max = ctx.report.limits.max_storage_buffer_binding_size;
        let err = ctx.zeros("huge", (max / 4 + 1) as usize).unwrap_err();
        assert!(matches!(err, GpuError::LimitExceeded { .. }), "{err}");
    }
);

gpu_test!(
    async fn shader_compile_errors_are_typed() {
        let ctx = context().await;
        let bad = varlab::gpu::Shader {
            name: "broken",
            source: "@compute @workgroup_size(1) fn main() { let x: f32 = undefined_thing; }",
        };
        match ctx.pipeline(&bad, "main").await {
            Err(GpuError::Shader {
                shader: "broken", ..
            }) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a broken shader compiled"),
        }
    }
);

gpu_test!(
    async fn elementwise_add_scale_axpy_match_cpu() {
        let ctx = context().await;
        for (n, seed) in [(1usize, 10u64), (255, 11), (1000, 12), (70_001, 13)] {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n);
            let y = rng.vec(n);
            let (gx, gy, gout) = (
                ctx.storage("x", &x).unwrap(),
                ctx.storage("y", &y).unwrap(),
                ctx.zeros("out", n).unwrap(),
            );
            let add = Elementwise::add(&ctx, n, &gx, &gy, &gout).await.unwrap();
            ctx.submit(&[&add.dispatch]).unwrap();
            let mut cpu = vec![0.0; n];
            add_cpu(&x, &y, &mut cpu);
            assert_close("add", &ctx.read::<f32>(&gout).await.unwrap(), &cpu, |_| 0.0);

            let scale = Elementwise::scale(&ctx, n, -1.75, &gx, &gout)
                .await
                .unwrap();
            ctx.submit(&[&scale.dispatch]).unwrap();
            scale_cpu(-1.75, &x, &mut cpu);
            assert_close(
                "scale",
                &ctx.read::<f32>(&gout).await.unwrap(),
                &cpu,
                |_| 0.0,
            );

            let axpy = Elementwise::axpy(&ctx, n, 0.3, &gx, &gy).await.unwrap();
            ctx.submit(&[&axpy.dispatch]).unwrap();
            let mut cpu = y.clone();
            axpy_cpu(0.3, &x, &mut cpu);
            let gpu = ctx.read::<f32>(&gy).await.unwrap();
            assert_close("axpy", &gpu, &cpu, |i| {
                f32::EPSILON * (cpu[i].abs() + (0.3 * x[i]).abs())
            });
        }
    }
);

gpu_test!(
    async fn sum_matches_cpu() {
        let ctx = context().await;
        for (n, seed) in [
            (1usize, 20u64),
            (255, 21),
            (257, 22),
            (65_537, 23),
            (300_001, 24),
        ] {
            let x = Rng::new(seed).vec(n);
            let gx = ctx.storage("x", &x).unwrap();
            let out = ctx.zeros("sum", 1).unwrap();
            let op = Sum::new(&ctx, n, &gx, &out).await.unwrap();
            let [d1, d2] = &op.dispatches;
            ctx.submit(&[d1, d2]).unwrap();
            let gpu = ctx.read::<f32>(&out).await.unwrap()[0];
            let cpu = sum_cpu(&x);
            let abs: f32 = x.iter().map(|v| v.abs()).sum();
            let tol = 2.0 * n as f32 * f32::EPSILON * abs;
            assert!(
                (gpu - cpu).abs() <= tol,
                "n={n}: gpu {gpu} vs cpu {cpu} (tol {tol})"
            );
        }
    }
);

gpu_test!(
    async fn many_kernels_in_one_submission_see_each_others_writes() {
        // z = (x + y) · 2, then total = Σ z: three kernels, one command buffer.
        let ctx = context().await;
        let n = 1001;
        let mut rng = Rng::new(30);
        let (x, y) = (rng.vec(n), rng.vec(n));
        let (gx, gy) = (ctx.storage("x", &x).unwrap(), ctx.storage("y", &y).unwrap());
        let (t, z, total) = (
            ctx.zeros("t", n).unwrap(),
            ctx.zeros("z", n).unwrap(),
            ctx.zeros("total", 1).unwrap(),
        );
        let add = Elementwise::add(&ctx, n, &gx, &gy, &t).await.unwrap();
        let scale = Elementwise::scale(&ctx, n, 2.0, &t, &z).await.unwrap();
        let sum = Sum::new(&ctx, n, &z, &total).await.unwrap();
        let [s1, s2] = &sum.dispatches;
        ctx.submit(&[&add.dispatch, &scale.dispatch, s1, s2])
            .unwrap();
        let gpu = ctx.read::<f32>(&total).await.unwrap()[0];
        let cpu: f32 = x.iter().zip(&y).map(|(a, b)| 2.0 * (a + b)).sum();
        assert!((gpu - cpu).abs() < 1e-3, "gpu {gpu} vs cpu {cpu}");
    }
);

/// Natively, wgpu reports an error no scope caught synchronously (its default handler would
/// panic); the context records it and the next readback returns it. In the browser the same
/// error arrives later as an event, so this check is native-only.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn an_invalid_command_is_a_typed_error_not_a_panic() {
    pollster::block_on(async {
        // Copying past the end of a buffer is a validation error that no launcher checks.
        let ctx = context().await;
        let small = ctx.zeros("small", 4).unwrap();
        let big = ctx.zeros("big", 64).unwrap();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&big, 0, &small, 0, 256);
        ctx.queue.submit([encoder.finish()]);
        let err = ctx.read::<f32>(&small).await.expect_err("accepted");
        assert!(matches!(err, GpuError::Validation { .. }), "{err}");
    })
}
