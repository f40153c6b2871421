#!/bin/bash
# RESULTS.md, "λ sweep" on MNIST (10k/2k): SGD and VAR at several λ, 8 paired seeds (0–7).
#
#   scripts/results-lambda.sh [MODEL] [OUTDIR] [EXECUTOR] [LAMBDAS]
#
# Defaults: lenet5, results/lambda-MODEL, cpu, "1e-4 2e-4 5e-4 1e-3 2e-3".
# Needs `cargo build --release` (or VARLAB=path/to/varlab). EXTRA adds flags to every run:
# the 2026-11-27 tables ran before `init` existed, so rerun them with
#   EXTRA="--init kaiming-normal --lr 0.02 --warmup 0.3" (the defaults then). Tabulate with
#   node scripts/results-table.mjs --diff sgd OUTDIR/*.json
set -euo pipefail
model=${1:-lenet5}; out=${2:-results/lambda-$model}; executor=${3:-cpu}
lambdas=${4:-1e-4 2e-4 5e-4 1e-3 2e-3}
bin=${VARLAB:-target/release/varlab}
mkdir -p "$out"
# shellcheck disable=SC2206 # EXTRA is split into flags on purpose
common=(--model "$model" --epochs 3 --batch 64 --seeds 8 --executor "$executor" ${EXTRA:-})
"$bin" compare "${common[@]}" --optim sgd --json "$out/sgd.json"
for lambda in $lambdas; do
  "$bin" compare "${common[@]}" --optim var --lambda "$lambda" --json "$out/var-$lambda.json"
done
