//! 2-D convolution, NCHW, any kernel size, stride and (per-dimension, symmetric) zero
//! padding, optional bias — forward and backward through im2col and [`Matmul`], or, for
//! layers with few channels, directly ([`super::conv_direct`]; [`ConvMethod::for_shape`]).
//!
//! Layouts (PyTorch): `x` [N, Cin, H, W], `W` [Cout, Cin, kh, kw] (= [Cout, K] with
//! `K = Cin·kh·kw`), `b` [Cout], `y` [N, Cout, Hout, Wout] with
//! `Hout = (H + 2·ph − kh)/sh + 1` (floor) and likewise `Wout`.
//!
//! Forward: `im2col` writes `cols` [N, K, Hout·Wout]; one batched Matmul with the weight
//! broadcast over the batch gives `y[n] = W·cols[n]`, which is NCHW already; `bias_add`.
//!
//! Backward (gradients written, not accumulated):
//! - `dW = Σ_n dY[n]·cols[n]ᵀ`: one batched Matmul writes the per-item products into a
//!   scratch buffer [N, Cout, K], then `sum_batch` adds them over n (ascending). With N = 1
//!   the Matmul writes `dW` directly. The scratch costs `N·Cout·K` floats; a single
//!   non-batched product would need dY and cols re-laid out as [Cout, N·HWout] and
//!   [K, N·HWout] instead, which costs more memory.
//! - `dcols[n] = Wᵀ·dY[n]` (batched Matmul, `trans_a`, W broadcast), then `col2im`, a
//!   gather in which each input pixel sums the column entries it fed: `dX`. No atomics.
//! - `db[c] = Σ_{n, p} dY[n, c, p]` (`channel_sum` from [`super::linear`]).

use super::kernel::{check_sizes, grid_1d, prepare, Encode};
use super::linear::{BiasAdd, ChannelSum};
use super::matmul::{Matmul, MatmulShape};
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "conv",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/conv.wgsl")),
};

/// Sizes of a convolution over a batch of `n` images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Conv2dShape {
    /// A `k×k` kernel, stride 1, no padding.
    pub fn new(n: usize, cin: usize, h: usize, w: usize, cout: usize, k: usize) -> Self {
        Conv2dShape {
            n,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        }
    }
    pub fn kernel(self, kh: usize, kw: usize) -> Self {
        Conv2dShape { kh, kw, ..self }
    }
    pub fn stride(self, sh: usize, sw: usize) -> Self {
        Conv2dShape { sh, sw, ..self }
    }
    pub fn padding(self, ph: usize, pw: usize) -> Self {
        Conv2dShape { ph, pw, ..self }
    }
    /// Every size positive and the (padded) image at least as large as the kernel.
    pub fn is_valid(&self) -> bool {
        [
            self.n, self.cin, self.h, self.w, self.cout, self.kh, self.kw, self.sh, self.sw,
        ]
        .iter()
        .all(|&v| v > 0)
            && self.h + 2 * self.ph >= self.kh
            && self.w + 2 * self.pw >= self.kw
    }
    pub fn hout(&self) -> usize {
        (self.h + 2 * self.ph - self.kh) / self.sh + 1
    }
    pub fn wout(&self) -> usize {
        (self.w + 2 * self.pw - self.kw) / self.sw + 1
    }
    /// Output pixels per channel, `Hout·Wout`.
    pub fn hw_out(&self) -> usize {
        self.hout() * self.wout()
    }
    /// Length of a column, `K = Cin·kh·kw`.
    pub fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }
    pub fn len_x(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }
    pub fn len_w(&self) -> usize {
        self.cout * self.k()
    }
    pub fn len_y(&self) -> usize {
        self.n * self.cout * self.hw_out()
    }
    pub fn len_cols(&self) -> usize {
        self.n * self.k() * self.hw_out()
    }
    /// `y[n] = W·cols[n]`: [Cout, K]·[K, HWout], W shared by the batch.
    pub fn forward_product(&self) -> MatmulShape {
        MatmulShape::new(self.cout, self.hw_out(), self.k())
            .batched(self.n)
            .broadcast(true, false)
    }
    /// `dcols[n] = Wᵀ·dY[n]`: W stored [Cout, K] read transposed.
    pub fn cols_grad_product(&self) -> MatmulShape {
        MatmulShape::new(self.k(), self.hw_out(), self.cout)
            .transposed(true, false)
            .batched(self.n)
            .broadcast(true, false)
    }
    /// `dW[n] = dY[n]·cols[n]ᵀ`: cols stored [K, HWout] read transposed.
    pub fn weight_grad_product(&self) -> MatmulShape {
        MatmulShape::new(self.cout, self.k(), self.hw_out())
            .transposed(false, true)
            .batched(self.n)
    }
}

