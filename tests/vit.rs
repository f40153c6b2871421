//! ViT glue: patch embedding, class token + position embedding, mean-pool and class-token
//! select, each GPU kernel against its CPU twin; a small ViT (patch embedding → cls/pos →
//! attention with a residual add → pooling) composed on the GPU against the composed
//! twins, forward and backward; and finite-difference checks of every twin backward.
//!
//! Tolerances (f32, ε = 2⁻²³), per element:
//! - patchify / unpatchify, cls_pos forward and its dtokens, cls_select and its backward:
//!   exact (permutations, one addition done identically).
//! - the column sums (dcls, dpos, patch-embedding db; linear's `ChannelSum`, also tested in
//!   tests/conv.rs on these shapes) over R rows: `R·ε·Σ_r |x_r|`.
//! - patch embedding forward: `(2k + 2)·ε·(Σ_k |cols·w| + |b|)`, the matmul bound of a
//!   k-term sum (k = C·P·P) plus the bias addition; dW: `2k·ε·Σ_k |dout·cols|` (k = N·T);
//!   dx: `2E·ε·Σ_e |dout·w|`.
//! - mean_pool: `T·ε·Σ_t|x_t|/T + 4ε|out|` (sum, then WGSL division, 2.5 ulp);
//!   mean_pool backward: `4ε|dx|`.
//! - composed ViT forward and backward: `1e-4·(|c_i| + mean_j |c_j|)`, as for the attention
//!   block in tests/attention.rs (measured errors stay below 1e-6 of that scale on lavapipe).
//! - Finite differences (CPU twins): ε = 1e-2, tolerance 1e-2 relative + 1e-3 absolute.

mod common;

use common::{assert_close, context, read};
use varlab::ops::attention::{
    attention_backward_cpu, attention_forward_cpu, Attention, AttentionGrads, AttentionShape,
    AttentionWeights,
};
#[cfg(not(target_arch = "wasm32"))]
use varlab::ops::gradcheck::check;
use varlab::ops::linear::channel_sum_cpu;
use varlab::ops::matmul::{matmul_cpu, MatmulShape};
use varlab::ops::vit::*;
use varlab::ops::Elementwise;
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Image batches of the GPU tests: (N, C, H, W, P).
const IMAGES: [(usize, usize, usize, usize, usize); 3] =
    [(1, 1, 12, 12, 4), (2, 3, 28, 28, 4), (2, 3, 16, 16, 4)];

fn patch_shape((n, c, h, w, p): (usize, usize, usize, usize, usize)) -> PatchShape {
    PatchShape::new(n, c, h, w, p)
}

fn scaled(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    rng.vec(n).into_iter().map(|v| v * scale).collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// Column sums of `x [rows, cols]`.
fn column_sums(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; cols];
    channel_sum_cpu(rows, cols, 1, x, &mut out);
    out
}

/// `|g − c| ≤ rtol·(|c_i| + mean |c|)` per element.
fn assert_scaled(what: &str, gpu: &[f32], cpu: &[f32], rtol: f32) {
    let mean = cpu.iter().map(|v| v.abs()).sum::<f32>() / cpu.len().max(1) as f32;
    assert_close(what, gpu, cpu, |i| rtol * (cpu[i].abs() + mean));
}

