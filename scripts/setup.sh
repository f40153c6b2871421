#!/usr/bin/env bash
# Installs everything varlab's page and tests need on a Debian 12 machine, and skips what
# is already there (safe to run again and again). Called by `make serve` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: software Vulkan (lavapipe) for native GPU tests, Chromium and its
#    driver for the browser tests, Node.js for the JS tools. Never Debian's binaryen.
want=(mesa-vulkan-drivers libvulkan1 chromium chromium-driver)
command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 1b. Slurm and munge, for the sweep test's throwaway one-node cluster
#     (scripts/test-slurm.sh). Not fatal: where they cannot be installed that test says so
#     and is skipped.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  say "apt-get install slurm-wlm munge (the cluster sweep test)"
  slurm_install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1; }
  slurm_install || { as_root apt-get update -qq >/dev/null 2>&1 && slurm_install; } ||
    say "could not install slurm-wlm and munge: the Slurm test will be skipped"
fi

# 2. Rust: the wasm target and the lint tools.
command -v cargo >/dev/null 2>&1 || { echo "[setup] cargo is missing: install Rust with rustup first." >&2; exit 1; }
rustup target list --installed | grep -qx wasm32-unknown-unknown || {
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
}
for c in clippy rustfmt; do
  rustup component list --installed | grep -q "^$c" || { say "rustup component add $c"; rustup component add "$c"; }
done

# 3. wasm-bindgen-cli at exactly the version Cargo.lock pins (trunk and the wasm test
#    runner use it from PATH), and trunk 0.21.14 (0.22 needs a newer rustc).
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]; then
  say "cargo install wasm-bindgen-cli $wb_version (about 5–10 minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version" --force
fi
if [ "$(trunk --version 2>/dev/null || true)" != "trunk 0.21.14" ]; then
  say "cargo install trunk 0.21.14 (about 15–20 minutes, once)"
  cargo install trunk --version 0.21.14 --locked --force
fi

# 4. JS dev tools (playwright-core drives the system Chromium; it downloads no browser).
stamp=node_modules/.varlab-lock.sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha256sum package-lock.json | cut -d' ' -f1)" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum package-lock.json | cut -d' ' -f1 > "$stamp"
fi

# 5. The page's built-in MNIST asset and bundled uPlot (also a trunk pre_build hook).
node scripts/mnist-asset.mjs

# 6. A private runtime directory silences Mesa's warning about XDG_RUNTIME_DIR.
if [ -n "${XDG_RUNTIME_DIR:-}" ]; then
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 0700 "$XDG_RUNTIME_DIR" 2>/dev/null || true
fi
say "ready"
