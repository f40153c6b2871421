//! Fuzzing the parsers on stable Rust: valid MNIST IDX files (plain and gzipped), CIFAR-10
//! record files, CIFAR tarballs and config JSON are mutated — truncated, bytes flipped,
//! header fields replaced by lies, gzip streams damaged — and every parser must return a
//! typed error or a valid dataset: never a panic, and never more than a bounded allocation
//! (measured by a counting global allocator, [`LIMIT`] above what the test itself holds).
//!
//! `cargo test --test fuzz` runs 12 000 cases (CI), then 10 000 of each of plan, run-config
//! and result JSON, and 120 `varlab merge` runs on mutated files;
//! `VARLAB_FUZZ_CASES=1000000 cargo test --release --test fuzz -- --nocapture` runs a longer
//! campaign (`VARLAB_FUZZ_MERGE_CASES` for the merges). Every case is reproducible
//! from its number (the generator is seeded by it); a failure prints it.
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use varlab::data::cifar::{cifar_from_records, cifar_from_tar_gz};
use varlab::data::{mnist::FILES, split_from_named_files};
use varlab::experiment::Config;
use varlab::rng::Rng;

mod common;

/// Counts live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counters are global: the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The most a case may allocate beyond what was live when it started. The inputs are a few
/// KB; gzip inflates at most ~1000×, so any honest parse stays far below this.
const LIMIT: usize = 64 << 20;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// Four small valid MNIST files (5 training and 3 test images of 28×28).
fn mnist_files(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut px = |n: usize| {
        (0..n * 784)
            .map(|_| (rng.next_u64() >> 56) as u8)
            .collect::<Vec<_>>()
    };
    let (a, b) = (px(5), px(3));
    vec![
        idx(0x0803, &[5, 28, 28], &a),
        idx(0x0801, &[5], &[0, 1, 2, 3, 9]),
        idx(0x0803, &[3, 28, 28], &b),
        idx(0x0801, &[3], &[4, 5, 6]),
    ]
}

/// A tar.gz of the subset layout (`train.bin`, `test.bin`) with a few records each.
fn tar_of(train: &[u8], test: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("cifar/train.bin", train), ("cifar/test.bin", test)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    }
    tar.into_inner().unwrap()
}

/// One random damage to `bytes`: truncate, flip bytes, overwrite a u32 with a lie, insert
/// or delete a run, or duplicate a slice.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let n = bytes.len().max(1);
    let at = |rng: &mut Rng| (rng.next_u64() % n as u64) as usize;
    match rng.next_u64() % 6 {
        0 => {
            let cut = at(rng);
            bytes.truncate(cut);
        }
        1 => {
            for _ in 0..1 + rng.next_u64() % 8 {
                let i = at(rng).min(bytes.len().saturating_sub(1));
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << (rng.next_u64() % 8);
                }
            }
        }
        2 => {
            // A header field (the first 32 bytes, 4-aligned) replaced by a lie.
            let lies = [
                0u32,
                1,
                2,
                0xFFFF_FFFF,
                0x7FFF_FFFF,
                60_000,
                1 << 20,
                28 * 28 + 1,
            ];
            let i = 4 * (rng.next_u64() % 8) as usize;
            let lie = lies[(rng.next_u64() % lies.len() as u64) as usize].to_be_bytes();
            if bytes.len() >= i + 4 {
                bytes[i..i + 4].copy_from_slice(&lie);
            }
        }
        3 => {
            let i = at(rng).min(bytes.len());
            let run = (rng.next_u64() % 64) as usize;
            let fill = (rng.next_u64() & 0xFF) as u8;
            bytes.splice(i..i, std::iter::repeat_n(fill, run));
        }
        4 => {
            let i = at(rng).min(bytes.len());
            let end = (i + (rng.next_u64() % 64) as usize).min(bytes.len());
            bytes.drain(i..end);
        }
        _ => {
            let i = at(rng).min(bytes.len());
            let end = (i + (rng.next_u64() % 256) as usize).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.extend(copy);
        }
    }
}

