//! `C = alpha · op(A)·op(B) + beta · C`, batched, with transpose flags — the product every
//! linear, convolution (im2col) and attention pass, forward and backward, is built on.

use super::kernel::{check_sizes, dispatch as dispatch_kernel, grid_1d, prepare};
use crate::gpu::{Context, Dispatch, Result, Shader, Slice};

const SHADER: Shader = Shader {
    name: "matmul",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/matmul.wgsl")),
};
const TILE: usize = 64;

/// Sizes and layout of one (batched) product. `op(A)` is `m×k`, `op(B)` is `k×n`, `C` is
/// `m×n`; with `trans_a` A is stored `k×m`, with `trans_b` B is stored `n×k`. Batch items are
/// contiguous in all three buffers, except that a broadcast operand (`broadcast_a`/`_b`) is one
/// matrix shared by every batch item (e.g. a weight matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub broadcast_a: bool,
    pub broadcast_b: bool,
}

impl MatmulShape {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulShape {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            broadcast_a: false,
            broadcast_b: false,
        }
    }
    pub fn transposed(self, trans_a: bool, trans_b: bool) -> Self {
        MatmulShape {
            trans_a,
            trans_b,
            ..self
        }
    }
    pub fn batched(self, batch: usize) -> Self {
        MatmulShape { batch, ..self }
    }
    /// Shares A and/or B across the batch instead of one matrix per batch item.
    pub fn broadcast(self, broadcast_a: bool, broadcast_b: bool) -> Self {
        MatmulShape {
            broadcast_a,
            broadcast_b,
            ..self
        }
    }
    fn stride_a(&self) -> usize {
        if self.broadcast_a {
            0
        } else {
            self.m * self.k
        }
    }
    fn stride_b(&self) -> usize {
        if self.broadcast_b {
            0
        } else {
            self.k * self.n
        }
    }
    pub fn len_a(&self) -> usize {
        if self.broadcast_a {
            self.m * self.k
        } else {
            self.batch * self.m * self.k
        }
    }
    pub fn len_b(&self) -> usize {
        if self.broadcast_b {
            self.k * self.n
        } else {
            self.batch * self.k * self.n
        }
    }
    pub fn len_c(&self) -> usize {
        self.batch * self.m * self.n
    }
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.n * self.k) as f64
    }
}

/// `C = alpha·op(A)·op(B) + beta·C` for one `m×n` matrix with a real GEMM: on x86_64 with
/// AVX2 and FMA `ops::gemm_x86` (blocked, single-threaded, its packing buffers kept per
/// thread) unless the product is large and threads are allowed, else `matrixmultiply`
/// (blocked, SIMD, threaded natively, simd128 in wasm). Both sum every element in the same
/// order, so the choice never changes a bit (`tests/cpu_kernels.rs`). A is stored `m×k`
/// (`k×m` with `trans_a`), B `k×n` (`n×k` with `trans_b`), C `m×n`, all row-major. With
/// `beta = 0`, C is written without being read.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::gemm_x86::available() && !threaded(m * n * k) {
        super::gemm_x86::gemm(m, n, k, alpha, a, trans_a, b, trans_b, beta, c);
        return;
    }
    let (rsa, csa) = if trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if trans_b { (1, k) } else { (n, 1) };
    // SAFETY: the asserts above keep every index matrixmultiply forms (row i < m, column
    // j < n, depth p < k, with these strides) inside the three slices; C does not alias A
    // or B (it is the only &mut).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Multiply-adds from which a native product goes to `matrixmultiply`'s threads when more
/// than one is allowed: below it, threads cost more than they save.
#[cfg(target_arch = "x86_64")]
const THREADED_FROM: usize = 1 << 24;

