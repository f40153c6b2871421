#!/bin/bash
# RESULTS.md, CIFAR-10 subset: one `varlab compare` per optimizer × seed, several at a time,
# each writing OUTDIR/<model>-<optimizer>-seed<k>.json; tabulate with scripts/results-table.mjs.
#
#   scripts/results-cifar.sh MODEL LR EPOCHS LAMBDA OUTDIR [OPTIMIZERS] [SEEDS]
#
# OPTIMIZERS defaults to sam,cram,sam+var,sgd,var (slowest first), SEEDS to "0 1 2".
# Environment: VARLAB (binary, default target/release/varlab), DATA (default
# ../shared/data/cifar10), EXECUTOR (default gpu), JOBS (processes at once, default 5),
# TIMEOUT (seconds per process, default none), EXTRA (flags added to every run: the
# 2026-11-27 tables need EXTRA="--init kaiming-normal --warmup 0.3", the defaults then).
set -euo pipefail
model=$1 lr=$2 epochs=$3 lambda=$4 out=$5
optims=${6:-sam,cram,sam+var,sgd,var} seeds=${7:-0 1 2}
bin=${VARLAB:-target/release/varlab} data=${DATA:-../shared/data/cifar10}
recal=0; [[ $model == resnet* ]] && recal=500
mkdir -p "$out"
for optim in ${optims//,/ }; do
  for seed in $seeds; do
    echo "$optim $seed"
  done
done | xargs -P "${JOBS:-5}" -L 1 bash -c '
  name="'"$out/$model"'-$0-seed$1"
  timeout '"${TIMEOUT:-0}"' "'"$bin"'" compare --dataset cifar10 --data "'"$data"'" --augment \
    --model '"$model"' --optim "$0" --seed "$1" --seeds 1 --lr '"$lr"' --epochs '"$epochs"' \
    --batch 128 --lambda '"$lambda"' --bn-recal '"$recal"' --executor '"${EXECUTOR:-gpu}"' \
    '"${EXTRA:-}"' --json "$name.json" > "$name.log" 2>&1 || echo "$name failed or timed out: $(tail -1 "$name.log")"'