gpu_test!(
    async fn patchify_and_unpatchify_match_cpu() {
        let ctx = context().await;
        for (seed, dims) in IMAGES.into_iter().enumerate() {
            let s = patch_shape(dims);
            let mut rng = Rng::new(10 + seed as u64);
            let x = rng.vec(s.len());
            let d = rng.vec(s.len());
            let (gx, gd) = (ctx.storage("x", &x).unwrap(), ctx.storage("d", &d).unwrap());
            let (gcols, gdx) = (
                ctx.zeros("cols", s.len()).unwrap(),
                ctx.zeros("dx", s.len()).unwrap(),
            );
            let fwd = VitKernel::patchify(&ctx, &s, &gx, &gcols).await.unwrap();
            let back = VitKernel::unpatchify(&ctx, &s, &gd, &gdx).await.unwrap();
            ctx.submit(&[&fwd.dispatch, &back.dispatch]).unwrap();
            let cols = patchify_cpu(&s, &x);
            assert_close(
                "patchify",
                &read(&ctx, &gcols, s.len()).await,
                &cols,
                |_| 0.0,
            );
            let dx = unpatchify_cpu(&s, &d);
            assert_close("unpatchify", &read(&ctx, &gdx, s.len()).await, &dx, |_| 0.0);
            assert_eq!(unpatchify_cpu(&s, &cols), x, "unpatchify ∘ patchify");
            // Patch t of image n holds, at (c, py, px), pixel (c, gy·P + py, gx·P + px).
            let (p, gw) = (s.patch, s.w / s.patch);
            let (n, t, c, py, px) = (s.n - 1, s.tokens() - 1, s.c - 1, 1, 2);
            let (yy, xx) = ((t / gw) * p + py, (t % gw) * p + px);
            assert_eq!(
                cols[(n * s.tokens() + t) * s.patch_len() + (c * p + py) * p + px],
                x[((n * s.c + c) * s.h + yy) * s.w + xx]
            );
        }
    }
);

gpu_test!(
    async fn patch_embed_forward_and_backward_match_cpu() {
        let ctx = context().await;
        for (seed, (dims, e)) in [(IMAGES[0], 8usize), (IMAGES[1], 12)]
            .into_iter()
            .enumerate()
        {
            let s = patch_shape(dims);
            let (rows, k) = (s.n * s.tokens(), s.patch_len());
            let mut rng = Rng::new(20 + seed as u64);
            let x = rng.vec(s.len());
            let w = scaled(&mut rng, e * k, 0.3);
            let b = rng.vec(e);
            let dout = rng.vec(rows * e);
            let up = |name: &str, v: &[f32]| ctx.storage(name, v).unwrap();
            let (gx, gw, gb, gdout) = (up("x", &x), up("w", &w), up("b", &b), up("dout", &dout));
            let z = |name: &str, n: usize| ctx.zeros(name, n).unwrap();
            let (gout, gdx, gdw, gdb) = (
                z("out", rows * e),
                z("dx", s.len()),
                z("dw", e * k),
                z("db", e),
            );
            let pe = PatchEmbed::new(&ctx, s, e, &gx, &gw, &gb, &gout)
                .await
                .unwrap();
            let pb = pe.backward(&ctx, &gdout, &gdx, &gdw, &gdb).await.unwrap();
            let mut all = pe.forward_dispatches();
            all.extend(pb.dispatches());
            ctx.submit(&all).unwrap();

            let out = patch_embed_cpu(&s, e, &x, &w, &b);
            let (dx, dw, db) = patch_embed_backward_cpu(&s, e, &x, &w, &dout);
            let cols = patchify_cpu(&s, &x);
            let eps = f32::EPSILON;
            // Magnitudes Σ|a·b| of each product, for the rounding bounds.
            let mag = |shape: MatmulShape, a: &[f32], b: &[f32]| {
                let mut m = vec![0.0; shape.len_c()];
                matmul_cpu(&shape, &abs(a), &abs(b), 1.0, 0.0, &mut m);
                m
            };
            let m_out = mag(
                MatmulShape::new(rows, e, k).transposed(false, true),
                &cols,
                &w,
            );
            assert_close(
                "patch embed out",
                &read(&ctx, &gout, rows * e).await,
                &out,
                |i| (2 * k + 2) as f32 * eps * (m_out[i] + b[i % e].abs()) + 1e-30,
            );
            let m_dw = mag(
                MatmulShape::new(e, k, rows).transposed(true, false),
                &dout,
                &cols,
            );
            assert_close("patch embed dw", &read(&ctx, &gdw, e * k).await, &dw, |i| {
                2.0 * rows as f32 * eps * m_dw[i] + 1e-30
            });
            let m_dx = unpatchify_cpu(&s, &mag(MatmulShape::new(rows, k, e), &dout, &w));
            assert_close(
                "patch embed dx",
                &read(&ctx, &gdx, s.len()).await,
                &dx,
                |i| 2.0 * e as f32 * eps * m_dx[i] + 1e-30,
            );
            let m_db = column_sums(&abs(&dout), rows, e);
            assert_close("patch embed db", &read(&ctx, &gdb, e).await, &db, |j| {
                rows as f32 * eps * m_db[j] + 1e-30
            });
        }
    }
);

