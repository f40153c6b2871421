//! The CPU executor's hot kernels against plain references, natively and in wasm (where the
//! page runs the CPU executor when it has no usable GPU):
//! - `ops::matmul::gemm` against a naive triple loop in f64 on odd sizes, both transposes,
//!   alpha ≠ 1, beta 0 (over a C of NaNs, which must not leak) and beta ≠ 0, sizes past
//!   every packing block. Natively on x86_64 with AVX2+FMA it is `ops::gemm_x86` (then also:
//!   the same bits on every call and thread, its packing buffers being per thread), else
//!   `matrixmultiply`; in wasm (`cargo test --target wasm32-unknown-unknown`;
//!   .cargo/config.toml turns simd128 on) `matrixmultiply`'s v128 kernel.
//!   Tolerance per element: `2·(k+2)·ε·(|alpha|·Σ_k |a_ik·b_kj| + |beta·c_ij|)`, the
//!   rounding bound of a k-term f32 sum plus the alpha and beta roundings.
//! - `exec::gather`'s im2col, col2im and max-pool backward against their twins: the same
//!   bits.
//!
//! The ignored `gemm_throughput` and `cpu_step_time` print GFLOP/s and ms per step (they
//! assert no timing).

use varlab::exec::gather::{col2im, im2col, max_pool_backward};
use varlab::ops::conv::{col2im_cpu, im2col_cpu, Conv2dShape};
use varlab::ops::matmul::gemm;
use varlab::ops::pool::{max_pool_backward_cpu, max_pool_cpu, PoolShape};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A plain test natively, a browser test in wasm.
macro_rules! both_targets {
    // Attributes as token trees: wasm_bindgen_test recognises `ignore` only as plain tokens.
    ($(#[$($attr:tt)*])* fn $name:ident() $body:block) => {
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        $(#[$($attr)*])*
        fn $name() $body
    };
}

/// One product: sizes, transposes, alpha and beta.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
}

/// `(C, |C| bound)` of the naive triple loop in f64: C as the product defines it and
/// `|alpha|·Σ|a·b| + |beta·c|`.
fn naive(s: Case, a: &[f32], b: &[f32], c: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut mag) = (vec![0.0; s.m * s.n], vec![0.0; s.m * s.n]);
    for i in 0..s.m {
        for j in 0..s.n {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for p in 0..s.k {
                let x = if s.ta { a[p * s.m + i] } else { a[i * s.k + p] } as f64;
                let y = if s.tb { b[j * s.k + p] } else { b[p * s.n + j] } as f64;
                sum += x * y;
                abs += (x * y).abs();
            }
            let old = if s.beta == 0.0 {
                0.0
            } else {
                s.beta as f64 * c[i * s.n + j] as f64
            };
            out[i * s.n + j] = s.alpha as f64 * sum + old;
            mag[i * s.n + j] = (s.alpha as f64).abs() * abs + old.abs();
        }
    }
    (out, mag)
}

/// Runs `gemm` on random operands (C full of NaN when beta is 0) and checks every element.
fn check(s: Case, seed: u64) {
    let mut rng = Rng::new(seed);
    let a = rng.vec(s.m * s.k);
    let b = rng.vec(s.k * s.n);
    let c0 = if s.beta == 0.0 {
        vec![f32::NAN; s.m * s.n]
    } else {
        rng.vec(s.m * s.n)
    };
    let mut c = c0.clone();
    gemm(s.m, s.n, s.k, s.alpha, &a, s.ta, &b, s.tb, s.beta, &mut c);
    let (want, mag) = naive(s, &a, &b, &c0);
    let eps = f32::EPSILON as f64;
    for (i, ((got, want), mag)) in c.iter().zip(&want).zip(&mag).enumerate() {
        let tol = 2.0 * (s.k as f64 + 2.0) * eps * mag + 1e-30;
        assert!(
            (*got as f64 - want).abs() <= tol,
            "{s:?}: element {i}: got {got}, want {want} (tolerance {tol})"
        );
    }
}

/// Every transpose pair at alpha 1 / beta 0 and at alpha −0.5 / beta 0.75.
fn check_all_modes(m: usize, n: usize, k: usize, seed: u64) {
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.75)] {
            let s = Case {
                m,
                n,
                k,
                ta,
                tb,
                alpha,
                beta,
            };
            check(s, seed * 8 + i as u64);
        }
    }
}

both_targets!(
    fn gemm_matches_the_naive_loop_on_odd_sizes() {
        let mut seed = 1;
        for m in [1, 3, 4, 5, 9, 17, 70] {
            for n in [1, 7, 8, 9, 31, 65] {
                for k in [1, 2, 5, 16, 33, 70] {
                    check_all_modes(m, n, k, seed);
                    seed += 1;
                }
            }
        }
    }
);