/// Output position `o` reads input `o·s + kk − p`; `None` in the padding.
fn input_index(o: usize, s: usize, kk: usize, p: usize, len: usize) -> Option<usize> {
    (o * s + kk).checked_sub(p).filter(|&i| i < len)
}

/// CPU twin of `im2col`: `cols` [N, K, Hout·Wout] from `x` [N, Cin, H, W].
pub fn im2col_cpu(s: &Conv2dShape, x: &[f32], cols: &mut [f32]) {
    let (hwo, k) = (s.hw_out(), s.k());
    for b in 0..s.n {
        for ci in 0..s.cin {
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let row = (ci * s.kh + ky) * s.kw + kx;
                    for oy in 0..s.hout() {
                        for ox in 0..s.wout() {
                            let v = match (
                                input_index(oy, s.sh, ky, s.ph, s.h),
                                input_index(ox, s.sw, kx, s.pw, s.w),
                            ) {
                                (Some(iy), Some(ix)) => x[((b * s.cin + ci) * s.h + iy) * s.w + ix],
                                _ => 0.0,
                            };
                            cols[(b * k + row) * hwo + oy * s.wout() + ox] = v;
                        }
                    }
                }
            }
        }
    }
}

/// CPU twin of `col2im`: `dx` [N, Cin, H, W] gathers from `dcols` [N, K, Hout·Wout] the
/// entries each input pixel fed, (ky, kx) ascending. The adjoint of [`im2col_cpu`].
pub fn col2im_cpu(s: &Conv2dShape, dcols: &[f32], dx: &mut [f32]) {
    let (hwo, k) = (s.hw_out(), s.k());
    for b in 0..s.n {
        for ci in 0..s.cin {
            for iy in 0..s.h {
                for ix in 0..s.w {
                    let mut acc = 0.0f32;
                    for ky in 0..s.kh {
                        let ty = iy + s.ph;
                        if ty < ky
                            || !(ty - ky).is_multiple_of(s.sh)
                            || (ty - ky) / s.sh >= s.hout()
                        {
                            continue;
                        }
                        let oy = (ty - ky) / s.sh;
                        for kx in 0..s.kw {
                            let tx = ix + s.pw;
                            if tx < kx
                                || !(tx - kx).is_multiple_of(s.sw)
                                || (tx - kx) / s.sw >= s.wout()
                            {
                                continue;
                            }
                            let ox = (tx - kx) / s.sw;
                            let row = (ci * s.kh + ky) * s.kw + kx;
                            acc += dcols[(b * k + row) * hwo + oy * s.wout() + ox];
                        }
                    }
                    dx[((b * s.cin + ci) * s.h + iy) * s.w + ix] = acc;
                }
            }
        }
    }
}

/// CPU twin of the forward, by direct loops: `y[n, co, oy, ox] = Σ_{ci, ky, kx}
/// W[co, ci, ky, kx]·x[n, ci, oy·sh + ky − ph, ox·sw + kx − pw] (+ b[co])`, summed in the
/// order of the GPU's K index (ci, ky, kx ascending; padding skipped), the bias added last.
pub fn conv2d_cpu(s: &Conv2dShape, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(s.is_valid(), "invalid convolution {s:?}");
    assert!(x.len() >= s.len_x() && w.len() >= s.len_w() && y.len() >= s.len_y());
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.hout() {
                for ox in 0..s.wout() {
                    let mut acc = 0.0f32;
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            let Some(iy) = input_index(oy, s.sh, ky, s.ph, s.h) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ix) = input_index(ox, s.sw, kx, s.pw, s.w) else {
                                    continue;
                                };
                                acc += w[((co * s.cin + ci) * s.kh + ky) * s.kw + kx]
                                    * x[((n * s.cin + ci) * s.h + iy) * s.w + ix];
                            }
                        }
                    }
                    if let Some(b) = b {
                        acc += b[co];
                    }
                    y[((n * s.cout + co) * s.hout() + oy) * s.wout() + ox] = acc;
                }
            }
        }
    }
}

