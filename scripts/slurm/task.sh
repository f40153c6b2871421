#!/usr/bin/env bash
# One task of a planned sweep: trains run N of DIR's plan and writes DIR/results/NNNN.json
# (atomically; a finished result for the same config is kept and the task exits 0 at once).
# N comes from the scheduler: SLURM_ARRAY_TASK_ID (a Slurm job array) or
# JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). The same script serves both.
#
#   task.sh DIR            environment: VARLAB (the binary; default `varlab` on PATH),
#                          VARLAB_DATA (--data for varlab run, e.g. CIFAR-10's tarball)
set -euo pipefail
dir=${1:?usage: task.sh DIR (a directory written by varlab plan)}
index=${SLURM_ARRAY_TASK_ID:-${JOB_COMPLETION_INDEX:-}}
if [ -z "$index" ]; then
  echo "task.sh: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set" >&2
  exit 2
fi
name=$(printf %04d "$index")
varlab=${VARLAB:-varlab}
data=()
if [ -n "${VARLAB_DATA:-}" ]; then data=(--data "$VARLAB_DATA"); fi
echo "task $index on $(hostname): $varlab run $dir/runs/$name.json"
exec "$varlab" run "$dir/runs/$name.json" --out "$dir/results/$name.json" "${data[@]}"