both_targets!(
    fn gemm_across_blocks_of_m_n_and_k() {
        // Past the packing blocks of both GEMMs: matrixmultiply 64 rows × 1024 columns × 256
        // deep (natively, large products with threads allowed), gemm_x86 72 × 512 × 256 (the
        // second: under `gemm`'s threading size, so gemm_x86 on x86_64 with AVX2+FMA).
        check_all_modes(67, 1030, 300, 100);
        check_all_modes(73, 520, 260, 102);
        check_all_modes(130, 12, 513, 101);
    }
);

both_targets!(
    fn gemm_with_k_0_scales_c_by_beta() {
        for beta in [0.0, 0.5] {
            let s = Case {
                m: 5,
                n: 7,
                k: 0,
                ta: false,
                tb: true,
                alpha: 2.0,
                beta,
            };
            check(s, 200);
        }
    }
);

/// The same bits on every call and on another thread (natively: the x86 GEMM keeps its
/// packing buffers per thread).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn gemm_gives_the_same_bits_on_every_call_and_thread() {
    let mut rng = Rng::new(10);
    let (m, n, k) = (97, 301, 300);
    let (a, b) = (rng.vec(m * k), rng.vec(k * n));
    let run = |a: &[f32], b: &[f32]| {
        let mut c = vec![0.0f32; m * n];
        gemm(m, n, k, 1.0, a, false, b, true, 0.0, &mut c);
        c
    };
    let first = run(&a, &b);
    assert_eq!(first, run(&a, &b));
    let other = std::thread::scope(|s| s.spawn(|| run(&a, &b)).join().unwrap());
    assert_eq!(first, other);
}

/// One line of the benchmark's output: the browser's console in wasm (printed with
/// `--nocapture`), stdout natively.
#[cfg(target_arch = "wasm32")]
fn report(line: &str) {
    wasm_bindgen_test::console_log!("{line}");
}
#[cfg(not(target_arch = "wasm32"))]
fn report(line: &str) {
    println!("{line}");
}

