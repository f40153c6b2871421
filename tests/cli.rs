//! The `varlab` command line: bad input is exit code 2 with one sentence and no file left
//! behind; a tiny run writes its JSON, CSV and weights.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn varlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varlab"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run varlab")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("varlab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The words of `text` (split at white space), then `extra`: a command line.
fn words<'a>(text: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    text.split_whitespace()
        .chain(extra.iter().copied())
        .collect()
}

/// Exit code 2, a one-line message containing `needle`, and no JSON written.
fn refused(args: &[&str], needle: &str) {
    let dir = scratch("refused");
    let json = dir.join("out.json");
    let mut all = args.to_vec();
    let json_arg = json.to_str().unwrap().to_string();
    all.extend(["--json", &json_arg, "--executor", "cpu"]);
    let out = varlab(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!json.exists(), "{args:?} left {}", json.display());
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_is_exit_code_2_with_a_sentence() {
    refused(&["train", "--model", "gpt"], "Unknown model 'gpt'");
    refused(&["sweep", "--sparsities", "0.5,1.5"], "sparsities");
    refused(&["train", "--epochs", "0"], "epochs");
    refused(&["train", "--optim", "adam"], "adam");
    refused(&["train", "--dataset", "cifar10"], "--data");
    refused(
        &["train", "--data", "/nonexistent/mnist"],
        "/nonexistent/mnist",
    );
    // A corrupt CIFAR-10 directory: a train.bin that is not whole records.
    let dir = scratch("corrupt");
    std::fs::write(dir.join("train.bin"), [0u8; 3073 + 10]).unwrap();
    std::fs::write(dir.join("test.bin"), [0u8; 3073]).unwrap();
    refused(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data",
            dir.to_str().unwrap(),
        ],
        "train.bin",
    );
    // Flags out of range, presets and init names, seeds that overflow.
    refused(&["train", "--lambda-psi0", "-1"], "lambda_psi0");
    refused(&["train", "--lr", "-1"], "'lr' must be");
    refused(&["train", "--seed", "-3"], "--seed");
    refused(&["train", "--init", "xavier"], "xavier");
    refused(&["train", "--preset", "nope"], "the presets are mlp");
    refused(
        &["compare", "--seed", "18446744073709551615", "--seeds", "2"],
        "seed",
    );
    refused(
        &["train", "--lambda", "1e-4", "--lambda-psi0", "1"],
        "cannot be used with",
    );
    // Output places are checked before training: nothing is trained or written.
    let ok = dir.join("ok.json");
    let out = varlab(&[
        "compare",
        "--json",
        ok.to_str().unwrap(),
        "--csv",
        "/nonexistent/dir/x.csv",
        "--executor",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/dir/x.csv") && !err.contains("executor"),
        "{err}"
    );
    assert!(!ok.exists());
    // A config file with an unknown field.
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, r#"{"version": 1, "learning_rate": 0.1}"#).unwrap();
    refused(
        &["train", "--config", cfg.to_str().unwrap()],
        "learning_rate",
    );
}

#[test]
fn a_tiny_sweep_writes_json_csv_and_weights() {
    let dir = scratch("sweep");
    let (json, csv, save) = (dir.join("r.json"), dir.join("r.csv"), dir.join("weights"));
    let out = varlab(&[
        "compare",
        "--model",
        "mlp",
        "--optim",
        "sgd,var",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--sparsities",
        "0.5,0.9",
        "--executor",
        "cpu",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("optimizer") && stdout.contains("90%"),
        "{stdout}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["version"], 1);
    assert_eq!(r["runs"].as_array().unwrap().len(), 2);
    assert_eq!(r["runs"][1]["optimizer"], "var");
    assert_eq!(r["runs"][0]["sweep"][1]["sparsity"], 0.9);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        1 + 2 * 3
    );
    for f in [
        "sgd-seed0-dense.safetensors",
        "sgd-seed0-s0.90.safetensors",
        "var-seed0-s0.50.safetensors",
        "model.json",
    ] {
        assert!(save.join(f).is_file(), "{f}");
    }
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(save.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["model"], "mlp");
    assert_eq!(card["parameters"], 266_610);
    // f32 settings read as typed, not widened to f64 noise.
    let text = std::fs::read_to_string(save.join("model.json")).unwrap();
    assert!(text.contains("\"lr\": 0.05,"), "{text}");
    assert!(!text.contains("0.0500000"), "{text}");
    // The paired table and the λψ₀ line.
    assert!(stdout.contains("paired difference to sgd"), "{stdout}");
    assert!(stdout.contains("λψ₀ = 1.40"), "{stdout}");
    assert!(stdout.contains("one seed: no verdict"), "{stdout}");
    assert_eq!(r["config"]["lambda_psi0"], 1.4);
    assert!(r["paired"].as_array().unwrap().len() == 3);
    assert!(r["runs"][1]["lambda_psi0"].as_f64().unwrap() > 1.3);
}

/// When every run diverges, `compare` says so on stderr (also when stderr is not a
/// terminal), marks the runs in the table, writes the JSON, and exits with code 3.
#[test]
fn every_run_diverged_is_exit_code_3() {
    let dir = scratch("diverged");
    let json = dir.join("r.json");
    let json_arg = json.to_str().unwrap();
    let out = varlab(&words(
        "compare --model mlp --optim sgd --seeds 2 --lr 10 --schedule constant --train-size 320 \
         --test-size 64 --epochs 2 --batch 32 --executor cpu --json",
        &[json_arg],
    ));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("sgd seed 0: Training diverged at step"),
        "{stderr}"
    );
    assert!(stderr.contains("every run (2) diverged"), "{stderr}");
    assert!(
        stdout.contains("sgd seed 1 diverged and is left out"),
        "{stdout}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r["runs"][0]["diverged"].is_string());
}

/// `--preset` starts from the page's named experiment; flags override it.
#[test]
fn a_preset_fills_the_config() {
    let dir = scratch("preset");
    let json = dir.join("r.json");
    let out = varlab(&words(
        "train --preset mlp --train-size 128 --test-size 32 --epochs 1 --seeds 1 --executor cpu \
         --json",
        &[json.to_str().unwrap()],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["config"]["model"], "mlp");
    assert_eq!(r["config"]["train_size"], 128);
    assert_eq!(r["config"]["init"], "pytorch");
}

/// `bench profile` times every dispatch of one GPU step: the JSON lists them all with their
/// kernel names and workgroup counts. Skipped (with a note) where there is no adapter.
#[test]
fn bench_profile_lists_every_dispatch_of_a_step() {
    let dir = scratch("profile");
    let json = dir.join("p.json");
    let json_arg = json.to_str().unwrap();
    let args = [
        "bench", "profile", "--model", "mlp", "--batch", "4", "--reps", "1",
    ];
    let out = varlab(&[&args[..], &["--optim", "var", "--json", json_arg]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && (err.contains("adapter") || err.contains("GPU")) {
        eprintln!("skipped: {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let dispatches = doc["dispatches"].as_array().unwrap();
    // Forward and backward of three linear layers, the loss and VAR's three dispatches.
    assert!(dispatches.len() >= 15, "{} dispatches", dispatches.len());
    let kernels: Vec<&str> = dispatches
        .iter()
        .map(|d| d["kernel"].as_str().unwrap())
        .collect();
    for needed in ["matmul", "xent_rows", "update"] {
        assert!(
            kernels.contains(&needed),
            "{needed} missing from {kernels:?}"
        );
    }
    assert!(dispatches.iter().all(|d| d["ms"].as_f64().unwrap() >= 0.0));
    assert!(doc["step_ms"].as_f64().unwrap() > 0.0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("slowest dispatches"));
}

/// The first Ctrl-C (SIGINT) keeps the runs that finished: the JSON and CSV are written with
/// them, marked partial, and the exit code is 130.
#[test]
fn ctrl_c_keeps_the_finished_runs() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = scratch("interrupt");
    let (json, csv) = (dir.join("r.json"), dir.join("r.csv"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_varlab"))
        .args([
            "compare",
            "--model",
            "mlp",
            "--optim",
            "sgd,var",
            "--seeds",
            "20",
            "--train-size",
            "640",
            "--test-size",
            "64",
            "--epochs",
            "1",
            "--batch",
            "32",
            "--executor",
            "cpu",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("run 1/40 done") {
            break;
        }
    }
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?} {rest:?}");
    let text = rest.join("\n");
    assert!(text.contains("marked partial"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let runs = r["runs"].as_array().unwrap().len();
    assert!((1..40).contains(&runs), "{runs} runs kept");
    assert!(r["partial"]
        .as_str()
        .unwrap()
        .contains("of 40 runs finished"));
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert!(rows > 1, "the CSV holds the finished runs");
    // No temporary file (`.r.json.PID-RANDOM.partial`) is left behind.
    let left = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(left, 0);
}

/// A result JSON with the wall-clock fields (the only ones two trainings of the same runs
/// differ in), the environment and the job records set aside.
fn comparable(path: &std::path::Path) -> serde_json::Value {
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for run in r["runs"].as_array_mut().unwrap() {
        run["timing"] = serde_json::Value::Null;
    }
    let o = r.as_object_mut().unwrap();
    o.remove("environment");
    o.remove("jobs");
    r
}

const TINY: &str = "--model mlp --optim sgd,var --seeds 2 --train-size 256 --test-size 64 \
                    --epochs 1 --batch 32 --sparsities 0.5,0.9 --executor cpu";

#[test]
fn jobs_give_the_serial_result() {
    let dir = scratch("jobs");
    let (serial, pooled) = (dir.join("serial.json"), dir.join("pooled.json"));
    for (path, jobs) in [(&serial, "1"), (&pooled, "2")] {
        let p = path.to_str().unwrap();
        let out = varlab(&words(
            &format!("compare {TINY}"),
            &["--json", p, "--jobs", jobs],
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(comparable(&serial), comparable(&pooled));
}

/// `plan`, one `run` per planned config, `merge`: the merged result is `compare`'s.
#[test]
fn plan_run_merge_gives_the_compare_result() {
    let dir = scratch("plan");
    let d = dir.to_str().unwrap();
    let out = varlab(&words(&format!("plan {TINY} --out {d}"), &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("planned 4 runs in 1 group(s)"));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["count"], 4);
    assert_eq!(plan["runs"][3]["file"], "runs/0003.json");
    // Planning again gives the same files; a different plan is refused.
    assert!(varlab(&words(&format!("plan {TINY} --out {d}"), &[]))
        .status
        .success());
    let other = varlab(&words(&format!("plan {TINY} --out {d}"), &["--lr", "0.01"]));
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("already holds a different plan"));

    let run = |i: usize| {
        let (config, out) = (
            format!("{d}/runs/{i:04}.json"),
            format!("{d}/results/{i:04}.json"),
        );
        varlab(&["run", &config, "--out", &out])
    };
    for i in [0, 2, 3] {
        assert!(run(i).status.success());
    }
    // Run 1 missing: merge names it, writes a partial result and exits 1.
    let results = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("results"))
            .unwrap()
            .map(|e| e.unwrap().path().to_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let merged = dir.join("merged.json");
    let m = merged.to_str().unwrap();
    let merge = || {
        let mut args = vec!["merge".to_string()];
        args.extend(results(&dir));
        args.extend(["--json".into(), m.into()]);
        varlab(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = merge();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(
        r["partial"],
        "3 of 4 planned runs finished; missing: run 1 (var seed 0)."
    );
    // The run, then again: the second time it is kept at once.
    assert!(run(1).status.success());
    let again = run(1);
    assert!(String::from_utf8_lossy(&again.stdout).contains("is already done"));
    let out = merge();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    let jobs = r["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    assert_eq!(jobs[2]["index"], 2);
    assert!(jobs[0]["commit"].as_str().unwrap().len() >= 7);
    assert!(!jobs[0]["host"].as_str().unwrap().is_empty());

    // The same runs trained by compare in one go.
    let local = dir.join("local.json");
    let out = varlab(&words(
        &format!("compare {TINY}"),
        &["--json", local.to_str().unwrap()],
    ));
    assert!(out.status.success());
    assert_eq!(comparable(&merged), comparable(&local));

    // A result from another config is refused, naming the file.
    let planned = std::fs::read_to_string(dir.join("runs/0000.json")).unwrap();
    std::fs::write(
        dir.join("runs/0000.json"),
        planned.replace("\"lr\": 0.05", "\"lr\": 0.02"),
    )
    .unwrap();
    std::fs::remove_file(dir.join("results/0000.json")).unwrap();
    assert!(run(0).status.success());
    let out = merge();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0000.json: trained from a config"), "{err}");
}

/// A grid over λ shares the runs that do not use it; one file per grid point.
#[test]
fn a_lambda_grid_shares_the_sgd_runs() {
    let dir = scratch("grid");
    let d = dir.to_str().unwrap();
    let out = varlab(&words(
        &format!("plan {TINY} --lambda 1e-5,1e-4 --out {d}"),
        &[],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    // 2 seeds × (SGD once, VAR at each λ).
    assert_eq!(plan["count"], 6);
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups[0]["name"], "lambda1e-5");
    assert_eq!(
        groups[1]["runs"][0], groups[0]["runs"][0],
        "sgd seed 0 is shared"
    );
    assert_ne!(groups[1]["runs"][1], groups[0]["runs"][1]);
    assert_eq!(groups[1]["config"]["lambda"], 1e-4);
    // One value only, outside plan.
    let out = varlab(&words(&format!("compare {TINY} --lambda 1e-5,1e-4"), &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`varlab plan` takes a comma list"));
}

/// `--executor auto` times a few steps on both executors, says both figures in one sentence
/// and trains on the faster (on lavapipe, the CPU).
#[test]
fn auto_chooses_the_executor_by_measurement() {
    let dir = scratch("auto");
    std::fs::write(dir.join("train.bin"), common::cifar_records(64, 1)).unwrap();
    std::fs::write(dir.join("test.bin"), common::cifar_records(16, 2)).unwrap();
    let data = dir.to_str().unwrap();
    let out = varlab(&words(
        "train --dataset cifar10 --model mlp --optim sgd --train-size 64 --test-size 16 \
         --epochs 1 --batch 16 --executor auto --data",
        &[data],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let sentence = err
        .lines()
        .find(|l| l.contains(" img/s, CPU "))
        .unwrap_or_else(|| panic!("no figures: {err}"));
    let chosen = if sentence.ends_with("training on the CPU.") {
        "cpu"
    } else {
        assert!(sentence.ends_with("training on the GPU."), "{sentence}");
        "gpu"
    };
    assert!(sentence.starts_with("varlab: GPU "), "{sentence}");
    assert!(err.contains(&format!("executor: {chosen} (")), "{err}");
}