/// A mutated config JSON: the text damaged, or one field set to an extreme value.
fn config_case(rng: &mut Rng) -> String {
    let base = Config::default().to_json();
    if rng.next_u64().is_multiple_of(2) {
        let mut bytes = base.into_bytes();
        mutate(rng, &mut bytes);
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
    let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    let key = &keys[(rng.next_u64() % keys.len() as u64) as usize];
    let extremes = [
        serde_json::json!(-1),
        serde_json::json!(1e308),
        serde_json::json!(u64::MAX),
        serde_json::json!(null),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!([1.0, 2.0, -0.5]),
        serde_json::json!({"a": 1}),
        serde_json::json!(0),
    ];
    v[key] = extremes[(rng.next_u64() % extremes.len() as u64) as usize].clone();
    v.to_string()
}

/// Runs one case (`kind` 0–4) and returns whether the parser accepted it.
fn case(kind: u64, rng: &mut Rng) -> bool {
    match kind {
        0 | 1 => {
            // MNIST: one of the four files damaged, plain (0) or gzipped before/after (1).
            let mut files = mnist_files(rng);
            let which = (rng.next_u64() % 4) as usize;
            if kind == 1 {
                for f in files.iter_mut() {
                    *f = gzip(f);
                }
            }
            mutate(rng, &mut files[which]);
            if kind == 1 && rng.next_u64().is_multiple_of(3) {
                // A damaged file inside an intact gzip stream.
                let mut plain = mnist_files(rng).swap_remove(which);
                mutate(rng, &mut plain);
                files[which] = gzip(&plain);
            }
            let named: Vec<(String, Vec<u8>)> = FILES
                .iter()
                .zip(files)
                .map(|(n, b)| (format!("{n}.gz"), b))
                .collect();
            split_from_named_files(&named).is_ok()
        }
        2 => {
            let mut records = common::cifar_records(3, rng.next_u64());
            mutate(rng, &mut records);
            cifar_from_records("fuzz.bin", &records).is_ok()
        }
        3 => {
            let train = common::cifar_records(3, rng.next_u64());
            let test = common::cifar_records(2, rng.next_u64());
            let mut tar = tar_of(&train, &test);
            let gz = if rng.next_u64().is_multiple_of(2) {
                mutate(rng, &mut tar);
                gzip(&tar)
            } else {
                let mut gz = gzip(&tar);
                mutate(rng, &mut gz);
                gz
            };
            cifar_from_tar_gz("fuzz.tar.gz", &gz).is_ok()
        }
        _ => Config::from_json(&config_case(rng)).is_ok(),
    }
}

#[test]
fn parsers_never_panic_nor_allocate_without_bound() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases: u64 = std::env::var("VARLAB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000);
    // Quiet panics: a panic is caught and reported as this case's failure.
    std::panic::set_hook(Box::new(|_| {}));
    let mut accepted = [0usize; 5];
    let mut worst = 0usize;
    for i in 0..cases {
        let kind = i % 5;
        let mut rng = Rng::new(0x5EED ^ i.wrapping_mul(0x9E37_79B9));
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| case(kind, &mut rng)));
        let grew = PEAK.load(Relaxed).saturating_sub(before);
        worst = worst.max(grew);
        let _ = std::panic::take_hook();
        assert!(outcome.is_ok(), "case {i} (kind {kind}) panicked");
        std::panic::set_hook(Box::new(|_| {}));
        assert!(
            grew <= LIMIT,
            "case {i} (kind {kind}) allocated {grew} bytes"
        );
        accepted[kind as usize] += outcome.unwrap() as usize;
    }
    let _ = std::panic::take_hook();
    println!(
        "fuzz: {cases} cases, no panic; accepted (valid after mutation) mnist {}, mnist.gz {}, \
         cifar records {}, cifar tar.gz {}, config {}; largest allocation of one case {} KiB",
        accepted[0],
        accepted[1],
        accepted[2],
        accepted[3],
        accepted[4],
        worst / 1024
    );
    // The mutations are not all fatal: some inputs stay valid, so both paths are exercised.
    assert!(accepted.iter().all(|&a| a > 0), "{accepted:?}");
}