gpu_test!(
    async fn cls_pos_forward_and_backward_match_cpu() {
        let ctx = context().await;
        for (seed, (n, t, e)) in [(1usize, 9usize, 8usize), (2, 16, 12), (3, 49, 5)]
            .into_iter()
            .enumerate()
        {
            let per = (t + 1) * e;
            let mut rng = Rng::new(30 + seed as u64);
            let tokens = rng.vec(n * t * e);
            let cls = rng.vec(e);
            let pos = rng.vec(per);
            let dout = rng.vec(n * per);
            let up = |name: &str, v: &[f32]| ctx.storage(name, v).unwrap();
            let (gt, gc, gp, gdo) = (
                up("tokens", &tokens),
                up("cls", &cls),
                up("pos", &pos),
                up("dout", &dout),
            );
            let z = |name: &str, len: usize| ctx.zeros(name, len).unwrap();
            let (gout, gdt, gdc, gdp) = (
                z("out", n * per),
                z("dtokens", n * t * e),
                z("dcls", e),
                z("dpos", per),
            );
            let op = ClsPos::new(
                &ctx,
                (n, t, e),
                &gt,
                &gc,
                &gp,
                &gout,
                &gdo,
                (&gdt, (&gdc).into(), (&gdp).into()),
            )
            .await
            .unwrap();
            let mut all = vec![&op.forward.dispatch];
            all.extend(op.backward_dispatches());
            ctx.submit(&all).unwrap();

            let out = cls_pos_cpu(n, t, e, &tokens, &cls, &pos);
            assert_close("cls_pos", &read(&ctx, &gout, n * per).await, &out, |_| 0.0);
            let (dt, dc, dp) = cls_pos_backward_cpu(n, t, e, &dout);
            assert_close("dtokens", &read(&ctx, &gdt, n * t * e).await, &dt, |_| 0.0);
            let eps = n as f32 * f32::EPSILON;
            let m = column_sums(&abs(&dout), n, per);
            assert_close("dcls", &read(&ctx, &gdc, e).await, &dc, |j| {
                eps * m[j] + 1e-30
            });
            assert_close("dpos", &read(&ctx, &gdp, per).await, &dp, |j| {
                eps * m[j] + 1e-30
            });
        }
    }
);

gpu_test!(
    async fn mean_pool_and_cls_select_match_cpu() {
        let ctx = context().await;
        for (seed, (n, t, e)) in [(1usize, 10usize, 8usize), (2, 17, 12), (3, 65, 300)]
            .into_iter()
            .enumerate()
        {
            let mut rng = Rng::new(40 + seed as u64);
            let x = rng.vec(n * t * e);
            let d = rng.vec(n * e);
            let (gx, gd) = (ctx.storage("x", &x).unwrap(), ctx.storage("d", &d).unwrap());
            let z = |name: &str, len: usize| ctx.zeros(name, len).unwrap();
            let (gmp, gmpb, gcs) = (z("mean", n * e), z("dmean", n * t * e), z("cls", n * e));
            let shape = (n, t, e);
            let kernels = [
                VitKernel::mean_pool(&ctx, shape, &gx, &gmp).await.unwrap(),
                VitKernel::mean_pool_backward(&ctx, shape, &gd, &gmpb)
                    .await
                    .unwrap(),
                VitKernel::cls_select(&ctx, shape, &gx, &gcs).await.unwrap(),
                // Last, over x itself: it must write every element, zeros included.
                VitKernel::cls_select_backward(&ctx, shape, &gd, &gx)
                    .await
                    .unwrap(),
            ];
            let dispatches: Vec<_> = kernels.iter().map(|k| &k.dispatch).collect();
            ctx.submit(&dispatches).unwrap();
            let eps = f32::EPSILON;
            let mean = mean_pool_cpu(n, t, e, &x);
            let mag = mean_pool_cpu(n, t, e, &abs(&x));
            assert_close("mean_pool", &read(&ctx, &gmp, n * e).await, &mean, |i| {
                t as f32 * eps * mag[i] + 4.0 * eps * mean[i].abs() + 1e-30
            });
            let dmean = mean_pool_backward_cpu(n, t, e, &d);
            assert_close(
                "mean_pool backward",
                &read(&ctx, &gmpb, n * t * e).await,
                &dmean,
                |i| 4.0 * eps * dmean[i].abs(),
            );
            let cls = cls_select_cpu(n, t, e, &x);
            assert_close("cls_select", &read(&ctx, &gcs, n * e).await, &cls, |_| 0.0);
            let dcls = cls_select_backward_cpu(n, t, e, &d);
            assert_close(
                "cls_select backward",
                &read(&ctx, &gx, n * t * e).await,
                &dcls,
                |_| 0.0,
            );
        }
    }
);