/// Whether a product of `macs` multiply-adds runs threaded: natively, when it is large and
/// `MATMUL_NUM_THREADS` (read once, as `matrixmultiply` reads it; `compare --jobs` sets it
/// to 1) or else the machine allows more than one thread.
#[cfg(target_arch = "x86_64")]
fn threaded(macs: usize) -> bool {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS.get_or_init(|| {
        std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    macs >= THREADED_FROM && threads > 1
}

/// CPU twin of the batched product, one [`gemm`] per batch item. The summation order
/// differs from the GPU's (k ascending per thread); [`compare`] bounds the difference by
/// the rounding error of a k-term dot product.
pub fn matmul_cpu(s: &MatmulShape, a: &[f32], b: &[f32], alpha: f32, beta: f32, c: &mut [f32]) {
    assert!(a.len() >= s.len_a() && b.len() >= s.len_b() && c.len() >= s.len_c());
    let (m, n, k) = (s.m, s.n, s.k);
    for bi in 0..s.batch {
        let a = &a[bi * s.stride_a()..][..m * k];
        let b = &b[bi * s.stride_b()..][..k * n];
        let c = &mut c[bi * m * n..(bi + 1) * m * n];
        gemm(m, n, k, alpha, a, s.trans_a, b, s.trans_b, beta, c);
    }
}

/// `(max |gpu − cpu|, largest allowed error, every element within bounds)` for a product,
/// each element checked against the bound `2·k·ε·Σ_k |a_ik·b_kj| + 1e-30`.
pub fn compare(
    shape: &MatmulShape,
    a: &[f32],
    b: &[f32],
    gpu: &[f32],
    cpu: &[f32],
) -> (f32, f32, bool) {
    let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
    let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
    let mut mag = vec![0.0; shape.len_c()];
    matmul_cpu(shape, &abs_a, &abs_b, 1.0, 0.0, &mut mag);
    let scale = 2.0 * shape.k.max(1) as f32 * f32::EPSILON;
    let (mut worst, mut allowed, mut ok) = (0.0f32, 0.0f32, true);
    for ((g, c), m) in gpu.iter().zip(cpu).zip(&mag) {
        let err = (g - c).abs();
        let tol = scale * m + 1e-30;
        ok &= err <= tol;
        worst = worst.max(err);
        allowed = allowed.max(tol);
    }
    (worst, allowed, ok && gpu.len() == cpu.len())
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    alpha: f32,
    beta: f32,
    splits: u32,
    k_chunk: u32,
    batch: u32,
}

/// A prepared product on the GPU: encode `dispatches` (one, or two for a split-K product)
/// whenever it should run.
pub struct Matmul {
    pub shape: MatmulShape,
    pub dispatches: Vec<Dispatch>,
    /// The K range of each split and the number of splits (1: not split).
    pub split: (usize, usize),
    _buffers: Vec<wgpu::Buffer>,
}

/// Output tiles below which a long product is split along K, so that enough workgroups run
/// at once on a large GPU (a weight gradient summed over 8 000 rows would otherwise walk K
/// in one or two workgroups).
const SPLIT_BELOW_TILES: usize = 128;
/// The shortest K range a split gets (16 slices of the tile's K step).
const MIN_SPLIT_K: usize = 256;

/// `(k_chunk, splits)` for a product with `tiles` output tiles (batch included) and inner
/// size `k`: one split unless the tiles are few and K is long; `k_chunk` is a multiple of 16.
pub fn split_k(tiles: usize, k: usize) -> (usize, usize) {
    if tiles >= SPLIT_BELOW_TILES || k < 2 * MIN_SPLIT_K {
        return (k.max(1), 1);
    }
    let wanted = SPLIT_BELOW_TILES
        .div_ceil(tiles)
        .min(k / MIN_SPLIT_K)
        .max(1);
    let chunk = k.div_ceil(wanted).div_ceil(16) * 16;
    (chunk, k.div_ceil(chunk))
}

impl Matmul {
    /// `a`, `b`, `c`: whole buffers or slices (e.g. a weight inside the flat parameters).
    pub async fn new<'a>(
        ctx: &Context,
        shape: MatmulShape,
        alpha: f32,
        beta: f32,
        a: impl Into<Slice<'a>>,
        b: impl Into<Slice<'a>>,
        c: impl Into<Slice<'a>>,
    ) -> Result<Matmul> {
        let (a, b, c): (Slice, Slice, Slice) = (a.into(), b.into(), c.into());
        check_sizes(
            &format!("a matmul of shape {shape:?}"),
            &[
                ("A", a, shape.len_a()),
                ("B", b, shape.len_b()),
                ("C", c, shape.len_c()),
            ],
        )?;
        let what = format!("a {}×{}×{} matmul", shape.m, shape.n, shape.k);
        let (tx, ty) = (shape.n.div_ceil(TILE), shape.m.div_ceil(TILE));
        let (k_chunk, splits) = split_k(tx * ty * shape.batch, shape.k);
        let wx = ctx.check_workgroups(&what, tx as u64)?;
        let wy = ctx.check_workgroups(&what, ty as u64)?;
        let wz = ctx.check_workgroups(&what, (shape.batch * splits) as u64)?;
        let params = Params {
            m: shape.m as u32,
            n: shape.n as u32,
            k: shape.k as u32,
            flags: shape.trans_a as u32 | (shape.trans_b as u32) << 1,
            stride_a: shape.stride_a() as u32,
            stride_b: shape.stride_b() as u32,
            stride_c: (shape.m * shape.n) as u32,
            alpha,
            beta,
            splits: splits as u32,
            k_chunk: k_chunk as u32,
            batch: shape.batch as u32,
        };
        let workgroups = [wx, wy, wz];
        if splits == 1 {
            let buffers = [(1, a), (2, b), (3, c)];
            let (dispatch, params) =
                prepare(ctx, &SHADER, "matmul", &params, workgroups, &buffers).await?;
            return Ok(Matmul {
                shape,
                dispatches: vec![dispatch],
                split: (k_chunk, 1),
                _buffers: vec![params],
            });
        }
        let partials = ctx.zeros("matmul partials", splits * shape.len_c())?;
        let buffers = [(1, a), (2, b), (3, Slice::from(&partials))];
        let (dispatch, params) =
            prepare(ctx, &SHADER, "matmul", &params, workgroups, &buffers).await?;
        let reduce = [
            (0, Slice::from(&params)),
            (3, c),
            (4, Slice::from(&partials)),
        ];
        let reduce = dispatch_kernel(
            ctx,
            &SHADER,
            "matmul_reduce",
            [grid_1d(ctx, shape.len_c()), 1, 1],
            &reduce,
        )
        .await?;
        Ok(Matmul {
            shape,
            dispatches: vec![dispatch, reduce],
            split: (k_chunk, splits),
            _buffers: vec![params, partials],
        })
    }
}
