//! The optimizers: the regularisers' gradients against f64 finite differences, the CPU
//! optimizer's equivalences, configuration checks, and the fused GPU step against the CPU
//! twin on a quadratic "model" `L = ½‖w − t‖²` (gradient `w − t`, computed on the GPU by
//! the elementwise `add` of `params` and `−t`, on the CPU by the same closure).
//!
//! Tolerances (GPU vs CPU, after 1–3 steps at lr 0.1): `1e-5·(1 + |w|)` per weight and
//! momentum. The GPU folds the per-tensor sums in f32 (the twin in f64) and its `sqrt` and
//! division may differ by a few ULP; VAR's coefficient `c ∝ 1/V²` doubles the relative error
//! of V (≈ 1e-6 here), which stays far below the bound. CrAM's compression is compared
//! exactly: its inputs are multiples of 2⁻⁶ and ρ = 0.25, so `w + ρg` is exact on both sides
//! and both pick the same threshold bit for bit.

mod common;

use common::{assert_close, context};
use varlab::gpu::Context;
use varlab::nn::params::align_up;
use varlab::nn::{ParamInfo, ParamKind, ParamTable};
use varlab::ops::Elementwise;
use varlab::optim::{CpuOptimizer, GpuOptimizer, OptimConfig, OptimKind, Scope};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A table of tensors `(name, len, prunable)` at aligned offsets.
fn table(specs: &[(&str, usize, bool)]) -> ParamTable {
    let mut offset = 0;
    let mut entries = Vec::new();
    for (node, &(name, len, prunable)) in specs.iter().enumerate() {
        entries.push(ParamInfo {
            name: name.to_string(),
            shape: vec![len],
            offset,
            len,
            kind: if prunable {
                ParamKind::Weight
            } else {
                ParamKind::Bias
            },
            node,
            prunable,
        });
        offset = align_up(offset + len);
    }
    ParamTable {
        entries,
        buffer_len: offset,
    }
}

/// Seven tensors of odd sizes, prunable and not, one spanning two 4096-element chunks.
fn model_table() -> ParamTable {
    table(&[
        ("a.weight", 301, true),
        ("a.bias", 7, false),
        ("b.weight", 4099, true),
        ("b.bias", 1, false),
        ("c.weight", 33, true),
        ("norm.weight", 5, false),
        ("head.weight", 65, true),
    ])
}

/// Values in every tensor (gaps 0): `scale·N(0,1)`, rounded to multiples of 2⁻⁶ when
/// `dyadic`.
fn fill(t: &ParamTable, seed: u64, scale: f32, dyadic: bool) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut w = vec![0.0f32; t.buffer_len];
    for p in &t.entries {
        for v in &mut w[p.range()] {
            let x = scale * rng.normal();
            *v = if dyadic { (x * 64.0).round() / 64.0 } else { x };
        }
    }
    w
}

/// The quadratic loss's gradient `g = w + (−t)` and loss, as the CPU closure.
fn quadratic(neg_t: &[f32]) -> impl FnMut(&[f32], bool, &mut [f32]) -> (f32, usize) + '_ {
    move |w: &[f32], _first: bool, g: &mut [f32]| {
        let mut loss = 0.0f64;
        for ((gi, &wi), &ti) in g.iter_mut().zip(w).zip(neg_t) {
            *gi = wi + ti;
            loss += 0.5 * (*gi as f64) * (*gi as f64);
        }
        (loss as f32, 0)
    }
}

/// Runs `steps` CPU steps; returns weights, momentum and the sparsities used.
fn cpu_run(
    cfg: &OptimConfig,
    t: &ParamTable,
    w0: &[f32],
    neg_t: &[f32],
    steps: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, Vec<Option<f32>>) {
    let mut opt = CpuOptimizer::new(cfg, t, seed).unwrap();
    let mut w = w0.to_vec();
    let mut grad = quadratic(neg_t);
    let used = (0..steps)
        .map(|_| opt.step(&mut w, 0.1, &mut grad).sparsity_used)
        .collect();
    (w, opt.momentum().to_vec(), used)
}

/// The same on the GPU: `first` and `second` are the elementwise `add` of params and −t.
async fn gpu_run(
    ctx: &Context,
    cfg: &OptimConfig,
    t: &ParamTable,
    w0: &[f32],
    neg_t: &[f32],
    steps: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, Vec<Option<f32>>) {
    let n = t.buffer_len;
    let params = ctx.storage("params", w0).unwrap();
    let grads = ctx.zeros("grads", n).unwrap();
    let neg = ctx.storage("-t", neg_t).unwrap();
    let grad = Elementwise::add(ctx, n, &params, &neg, &grads)
        .await
        .unwrap();
    let mut opt = GpuOptimizer::new(ctx, cfg, t, &params, &grads, seed)
        .await
        .unwrap();
    let mut used = Vec::new();
    for _ in 0..steps {
        opt.set_step(ctx, 0.1).unwrap();
        used.push(opt.sparsity());
        let list = opt.step_dispatches(&[&grad.dispatch], &[&grad.dispatch]);
        ctx.submit(&list).unwrap();
    }
    let w: Vec<f32> = ctx.read(&params).await.unwrap();
    (w, opt.read_momentum(ctx).await.unwrap(), used)
}

