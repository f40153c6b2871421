//! Pooling over NCHW activations, forward and backward: max pooling (kernel kh×kw, stride
//! sh×sw, no padding), average pooling (same), and global average pooling
//! ([N, C, H, W] → [N, C], which is average pooling with the kernel the size of the image:
//! see [`PoolShape::global`]).
//!
//! `Hout = (H − kh)/sh + 1`, `Wout = (W − kw)/sw + 1` (floor). The max-pool forward also
//! writes the argmax of each window (`u32`, the index `iy·W + ix` within its plane; the first
//! maximum in row-major window order wins ties), which its backward reads. Backwards are
//! gathers — each input pixel sums over the windows that contain it — so overlapping
//! windows need no atomics. Gradients are written, not accumulated.

use super::kernel::{checked_bindings, grid_1d, prepare};
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

const SHADER: Shader = Shader {
    name: "pool",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/pool.wgsl")),
};

/// Sizes of a pooling over `n·c` planes of `h×w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
}

impl PoolShape {
    /// A `k×k` window moved by `s` in both directions.
    pub fn new(n: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> Self {
        PoolShape {
            n,
            c,
            h,
            w,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
        }
    }
    /// Global pooling: one window covering the whole image, output [N, C] (= [N, C, 1, 1]).
    pub fn global(n: usize, c: usize, h: usize, w: usize) -> Self {
        PoolShape {
            n,
            c,
            h,
            w,
            kh: h,
            kw: w,
            sh: 1,
            sw: 1,
        }
    }
    pub fn is_valid(&self) -> bool {
        [
            self.n, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw,
        ]
        .iter()
        .all(|&v| v > 0)
            && self.h >= self.kh
            && self.w >= self.kw
    }
    pub fn hout(&self) -> usize {
        (self.h - self.kh) / self.sh + 1
    }
    pub fn wout(&self) -> usize {
        (self.w - self.kw) / self.sw + 1
    }
    pub fn planes(&self) -> usize {
        self.n * self.c
    }
    pub fn len_x(&self) -> usize {
        self.planes() * self.h * self.w
    }
    pub fn len_y(&self) -> usize {
        self.planes() * self.hout() * self.wout()
    }
}

/// Windows `o` along one dimension (stride `s`, size `k`, `count` of them) containing `i`.
fn windows(i: usize, k: usize, s: usize, count: usize) -> std::ops::Range<usize> {
    let first = (i + 1).saturating_sub(k).div_ceil(s);
    let last = (i / s).min(count - 1);
    first..(last + 1).max(first)
}

/// CPU twin of `max_pool`: `y` and `argmax` [N, C, Hout, Wout] from `x` [N, C, H, W].
pub fn max_pool_cpu(s: &PoolShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    assert!(s.is_valid(), "invalid pooling {s:?}");
    let (hw, hwo) = (s.h * s.w, s.hout() * s.wout());
    for plane in 0..s.planes() {
        for oy in 0..s.hout() {
            for ox in 0..s.wout() {
                let (y0, x0) = (oy * s.sh, ox * s.sw);
                let mut best_at = y0 * s.w + x0;
                let mut best = x[plane * hw + best_at];
                for ky in 0..s.kh {
                    for kx in 0..s.kw {
                        let at = (y0 + ky) * s.w + x0 + kx;
                        if x[plane * hw + at] > best {
                            best = x[plane * hw + at];
                            best_at = at;
                        }
                    }
                }
                y[plane * hwo + oy * s.wout() + ox] = best;
                argmax[plane * hwo + oy * s.wout() + ox] = best_at as u32;
            }
        }
    }
}

/// CPU twin of `max_pool_backward`: `dx` [N, C, H, W] from `dy` and the forward's `argmax`.
pub fn max_pool_backward_cpu(s: &PoolShape, argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    assert!(s.is_valid(), "invalid pooling {s:?}");
    let (hw, hwo) = (s.h * s.w, s.hout() * s.wout());
    for plane in 0..s.planes() {
        for iy in 0..s.h {
            for ix in 0..s.w {
                let at = iy * s.w + ix;
                let mut acc = 0.0f32;
                for oy in windows(iy, s.kh, s.sh, s.hout()) {
                    for ox in windows(ix, s.kw, s.sw, s.wout()) {
                        let o = plane * hwo + oy * s.wout() + ox;
                        if argmax[o] as usize == at {
                            acc += dy[o];
                        }
                    }
                }
                dx[plane * hw + at] = acc;
            }
        }
    }
}

/// CPU twin of `avg_pool`: `y[o] = (Σ window) / (kh·kw)`, row-major window order.
pub fn avg_pool_cpu(s: &PoolShape, x: &[f32], y: &mut [f32]) {
    assert!(s.is_valid(), "invalid pooling {s:?}");
    let (hw, hwo) = (s.h * s.w, s.hout() * s.wout());
    let area = (s.kh * s.kw) as f32;
    for plane in 0..s.planes() {
        for oy in 0..s.hout() {
            for ox in 0..s.wout() {
                let (y0, x0) = (oy * s.sh, ox * s.sw);
                let mut acc = 0.0f32;
                for ky in 0..s.kh {
                    for kx in 0..s.kw {
                        acc += x[plane * hw + (y0 + ky) * s.w + x0 + kx];
                    }
                }
                y[plane * hwo + oy * s.wout() + ox] = acc / area;
            }
        }
    }
}

/// CPU twin of `avg_pool_backward`: `dx[i] = (Σ dy[o] over windows o ∋ i) / (kh·kw)`.
pub fn avg_pool_backward_cpu(s: &PoolShape, dy: &[f32], dx: &mut [f32]) {
    assert!(s.is_valid(), "invalid pooling {s:?}");
    let (hw, hwo) = (s.h * s.w, s.hout() * s.wout());
    let area = (s.kh * s.kw) as f32;
    for plane in 0..s.planes() {
        for iy in 0..s.h {
            for ix in 0..s.w {
                let mut acc = 0.0f32;
                for oy in windows(iy, s.kh, s.sh, s.hout()) {
                    for ox in windows(ix, s.kw, s.sw, s.wout()) {
                        acc += dy[plane * hwo + oy * s.wout() + ox];
                    }
                }
                dx[plane * hw + iy * s.w + ix] = acc / area;
            }
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    hout: u32,
    wout: u32,
    total: u32,
    _pad: [u32; 2],
}

/// A prepared pooling kernel (forward or backward): encode `dispatch`.
pub struct Pool {
    pub shape: PoolShape,
    pub dispatch: Dispatch,
    _params: wgpu::Buffer,
}

impl Pool {
    async fn new(
        ctx: &Context,
        entry: &'static str,
        shape: PoolShape,
        total: usize,
        operands: &[(u32, &str, &wgpu::Buffer, usize)],
    ) -> Result<Pool> {
        let what = format!("{entry} of shape {shape:?}");
        if !shape.is_valid() {
            return Err(GpuError::Validation {
                what,
                message: "sizes must be positive and the window no larger than the image".into(),
            });
        }
        let params = Params {
            planes: shape.planes() as u32,
            h: shape.h as u32,
            w: shape.w as u32,
            kh: shape.kh as u32,
            kw: shape.kw as u32,
            sh: shape.sh as u32,
            sw: shape.sw as u32,
            hout: shape.hout() as u32,
            wout: shape.wout() as u32,
            total: total as u32,
            _pad: [0; 2],
        };
        let workgroups = [grid_1d(ctx, total), 1, 1];
        let buffers = checked_bindings(&what, operands)?;
        let (dispatch, params) =
            prepare(ctx, &SHADER, entry, &params, workgroups, &buffers).await?;
        Ok(Pool {
            shape,
            dispatch,
            _params: params,
        })
    }

    /// Max pooling `x` [N, C, H, W] → `y` [N, C, Hout, Wout], writing `argmax` (u32, same
    /// length as `y`) for the backward.
    pub async fn max(
        ctx: &Context,
        shape: PoolShape,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        argmax: &wgpu::Buffer,
    ) -> Result<Pool> {
        let (lx, ly) = (shape.len_x(), shape.len_y());
        let ops = [(1, "x", x, lx), (2, "y", y, ly), (3, "argmax", argmax, ly)];
        Self::new(ctx, "max_pool", shape, ly, &ops).await
    }

    /// Max-pooling backward: `dx` [N, C, H, W] from `dy` [N, C, Hout, Wout] and the
    /// forward's `argmax`.
    pub async fn max_backward(
        ctx: &Context,
        shape: PoolShape,
        argmax: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<Pool> {
        let (lx, ly) = (shape.len_x(), shape.len_y());
        let ops = [
            (1, "dy", dy, ly),
            (2, "dx", dx, lx),
            (3, "argmax", argmax, ly),
        ];
        Self::new(ctx, "max_pool_backward", shape, lx, &ops).await
    }

    /// Average pooling `x` [N, C, H, W] → `y` [N, C, Hout, Wout] (global average pooling
    /// with [`PoolShape::global`]).
    pub async fn avg(
        ctx: &Context,
        shape: PoolShape,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<Pool> {
        let (lx, ly) = (shape.len_x(), shape.len_y());
        let ops = [(1, "x", x, lx), (2, "y", y, ly)];
        Self::new(ctx, "avg_pool", shape, ly, &ops).await
    }

    /// Average-pooling backward: `dx` [N, C, H, W] from `dy` [N, C, Hout, Wout].
    pub async fn avg_backward(
        ctx: &Context,
        shape: PoolShape,
        dy: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<Pool> {
        let (lx, ly) = (shape.len_x(), shape.len_y());
        let ops = [(1, "dy", dy, ly), (2, "dx", dx, lx)];
        Self::new(ctx, "avg_pool_backward", shape, lx, &ops).await
    }
}
