//! The CPU twins against an independent implementation: fixtures computed by JAX in float64
//! (`scripts/make_fixtures.py`, committed in `tests/fixtures/`). Each layer is written there
//! exactly as PyTorch defines it, so these tests pin layouts and conventions too.
//!
//! Tolerance: `|twin − jax| ≤ 1e-4·(1 + |jax|)` per element — the twins compute in f32 on
//! inputs of order 1 with sums of at most a few hundred terms (errors ≈ 1e-6), so this bound
//! catches any wrong index, layout or formula with a wide margin.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use serde::Deserialize;
use varlab::ops::conv::{conv2d_backward_cpu, conv2d_cpu, Conv2dShape};
use varlab::ops::linear::{linear_backward_cpu, linear_cpu, LinearShape};
use varlab::ops::pool::{
    avg_pool_backward_cpu, avg_pool_cpu, max_pool_backward_cpu, max_pool_cpu, PoolShape,
};

#[derive(Deserialize)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f64>,
}

struct Fixture(HashMap<String, Array>);

impl Fixture {
    fn load(name: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (regenerate with scripts/make_fixtures.py)"));
        Fixture(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")))
    }
    fn get(&self, key: &str) -> &Array {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no '{key}'"))
    }
    fn f32(&self, key: &str) -> Vec<f32> {
        self.get(key).data.iter().map(|&v| v as f32).collect()
    }
    fn shape(&self, key: &str) -> &[usize] {
        &self.get(key).shape
    }
    fn usize(&self, key: &str) -> usize {
        self.get(key).data[0] as usize
    }
}

fn assert_matches(what: &str, twin: &[f32], fx: &Fixture, key: &str) {
    let want = &fx.get(key).data;
    assert_eq!(twin.len(), want.len(), "{what}: length");
    for (i, (&t, &w)) in twin.iter().zip(want).enumerate() {
        let err = (t as f64 - w).abs();
        assert!(
            err <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}]: twin {t} vs jax {w}"
        );
    }
}

#[test]
fn linear_matches_jax() {
    let fx = Fixture::load("linear");
    let (n, inf) = (fx.shape("x")[0], fx.shape("x")[1]);
    let s = LinearShape::new(n, inf, fx.shape("w")[0]);
    let (x, w, b, dy) = (fx.f32("x"), fx.f32("w"), fx.f32("b"), fx.f32("dy"));
    let mut y = vec![0.0; s.len_y()];
    linear_cpu(&s, &x, &w, Some(&b), &mut y);
    assert_matches("linear y", &y, &fx, "y");
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    linear_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
    assert_matches("linear dx", &dx, &fx, "dx");
    assert_matches("linear dw", &dw, &fx, "dw");
    assert_matches("linear db", &db, &fx, "db");
}

#[test]
fn conv2d_matches_jax() {
    let fx = Fixture::load("conv2d");
    let (xs, ws) = (fx.shape("x").to_vec(), fx.shape("w").to_vec());
    let (stride, pad) = (fx.usize("stride"), fx.usize("pad"));
    let s = Conv2dShape::new(xs[0], xs[1], xs[2], xs[3], ws[0], ws[2])
        .stride(stride, stride)
        .padding(pad, pad);
    let (x, w, b, dy) = (fx.f32("x"), fx.f32("w"), fx.f32("b"), fx.f32("dy"));
    let mut y = vec![0.0; s.len_y()];
    conv2d_cpu(&s, &x, &w, Some(&b), &mut y);
    assert_matches("conv y", &y, &fx, "y");
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
    assert_matches("conv dx", &dx, &fx, "dx");
    assert_matches("conv dw", &dw, &fx, "dw");
    assert_matches("conv db", &db, &fx, "db");
}

