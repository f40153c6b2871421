//! Issue 23's cases against the `varlab` binary: files read through one bounded reader
//! (devices and FIFOs refused by type), plans and results validated before use, standard
//! output errors as exit codes (closed pipe 141, full disk 1), writers that cannot collide,
//! output places checked before any training, plans sized on purpose, tar errors in words.
//! The data is generated (CIFAR-format records), so this runs in a bare clone.
#![cfg(all(unix, not(target_arch = "wasm32")))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

fn varlab_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_varlab"));
    c.args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdin(Stdio::null());
    c
}

fn varlab(args: &[&str]) -> Output {
    varlab_cmd(args).output().expect("run varlab")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("varlab-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CIFAR-10 subset directory of generated records (100 training, 20 test images).
fn cifar_dir(dir: &Path) -> String {
    let data = dir.join("cifar");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.bin"), common::cifar_records(100, 1)).unwrap();
    std::fs::write(data.join("test.bin"), common::cifar_records(20, 2)).unwrap();
    data.to_str().unwrap().to_string()
}

/// A tiny CIFAR run: MLP, one epoch of 64 images.
fn tiny(data: &str) -> Vec<String> {
    format!(
        "--dataset cifar10 --data {data} --model mlp --optim sgd --train-size 64 --test-size 16 \
         --epochs 1 --batch 32 --executor cpu"
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

/// Exit code `code`, one line on stderr containing `needle`, no panic.
fn says(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn devices_and_fifos_are_refused_by_type_before_reading() {
    let dir = scratch("devices");
    let out_json = dir.join("o.json");
    let o = out_json.to_str().unwrap();
    for (dataset, data) in [
        ("cifar10", "/dev/zero"),
        ("cifar10", "/dev/urandom"),
        ("mnist", "/dev/zero"),
    ] {
        let out = varlab(&[
            "train",
            "--dataset",
            dataset,
            "--data",
            data,
            "--json",
            o,
            "--executor",
            "cpu",
        ]);
        says(&out, 2, "character device");
    }
    says(
        &varlab(&["train", "--config", "/dev/zero"]),
        2,
        "'/dev/zero' is a character device, not a regular file; give a config file.",
    );
    says(
        &varlab(&["run", "/dev/zero", "--out", o]),
        2,
        "character device",
    );
    says(
        &varlab(&["merge", o, "--plan", "/dev/zero", "--json", o]),
        2,
        "character device",
    );
    // A FIFO with no writer: refused at once, never waited on.
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let f = fifo.to_str().unwrap();
    for (dataset, config) in [("cifar10", false), ("mnist", false), ("mnist", true)] {
        let flag = if config { "--config" } else { "--data" };
        let mut child = varlab_cmd(&["train", "--dataset", dataset, flag, f, "--executor", "cpu"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed().as_secs() > 60 {
                child.kill().unwrap();
                panic!("varlab waited on the FIFO {f}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        says(&child.wait_with_output().unwrap(), 2, "FIFO");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A planned tiny run trained once: (the plan directory, its data directory).
fn planned(name: &str, seeds: usize) -> (PathBuf, String) {
    let dir = scratch(name);
    let data = cifar_dir(&dir);
    let d = dir.to_str().unwrap();
    let seeds = seeds.to_string();
    let tail = tiny(&data);
    let mut plan = args(&["plan", "--out", d, "--seeds", &seeds], &tail);
    // `plan` takes no --data: each run gets it.
    let at = plan.iter().position(|a| *a == "--data").unwrap();
    plan.drain(at..at + 2);
    let out = varlab(&plan);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, data)
}

fn run_one(dir: &Path, data: &str, i: usize) -> Output {
    let d = dir.to_str().unwrap();
    varlab(&[
        "run",
        &format!("{d}/runs/{i:04}.json"),
        "--out",
        &format!("{d}/results/{i:04}.json"),
        "--data",
        data,
    ])
}

#[test]
fn plans_and_results_are_validated_not_indexed() {
    let (dir, data) = planned("validate", 1);
    let d = dir.to_str().unwrap().to_string();
    let out = run_one(&dir, &data, 0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = format!("{d}/results/0000.json");
    let merged = format!("{d}/merged.json");
    let merge = |plan: &str| varlab(&["merge", &result, "--plan", plan, "--json", &merged]);
    let plan_path = format!("{d}/plan.json");
    assert!(merge(&plan_path).status.success());

    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let bad_plan = format!("{d}/bad-plan.json");
    let with = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut plan = good.clone();
        edit(&mut plan);
        std::fs::write(&bad_plan, plan.to_string()).unwrap();
        says(&merge(&bad_plan), 2, needle);
    };
    with(
        &|p| p["count"] = 10_000_000.into(),
        "field `count` is 10000000",
    );
    with(
        &|p| p["count"] = u64::MAX.into(),
        "field `count` is 18446744073709551615",
    );
    with(&|p| p["count"] = 0.into(), "field `count` is 0");
    with(&|p| p["groups"][0]["runs"][0] = 99.into(), "names run 99");
    with(
        &|p| p["groups"] = serde_json::json!([]),
        "field `groups` is empty",
    );
    with(&|p| p["version"] = 2.into(), "a plan of version 2");

    // Results: null and out-of-range accuracies are named with their field and file.
    let good_result = std::fs::read_to_string(&result).unwrap();
    let bad_result = format!("{d}/results/bad.json");
    let mut v: serde_json::Value = serde_json::from_str(&good_result).unwrap();
    v["runs"][0]["dense_accuracy"] = serde_json::Value::Null;
    std::fs::write(&bad_result, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let m = |r: &str| varlab(&["merge", r, "--plan", &plan_path, "--json", &merged]);
    says(
        &m(&bad_result),
        2,
        "field `dense_accuracy`: null where f32 goes",
    );
    says(&m(&bad_result), 2, "bad.json");
    v["runs"][0]["dense_accuracy"] = 7.0.into();
    std::fs::write(&bad_result, v.to_string()).unwrap();
    says(&m(&bad_result), 2, "`runs[0].dense_accuracy` is 7");
    // A pattern that matched nothing is said as such.
    let out = varlab(&[
        "merge",
        &format!("{d}/P9/results/*.json"),
        "--json",
        &merged,
    ]);
    says(&out, 2, "no file matched");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("plan.json"));

    // `run` on a plan, and on a config of several runs.
    says(
        &varlab(&["run", &plan_path, "--out", &result]),
        2,
        "this is a plan (plan.json)",
    );
    let config = format!("{d}/six.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{d}/runs/0000.json")).unwrap())
            .unwrap();
    c["seeds"] = 3.into();
    c["optimizers"] = serde_json::json!(["sgd", "var"]);
    std::fs::write(&config, c.to_string()).unwrap();
    says(
        &varlab(&["run", &config, "--out", &result, "--index", "0"]),
        2,
        "a config of 6 runs (2 optimizer(s) × 3 seed(s))",
    );
    says(
        &varlab(&["run", &config, "--out", &result, "--index", "-1"]),
        2,
        "--index is a run's number",
    );
    says(
        &varlab(&["compare", "--jobs", "-1"]),
        2,
        "--jobs is the number of runs",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plans_are_sized_on_purpose() {
    let dir = scratch("sized");
    let d = dir.to_str().unwrap();
    says(
        &varlab(&["plan", "--out", d, "--lambda", "0.001,0.001,1e-3"]),
        2,
        "--lambda gives 1e-3 twice",
    );
    says(
        &varlab(&["plan", "--out", d, "--jobs", "8"]),
        2,
        "--jobs is not an option of plan",
    );
    // 64 seeds × (SGD once + VAR at each of 157 λ) = 10 112 runs.
    let lambdas: Vec<String> = (1..=157).map(|i| format!("{i}e-6")).collect();
    let lambdas = lambdas.join(",");
    says(
        &varlab(&[
            "plan", "--out", d, "--optim", "sgd,var", "--seeds", "64", "--lambda", &lambdas,
        ]),
        2,
        "this plan has 10112 runs",
    );
    assert!(!dir.join("plan.json").exists() && !dir.join("runs").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every subcommand's output into a closed pipe: exit code 141 and not a word; into
/// `head -c 1`: no panic; into a full disk: a sentence and exit code 1.
#[test]
fn a_closed_pipe_or_a_full_disk_is_no_panic() {
    let dir = scratch("pipe");
    let data = cifar_dir(&dir);
    let d = dir.to_str().unwrap().to_string();
    let t = tiny(&data);
    let json = format!("{d}/o.json");
    let mut plan = args(&["plan", "--out", &d], &t);
    let at = plan.iter().position(|a| *a == "--data").unwrap();
    plan.drain(at..at + 2);
    let (run_cfg, run_out) = (
        format!("{d}/runs/0000.json"),
        format!("{d}/results/0000.json"),
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["config"],
        vec!["config", "--schema"],
        vec!["model", "lenet5"],
        vec!["--help"],
        args(&["train", "--json", &json], &t),
        args(&["sweep"], &t),
        args(&["compare"], &t),
        plan,
        vec!["run", &run_cfg, "--out", &run_out, "--data", &data],
        vec!["merge", &run_out, "--json", &json],
        vec![
            "bench",
            "step",
            "--executor",
            "cpu",
            "--model",
            "mlp",
            "--steps",
            "1",
            "--rounds",
            "1",
            "--batch",
            "8",
        ],
    ];
    for c in &commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = varlab_cmd(c).stdout(writer).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = if c[0] == "--help" { 0 } else { 141 };
        assert!(!err.contains("panicked"), "{c:?}: {err}");
        if c[0] != "--help" {
            assert_eq!(out.status.code(), Some(code), "{c:?}: {err}");
            assert!(!err.contains("varlab: cannot write"), "{c:?}: {err}");
        }
    }
    assert!(Path::new(&json).exists() && Path::new(&run_out).exists());
    for line in [
        "varlab config --schema | head -1",
        "varlab config | head -c 10",
        "varlab model lenet5 | head -c 1",
        "varlab config --schema | head -c 1",
    ] {
        let script = format!("set -o pipefail; {line} >/dev/null; echo \"rc=$?\"");
        let out = Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin",
                    Path::new(env!("CARGO_BIN_EXE_varlab"))
                        .parent()
                        .unwrap()
                        .display()
                ),
            )
            .output()
            .unwrap();
        let (stdout, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(err.is_empty(), "{line}: {err}");
        assert!(
            stdout.contains("rc=0") || stdout.contains("rc=141"),
            "{line}: {stdout}"
        );
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = varlab_cmd(&["config", "--schema"])
        .stdout(full)
        .output()
        .unwrap();
    says(
        &out,
        1,
        "cannot write to standard output: No space left on device",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_places_are_checked_before_training_and_writers_do_not_collide() {
    let (dir, data) = planned("writers", 1);
    let d = dir.to_str().unwrap().to_string();
    let t = tiny(&data);
    // A directory, /proc, a directory for the CSV: refused before any training.
    for (head, needle) in [
        (vec!["train", "--json", d.as_str()], "is a directory"),
        (vec!["train", "--json", "/proc/version"], "/proc/version"),
        (vec!["compare", "--csv", d.as_str()], "is a directory"),
    ] {
        let out = varlab(&args(&head, &t));
        says(&out, 2, needle);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("executor"));
    }
    let cfg = format!("{d}/runs/0000.json");
    let out = varlab(&["run", &cfg, "--out", &d, "--data", &data]);
    says(&out, 2, "is a directory");
    says(
        &varlab(&["bench", "matmul", "--json", &d]),
        2,
        "is a directory",
    );
    // A second writer of one --out is told another run holds it.
    let _result = format!("{d}/results/0000.json");
    let lock = std::fs::File::create(format!("{d}/results/.0000.json.lock")).unwrap();
    lock.lock().unwrap();
    says(&run_one(&dir, &data, 0), 1, "another varlab run is writing");
    drop(lock);
    assert!(run_one(&dir, &data, 0).status.success());
    // No temporary file nor lock is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["0000.json"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tarball whose second header is damaged: the error names the member before it and the
/// defect in words, never the header's raw bytes.
#[test]
fn tar_errors_name_the_member_and_the_defect() {
    let train = common::cifar_records(3, 1);
    let test = common::cifar_records(2, 2);
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("cifar/train.bin", &train), ("cifar/test.bin", &test)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    let mut raw = tar.into_inner().unwrap();
    // The second header starts after the first (512) and its data rounded up to 512.
    let second = 512 + train.len().div_ceil(512) * 512;
    raw[second + 124..second + 136].copy_from_slice(b"px\x01p\x02~\xff\xfe 123");
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let e = varlab::data::cifar::cifar_from_tar_gz("c.tar.gz", &gz)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the header after member 'cifar/train.bin'"),
        "{e}"
    );
    assert!(
        !e.contains("px") && !e.contains('?') && !e.contains("numeric field"),
        "{e}"
    );
    // Truncated inside a member: the member is named.
    let cut = &raw[..512 + 1000];
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(cut).unwrap();
        e.finish().unwrap()
    };
    let e = varlab::data::cifar::cifar_from_tar_gz("c.tar.gz", &gz)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("member 'cifar/train.bin'") && e.contains("truncated"),
        "{e}"
    );
}
