//! Linear, convolution and pooling kernels (forward and backward) against their CPU twins
//! on random inputs of odd shapes, and finite-difference checks of the CPU twins' backwards.
//!
//! Tolerances (f32, ε = 2⁻²³), per element: `2·(T + 2)·ε·mag_i`, where `mag_i` is the same
//! output computed by the CPU twin on the absolute values of every input (the worst-case
//! size of the rounding errors of a sum) and `T` is the number of terms summed per output:
//! - linear forward `in + 1`; dX `out`; dW `N`; db `N` (GPU tree vs sequential sum);
//! - conv forward `Cin·kh·kw + 1`; dX `Cout + kh·kw` (product, then col2im gather);
//!   dW `Hout·Wout + N` (per-item products, then the sum over the batch); db `N·Hout·Wout`;
//! - avg / global-avg pool forward `kh·kw`, backward the number of windows per pixel (the
//!   sums run in the same order; what is left is WGSL's division, within 2.5 ulp).
//! - the shared bias kernels on their own (as attention and the ViT glue use them too):
//!   `BiasAdd` exact (one addition done identically); `ChannelSum` over R = outer·inner
//!   terms per channel `R·ε·Σ|x|` (the GPU sums lanes then a tree / a fixed-order lane sum,
//!   the twin sequentially).
//! - im2col and max pooling (values, argmax, backward): exact equality — they only move
//!   values, and the max-pool backward adds in the same order on both sides.
//!
//! Finite differences (`gradcheck::check`): relative 1e-2 plus absolute 1e-3, steps 0.05
//! for the (multi)linear maps and 1e-2 for max pooling, whose inputs are a shuffled ramp
//! with spacing 0.05 so that no step crosses a tie.

mod common;

use common::{assert_close, context, read};
use varlab::gpu::{Context, Dispatch, GpuError};
use varlab::ops::conv::{
    conv2d_backward_cpu, conv2d_cpu, im2col_cpu, Conv2d, Conv2dBackward, Conv2dShape, ConvMethod,
};
use varlab::ops::linear::{
    bias_add_cpu, channel_sum_cpu, linear_backward_cpu, linear_cpu, BiasAdd, ChannelSum, Linear,
    LinearBackward, LinearShape,
};
use varlab::ops::pool::{
    avg_pool_backward_cpu, avg_pool_cpu, max_pool_backward_cpu, max_pool_cpu, Pool, PoolShape,
};
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// `|gpu − cpu| ≤ 2·(terms + 2)·ε·mag` element by element.
fn check(what: &str, gpu: &[f32], cpu: &[f32], mag: &[f32], terms: usize) {
    assert_close(what, gpu, cpu, |i| {
        2.0 * (terms as f32 + 2.0) * f32::EPSILON * mag[i] + f32::MIN_POSITIVE
    });
}

fn run(ctx: &Context, dispatches: &[Dispatch]) {
    ctx.submit(&dispatches.iter().collect::<Vec<_>>()).unwrap();
}

// ---------------------------------------------------------------- linear

