//! Statistics of every tensor in a flat buffer, in a constant number of dispatches whatever
//! the number of tensors: Σ w̃ (w̃ = √(w² + r), VAR's smoothed |w|), Σ w², Σ |w|, max |w|,
//! the global L2 norm (SAM's ‖g‖), and per-tensor histograms of w or |w| (pruning thresholds
//! and the weight charts). Layout of a tensor table: `(offset, len)` in elements.

use super::kernel::{check_sizes, dispatch, grid_1d, grid_2d, prepare};
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

const SHADER: Shader = Shader {
    name: "stats",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/stats.wgsl")),
};
/// Elements per chunk of the first pass (256 threads × 16).
pub const CHUNK: usize = 4096;
/// The chunks of ≤ [`CHUNK`] elements of the range `offset..offset + len`, as
/// `(start, end)`: the unit of work of the per-tensor kernels (stats, select, optimizer).
pub fn chunks_of(offset: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    (offset..offset + len)
        .step_by(CHUNK)
        .map(move |start| (start, (start + CHUNK).min(offset + len)))
}

/// Most histogram bins (the shader's workgroup histogram has this many).
pub const MAX_BINS: usize = 1024;

/// Per-tensor statistics, in the order the GPU writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub sum_smooth_abs: f32,
    pub sum_sq: f32,
    pub sum_abs: f32,
    pub max_abs: f32,
}

impl Stats {
    pub fn from_slice(v: &[f32]) -> Stats {
        Stats {
            sum_smooth_abs: v[0],
            sum_sq: v[1],
            sum_abs: v[2],
            max_abs: v[3],
        }
    }
}

/// CPU twin of the statistics pass (sums in f64, rounded once).
pub fn tensor_stats_cpu(w: &[f32], tensors: &[(usize, usize)], r: f32) -> Vec<Stats> {
    tensors
        .iter()
        .map(|&(offset, len)| {
            let t = &w[offset..offset + len];
            let (mut s0, mut s1, mut s2, mut m) = (0.0f64, 0.0f64, 0.0f64, 0.0f32);
            for &v in t {
                let v64 = v as f64;
                s0 += (v64 * v64 + r as f64).sqrt();
                s1 += v64 * v64;
                s2 += v64.abs();
                m = m.max(v.abs());
            }
            Stats {
                sum_smooth_abs: s0 as f32,
                sum_sq: s1 as f32,
                sum_abs: s2 as f32,
                max_abs: m,
            }
        })
        .collect()
}

/// CPU twin of the global norm: √(Σ over all tensors of Σ w²).
pub fn global_norm_cpu(w: &[f32], tensors: &[(usize, usize)]) -> f32 {
    let sq: f64 = tensors
        .iter()
        .flat_map(|&(o, l)| &w[o..o + l])
        .map(|&v| v as f64 * v as f64)
        .sum();
    sq.sqrt() as f32
}

/// The bin of `v` for a histogram on [−max, max] (`signed`) or of |v| on [0, max].
pub fn bin_of(v: f32, max_abs: f32, bins: usize, signed: bool) -> usize {
    let x = match (signed, max_abs > 0.0) {
        (true, true) => 0.5 + 0.5 * v / max_abs,
        (true, false) => 0.5,
        (false, true) => v.abs() / max_abs,
        (false, false) => 0.0,
    };
    ((x.max(0.0) * bins as f32) as usize).min(bins - 1)
}

/// CPU twin of the histograms: `bins` counts per tensor, tensor after tensor.
pub fn histogram_cpu(w: &[f32], tensors: &[(usize, usize)], bins: usize, signed: bool) -> Vec<u32> {
    let mut out = vec![0u32; tensors.len() * bins];
    for (t, &(offset, len)) in tensors.iter().enumerate() {
        let vals = &w[offset..offset + len];
        let max_abs = vals.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for &v in vals {
            out[t * bins + bin_of(v, max_abs, bins, signed)] += 1;
        }
    }
    out
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    r: f32,
    chunks: u32,
    tensors: u32,
    bins: u32,
    signed: u32,
    _pad: [u32; 3],
}

/// A prepared statistics pass over the tensors of one flat buffer. Encode `dispatches()`;
/// afterwards `stats` holds 4 floats per tensor ([`Stats`] order) and `norm` the global norm.
pub struct TensorStats {
    pub tensors: Vec<(usize, usize)>,
    pub stats: wgpu::Buffer,
    pub norm: wgpu::Buffer,
    chunks: wgpu::Buffer,
    table: wgpu::Buffer,
    n_chunks: usize,
    _params: wgpu::Buffer,
    passes: [Dispatch; 3],
    _partials: wgpu::Buffer,
}

