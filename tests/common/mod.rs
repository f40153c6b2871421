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

/// The first `n` values of a GPU buffer (buffers may be padded).
pub async fn read(ctx: &Context, buf: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = ctx.read(buf).await.unwrap();
    v.truncate(n);
    v
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

/// `n` records in CIFAR-10's binary format (1 label byte + 3·32·32 pixel bytes), labels
/// cycling 0–9 (so every class has n/10), pixels from a seeded generator: the stand-in for the
/// shared CIFAR subset in a bare clone.
pub fn cifar_records(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = varlab::rng::Rng::new(seed);
    let mut out = Vec::with_capacity(n * 3073);
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend((0..3072).map(|_| (rng.next_u64() >> 56) as u8));
    }
    out
}

/// The shared CIFAR-10 subset (`../shared/data/cifar10` beside the repository), if there.
#[cfg(not(target_arch = "wasm32"))]
pub fn shared_cifar_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar10");
    ["train.bin", "test.bin"]
        .iter()
        .all(|n| dir.join(n).is_file())
        .then_some(dir)
}

/// The CIFAR subset's `train.bin` (10 000 records) and `test.bin` (2 000): the shared files
/// when present, else generated records of the same sizes (with one printed line saying so).
#[cfg(not(target_arch = "wasm32"))]
pub fn cifar_subset_bytes() -> (Vec<u8>, Vec<u8>) {
    match shared_cifar_dir() {
        Some(dir) => (
            std::fs::read(dir.join("train.bin")).unwrap(),
            std::fs::read(dir.join("test.bin")).unwrap(),
        ),
        None => {
            eprintln!(
                "note: ../shared/data/cifar10 is absent (a bare clone): using generated \
                 CIFAR-format records instead"
            );
            (cifar_records(10_000, 1), cifar_records(2_000, 2))
        }
    }
}
