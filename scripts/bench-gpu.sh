#!/bin/bash
# GPU executor figures for BENCHMARKS.md ("GPU kernels for small layers"): builds the
# release binary, then for LeNet-5 (MNIST), ResNet-8 and ViT-tiny (CIFAR-10) at batch 128
# prints `varlab bench step` (SGD, GPU executor) and `varlab bench profile` (per-kernel
# totals and dispatch counts, GPU timestamps). Meant for a real GPU (the H200 re-check);
# on lavapipe it runs, slowly.
#
#   scripts/bench-gpu.sh [OUTDIR]
#
# OUTDIR (default bench-gpu-out) receives one .txt and one .json per command.
# Environment: BATCH (default 128), STEPS (default 10), ROUNDS (default 3), REPS (default 3).
set -euo pipefail
out=${1:-bench-gpu-out}
batch=${BATCH:-128} steps=${STEPS:-10} rounds=${ROUNDS:-3} reps=${REPS:-3}
cargo build --release --bin varlab
bin=target/release/varlab
mkdir -p "$out"
for spec in lenet5:mnist resnet8:cifar10 vit-tiny:cifar10; do
  model=${spec%%:*} dataset=${spec##*:}
  echo "== $model ($dataset), batch $batch"
  "$bin" bench step --model "$model" --dataset "$dataset" --optim sgd --batch "$batch" \
    --executor gpu --steps "$steps" --rounds "$rounds" --json "$out/$model-step.json" \
    | tee "$out/$model-step.txt"
  "$bin" bench profile --model "$model" --dataset "$dataset" --batch "$batch" \
    --reps "$reps" --json "$out/$model-profile.json" | tee "$out/$model-profile.txt"
done
