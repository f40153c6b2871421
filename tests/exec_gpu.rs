//! The GPU executor ([`varlab::exec::GpuExecutor`]) against the CPU executor, and the batch
//! gather against its CPU twin.
//!
//! Tolerances. Both executors run the same f32 math in different summation orders (tiled
//! GPU products and tree reductions against sequential loops), so each tensor is compared
//! against its own scale: `|gpu − cpu| ≤ REL · max|cpu| + ABS` per element, with
//! `REL = 2e-4` and `ABS = 1e-6` for logits, gradients, BatchNorm state and weights after
//! three SGD steps (on lavapipe the largest error seen is 1.6e-5 of the scale, in ResNet-20's
//! deepest convolution gradients; most tensors are below 5e-6). Losses agree to a
//! relative 1e-4; correct counts and rows counted exactly. The gather's normalised pixels
//! agree to 1e-6 relative (a fused multiply-add may round once instead of twice); its labels
//! exactly.
//!
//! Shapes are tiny so the tests run quickly on a software adapter: every preset is built at
//! a small input size (MLP, ResNet-8, ResNet-20 and ViT-tiny at 8×8, LeNet-5 at 16×16 — its
//! smallest size; ResNet-18 at width 4 on 16×16) with batches of 2–5.

mod common;

use common::context;
use varlab::data::augment::Crop;
use varlab::data::Dataset;
use varlab::exec::{CpuExecutor, DeviceDataset, GpuExecutor};
use varlab::gpu::{Context, Dispatch};
use varlab::nn::{self, Model};
use varlab::ops::data::{
    gather_cpu, images_per_binding, norm_coefficients, pack_chunks, pack_crop, Gather,
};
use varlab::ops::loss::softmax_cross_entropy_cpu;
use varlab::optim::sgd_step;
use varlab::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const CLASSES: usize = 10;
const REL: f32 = 2e-4;
const ABS: f32 = 1e-6;

/// `|gpu − cpu| ≤ REL·max|cpu| + ABS` over the tensor.
fn close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = REL * scale + ABS;
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= tol,
            "{what}: element {i}: gpu {g} vs cpu {c} (tolerance {tol})"
        );
    }
}

/// Every parameter tensor of `model` compared on its own scale.
fn close_params(model: &Model, what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    for p in &model.params().entries {
        let r = p.range();
        close(&format!("{what} {}", p.name), &gpu[r.clone()], &cpu[r]);
    }
}

fn close_loss(what: &str, gpu: f32, cpu: f32) {
    assert!(
        (gpu - cpu).abs() <= 1e-4 * cpu.abs().max(1e-3),
        "{what}: gpu {gpu} vs cpu {cpu}"
    );
}

fn batch(model: &Model, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let len = n * model.input.iter().product::<usize>();
    let images = (0..len).map(|_| rng.normal()).collect();
    let labels = (0..n)
        .map(|_| (rng.next_u64() % CLASSES as u64) as u32)
        .collect();
    (images, labels)
}

async fn run(ctx: &Context, list: &[&Dispatch]) {
    ctx.submit(list).unwrap();
}

