//! The CPU executor's data-movement passes around its GEMMs, by rows instead of by element:
//! im2col, its adjoint col2im, and the max-pool backward. The twins
//! ([`im2col_cpu`](crate::ops::conv::im2col_cpu), [`col2im_cpu`](crate::ops::conv::col2im_cpu),
//! [`max_pool_backward_cpu`](crate::ops::pool::max_pool_backward_cpu)) recompute every
//! index (bounds, a division and a remainder per tap) and stay the simple references; these
//! copy whole runs of a row and scatter where the twins gather. In LeNet-5 the twins took
//! more of a CPU step than the products themselves (natively ~60 % against ~20 %).
//!
//! Same bits as the twins: im2col is a copy, and col2im and the pool backward add each input
//! pixel's terms in the twins' order, starting from zero (`tests/cpu_kernels.rs`).

use std::ops::Range;

use crate::ops::conv::Conv2dShape;
use crate::ops::pool::PoolShape;

/// The outputs `o < count` whose input `o·stride + tap − pad` lies in `0..len`: a range,
/// since the input grows with `o`.
fn valid(count: usize, stride: usize, tap: usize, pad: usize, len: usize) -> Range<usize> {
    let lo = pad.saturating_sub(tap).div_ceil(stride).min(count);
    let hi = match (len + pad).checked_sub(tap + 1) {
        Some(last) => (last / stride + 1).min(count),
        None => 0,
    };
    lo..hi.max(lo)
}

/// The (channel, ky, kx) of column row `row`, and the outputs along x that read the input.
fn tap(s: &Conv2dShape, row: usize) -> (usize, usize, usize, Range<usize>) {
    let (ci, ky, kx) = (row / (s.kh * s.kw), row / s.kw % s.kh, row % s.kw);
    (ci, ky, kx, valid(s.wout(), s.sw, kx, s.pw, s.w))
}

/// The input row output row `oy` reads at tap `ky`, if inside the image.
fn input_row(s: &Conv2dShape, oy: usize, ky: usize) -> Option<usize> {
    (oy * s.sh + ky).checked_sub(s.ph).filter(|&iy| iy < s.h)
}

/// `cols` [N, K, Hout·Wout] from `x` [N, Cin, H, W]; what [`im2col_cpu`] writes.
///
/// [`im2col_cpu`]: crate::ops::conv::im2col_cpu
pub fn im2col(s: &Conv2dShape, x: &[f32], cols: &mut [f32]) {
    let (xlen, clen, wo) = (s.cin * s.h * s.w, s.k() * s.hw_out(), s.wout());
    for (img, out) in x
        .chunks_exact(xlen)
        .zip(cols.chunks_exact_mut(clen))
        .take(s.n)
    {
        for (row, dst) in out.chunks_exact_mut(s.hw_out()).enumerate() {
            let (ci, ky, kx, xs) = tap(s, row);
            for (oy, line) in dst.chunks_exact_mut(wo).enumerate() {
                let Some(iy) = input_row(s, oy, ky) else {
                    line.fill(0.0);
                    continue;
                };
                let src = &img[(ci * s.h + iy) * s.w..][..s.w];
                line[..xs.start].fill(0.0);
                line[xs.end..].fill(0.0);
                // An empty run (a kernel wider than the padded input) copies nothing; its
                // start would not be an input column.
                if s.sw == 1 && !xs.is_empty() {
                    let from = xs.start + kx - s.pw;
                    line[xs.clone()].copy_from_slice(&src[from..from + xs.len()]);
                } else {
                    for ox in xs.clone() {
                        line[ox] = src[ox * s.sw + kx - s.pw];
                    }
                }
            }
        }
    }
}

/// `dx` [N, Cin, H, W] from `dcols` [N, K, Hout·Wout], the adjoint of [`im2col`]; what
/// [`col2im_cpu`] writes (each pixel's terms added in (ky, kx) order, from zero).
///
/// [`col2im_cpu`]: crate::ops::conv::col2im_cpu
pub fn col2im(s: &Conv2dShape, dcols: &[f32], dx: &mut [f32]) {
    let (xlen, clen, wo) = (s.cin * s.h * s.w, s.k() * s.hw_out(), s.wout());
    for (img, src) in dx
        .chunks_exact_mut(xlen)
        .zip(dcols.chunks_exact(clen))
        .take(s.n)
    {
        img.fill(0.0);
        for (row, rows) in src.chunks_exact(s.hw_out()).enumerate() {
            let (ci, ky, kx, xs) = tap(s, row);
            for (oy, line) in rows.chunks_exact(wo).enumerate() {
                let Some(iy) = input_row(s, oy, ky) else {
                    continue;
                };
                let dst = &mut img[(ci * s.h + iy) * s.w..][..s.w];
                // An empty run (a kernel wider than the padded input) copies nothing; its
                // start would not be an input column.
                if s.sw == 1 && !xs.is_empty() {
                    let from = xs.start + kx - s.pw;
                    let run = dst[from..from + xs.len()].iter_mut();
                    run.zip(&line[xs.clone()]).for_each(|(d, v)| *d += v);
                } else {
                    for ox in xs.clone() {
                        dst[ox * s.sw + kx - s.pw] += line[ox];
                    }
                }
            }
        }
    }
}

/// `dx` [N, C, H, W] from `dy` and the forward's `argmax`: each output's gradient added to
/// the input it took, outputs in order; what [`max_pool_backward_cpu`] writes.
///
/// [`max_pool_backward_cpu`]: crate::ops::pool::max_pool_backward_cpu
pub fn max_pool_backward(s: &PoolShape, argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    let (hw, hwo) = (s.h * s.w, s.hout() * s.wout());
    let planes = dx.chunks_exact_mut(hw).zip(argmax.chunks_exact(hwo));
    for ((plane, at), g) in planes.zip(dy.chunks_exact(hwo)).take(s.planes()) {
        plane.fill(0.0);
        at.iter().zip(g).for_each(|(&a, g)| plane[a as usize] += g);
    }
}