/// The gzip bomb of the issue, scaled: a gzipped IDX whose header announces 2.5 GiB is
/// refused after inflating its header only, and one that announces little but inflates to
/// far more is cut at what it announced.
#[test]
fn a_gzip_bomb_is_refused_from_its_header() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bomb = idx(0x0803, &[60_000, 28, 28 * 59], &[]);
    bomb.extend(std::iter::repeat_n(0u8, 8 << 20));
    let gz = gzip(&bomb);
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let e = varlab::data::gunzip_if_needed("bomb.gz", &gz).unwrap_err();
    assert!(
        PEAK.load(Relaxed) - before < 1 << 20,
        "inflated past the header"
    );
    let text = e.to_string();
    assert!(
        text.contains("bomb.gz") && text.contains("2775360016 bytes"),
        "{text}"
    );
    // Honest header, dishonest length: only the announced bytes are inflated.
    let mut long = idx(0x0801, &[10], &[1; 10]);
    long.extend(std::iter::repeat_n(7u8, 8 << 20));
    let gz = gzip(&long);
    let out = varlab::data::gunzip_if_needed("long.gz", &gz).unwrap();
    assert_eq!(out.len(), 8 + 10);
}

/// The real files of a tiny plan: `plan.json`, its first run's config, and that run's
/// result as `varlab run` writes it (trained here on generated CIFAR records, CPU).
struct PlanFiles {
    plan: String,
    run_config: String,
    result: String,
}

fn plan_files() -> &'static PlanFiles {
    use varlab::experiment::plan::make_plan;
    use varlab::experiment::{DatasetKind, ExecutorChoice, Experiment, JobRecord};
    static FILES: std::sync::OnceLock<PlanFiles> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let base = Config {
            dataset: DatasetKind::Cifar10,
            model: "mlp".into(),
            optimizers: vec!["sgd".into(), "var".into()],
            seeds: 2,
            train_size: 32,
            test_size: 10,
            epochs: 1,
            batch: 16,
            sparsities: vec![0.5, 0.9],
            executor: ExecutorChoice::Cpu,
            ..Config::default()
        };
        let (plan, configs) = make_plan(&base, &[], &[]).unwrap();
        let split = varlab::data::Split {
            train: cifar_from_records("train", &common::cifar_records(40, 1)).unwrap(),
            test: cifar_from_records("test", &common::cifar_records(10, 2)).unwrap(),
        };
        let mut exp = Experiment::new(configs[0].clone(), &split).unwrap();
        while !exp.is_done() {
            pollster::block_on(exp.step()).unwrap();
        }
        let mut result = exp.result();
        result.jobs = vec![JobRecord {
            index: 0,
            config_hash: configs[0].hash(),
            ..JobRecord::default()
        }];
        PlanFiles {
            plan: serde_json::to_string_pretty(&plan).unwrap(),
            run_config: configs[0].to_json(),
            result: serde_json::to_string_pretty(&result).unwrap(),
        }
    })
}