/// Forward, loss, correct count and gradients in training and in eval mode, and the
/// BatchNorm state, of the GPU executor against the CPU executor, from the same
/// initialisation.
async fn matches_cpu(model: Model, n: usize, seed: u64) {
    let ctx = context().await;
    let (params, state0) = model.init_params(seed);
    let (images, labels) = batch(&model, n, seed + 1);
    let gpu = GpuExecutor::new(&ctx, &model, n).await.unwrap();
    gpu.write_params(&ctx, &params).unwrap();
    gpu.write_state(&ctx, &state0).unwrap();
    gpu.write_batch(&ctx, &images, &labels).unwrap();
    let mut list = vec![gpu.reset_metrics()];
    list.extend(gpu.forward_backward(true));
    run(&ctx, &list).await;
    let logits = gpu.read_slot(&ctx, model.last_slot()).await.unwrap();
    let metrics = gpu.read_metrics(&ctx).await.unwrap();
    let grads = gpu.read_grads(&ctx).await.unwrap();
    let state = gpu.read_state(&ctx).await.unwrap();

    let mut cpu = CpuExecutor::new(&model, n).unwrap();
    let mut cpu_state = state0.clone();
    let cpu_logits = cpu.forward(&params, &mut cpu_state, &images, true).to_vec();
    let mut cpu_grads = vec![0.0; params.len()];
    let (loss, correct) = cpu.loss_and_backward(&params, &labels, &mut cpu_grads);
    let name = &model.name;
    close(&format!("{name} train logits"), &logits, &cpu_logits);
    close_loss(
        &format!("{name} train loss"),
        metrics.loss_sum / n as f32,
        loss,
    );
    assert_eq!(metrics.correct, correct, "{name} train correct");
    assert_eq!(metrics.rows, n, "{name} rows");
    close_params(&model, &format!("{name} gradient"), &grads, &cpu_grads);
    close(&format!("{name} state"), &state, &cpu_state);

    // Eval mode with the updated running statistics.
    let mut list = vec![gpu.reset_metrics()];
    list.extend(gpu.forward_eval());
    run(&ctx, &list).await;
    let logits = gpu.read_slot(&ctx, model.last_slot()).await.unwrap();
    let metrics = gpu.read_metrics(&ctx).await.unwrap();
    let cpu_logits = cpu
        .forward(&params, &mut cpu_state, &images, false)
        .to_vec();
    let mut scratch = vec![0.0; cpu_logits.len()];
    let xent = softmax_cross_entropy_cpu(n, CLASSES, &cpu_logits, &labels, &mut scratch);
    close(&format!("{name} eval logits"), &logits, &cpu_logits);
    close_loss(
        &format!("{name} eval loss"),
        metrics.loss_sum,
        xent.loss_sum,
    );
    assert_eq!(
        metrics.correct, xent.correct as usize,
        "{name} eval correct"
    );
    let state_after = gpu.read_state(&ctx).await.unwrap();
    assert_eq!(state_after, state, "{name}: an eval pass changed the state");

    // The backward of the eval-mode forward.
    run(&ctx, &gpu.forward_backward_eval()).await;
    let grads = gpu.read_grads(&ctx).await.unwrap();
    cpu.loss_and_backward(&params, &labels, &mut cpu_grads);
    close_params(&model, &format!("{name} eval gradient"), &grads, &cpu_grads);
    assert_eq!(
        gpu.read_state(&ctx).await.unwrap(),
        state,
        "{name}: state changed"
    );
}

gpu_test!(
    async fn mlp_matches_cpu() {
        matches_cpu(Model::by_name("mlp", [1, 8, 8], CLASSES).unwrap(), 4, 1).await;
    }
);

gpu_test!(
    async fn lenet5_matches_cpu() {
        matches_cpu(
            Model::by_name("lenet5", [1, 16, 16], CLASSES).unwrap(),
            3,
            2,
        )
        .await;
    }
);

gpu_test!(
    async fn cnn_matches_cpu() {
        matches_cpu(Model::by_name("cnn", [3, 8, 8], CLASSES).unwrap(), 3, 6).await;
    }
);

gpu_test!(
    async fn kaiming_lenet5_matches_cpu() {
        let model = Model::by_name("lenet5", [1, 16, 16], CLASSES)
            .unwrap()
            .with_init(varlab::nn::Init::KaimingNormal);
        matches_cpu(model, 2, 7).await;
    }
);

gpu_test!(
    async fn resnet8_matches_cpu() {
        matches_cpu(Model::by_name("resnet8", [3, 8, 8], CLASSES).unwrap(), 3, 3).await;
    }
);

gpu_test!(
    async fn resnet20_matches_cpu() {
        matches_cpu(
            Model::by_name("resnet20", [3, 8, 8], CLASSES).unwrap(),
            2,
            4,
        )
        .await;
    }
);