/// Parameters and inputs of the small ViT of the composition test.
struct Vit {
    s: PatchShape,
    e: usize,
    heads: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    cls: Vec<f32>,
    pos: Vec<f32>,
    wqkv: Vec<f32>,
    bqkv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    /// Upstream gradient of the pooled output `[N, E]`.
    dpool: Vec<f32>,
    /// Mean-pool head when true, class-token head otherwise.
    mean_head: bool,
}

impl Vit {
    fn new(s: PatchShape, e: usize, heads: usize, mean_head: bool, seed: u64) -> Vit {
        let mut rng = Rng::new(seed);
        let (k, t1) = (s.patch_len(), s.tokens() + 1);
        Vit {
            s,
            e,
            heads,
            x: rng.vec(s.len()),
            w: scaled(&mut rng, e * k, 0.3),
            b: scaled(&mut rng, e, 0.2),
            cls: scaled(&mut rng, e, 0.5),
            pos: scaled(&mut rng, t1 * e, 0.5),
            wqkv: scaled(&mut rng, 3 * e * e, 0.4),
            bqkv: scaled(&mut rng, 3 * e, 0.2),
            wo: scaled(&mut rng, e * e, 0.4),
            bo: scaled(&mut rng, e, 0.2),
            dpool: rng.vec(s.n * e),
            mean_head,
        }
    }
    fn attn_shape(&self) -> AttentionShape {
        AttentionShape::new(self.s.n, self.s.tokens() + 1, self.e, self.heads)
    }
    fn pool_shape(&self) -> (usize, usize, usize) {
        (self.s.n, self.s.tokens() + 1, self.e)
    }
}

/// Twin of the composition: `(seq, residual out, pooled)` and the gradients
/// `(dx, dw, db, dcls, dpos, dwqkv, dbqkv, dwo, dbo)`.
#[allow(clippy::type_complexity)]
fn vit_cpu(v: &Vit) -> ([Vec<f32>; 3], [Vec<f32>; 9]) {
    let (s, e) = (v.s, v.e);
    let t = s.tokens();
    let a = v.attn_shape();
    let (n, t1, _) = v.pool_shape();
    let tokens = patch_embed_cpu(&s, e, &v.x, &v.w, &v.b);
    let seq = cls_pos_cpu(n, t, e, &tokens, &v.cls, &v.pos);
    let saved = attention_forward_cpu(&a, &seq, &v.wqkv, &v.bqkv, &v.wo, &v.bo);
    let res: Vec<f32> = seq.iter().zip(&saved.y).map(|(p, q)| p + q).collect();
    let (pooled, dres) = if v.mean_head {
        (
            mean_pool_cpu(n, t1, e, &res),
            mean_pool_backward_cpu(n, t1, e, &v.dpool),
        )
    } else {
        (
            cls_select_cpu(n, t1, e, &res),
            cls_select_backward_cpu(n, t1, e, &v.dpool),
        )
    };
    let g = attention_backward_cpu(&a, &seq, &v.wqkv, &v.wo, &saved, &dres);
    let dseq: Vec<f32> = dres.iter().zip(&g.dx).map(|(p, q)| p + q).collect();
    let (dtokens, dcls, dpos) = cls_pos_backward_cpu(n, t, e, &dseq);
    let (dx, dw, db) = patch_embed_backward_cpu(&s, e, &v.x, &v.w, &dtokens);
    (
        [seq, res, pooled],
        [dx, dw, db, dcls, dpos, g.dwqkv, g.dbqkv, g.dwo, g.dbo],
    )
}