async fn check_linear(s: LinearShape, bias: bool, seed: u64) {
    let ctx = context().await;
    let mut rng = Rng::new(seed);
    let (x, w, b, dy) = (
        rng.vec(s.len_x()),
        rng.vec(s.len_w()),
        rng.vec(s.out_features),
        rng.vec(s.len_y()),
    );
    let b = bias.then_some(b);
    let gx = ctx.storage("x", &x).unwrap();
    let gw = ctx.storage("w", &w).unwrap();
    let gb = b.as_ref().map(|b| ctx.storage("b", b).unwrap());
    let gy = ctx.zeros("y", s.len_y()).unwrap();
    let fwd = Linear::new(&ctx, s, &gx, &gw, gb.as_ref().map(Into::into), &gy)
        .await
        .unwrap();
    run(&ctx, &fwd.dispatches);
    let mut cpu = vec![0.0; s.len_y()];
    linear_cpu(&s, &x, &w, b.as_deref(), &mut cpu);
    let mut mag = vec![0.0; s.len_y()];
    let abs_b = b.as_deref().map(abs);
    linear_cpu(&s, &abs(&x), &abs(&w), abs_b.as_deref(), &mut mag);
    let gpu = read(&ctx, &gy, s.len_y()).await;
    check("linear forward", &gpu, &cpu, &mag, s.in_features + 1);

    let gdy = ctx.storage("dy", &dy).unwrap();
    let (gdx, gdw, gdb) = (
        ctx.zeros("dx", s.len_x()).unwrap(),
        ctx.zeros("dw", s.len_w()).unwrap(),
        ctx.zeros("db", s.out_features).unwrap(),
    );
    let db_out = bias.then(|| (&gdb).into());
    let bwd = LinearBackward::new(
        &ctx,
        s,
        &gx,
        &gw,
        &gdy,
        Some((&gdx).into()),
        Some((&gdw).into()),
        db_out,
    )
    .await
    .unwrap();
    run(&ctx, &bwd.dispatches);
    let (mut dx, mut dw, mut db) = (
        vec![0.0; s.len_x()],
        vec![0.0; s.len_w()],
        vec![0.0; s.out_features],
    );
    linear_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
    let (mut mdx, mut mdw, mut mdb) = (dx.clone(), dw.clone(), db.clone());
    linear_backward_cpu(
        &s,
        &abs(&x),
        &abs(&w),
        &abs(&dy),
        Some(&mut mdx),
        Some(&mut mdw),
        Some(&mut mdb),
    );
    let gpu_dx = read(&ctx, &gdx, s.len_x()).await;
    check("linear dx", &gpu_dx, &dx, &mdx, s.out_features);
    let gpu_dw = read(&ctx, &gdw, s.len_w()).await;
    check("linear dw", &gpu_dw, &dw, &mdw, s.n);
    if bias {
        let gpu_db = read(&ctx, &gdb, s.out_features).await;
        check("linear db", &gpu_db, &db, &mdb, s.n);
    }
}

gpu_test!(
    async fn linear_forward_backward_match_cpu() {
        check_linear(LinearShape::new(1, 33, 17), true, 1).await;
        check_linear(LinearShape::new(7, 33, 17), true, 2).await;
        check_linear(LinearShape::new(7, 33, 17), false, 3).await;
        check_linear(LinearShape::new(70, 5, 130), true, 4).await;
    }
);

// ---------------------------------------------------------------- bias kernels

gpu_test!(
    async fn bias_add_and_channel_sum_match_cpu() {
        let ctx = context().await;
        // [outer, channels, inner]. inner = 1 is a [rows, cols] matrix (the `column_sum`
        // entry): attention's qkv / output biases (1×1 up to 37×70); the ViT's patch-embedding
        // db over N·T rows (9×8 and 98×12 as in tests/vit.rs, then 1000×12 with many rows
        // per lane) and its dpos over N rows of (T+1)·E (2×204, 3×250) and dcls, a one-row
        // sum (1×5). inner > 1 is a convolution's [N, C, H·W] (the `channel_sum` entry).
        let shapes = [
            (1usize, 1usize, 1usize),
            (5, 36, 1),
            (34, 24, 1),
            (37, 70, 1),
            (9, 8, 1),
            (98, 12, 1),
            (1000, 12, 1),
            (2, 204, 1),
            (3, 250, 1),
            (1, 5, 1),
            (3, 5, 7),
            (2, 3, 300),
        ];
        // Split into pieces of rows (column sums) or of terms (channel sums): odd sizes,
        // the last piece shorter, plus sizes just around the split.
        let rows_cols = [1usize, 7, 127, 128, 1000, 4099]
            .into_iter()
            .flat_map(|r| [1usize, 3, 65].map(|c| (r, c, 1usize)));
        let split_shapes = rows_cols.chain([(3, 2, 1000), (5, 3, 999), (2, 1, 1024)]);
        let shapes: Vec<_> = shapes.into_iter().chain(split_shapes).collect();
        for (seed, (outer, channels, inner)) in shapes.into_iter().enumerate() {
            let len = outer * channels * inner;
            let mut rng = Rng::new(300 + seed as u64);
            let y0 = rng.vec(len);
            let bias = rng.vec(channels);
            let (gy, gb) = (
                ctx.storage("y", &y0).unwrap(),
                ctx.storage("bias", &bias).unwrap(),
            );
            let gdb = ctx.zeros("db", channels).unwrap();
            let add = BiasAdd::new(&ctx, outer, channels, inner, &gb, &gy)
                .await
                .unwrap();
            let sum = ChannelSum::new(&ctx, outer, channels, inner, &gy, &gdb)
                .await
                .unwrap();
            let list: Vec<&Dispatch> = std::iter::once(&add.dispatch)
                .chain(&sum.dispatches)
                .collect();
            ctx.submit(&list).unwrap();
            let (chunk, splits) = sum.split;
            let count = if inner == 1 { outer } else { outer * inner };
            assert!(chunk * splits >= count && (splits == 1 || chunk * (splits - 1) < count));
            assert_eq!(sum.dispatches.len(), 1 + (splits > 1) as usize);
            let mut y = y0.clone();
            bias_add_cpu(outer, channels, inner, &bias, &mut y);
            assert_close("bias_add", &read(&ctx, &gy, len).await, &y, |_| 0.0);
            let (mut db, mut mag) = (vec![0.0; channels], vec![0.0; channels]);
            channel_sum_cpu(outer, channels, inner, &y, &mut db);
            channel_sum_cpu(outer, channels, inner, &abs(&y), &mut mag);
            let terms = (outer * inner) as f32;
            assert_close("channel_sum", &read(&ctx, &gdb, channels).await, &db, |j| {
                terms * f32::EPSILON * mag[j] + 1e-30
            });
        }
    }
);