gpu_test!(
    async fn vit_tiny_matches_cpu() {
        matches_cpu(
            Model::by_name("vit-tiny", [3, 8, 8], CLASSES).unwrap(),
            2,
            5,
        )
        .await;
    }
);

/// Three SGD steps (momentum 0.9, weight decay 5e-4) on both executors, the GPU's gradients
/// applied on the CPU: losses and weights agree after every step.
async fn three_steps(model: Model, n: usize, seed: u64) {
    let ctx = context().await;
    let (params0, state0) = model.init_params(seed);
    let gpu = GpuExecutor::new(&ctx, &model, n).await.unwrap();
    gpu.write_state(&ctx, &state0).unwrap();
    let mut cpu = CpuExecutor::new(&model, n).unwrap();
    let (mut gp, mut cp) = (params0.clone(), params0);
    let (mut gv, mut cv) = (vec![0.0; gp.len()], vec![0.0; cp.len()]);
    let mut cpu_state = state0;
    let mut cpu_grads = vec![0.0; cp.len()];
    for step in 0..3 {
        let (images, labels) = batch(&model, n, seed + 10 + step);
        gpu.write_params(&ctx, &gp).unwrap();
        gpu.write_batch(&ctx, &images, &labels).unwrap();
        let mut list = vec![gpu.reset_metrics()];
        list.extend(gpu.forward_backward(true));
        run(&ctx, &list).await;
        let grads = gpu.read_grads(&ctx).await.unwrap();
        let loss = gpu.read_metrics(&ctx).await.unwrap().loss_sum / n as f32;
        sgd_step(&mut gp, &grads, &mut gv, 0.05, 0.9, 5e-4, false);

        cpu.forward(&cp, &mut cpu_state, &images, true);
        let (cpu_loss, _) = cpu.loss_and_backward(&cp, &labels, &mut cpu_grads);
        sgd_step(&mut cp, &cpu_grads, &mut cv, 0.05, 0.9, 5e-4, false);
        close_loss(
            &format!("{} loss at step {step}", model.name),
            loss,
            cpu_loss,
        );
    }
    close_params(
        &model,
        &format!("{} weights after 3 steps", model.name),
        &gp,
        &cp,
    );
    let state = gpu.read_state(&ctx).await.unwrap();
    close(
        &format!("{} state after 3 steps", model.name),
        &state,
        &cpu_state,
    );
}

gpu_test!(
    async fn three_sgd_steps_match_cpu_lenet5() {
        three_steps(
            Model::by_name("lenet5", [1, 16, 16], CLASSES).unwrap(),
            4,
            20,
        )
        .await;
    }
);

gpu_test!(
    async fn resnet18_matches_cpu() {
        // ResNet-18's graph at width 4 (4-8-16-32) on 16×16 images (16 → 16 → 8 → 4 → 2:
        // on 8×8 the last stage's BatchNorm sees 1 pixel of 2 images and the gradients
        // reach ±66, ill-conditioned for any comparison).
        matches_cpu(nn::resnet18_width(4, [3, 16, 16], CLASSES).unwrap(), 2, 5).await;
    }
);

gpu_test!(
    async fn three_sgd_steps_match_cpu_resnet18() {
        three_steps(nn::resnet18_width(4, [3, 16, 16], CLASSES).unwrap(), 4, 24).await;
    }
);

gpu_test!(
    async fn a_batch_beyond_the_buffer_limits_is_refused_before_allocating() {
        let ctx = context().await;
        let model = Model::by_name("mlp", [1, 28, 28], CLASSES).unwrap();
        let l = &ctx.report.limits;
        let allowed = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        // The MLP's largest buffer is an input-sized slot: 784 floats per image.
        let fits = (allowed / (4 * 784)) as usize;
        let err = GpuExecutor::new(&ctx, &model, fits + 1)
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.contains("at batch"), "{text}");
        assert!(
            text.contains(&format!("use a batch of at most {fits}")),
            "{text}"
        );
    }
);

gpu_test!(
    async fn three_sgd_steps_match_cpu_cnn() {
        three_steps(Model::by_name("cnn", [3, 8, 8], CLASSES).unwrap(), 3, 23).await;
    }
);

