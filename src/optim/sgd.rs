//! Stochastic gradient descent exactly as `torch.optim.SGD` defines it (dampening 0), and
//! the same update with a regulariser's gradient term inside its loop ([`Sgd::update_with`]).
//!
//! The loops are written for the auto-vectoriser: one pass over zipped slices, no branch in
//! the body (momentum and Nesterov are chosen once per call, through [`MomentumRule`]), f32
//! throughout; [`wide`] compiles them for AVX2 as well, used where the CPU has it.

use super::reg::{LaneSums, BLOCK};

/// One SGD step over flat arrays of equal length, in place. For every element, with
/// gradient `g`, parameter `p`, momentum buffer `v` (zeros before the first step), learning
/// rate `lr`, momentum `μ` and weight decay `λ`:
///
/// ```text
/// g ← g + λ·p                      (weight decay, coupled: added to the gradient)
/// if μ ≠ 0:  v ← μ·v + g           (on the first step v = g, as v starts at 0)
///            g ← g + μ·v  if nesterov,  else  g ← v
/// p ← p − lr·g
/// ```
///
/// With `μ = 0` the buffer is left untouched. Zero gaps between tensors (zero parameter,
/// zero gradient) stay zero.
pub fn sgd_step(
    params: &mut [f32],
    grads: &[f32],
    momentum_buf: &mut [f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
) {
    let sgd = Sgd {
        lr,
        momentum,
        weight_decay,
        nesterov,
    };
    sgd.update(params, grads, momentum_buf);
}

/// The hyper-parameters of one SGD update (those of [`sgd_step`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Sgd {
    /// [`sgd_step`]: `p ← p − lr·dir(g + λ·p)`.
    pub fn update(&self, params: &mut [f32], grads: &[f32], momentum_buf: &mut [f32]) {
        check_lengths(params.len(), grads.len(), momentum_buf.len());
        wide(
            #[inline(always)]
            || match self.rule() {
                Rule::Plain => plain::<NoMomentum>(self, params, grads, momentum_buf),
                Rule::Heavy => plain::<HeavyBall>(self, params, grads, momentum_buf),
                Rule::Nesterov => plain::<Nesterov>(self, params, grads, momentum_buf),
            },
        )
    }

    /// The update with a regulariser's gradient inside the same pass: for every element,
    /// `g ← g + term(p)` is written back to `grads` (so they hold the gradient the update
    /// used), then the step of [`Sgd::update`] is taken with that `g`. One read-modify-write
    /// of each weight instead of a gradient pass followed by the update; the result is
    /// bitwise that of adding `term` to `grads` first and then calling [`sgd_step`]. `term`
    /// must be inlined into the loop (a closure marked `#[inline(always)]`, see [`wide`]).
    pub fn update_with(
        &self,
        params: &mut [f32],
        grads: &mut [f32],
        momentum_buf: &mut [f32],
        term: impl Fn(f32) -> f32 + Copy,
    ) {
        check_lengths(params.len(), grads.len(), momentum_buf.len());
        wide(
            #[inline(always)]
            || match self.rule() {
                Rule::Plain => fused::<NoMomentum>(self, params, grads, momentum_buf, term),
                Rule::Heavy => fused::<HeavyBall>(self, params, grads, momentum_buf, term),
                Rule::Nesterov => fused::<Nesterov>(self, params, grads, momentum_buf, term),
            },
        )
    }

    /// [`Sgd::update_with`] that also returns `Σ summand(p)` over the weights BEFORE the
    /// update, with the additions of [`blocked_sum`](super::reg::blocked_sum) (the same value,
    /// bit for bit): each block of [`BLOCK`] weights is summed, then updated while it is in
    /// L1, so the sum costs no read of its own (ℓ1's penalty `λ₁Σ|w|`).
    pub fn update_summing(
        &self,
        params: &mut [f32],
        grads: &mut [f32],
        momentum_buf: &mut [f32],
        term: impl Fn(f32) -> f32 + Copy,
        summand: impl Fn(f32) -> f32 + Copy,
    ) -> f64 {
        check_lengths(params.len(), grads.len(), momentum_buf.len());
        wide(
            #[inline(always)]
            || match self.rule() {
                Rule::Plain => {
                    summing::<NoMomentum>(self, params, grads, momentum_buf, term, summand)
                }
                Rule::Heavy => {
                    summing::<HeavyBall>(self, params, grads, momentum_buf, term, summand)
                }
                Rule::Nesterov => {
                    summing::<Nesterov>(self, params, grads, momentum_buf, term, summand)
                }
            },
        )
    }

    fn rule(&self) -> Rule {
        match (self.momentum != 0.0, self.nesterov) {
            (false, _) => Rule::Plain,
            (true, false) => Rule::Heavy,
            (true, true) => Rule::Nesterov,
        }
    }
}

