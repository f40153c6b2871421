//! Elementwise kernels over flat f32 arrays: `add`, `scale`, `axpy`.

use super::kernel::{checked_bindings, grid_1d, Kernel};
use crate::gpu::{Context, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "elementwise",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/elementwise.wgsl")),
};

/// CPU twin of `add`: `out = x + y`.
pub fn add_cpu(x: &[f32], y: &[f32], out: &mut [f32]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
        *o = a + b;
    }
}

/// CPU twin of `scale`: `out = alpha · x`.
pub fn scale_cpu(alpha: f32, x: &[f32], out: &mut [f32]) {
    for (o, a) in out.iter_mut().zip(x) {
        *o = alpha * a;
    }
}

/// CPU twin of `axpy`: `y = alpha · x + y`.
pub fn axpy_cpu(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, a) in y.iter_mut().zip(x) {
        *o += alpha * a;
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    alpha: f32,
    _pad: [u32; 2],
}

/// Marker of the elementwise kernels.
pub enum ElementwiseOps {}

/// A prepared elementwise kernel: encode `dispatch`.
pub type Elementwise = Kernel<ElementwiseOps>;

impl Elementwise {
    async fn new(
        ctx: &Context,
        entry: &'static str,
        n: usize,
        alpha: f32,
        operands: &[(u32, &str, Slice<'_>, usize)],
    ) -> Result<Self> {
        let params = Params {
            n: n as u32,
            alpha,
            _pad: [0; 2],
        };
        let what = format!("{entry} of {n} elements");
        let workgroups = [grid_1d(ctx, n), 1, 1];
        let buffers = checked_bindings(&what, operands)?;
        Self::prepare(ctx, &SHADER, entry, &params, workgroups, &buffers).await
    }

    /// `out = x + y` over the first `n` elements.
    pub async fn add<'a>(
        ctx: &Context,
        n: usize,
        x: impl Into<Slice<'a>>,
        y: impl Into<Slice<'a>>,
        out: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (x, y, out) = (x.into(), y.into(), out.into());
        Self::new(
            ctx,
            "add",
            n,
            0.0,
            &[(1, "x", x, n), (2, "y", y, n), (3, "out", out, n)],
        )
        .await
    }

    /// `out = alpha · x` over the first `n` elements.
    pub async fn scale<'a>(
        ctx: &Context,
        n: usize,
        alpha: f32,
        x: impl Into<Slice<'a>>,
        out: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (x, out) = (x.into(), out.into());
        Self::new(
            ctx,
            "scale",
            n,
            alpha,
            &[(1, "x", x, n), (3, "out", out, n)],
        )
        .await
    }

    /// `y = alpha · x + y` over the first `n` elements.
    pub async fn axpy<'a>(
        ctx: &Context,
        n: usize,
        alpha: f32,
        x: impl Into<Slice<'a>>,
        y: impl Into<Slice<'a>>,
    ) -> Result<Self> {
        let (x, y) = (x.into(), y.into());
        Self::new(ctx, "axpy", n, alpha, &[(1, "x", x, n), (2, "y", y, n)]).await
    }
}
