#!/bin/bash
# RESULTS.md, "with PyTorch's default initialisation": the defaults (init pytorch, λψ₀ 1.4,
# lr 0.05, no warm-up) with paired seeds, and the init × λψ₀ ablation. Each part writes
# OUTDIR/PART/*.json; tabulate with
#   node scripts/results-table.mjs --diff sgd OUTDIR/PART/*.json
#
#   scripts/results-science.sh PART [OUTDIR]
#
# PART:
#   mlp       MLP on MNIST 10k/2k, SGD and VAR, 8 seeds, 3 epochs, every default
#   lenet5    the same for LeNet-5
#   ablation  MLP, init pytorch and kaiming-normal × λψ₀ 0.3, 1.4, 5 (SGD once per init)
#   cnn       the plain CNN on the CIFAR-10 subset, SGD and VAR, 4 seeds, 5 epochs, batch 128
#   resnet8   ResNet-8 on the CIFAR-10 subset, SGD, VAR and CrAM, 3 seeds, 3 epochs, BN re-cal
#   vit       ViT-tiny on the CIFAR-10 subset, SGD and VAR, 3 seeds, 3 epochs
# Environment: VARLAB (binary, default target/release/varlab), DATA (CIFAR-10, default
# ../shared/data/cifar10), EXECUTOR (default cpu), SEEDS (overrides the part's seed count),
# OPTIM (overrides the part's optimizers, e.g. OPTIM=sgd,var for resnet8), EPOCHS (overrides
# the part's epochs). On a real GPU, the longer CIFAR runs are e.g.
#   EXECUTOR=gpu EPOCHS=30 SEEDS=8 scripts/results-science.sh cnn results/gpu
set -euo pipefail
part=$1; out=${2:-results/science}/$part
bin=${VARLAB:-target/release/varlab} data=${DATA:-../shared/data/cifar10}
executor=${EXECUTOR:-cpu}
mkdir -p "$out"
run() { # NAME ARGS…: one compare, its table in NAME.log
  local name=$1; shift
  "$bin" compare --executor "$executor" "$@" --json "$out/$name.json" > "$out/$name.log" 2>&1 \
    || { echo "$out/$name failed: $(tail -1 "$out/$name.log")"; return 1; }
  echo "$out/$name.json"
}
cifar=(--dataset cifar10 --data "$data" --augment --batch 128)
case $part in
  mlp | lenet5)
    run "$part" --model "$part" --optim sgd,var --seeds "${SEEDS:-8}" --epochs 3 ;;
  ablation)
    for init in pytorch kaiming-normal; do
      run "sgd-$init" --model mlp --init "$init" --optim sgd --seeds "${SEEDS:-8}" --epochs 3
      for x in 0.3 1.4 5; do
        run "var-$init-$x" --model mlp --init "$init" --optim var --lambda-psi0 "$x" \
          --seeds "${SEEDS:-8}" --epochs 3
      done
    done ;;
  cnn)
    run cnn "${cifar[@]}" --model cnn --optim sgd,var --seeds "${SEEDS:-4}" --epochs "${EPOCHS:-5}" ;;
  resnet8)
    run resnet8 "${cifar[@]}" --model resnet8 --lr 0.1 --bn-recal 500 --optim "${OPTIM:-sgd,var,cram}" \
      --seeds "${SEEDS:-3}" --epochs "${EPOCHS:-3}" ;;
  vit)
    run vit "${cifar[@]}" --model vit-tiny --optim sgd,var --seeds "${SEEDS:-3}" --epochs "${EPOCHS:-3}" ;;
  *) echo "unknown part '$part'" >&2; exit 2 ;;
esac
