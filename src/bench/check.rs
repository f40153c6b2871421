//! `varlab bench gpu` (`scripts/bench-gpu.sh`): the GPU check for a real device. For every
//! model at the given batches it times a training step of SGD, VAR, SAM and CrAM on the GPU
//! executor ([`super::step_gpu`]), counts the step's floating-point work, gives the achieved
//! TFLOP/s and its share of the device's peak FP32 rate (from [`PEAK_FP32`] by adapter name,
//! or given), and checks the GPU executor against the CPU executor on the same device: the
//! loss and every gradient tensor of one forward/backward on a synthetic batch.
//!
//! FLOPs count the products only (convolutions, linears, attention, patch embedding): two
//! per multiply-add. A training step counts three forwards (the forward, the input gradient
//! and the weight gradient), twice for SAM and CrAM (two passes); elementwise work, norms,
//! pooling and the optimizer's update are left out, so the figure is a lower bound of the
//! work done.

use serde::Serialize;

use crate::exec::{CpuExecutor, GpuExecutor};
use crate::gpu::{Context, GpuError, Result};
use crate::nn::{Model, Op};
use crate::optim::OptimKind;

/// Each model of the check and the input it is benchmarked on: MNIST's 1×28×28 for the
/// MLP and LeNet-5, CIFAR-10's 3×32×32 for the others (their presets' data sets).
pub const MODELS: [(&str, [usize; 3]); 6] = [
    ("mlp", [1, 28, 28]),
    ("lenet5", [1, 28, 28]),
    ("cnn", [3, 32, 32]),
    ("resnet8", [3, 32, 32]),
    ("resnet20", [3, 32, 32]),
    ("vit-tiny", [3, 32, 32]),
];

/// Peak dense FP32 (non-tensor-core) TFLOP/s from the vendors' data sheets, by a part of
/// the adapter's name; the first match counts, so more specific names come first.
pub const PEAK_FP32: &[(&str, f64)] = &[
    ("H100 PCIe", 51.2),
    ("H100 NVL", 60.0),
    ("H100", 66.9),
    ("H200", 66.9),
    ("A100", 19.5),
    ("L40S", 91.6),
    ("L4", 30.3),
    ("RTX 4090", 82.6),
    ("T4", 8.1),
];

/// The peak FP32 TFLOP/s of the adapter named `name`, if [`PEAK_FP32`] knows it.
pub fn peak_fp32_tflops(name: &str) -> Option<f64> {
    PEAK_FP32
        .iter()
        .find(|(part, _)| name.contains(part))
        .map(|&(_, peak)| peak)
}

/// Floating-point operations of one forward of `model` at `batch` images, products only.
pub fn forward_flops(model: &Model, batch: usize) -> std::result::Result<f64, GpuError> {
    let shapes = model.shapes(batch).map_err(|e| GpuError::Validation {
        what: format!("the model '{}'", model.name),
        message: e.to_string(),
    })?;
    let flops = model.nodes.iter().map(|node| {
        let out = shapes[node.output].numel() as f64;
        let per_output = match node.op {
            Op::Conv2d { cin, k, .. } => (cin * k * k) as f64,
            Op::Linear { inp, .. } => inp as f64,
            Op::PatchEmbed { c, patch, .. } => (c * patch * patch) as f64,
            // Q, K, V and the projection (4·dim per output), scores and weighted sum
            // (2·tokens per output).
            Op::Attention { dim, .. } => {
                let tokens = shapes[node.output].0[1];
                (4 * dim + 2 * tokens) as f64
            }
            _ => 0.0,
        };
        2.0 * out * per_output
    });
    Ok(flops.sum())
}

/// Floating-point operations of one training step with `kind` (see the module notes).
pub fn step_flops(forward: f64, kind: OptimKind) -> f64 {
    3.0 * forward * kind.passes() as f64
}

/// One model × batch × optimizer of the check.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub batch: usize,
    pub optimizer: String,
    pub ms_per_step: f64,
    pub gflop_per_step: f64,
    pub tflops: f64,
    /// Achieved / peak FP32, where the peak is known.
    pub peak_share: Option<f64>,
}

impl Row {
    /// The row of a measured `ms` per step doing `flops`, against `peak` TFLOP/s.
    pub fn new(
        model: &str,
        batch: usize,
        kind: OptimKind,
        ms: f64,
        flops: f64,
        peak: Option<f64>,
    ) -> Row {
        let tflops = flops / (ms * 1e-3).max(1e-12) * 1e-12;
        Row {
            model: model.to_string(),
            batch,
            optimizer: kind.to_string(),
            ms_per_step: ms,
            gflop_per_step: flops * 1e-9,
            tflops,
            peak_share: peak.map(|p| tflops / p),
        }
    }
}

/// The GPU executor against the CPU executor on one forward/backward.
#[derive(Clone, Debug, Serialize)]
pub struct Equivalence {
    pub model: String,
    pub batch: usize,
    pub loss_gpu: f32,
    pub loss_cpu: f32,
    /// The largest gradient error over the tensors, as a fraction of its tolerance
    /// `REL · max|cpu tensor| + ABS` (≤ 1 passes).
    pub worst_grad_error: f64,
    /// The tensor with that error.
    pub worst_tensor: String,
    pub ok: bool,
}