/// GPU and CPU runs of `cfg` from the same start agree within `1e-5·(1 + |x|)`; returns
/// the GPU weights.
async fn compare(ctx: &Context, cfg: &OptimConfig, steps: usize, dyadic: bool) -> Vec<f32> {
    let t = model_table();
    let w0 = fill(&t, 11, 0.05, dyadic);
    let neg_t = fill(&t, 12, 0.05, dyadic);
    let (cw, cv, cs) = cpu_run(cfg, &t, &w0, &neg_t, steps, 5);
    let (gw, gv, gs) = gpu_run(ctx, cfg, &t, &w0, &neg_t, steps, 5).await;
    let what = format!("{} ({cfg:?})", cfg.kind);
    assert_close(&format!("{what}: weights"), &gw, &cw, |i| {
        1e-5 * (1.0 + cw[i].abs())
    });
    assert_close(&format!("{what}: momentum"), &gv, &cv, |i| {
        1e-5 * (1.0 + cv[i].abs())
    });
    assert_eq!(gs, cs, "{what}: sparsities");
    assert!(cw != w0, "{what}: the step changed nothing");
    gw
}

/// The largest difference between two weight arrays.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn config(kind: OptimKind) -> OptimConfig {
    OptimConfig {
        kind,
        lambda: 1e-3,
        lambda_l1: 1e-2,
        lambda_hoyer: 1e-3,
        ..OptimConfig::default()
    }
}

gpu_test!(
    async fn fused_step_matches_cpu_for_sgd_var_l1_hoyer() {
        let ctx = context().await;
        let sgd = compare(&ctx, &config(OptimKind::Sgd), 3, false).await;
        for kind in [OptimKind::Var, OptimKind::L1, OptimKind::Hoyer] {
            let w = compare(&ctx, &config(kind), 3, false).await;
            // The regulariser's share is far above the tolerance: the comparison sees it.
            let d = max_diff(&w, &sgd);
            assert!(d > 1e-3, "{kind} moved the weights by only {d} from SGD's");
        }
        let nesterov = OptimConfig {
            nesterov: true,
            ..config(OptimKind::Var)
        };
        compare(&ctx, &nesterov, 3, false).await;
        let no_momentum = OptimConfig {
            momentum: 0.0,
            ..config(OptimKind::Hoyer)
        };
        compare(&ctx, &no_momentum, 3, false).await;
        let all = OptimConfig {
            regularize_all: true,
            ..config(OptimKind::L1)
        };
        compare(&ctx, &all, 3, false).await;
    }
);

gpu_test!(
    async fn sam_step_matches_cpu() {
        let ctx = context().await;
        compare(&ctx, &config(OptimKind::Sam), 2, false).await;
        compare(&ctx, &config(OptimKind::SamVar), 2, false).await;
    }
);

gpu_test!(
    async fn s2sam_step_matches_cpu() {
        let ctx = context().await;
        let sgd = compare(&ctx, &config(OptimKind::Sgd), 3, false).await;
        let s2 = compare(&ctx, &config(OptimKind::S2Sam), 3, false).await;
        // Steps 2 and 3 are perturbed: far more than the tolerance away from SGD.
        let d = max_diff(&s2, &sgd);
        assert!(d > 1e-4, "S²-SAM moved the weights by only {d} from SGD's");
        compare(&ctx, &config(OptimKind::S2SamVar), 3, false).await;
    }
);

gpu_test!(
    async fn cram_step_matches_cpu() {
        let ctx = context().await;
        let cram = |scope, plus, sparsity: Vec<f32>| OptimConfig {
            rho: 0.25,
            cram_scope: scope,
            cram_plus: plus,
            cram_sparsity: sparsity,
            ..config(OptimKind::Cram)
        };
        let dense = compare(&ctx, &cram(Scope::Global, false, vec![0.0]), 1, true).await;
        let global = compare(&ctx, &cram(Scope::Global, false, vec![0.7]), 1, true).await;
        let d = max_diff(&global, &dense);
        assert!(d > 1e-3, "compression changed the step by only {d}");
        compare(&ctx, &cram(Scope::Layer, false, vec![0.5]), 1, true).await;
        compare(&ctx, &cram(Scope::Global, true, vec![0.9]), 1, true).await;
        let var = OptimConfig {
            kind: OptimKind::CramVar,
            ..cram(Scope::Layer, true, vec![0.3])
        };
        compare(&ctx, &var, 1, true).await;
        // CrAM-Multi over several steps: the same draws as the CPU twin.
        compare(
            &ctx,
            &cram(Scope::Global, false, vec![0.5, 0.7, 0.9]),
            4,
            false,
        )
        .await;
    }
);