/// Runs `f` compiled with AVX2 where the CPU has it (x86-64, detected at run time), else as
/// built (SSE2 on x86-64, SIMD128 or scalar on wasm32). `f` must be small loops over slices
/// marked `#[inline(always)]` all the way down, so that they are compiled into the AVX2
/// function. Only the vector width changes: the same IEEE operations in the same order (no
/// fused multiply-add: Rust does not contract `a * b + c`), so the results are bitwise the
/// same on every path; the square roots and divisions of VAR's passes run at twice the rate.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above), all `avx2` asks for.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `f()` with AVX2 code generation for what is inlined into it.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

fn check_lengths(params: usize, grads: usize, momentum_buf: usize) {
    assert_eq!(params, grads, "parameters and gradients");
    assert_eq!(params, momentum_buf, "parameters and momentum buffer");
}

/// Which [`MomentumRule`] a configuration uses (chosen once per call, outside the loops).
enum Rule {
    Plain,
    Heavy,
    Nesterov,
}

/// How the (weight-decayed) gradient `d` becomes the step direction, updating the momentum
/// buffer `v`. Implemented by zero-sized types so that each loop is compiled without a branch.
pub trait MomentumRule {
    fn direction(d: f32, v: &mut f32, momentum: f32) -> f32;
}

/// `μ = 0`: the direction is `d`, the buffer untouched.
pub struct NoMomentum;
/// `v ← μ·v + d`, direction `v`.
pub struct HeavyBall;
/// `v ← μ·v + d`, direction `d + μ·v`.
pub struct Nesterov;

impl MomentumRule for NoMomentum {
    #[inline(always)]
    fn direction(d: f32, _v: &mut f32, _momentum: f32) -> f32 {
        d
    }
}

impl MomentumRule for HeavyBall {
    #[inline(always)]
    fn direction(d: f32, v: &mut f32, momentum: f32) -> f32 {
        *v = momentum * *v + d;
        *v
    }
}

impl MomentumRule for Nesterov {
    #[inline(always)]
    fn direction(d: f32, v: &mut f32, momentum: f32) -> f32 {
        *v = momentum * *v + d;
        d + momentum * *v
    }
}

/// [`Sgd::update_summing`]'s loop: per block of [`BLOCK`] weights (full blocks at their
/// constant length), the block's sum, then its update.
#[inline(always)]
fn summing<M: MomentumRule>(
    sgd: &Sgd,
    params: &mut [f32],
    grads: &mut [f32],
    buf: &mut [f32],
    term: impl Fn(f32) -> f32 + Copy,
    summand: impl Fn(f32) -> f32 + Copy,
) -> f64 {
    let mut sums = LaneSums::default();
    let mut p = params.chunks_exact_mut(BLOCK);
    let mut g = grads.chunks_exact_mut(BLOCK);
    let mut v = buf.chunks_exact_mut(BLOCK);
    for ((p, g), v) in (&mut p).zip(&mut g).zip(&mut v) {
        let p: &mut [f32; BLOCK] = p.try_into().expect("a full block");
        sums.add_full(p, summand);
        fused::<M>(sgd, p, g, v, term);
    }
    let (p, g, v) = (p.into_remainder(), g.into_remainder(), v.into_remainder());
    sums.add_block(p, summand);
    fused::<M>(sgd, p, g, v, term);
    sums.total()
}

/// One element: `p ← p − lr·dir(g + λ·p)`.
#[inline(always)]
fn step_one<M: MomentumRule>(sgd: &Sgd, p: &mut f32, g: f32, v: &mut f32) {
    let d = g + sgd.weight_decay * *p;
    *p -= sgd.lr * M::direction(d, v, sgd.momentum);
}

/// [`Sgd::update`]'s loop.
#[inline(always)]
fn plain<M: MomentumRule>(sgd: &Sgd, params: &mut [f32], grads: &[f32], buf: &mut [f32]) {
    for ((p, &g), v) in params.iter_mut().zip(grads).zip(buf.iter_mut()) {
        step_one::<M>(sgd, p, g, v);
    }
}

/// [`Sgd::update_with`]'s loop: the term added to the gradient, then the element's step.
#[inline(always)]
fn fused<M: MomentumRule>(
    sgd: &Sgd,
    params: &mut [f32],
    grads: &mut [f32],
    buf: &mut [f32],
    term: impl Fn(f32) -> f32,
) {
    for ((p, g), v) in params.iter_mut().zip(grads.iter_mut()).zip(buf.iter_mut()) {
        *g += term(*p);
        step_one::<M>(sgd, p, *g, v);
    }
}