// ---------------------------------------------------------------- convolution

/// Both methods on one shape.
async fn check_conv(s: Conv2dShape, bias: bool, seed: u64) {
    for method in [ConvMethod::Im2col, ConvMethod::Direct] {
        check_conv_by(method, s, bias, seed).await;
    }
}

async fn check_conv_by(method: ConvMethod, s: Conv2dShape, bias: bool, seed: u64) {
    let ctx = context().await;
    let mut rng = Rng::new(seed);
    let (x, w, b, dy) = (
        rng.vec(s.len_x()),
        rng.vec(s.len_w()),
        rng.vec(s.cout),
        rng.vec(s.len_y()),
    );
    let b = bias.then_some(b);
    let gx = ctx.storage("x", &x).unwrap();
    let gw = ctx.storage("w", &w).unwrap();
    let gb = b.as_ref().map(|b| ctx.storage("b", b).unwrap());
    let gy = ctx.zeros("y", s.len_y()).unwrap();
    let fwd = Conv2d::with_method(&ctx, method, s, &gx, &gw, gb.as_ref().map(Into::into), &gy)
        .await
        .unwrap();
    assert_eq!(fwd.method, method);
    run(&ctx, &fwd.dispatches);

    if let Some(gpu_cols) = &fwd.cols {
        let mut cols = vec![0.0; s.len_cols()];
        im2col_cpu(&s, &x, &mut cols);
        let gpu_cols = read(&ctx, gpu_cols, s.len_cols()).await;
        assert_close(&format!("im2col {s:?}"), &gpu_cols, &cols, |_| 0.0);
    }
    let s_name = format!("{method:?} {s:?}");

    let mut cpu = vec![0.0; s.len_y()];
    conv2d_cpu(&s, &x, &w, b.as_deref(), &mut cpu);
    let mut mag = vec![0.0; s.len_y()];
    let abs_b = b.as_deref().map(abs);
    conv2d_cpu(&s, &abs(&x), &abs(&w), abs_b.as_deref(), &mut mag);
    let gpu = read(&ctx, &gy, s.len_y()).await;
    check(
        &format!("conv forward {s_name}"),
        &gpu,
        &cpu,
        &mag,
        s.k() + 1,
    );

    let gdy = ctx.storage("dy", &dy).unwrap();
    let (gdx, gdw, gdb) = (
        ctx.zeros("dx", s.len_x()).unwrap(),
        ctx.zeros("dw", s.len_w()).unwrap(),
        ctx.zeros("db", s.cout).unwrap(),
    );
    let db_out = bias.then(|| (&gdb).into());
    let bwd = Conv2dBackward::new(
        &ctx,
        &fwd,
        &gx,
        &gw,
        &gdy,
        Some((&gdx).into()),
        Some((&gdw).into()),
        db_out,
    )
    .await
    .unwrap();
    run(&ctx, &bwd.dispatches);
    let (mut dx, mut dw, mut db) = (
        vec![0.0; s.len_x()],
        vec![0.0; s.len_w()],
        vec![0.0; s.cout],
    );
    conv2d_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
    let (mut mdx, mut mdw, mut mdb) = (dx.clone(), dw.clone(), db.clone());
    conv2d_backward_cpu(
        &s,
        &abs(&x),
        &abs(&w),
        &abs(&dy),
        Some(&mut mdx),
        Some(&mut mdw),
        Some(&mut mdb),
    );
    let gpu_dx = read(&ctx, &gdx, s.len_x()).await;
    // The direct dx sums all Cout·kh·kw terms in one sequence.
    let dx_terms = match method {
        ConvMethod::Im2col => s.cout + s.kh * s.kw,
        ConvMethod::Direct => s.cout * s.kh * s.kw,
    };
    check(&format!("conv dx {s_name}"), &gpu_dx, &dx, &mdx, dx_terms);
    let gpu_dw = read(&ctx, &gdw, s.len_w()).await;
    check(
        &format!("conv dw {s_name}"),
        &gpu_dw,
        &dw,
        &mdw,
        s.hw_out() + s.n,
    );
    if bias {
        let gpu_db = read(&ctx, &gdb, s.cout).await;
        check(
            &format!("conv db {s_name}"),
            &gpu_db,
            &db,
            &mdb,
            s.n * s.hw_out(),
        );
    }
}

