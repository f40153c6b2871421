//! Magnitude thresholds without sorting: the exact k-th smallest |w| of each segment of a
//! flat buffer (a segment is one tensor, or several for a global threshold), by a radix
//! select over the f32 bit patterns of |w| — three histogram passes of 2^11, 2^11 and 2^10
//! bins — and a kernel zeroing every |w| at or below its segment's threshold. CrAM's
//! compression uses both every step; one-shot pruning reuses them.
//!
//! Ties: the threshold is a value, so zeroing `|w| ≤ T` zeroes every weight tied with the
//! k-th smallest — at least k, more when ties straddle the cut. [`Selected::below`] (how
//! many are strictly smaller) lets a caller that needs exactly k break ties itself.

use super::kernel::{check_sizes, dispatch, grid_2d, prepare};
use super::stats::chunks_of;
use crate::gpu::{Context, Dispatch, GpuError, Result, Shader};

const SHADER: Shader = Shader {
    name: "select",
    source: include_str!(concat!(env!("OUT_DIR"), "/shaders/select.wgsl")),
};
/// Bins of the widest radix pass.
const BINS: usize = 2048;

/// The k-th smallest |w| of a segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selected {
    /// The k-th smallest |w| (1-based); 0 when `k` is 0.
    pub threshold: f32,
    pub k: usize,
    /// How many |w| of the segment are strictly below `threshold`.
    pub below: usize,
}

/// The number of weights that sparsity `s` zeroes among `n`: round(s·n), computed in f64
/// (the denominator is the segment's size, not the whole model).
pub fn count_for_sparsity(s: f32, n: usize) -> usize {
    ((s as f64 * n as f64).round() as usize).min(n)
}

/// The elements of one segment, in order.
fn elements<'a>(w: &'a [f32], segment: &'a [(usize, usize)]) -> impl Iterator<Item = f32> + 'a {
    segment
        .iter()
        .flat_map(move |&(o, l)| w[o..o + l].iter().copied())
}

/// CPU twin of the select: per segment, the `ks[s]`-th smallest |w| (panics if `ks[s]`
/// exceeds the segment's size, which the GPU launcher refuses with an error).
pub fn select_abs_cpu(w: &[f32], segments: &[Vec<(usize, usize)>], ks: &[usize]) -> Vec<Selected> {
    segments
        .iter()
        .zip(ks)
        .map(|(segment, &k)| {
            if k == 0 {
                return Selected {
                    threshold: 0.0,
                    k,
                    below: 0,
                };
            }
            let mut bits: Vec<u32> = elements(w, segment).map(|v| v.abs().to_bits()).collect();
            let (_, &mut t, _) = bits.select_nth_unstable(k - 1);
            let below = bits.iter().filter(|&&b| b < t).count();
            Selected {
                threshold: f32::from_bits(t),
                k,
                below,
            }
        })
        .collect()
}