impl TensorStats {
    pub async fn new(
        ctx: &Context,
        w: &wgpu::Buffer,
        tensors: &[(usize, usize)],
        r: f32,
    ) -> Result<TensorStats> {
        let end = tensors.iter().map(|&(o, l)| o + l).max().unwrap_or(0);
        check_sizes("tensor statistics", &[("w", w, end)])?;
        let mut chunks: Vec<[u32; 2]> = Vec::new();
        let mut table: Vec<[u32; 4]> = Vec::new();
        for &(offset, len) in tensors {
            let first = chunks.len();
            let mut start = offset;
            while start < offset + len {
                let stop = (start + CHUNK).min(offset + len);
                chunks.push([start as u32, stop as u32]);
                start = stop;
            }
            table.push([offset as u32, len as u32, first as u32, chunks.len() as u32]);
        }
        let n_chunks = chunks.len();
        let params = Params {
            r,
            chunks: n_chunks as u32,
            tensors: tensors.len() as u32,
            bins: 0,
            signed: 0,
            _pad: [0; 3],
        };
        let chunk_buf = ctx.storage("stats chunks", &chunks)?;
        let table_buf = ctx.storage("stats tensors", &table)?;
        let partials = ctx.zeros("stats partials", 4 * n_chunks)?;
        let stats = ctx.zeros("stats", 4 * tensors.len())?;
        let norm = ctx.zeros("global norm", 1)?;

        let what = "tensor statistics";
        let (chunk_pass, params) = prepare(
            ctx,
            &SHADER,
            "chunk_stats",
            &params,
            grid_2d(ctx, what, n_chunks)?,
            &[(1, w), (2, &chunk_buf), (4, &partials)],
        )
        .await?;
        let passes = [
            chunk_pass,
            dispatch(
                ctx,
                &SHADER,
                "tensor_stats",
                grid_2d(ctx, what, tensors.len())?,
                &[(0, &params), (3, &table_buf), (4, &partials), (5, &stats)],
            )
            .await?,
            dispatch(
                ctx,
                &SHADER,
                "global_norm",
                [1, 1, 1],
                &[(0, &params), (5, &stats), (6, &norm)],
            )
            .await?,
        ];
        Ok(TensorStats {
            tensors: tensors.to_vec(),
            stats,
            norm,
            chunks: chunk_buf,
            table: table_buf,
            n_chunks,
            _params: params,
            passes,
            _partials: partials,
        })
    }

    /// The three passes, in order.
    pub fn dispatches(&self) -> [&Dispatch; 3] {
        [&self.passes[0], &self.passes[1], &self.passes[2]]
    }

    /// Reads back the per-tensor statistics (for metrics; not in the step loop).
    pub async fn read(&self, ctx: &Context) -> Result<Vec<Stats>> {
        let v: Vec<f32> = ctx.read(&self.stats).await?;
        Ok(v.chunks_exact(4)
            .take(self.tensors.len())
            .map(Stats::from_slice)
            .collect())
    }
}

/// Per-tensor histograms of w (signed, on [−max|w|, max|w|]) or |w| (on [0, max|w|]), each
/// tensor's range read on the GPU from a [`TensorStats`] that ran before it. Encode
/// `dispatches()` after the statistics; `counts` holds `bins` u32 per tensor.
pub struct Histogram {
    pub bins: usize,
    pub counts: wgpu::Buffer,
    passes: [Dispatch; 2],
    _params: wgpu::Buffer,
}

impl Histogram {
    pub async fn new(
        ctx: &Context,
        w: &wgpu::Buffer,
        stats: &TensorStats,
        bins: usize,
        signed: bool,
    ) -> Result<Histogram> {
        if bins == 0 || bins > MAX_BINS {
            return Err(GpuError::Validation {
                what: "a histogram".into(),
                message: format!("{bins} bins requested; between 1 and {MAX_BINS} are possible"),
            });
        }
        let n_tensors = stats.tensors.len();
        let params = Params {
            r: 0.0,
            chunks: stats.n_chunks as u32,
            tensors: n_tensors as u32,
            bins: bins as u32,
            signed: signed as u32,
            _pad: [0; 3],
        };
        let counts = ctx.zeros("histogram", n_tensors * bins)?;
        let (clear, params) = prepare(
            ctx,
            &SHADER,
            "clear_histogram",
            &params,
            [grid_1d(ctx, n_tensors * bins), 1, 1],
            &[(7, &counts)],
        )
        .await?;
        let fill = dispatch(
            ctx,
            &SHADER,
            "histogram",
            grid_2d(ctx, "a histogram", stats.n_chunks)?,
            &[
                (0, &params),
                (1, w),
                (2, &stats.chunks),
                (3, &stats.table),
                (5, &stats.stats),
                (7, &counts),
            ],
        )
        .await?;
        let passes = [clear, fill];
        Ok(Histogram {
            bins,
            counts,
            passes,
            _params: params,
        })
    }

    /// Clear, then count.
    pub fn dispatches(&self) -> [&Dispatch; 2] {
        [&self.passes[0], &self.passes[1]]
    }
}