gpu_test!(
    async fn var_with_zero_lambda_equals_sgd_on_gpu() {
        let ctx = context().await;
        let t = model_table();
        let w0 = fill(&t, 3, 0.05, false);
        let neg_t = fill(&t, 4, 0.05, false);
        let var = OptimConfig {
            lambda: 0.0,
            ..config(OptimKind::Var)
        };
        let (vw, vv, _) = gpu_run(&ctx, &var, &t, &w0, &neg_t, 3, 1).await;
        let (sw, sv, _) = gpu_run(&ctx, &config(OptimKind::Sgd), &t, &w0, &neg_t, 3, 1).await;
        assert_eq!(vw, sw);
        assert_eq!(vv, sv);
    }
);

gpu_test!(
    async fn dispatch_count_does_not_depend_on_the_number_of_layers() {
        let ctx = context().await;
        let small = model_table();
        let specs: Vec<(String, usize, bool)> = (0..13)
            .map(|i| (format!("l{i}.weight"), 3 + 17 * i, i % 3 != 2))
            .collect();
        let specs: Vec<(&str, usize, bool)> =
            specs.iter().map(|(s, l, p)| (s.as_str(), *l, *p)).collect();
        let large = table(&specs);
        let expected = [
            (OptimKind::Sgd, 1),
            (OptimKind::Var, 3),
            (OptimKind::L1, 1),
            (OptimKind::Hoyer, 3),
            (OptimKind::Sam, 6),
            (OptimKind::SamVar, 8),
            (OptimKind::Cram, 11),
            (OptimKind::CramVar, 13),
            (OptimKind::S2Sam, 6),
            (OptimKind::S2SamVar, 8),
        ];
        for (kind, count) in expected {
            for t in [&small, &large] {
                let params = ctx.zeros("params", t.buffer_len).unwrap();
                let grads = ctx.zeros("grads", t.buffer_len).unwrap();
                let opt = GpuOptimizer::new(&ctx, &config(kind), t, &params, &grads, 0)
                    .await
                    .unwrap();
                assert_eq!(opt.dispatch_count(), count, "{kind}");
            }
        }
    }
);

gpu_test!(
    async fn telemetry_and_mask_match_cpu() {
        let ctx = context().await;
        let t = model_table();
        let w0 = fill(&t, 21, 0.05, false);
        let neg_t = fill(&t, 22, 0.05, false);
        let cfg = config(OptimKind::Var);
        let n = t.buffer_len;
        // Mask: every third weight pruned.
        let mask: Vec<f32> = (0..n).map(|i| (i % 3 != 0) as u8 as f32).collect();
        let params = ctx.storage("params", &w0).unwrap();
        let grads = ctx.zeros("grads", n).unwrap();
        let neg = ctx.storage("-t", &neg_t).unwrap();
        let grad = Elementwise::add(&ctx, n, &params, &neg, &grads)
            .await
            .unwrap();
        let mut gpu = GpuOptimizer::new(&ctx, &cfg, &t, &params, &grads, 0)
            .await
            .unwrap();
        gpu.set_mask(&ctx, Some(&mask)).unwrap();
        assert!(gpu.set_mask(&ctx, Some(&mask[1..])).is_err());
        let mut cpu = CpuOptimizer::new(&cfg, &t, 0).unwrap();
        cpu.set_mask(Some(mask.clone())).unwrap();
        let mut cw = w0.clone();
        let mut closure = quadratic(&neg_t);
        for _ in 0..2 {
            gpu.set_step(&ctx, 0.1).unwrap();
            ctx.submit(&gpu.step_dispatches(&[&grad.dispatch], &[]))
                .unwrap();
            cpu.step(&mut cw, 0.1, &mut closure);
        }
        let gw: Vec<f32> = ctx.read(&params).await.unwrap();
        assert_close("masked weights", &gw, &cw, |i| 1e-5 * (1.0 + cw[i].abs()));
        assert!(gw.iter().step_by(3).all(|&v| v == 0.0), "mask not applied");
        let got = gpu.read_telemetry(&ctx).await.unwrap();
        let want = cpu.telemetry(&gw);
        assert_eq!(got.len(), 4, "the prunable tensors");
        for (g, c) in got.iter().zip(&want) {
            assert_eq!(g.name, c.name);
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs() + 1e-12;
            assert!(close(g.mean, c.mean), "{g:?} vs {c:?}");
            assert!(close(g.var, c.var), "{g:?} vs {c:?}");
            assert!(close(g.psi, c.psi), "{g:?} vs {c:?}");
            assert!(close(g.penalty, c.penalty), "{g:?} vs {c:?}");
            assert!(c.penalty > 0.0 && (c.penalty - 1e-3 * c.psi).abs() <= 1e-6 * c.penalty);
        }
    }
);

gpu_test!(
    async fn gpu_refuses_a_bad_config() {
        let ctx = context().await;
        let t = model_table();
        let params = ctx.zeros("params", t.buffer_len).unwrap();
        let grads = ctx.zeros("grads", t.buffer_len).unwrap();
        let cfg = OptimConfig {
            rho: f32::NAN,
            ..OptimConfig::default()
        };
        let err = GpuOptimizer::new(&ctx, &cfg, &t, &params, &grads, 0)
            .await
            .err()
            .expect("accepted");
        assert!(err.to_string().contains("rho"), "{err}");
        let short = ctx.zeros("short", 10).unwrap();
        assert!(
            GpuOptimizer::new(&ctx, &OptimConfig::default(), &t, &short, &grads, 0)
                .await
                .is_err()
        );
    }
);