gpu_test!(
    async fn three_sgd_steps_match_cpu_resnet8() {
        three_steps(
            Model::by_name("resnet8", [3, 8, 8], CLASSES).unwrap(),
            3,
            21,
        )
        .await;
    }
);

gpu_test!(
    async fn three_sgd_steps_match_cpu_vit_tiny() {
        three_steps(
            Model::by_name("vit-tiny", [3, 8, 8], CLASSES).unwrap(),
            2,
            22,
        )
        .await;
    }
);

gpu_test!(
    async fn a_frozen_pass_uses_batch_statistics_and_leaves_the_state() {
        let ctx = context().await;
        let model = Model::by_name("resnet8", [3, 8, 8], CLASSES).unwrap();
        let n = 3;
        let (params, state0) = model.init_params(7);
        let (images, labels) = batch(&model, n, 8);
        let gpu = GpuExecutor::new(&ctx, &model, n).await.unwrap();
        gpu.write_params(&ctx, &params).unwrap();
        gpu.write_state(&ctx, &state0).unwrap();
        gpu.write_batch(&ctx, &images, &labels).unwrap();
        let mut list = vec![gpu.reset_metrics()];
        list.extend(gpu.forward_backward(false));
        run(&ctx, &list).await;
        let frozen_grads = gpu.read_grads(&ctx).await.unwrap();
        assert_eq!(gpu.read_state(&ctx).await.unwrap(), state0, "state changed");
        let m = gpu.read_metrics(&ctx).await.unwrap();
        assert_eq!(
            (m.loss_sum, m.correct, m.rows),
            (0.0, 0, 0),
            "metrics changed"
        );

        run(&ctx, &gpu.forward_backward(true)).await;
        let grads = gpu.read_grads(&ctx).await.unwrap();
        assert_eq!(
            frozen_grads, grads,
            "the frozen pass must use the batch statistics"
        );
        let state = gpu.read_state(&ctx).await.unwrap();
        assert_ne!(state, state0, "an updating pass leaves the state");
        let tracked: Vec<f32> = model
            .state()
            .entries
            .iter()
            .filter(|s| s.kind == varlab::nn::StateKind::NumBatchesTracked)
            .map(|s| state[s.offset])
            .collect();
        assert!(
            !tracked.is_empty() && tracked.iter().all(|&t| t == 1.0),
            "{tracked:?}"
        );

        // The forward alone (re-calibration) updates the state the same way.
        gpu.write_state(&ctx, &state0).unwrap();
        run(&ctx, &gpu.recalibration_pass()).await;
        assert_eq!(gpu.read_state(&ctx).await.unwrap(), state);
        assert_eq!(
            gpu.read_grads(&ctx).await.unwrap(),
            grads,
            "no backward ran"
        );
    }
);

/// A dataset of `len` random u8 images of `[c, h, w]`.
fn dataset(len: usize, [c, h, w]: [usize; 3], seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let images = (0..len * c * h * w).map(|_| rng.next_u64() as u8).collect();
    let labels = (0..len)
        .map(|_| (rng.next_u64() % CLASSES as u64) as u8)
        .collect();
    Dataset::new("random", images, labels, [c, h, w], CLASSES).unwrap()
}

const MEAN: [f32; 3] = [0.49, 0.48, 0.45];
const STD: [f32; 3] = [0.25, 0.24, 0.26];