#[test]
fn pooling_matches_jax() {
    let fx = Fixture::load("maxpool2");
    let xs = fx.shape("x").to_vec();
    let s = PoolShape::new(xs[0], xs[1], xs[2], xs[3], 2, 2);
    let (x, dy) = (fx.f32("x"), fx.f32("dy"));
    let (mut y, mut arg) = (vec![0.0; s.len_y()], vec![0u32; s.len_y()]);
    max_pool_cpu(&s, &x, &mut y, &mut arg);
    assert_matches("maxpool y", &y, &fx, "y");
    let mut dx = vec![0.0; x.len()];
    max_pool_backward_cpu(&s, &arg, &dy, &mut dx);
    assert_matches("maxpool dx", &dx, &fx, "dx");

    let fx = Fixture::load("avgpool3s2");
    let s = PoolShape::new(xs[0], xs[1], xs[2], xs[3], 3, 2);
    let (x, dy) = (fx.f32("x"), fx.f32("dy"));
    let mut y = vec![0.0; s.len_y()];
    avg_pool_cpu(&s, &x, &mut y);
    assert_matches("avgpool y", &y, &fx, "y");
    let mut dx = vec![0.0; x.len()];
    avg_pool_backward_cpu(&s, &dy, &mut dx);
    assert_matches("avgpool dx", &dx, &fx, "dx");

    let fx = Fixture::load("global_avgpool");
    let s = PoolShape::global(xs[0], xs[1], xs[2], xs[3]);
    let (x, dy) = (fx.f32("x"), fx.f32("dy"));
    let mut y = vec![0.0; s.len_y()];
    avg_pool_cpu(&s, &x, &mut y);
    assert_matches("global avgpool y", &y, &fx, "y");
    let mut dx = vec![0.0; x.len()];
    avg_pool_backward_cpu(&s, &dy, &mut dx);
    assert_matches("global avgpool dx", &dx, &fx, "dx");
}

#[test]
fn attention_block_matches_jax() {
    use varlab::ops::attention::{attention_backward_cpu, attention_forward_cpu, AttentionShape};
    let fx = Fixture::load("attention");
    let xs = fx.shape("x").to_vec();
    let s = AttentionShape::new(xs[0], xs[1], xs[2], fx.usize("heads"));
    let (x, wqkv, bqkv, wo, bo, dy) = (
        fx.f32("x"),
        fx.f32("wqkv"),
        fx.f32("bqkv"),
        fx.f32("wo"),
        fx.f32("bo"),
        fx.f32("dy"),
    );
    let saved = attention_forward_cpu(&s, &x, &wqkv, &bqkv, &wo, &bo);
    assert_matches("attention y", &saved.y, &fx, "y");
    let g = attention_backward_cpu(&s, &x, &wqkv, &wo, &saved, &dy);
    assert_matches("attention dx", &g.dx, &fx, "dx");
    assert_matches("attention dwqkv", &g.dwqkv, &fx, "dwqkv");
    assert_matches("attention dbqkv", &g.dbqkv, &fx, "dbqkv");
    assert_matches("attention dwo", &g.dwo, &fx, "dwo");
    assert_matches("attention dbo", &g.dbo, &fx, "dbo");
}

#[test]
fn patch_embedding_matches_a_strided_conv_in_jax() {
    use varlab::ops::vit::{patch_embed_backward_cpu, patch_embed_cpu, PatchShape};
    let fx = Fixture::load("patch_embed");
    let xs = fx.shape("x").to_vec();
    let e = fx.shape("w")[0];
    let s = PatchShape::new(xs[0], xs[1], xs[2], xs[3], fx.usize("patch"));
    let (x, w, b, dy) = (fx.f32("x"), fx.f32("w"), fx.f32("b"), fx.f32("dy"));
    // The conv weight [E, C, P, P] flattened is the patch-embedding weight [E, C·P·P].
    let y = patch_embed_cpu(&s, e, &x, &w, &b);
    assert_matches("patch embed y", &y, &fx, "y");
    let (dx, dw, db) = patch_embed_backward_cpu(&s, e, &x, &w, &dy);
    assert_matches("patch embed dx", &dx, &fx, "dx");
    assert_matches("patch embed dw", &dw, &fx, "dw");
    assert_matches("patch embed db", &db, &fx, "db");
}

#[test]
fn activations_match_jax() {
    use varlab::ops::activation::{gelu_backward_cpu, gelu_cpu, relu_backward_cpu, relu_cpu};
    for (name, fwd, bwd) in [
        (
            "relu",
            relu_cpu as fn(&[f32], &mut [f32]),
            relu_backward_cpu as fn(&[f32], &[f32], &mut [f32]),
        ),
        ("gelu_tanh", gelu_cpu, gelu_backward_cpu),
    ] {
        let fx = Fixture::load(name);
        let (x, dy) = (fx.f32("x"), fx.f32("dy"));
        let mut y = vec![0.0; x.len()];
        fwd(&x, &mut y);
        assert_matches(name, &y, &fx, "y");
        let mut dx = vec![0.0; x.len()];
        bwd(&x, &dy, &mut dx);
        assert_matches(name, &dx, &fx, "dx");
    }
}

