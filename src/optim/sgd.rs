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

/// The hyper-parameters of one SGD update (as [`sgd_step`] takes them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

/// [`sgd_step`] with a regulariser's gradient added inside the same pass: in each range of
/// `penalised`, `g ← g + grad.at(p)` is written back to `grads` (so they hold the gradient
/// the update used) and then the step is taken — one read-modify-write of every weight
/// instead of a gradient pass followed by the update. Ranges must be in order and disjoint.
pub fn sgd_step_penalised(
    params: &mut [f32],
    grads: &mut [f32],
    momentum_buf: &mut [f32],
    sgd: Sgd,
    penalised: &[(std::ops::Range<usize>, super::reg::PenaltyGrad)],
) {
    let Sgd {
        lr,
        momentum,
        weight_decay,
        nesterov,
    } = sgd;
    assert_eq!(params.len(), grads.len(), "parameters and gradients");
    assert_eq!(
        params.len(),
        momentum_buf.len(),
        "parameters and momentum buffer"
    );
    let update = |p: &mut f32, g: f32, v: &mut f32| {
        let mut d = g + weight_decay * *p;
        if momentum != 0.0 {
            *v = momentum * *v + d;
            d = if nesterov { d + momentum * *v } else { *v };
        }
        *p -= lr * d;
    };
    let mut at = 0;
    for (range, grad) in penalised {
        assert!(
            range.start >= at && range.end <= params.len(),
            "ordered ranges"
        );
        let plain = at..range.start;
        for ((p, g), v) in params[plain.clone()]
            .iter_mut()
            .zip(&grads[plain.clone()])
            .zip(&mut momentum_buf[plain])
        {
            update(p, *g, v);
        }
        for ((p, g), v) in params[range.clone()]
            .iter_mut()
            .zip(&mut grads[range.clone()])
            .zip(&mut momentum_buf[range.clone()])
        {
            *g += grad.at(*p);
            update(p, *g, v);
        }
        at = range.end;
    }
    let rest = at..params.len();
    for ((p, g), v) in params[rest.clone()]
        .iter_mut()
        .zip(&grads[rest.clone()])
        .zip(&mut momentum_buf[rest])
    {
        update(p, *g, v);
    }
}
