//! Finite-difference checks of the CPU twins' backward passes.
//!
//! For a forward `y = f(x)` and an upstream gradient `r` (= ∂L/∂y), the backward under
//! test returns `g = ∂L/∂x` for `L = Σ r·y`. Central differences evaluate
//! `(L(x + εe_j) − L(x − εe_j)) / 2ε`, with `L` summed in f64 so that only the f32 forward
//! itself rounds. With ε ≈ 1e-2 on inputs of order 1 the truncation error (O(ε²)) and the
//! rounding error (≈ 1e-7·|L|/ε) both stay near 1e-4 relative; tolerances of 1e-2
//! relative leave a wide margin while still catching a wrong factor, sign or index.

/// `Σ r_i·y_i` in f64.
pub fn weighted_sum(y: &[f32], r: &[f32]) -> f64 {
    assert_eq!(
        y.len(),
        r.len(),
        "upstream gradient and output differ in length"
    );
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Compares `analytic` (∂L/∂x) with central differences of `L(x) = Σ r·forward(x)` at up to
/// `samples` indices of `x` (all when `x` is small). Panics naming the first index that
/// differs by more than `tol·(|analytic| + |numeric|) + atol`.
#[allow(clippy::too_many_arguments)]
pub fn check(
    what: &str,
    x: &[f32],
    r: &[f32],
    analytic: &[f32],
    mut forward: impl FnMut(&[f32]) -> Vec<f32>,
    eps: f32,
    tol: f64,
    atol: f64,
) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let n = x.len();
    let samples = 48usize;
    let indices: Vec<usize> = if n <= samples {
        (0..n).collect()
    } else {
        // Spread over the whole tensor, first and last included.
        (0..samples).map(|s| s * (n - 1) / (samples - 1)).collect()
    };
    let mut xp = x.to_vec();
    for j in indices {
        let orig = xp[j];
        xp[j] = orig + eps;
        let lp = weighted_sum(&forward(&xp), r);
        xp[j] = orig - eps;
        let lm = weighted_sum(&forward(&xp), r);
        xp[j] = orig;
        // The step actually taken in f32.
        let h = ((orig + eps) as f64) - ((orig - eps) as f64);
        let numeric = (lp - lm) / h;
        let a = analytic[j] as f64;
        let bound = tol * (a.abs() + numeric.abs()) + atol;
        assert!(
            (a - numeric).abs() <= bound,
            "{what}: ∂L/∂x[{j}] analytic {a:.6e} vs finite difference {numeric:.6e} \
             (|diff| {:.3e} > {bound:.3e})",
            (a - numeric).abs()
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn catches_a_wrong_gradient_and_accepts_a_right_one() {
        let x = vec![0.3f32, -1.2, 2.0];
        let r = vec![1.0f32, 0.5, -2.0];
        let forward = |x: &[f32]| x.iter().map(|v| v * v * v).collect::<Vec<f32>>();
        let right: Vec<f32> = x.iter().zip(&r).map(|(v, g)| 3.0 * v * v * g).collect();
        super::check("cube", &x, &r, &right, forward, 1e-2, 1e-2, 1e-5);
        let wrong: Vec<f32> = right.iter().map(|g| g * 1.05).collect();
        let caught = std::panic::catch_unwind(|| {
            super::check("cube", &x, &r, &wrong, forward, 1e-2, 1e-2, 1e-5)
        });
        assert!(caught.is_err(), "a 5% error in a gradient went unnoticed");
    }
}
