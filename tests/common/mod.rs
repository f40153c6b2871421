//! Helpers shared by the GPU test files. Each GPU test runs natively (`cargo test`, on
//! whatever adapter wgpu finds — lavapipe in CI) and in headless Chromium through WebGPU
//! (`cargo test --target wasm32-unknown-unknown`).

#![allow(dead_code)]

use varlab::gpu::Context;

/// Declares an async test that runs on both targets.
#[macro_export]
macro_rules! gpu_test {
    (async fn $name:ident() $body:block) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on(async $body)
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() $body
    };
}

/// The test device. No adapter is a failure, never a skip: the message says what to install.
pub async fn context() -> Context {
    match Context::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// Asserts `|gpu − cpu| ≤ rel · scale_i + abs` element by element, naming the first miss.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: impl Fn(usize) -> f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let t = tol(i);
        assert!(
            (g - c).abs() <= t,
            "{what}: element {i}: gpu {g} vs cpu {c} (|diff| {} > tolerance {t})",
            (g - c).abs()
        );
    }
}