gpu_test!(
    async fn small_vit_composes_forward_and_backward() {
        let ctx = context().await;
        // 12×12 grey images → 9 patches + cls (mean head); 16×16 RGB → 16 + cls = 17
        // tokens (class-token head).
        for v in &[
            Vit::new(patch_shape(IMAGES[0]), 8, 2, true, 50),
            Vit::new(patch_shape(IMAGES[2]), 12, 3, false, 51),
        ] {
            let (s, e) = (v.s, v.e);
            let (n, t1, _) = v.pool_shape();
            let t = s.tokens();
            let k = s.patch_len();
            let up = |name: &str, d: &[f32]| ctx.storage(name, d).unwrap();
            let z = |name: &str, len: usize| ctx.zeros(name, len).unwrap();
            let (gx, gw, gb, gcls, gpos) = (
                up("x", &v.x),
                up("w", &v.w),
                up("b", &v.b),
                up("cls", &v.cls),
                up("pos", &v.pos),
            );
            let (gwqkv, gbqkv, gwo, gbo) = (
                up("wqkv", &v.wqkv),
                up("bqkv", &v.bqkv),
                up("wo", &v.wo),
                up("bo", &v.bo),
            );
            let gdpool = up("dpool", &v.dpool);
            let len = n * t1 * e;
            let (gtokens, gseq, gy, gres, gpooled) = (
                z("tokens", n * t * e),
                z("seq", len),
                z("y", len),
                z("res", len),
                z("pooled", n * e),
            );
            let (gdres, gdxa, gdseq, gdtokens) = (
                z("dres", len),
                z("dx attn", len),
                z("dseq", len),
                z("dtokens", n * t * e),
            );
            let (gdx, gdw, gdb, gdcls, gdpos) = (
                z("dx", s.len()),
                z("dw", e * k),
                z("db", e),
                z("dcls", e),
                z("dpos", t1 * e),
            );
            let (gdwqkv, gdbqkv, gdwo, gdbo) = (
                z("dwqkv", 3 * e * e),
                z("dbqkv", 3 * e),
                z("dwo", e * e),
                z("dbo", e),
            );

            let pe = PatchEmbed::new(&ctx, s, e, &gx, &gw, &gb, &gtokens)
                .await
                .unwrap();
            let cp = ClsPos::new(
                &ctx,
                (n, t, e),
                &gtokens,
                &gcls,
                &gpos,
                &gseq,
                &gdseq,
                (&gdtokens, (&gdcls).into(), (&gdpos).into()),
            )
            .await
            .unwrap();
            let weights = AttentionWeights {
                wqkv: (&gwqkv).into(),
                bqkv: (&gbqkv).into(),
                wo: (&gwo).into(),
                bo: (&gbo).into(),
            };
            let attn = Attention::new(&ctx, v.attn_shape(), &gseq, &weights, &gy)
                .await
                .unwrap();
            let residual = Elementwise::add(&ctx, len, &gseq, &gy, &gres)
                .await
                .unwrap();
            let ps = v.pool_shape();
            let (pool, pool_back) = if v.mean_head {
                (
                    VitKernel::mean_pool(&ctx, ps, &gres, &gpooled)
                        .await
                        .unwrap(),
                    VitKernel::mean_pool_backward(&ctx, ps, &gdpool, &gdres)
                        .await
                        .unwrap(),
                )
            } else {
                (
                    VitKernel::cls_select(&ctx, ps, &gres, &gpooled)
                        .await
                        .unwrap(),
                    VitKernel::cls_select_backward(&ctx, ps, &gdpool, &gdres)
                        .await
                        .unwrap(),
                )
            };
            let grads = AttentionGrads {
                dx: (&gdxa).into(),
                dwqkv: (&gdwqkv).into(),
                dbqkv: (&gdbqkv).into(),
                dwo: (&gdwo).into(),
                dbo: (&gdbo).into(),
            };
            let attn_back = attn.backward(&ctx, &gdres, &grads).await.unwrap();
            // The residual's backward: dseq = dres + dx through attention.
            let residual_back = Elementwise::add(&ctx, len, &gdres, &gdxa, &gdseq)
                .await
                .unwrap();
            let pe_back = pe
                .backward(&ctx, &gdtokens, &gdx, &gdw, &gdb)
                .await
                .unwrap();

            let mut all = pe.forward_dispatches();
            all.push(&cp.forward.dispatch);
            all.extend(attn.forward_dispatches());
            all.push(&residual.dispatch);
            all.push(&pool.dispatch);
            all.push(&pool_back.dispatch);
            all.extend(attn_back.dispatches());
            all.push(&residual_back.dispatch);
            all.extend(cp.backward_dispatches());
            all.extend(pe_back.dispatches());
            ctx.submit(&all).unwrap();

            let ([seq, res, pooled], grads_cpu) = vit_cpu(v);
            let forward = [
                ("seq", &gseq, seq),
                ("residual", &gres, res),
                ("pooled", &gpooled, pooled),
            ];
            for (what, buf, cpu) in forward {
                let gpu = read(&ctx, buf, cpu.len()).await;
                assert_scaled(&format!("{what} {s:?}"), &gpu, &cpu, 1e-4);
            }
            let names = [
                "dx", "dw", "db", "dcls", "dpos", "dwqkv", "dbqkv", "dwo", "dbo",
            ];
            let bufs = [
                &gdx, &gdw, &gdb, &gdcls, &gdpos, &gdwqkv, &gdbqkv, &gdwo, &gdbo,
            ];
            for ((what, buf), cpu) in names.into_iter().zip(bufs).zip(&grads_cpu) {
                let gpu = read(&ctx, buf, cpu.len()).await;
                assert_scaled(&format!("{what} {s:?}"), &gpu, cpu, 1e-4);
            }
        }
    }
);