/// CPU twin of `zero_at_or_below`: zeroes `|w| ≤ threshold` in every segment with k > 0.
pub fn zero_at_or_below_cpu(w: &mut [f32], segments: &[Vec<(usize, usize)>], sel: &[Selected]) {
    for (segment, s) in segments.iter().zip(sel) {
        if s.k == 0 {
            continue;
        }
        for &(o, l) in segment {
            for v in &mut w[o..o + l] {
                if v.abs() <= s.threshold {
                    *v = 0.0;
                }
            }
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    chunks: u32,
    segments: u32,
    pass: u32,
    _pad: u32,
}

/// A prepared radix select over the segments of one flat buffer `w`. Per use: [`set_k`]
/// (queued write), then encode [`dispatches`] (7: init, then histogram + scan three times)
/// and, to compress, [`zero_dispatch`].
///
/// [`set_k`]: AbsSelect::set_k
/// [`dispatches`]: AbsSelect::dispatches
/// [`zero_dispatch`]: AbsSelect::zero_dispatch
pub struct AbsSelect {
    sizes: Vec<usize>,
    ks: wgpu::Buffer,
    /// `(threshold bits, krem, below, k)` per segment after the passes.
    pub state: wgpu::Buffer,
    passes: Vec<Dispatch>,
    zero: Dispatch,
    _buffers: Vec<wgpu::Buffer>,
}

impl AbsSelect {
    pub async fn new(
        ctx: &Context,
        w: &wgpu::Buffer,
        segments: &[Vec<(usize, usize)>],
    ) -> Result<AbsSelect> {
        let what = "a magnitude select";
        let end = segments
            .iter()
            .flatten()
            .map(|&(o, l)| o + l)
            .max()
            .unwrap_or(0);
        check_sizes(what, &[("w", w, end)])?;
        let mut chunks: Vec<[u32; 4]> = Vec::new();
        for (s, segment) in segments.iter().enumerate() {
            for &(offset, len) in segment {
                chunks
                    .extend(chunks_of(offset, len).map(|(a, b)| [a as u32, b as u32, s as u32, 0]));
            }
        }
        let sizes: Vec<usize> = segments
            .iter()
            .map(|seg| seg.iter().map(|&(_, l)| l).sum())
            .collect();
        let n_seg = segments.len();
        let chunk_buf = ctx.storage("select chunks", &chunks)?;
        let ks = ctx.zeros("select ks", n_seg)?;
        let state = ctx.zeros("select state", 4 * n_seg)?;
        let hist = ctx.zeros("select histograms", BINS * n_seg)?;
        let params = |pass: u32| Params {
            chunks: chunks.len() as u32,
            segments: n_seg as u32,
            pass,
            _pad: 0,
        };
        let seg_grid = grid_2d(ctx, what, n_seg)?;
        let chunk_grid = grid_2d(ctx, what, chunks.len())?;
        let mut passes = Vec::with_capacity(7);
        let mut buffers = Vec::new();
        let (init, uniform) = prepare(
            ctx,
            &SHADER,
            "init",
            &params(0),
            seg_grid,
            &[(3, &ks), (4, &state), (5, &hist)],
        )
        .await?;
        passes.push(init);
        buffers.push(uniform);
        for pass in 0..3 {
            let (h, uniform) = prepare(
                ctx,
                &SHADER,
                "histogram",
                &params(pass),
                chunk_grid,
                &[(1, w), (2, &chunk_buf), (4, &state), (5, &hist)],
            )
            .await?;
            let s = dispatch(
                ctx,
                &SHADER,
                "scan",
                seg_grid,
                &[(0, &uniform), (4, &state), (5, &hist)],
            )
            .await?;
            passes.extend([h, s]);
            buffers.push(uniform);
        }
        let (zero, uniform) = prepare(
            ctx,
            &SHADER,
            "zero_at_or_below",
            &params(0),
            chunk_grid,
            &[(2, &chunk_buf), (4, &state), (6, w)],
        )
        .await?;
        buffers.extend([uniform, chunk_buf, hist]);
        Ok(AbsSelect {
            sizes,
            ks,
            state,
            passes,
            zero,
            _buffers: buffers,
        })
    }

    /// Elements per segment.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Sets the rank k per segment (queued; lands before the next submit). Refuses a count
    /// that does not match the segments or a k above its segment's size.
    pub fn set_k(&self, ctx: &Context, ks: &[usize]) -> Result<()> {
        let refuse = |message: String| {
            Err(GpuError::Validation {
                what: "a magnitude select".into(),
                message,
            })
        };
        if ks.len() != self.sizes.len() {
            return refuse(format!(
                "{} ranks given for {} segments",
                ks.len(),
                self.sizes.len()
            ));
        }
        if let Some((s, (&k, &n))) = ks
            .iter()
            .zip(&self.sizes)
            .enumerate()
            .find(|(_, (&k, &n))| k > n)
        {
            return refuse(format!(
                "rank {k} asked of segment {s}, which has {n} elements"
            ));
        }
        if !ks.is_empty() {
            let ks: Vec<u32> = ks.iter().map(|&k| k as u32).collect();
            ctx.write(&self.ks, &ks);
        }
        Ok(())
    }

    /// The selection passes, in order (7 whatever the number of segments).
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.passes.iter().collect()
    }

    /// Zeroes `|w| ≤ threshold` in every segment with k > 0 (after [`Self::dispatches`]).
    pub fn zero_dispatch(&self) -> &Dispatch {
        &self.zero
    }

    /// Reads the thresholds back (tests, pruning reports; not in a step loop).
    pub async fn read(&self, ctx: &Context) -> Result<Vec<Selected>> {
        if self.sizes.is_empty() {
            return Ok(Vec::new());
        }
        let state: Vec<[u32; 4]> = ctx.read(&self.state).await?;
        Ok(state
            .iter()
            .take(self.sizes.len())
            .map(|s| Selected {
                threshold: f32::from_bits(s[0]),
                k: s[3] as usize,
                below: s[2] as usize,
            })
            .collect())
    }
}