/// A mutated JSON file: its text damaged, or one value somewhere in it (at any depth)
/// replaced by an extreme one.
fn json_case(rng: &mut Rng, text: &str) -> String {
    if rng.next_u64().is_multiple_of(3) {
        let mut bytes = text.as_bytes().to_vec();
        mutate(rng, &mut bytes);
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    let extremes = [
        serde_json::json!(-1),
        serde_json::json!(1e308),
        serde_json::json!(7.0),
        serde_json::json!(u64::MAX),
        serde_json::json!(10_000_000),
        serde_json::json!(99),
        serde_json::json!(null),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(0),
        serde_json::json!(2),
    ];
    // Walk down a random path and replace what is there.
    let mut at = &mut v;
    loop {
        let n = match &*at {
            serde_json::Value::Object(o) => o.len(),
            serde_json::Value::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || rng.next_u64().is_multiple_of(4) {
            break;
        }
        let i = (rng.next_u64() % n as u64) as usize;
        at = match at {
            serde_json::Value::Object(o) => o.values_mut().nth(i).unwrap(),
            serde_json::Value::Array(a) => &mut a[i],
            _ => unreachable!(),
        };
    }
    *at = extremes[(rng.next_u64() % extremes.len() as u64) as usize].clone();
    v.to_string()
}

/// Plans, run configs and results, mutated, through the checks `merge` and `run` apply and
/// then through the merge itself: a sentence or a merged result, never a panic, and never
/// more than [`LIMIT`] allocated (a plan's count is checked before it sizes anything).
#[test]
fn plan_run_and_result_json_never_panic_nor_allocate_without_bound() {
    use varlab::experiment::plan::merge_plan;
    use varlab::experiment::untrusted::{parse_plan, parse_result, parse_run_config};
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = plan_files();
    let per_kind: u64 = std::env::var("VARLAB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let good_plan = parse_plan("plan.json", &files.plan).unwrap();
    let good_result = parse_result("0000.json", &files.result).unwrap();
    std::panic::set_hook(Box::new(|_| {}));
    let mut accepted = [0usize; 3];
    let mut worst = 0usize;
    for i in 0..3 * per_kind {
        let kind = i % 3;
        let mut rng = Rng::new(0x91A4 ^ i.wrapping_mul(0x9E37_79B9));
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| match kind {
            0 => {
                let text = json_case(&mut rng, &files.plan);
                parse_plan("plan.json", &text)
                    .and_then(|plan| {
                        merge_plan(&plan, vec![("0000.json".into(), good_result.clone())])
                    })
                    .is_ok()
            }
            1 => parse_run_config("0000.json", &json_case(&mut rng, &files.run_config)).is_ok(),
            _ => {
                let text = json_case(&mut rng, &files.result);
                parse_result("0000.json", &text)
                    .and_then(|r| merge_plan(&good_plan, vec![("0000.json".into(), r)]))
                    .is_ok()
            }
        }));
        let grew = PEAK.load(Relaxed).saturating_sub(before);
        worst = worst.max(grew);
        let _ = std::panic::take_hook();
        assert!(outcome.is_ok(), "case {i} (kind {kind}) panicked");
        std::panic::set_hook(Box::new(|_| {}));
        assert!(
            grew <= LIMIT,
            "case {i} (kind {kind}) allocated {grew} bytes"
        );
        accepted[kind as usize] += outcome.unwrap() as usize;
    }
    let _ = std::panic::take_hook();
    println!(
        "fuzz: {per_kind} cases per kind, no panic; accepted plan {}, run config {}, result {}; \
         largest allocation of one case {} KiB",
        accepted[0],
        accepted[1],
        accepted[2],
        worst / 1024
    );
    assert!(accepted.iter().all(|&a| a > 0), "{accepted:?}");
}

/// `varlab merge` end to end on mutated plans and results: exit code 0, 1 (runs missing)
/// or 2 (refused) with one sentence, never a panic (101).
#[test]
fn merge_end_to_end_never_panics() {
    // The allocation counters are global: not while another test measures.
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = plan_files();
    let dir = std::env::temp_dir().join(format!("varlab-fuzz-merge-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("results")).unwrap();
    let (plan, result, merged) = (
        dir.join("plan.json"),
        dir.join("results/0000.json"),
        dir.join("merged.json"),
    );
    let cases: u64 = std::env::var("VARLAB_FUZZ_MERGE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..cases {
        let mut rng = Rng::new(0x3E46 ^ i.wrapping_mul(0x9E37_79B9));
        let (p, r) = match i % 2 {
            0 => (json_case(&mut rng, &files.plan), files.result.clone()),
            _ => (files.plan.clone(), json_case(&mut rng, &files.result)),
        };
        std::fs::write(&plan, p).unwrap();
        std::fs::write(&result, r).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_varlab"))
            .args([
                "merge",
                result.to_str().unwrap(),
                "--json",
                merged.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=2)) && !err.contains("panicked"),
            "case {i}: {code:?} {err}"
        );
        if code != Some(0) {
            assert_eq!(err.lines().count(), 1, "case {i}: {err}");
        }
        *codes.entry(code.unwrap()).or_insert(0) += 1;
    }
    println!("merge fuzz: {cases} cases, exit codes {codes:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