gpu_test!(
    async fn patch_embed_refuses_sizes_that_are_not_multiples_of_the_patch() {
        let ctx = context().await;
        let buf = ctx.zeros("b", 4096).unwrap();
        let s = PatchShape::new(1, 3, 13, 12, 4);
        let err = PatchEmbed::new(&ctx, s, 8, &buf, &buf, &buf, &buf)
            .await
            .err()
            .expect("a 13×12 image with 4×4 patches was accepted");
        assert!(
            err.to_string().contains("multiple of the patch size"),
            "{err}"
        );
        let short = ctx.zeros("short", 4).unwrap();
        let err = PatchEmbed::new(
            &ctx,
            PatchShape::new(1, 3, 12, 12, 4),
            8,
            &buf,
            &short,
            &buf,
            &buf,
        )
        .await
        .err()
        .expect("a short weight was accepted");
        assert!(err.to_string().contains("buffer w"), "{err}");
    }
);

// ---------------------------------------------------------------------------------------
// Finite differences of the CPU twins.

#[cfg(not(target_arch = "wasm32"))]
const FD: (f32, f64, f64) = (1e-2, 1e-2, 1e-3);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn patch_embed_backward_matches_finite_differences() {
    let (eps, tol, atol) = FD;
    for (seed, (dims, e)) in [(IMAGES[0], 8usize), (IMAGES[2], 5)]
        .into_iter()
        .enumerate()
    {
        let s = patch_shape(dims);
        let mut rng = Rng::new(60 + seed as u64);
        let x = rng.vec(s.len());
        let w = scaled(&mut rng, e * s.patch_len(), 0.3);
        let b = rng.vec(e);
        let r = rng.vec(s.n * s.tokens() * e);
        let (dx, dw, db) = patch_embed_backward_cpu(&s, e, &x, &w, &r);
        let f = |x: &[f32], w: &[f32], b: &[f32]| patch_embed_cpu(&s, e, x, w, b);
        check(
            "patch embed dx",
            &x,
            &r,
            &dx,
            |v| f(v, &w, &b),
            eps,
            tol,
            atol,
        );
        check(
            "patch embed dw",
            &w,
            &r,
            &dw,
            |v| f(&x, v, &b),
            eps,
            tol,
            atol,
        );
        check(
            "patch embed db",
            &b,
            &r,
            &db,
            |v| f(&x, &w, v),
            eps,
            tol,
            atol,
        );
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn cls_pos_backward_matches_finite_differences() {
    let (eps, tol, atol) = FD;
    let (n, t, e) = (2, 9, 6);
    let mut rng = Rng::new(70);
    let tokens = rng.vec(n * t * e);
    let cls = rng.vec(e);
    let pos = rng.vec((t + 1) * e);
    let r = rng.vec(n * (t + 1) * e);
    let (dt, dc, dp) = cls_pos_backward_cpu(n, t, e, &r);
    let f = |a: &[f32], c: &[f32], p: &[f32]| cls_pos_cpu(n, t, e, a, c, p);
    check(
        "dtokens",
        &tokens,
        &r,
        &dt,
        |v| f(v, &cls, &pos),
        eps,
        tol,
        atol,
    );
    check(
        "dcls",
        &cls,
        &r,
        &dc,
        |v| f(&tokens, v, &pos),
        eps,
        tol,
        atol,
    );
    check(
        "dpos",
        &pos,
        &r,
        &dp,
        |v| f(&tokens, &cls, v),
        eps,
        tol,
        atol,
    );
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn pooling_backwards_match_finite_differences() {
    let (eps, tol, atol) = FD;
    let (n, t, e) = (2, 17, 5);
    let mut rng = Rng::new(80);
    let x = rng.vec(n * t * e);
    let r = rng.vec(n * e);
    let dm = mean_pool_backward_cpu(n, t, e, &r);
    check(
        "mean_pool",
        &x,
        &r,
        &dm,
        |v| mean_pool_cpu(n, t, e, v),
        eps,
        tol,
        atol,
    );
    let dc = cls_select_backward_cpu(n, t, e, &r);
    check(
        "cls_select",
        &x,
        &r,
        &dc,
        |v| cls_select_cpu(n, t, e, v),
        eps,
        tol,
        atol,
    );
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn small_vit_twin_backward_matches_finite_differences() {
    // The composed twin (patch embed → cls/pos → attention + residual → mean pool), checked
    // end to end w.r.t. the image and the embedding parameters.
    let (eps, tol, atol) = FD;
    let v = Vit::new(patch_shape(IMAGES[0]), 8, 2, true, 90);
    let (_, g) = vit_cpu(&v);
    let fwd = |v: &Vit| vit_cpu(v).0[2].clone();
    let r = v.dpool.clone();
    let with = |f: &dyn Fn(&mut Vit, &[f32]), p: &[f32]| {
        let mut w = Vit::new(v.s, v.e, v.heads, true, 90);
        f(&mut w, p);
        fwd(&w)
    };
    check(
        "vit dx",
        &v.x,
        &r,
        &g[0],
        |p| with(&|w, p| w.x = p.to_vec(), p),
        eps,
        tol,
        atol,
    );
    check(
        "vit dcls",
        &v.cls,
        &r,
        &g[3],
        |p| with(&|w, p| w.cls = p.to_vec(), p),
        eps,
        tol,
        atol,
    );
    check(
        "vit dpos",
        &v.pos,
        &r,
        &g[4],
        |p| with(&|w, p| w.pos = p.to_vec(), p),
        eps,
        tol,
        atol,
    );
    check(
        "vit dwqkv",
        &v.wqkv,
        &r,
        &g[5],
        |p| with(&|w, p| w.wqkv = p.to_vec(), p),
        eps,
        tol,
        atol,
    );
}
