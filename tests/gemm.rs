//! The native CPU product `ops::matmul::gemm` (on x86_64 with AVX2+FMA the blocked
//! `ops::gemm_x86`, else `matrixmultiply`) against a naive triple loop in f64: odd sizes,
//! every transpose, sizes past the packing blocks, alpha/beta (beta = 0 must not read C).

use varlab::ops::matmul::gemm;
use varlab::rng::Rng;

/// `alpha·op(A)·op(B) + beta·C0` in f64, and `Σ|a·b|` per element (the error scale).
#[allow(clippy::too_many_arguments)]
fn naive(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c0: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let mut want = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut g) = (0.0f64, 0.0f64);
            for p in 0..k {
                let x = if ta { a[p * m + i] } else { a[i * k + p] } as f64;
                let y = if tb { b[j * k + p] } else { b[p * n + j] } as f64;
                s += x * y;
                g += (x * y).abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c0[i * n + j] as f64
            };
            want[i * n + j] = alpha as f64 * s + old;
            mag[i * n + j] = alpha.abs() as f64 * g + old.abs();
        }
    }
    (want, mag)
}

/// Runs one product and checks every element against [`naive`] within `4·(k+2)·ε` of its
/// magnitude; with `beta = 0` C starts as NaN, which must not leak in.
#[allow(clippy::too_many_arguments)]
fn check(m: usize, n: usize, k: usize, ta: bool, tb: bool, alpha: f32, beta: f32, rng: &mut Rng) {
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let c0 = if beta == 0.0 {
        vec![f32::NAN; m * n]
    } else {
        rng.vec(m * n)
    };
    let mut c = c0.clone();
    gemm(m, n, k, alpha, &a, ta, &b, tb, beta, &mut c);
    let (want, mag) = naive((m, n, k), alpha, &a, ta, &b, tb, beta, &c0);
    let tol = 4.0 * (k + 2) as f64 * f32::EPSILON as f64;
    for (idx, ((&got, &w), &g)) in c.iter().zip(&want).zip(&mag).enumerate() {
        assert!(
            (got as f64 - w).abs() <= tol * g + 1e-30,
            "{m}x{n}x{k} ta={ta} tb={tb} alpha={alpha} beta={beta}: C[{idx}] = {got}, want {w}"
        );
    }
}

const ODD: [usize; 10] = [1, 2, 5, 6, 7, 15, 16, 17, 33, 70];

#[test]
fn odd_sizes_every_transpose() {
    let mut rng = Rng::new(7);
    for &m in &ODD {
        for &n in &ODD {
            for &k in &[1, 3, 16, 31, 64, 69] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    check(m, n, k, ta, tb, 1.0, 0.0, &mut rng);
                }
            }
        }
    }
}

#[test]
fn alpha_and_beta() {
    let mut rng = Rng::new(8);
    for (alpha, beta) in [
        (1.0, 1.0),
        (0.5, -0.75),
        (-2.0, 0.0),
        (0.0, 1.0),
        (1.0, 0.25),
    ] {
        for &(m, n, k) in &[(7, 17, 5), (13, 33, 70), (6, 16, 16), (1, 1, 1)] {
            for (ta, tb) in [(false, false), (true, true), (false, true)] {
                check(m, n, k, ta, tb, alpha, beta, &mut rng);
            }
        }
    }
}

/// Past one packed block in every direction (depth 256, 72 rows, 512 columns): the later
/// depth blocks add to C, beta applies once.
#[test]
fn sizes_past_the_blocks() {
    let mut rng = Rng::new(9);
    for &(m, n, k) in &[
        (150, 530, 300),
        (73, 17, 257),
        (5, 513, 600),
        (128, 300, 784),
    ] {
        for (ta, tb) in [(false, true), (true, false)] {
            check(m, n, k, ta, tb, 1.0, 0.0, &mut rng);
            check(m, n, k, ta, tb, 0.5, 1.0, &mut rng);
        }
    }
}

#[test]
fn empty_depth_scales_c() {
    let mut c = vec![2.0f32; 6];
    gemm(2, 3, 0, 1.0, &[], false, &[], false, 0.5, &mut c);
    assert_eq!(c, vec![1.0; 6]);
    let mut c = vec![f32::NAN; 6];
    gemm(2, 3, 0, 1.0, &[], false, &[], false, 0.0, &mut c);
    assert_eq!(c, vec![0.0; 6]);
}

/// The same bits on every call and on another thread (the per-thread packing buffers).
#[test]
fn same_bits_on_every_call_and_thread() {
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
