#!/bin/bash
# The GPU check for a real device (issue 24, item 4): builds the release binary, then
# `varlab bench gpu` prints for every model at batch 128 and 512 the ms/step of SGD, VAR,
# SAM and CrAM (GPU timestamps), the FLOPs per step, the achieved TFLOP/s and its share of
# the device's peak FP32 (from the data-sheet table by adapter name, or PEAK_TFLOPS), and
# checks the GPU executor against the CPU executor on that device (exit code 1 if they
# differ). Then `varlab bench profile` of ResNet-8 at batch 128 (per-kernel times). On a
# software adapter (lavapipe) it runs, slowly, and says its figures are a software
# adapter's.
#
#   scripts/bench-gpu.sh [OUTDIR]
#
# OUTDIR (default bench-gpu-out) receives gpu.txt/gpu.json and profile.txt/profile.json.
# Environment: BATCHES (default 128,512), MODELS (default all), STEPS (default 10),
# ROUNDS (default 3), REPS (default 3), PEAK_TFLOPS (default: by adapter name),
# CHECK_BATCH (default 16), BIN (a prebuilt varlab; default: build target/release/varlab).
# On lavapipe, a few minutes: BATCHES=16 STEPS=1 ROUNDS=1 REPS=1 scripts/bench-gpu.sh
set -euo pipefail
out=${1:-bench-gpu-out}
batches=${BATCHES:-128,512} steps=${STEPS:-10} rounds=${ROUNDS:-3} reps=${REPS:-3}
if [[ -z ${BIN:-} ]]; then
  cargo build --release --bin varlab
  BIN=target/release/varlab
fi
mkdir -p "$out"
args=(--batch "$batches" --steps "$steps" --rounds "$rounds" --check-batch "${CHECK_BATCH:-16}")
[[ -n ${MODELS:-} ]] && args+=(--models "$MODELS")
[[ -n ${PEAK_TFLOPS:-} ]] && args+=(--peak-tflops "$PEAK_TFLOPS")
"$BIN" bench gpu "${args[@]}" --json "$out/gpu.json" | tee "$out/gpu.txt"
"$BIN" bench profile --model resnet8 --dataset cifar10 --batch "${batches%%,*}" \
  --reps "$reps" --json "$out/profile.json" | tee "$out/profile.txt"
