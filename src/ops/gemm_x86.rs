//! The native CPU product [`super::matmul::gemm`] runs on x86_64 when the CPU has AVX2 and
//! FMA: a blocked GEMM (Goto's loops: `NC` columns of B, `KC` of depth, `MC` rows of A)
//! around a 6×16 AVX2+FMA micro-kernel, single-threaded.
//!
//! Why not `matrixmultiply` there: it allocates its packing buffers on every call, which on
//! the CPU executor's small, frequent products (the MLP's step is a dozen of them) cost page
//! faults and heap trimming each step. Here the packing buffers are per thread and kept, so
//! a training step allocates nothing once they have grown. Each element of C is summed as
//! `matrixmultiply`'s FMA kernel sums it (depth in blocks of 256, each by one FMA chain in
//! order, the blocks added to C in order): the golden experiments (`tests/experiment.rs`)
//! kept every bit. Results are the same on every call and thread.

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};
use std::cell::RefCell;

/// Rows of a micro-tile (A panel height).
const MR: usize = 6;
/// Columns of a micro-tile (B panel width: two AVX registers).
const NR: usize = 16;
/// Depth of a packed block.
const KC: usize = 256;
/// Rows of a packed A block (a multiple of `MR`; `MC·KC` floats stay in L2).
const MC: usize = 72;
/// Columns of a packed B block (a multiple of `NR`).
const NC: usize = 512;

thread_local! {
    /// The packed A block and B block of this thread, grown to the largest seen.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether this CPU runs [`gemm`] (AVX2 and FMA; the detection is cached by std).
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// A matrix operand: row-major storage, read transposed or not.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    /// Stride between rows and between columns of the logical (transposed) matrix.
    rs: usize,
    cs: usize,
}

/// `C = alpha·op(A)·op(B) + beta·C`, the contract of [`super::matmul::gemm`] (sizes checked
/// there, `m, n > 0`). With `beta = 0` C is written without being read.
///
/// Panics unless [`available`].
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
    assert!(available(), "gemm_x86 needs AVX2 and FMA");
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if trans_b { (1, k) } else { (n, 1) };
    let a = Operand {
        data: a,
        rs: rsa,
        cs: csa,
    };
    let b = Operand {
        data: b,
        rs: rsb,
        cs: csb,
    };
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
        return;
    }
    PACKED.with_borrow_mut(|(ap, bp)| {
        grow(ap, MC * KC);
        grow(bp, KC * NC);
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                pack_b(b, pc, kc, jc, nc, bp);
                // The first depth block applies beta; the later ones add to C.
                let beta = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    pack_a(a, ic, mc, pc, kc, ap);
                    let block = Block {
                        kc,
                        alpha,
                        beta,
                        ldc: n,
                    };
                    for (jr, bpanel) in bp.chunks_exact(kc * NR).take(nc.div_ceil(NR)).enumerate() {
                        let (j0, nr) = (jc + jr * NR, NR.min(nc - jr * NR));
                        for (ir, apanel) in
                            ap.chunks_exact(kc * MR).take(mc.div_ceil(MR)).enumerate()
                        {
                            let (i0, mr) = (ic + ir * MR, MR.min(mc - ir * MR));
                            let c = &mut c[i0 * n + j0..];
                            // SAFETY: `available()` was asserted (AVX2 and FMA); the panels
                            // hold kc·MR and kc·NR floats and `c` covers rows i0..i0+mr at
                            // stride n, columns j0..j0+nr (i0 + mr ≤ m, j0 + nr ≤ n).
                            unsafe { tile(&block, apanel, bpanel, c, mr, nr) };
                        }
                    }
                }
            }
        }
    });
}

fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Packs rows `ic..ic+mc`, depth `pc..pc+kc` of op(A) into panels of `MR` rows, each
/// `kc × MR` (depth-major), the rows past `mc` zero.
fn pack_a(a: Operand, ic: usize, mc: usize, pc: usize, kc: usize, ap: &mut [f32]) {
    let src = Operand {
        data: &a.data[ic * a.rs + pc * a.cs..],
        ..a
    };
    pack::<MR>(src, a.rs, a.cs, mc, kc, ap);
}

/// Packs depth `pc..pc+kc`, columns `jc..jc+nc` of op(B) into panels of `NR` columns, each
/// `kc × NR` (depth-major), the columns past `nc` zero.
fn pack_b(b: Operand, pc: usize, kc: usize, jc: usize, nc: usize, bp: &mut [f32]) {
    let src = Operand {
        data: &b.data[pc * b.rs + jc * b.cs..],
        ..b
    };
    pack::<NR>(src, b.cs, b.rs, nc, kc, bp);
}

