//! BatchNorm2d (training forward with running-statistic updates, eval forward, training
//! backward) and LayerNorm (forward, backward), GPU against the CPU twins, and
//! finite-difference checks of the twins' backward passes w.r.t. x, gamma and beta.
//!
//! Tolerances (f32, ε = 2⁻²³), per element. A reduction of length L summed in a different
//! order (GPU tree vs sequential twin) differs by at most about `L·ε·Σ|terms|`; the bounds
//! below take twice that for each reduction an output depends on. For BatchNorm L = M =
//! N·H·W per channel; for LayerNorm L = C per row (and L = rows for dgamma/dbeta). Writing
//! `s = |gamma|·rstd`, `X = max |x|` over the channel/row, `xhat = (x − mean)·rstd`:
//! - forward y: `2·L·ε·(s·(X + |x − mean|) + |beta|)`; saved mean: `2·L·ε·X`; saved rstd:
//!   `2·L·ε·rstd`.
//! - BatchNorm running_mean: `2·M·ε·(|r| + X)` per update; running_var:
//!   `4·M·ε·(|r| + var_unbiased)` per update (two updates are checked, so twice these).
//! - BatchNorm eval y (no reduction): `8·ε·(|gamma|/√(rv + eps)·(|x| + |rm|) + |beta|)`.
//! - dbeta: `2·L·ε·Σ|dy|`; dgamma: `4·L·ε·Σ|dy·xhat|` (xhat itself carries the mean/rstd
//!   error).
//! - dx: `4·ε·s·(L·|dy'| + Σ|dy'| + |xhat|·Σ|dy'·xhat|)` with `dy' = dy` for BatchNorm and
//!   `dy' = dy·gamma` for LayerNorm (where s = rstd).
//! - Finite differences (ε_fd = 1e-2): relative 1e-2, absolute 1e-4.

mod common;

use common::{assert_close, context};
use varlab::ops::norm::{
    batch_norm_backward_cpu, batch_norm_eval_backward_cpu, batch_norm_eval_cpu,
    batch_norm_train_cpu, count_batches_cpu, layer_norm_backward_cpu, layer_norm_cpu, BatchNorm2d,
    BatchNorm2dBackward, BatchNorm2dConfig, BatchNorm2dEvalBackward, BatchNormBuffers,
    CountBatches, LayerNorm, LayerNormBackward, LayerNormConfig, NormGrads,
};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const E: f32 = f32::EPSILON;

/// Per-group (channel or row) magnitudes the tolerances are built from.
struct Group {
    x_max: f32,
    mean: f32,
    rstd: f32,
    sum_abs_dy: f32,
    sum_abs_dy_xhat: f32,
}

fn group(values: &[f32], dys: &[f32], eps: f32) -> Group {
    let l = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / l;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / l;
    let rstd = 1.0 / (var + eps as f64).sqrt();
    Group {
        x_max: values.iter().fold(0.0f32, |a, v| a.max(v.abs())),
        mean: mean as f32,
        rstd: rstd as f32,
        sum_abs_dy: dys.iter().map(|v| v.abs()).sum(),
        sum_abs_dy_xhat: values
            .iter()
            .zip(dys)
            .map(|(&v, g)| (g * ((v as f64 - mean) * rstd) as f32).abs())
            .sum(),
    }
}