both_targets!(
    /// GFLOP/s of `gemm` on the CPU executor's products for LeNet-5 (per image; the linear
    /// layer at batch 128) and an MLP layer, best of 5. In the browser, built like the page:
    /// `cargo test --profile web --target wasm32-unknown-unknown --no-default-features
    /// --test cpu_kernels -- --include-ignored --nocapture gemm_throughput`; natively:
    /// `cargo test --release --test cpu_kernels -- --ignored --nocapture`.
    #[ignore = "a benchmark: prints GFLOP/s"]
    fn gemm_throughput() {
        let shapes = [
            ("MLP 128x300x784 (x·Wᵀ)", 128, 300, 784, false, true),
            ("LeNet conv1 fwd 6x784x25", 6, 784, 25, false, false),
            ("LeNet conv1 dW 6x25x784", 6, 25, 784, false, true),
            ("LeNet conv1 dX 25x784x6", 25, 784, 6, true, false),
            ("LeNet conv2 fwd 16x100x150", 16, 100, 150, false, false),
            ("LeNet conv2 dW 16x150x100", 16, 150, 100, false, true),
            ("LeNet conv2 dX 150x100x16", 150, 100, 16, true, false),
            ("LeNet fc1 fwd 128x120x400", 128, 120, 400, false, true),
        ];
        let mut rng = Rng::new(7);
        for (name, m, n, k, ta, tb) in shapes {
            let (a, b) = (rng.vec(m * k), rng.vec(k * n));
            let mut c = vec![0.0; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let reps = (2e8 / flops).ceil() as usize;
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = varlab::time::now();
                for _ in 0..reps {
                    gemm(m, n, k, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                }
                best = best.min((varlab::time::now() - t) / reps as f64);
            }
            report(&format!(
                "{name}: {:.2} GFLOP/s (best of 5)",
                flops / best * 1e-9
            ));
        }
    }
);

both_targets!(
    /// Milliseconds per training step of the CPU executor (SGD and VAR, batch 128, LeNet-5
    /// and the MLP on MNIST-sized inputs; `bench::step_cpu`, median of 5 rounds of 2 steps).
    /// In the browser: `cargo test --profile web --target
    /// wasm32-unknown-unknown --no-default-features --test cpu_kernels -- --include-ignored
    /// --nocapture cpu_step_time`.
    #[ignore = "a benchmark: prints ms per step"]
    fn cpu_step_time() {
        let base = varlab::experiment::Config::default();
        let optims = ["sgd", "var"].map(|o| varlab::experiment::optim_config(&base, o).unwrap());
        for name in ["lenet5", "mlp"] {
            let model = varlab::nn::Model::by_name(name, [1, 28, 28], 10).unwrap();
            for row in varlab::bench::step_cpu(&model, &optims, 128, 2, 5).unwrap() {
                report(&format!(
                    "{name} {} batch 128: {:.1} ms/step",
                    row.optimizer, row.ms_per_step
                ));
            }
        }
    }
);

/// Convolution shapes with padding, strides, non-square kernels and odd sizes, two images.
fn conv_shapes() -> Vec<Conv2dShape> {
    let base = |cin, h, w, k| Conv2dShape::new(2, cin, h, w, 4, k);
    vec![
        base(1, 28, 28, 5).padding(2, 2),
        base(6, 14, 14, 5),
        base(3, 7, 9, 3).padding(1, 1),
        base(2, 9, 8, 3).stride(2, 2).padding(1, 1),
        base(2, 11, 10, 1).kernel(2, 3).stride(2, 1).padding(0, 2),
        base(1, 5, 6, 5).stride(3, 2).padding(2, 1),
        base(1, 1, 1, 1),
        // Kernels wider than the padded input: taps that read no input column at all.
        base(1, 1, 1, 5).padding(2, 2),
        base(1, 2, 2, 7).padding(3, 3),
        base(2, 3, 2, 7).stride(1, 2).padding(3, 3),
    ]
}

/// Bit patterns, so that −0.0 against 0.0 or a reordered sum would fail.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

both_targets!(
    fn im2col_and_col2im_give_the_twins_bits() {
        for (i, s) in conv_shapes().into_iter().enumerate() {
            let mut rng = Rng::new(300 + i as u64);
            let x = rng.vec(s.len_x());
            let len = s.n * s.k() * s.hw_out();
            let (mut fast, mut twin) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            im2col(&s, &x, &mut fast);
            im2col_cpu(&s, &x, &mut twin);
            assert_eq!(bits(&fast), bits(&twin), "im2col {s:?}");
            let dcols = rng.vec(len);
            let (mut fast, mut twin) = (vec![f32::NAN; s.len_x()], vec![f32::NAN; s.len_x()]);
            col2im(&s, &dcols, &mut fast);
            col2im_cpu(&s, &dcols, &mut twin);
            assert_eq!(bits(&fast), bits(&twin), "col2im {s:?}");
        }
    }
);

both_targets!(
    fn max_pool_backward_gives_the_twins_bits() {
        // Non-overlapping, overlapping (3 over 2) and ragged windows; ties from rounding.
        let shapes = [
            PoolShape::new(2, 3, 8, 8, 2, 2),
            PoolShape::new(1, 2, 9, 7, 3, 2),
            PoolShape::new(3, 1, 5, 5, 2, 1),
            PoolShape::global(2, 3, 4, 5),
        ];
        for (i, s) in shapes.into_iter().enumerate() {
            let mut rng = Rng::new(400 + i as u64);
            let x: Vec<f32> = rng
                .vec(s.planes() * s.h * s.w)
                .iter()
                .map(|v| (v * 4.0).round())
                .collect();
            let outs = s.planes() * s.hout() * s.wout();
            let (mut y, mut argmax) = (vec![0.0; outs], vec![0u32; outs]);
            max_pool_cpu(&s, &x, &mut y, &mut argmax);
            let dy = rng.vec(outs);
            let len = s.planes() * s.h * s.w;
            let (mut fast, mut twin) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            max_pool_backward(&s, &argmax, &dy, &mut fast);
            max_pool_backward_cpu(&s, &argmax, &dy, &mut twin);
            assert_eq!(bits(&fast), bits(&twin), "{s:?}");
        }
    }
);

/// Natively the x86 GEMM sums every element as `matrixmultiply` does, so the two give the
/// same bits (which lets `gemm` hand large products to `matrixmultiply`'s threads).
#[cfg(target_arch = "x86_64")]
#[test]
fn gemm_x86_gives_matrixmultiplys_bits() {
    if !varlab::ops::gemm_x86::available() {
        println!("gemm_x86_gives_matrixmultiplys_bits: skipped, this CPU has no AVX2+FMA");
        return;
    }
    let mut rng = Rng::new(11);
    let shapes = [
        (1, 1, 1),
        (7, 9, 5),
        (67, 1030, 300),
        (130, 12, 513),
        (128, 300, 784),
        (300, 784, 128),
        (6, 784, 25),
        (150, 100, 16),
    ];
    for (m, n, k) in shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (alpha, beta) in [(1.0f32, 0.0f32), (1.0, 1.0), (-0.5, 0.75)] {
                let (a, b, c0) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
                let mut c1 = c0.clone();
                varlab::ops::gemm_x86::gemm(m, n, k, alpha, &a, ta, &b, tb, beta, &mut c1);
                let mut c2 = c0.clone();
                let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
                let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
                // SAFETY: the strides address m×k, k×n and m×n elements of the three vectors.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        beta,
                        c2.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                let diff = c1
                    .iter()
                    .zip(&c2)
                    .filter(|(x, y)| x.to_bits() != y.to_bits())
                    .count();
                assert_eq!(
                    diff, 0,
                    "{m}×{n}×{k} ta {ta} tb {tb} alpha {alpha} beta {beta}: {diff} elements differ"
                );
            }
        }
    }
}