/// Packs `lanes × kc` values, value `(t, p)` at `src.data[t·ts + p·ps]`, into panels of `W`
/// lanes, each `kc × W` (depth-major), the lanes past `lanes` zero. One of `ts`, `ps` is 1
/// (row-major storage).
fn pack<const W: usize>(
    src: Operand,
    ts: usize,
    ps: usize,
    lanes: usize,
    kc: usize,
    out: &mut [f32],
) {
    debug_assert!(ts == 1 || ps == 1, "row-major storage");
    let data = src.data;
    for (q, panel) in out
        .chunks_exact_mut(kc * W)
        .take(lanes.div_ceil(W))
        .enumerate()
    {
        let (t0, w) = (q * W, W.min(lanes - q * W));
        let rows = panel.chunks_exact_mut(W);
        if ts == 1 {
            for (p, row) in rows.enumerate() {
                let at = t0 + p * ps;
                if w == W {
                    row.copy_from_slice(&data[at..at + W]);
                } else {
                    row[..w].copy_from_slice(&data[at..at + w]);
                    row[w..].fill(0.0);
                }
            }
        } else {
            // W lanes read side by side, each along the depth (ps = 1), the missing ones
            // from zeros; the panel is written in order.
            let lane = |t: usize| match t < w {
                true => &data[(t0 + t) * ts..][..kc],
                false => &ZEROS[..kc],
            };
            let src: [&[f32]; W] = std::array::from_fn(lane);
            for (p, row) in rows.enumerate() {
                for (v, l) in row.iter_mut().zip(&src) {
                    *v = l[p];
                }
            }
        }
    }
}

/// The lanes of a partial panel.
static ZEROS: [f32; KC] = [0.0; KC];

/// The scalars of one packed block's tiles.
struct Block {
    kc: usize,
    alpha: f32,
    /// 0: C is written without being read.
    beta: f32,
    ldc: usize,
}

/// One `mr × nr` tile of C (`mr ≤ MR`, `nr ≤ NR`) from an A panel and a B panel:
/// `C = alpha·Σ_p a_p·b_pᵀ + beta·C`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `a` holds `kc·MR` floats, `b` `kc·NR`, and `c` (stride
/// `ldc`) at least `(mr − 1)·ldc + nr`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(blk: &Block, a: &[f32], b: &[f32], c: &mut [f32], mr: usize, nr: usize) {
    assert!(a.len() >= blk.kc * MR && b.len() >= blk.kc * NR);
    assert!(mr >= 1 && c.len() >= (mr - 1) * blk.ldc + nr);
    let mut acc = [_mm256_setzero_ps(); 2 * MR];
    let (a, b) = (a.as_ptr(), b.as_ptr());
    for p in 0..blk.kc {
        // SAFETY: p < kc, so the reads stay within the panels' kc·NR and kc·MR floats.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.add(p * NR)),
                _mm256_loadu_ps(b.add(p * NR + 8)),
            )
        };
        for r in 0..MR {
            // SAFETY: as above, p·MR + r < kc·MR.
            let ar = unsafe { _mm256_broadcast_ss(&*a.add(p * MR + r)) };
            acc[2 * r] = _mm256_fmadd_ps(ar, b0, acc[2 * r]);
            acc[2 * r + 1] = _mm256_fmadd_ps(ar, b1, acc[2 * r + 1]);
        }
    }
    let alpha = _mm256_set1_ps(blk.alpha);
    for r in 0..mr {
        let row = &mut c[r * blk.ldc..];
        let out = [
            _mm256_mul_ps(alpha, acc[2 * r]),
            _mm256_mul_ps(alpha, acc[2 * r + 1]),
        ];
        if nr == NR {
            // SAFETY: the row holds at least nr = 16 floats (checked above).
            unsafe { store_full(row, out, blk.beta) };
        } else {
            let mut t = [0.0f32; NR];
            // SAFETY: `t` holds 16 floats.
            unsafe {
                _mm256_storeu_ps(t.as_mut_ptr(), out[0]);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), out[1]);
            }
            for (v, &x) in row[..nr].iter_mut().zip(&t) {
                *v = if blk.beta == 0.0 {
                    x
                } else {
                    x + blk.beta * *v
                };
            }
        }
    }
}

/// `row[..16] = out + beta·row[..16]` (`beta = 0`: `out`, the row not read).
///
/// # Safety
/// AVX2 and FMA; `row` holds at least 16 floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn store_full(row: &mut [f32], out: [__m256; 2], beta: f32) {
    assert!(row.len() >= NR);
    let p = row.as_mut_ptr();
    for (h, &o) in out.iter().enumerate() {
        // SAFETY: h·8 + 8 ≤ 16 ≤ row.len().
        unsafe {
            let v = if beta == 0.0 {
                o
            } else {
                let old = _mm256_loadu_ps(p.add(8 * h));
                _mm256_add_ps(o, _mm256_mul_ps(_mm256_set1_ps(beta), old))
            };
            _mm256_storeu_ps(p.add(8 * h), v);
        }
    }
}
