//! The one direction of flow (ARCHITECTURE.md), checked on the source: a module of the
//! library imports only modules of lower layers, never one beside or above it. So a run
//! knows no experiment, parsers know no GPU, and no core module knows a front end.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of `src/` and its layer, lowest first.
const LAYERS: &[(&str, u32)] = &[
    ("rng", 0),
    ("time", 0),
    ("data", 1),
    ("gpu", 1),
    ("ops", 2),
    ("nn", 3),
    ("exec", 4),
    ("prune", 4),
    ("export", 4),
    ("optim", 5),
    ("train", 6),
    ("experiment", 7),
    ("bench", 7),
    ("smoke", 8),
    ("web", 9),
];

/// The `crate::NAME` modules named in the code (comments left out) of `path` (a file or a
/// directory, recursively).
fn imports(path: &Path, out: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            imports(&entry.unwrap().path(), out);
        }
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let layer = |m: &str| LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir("src").unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        if ["lib", "bin"].contains(&module.as_str()) {
            continue;
        }
        let Some(own) = layer(&module) else {
            panic!("src/{module} has no layer in LAYERS (tests/architecture.rs, ARCHITECTURE.md)");
        };
        let mut used = BTreeSet::new();
        imports(&path, &mut used);
        for other in used.iter().filter(|m| **m != module && layer(m).is_some()) {
            if layer(other).unwrap() >= own {
                wrong.push(format!("{module} (layer {own}) imports {other}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the flow: {wrong:?}");
}