/// Checks the training forward (twice) and backward as the executor encodes them; returns
/// how many pieces each channel's values were cut into (1: one workgroup per channel).
async fn check_batch_norm(n: usize, c: usize, h: usize, w: usize, seed: u64) -> usize {
    let ctx = context().await;
    let cfg = BatchNorm2dConfig::new(n, c, h, w);
    let (len, m) = (cfg.len(), cfg.m());
    let mut rng = Rng::new(seed);
    // A non-zero mean per element and non-unit spread, so that mean and rstd matter.
    let x: Vec<f32> = rng.vec(len).iter().map(|v| 2.0 * v + 0.7).collect();
    let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = rng.vec(c);
    let rm0: Vec<f32> = rng.vec(c).iter().map(|v| 0.1 * v).collect();
    let rv0: Vec<f32> = (0..c).map(|_| rng.range(0.5, 1.5)).collect();
    let dy = rng.vec(len);

    let gx = ctx.storage("x", &x).unwrap();
    let ggamma = ctx.storage("gamma", &gamma).unwrap();
    let gbeta = ctx.storage("beta", &beta).unwrap();
    let grm = ctx.storage("running_mean", &rm0).unwrap();
    let grv = ctx.storage("running_var", &rv0).unwrap();
    let gy = ctx.zeros("y", len).unwrap();
    let gsaved = ctx.zeros("saved", 2 * c).unwrap();
    let gdy = ctx.storage("dy", &dy).unwrap();
    let (gdx, gdgamma, gdbeta) = (
        ctx.zeros("dx", len).unwrap(),
        ctx.zeros("dgamma", c).unwrap(),
        ctx.zeros("dbeta", c).unwrap(),
    );
    let bn = BatchNorm2d::new(
        &ctx,
        cfg,
        &BatchNormBuffers {
            x: (&gx).into(),
            gamma: (&ggamma).into(),
            beta: (&gbeta).into(),
            y: (&gy).into(),
            saved: (&gsaved).into(),
            running_mean: (&grm).into(),
            running_var: (&grv).into(),
        },
    )
    .await
    .unwrap();
    let back = BatchNorm2dBackward::new(
        &ctx,
        cfg,
        &NormGrads {
            x: (&gx).into(),
            dy: (&gdy).into(),
            gamma: (&ggamma).into(),
            saved: (&gsaved).into(),
            dx: (&gdx).into(),
            dgamma: (&gdgamma).into(),
            dbeta: (&gdbeta).into(),
        },
    )
    .await
    .unwrap();
    // Two training steps (the running statistics compound), then the backward.
    let list: Vec<&varlab::gpu::Dispatch> = bn
        .train_list
        .iter()
        .chain(&bn.train_list)
        .chain(&back.dispatches)
        .collect();
    ctx.submit(&list).unwrap();
    let y: Vec<f32> = ctx.read(&gy).await.unwrap();
    let saved: Vec<f32> = ctx.read(&gsaved).await.unwrap();
    let rm: Vec<f32> = ctx.read(&grm).await.unwrap();
    let rv: Vec<f32> = ctx.read(&grv).await.unwrap();
    let dx: Vec<f32> = ctx.read(&gdx).await.unwrap();
    let dgamma: Vec<f32> = ctx.read(&gdgamma).await.unwrap();
    let dbeta: Vec<f32> = ctx.read(&gdbeta).await.unwrap();

    let (mut cy, mut csaved, mut crm, mut crv) = (vec![0.0; len], vec![0.0; 2 * c], rm0, rv0);
    for _ in 0..2 {
        batch_norm_train_cpu(
            &cfg,
            &x,
            &gamma,
            &beta,
            &mut cy,
            &mut csaved,
            &mut crm,
            &mut crv,
        );
    }
    let (mut cdx, mut cdgamma, mut cdbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
    batch_norm_backward_cpu(
        &cfg,
        &x,
        &dy,
        &gamma,
        &csaved,
        &mut cdx,
        &mut cdgamma,
        &mut cdbeta,
    );

    let hw = h * w;
    let chan = |i: usize| (i / hw) % c;
    let groups: Vec<Group> = (0..c)
        .map(|ch| {
            let idx: Vec<usize> = (0..n)
                .flat_map(|b| (0..hw).map(move |i| (b * c + ch) * hw + i))
                .collect();
            let xs: Vec<f32> = idx.iter().map(|&i| x[i]).collect();
            let ds: Vec<f32> = idx.iter().map(|&i| dy[i]).collect();
            group(&xs, &ds, cfg.eps)
        })
        .collect();
    let l = m as f32;
    assert_close("bn y", &y, &cy, |i| {
        let g = &groups[chan(i)];
        let s = gamma[chan(i)].abs() * g.rstd;
        2.0 * l * E * (s * (g.x_max + (x[i] - g.mean).abs()) + beta[chan(i)].abs())
    });
    assert_close("bn saved", &saved, &csaved, |i| {
        let g = &groups[i % c];
        if i < c {
            2.0 * l * E * g.x_max
        } else {
            2.0 * l * E * g.rstd
        }
    });
    assert_close("bn running_mean", &rm, &crm, |i| {
        4.0 * l * E * (crm[i].abs() + groups[i].x_max)
    });
    let var_u = |i: usize| (1.0 / groups[i].rstd.powi(2) - cfg.eps) * l / (l - 1.0);
    assert_close("bn running_var", &rv, &crv, |i| {
        8.0 * l * E * (crv[i].abs() + var_u(i))
    });
    assert_close("bn dbeta", &dbeta, &cdbeta, |i| {
        2.0 * l * E * groups[i].sum_abs_dy
    });
    assert_close("bn dgamma", &dgamma, &cdgamma, |i| {
        4.0 * l * E * groups[i].sum_abs_dy_xhat
    });
    assert_close("bn dx", &dx, &cdx, |i| {
        let g = &groups[chan(i)];
        let s = gamma[chan(i)].abs() * g.rstd;
        let xhat = ((x[i] - g.mean) * g.rstd).abs();
        4.0 * E * s * (l * dy[i].abs() + g.sum_abs_dy + xhat * g.sum_abs_dy_xhat)
    });

    // Eval mode with the running statistics the GPU just updated.
    ctx.submit(&[&bn.eval]).unwrap();
    let y_eval: Vec<f32> = ctx.read(&gy).await.unwrap();
    let mut cy_eval = vec![0.0; len];
    batch_norm_eval_cpu(&cfg, &x, &gamma, &beta, &rm, &rv, &mut cy_eval);
    assert_close("bn eval y", &y_eval, &cy_eval, |i| {
        let ch = chan(i);
        let s = gamma[ch].abs() / (rv[ch] + cfg.eps).sqrt();
        8.0 * E * (s * (x[i].abs() + rm[ch].abs()) + beta[ch].abs())
    });
    bn.split.1
}

gpu_test!(
    async fn batch_norm_n1_c3_7x7_matches_cpu() {
        check_batch_norm(1, 3, 7, 7, 1).await;
    }
);

gpu_test!(
    async fn batch_norm_n3_c5_7x7_matches_cpu() {
        check_batch_norm(3, 5, 7, 7, 2).await;
    }
);

gpu_test!(
    async fn batch_norm_more_values_per_channel_than_threads() {
        // M = 2·13·13 = 338 > 256: threads loop over several values each.
        check_batch_norm(2, 3, 13, 13, 5).await;
    }
);

#[test]
fn batch_norm_splits_only_few_channels_with_many_values() {
    use varlab::ops::norm::batch_norm_split;
    // ResNet-8's first stage at batch 128: 16 channels of 131 072 values, 16 pieces each.
    assert_eq!(
        batch_norm_split(&BatchNorm2dConfig::new(128, 16, 32, 32)),
        (8192, 16)
    );
    // Enough channels, or too few values: one workgroup per channel.
    assert_eq!(batch_norm_split(&BatchNorm2dConfig::new(8, 256, 8, 8)).1, 1);
    assert_eq!(batch_norm_split(&BatchNorm2dConfig::new(3, 5, 7, 7)).1, 1);
    for (n, c, h, w) in [
        (5, 2, 23, 23),
        (3, 1, 64, 64),
        (128, 64, 8, 8),
        (1, 3, 45, 46),
    ] {
        let cfg = BatchNorm2dConfig::new(n, c, h, w);
        let (chunk, splits) = batch_norm_split(&cfg);
        assert!(splits > 1 && chunk % 256 == 0 && chunk >= 1024, "{cfg:?}");
        assert!(
            chunk * splits >= cfg.m() && chunk * (splits - 1) < cfg.m(),
            "{cfg:?}"
        );
    }
}

gpu_test!(
    async fn batch_norm_split_into_pieces_matches_cpu() {
        // Few channels, many values each: the statistics and the backward sums are cut into
        // pieces (the last one shorter) merged in a fixed order. M = 2645 (2 pieces),
        // 2070 (2 pieces), 12 288 (12 pieces).
        assert_eq!(check_batch_norm(5, 2, 23, 23, 7).await, 2);
        assert_eq!(check_batch_norm(1, 3, 45, 46, 8).await, 2);
        assert_eq!(check_batch_norm(3, 1, 64, 64, 9).await, 12);
    }
);

async fn check_layer_norm(rows: usize, c: usize, seed: u64) {
    let ctx = context().await;
    let cfg = LayerNormConfig::new(rows, c);
    let len = cfg.len();
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rng.vec(len).iter().map(|v| 2.0 * v - 0.4).collect();
    let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = rng.vec(c);
    let dy = rng.vec(len);
    let gx = ctx.storage("x", &x).unwrap();
    let ggamma = ctx.storage("gamma", &gamma).unwrap();
    let gbeta = ctx.storage("beta", &beta).unwrap();
    let gdy = ctx.storage("dy", &dy).unwrap();
    let gy = ctx.zeros("y", len).unwrap();
    let gsaved = ctx.zeros("saved", 2 * rows).unwrap();
    let (gdx, gdgamma, gdbeta) = (
        ctx.zeros("dx", len).unwrap(),
        ctx.zeros("dgamma", c).unwrap(),
        ctx.zeros("dbeta", c).unwrap(),
    );
    let fwd = LayerNorm::new(&ctx, cfg, &gx, &ggamma, &gbeta, &gy, &gsaved)
        .await
        .unwrap();
    let back = LayerNormBackward::new(
        &ctx,
        cfg,
        &NormGrads {
            x: (&gx).into(),
            dy: (&gdy).into(),
            gamma: (&ggamma).into(),
            saved: (&gsaved).into(),
            dx: (&gdx).into(),
            dgamma: (&gdgamma).into(),
            dbeta: (&gdbeta).into(),
        },
    )
    .await
    .unwrap();
    let list: Vec<&varlab::gpu::Dispatch> = std::iter::once(&fwd.dispatch)
        .chain(&back.dispatches)
        .collect();
    ctx.submit(&list).unwrap();
    let y: Vec<f32> = ctx.read(&gy).await.unwrap();
    let saved: Vec<f32> = ctx.read(&gsaved).await.unwrap();
    let dx: Vec<f32> = ctx.read(&gdx).await.unwrap();
    let dgamma: Vec<f32> = ctx.read(&gdgamma).await.unwrap();
    let dbeta: Vec<f32> = ctx.read(&gdbeta).await.unwrap();

    let (mut cy, mut csaved) = (vec![0.0; len], vec![0.0; 2 * rows]);
    layer_norm_cpu(&cfg, &x, &gamma, &beta, &mut cy, &mut csaved);
    let (mut cdx, mut cdgamma, mut cdbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
    layer_norm_backward_cpu(
        &cfg,
        &x,
        &dy,
        &gamma,
        &csaved,
        &mut cdx,
        &mut cdgamma,
        &mut cdbeta,
    );

    // Per row, with dy' = dy·gamma for dx.
    let groups: Vec<Group> = (0..rows)
        .map(|r| {
            let xs = &x[r * c..(r + 1) * c];
            let ds: Vec<f32> = (0..c).map(|j| dy[r * c + j] * gamma[j]).collect();
            group(xs, &ds, cfg.eps)
        })
        .collect();
    let l = c as f32;
    assert_close("ln y", &y, &cy, |i| {
        let (r, j) = (i / c, i % c);
        let g = &groups[r];
        let s = gamma[j].abs() * g.rstd;
        2.0 * l * E * (s * (g.x_max + (x[i] - g.mean).abs()) + beta[j].abs())
    });
    assert_close("ln saved", &saved, &csaved, |i| {
        let g = &groups[i % rows];
        if i < rows {
            2.0 * l * E * g.x_max
        } else {
            2.0 * l * E * g.rstd
        }
    });
    assert_close("ln dx", &dx, &cdx, |i| {
        let (r, j) = (i / c, i % c);
        let g = &groups[r];
        let xhat = ((x[i] - g.mean) * g.rstd).abs();
        let dyp = (dy[i] * gamma[j]).abs();
        4.0 * E * g.rstd * (l * dyp + g.sum_abs_dy + xhat * g.sum_abs_dy_xhat)
    });
    // Column sums over the rows.
    let lr = rows as f32;
    let col = |j: usize| -> (f32, f32) {
        let mut a = 0.0;
        let mut b = 0.0;
        for (r, g) in groups.iter().enumerate() {
            let i = r * c + j;
            a += dy[i].abs();
            b += (dy[i] * (x[i] - g.mean) * g.rstd).abs();
        }
        (a, b)
    };
    assert_close("ln dbeta", &dbeta, &cdbeta, |j| 2.0 * lr * E * col(j).0);
    assert_close("ln dgamma", &dgamma, &cdgamma, |j| {
        4.0 * (lr + l) * E * col(j).1
    });
}

gpu_test!(
    async fn layer_norm_1x33_matches_cpu() {
        check_layer_norm(1, 33, 3).await;
    }
);

gpu_test!(
    async fn layer_norm_13x33_matches_cpu() {
        check_layer_norm(13, 33, 4).await;
    }
);

gpu_test!(
    async fn layer_norm_wider_than_a_workgroup_and_more_rows_than_lanes() {
        // C = 130 > 64 threads per row; rows = 37 > 16 lanes of the dgamma/dbeta kernel.
        check_layer_norm(37, 130, 6).await;
    }
);

gpu_test!(
    async fn layer_norm_odd_row_lengths_match_cpu() {
        // Rows of 1 and 3 values (64 and 16 rows per workgroup, the last group partly
        // empty), 64 (16 lanes × 4 rows, ViT-tiny's width), 192 and 200 (64 lanes, several
        // values per lane).
        for (seed, (rows, c)) in [(7, 1), (9, 3), (5, 64), (3, 192), (4, 200)]
            .into_iter()
            .enumerate()
        {
            check_layer_norm(rows, c, 20 + seed as u64).await;
        }
    }
);

gpu_test!(
    async fn layer_norm_params_split_over_rows_match_cpu() {
        use varlab::ops::norm::layer_norm_params_split;
        // Many rows, few columns: dgamma/dbeta are summed in pieces of rows, then added.
        for (seed, (rows, c)) in [(1000, 3), (333, 64)].into_iter().enumerate() {
            let (chunk, splits) = layer_norm_params_split(&LayerNormConfig::new(rows, c));
            assert!(splits > 1 && chunk % 16 == 0 && chunk * (splits - 1) < rows);
            check_layer_norm(rows, c, 30 + seed as u64).await;
        }
    }
);

#[test]
fn layer_norm_lanes_shrink_for_short_rows() {
    use varlab::ops::norm::layer_norm_lanes;
    let lanes: Vec<usize> = [1, 3, 5, 33, 64, 130, 192, 200]
        .map(layer_norm_lanes)
        .to_vec();
    assert_eq!(lanes, [1, 1, 2, 16, 16, 64, 64, 64]);
}

gpu_test!(
    async fn short_buffers_are_refused() {
        let ctx = context().await;
        let cfg = LayerNormConfig::new(2, 5);
        let (x, p, y) = (
            ctx.zeros("x", 10).unwrap(),
            ctx.zeros("p", 5).unwrap(),
            ctx.zeros("y", 10).unwrap(),
        );
        let short_saved = ctx.zeros("saved", 3).unwrap();
        match LayerNorm::new(&ctx, cfg, &x, &p, &p, &y, &short_saved).await {
            Err(varlab::gpu::GpuError::Validation { message, .. }) => {
                assert!(message.contains("saved"), "{message}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a short saved buffer was accepted"),
        }
    }
);

// ---- finite differences of the CPU twins ----------------------------------------------

#[cfg(not(target_arch = "wasm32"))]
mod fd {
    use super::*;
    use varlab::ops::gradcheck::check;

    const FD: (f32, f64, f64) = (1e-2, 1e-2, 1e-4);

    #[test]
    fn batch_norm_backward_matches_finite_differences() {
        let cfg = BatchNorm2dConfig::new(2, 3, 3, 2);
        let (len, c) = (cfg.len(), cfg.c);
        let mut rng = Rng::new(11);
        let x: Vec<f32> = rng.vec(len).iter().map(|v| 1.5 * v + 0.3).collect();
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = rng.vec(c);
        let r = rng.vec(len);
        let forward = |x: &[f32], gamma: &[f32], beta: &[f32]| {
            let (mut y, mut saved) = (vec![0.0; len], vec![0.0; 2 * c]);
            let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
            batch_norm_train_cpu(&cfg, x, gamma, beta, &mut y, &mut saved, &mut rm, &mut rv);
            (y, saved)
        };
        let (_, saved) = forward(&x, &gamma, &beta);
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        batch_norm_backward_cpu(
            &cfg,
            &x,
            &r,
            &gamma,
            &saved,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let (e, tol, atol) = FD;
        check(
            "bn dx",
            &x,
            &r,
            &dx,
            |v| forward(v, &gamma, &beta).0,
            e,
            tol,
            atol,
        );
        check(
            "bn dgamma",
            &gamma,
            &r,
            &dgamma,
            |v| forward(&x, v, &beta).0,
            e,
            tol,
            atol,
        );
        check(
            "bn dbeta",
            &beta,
            &r,
            &dbeta,
            |v| forward(&x, &gamma, v).0,
            e,
            tol,
            atol,
        );
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let cfg = LayerNormConfig::new(3, 7);
        let (len, c) = (cfg.len(), cfg.c);
        let mut rng = Rng::new(12);
        let x: Vec<f32> = rng.vec(len).iter().map(|v| 1.5 * v - 0.2).collect();
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = rng.vec(c);
        let r = rng.vec(len);
        let forward = |x: &[f32], gamma: &[f32], beta: &[f32]| {
            let (mut y, mut saved) = (vec![0.0; len], vec![0.0; 2 * cfg.rows]);
            layer_norm_cpu(&cfg, x, gamma, beta, &mut y, &mut saved);
            (y, saved)
        };
        let (_, saved) = forward(&x, &gamma, &beta);
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        layer_norm_backward_cpu(
            &cfg,
            &x,
            &r,
            &gamma,
            &saved,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let (e, tol, atol) = FD;
        check(
            "ln dx",
            &x,
            &r,
            &dx,
            |v| forward(v, &gamma, &beta).0,
            e,
            tol,
            atol,
        );
        check(
            "ln dgamma",
            &gamma,
            &r,
            &dgamma,
            |v| forward(&x, v, &beta).0,
            e,
            tol,
            atol,
        );
        check(
            "ln dbeta",
            &beta,
            &r,
            &dbeta,
            |v| forward(&x, &gamma, v).0,
            e,
            tol,
            atol,
        );
    }
}

gpu_test!(
    async fn batch_counter_bumps_exactly_its_offsets() {
        let ctx = context().await;
        let mut state: Vec<f32> = (0..200).map(|i| i as f32 * 0.5).collect();
        let offsets = [3u32, 64, 199];
        let g = ctx.storage("state", &state).unwrap();
        let op = CountBatches::new(&ctx, &g, &offsets).await.unwrap();
        ctx.submit(&[&op.dispatch, &op.dispatch]).unwrap();
        count_batches_cpu(&mut state, &offsets);
        count_batches_cpu(&mut state, &offsets);
        let got: Vec<f32> = ctx.read(&g).await.unwrap();
        assert_eq!(got, state);
        assert_eq!(got[64], 34.0);
        let short = CountBatches::new(&ctx, &g, &[200]).await;
        assert!(short.is_err(), "an offset past the buffer was accepted");
    }
);

/// What an eval-mode forward saves for the backward: the running mean, then
/// 1/√(running var + eps).
fn eval_saved(cfg: &BatchNorm2dConfig, rm: &[f32], rv: &[f32]) -> Vec<f32> {
    let rstd = rv.iter().map(|&v| 1.0 / (v + cfg.eps).sqrt());
    rm.iter().copied().chain(rstd).collect()
}

gpu_test!(
    async fn batch_norm_eval_backward_matches_cpu() {
        let ctx = context().await;
        let cfg = BatchNorm2dConfig::new(3, 5, 3, 7);
        let (len, c) = (cfg.len(), cfg.c);
        let mut rng = Rng::new(12);
        let x: Vec<f32> = rng.vec(len).iter().map(|v| 2.0 * v + 0.7).collect();
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let rm: Vec<f32> = rng.vec(c).iter().map(|v| 0.3 * v).collect();
        let rv: Vec<f32> = (0..c).map(|_| rng.range(0.5, 1.5)).collect();
        let dy = rng.vec(len);
        let g = |name: &str, v: &[f32]| ctx.storage(name, v).unwrap();
        let (gx, ggamma, grm, grv, gdy) = (
            g("x", &x),
            g("gamma", &gamma),
            g("mean", &rm),
            g("var", &rv),
            g("dy", &dy),
        );
        let (gdx, gdgamma, gdbeta) = (
            ctx.zeros("dx", len).unwrap(),
            ctx.zeros("dgamma", c).unwrap(),
            ctx.zeros("dbeta", c).unwrap(),
        );
        let unused = ctx.zeros("saved", 1).unwrap();
        let grads = NormGrads {
            x: (&gx).into(),
            dy: (&gdy).into(),
            gamma: (&ggamma).into(),
            saved: (&unused).into(),
            dx: (&gdx).into(),
            dgamma: (&gdgamma).into(),
            dbeta: (&gdbeta).into(),
        };
        let op = BatchNorm2dEvalBackward::new(&ctx, cfg, &grads, (&grm).into(), (&grv).into())
            .await
            .unwrap();
        ctx.submit(&[&op.dispatch]).unwrap();
        let saved = eval_saved(&cfg, &rm, &rv);
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
        batch_norm_eval_backward_cpu(
            &cfg,
            &x,
            &dy,
            &gamma,
            &saved,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        // dx is one product per element (rstd within a few ulp); the sums run over
        // M = 63 values in a different order: 64·ε·Σ|terms|, with |terms| ≤ 4 here.
        let eps = f32::EPSILON;
        let gx_: Vec<f32> = ctx.read(&gdx).await.unwrap();
        assert_close("bn eval dx", &gx_, &dx, |i| 8.0 * eps * dx[i].abs() + 1e-7);
        let m = cfg.m() as f32;
        let sum_tol = |_| 64.0 * eps * m * 4.0;
        assert_close(
            "bn eval dgamma",
            &ctx.read::<f32>(&gdgamma).await.unwrap(),
            &dgamma,
            sum_tol,
        );
        assert_close(
            "bn eval dbeta",
            &ctx.read::<f32>(&gdbeta).await.unwrap(),
            &dbeta,
            sum_tol,
        );
    }
);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn batch_norm_eval_backward_matches_finite_differences() {
    use varlab::ops::gradcheck::check;
    let cfg = BatchNorm2dConfig::new(2, 3, 3, 2);
    let (len, c) = (cfg.len(), cfg.c);
    let mut rng = Rng::new(13);
    let x: Vec<f32> = rng.vec(len).iter().map(|v| 1.5 * v + 0.3).collect();
    let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = rng.vec(c);
    let rm = rng.vec(c);
    let rv: Vec<f32> = (0..c).map(|_| rng.range(0.5, 1.5)).collect();
    let r = rng.vec(len);
    let forward = |x: &[f32], gamma: &[f32], beta: &[f32]| {
        let mut y = vec![0.0; len];
        batch_norm_eval_cpu(&cfg, x, gamma, beta, &rm, &rv, &mut y);
        y
    };
    let saved = eval_saved(&cfg, &rm, &rv);
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
    batch_norm_eval_backward_cpu(
        &cfg,
        &x,
        &r,
        &gamma,
        &saved,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
    );
    let (e, tol, atol) = (1e-2, 1e-2, 1e-4);
    check(
        "bn eval dx",
        &x,
        &r,
        &dx,
        |v| forward(v, &gamma, &beta),
        e,
        tol,
        atol,
    );
    check(
        "bn eval dgamma",
        &gamma,
        &r,
        &dgamma,
        |v| forward(&x, v, &beta),
        e,
        tol,
        atol,
    );
    check(
        "bn eval dbeta",
        &beta,
        &r,
        &dbeta,
        |v| forward(&x, &gamma, v),
        e,
        tol,
        atol,
    );
}
