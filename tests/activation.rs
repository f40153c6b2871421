//! ReLU and GELU (tanh approximation), forward and backward, GPU against the CPU twin, and
//! finite-difference checks of the twins' backward passes.
//!
//! Tolerances (f32, ε = 2⁻²³), per element:
//! - ReLU forward and backward: exact equality (a max and a select, no rounding).
//! - GELU forward: `16·ε·(1 + |x|)` absolute. The only difference between GPU and twin is
//!   the tanh implementation; WGSL lets tanh be a few ulp off (it is specified through exp),
//!   which moves `t ∈ [−1, 1]` by a few ε absolute and `y = 0.5·x·(1 + t)` by `|x|` times
//!   that.
//! - GELU backward: `16·ε·|dy|·(1 + |x| + |x|³)` absolute: the same error in t, scaled by
//!   `∂dx/∂t = dy·(0.5 − x·t·√(2/π)·(1 + 0.134·x²))`.
//! - Finite differences (ε_fd = 1e-2): relative 1e-2 with absolute 1e-4; ReLU inputs keep
//!   |x| ≥ 0.1 so that no step crosses the kink at 0.

mod common;

use common::{assert_close, context};
use varlab::ops::activation::{
    gelu_backward_cpu, gelu_cpu, relu_backward_cpu, relu_cpu, Act, Activation,
};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Inputs of length `n` spread over [−8, 8], with the interesting values first: 0, tiny,
/// the tanh clamp region and values whose cube overflows f32.
fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let special = [
        0.0f32, -0.0, 1e-3, -1e-3, 0.5, -0.5, 6.0, -6.0, 20.0, -20.0, 100.0, -100.0, 1e20, -1e20,
    ];
    let mut x: Vec<f32> = Rng::new(seed).vec(n).iter().map(|v| 8.0 * v).collect();
    for (o, s) in x.iter_mut().zip(special) {
        *o = s;
    }
    x
}

async fn check(act: Act, n: usize, seed: u64) {
    let ctx = context().await;
    let x = inputs(n, seed);
    let dy = Rng::new(seed + 100).vec(n);
    let (gx, gdy) = (
        ctx.storage("x", &x).unwrap(),
        ctx.storage("dy", &dy).unwrap(),
    );
    let (gy, gdx) = (ctx.zeros("y", n).unwrap(), ctx.zeros("dx", n).unwrap());
    let fwd = Activation::forward(&ctx, act, n, &gx, &gy).await.unwrap();
    let bwd = Activation::backward(&ctx, act, n, &gx, &gdy, &gdx)
        .await
        .unwrap();
    ctx.submit(&[&fwd.dispatch, &bwd.dispatch]).unwrap();
    let y: Vec<f32> = ctx.read(&gy).await.unwrap();
    let dx: Vec<f32> = ctx.read(&gdx).await.unwrap();
    let (mut cy, mut cdx) = (vec![0.0; n], vec![0.0; n]);
    match act {
        Act::Relu => {
            relu_cpu(&x, &mut cy);
            relu_backward_cpu(&x, &dy, &mut cdx);
            assert_close("relu forward", &y, &cy, |_| 0.0);
            assert_close("relu backward", &dx, &cdx, |_| 0.0);
        }
        Act::Gelu => {
            gelu_cpu(&x, &mut cy);
            gelu_backward_cpu(&x, &dy, &mut cdx);
            let e = f32::EPSILON;
            assert!(
                y.iter().chain(&dx).all(|v| v.is_finite()),
                "non-finite GELU"
            );
            assert_close("gelu forward", &y, &cy, |i| 16.0 * e * (1.0 + x[i].abs()));
            assert_close("gelu backward", &dx, &cdx, |i| {
                let a = x[i].abs().min(1e6);
                16.0 * e * dy[i].abs() * (1.0 + a + a * a * a)
            });
        }
    }
}

