//! Records the git commit varlab is built from (`VARLAB_COMMIT`, `unknown` outside a git
//! checkout), for the provenance of cluster results (`varlab run`).

use std::process::Command;

fn main() {
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
