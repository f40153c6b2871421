//! The CPU executor's linear and convolution layers as real GEMMs ([`gemm`]), forward and
//! backward. Same math as the twins [`linear_cpu`](crate::ops::linear::linear_cpu) and
//! [`conv2d_cpu`](crate::ops::conv::conv2d_cpu) (which stay the simple references the GPU
//! kernels are tested against); `tests/exec_cpu.rs` checks these against them.
//!
//! Convolutions go through im2col one image at a time (`cols` `[K, Hout·Wout]`,
//! `K = Cin·kh·kw`), so the scratch is one image's columns, not the batch's.

use super::gather::{col2im, im2col};
use crate::ops::conv::Conv2dShape;
use crate::ops::linear::channel_sum_cpu;
use crate::ops::matmul::gemm;

/// `y [rows, out] = x [rows, in] · Wᵀ (+ b)`, `W` `[out, in]`.
pub fn linear_forward(
    rows: usize,
    inp: usize,
    out: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    gemm(rows, out, inp, 1.0, x, false, w, true, 0.0, y);
    if let Some(b) = b {
        for row in y[..rows * out].chunks_exact_mut(out) {
            row.iter_mut().zip(b).for_each(|(v, bi)| *v += bi);
        }
    }
}

/// The backward of [`linear_forward`]: `dx = dy·W`, `dW = dyᵀ·x`, `db = Σ_rows dy`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    rows: usize,
    inp: usize,
    out: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    if let Some(dx) = dx {
        gemm(rows, inp, out, 1.0, dy, false, w, false, 0.0, dx);
    }
    gemm(out, inp, rows, 1.0, dy, true, x, false, 0.0, dw);
    if let Some(db) = db {
        // channel_sum_cpu's sums, in its order, a row at a time (vectorisable).
        db[..out].fill(0.0);
        for row in dy[..rows * out].chunks_exact(out) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
    }
}

/// One image of `s` (batch 1) and the per-image sizes.
fn per_image(s: &Conv2dShape) -> (Conv2dShape, usize, usize, usize) {
    let one = Conv2dShape { n: 1, ..*s };
    (one, s.cin * s.h * s.w, s.cout * s.hw_out(), s.k())
}

/// `y [N, Cout, Ho, Wo] = conv(x [N, Cin, H, W], W [Cout, Cin, kh, kw]) (+ b)`.
pub fn conv_forward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    cols: &mut Vec<f32>,
) {
    let (one, xlen, ylen, k) = per_image(s);
    let hwo = s.hw_out();
    cols.resize(k * hwo, 0.0);
    for n in 0..s.n {
        im2col(&one, &x[n * xlen..(n + 1) * xlen], cols);
        let yn = &mut y[n * ylen..(n + 1) * ylen];
        gemm(s.cout, hwo, k, 1.0, w, false, cols, false, 0.0, yn);
        if let Some(b) = b {
            for (plane, bi) in yn.chunks_exact_mut(hwo).zip(b) {
                plane.iter_mut().for_each(|v| *v += bi);
            }
        }
    }
}

/// The backward of [`conv_forward`]: `dx` (optional), `dW` (written), `db` (optional).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    cols: &mut Vec<f32>,
) {
    let (one, xlen, ylen, k) = per_image(s);
    let hwo = s.hw_out();
    cols.resize(k * hwo, 0.0);
    for n in 0..s.n {
        let dyn_ = &dy[n * ylen..(n + 1) * ylen];
        im2col(&one, &x[n * xlen..(n + 1) * xlen], cols);
        // dW += dy_n [Cout, HWo] · cols_nᵀ [HWo, K]
        let beta = if n == 0 { 0.0 } else { 1.0 };
        gemm(s.cout, k, hwo, 1.0, dyn_, false, cols, true, beta, dw);
        if let Some(dx) = dx.as_deref_mut() {
            // dcols [K, HWo] = Wᵀ [K, Cout] · dy_n, then scattered back by col2im.
            gemm(k, hwo, s.cout, 1.0, w, true, dyn_, false, 0.0, cols);
            col2im(&one, cols, &mut dx[n * xlen..(n + 1) * xlen]);
        }
    }
    if let Some(db) = db {
        channel_sum_cpu(s.n, s.cout, hwo, dy, db);
    }
}