/// Every batch of `n` of a gather over `data` in a shuffled order, with and without crops,
/// against the CPU twin.
async fn check_gather(ctx: &Context, data: &Dataset, dev: &DeviceDataset, n: usize) {
    let [c, h, w] = dev.image;
    let norm = norm_coefficients(c, &MEAN, &STD).unwrap();
    let mut rng = Rng::new(31);
    let mut order: Vec<u32> = (0..data.len() as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let pad = 2;
    let crops: Vec<u32> = (0..order.len())
        .map(|_| pack_crop(&Crop::random(pad, &mut rng)))
        .collect();
    let gorder = ctx.storage("order", &order).unwrap();
    let gcrops = ctx.storage("crops", &crops).unwrap();
    let x = ctx.zeros("x", n * c * h * w).unwrap();
    let y = ctx.zeros("y", n).unwrap();
    let gather = Gather::new(ctx, dev, n, &gorder, &gcrops, &x, &y)
        .await
        .unwrap();
    for augment in [None, Some(pad)] {
        for step in 0..order.len().div_ceil(n) {
            gather.set(ctx, step * n, order.len(), augment);
            ctx.submit(&gather.dispatches().collect::<Vec<_>>())
                .unwrap();
            let gx: Vec<f32> = ctx.read(&x).await.unwrap();
            let gy: Vec<u32> = ctx.read(&y).await.unwrap();
            let with = augment.map(|p| (&crops[..], p));
            let (cx, cy) = gather_cpu(data, &norm, &order, with, step * n, n);
            assert_eq!(gy, cy, "labels, step {step}, augment {augment:?}");
            for (i, (g, c)) in gx.iter().zip(&cx).enumerate() {
                assert!(
                    (g - c).abs() <= 1e-6 * c.abs().max(1.0),
                    "pixel {i}, step {step}, augment {augment:?}: gpu {g} vs cpu {c}"
                );
            }
        }
    }
}

gpu_test!(
    async fn gather_matches_its_cpu_twin() {
        let ctx = context().await;
        // Odd sizes, 7 images, batches of 3: the third batch has 1 image and 2 padding rows.
        let shape = [3, 5, 7];
        let data = dataset(7, shape, 30);
        let dev = DeviceDataset::new(&ctx, &data, &MEAN, &STD).unwrap();
        assert_eq!(dev.pixels.len(), 1, "7 small images fit one binding");
        check_gather(&ctx, &data, &dev, 3).await;
        let norm = norm_coefficients(3, &MEAN, &STD).unwrap();
        let order: Vec<u32> = vec![4, 0, 6, 2, 5, 1, 3];
        // The twin without augmentation is Dataset::normalized, image by image.
        let (cx, _) = gather_cpu(&data, &norm, &order, None, 0, 3);
        let all = data.normalized(&MEAN, &STD);
        assert_eq!(&cx[105..210], &all[0..105]);
        // Crop::apply is the augmentation: an identity crop changes nothing.
        let identity = vec![pack_crop(&Crop::identity(2)); 7];
        let (ax, _) = gather_cpu(&data, &norm, &order, Some((&identity, 2)), 0, 3);
        assert_eq!(ax, cx);
    }
);

gpu_test!(
    async fn gather_reads_a_dataset_split_over_capped_bindings() {
        // Images of 105 bytes (not a multiple of 4) under a 1200-byte binding: 11 per chunk
        // (1155 bytes, the last word padded), 37 images in chunks of 11, 11, 11 and 4;
        // batches of 2 straddle the chunks, the last one is partial.
        let mut ctx = context().await;
        ctx.cap_storage_binding(1200);
        assert_eq!(ctx.report.limits.max_storage_buffer_binding_size, 1200);
        let data = dataset(37, [3, 5, 7], 32);
        let dev = DeviceDataset::new(&ctx, &data, &MEAN, &STD).unwrap();
        assert_eq!((dev.pixels.len(), dev.per_chunk), (4, 11));
        assert_eq!(dev.pixels[0].size(), 1156);
        check_gather(&ctx, &data, &dev, 2).await;
        // An image larger than one binding is refused with a sentence naming the limit.
        ctx.cap_storage_binding(104);
        let err = DeviceDataset::new(&ctx, &data, &MEAN, &STD).unwrap_err();
        assert!(
            err.to_string().contains("max_storage_buffer_binding_size"),
            "{err}"
        );
    }
);

#[test]
fn chunks_hold_whole_images_packed_from_their_first_byte() {
    assert_eq!(images_per_binding(105, 1200), 11);
    assert_eq!(
        images_per_binding(105, 1155),
        10,
        "11 images need 1156 bytes"
    );
    assert_eq!(images_per_binding(105, 104), 0);
    assert_eq!(images_per_binding(3072, 128 << 20), 43690);
    assert_eq!(images_per_binding(1, u64::MAX), u32::MAX as usize / 4 * 4);
    // 5 images of 3 bytes, 2 per chunk: bytes 0–5, 6–11, 12–14, each from its own word.
    let bytes: Vec<u8> = (1..=15).collect();
    let chunks = pack_chunks(&bytes, 3, 2);
    assert_eq!(
        chunks,
        [
            vec![0x04030201, 0x0605],
            vec![0x0a090807, 0x0c0b],
            vec![0x0f0e0d]
        ]
    );
}

gpu_test!(
    async fn evaluation_over_a_partial_last_batch_matches_cpu() {
        let ctx = context().await;
        let shape = [3, 8, 8];
        let model = Model::by_name("resnet8", shape, CLASSES).unwrap();
        let (train, test) = (dataset(5, shape, 40), dataset(7, shape, 41));
        let (params, mut state) = model.init_params(42);
        // Non-trivial running statistics.
        for s in &model.state().entries {
            if s.kind == varlab::nn::StateKind::RunningVar {
                state[s.range()].iter_mut().for_each(|v| *v = 1.5);
            }
        }
        let n = 3;
        let mut gpu = GpuExecutor::new(&ctx, &model, n).await.unwrap();
        let dev = |d: &Dataset| DeviceDataset::new(&ctx, d, &MEAN, &STD).unwrap();
        gpu.attach(&ctx, &dev(&train), &dev(&test)).await.unwrap();
        gpu.write_params(&ctx, &params).unwrap();
        gpu.write_state(&ctx, &state).unwrap();
        assert_eq!(gpu.eval_batches(), 3);
        ctx.submit(&[gpu.reset_metrics()]).unwrap();
        for b in 0..gpu.eval_batches() {
            gpu.set_eval_batch(&ctx, b).unwrap();
            ctx.submit(&gpu.eval_pass()).unwrap();
        }
        let m = gpu.read_metrics(&ctx).await.unwrap();

        // The CPU executor over the same 7 images: batches of 3, 3 and 1.
        let images = test.normalized(&MEAN, &STD);
        let per = 3 * 8 * 8;
        let (mut loss_sum, mut correct) = (0.0f32, 0usize);
        for (start, len) in [(0, 3), (3, 3), (6, 1)] {
            let mut cpu = CpuExecutor::new(&model, len).unwrap();
            let x = &images[start * per..(start + len) * per];
            let logits = cpu.forward(&params, &mut state, x, false).to_vec();
            let labels: Vec<u32> = test.labels[start..start + len]
                .iter()
                .map(|&l| l as u32)
                .collect();
            let mut scratch = vec![0.0; logits.len()];
            let xent = softmax_cross_entropy_cpu(len, CLASSES, &logits, &labels, &mut scratch);
            loss_sum += xent.loss_sum;
            correct += xent.correct as usize;
        }
        assert_eq!(m.rows, 7, "rows counted");
        assert_eq!(m.correct, correct, "correct count");
        close_loss("loss sum over the test set", m.loss_sum, loss_sum);
    }
);

gpu_test!(
    async fn training_batches_come_from_the_epoch_order() {
        let ctx = context().await;
        let shape = [3, 8, 8];
        let model = Model::by_name("mlp", shape, CLASSES).unwrap();
        let (train, test) = (dataset(5, shape, 50), dataset(2, shape, 51));
        let n = 2;
        let mut gpu = GpuExecutor::new(&ctx, &model, n).await.unwrap();
        let dev = |d: &Dataset| DeviceDataset::new(&ctx, d, &MEAN, &STD).unwrap();
        gpu.attach(&ctx, &dev(&train), &dev(&test)).await.unwrap();
        let order = [3u32, 1, 4, 0, 2];
        let mut rng = Rng::new(52);
        let crops: Vec<u32> = (0..5)
            .map(|_| pack_crop(&Crop::random(4, &mut rng)))
            .collect();
        gpu.set_epoch_order(&ctx, &order, Some((&crops, 4)))
            .unwrap();
        let norm = norm_coefficients(3, &MEAN, &STD).unwrap();
        for step in 0..3 {
            gpu.set_train_batch(&ctx, step).unwrap();
            ctx.submit(&gpu.train_pass(true)).unwrap();
            let x = gpu.read_slot(&ctx, 0).await.unwrap();
            let y = gpu.read_labels(&ctx).await.unwrap();
            let (cx, cy) = gather_cpu(&train, &norm, &order, Some((&crops, 4)), step * n, n);
            assert_eq!(y, cy, "labels of step {step}");
            for (g, c) in x.iter().zip(&cx) {
                assert!(
                    (g - c).abs() <= 1e-6 * c.abs().max(1.0),
                    "step {step}: {g} vs {c}"
                );
            }
        }
        let m = gpu.read_metrics(&ctx).await.unwrap();
        assert_eq!(
            m.rows, 5,
            "the padding row of the last batch is not counted"
        );
        // Bad orders are refused with a sentence.
        assert!(gpu.set_epoch_order(&ctx, &[5], None).is_err());
        assert!(gpu.set_epoch_order(&ctx, &[], None).is_err());
        assert!(gpu
            .set_epoch_order(&ctx, &[0, 1], Some((&[0x0009, 0], 4)))
            .is_err());
    }
);

// CIFAR-format training (generated records) with the storage binding capped below the
// training set's pixels, so that they are split over several bindings, gives bit for bit
// the losses, accuracies and weights of the uncapped run (natively on lavapipe and in
// Chromium). The cap also bounds every other buffer, so it sits above the largest of
// LeNet-5's at batch 16 (conv1's output, 301 KB). Both runs share one context (and so its
// compiled pipelines): the cap is set between them.
gpu_test!(
    async fn training_over_capped_bindings_equals_uncapped() {
        use varlab::data::{cifar::cifar_from_records, Split};
        use varlab::experiment::{Config, DatasetKind, ExecutorChoice, Experiment};
        const CAP: u64 = 512 << 10;
        let split = Split {
            train: cifar_from_records("train", &common::cifar_records(200, 60)).unwrap(),
            test: cifar_from_records("test", &common::cifar_records(20, 61)).unwrap(),
        };
        assert_eq!(
            images_per_binding(3072, CAP),
            170,
            "2 chunks of training images"
        );
        let cfg = Config {
            dataset: DatasetKind::Cifar10,
            model: "lenet5".into(),
            optimizers: vec!["sgd".into()],
            train_size: 200,
            test_size: 20,
            augment: true,
            epochs: 1,
            batch: 16,
            sparsities: vec![0.5],
            executor: ExecutorChoice::Gpu,
            ..Config::default()
        };
        let mut ctx = std::rc::Rc::new(context().await);
        let mut results = Vec::new();
        for cap in [None, Some(CAP)] {
            if let Some(bytes) = cap {
                std::rc::Rc::get_mut(&mut ctx)
                    .expect("the first experiment is gone")
                    .cap_storage_binding(bytes);
            }
            let exp = Experiment::new(cfg.clone(), &split).unwrap();
            let mut exp = exp.with_gpu(ctx.clone()).unwrap();
            while !exp.is_done() {
                exp.step().await.unwrap();
            }
            results.push(exp.result());
        }
        let (whole, split_up) = (&results[0].runs[0], &results[1].runs[0]);
        assert!(!whole.curves.loss.is_empty());
        assert_eq!(whole.curves, split_up.curves, "losses and accuracies");
        assert_eq!(whole.dense_loss.to_bits(), split_up.dense_loss.to_bits());
        assert_eq!(whole.dense_accuracy, split_up.dense_accuracy);
        assert_eq!(whole.sweep, split_up.sweep);
        assert_eq!(whole.weights, split_up.weights);
    }
);
