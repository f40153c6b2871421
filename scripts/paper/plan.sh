#!/usr/bin/env bash
# The paper-scale sweep of issue 25 (item 5) as `varlab plan` directories, one per
# model × dataset, for scripts/slurm/submit.sh --gpu:
#
#   scripts/paper/plan.sh OUT [--submit] [--mini] [--parts "resnet20:cifar10 …"]
#
# Without --submit it only plans (OUT/PART/plan.json and runs/NNNN.json) and prints the
# submit.sh command of each part; with --submit it calls submit.sh --gpu for each part (on a
# Slurm login node). Data: VARLAB_CIFAR10 (a directory of .bin files or
# cifar-10-binary.tar.gz) and VARLAB_CIFAR100 (train.bin + test.bin or
# cifar-100-binary.tar.gz), passed to each run as --data.
#
# The grid: ResNet-20 and ResNet-18 (CIFAR variants) × full CIFAR-10 and CIFAR-100 ×
# SGD, VAR, SAM, CrAM, S²-SAM × 8 seeds = 4 parts of 40 runs; one-shot global magnitude
# pruning at 50, 60, 70, 80, 90, 95, 98 and 99 % with BatchNorm re-calibration on 2 000
# training images.
#
# The schedule (stated here because the VAR paper's own could not be checked from this
# workspace; it is the standard CIFAR ResNet recipe of the S²-SAM and CrAM code bases):
# 160 epochs (the S²-SAM code's default), batch 128, peak lr 0.1, 1 epoch of warm-up then
# cosine, momentum 0.9, weight decay 5e-4, random crop (pad 4) + horizontal flip;
# VAR λψ₀ = 1.4 (varlab's default, λ = 1.4/ψ at initialisation); SAM and S²-SAM ρ = 0.05;
# CrAM-Multi over sparsities {0.5, 0.7, 0.9} with ρ = 0.05.
#
# GPU time (an estimate, not a measurement: no GPU was lent when this was written). Basis:
# ResNet-8 SGD at batch 128 took 6.70 ms/step on an H200 (BENCHMARKS.md, 2026-11-27), scaled by
# forward multiply-adds per image (ResNet-8 12.5 M, ResNet-20 40.8 M, ResNet-18 555 M):
# ResNet-20 ≈ 22 ms/step, ResNet-18 ≈ 300 ms/step; 160 epochs × 391 steps = 62 560 steps per
# run; per part 8 seeds × (SGD + VAR + S²-SAM + 2·SAM + 2·CrAM) = 56 SGD-run equivalents:
# ResNet-20 ≈ 21 h and ResNet-18 ≈ 290 h per dataset, ≈ 620 GPU-hours in all. ResNet-8's
# step is dominated by BatchNorm and launches, so the scaling is crude (likely high for
# ResNet-20); re-measure with `varlab bench step --model resnet18 --dataset cifar10
# --optim sgd --executor gpu` before booking. ResNet-18's GPU executor needs 12.4 GB at batch
# 128 (96 MB per image; `varlab model resnet18 --dataset cifar10`), its largest buffer
# 1.21 GB, which the adapter's per-buffer limit must allow (else it is refused up front).
#
# --mini: the same plans at 2 epochs, 2 seeds, on what the data directory holds (the shared
# 10k/2k CIFAR-10 subset), sized to check the path end to end, not to measure anything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: plan.sh OUT [--submit] [--mini] [--parts "MODEL:DATASET …"]}
shift
submit=0 mini=0 parts="resnet20:cifar10 resnet18:cifar10 resnet20:cifar100 resnet18:cifar100"
while [ $# -gt 0 ]; do
  case "$1" in
    --submit) submit=1; shift ;;
    --mini) mini=1; shift ;;
    --parts) parts=$2; shift 2 ;;
    *) echo "plan.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "${VARLAB:-}" ]; then
  if [ -x "$here/../../target/release/varlab" ]; then VARLAB=$here/../../target/release/varlab
  else VARLAB=varlab; fi
fi
epochs=160 seeds=8
if [ "$mini" = 1 ]; then epochs=2 seeds=2; fi
common=(--optim sgd,var,sam,cram,s2sam --seeds "$seeds" --epochs "$epochs" --batch 128
  --lr 0.1 --warmup 1 --schedule cosine --momentum 0.9 --wd 5e-4 --augment
  --lambda-psi0 1.4 --rho 0.05 --cram-sparsity 0.5,0.7,0.9
  --sparsities 0.5,0.6,0.7,0.8,0.9,0.95,0.98,0.99 --scope global --bn-recal 2000
  --executor gpu)
for part in $parts; do
  model=${part%%:*} dataset=${part##*:}
  case "$dataset" in
    cifar10) data=${VARLAB_CIFAR10:-} ;;
    cifar100) data=${VARLAB_CIFAR100:-} ;;
    *) echo "plan.sh: unknown dataset in '$part'" >&2; exit 2 ;;
  esac
  dir=$out/$model-$dataset
  opts=(--model "$model" --dataset "$dataset" "${common[@]}")
  if [ "$mini" = 1 ]; then opts+=(--train-size 2000 --test-size 1000); fi
  if [ "$submit" = 1 ]; then
    [ -n "$data" ] || { echo "plan.sh: set VARLAB_${dataset^^} to the $dataset data" >&2; exit 2; }
    VARLAB=$VARLAB VARLAB_DATA=$data "$here/../slurm/submit.sh" "$dir" --gpu --throttle 8 -- "${opts[@]}"
  else
    "$VARLAB" plan "${opts[@]}" --out "$dir" >/dev/null
    count=$(sed -n 's/^  "count": \([0-9]*\),$/\1/p' "$dir/plan.json")
    echo "$dir: $count runs; submit with:"
    echo "  VARLAB_DATA=${data:-DATA} scripts/slurm/submit.sh $dir --gpu --throttle 8 -- ${opts[*]}"
  fi
done