gpu_test!(
    async fn conv_3x3_stride1_pad1_batch1_matches_cpu() {
        check_conv(Conv2dShape::new(1, 3, 7, 7, 5, 3).padding(1, 1), true, 10).await;
    }
);

gpu_test!(
    async fn conv_5x5_stride2_pad2_batch3_matches_cpu() {
        let s = Conv2dShape::new(3, 3, 9, 9, 5, 5)
            .stride(2, 2)
            .padding(2, 2);
        check_conv(s, true, 11).await;
    }
);

gpu_test!(
    async fn conv_3x5_kernel_mixed_stride_and_padding_no_bias_matches_cpu() {
        let s = Conv2dShape::new(3, 3, 9, 7, 5, 3)
            .kernel(3, 5)
            .stride(2, 1)
            .padding(0, 2);
        check_conv(s, false, 12).await;
        // Stride 2 without padding drops the last row and column of a 7×7 image.
        check_conv(Conv2dShape::new(3, 3, 7, 7, 5, 3).stride(2, 2), true, 13).await;
    }
);

gpu_test!(
    async fn conv_with_channels_past_one_group_of_eight_matches_cpu() {
        // 9 input and 11 output channels: two channel groups each way, the last one partial.
        let s = Conv2dShape::new(2, 9, 6, 5, 11, 3).padding(1, 1);
        check_conv(s, true, 14).await;
    }
);

