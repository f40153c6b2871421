//! Stochastic gradient descent exactly as `torch.optim.SGD` defines it (dampening 0).

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
    assert_eq!(params.len(), grads.len(), "parameters and gradients");
    assert_eq!(
        params.len(),
        momentum_buf.len(),
        "parameters and momentum buffer"
    );
    for ((p, &g), v) in params.iter_mut().zip(grads).zip(momentum_buf.iter_mut()) {
        let mut d = g + weight_decay * *p;
        if momentum != 0.0 {
            *v = momentum * *v + d;
            d = if nesterov { d + momentum * *v } else { *v };
        }
        *p -= lr * d;
    }
}