#[test]
fn batch_norm_matches_jax_and_pytorch_running_stats() {
    use varlab::ops::norm::{
        batch_norm_backward_cpu, batch_norm_eval_cpu, batch_norm_train_cpu, BatchNorm2dConfig,
    };
    let fx = Fixture::load("batchnorm2d");
    let xs = fx.shape("x").to_vec();
    let mut cfg = BatchNorm2dConfig::new(xs[0], xs[1], xs[2], xs[3]);
    cfg.eps = fx.get("eps").data[0] as f32;
    cfg.momentum = fx.get("momentum").data[0] as f32;
    let (x, gamma, beta, dy) = (fx.f32("x"), fx.f32("gamma"), fx.f32("beta"), fx.f32("dy"));
    let (mut rm, mut rv) = (fx.f32("running_mean"), fx.f32("running_var"));
    let mut y_eval = vec![0.0; x.len()];
    batch_norm_eval_cpu(&cfg, &x, &gamma, &beta, &rm, &rv, &mut y_eval);
    assert_matches("bn eval y", &y_eval, &fx, "y_eval");
    let (mut y, mut saved) = (vec![0.0; x.len()], vec![0.0; 2 * cfg.c]);
    batch_norm_train_cpu(
        &cfg, &x, &gamma, &beta, &mut y, &mut saved, &mut rm, &mut rv,
    );
    assert_matches("bn train y", &y, &fx, "y");
    assert_matches("bn running mean", &rm, &fx, "new_running_mean");
    assert_matches("bn running var", &rv, &fx, "new_running_var");
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; cfg.c], vec![0.0; cfg.c]);
    batch_norm_backward_cpu(&cfg, &x, &dy, &gamma, &saved, &mut dx, &mut dg, &mut db);
    assert_matches("bn dx", &dx, &fx, "dx");
    assert_matches("bn dgamma", &dg, &fx, "dgamma");
    assert_matches("bn dbeta", &db, &fx, "dbeta");
}

#[test]
fn layer_norm_matches_jax() {
    use varlab::ops::norm::{layer_norm_backward_cpu, layer_norm_cpu, LayerNormConfig};
    let fx = Fixture::load("layernorm");
    let xs = fx.shape("x").to_vec();
    let mut cfg = LayerNormConfig::new(xs[0], xs[1]);
    cfg.eps = fx.get("eps").data[0] as f32;
    let (x, gamma, beta, dy) = (fx.f32("x"), fx.f32("gamma"), fx.f32("beta"), fx.f32("dy"));
    let (mut y, mut saved) = (vec![0.0; x.len()], vec![0.0; 2 * cfg.rows]);
    layer_norm_cpu(&cfg, &x, &gamma, &beta, &mut y, &mut saved);
    assert_matches("ln y", &y, &fx, "y");
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; cfg.c], vec![0.0; cfg.c]);
    layer_norm_backward_cpu(&cfg, &x, &dy, &gamma, &saved, &mut dx, &mut dg, &mut db);
    assert_matches("ln dx", &dx, &fx, "dx");
    assert_matches("ln dgamma", &dg, &fx, "dgamma");
    assert_matches("ln dbeta", &db, &fx, "dbeta");
}

#[test]
fn cross_entropy_matches_jax() {
    use varlab::ops::loss::softmax_cross_entropy_cpu;
    let fx = Fixture::load("cross_entropy");
    let s = fx.shape("logits").to_vec();
    let (n, k) = (s[0], s[1]);
    let logits = fx.f32("logits");
    let labels: Vec<u32> = fx.get("labels").data.iter().map(|&v| v as u32).collect();
    let mut dlogits = vec![0.0; n * k];
    let out = softmax_cross_entropy_cpu(n, k, &logits, &labels, &mut dlogits);
    assert_matches("xent dlogits", &dlogits, &fx, "dlogits");
    assert_matches("xent mean loss", &[out.loss_sum / n as f32], &fx, "loss");
    assert_eq!(out.correct as usize, fx.usize("correct"));
}