#[cfg(not(target_arch = "wasm32"))]
mod cpu {
    use super::*;
    use varlab::optim::reg::{
        abs_sq_sums, blocked_sum, psi_tensor, psi_tensor_grad, regularised, sign, smooth_sq_sums,
        Penalty, Term, R,
    };
    use varlab::optim::{psi, psi_grad, sgd_step, var_stats, OptimError, Sgd};

    /// ψ_ℓ in f64 exactly as METHODS.md defines it.
    fn psi64(w: &[f64]) -> f64 {
        let n = w.len() as f64;
        let r = R as f64;
        let m = w.iter().map(|x| (x * x + r).sqrt()).sum::<f64>() / n;
        let q = w.iter().map(|x| x * x).sum::<f64>() / n + r;
        1.0 / ((q - m * m).max(0.0) + 1e-8)
    }

    fn l1_64(w: &[f64]) -> f64 {
        w.iter().map(|x| x.abs()).sum()
    }

    fn hoyer64(w: &[f64]) -> f64 {
        let s1: f64 = w.iter().map(|x| x.abs()).sum();
        let s2: f64 = w.iter().map(|x| x * x).sum();
        s1 * s1 / s2
    }

    /// Central differences of `f` at every index (steps of 1e-7, far below the 1e-4 scale
    /// of w̃'s smoothing), against `analytic`; indices where w = 0 are skipped when
    /// `skip_zeros` (ℓ1 and Hoyer have a kink there).
    fn fd_check(
        what: &str,
        w: &[f32],
        analytic: &[f32],
        f: impl Fn(&[f64]) -> f64,
        skip_zeros: bool,
    ) {
        let mut x: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let h = 1e-7;
        let numeric: Vec<f64> = (0..w.len())
            .map(|j| {
                let orig = x[j];
                x[j] = orig + h;
                let plus = f(&x);
                x[j] = orig - h;
                let minus = f(&x);
                x[j] = orig;
                (plus - minus) / (2.0 * h)
            })
            .collect();
        let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (j, (&a, &num)) in analytic.iter().zip(&numeric).enumerate() {
            if skip_zeros && w[j] == 0.0 {
                assert_eq!(a, 0.0, "{what}: subgradient at 0 must be 0");
                continue;
            }
            let bound = 1e-3 * num.abs() + 1e-5 * scale;
            assert!(
                (a as f64 - num).abs() <= bound,
                "{what}[{j}] (n = {}): analytic {a:e} vs finite difference {num:e}",
                w.len()
            );
        }
    }

    /// Random tensors of several sizes, one with many exact zeros, one with a large weight.
    fn tensors() -> Vec<Vec<f32>> {
        let mut rng = Rng::new(9);
        let mut out: Vec<Vec<f32>> = [7usize, 64, 301]
            .iter()
            .map(|&n| (0..n).map(|_| 0.05 * rng.normal()).collect())
            .collect();
        let mut zeros: Vec<f32> = (0..101).map(|_| 0.1 * rng.normal()).collect();
        for v in zeros.iter_mut().step_by(2) {
            *v = 0.0;
        }
        zeros[1] = 1.5;
        out.push(zeros);
        out
    }

    #[test]
    fn psi_gradient_matches_f64_finite_differences() {
        for w in tensors() {
            let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let want = psi64(&w64);
            let got = psi_tensor(&w) as f64;
            assert!((got - want).abs() <= 1e-5 * want, "ψ {got} vs {want}");
            let mut g = vec![0.0f32; w.len()];
            psi_tensor_grad(&w, 1.0, &mut g);
            fd_check("∂ψ/∂w", &w, &g, psi64, false);
            // The zeros' gradient is exactly 0 (w/w̃ = 0).
            for (j, &v) in w.iter().enumerate() {
                if v == 0.0 {
                    assert_eq!(g[j], 0.0);
                }
            }
        }
    }

