//! Records the git commit varlab is built from (`VARLAB_COMMIT`, `unknown` outside a git
//! checkout), for the provenance of cluster results (`varlab run`), and writes the WGSL
//! shaders the crate embeds (`OUT_DIR/shaders/`) with their comment lines blanked: the page's
//! wasm carries no shader comments (about 10 KB gzipped of its 500 KB budget), and line
//! numbers in shader errors still match `shaders/`.

use std::process::Command;

fn main() {
    shaders();
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=VARLAB_COMMIT={commit}");
    // Rebuilt when HEAD moves: HEAD itself, and the branch it points to (only files that
    // exist: a missing one would rebuild every time).
    let git = |arg: &str| {
        Command::new("git")
            .args(["rev-parse", arg])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let watch = |path: String| {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    };
    if let (Some(dir), Some(common)) = (git("--git-dir"), git("--git-common-dir")) {
        watch(format!("{dir}/HEAD"));
        if let Ok(head) = std::fs::read_to_string(format!("{dir}/HEAD")) {
            if let Some(branch) = head.trim().strip_prefix("ref: ") {
                watch(format!("{common}/{branch}"));
            }
        }
        watch(format!("{common}/packed-refs"));
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// `shaders/*.wgsl` into `OUT_DIR/shaders/`, every line that is only a `//` comment blanked.
fn shaders() {
    println!("cargo:rerun-if-changed=shaders");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let out = out.join("shaders");
    std::fs::create_dir_all(&out).expect("OUT_DIR is writable");
    for entry in std::fs::read_dir("shaders").expect("the shaders/ directory") {
        let path = entry.expect("a readable shaders/ entry").path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a UTF-8 shader");
        let stripped: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .flat_map(|l| [l, "\n"])
            .collect();
        let name = path.file_name().expect("a file name");
        std::fs::write(out.join(name), stripped).expect("OUT_DIR is writable");
    }
}
