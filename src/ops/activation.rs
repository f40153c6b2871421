//! Activations over flat f32 arrays, forward and backward: ReLU and GELU.
//!
//! GELU is the tanh approximation, PyTorch's `nn.GELU(approximate='tanh')`:
//! `gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. The tanh argument is clamped
//! to ±15 before tanh, on the GPU and in the twin alike: some drivers compute tanh from
//! exp(±2u) and return NaN once |u| passes ~44, and tanh(15) already rounds to exactly 1 in
//! f32, so the clamp changes no value. The backward takes the forward input `x` and the
//! upstream gradient `dy` and writes `dx`; ReLU's gradient at exactly 0 is 0 (as PyTorch).

use super::kernel::{checked_bindings, grid_1d, Kernel};
use crate::gpu::{Context, Result, Shader};

const SHADER: Shader = Shader {
    name: "activation",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/activation.wgsl")),
};

/// √(2/π), in f32.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const GELU_A: f32 = 0.044715;
/// |tanh argument| limit (see the module comment).
const TANH_CLAMP: f32 = 15.0;

/// Which activation a launcher runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Relu,
    Gelu,
}

/// CPU twin of the ReLU forward: `y = max(x, 0)`.
pub fn relu_cpu(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.max(0.0);
    }
}

/// CPU twin of the ReLU backward: `dx = dy` where `x > 0`, else 0.
pub fn relu_backward_cpu(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        *o = if v > 0.0 { g } else { 0.0 };
    }
}

fn gelu_tanh(v: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (v + GELU_A * v * v * v);
    u.clamp(-TANH_CLAMP, TANH_CLAMP).tanh()
}

/// CPU twin of the GELU (tanh approximation) forward: `y = 0.5·x·(1 + tanh(u))`.
pub fn gelu_cpu(x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = 0.5 * v * (1.0 + gelu_tanh(v));
    }
}

/// CPU twin of the GELU backward:
/// `dx = dy·(0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²))`, `t = tanh(u)`.
pub fn gelu_backward_cpu(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let t = gelu_tanh(v);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_A * v * v);
        let sech2 = 1.0 - t * t;
        let tail = if sech2 == 0.0 {
            0.0
        } else {
            0.5 * v * sech2 * du
        };
        *o = g * (0.5 * (1.0 + t) + tail);
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// Marker of the activation kernels.
pub enum ActivationOps {}

/// A prepared activation pass (forward or backward) over `n` elements: encode `dispatch`.
pub type Activation = Kernel<ActivationOps>;

impl Activation {
    async fn new(
        ctx: &Context,
        entry: &'static str,
        n: usize,
        operands: &[(u32, &str, &wgpu::Buffer, usize)],
    ) -> Result<Self> {
        let params = Params {
            n: n as u32,
            _pad: [0; 3],
        };
        let what = format!("{entry} over {n} elements");
        let workgroups = [grid_1d(ctx, n), 1, 1];
        let buffers = checked_bindings(&what, operands)?;
        Self::prepare(ctx, &SHADER, entry, &params, workgroups, &buffers).await
    }

    /// `y = act(x)` over the first `n` elements (`y` must not be `x`).
    pub async fn forward(
        ctx: &Context,
        act: Act,
        n: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<Self> {
        let entry = match act {
            Act::Relu => "relu_forward",
            Act::Gelu => "gelu_forward",
        };
        Self::new(ctx, entry, n, &[(1, "x", x, n), (3, "y", y, n)]).await
    }

    /// `dx = act'(x)·dy` over the first `n` elements, from the forward input `x` (`dx` must
    /// be neither `x` nor `dy`).
    pub async fn backward(
        ctx: &Context,
        act: Act,
        n: usize,
        x: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<Self> {
        let entry = match act {
            Act::Relu => "relu_backward",
            Act::Gelu => "gelu_backward",
        };
        Self::new(
            ctx,
            entry,
            n,
            &[(1, "x", x, n), (2, "dy", dy, n), (3, "dx", dx, n)],
        )
        .await
    }
}