/// CPU twin of the backward for `L = Σ dY·y`, by direct loops (scatter form): `dx`
/// [N, Cin, H, W], `dw` [Cout, Cin, kh, kw], `db` [Cout], each optional and written.
pub fn conv2d_backward_cpu(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    assert!(s.is_valid(), "invalid convolution {s:?}");
    if let Some(dx) = dx.as_deref_mut() {
        dx[..s.len_x()].fill(0.0);
    }
    if let Some(dw) = dw.as_deref_mut() {
        dw[..s.len_w()].fill(0.0);
    }
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.hout() {
                for ox in 0..s.wout() {
                    let g = dy[((n * s.cout + co) * s.hout() + oy) * s.wout() + ox];
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            let Some(iy) = input_index(oy, s.sh, ky, s.ph, s.h) else {
                                continue;
                            };
                            for kx in 0..s.kw {
                                let Some(ix) = input_index(ox, s.sw, kx, s.pw, s.w) else {
                                    continue;
                                };
                                let wi = ((co * s.cin + ci) * s.kh + ky) * s.kw + kx;
                                let xi = ((n * s.cin + ci) * s.h + iy) * s.w + ix;
                                if let Some(dx) = dx.as_deref_mut() {
                                    dx[xi] += w[wi] * g;
                                }
                                if let Some(dw) = dw.as_deref_mut() {
                                    dw[wi] += x[xi] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(db) = db {
        super::linear::channel_sum_cpu(s.n, s.cout, s.hw_out(), dy, db);
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    hout: u32,
    wout: u32,
    total: u32,
    /// 1: the direct forward adds the bias.
    pub(super) bias: u32,
    _pad: u32,
}

pub(super) fn params(s: &Conv2dShape, total: usize) -> Params {
    Params {
        n: s.n as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        sh: s.sh as u32,
        sw: s.sw as u32,
        ph: s.ph as u32,
        pw: s.pw as u32,
        hout: s.hout() as u32,
        wout: s.wout() as u32,
        total: total as u32,
        bias: 0,
        _pad: 0,
    }
}

fn check_shape(s: &Conv2dShape, what: &str) -> Result<()> {
    if s.is_valid() {
        Ok(())
    } else {
        Err(GpuError::Validation {
            what: format!("{what} of shape {s:?}"),
            message: "sizes must be positive and the padded image at least as large as the \
                      kernel"
                .into(),
        })
    }
}

/// One `conv.wgsl` kernel over `total` outputs: `src` → `dst`.
pub(super) async fn helper<'a>(
    ctx: &Context,
    entry: &'static str,
    s: &Conv2dShape,
    total: usize,
    src: impl Into<Slice<'a>>,
    dst: impl Into<Slice<'a>>,
) -> Result<(Dispatch, wgpu::Buffer)> {
    let workgroups = [grid_1d(ctx, total), 1, 1];
    let buffers = [(1, src.into()), (2, dst.into())];
    prepare(ctx, &SHADER, entry, &params(s, total), workgroups, &buffers).await
}

/// How a convolution runs on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvMethod {
    /// im2col, then one batched [`Matmul`] (and col2im for dx): for many channels.
    Im2col,
    /// [`super::conv_direct`]: a thread per four pixels and eight channels (dW: per weight
    /// and eight channels), the layer's weights staged in workgroup memory.
    Direct,
}

/// Output channels up to which [`ConvMethod::Direct`] is chosen: up to 16, a 64×64 matmul
/// tile is at most a quarter used along Cout (LeNet-5: 6 and 16).
const DIRECT_MAX_COUT: usize = 16;

impl ConvMethod {
    /// Direct for few output channels when the staged weights fit, im2col otherwise.
    pub fn for_shape(s: &Conv2dShape) -> ConvMethod {
        if s.cout <= DIRECT_MAX_COUT && super::conv_direct::fits(s) {
            ConvMethod::Direct
        } else {
            ConvMethod::Im2col
        }
    }
}

/// A prepared forward `y = conv(x, W) (+ b)`: encode `dispatches` in order. With im2col it
/// owns `cols` [N, K, Hout·Wout], which the backward reads (keep this object alive until
/// then); the direct backward reads `x` instead.
pub struct Conv2d {
    pub shape: Conv2dShape,
    pub method: ConvMethod,
    pub dispatches: Vec<Dispatch>,
    pub cols: Option<wgpu::Buffer>,
    _matmul: Option<Matmul>,
    _bias: Option<BiasAdd>,
    _params: wgpu::Buffer,
}

impl Conv2d {
    /// `w`, `b`: whole buffers or slices of the flat parameters. The method is
    /// [`ConvMethod::for_shape`].
    pub async fn new<'a>(
        ctx: &Context,
        shape: Conv2dShape,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        b: Option<Slice<'a>>,
        y: impl Into<Slice<'a>>,
    ) -> Result<Conv2d> {
        let method = ConvMethod::for_shape(&shape);
        Conv2d::with_method(ctx, method, shape, x, w, b, y).await
    }

    /// [`Conv2d::new`] by a given method.
    pub async fn with_method<'a>(
        ctx: &Context,
        method: ConvMethod,
        shape: Conv2dShape,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        b: Option<Slice<'a>>,
        y: impl Into<Slice<'a>>,
    ) -> Result<Conv2d> {
        let (x, w, y): (Slice, Slice, Slice) = (x.into(), w.into(), y.into());
        check_shape(&shape, "a convolution")?;
        let what = format!("a convolution of shape {shape:?}");
        let mut operands = vec![
            ("x", x, shape.len_x()),
            ("W", w, shape.len_w()),
            ("y", y, shape.len_y()),
        ];
        if let Some(b) = b {
            operands.push(("b", b, shape.cout));
        }
        check_sizes(&what, &operands)?;
        if method == ConvMethod::Direct && !super::conv_direct::fits(&shape) {
            return Err(GpuError::Validation {
                what,
                message: format!(
                    "the direct convolution stages at most {} weight terms per workgroup \
                     (Cin·kh·kw and Cout·kh·kw); use im2col",
                    super::conv_direct::KMAX
                ),
            });
        }
        if method == ConvMethod::Direct {
            let (dispatch, params) = super::conv_direct::forward(ctx, &shape, x, w, b, y).await?;
            return Ok(Conv2d {
                shape,
                method,
                dispatches: vec![dispatch],
                cols: None,
                _matmul: None,
                _bias: None,
                _params: params,
            });
        }
        let cols = ctx.zeros("conv cols", shape.len_cols())?;
        let (im2col, params) = helper(ctx, "im2col", &shape, shape.len_cols(), x, &cols).await?;
        let matmul = Matmul::new(ctx, shape.forward_product(), 1.0, 0.0, w, &cols, y).await?;
        let mut dispatches = [vec![im2col], matmul.list()].concat();
        let dims = (shape.n, shape.cout, shape.hw_out());
        let bias = BiasAdd::append(ctx, dims, b, y, &mut dispatches).await?;
        Ok(Conv2d {
            shape,
            method,
            dispatches,
            cols: Some(cols),
            _matmul: Some(matmul),
            _bias: bias,
            _params: params,
        })
    }
}

/// A prepared backward of the forward `fwd`: from its input `x` (direct) or `cols` (im2col),
/// the weight `W` and the upstream gradient `dy` [N, Cout, Hout, Wout], writes whichever of
/// `dx` [N, Cin, H, W], `dw` [Cout, Cin, kh, kw] and `db` [Cout] are given. Encode
/// `dispatches` in order. Owns scratch buffers: the per-item weight gradients (N·Cout·K
/// floats, when `dw` is wanted and N > 1) and, with im2col, `dcols` (N·K·HWout floats, when
/// `dx` is wanted).
pub struct Conv2dBackward {
    pub shape: Conv2dShape,
    pub dispatches: Vec<Dispatch>,
    _matmuls: Vec<Matmul>,
    _bias: Option<ChannelSum>,
    _buffers: Vec<wgpu::Buffer>,
}

impl Conv2dBackward {
    #[allow(clippy::too_many_arguments)]
    pub async fn new<'a>(
        ctx: &Context,
        fwd: &Conv2d,
        x: impl Into<Slice<'a>>,
        w: impl Into<Slice<'a>>,
        dy: impl Into<Slice<'a>>,
        dx: Option<Slice<'a>>,
        dw: Option<Slice<'a>>,
        db: Option<Slice<'a>>,
    ) -> Result<Conv2dBackward> {
        let shape = fwd.shape;
        let (x, w, dy): (Slice, Slice, Slice) = (x.into(), w.into(), dy.into());
        check_shape(&shape, "a convolution backward")?;
        let what = format!("a convolution backward of shape {shape:?}");
        let mut operands = vec![
            ("x", x, shape.len_x()),
            ("W", w, shape.len_w()),
            ("dy", dy, shape.len_y()),
        ];
        for (name, buffer, len) in [("dx", dx, shape.len_x()), ("dw", dw, shape.len_w())] {
            if let Some(buffer) = buffer {
                operands.push((name, buffer, len));
            }
        }
        check_sizes(&what, &operands)?;
        let mut back = Conv2dBackward {
            shape,
            dispatches: Vec::new(),
            _matmuls: Vec::new(),
            _bias: None,
            _buffers: Vec::new(),
        };
        match &fwd.cols {
            None => back.direct(ctx, x, w, dy, dx, dw).await?,
            Some(cols) => back.im2col(ctx, cols.into(), w, dy, dx, dw).await?,
        }
        let dims = (shape.n, shape.cout, shape.hw_out());
        back._bias = ChannelSum::append(ctx, dims, dy, db, &mut back.dispatches).await?;
        Ok(back)
    }

    async fn direct<'a>(
        &mut self,
        ctx: &Context,
        x: Slice<'a>,
        w: Slice<'a>,
        dy: Slice<'a>,
        dx: Option<Slice<'a>>,
        dw: Option<Slice<'a>>,
    ) -> Result<()> {
        use super::conv_direct::{input_grad, weight_grad};
        if let Some(dw) = dw {
            let (dispatches, buffers) = weight_grad(ctx, &self.shape, x, dy, dw).await?;
            self.dispatches.extend(dispatches);
            self._buffers.extend(buffers);
        }
        if let Some(dx) = dx {
            let (dispatch, params) = input_grad(ctx, &self.shape, dy, w, dx).await?;
            self.dispatches.push(dispatch);
            self._buffers.push(params);
        }
        Ok(())
    }

    async fn im2col<'a>(
        &mut self,
        ctx: &Context,
        cols: Slice<'a>,
        w: Slice<'a>,
        dy: Slice<'a>,
        dx: Option<Slice<'a>>,
        dw: Option<Slice<'a>>,
    ) -> Result<()> {
        let shape = self.shape;
        if let Some(dw) = dw {
            if shape.n == 1 {
                let op =
                    Matmul::new(ctx, shape.weight_grad_product(), 1.0, 0.0, dy, cols, dw).await?;
                self.dispatches.extend(op.list());
                self._matmuls.push(op);
            } else {
                let parts = ctx.zeros("conv dW per item", shape.n * shape.len_w())?;
                let op = Matmul::new(ctx, shape.weight_grad_product(), 1.0, 0.0, dy, cols, &parts)
                    .await?;
                let (sum, params) =
                    helper(ctx, "sum_batch", &shape, shape.len_w(), &parts, dw).await?;
                self.dispatches.extend(op.list());
                self.dispatches.push(sum);
                self._matmuls.push(op);
                self._buffers.push(parts);
                self._buffers.push(params);
            }
        }
        if let Some(dx) = dx {
            let dcols = ctx.zeros("conv dcols", shape.len_cols())?;
            let op = Matmul::new(ctx, shape.cols_grad_product(), 1.0, 0.0, w, dy, &dcols).await?;
            let (col2im, params) = helper(ctx, "col2im", &shape, shape.len_x(), &dcols, dx).await?;
            self.dispatches.extend(op.list());
            self.dispatches.push(col2im);
            self._matmuls.push(op);
            self._buffers.push(dcols);
            self._buffers.push(params);
        }
        Ok(())
    }
}