gpu_test!(
    async fn relu_forward_backward_match_cpu() {
        check(Act::Relu, 1, 1).await;
        check(Act::Relu, 14, 2).await;
        check(Act::Relu, 1037, 3).await;
    }
);

gpu_test!(
    async fn gelu_forward_backward_match_cpu() {
        check(Act::Gelu, 1, 4).await;
        check(Act::Gelu, 14, 5).await;
        check(Act::Gelu, 1037, 6).await;
    }
);

gpu_test!(
    async fn gelu_known_values() {
        // The formula evaluated in f64 (Python's math.tanh), rounded to 7 digits.
        let ctx = context().await;
        let x = [-3.0f32, -1.0, 0.0, 0.5, 2.0, 1e20, -1e20];
        let want_y = [
            -0.003_637_392,
            -0.158_808,
            0.0,
            0.345_714,
            1.954_598,
            1e20,
            -0.0,
        ];
        let want_dx = [
            -0.011_584_17,
            -0.082_964_08,
            0.5,
            0.867_369_9,
            1.086_099,
            1.0,
            0.0,
        ];
        let n = x.len();
        let gx = ctx.storage("x", &x).unwrap();
        let gdy = ctx.storage("dy", &[1.0f32; 7]).unwrap();
        let (gy, gdx) = (ctx.zeros("y", n).unwrap(), ctx.zeros("dx", n).unwrap());
        let fwd = Activation::forward(&ctx, Act::Gelu, n, &gx, &gy)
            .await
            .unwrap();
        let bwd = Activation::backward(&ctx, Act::Gelu, n, &gx, &gdy, &gdx)
            .await
            .unwrap();
        ctx.submit(&[&fwd.dispatch, &bwd.dispatch]).unwrap();
        let y: Vec<f32> = ctx.read(&gy).await.unwrap();
        let dx: Vec<f32> = ctx.read(&gdx).await.unwrap();
        assert_close("gelu values", &y, &want_y, |i| {
            2e-6 * (1.0 + want_y[i].abs())
        });
        assert_close("gelu gradients", &dx, &want_dx, |_| 2e-6);
    }
);

gpu_test!(
    async fn short_buffers_are_refused() {
        let ctx = context().await;
        let small = ctx.zeros("small", 3).unwrap();
        let big = ctx.zeros("big", 4).unwrap();
        match Activation::forward(&ctx, Act::Relu, 4, &big, &small).await {
            Err(varlab::gpu::GpuError::Validation { message, .. }) => {
                assert!(message.contains("y"), "{message}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a short output buffer was accepted"),
        }
    }
);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn relu_backward_matches_finite_differences() {
    let mut rng = Rng::new(7);
    // |x| in [0.1, 1): no step of 1e-2 crosses the kink at 0.
    let x: Vec<f32> = (0..40)
        .map(|_| {
            let v = rng.range(0.1, 1.0);
            if rng.uniform() < 0.5 {
                -v
            } else {
                v
            }
        })
        .collect();
    let r = rng.vec(40);
    let mut dx = vec![0.0; 40];
    relu_backward_cpu(&x, &r, &mut dx);
    let forward = |x: &[f32]| {
        let mut y = vec![0.0; x.len()];
        relu_cpu(x, &mut y);
        y
    };
    varlab::ops::gradcheck::check("relu", &x, &r, &dx, forward, 1e-2, 1e-2, 1e-4);
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn gelu_backward_matches_finite_differences() {
    let mut rng = Rng::new(8);
    let x: Vec<f32> = (0..40).map(|_| rng.range(-4.0, 4.0)).collect();
    let r = rng.vec(40);
    let mut dx = vec![0.0; 40];
    gelu_backward_cpu(&x, &r, &mut dx);
    let forward = |x: &[f32]| {
        let mut y = vec![0.0; x.len()];
        gelu_cpu(x, &mut y);
        y
    };
    varlab::ops::gradcheck::check("gelu", &x, &r, &dx, forward, 1e-2, 1e-2, 1e-4);
}