gpu_test!(
    async fn conv_and_pool_refuse_bad_shapes_and_small_buffers() {
        let ctx = context().await;
        let s = Conv2dShape::new(2, 3, 7, 7, 5, 3);
        let x = ctx.zeros("x", s.len_x()).unwrap();
        let small_w = ctx.zeros("w", s.len_w() - 1).unwrap();
        let y = ctx.zeros("y", s.len_y()).unwrap();
        match Conv2d::new(&ctx, s, &x, &small_w, None, &y).await {
            Err(GpuError::Validation { message, .. }) => {
                assert!(message.contains('W'), "{message}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a weight buffer too small was accepted"),
        }
        let too_big_kernel = Conv2dShape::new(1, 3, 3, 3, 5, 5);
        assert!(matches!(
            Conv2d::new(&ctx, too_big_kernel, &x, &x, None, &y).await,
            Err(GpuError::Validation { .. })
        ));
        let p = PoolShape::new(2, 3, 7, 7, 2, 2);
        let small = ctx.zeros("small", p.len_y() - 1).unwrap();
        assert!(matches!(
            Pool::avg(&ctx, p, &x, &small).await,
            Err(GpuError::Validation { .. })
        ));
    }
);

// ---------------------------------------------------------------- pooling

async fn check_pool(s: PoolShape, seed: u64) {
    let ctx = context().await;
    let mut rng = Rng::new(seed);
    let (x, dy) = (rng.vec(s.len_x()), rng.vec(s.len_y()));
    let (lx, ly) = (s.len_x(), s.len_y());
    let gx = ctx.storage("x", &x).unwrap();
    let gdy = ctx.storage("dy", &dy).unwrap();
    let (gy, garg, gdx) = (
        ctx.zeros("y", ly).unwrap(),
        ctx.zeros("argmax", ly).unwrap(),
        ctx.zeros("dx", lx).unwrap(),
    );

    // Max pooling: exact.
    let fwd = Pool::max(&ctx, s, &gx, &gy, &garg).await.unwrap();
    let bwd = Pool::max_backward(&ctx, s, &garg, &gdy, &gdx)
        .await
        .unwrap();
    run(&ctx, &[fwd.dispatch.clone(), bwd.dispatch.clone()]);
    let (mut y, mut arg, mut dx) = (vec![0.0; ly], vec![0u32; ly], vec![0.0; lx]);
    max_pool_cpu(&s, &x, &mut y, &mut arg);
    max_pool_backward_cpu(&s, &arg, &dy, &mut dx);
    assert_close(
        &format!("max pool {s:?}"),
        &read(&ctx, &gy, ly).await,
        &y,
        |_| 0.0,
    );
    let mut gpu_arg: Vec<u32> = ctx.read(&garg).await.unwrap();
    gpu_arg.truncate(ly);
    assert_eq!(gpu_arg, arg, "max pool argmax {s:?}");
    let gpu_dx = read(&ctx, &gdx, lx).await;
    assert_close(&format!("max pool backward {s:?}"), &gpu_dx, &dx, |_| 0.0);

    // Average pooling.
    let fwd = Pool::avg(&ctx, s, &gx, &gy).await.unwrap();
    let bwd = Pool::avg_backward(&ctx, s, &gdy, &gdx).await.unwrap();
    run(&ctx, &[fwd.dispatch.clone(), bwd.dispatch.clone()]);
    avg_pool_cpu(&s, &x, &mut y);
    avg_pool_backward_cpu(&s, &dy, &mut dx);
    let (mut my, mut mdx) = (vec![0.0; ly], vec![0.0; lx]);
    avg_pool_cpu(&s, &abs(&x), &mut my);
    avg_pool_backward_cpu(&s, &abs(&dy), &mut mdx);
    let per_pixel = s.kh.div_ceil(s.sh) * s.kw.div_ceil(s.sw);
    let gpu_y = read(&ctx, &gy, ly).await;
    check(&format!("avg pool {s:?}"), &gpu_y, &y, &my, s.kh * s.kw);
    let gpu_dx = read(&ctx, &gdx, lx).await;
    check(
        &format!("avg pool backward {s:?}"),
        &gpu_dx,
        &dx,
        &mdx,
        per_pixel,
    );
}

gpu_test!(
    async fn max_and_avg_pool_2x2_stride2_match_cpu() {
        check_pool(PoolShape::new(1, 3, 7, 7, 2, 2), 20).await;
        check_pool(PoolShape::new(3, 3, 8, 9, 2, 2), 21).await;
    }
);

gpu_test!(
    async fn max_and_avg_pool_overlapping_windows_match_cpu() {
        check_pool(PoolShape::new(3, 3, 9, 9, 3, 2), 22).await;
        check_pool(PoolShape::new(1, 3, 7, 7, 3, 1), 23).await;
        let mut s = PoolShape::new(3, 3, 9, 7, 3, 2);
        (s.kw, s.sh) = (2, 1);
        check_pool(s, 24).await;
    }
);

gpu_test!(
    async fn global_avg_pool_matches_cpu() {
        // Max over the whole image too (global max pooling comes for free).
        check_pool(PoolShape::global(3, 3, 7, 9), 25).await;
        check_pool(PoolShape::global(1, 5, 1, 1), 26).await;
        check_pool(PoolShape::global(2, 3, 17, 17), 27).await;
    }
);

gpu_test!(
    async fn direct_refuses_weights_it_cannot_stage() {
        // 64·5·5 weight terms: more than the direct kernels stage in workgroup memory.
        let ctx = context().await;
        let s = Conv2dShape::new(1, 64, 8, 8, 16, 5);
        let x = ctx.zeros("x", s.len_x()).unwrap();
        let w = ctx.zeros("w", s.len_w()).unwrap();
        let y = ctx.zeros("y", s.len_y()).unwrap();
        let direct = Conv2d::with_method(&ctx, ConvMethod::Direct, s, &x, &w, None, &y).await;
        match direct {
            Err(GpuError::Validation { message, .. }) => {
                assert!(message.contains("im2col"), "{message}")
            }
            Err(e) => panic!("expected a validation error, got {e}"),
            Ok(_) => panic!("the direct convolution accepted weights it cannot stage"),
        }
        let im2col = Conv2d::with_method(&ctx, ConvMethod::Im2col, s, &x, &w, None, &y).await;
        assert!(im2col.is_ok());
    }
);

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn few_channels_go_direct_many_through_im2col() {
    let lenet_conv1 = Conv2dShape::new(128, 1, 28, 28, 6, 5).padding(2, 2);
    let lenet_conv2 = Conv2dShape::new(128, 6, 14, 14, 16, 5);
    let wide = Conv2dShape::new(128, 16, 16, 16, 32, 3).padding(1, 1);
    let deep_input = Conv2dShape::new(8, 64, 8, 8, 16, 5);
    assert_eq!(ConvMethod::for_shape(&lenet_conv1), ConvMethod::Direct);
    assert_eq!(ConvMethod::for_shape(&lenet_conv2), ConvMethod::Direct);
    assert_eq!(ConvMethod::for_shape(&wide), ConvMethod::Im2col);
    // 64·5·5 weight terms do not fit the direct kernels' workgroup memory.
    assert_eq!(ConvMethod::for_shape(&deep_input), ConvMethod::Im2col);
}

// ---------------------------------------------------------------- finite differences

#[cfg(not(target_arch = "wasm32"))]
mod finite_differences {
    use super::*;
    use varlab::ops::conv::col2im_cpu;
    use varlab::ops::gradcheck::check;

    const EPS: f32 = 0.05;
    const TOL: f64 = 1e-2;
    const ATOL: f64 = 1e-3;

    #[test]
    fn linear_backward_matches_finite_differences() {
        for (s, seed) in [
            (LinearShape::new(7, 33, 17), 30u64),
            (LinearShape::new(1, 33, 17), 31),
        ] {
            let mut rng = Rng::new(seed);
            let (x, w, b, dy) = (
                rng.vec(s.len_x()),
                rng.vec(s.len_w()),
                rng.vec(s.out_features),
                rng.vec(s.len_y()),
            );
            let (mut dx, mut dw, mut db) = (
                vec![0.0; s.len_x()],
                vec![0.0; s.len_w()],
                vec![0.0; s.out_features],
            );
            linear_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
            let forward = |x: &[f32], w: &[f32], b: &[f32]| {
                let mut y = vec![0.0; s.len_y()];
                linear_cpu(&s, x, w, Some(b), &mut y);
                y
            };
            check(
                "linear dx",
                &x,
                &dy,
                &dx,
                |v| forward(v, &w, &b),
                EPS,
                TOL,
                ATOL,
            );
            check(
                "linear dw",
                &w,
                &dy,
                &dw,
                |v| forward(&x, v, &b),
                EPS,
                TOL,
                ATOL,
            );
            check(
                "linear db",
                &b,
                &dy,
                &db,
                |v| forward(&x, &w, v),
                EPS,
                TOL,
                ATOL,
            );
        }
    }

    #[test]
    fn bias_add_backward_is_channel_sum() {
        // [rows, cols] (inner = 1, as attention and the ViT use it) and a conv layout.
        for (seed, (outer, channels, inner)) in [(7usize, 6usize, 1usize), (2, 3, 5)]
            .into_iter()
            .enumerate()
        {
            let mut rng = Rng::new(600 + seed as u64);
            let len = outer * channels * inner;
            let y = rng.vec(len);
            let b = rng.vec(channels);
            let r = rng.vec(len);
            let fwd = |b: &[f32]| {
                let mut out = y.clone();
                bias_add_cpu(outer, channels, inner, b, &mut out);
                out
            };
            let mut db = vec![0.0; channels];
            channel_sum_cpu(outer, channels, inner, &r, &mut db);
            check("bias", &b, &r, &db, fwd, EPS, TOL, ATOL);
        }
    }

    #[test]
    fn conv_backward_matches_finite_differences() {
        for (s, seed) in [
            (Conv2dShape::new(1, 3, 7, 7, 5, 3).padding(1, 1), 40u64),
            (
                Conv2dShape::new(3, 3, 9, 9, 5, 5)
                    .stride(2, 2)
                    .padding(2, 2),
                41,
            ),
            (
                Conv2dShape::new(2, 3, 9, 7, 5, 3)
                    .kernel(3, 5)
                    .stride(2, 1)
                    .padding(0, 2),
                42,
            ),
        ] {
            let mut rng = Rng::new(seed);
            let (x, w, b, dy) = (
                rng.vec(s.len_x()),
                rng.vec(s.len_w()),
                rng.vec(s.cout),
                rng.vec(s.len_y()),
            );
            let (mut dx, mut dw, mut db) = (
                vec![0.0; s.len_x()],
                vec![0.0; s.len_w()],
                vec![0.0; s.cout],
            );
            conv2d_backward_cpu(&s, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
            let forward = |x: &[f32], w: &[f32], b: &[f32]| {
                let mut y = vec![0.0; s.len_y()];
                conv2d_cpu(&s, x, w, Some(b), &mut y);
                y
            };
            check(
                "conv dx",
                &x,
                &dy,
                &dx,
                |v| forward(v, &w, &b),
                EPS,
                TOL,
                ATOL,
            );
            check(
                "conv dw",
                &w,
                &dy,
                &dw,
                |v| forward(&x, v, &b),
                EPS,
                TOL,
                ATOL,
            );
            check(
                "conv db",
                &b,
                &dy,
                &db,
                |v| forward(&x, &w, v),
                EPS,
                TOL,
                ATOL,
            );
        }
    }

    /// The two CPU layout twins are adjoint: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩; and the conv
    /// forward equals W·im2col(x) per batch item.
    #[test]
    fn im2col_and_col2im_are_adjoint_and_give_the_convolution() {
        let s = Conv2dShape::new(2, 3, 9, 7, 5, 3)
            .kernel(3, 5)
            .stride(2, 1)
            .padding(1, 2);
        let mut rng = Rng::new(50);
        let (x, c, w) = (
            rng.vec(s.len_x()),
            rng.vec(s.len_cols()),
            rng.vec(s.len_w()),
        );
        let (mut cols, mut back) = (vec![0.0; s.len_cols()], vec![0.0; s.len_x()]);
        im2col_cpu(&s, &x, &mut cols);
        col2im_cpu(&s, &c, &mut back);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum()
        };
        let (lhs, rhs) = (dot(&cols, &c), dot(&x, &back));
        assert!(
            (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
            "{lhs} vs {rhs}"
        );
        let mut y = vec![0.0; s.len_y()];
        conv2d_cpu(&s, &x, &w, None, &mut y);
        let mut via_cols = vec![0.0; s.len_y()];
        varlab::ops::matmul::matmul_cpu(&s.forward_product(), &w, &cols, 1.0, 0.0, &mut via_cols);
        for (a, b) in y.iter().zip(&via_cols) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    /// Distinct values (a shuffled ramp with spacing 0.05), so a step of 1e-2 never
    /// changes which input of a window is the maximum.
    fn ramp(n: usize, seed: u64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|i| 0.05 * i as f32 - 0.025 * n as f32).collect();
        let mut rng = Rng::new(seed);
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }

    #[test]
    fn pool_backwards_match_finite_differences() {
        let mut odd = PoolShape::new(3, 3, 9, 7, 3, 2);
        (odd.kw, odd.sh) = (2, 1);
        for (s, seed) in [
            (PoolShape::new(1, 3, 7, 7, 2, 2), 60u64),
            (PoolShape::new(3, 3, 9, 9, 3, 2), 61),
            (PoolShape::new(1, 3, 7, 7, 3, 1), 62),
            (odd, 63),
            (PoolShape::global(3, 3, 7, 9), 64),
        ] {
            let (lx, ly) = (s.len_x(), s.len_y());
            let dy = Rng::new(seed).vec(ly);

            let x = ramp(lx, seed + 100);
            let (mut y, mut arg, mut dx) = (vec![0.0; ly], vec![0u32; ly], vec![0.0; lx]);
            max_pool_cpu(&s, &x, &mut y, &mut arg);
            max_pool_backward_cpu(&s, &arg, &dy, &mut dx);
            let max = |v: &[f32]| {
                let (mut y, mut arg) = (vec![0.0; ly], vec![0u32; ly]);
                max_pool_cpu(&s, v, &mut y, &mut arg);
                y
            };
            check(
                &format!("max pool {s:?}"),
                &x,
                &dy,
                &dx,
                max,
                1e-2,
                TOL,
                ATOL,
            );

            let x = Rng::new(seed + 200).vec(lx);
            avg_pool_backward_cpu(&s, &dy, &mut dx);
            let avg = |v: &[f32]| {
                let mut y = vec![0.0; ly];
                avg_pool_cpu(&s, v, &mut y);
                y
            };
            check(
                &format!("avg pool {s:?}"),
                &x,
                &dy,
                &dx,
                avg,
                EPS,
                TOL,
                ATOL,
            );
        }
    }
}