    #[test]
    fn l1_and_hoyer_gradients_match_f64_finite_differences() {
        for w in tensors() {
            for (penalty, f) in [
                (Penalty::L1(1.0), l1_64 as fn(&[f64]) -> f64),
                (Penalty::Hoyer(1.0), hoyer64),
            ] {
                let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
                let want = f(&w64);
                let got = penalty.value(&w) as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * want,
                    "{penalty:?}: {got} vs {want}"
                );
                let mut g = vec![0.0f32; w.len()];
                penalty.add_grad(&w, &mut g);
                fd_check(&format!("{penalty:?}"), &w, &g, f, true);
            }
        }
        // An all-zero tensor: no penalty, no gradient (no division by Σw² = 0).
        let zero = [0.0f32; 5];
        let mut g = [0.0f32; 5];
        Penalty::Hoyer(1.0).add_grad(&zero, &mut g);
        assert_eq!(g, [0.0; 5]);
        assert_eq!(Penalty::Hoyer(1.0).value(&zero), 0.0);
    }

    /// The one-pass `apply` of the CPU optimizer agrees with `value` + `add_grad` (f64
    /// statistics) within 1e-5 relative, for every penalty and tensor.
    #[test]
    fn one_pass_apply_matches_value_and_add_grad() {
        let mut rng = Rng::new(4);
        let big: Vec<f32> = (0..20_011).map(|_| rng.range(-0.03, 0.03)).collect();
        for w in tensors().into_iter().chain([big]) {
            for penalty in [
                Penalty::Var(1e-3),
                Penalty::L1(1e-3),
                Penalty::Hoyer(1e-3),
                Penalty::None,
            ] {
                let (mut g1, mut g2) = (vec![0.5f32; w.len()], vec![0.5f32; w.len()]);
                let got = penalty.apply(&w, &mut g1);
                let want = penalty.value(&w);
                penalty.add_grad(&w, &mut g2);
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1e-30),
                    "{penalty:?}: {got} vs {want}"
                );
                let scale = g2.iter().fold(0f32, |a, &x| a.max((x - 0.5).abs()));
                for (a, b) in g1.iter().zip(&g2) {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale.max(1e-30),
                        "{penalty:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The blocked f32 sums of the optimizer's statistics pass stay within 1e-6 relative of
    /// f64 sums per element (their documented bound is 8·2⁻²⁴ ≈ 4.8e-7 plus each term's own
    /// rounding), at lengths around the block and lane sizes and at a layer's size, for
    /// weights of mixed magnitudes; ℓ1's sum inside the update is the same sum, bit for bit.
    #[test]
    fn blocked_sums_match_f64_sums() {
        let mut rng = Rng::new(12);
        for n in [1usize, 7, 16, 63, 64, 65, 129, 4099, 235_200] {
            let w: Vec<f32> = (0..n)
                .map(|i| rng.normal() * if i % 3 == 0 { 1e-3 } else { 0.05 })
                .collect();
            let f64_sum = |f: fn(f64) -> f64| w.iter().map(|&x| f(x as f64)).sum::<f64>();
            let smooth64 = f64_sum(|x| (x * x + R as f64).sqrt());
            let sq64 = f64_sum(|x| x * x);
            let abs64 = f64_sum(f64::abs);
            let (s, q) = smooth_sq_sums(&w);
            let (a, q2) = abs_sq_sums(&w);
            let blocked = blocked_sum(&w, f32::abs);
            for (what, got, want) in [
                ("Σw̃", s, smooth64),
                ("Σw²", q, sq64),
                ("Σw² (abs_sq)", q2, sq64),
                ("Σ|w|", a, abs64),
                ("blocked Σ|w|", blocked, abs64),
            ] {
                assert!(
                    (got - want).abs() <= 1e-6 * want,
                    "{what} (n = {n}): {got} vs {want}"
                );
            }
            let sgd = Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            };
            let (mut p, mut g, mut v) = (w.clone(), vec![0.01f32; n], vec![0.0f32; n]);
            let inside = sgd.update_summing(&mut p, &mut g, &mut v, Term::l1_of(0.1), f32::abs);
            assert_eq!(inside, blocked, "n = {n}");
        }
    }

    #[test]
    fn branch_free_sign_is_wgsl_sign() {
        for (x, want) in [
            (2.5f32, 1.0f32),
            (1e-40, 1.0),
            (-3.0, -1.0),
            (-1e-40, -1.0),
            (0.0, 0.0),
            (-0.0, 0.0),
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, -1.0),
            (f32::NAN, 0.0),
        ] {
            assert_eq!(sign(x).to_bits(), want.to_bits(), "sign({x})");
        }
    }

    /// The optimizer's fused update (regulariser term inside the SGD loop, VAR's w̃ from the
    /// statistics pass) is bitwise the two-pass reference: the term added to the gradients
    /// by `Penalty::apply`, then `sgd_step` over the whole array. For every penalty, every
    /// momentum rule, with and without weight decay, over tensors with gaps between them.
    #[test]
    fn fused_update_is_bitwise_apply_then_sgd_step() {
        let t = model_table();
        let w0 = fill(&t, 21, 0.05, false);
        let g0 = fill(&t, 22, 0.01, false);
        for kind in [
            OptimKind::Sgd,
            OptimKind::Var,
            OptimKind::L1,
            OptimKind::Hoyer,
        ] {
            for (momentum, nesterov, weight_decay) in [
                (0.0, false, 0.0),
                (0.9, false, 5e-4),
                (0.9, true, 5e-4),
                (0.5, true, 0.0),
            ] {
                let cfg = OptimConfig {
                    momentum,
                    nesterov,
                    weight_decay,
                    ..config(kind)
                };
                let penalty = match kind {
                    OptimKind::Var => Penalty::Var(cfg.lambda),
                    OptimKind::L1 => Penalty::L1(cfg.lambda_l1),
                    OptimKind::Hoyer => Penalty::Hoyer(cfg.lambda_hoyer),
                    _ => Penalty::None,
                };
                let mut opt = CpuOptimizer::new(&cfg, &t, 0).unwrap();
                let (mut w, mut w_ref) = (w0.clone(), w0.clone());
                let mut v_ref = vec![0.0f32; t.buffer_len];
                for step in 0..3 {
                    // A gradient that depends on the step, the same for both.
                    let grad_at = |g: &mut [f32]| {
                        for (o, &x) in g.iter_mut().zip(&g0) {
                            *o = x * (1.0 + step as f32);
                        }
                    };
                    let mut grad = |_: &[f32], _: bool, g: &mut [f32]| {
                        grad_at(g);
                        (0.0, 0)
                    };
                    let report = opt.step(&mut w, 0.1, &mut grad);
                    let mut g = vec![0.0f32; t.buffer_len];
                    grad_at(&mut g);
                    let mut reg = 0.0f64;
                    for p in regularised(&t, false) {
                        reg += penalty.apply(&w_ref[p.range()], &mut g[p.range()]) as f64;
                    }
                    sgd_step(
                        &mut w_ref,
                        &g,
                        &mut v_ref,
                        0.1,
                        momentum,
                        weight_decay,
                        nesterov,
                    );
                    let what = format!("{kind} μ {momentum} nesterov {nesterov} step {step}");
                    assert_eq!(w, w_ref, "{what}: weights");
                    assert_eq!(opt.momentum(), v_ref, "{what}: momentum");
                    assert_eq!(opt.last_grads(), g, "{what}: gradients");
                    let reg = reg as f32;
                    assert!(
                        (report.reg - reg).abs() <= 1e-6 * reg,
                        "{what}: {report:?} vs {reg}"
                    );
                }
            }
        }
    }

    #[test]
    fn table_level_psi_covers_regularised_tensors_only() {
        let t = model_table();
        let w = fill(&t, 2, 0.05, false);
        let expected: f32 = t
            .entries
            .iter()
            .filter(|p| p.prunable)
            .map(|p| psi_tensor(&w[p.range()]))
            .sum();
        let got = psi(&w, &t, false);
        assert!((got - expected).abs() <= 1e-5 * expected);
        let mut g = vec![0.0f32; t.buffer_len];
        psi_grad(&w, &t, false, 1.0, &mut g);
        for p in &t.entries {
            let nonzero = g[p.range()].iter().any(|&v| v != 0.0);
            assert_eq!(nonzero, p.prunable, "{}", p.name);
        }
        let stats = var_stats(&w, &t, false);
        assert_eq!(stats.len(), 4);
        for s in &stats {
            let p = t.get(&s.name).unwrap();
            assert!((s.psi - psi_tensor(&w[p.range()])).abs() <= 1e-6 * s.psi);
            assert!(s.var > 0.0 && s.mean > 0.0 && s.penalty == 0.0);
        }
        assert_eq!(var_stats(&w, &t, true).len(), t.entries.len());
    }

    fn run(cfg: &OptimConfig, steps: usize) -> (Vec<f32>, Vec<f32>) {
        let t = model_table();
        let w0 = fill(&t, 31, 0.05, false);
        let neg_t = fill(&t, 32, 0.05, false);
        let (w, v, _) = cpu_run(cfg, &t, &w0, &neg_t, steps, 3);
        (w, v)
    }

    #[test]
    fn sam_cram_var_reduce_to_sgd() {
        let sgd = run(&config(OptimKind::Sgd), 3);
        let sam = OptimConfig {
            rho: 0.0,
            ..config(OptimKind::Sam)
        };
        assert_eq!(run(&sam, 3), sgd, "SAM with ρ = 0");
        for plus in [false, true] {
            let cram = OptimConfig {
                rho: 0.0,
                cram_sparsity: vec![0.0],
                cram_plus: plus,
                ..config(OptimKind::Cram)
            };
            let got = run(&cram, 3);
            if plus {
                // CrAM+ at s = ρ = 0 uses 2·∇L(w): SGD with twice the gradient.
                assert_ne!(got, sgd);
            } else {
                assert_eq!(got, sgd, "CrAM with s = ρ = 0");
            }
        }
        let var = OptimConfig {
            lambda: 0.0,
            ..config(OptimKind::Var)
        };
        assert_eq!(run(&var, 3), sgd, "VAR with λ = 0");
        // And the regularisers do change something when on.
        for kind in [OptimKind::Var, OptimKind::L1, OptimKind::Hoyer] {
            assert_ne!(run(&config(kind), 1), sgd, "{kind}");
        }
    }

    #[test]
    fn sam_steps_against_a_hand_computation() {
        // One tensor, L = ½‖w − t‖², no momentum or decay: w' = w − lr·(w + ρg/‖g‖ − t).
        let t = table(&[("w.weight", 3, true)]);
        let mut w = vec![0.0f32; t.buffer_len];
        w[..3].copy_from_slice(&[1.0, 2.0, 2.0]);
        let neg_t = vec![0.0f32; t.buffer_len];
        let cfg = OptimConfig {
            kind: OptimKind::Sam,
            momentum: 0.0,
            weight_decay: 0.0,
            rho: 0.3,
            ..OptimConfig::default()
        };
        let mut opt = CpuOptimizer::new(&cfg, &t, 0).unwrap();
        let mut grad = quadratic(&neg_t);
        let report = opt.step(&mut w, 0.5, &mut grad);
        assert_eq!(report.loss, 4.5);
        // ‖g‖ = 3: e = 0.1·(1, 2, 2); g' = (1.1, 2.2, 2.2); w' = w − 0.5·g'.
        let want = [0.45f32, 0.9, 0.9];
        for (a, b) in w[..3].iter().zip(want) {
            assert!((a - b).abs() <= 1e-6, "{:?}", &w[..3]);
        }
        assert_eq!(report.reg, 0.0);
    }

    #[test]
    fn cram_second_pass_sees_compressed_prunable_tensors_only() {
        let t = model_table();
        let w0 = fill(&t, 7, 0.05, false);
        let neg_t = fill(&t, 8, 0.05, false);
        for scope in [Scope::Layer, Scope::Global] {
            let cfg = OptimConfig {
                cram_sparsity: vec![0.5],
                cram_scope: scope,
                ..config(OptimKind::Cram)
            };
            let mut opt = CpuOptimizer::new(&cfg, &t, 0).unwrap();
            let mut w = w0.clone();
            let mut passes = Vec::new();
            let mut seen = Vec::new();
            let mut inner = quadratic(&neg_t);
            let mut grad = |p: &[f32], first: bool, g: &mut [f32]| {
                passes.push(first);
                if !first {
                    seen = p.to_vec();
                }
                inner(p, first, g)
            };
            let report = opt.step(&mut w, 0.1, &mut grad);
            assert_eq!(passes, [true, false]);
            assert_eq!(report.sparsity_used, Some(0.5));
            // The perturbed point w + ρg, then compressed.
            let perturbed: Vec<f32> = w0
                .iter()
                .zip(&neg_t)
                .map(|(&x, &nt)| x + cfg.rho * (x + nt))
                .collect();
            let zeros = |r: std::ops::Range<usize>| seen[r].iter().filter(|&&v| v == 0.0).count();
            let mut prunable_zeros = 0;
            for p in &t.entries {
                if p.prunable {
                    prunable_zeros += zeros(p.range());
                    if scope == Scope::Layer {
                        assert!(zeros(p.range()) >= p.len / 2, "{}", p.name);
                    }
                } else {
                    assert_eq!(&seen[p.range()], &perturbed[p.range()], "{}", p.name);
                }
            }
            assert!(prunable_zeros >= t.prunable_count() / 2, "{scope}");
            assert!(prunable_zeros <= t.prunable_count() / 2 + 4, "{scope}");
        }
    }

    #[test]
    fn cram_multi_sampling_is_deterministic_per_seed() {
        let cfg = OptimConfig {
            cram_sparsity: vec![0.5, 0.7, 0.9],
            ..config(OptimKind::Cram)
        };
        let t = model_table();
        let w0 = fill(&t, 1, 0.05, false);
        let neg_t = fill(&t, 2, 0.05, false);
        let a = cpu_run(&cfg, &t, &w0, &neg_t, 12, 42);
        let b = cpu_run(&cfg, &t, &w0, &neg_t, 12, 42);
        let c = cpu_run(&cfg, &t, &w0, &neg_t, 12, 43);
        assert_eq!(a, b);
        assert_ne!(a.2, c.2, "another seed, another sequence");
        let used: Vec<f32> = a.2.iter().map(|s| s.unwrap()).collect();
        assert!(used.iter().all(|s| cfg.cram_sparsity.contains(s)));
        for s in &cfg.cram_sparsity {
            assert!(used.contains(s), "{s} never drawn in 12 steps: {used:?}");
        }
        // CrAM compresses during the step only: the weights come back dense.
        assert!(a.0.iter().filter(|&&v| v == 0.0).count() < t.buffer_len - t.count() + 10);
    }

    #[test]
    fn step_report_has_the_penalty() {
        let t = model_table();
        let mut w = fill(&t, 5, 0.05, false);
        let neg_t = fill(&t, 6, 0.05, false);
        let cfg = config(OptimKind::Var);
        let want = cfg.lambda * psi(&w, &t, false);
        let mut opt = CpuOptimizer::new(&cfg, &t, 0).unwrap();
        let report = opt.step(&mut w, 0.1, &mut quadratic(&neg_t));
        assert!(
            (report.reg - want).abs() <= 1e-5 * want,
            "{report:?} vs {want}"
        );
        assert_eq!(report.sparsity_used, None);
    }

    #[test]
    fn validate_refuses_bad_values_naming_the_parameter() {
        assert_eq!(OptimConfig::default().validate(), Ok(()));
        type Set = fn(&mut OptimConfig, f32);
        let fields: [(&str, Set); 7] = [
            ("momentum", |c, v| c.momentum = v),
            ("weight_decay", |c, v| c.weight_decay = v),
            ("(lambda)", |c, v| c.lambda = v),
            ("lambda_l1", |c, v| c.lambda_l1 = v),
            ("lambda_hoyer", |c, v| c.lambda_hoyer = v),
            ("rho", |c, v| c.rho = v),
            ("cram_sparsity", |c, v| c.cram_sparsity = vec![0.5, v]),
        ];
        for (name, set) in fields {
            for bad in [f32::NAN, f32::INFINITY, -1e-3, 1e6] {
                let mut cfg = OptimConfig::default();
                set(&mut cfg, bad);
                let err = cfg.validate().expect_err(name);
                let msg = err.to_string();
                assert!(msg.contains(name), "{msg}");
                assert!(msg.contains(&format!("{bad}")), "{msg}");
            }
        }
        let mut cfg = OptimConfig {
            momentum: 1.0,
            ..OptimConfig::default()
        };
        assert!(cfg.validate().is_err(), "momentum 1");
        cfg.momentum = 0.9;
        cfg.cram_sparsity = vec![];
        assert_eq!(cfg.validate(), Err(OptimError::SparsityCount(0)));
        cfg.cram_sparsity = vec![0.5; 17];
        assert!(cfg.validate().unwrap_err().to_string().contains("17"));
        let err = OptimConfig {
            lambda: f32::NAN,
            ..OptimConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "λ (lambda) must be a finite number in [0, 1000]; got NaN."
        );
        assert!(CpuOptimizer::new(&cfg, &model_table(), 0).is_err());
    }

    /// S²-SAM by hand: the first step is SGD's; the second step's only pass sees
    /// `w₁ + ρ·g₁/‖g₁‖` (g₁ the first step's gradient) and its gradient updates `w₁` itself.
    #[test]
    fn s2sam_perturbs_by_the_previous_gradient() {
        let t = model_table();
        let w0 = fill(&t, 31, 0.05, false);
        let neg_t = fill(&t, 32, 0.05, false);
        let cfg = config(OptimKind::S2Sam);
        let mut opt = CpuOptimizer::new(&cfg, &t, 0).unwrap();
        let mut seen: Vec<Vec<f32>> = Vec::new();
        let mut grads: Vec<Vec<f32>> = Vec::new();
        let mut quad = quadratic(&neg_t);
        let mut grad = |w: &[f32], first: bool, g: &mut [f32]| {
            assert!(first, "S²-SAM runs one pass per step");
            seen.push(w.to_vec());
            let r = quad(w, first, g);
            grads.push(g.to_vec());
            r
        };
        let mut w = w0.clone();
        opt.step(&mut w, 0.1, &mut grad);
        let w1 = w.clone();
        opt.step(&mut w, 0.1, &mut grad);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], w0);
        let tensors: Vec<(usize, usize)> = t.entries.iter().map(|p| (p.offset, p.len)).collect();
        let norm = varlab::ops::stats::global_norm_cpu(&grads[0], &tensors);
        let scale = cfg.rho / norm;
        for i in 0..w1.len() {
            let want = w1[i] + scale * grads[0][i];
            assert!(
                (seen[1][i] - want).abs() <= 1e-7,
                "element {i}: {} vs {want}",
                seen[1][i]
            );
        }
        // The updates are SGD's with those gradients, from the unperturbed weights.
        let mut want = w0.clone();
        let mut buf = vec![0.0; want.len()];
        for g in &grads {
            varlab::optim::sgd_step(&mut want, g, &mut buf, 0.1, 0.9, 5e-4, false);
        }
        assert_eq!(w, want);
        assert_eq!(opt.last_grads(), &grads[1][..]);
        assert_eq!(opt.momentum(), &buf[..]);
    }

    #[test]
    fn names_parse_display_and_serde_round_trip() {
        for kind in OptimKind::ALL {
            let s = kind.to_string();
            assert_eq!(s.parse::<OptimKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{s}\""));
        }
        assert_eq!("SAM+VAR".parse::<OptimKind>(), Ok(OptimKind::SamVar));
        let two: Vec<OptimKind> = OptimKind::ALL
            .into_iter()
            .filter(|k| k.passes() == 2)
            .collect();
        assert_eq!(
            two,
            [
                OptimKind::Sam,
                OptimKind::Cram,
                OptimKind::SamVar,
                OptimKind::CramVar
            ]
        );
        assert!("adam"
            .parse::<OptimKind>()
            .unwrap_err()
            .to_string()
            .contains("adam"));
        assert_eq!("layer".parse::<Scope>(), Ok(Scope::Layer));
        assert!("both".parse::<Scope>().is_err());
        let cfg = OptimConfig {
            kind: OptimKind::CramVar,
            cram_scope: Scope::Layer,
            ..OptimConfig::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains("\"cram+var\"") && json.contains("\"layer\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<OptimConfig>(&json).unwrap(), cfg);
        // Missing fields take their defaults.
        let partial: OptimConfig = serde_json::from_str(r#"{"kind": "var"}"#).unwrap();
        assert_eq!(partial.kind, OptimKind::Var);
        assert_eq!(partial.lambda, 5e-5);
    }
}