/// The tolerances of `tests/exec_gpu.rs`: relative to each tensor's scale, and the loss's.
const REL: f64 = 2e-4;
const ABS: f64 = 1e-6;
const LOSS_REL: f64 = 1e-4;

/// One forward/backward (training mode, seed-0 weights, a synthetic batch of `batch`) of
/// `model` on both executors.
pub async fn equivalence(ctx: &Context, model: &Model, batch: usize) -> Result<Equivalence> {
    let mut rng = crate::rng::Rng::new(7);
    let images = rng.vec(batch * model.input.iter().product::<usize>());
    let labels: Vec<u32> = (0..batch).map(|i| (i % model.classes) as u32).collect();
    let (params, state) = model.init_params(0);
    let gpu = GpuExecutor::new(ctx, model, batch).await?;
    gpu.write_params(ctx, &params)?;
    gpu.write_state(ctx, &state)?;
    gpu.write_batch(ctx, &images, &labels)?;
    let mut list = vec![gpu.reset_metrics()];
    list.extend(gpu.forward_backward(true));
    ctx.submit(&list)?;
    let grads_gpu = gpu.read_grads(ctx).await?;
    let loss_gpu = gpu.read_metrics(ctx).await?.loss_sum / batch as f32;

    let mut cpu = CpuExecutor::new(model, batch).map_err(|e| GpuError::Validation {
        what: format!("the model '{}'", model.name),
        message: e.to_string(),
    })?;
    let mut cpu_state = state.clone();
    let mut grads_cpu = vec![0.0; params.len()];
    cpu.forward(&params, &mut cpu_state, &images, true);
    let (loss_cpu, _) = cpu.loss_and_backward(&params, &labels, &mut grads_cpu);

    let (mut worst, mut worst_tensor) = (0.0f64, String::new());
    for p in &model.params().entries {
        let (g, c) = (&grads_gpu[p.range()], &grads_cpu[p.range()]);
        let scale = c.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
        let tol = REL * scale + ABS;
        let err = g
            .iter()
            .zip(c)
            .fold(0.0f64, |m, (&a, &b)| m.max((a - b).abs() as f64));
        if err / tol > worst || worst_tensor.is_empty() {
            (worst, worst_tensor) = (err / tol, p.name.clone());
        }
    }
    let loss_ok =
        ((loss_gpu - loss_cpu).abs() as f64) <= LOSS_REL * (loss_cpu.abs() as f64).max(1.0);
    Ok(Equivalence {
        model: model.name.clone(),
        batch,
        loss_gpu,
        loss_cpu,
        worst_grad_error: worst,
        worst_tensor,
        ok: loss_ok && worst <= 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_count_the_products_of_each_layer() {
        // The MLP on MNIST: 784→300→100→10, 2 FLOPs per multiply-add.
        let mlp = Model::by_name("mlp", [1, 28, 28], 10).unwrap();
        let per_image = 2.0 * (784.0 * 300.0 + 300.0 * 100.0 + 100.0 * 10.0);
        assert_eq!(forward_flops(&mlp, 4).unwrap(), 4.0 * per_image);
        assert_eq!(step_flops(per_image, OptimKind::Sgd), 3.0 * per_image);
        assert_eq!(step_flops(per_image, OptimKind::Sam), 6.0 * per_image);
        // LeNet-5 on MNIST: 0.83 MFLOP per image forward (conv1 28×28×6 outputs of 25
        // taps, conv2 10×10×16 of 150, then 400→120→84→10).
        let lenet = Model::by_name("lenet5", [1, 28, 28], 10).unwrap();
        let lenet_image = 2.0
            * (28.0 * 28.0 * 6.0 * 25.0
                + 10.0 * 10.0 * 16.0 * 150.0
                + 400.0 * 120.0
                + 120.0 * 84.0
                + 84.0 * 10.0);
        assert_eq!(forward_flops(&lenet, 1).unwrap(), lenet_image);
        for (name, input) in MODELS {
            let m = Model::by_name(name, input, 10).unwrap();
            assert!(forward_flops(&m, 2).unwrap() > 0.0, "{name}");
        }
    }

    #[test]
    fn peaks_come_from_the_adapter_name() {
        assert_eq!(peak_fp32_tflops("NVIDIA H100 80GB HBM3"), Some(66.9));
        assert_eq!(peak_fp32_tflops("NVIDIA H100 PCIe"), Some(51.2));
        assert_eq!(peak_fp32_tflops("NVIDIA H200"), Some(66.9));
        assert_eq!(peak_fp32_tflops("llvmpipe (LLVM 19.1.7, 256 bits)"), None);
        let row = Row::new("mlp", 128, OptimKind::Sgd, 2.0, 4e9, Some(10.0));
        assert!((row.tflops - 2.0).abs() < 1e-12 && (row.peak_share.unwrap() - 0.2).abs() < 1e-12);
    }
}
