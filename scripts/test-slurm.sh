#!/usr/bin/env bash
# The cluster sweep on a real Slurm (called by `make test`): starts a throwaway one-node
# cluster (munged, slurmctld, slurmd; every file in one scratch directory, stopped at the
# end), submits a tiny plan with scripts/slurm/submit.sh (MLP, SGD and VAR × 2 seeds),
# cancels one task mid-run, checks it left no result and that the merge names it, submits
# again (the finished runs are kept, the cancelled one trains), and checks that the merged
# result equals `varlab compare` of the same options run here. Skips, saying why, only where
# Slurm cannot run (packages missing, not root).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[slurm test] %s\n' "$*"; }

for c in munged slurmctld slurmd sbatch squeue scancel sinfo; do
  if ! command -v "$c" >/dev/null 2>&1; then
    say "SKIPPED: $c is not installed (Debian's slurm-wlm and munge; scripts/setup.sh installs them)."
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  say "SKIPPED: a one-node cluster's slurmd runs as root, and this is user $(id -un)."
  exit 0
fi

if [ -z "${VARLAB:-}" ]; then
  cargo build --quiet --bin varlab
  VARLAB=$PWD/target/debug/varlab
fi
export VARLAB

S=$(mktemp -d /tmp/varlab-slurm.XXXXXX)
mkdir -p "$S"/{state,spool,log,munge,run}
chmod 700 "$S/munge"
ok=0
stop() {
  for f in slurmd slurmctld munged; do
    if [ -f "$S/run/$f.pid" ]; then kill "$(cat "$S/run/$f.pid")" 2>/dev/null || true; fi
  done
  sleep 1
  if [ "$ok" -ne 1 ]; then
    say "FAILED; the logs:"
    for f in "$S"/log/* "$S"/sweep/*.out; do
      [ -f "$f" ] && { echo "---- $f"; tail -n 40 "$f"; }
    done
  else
    rm -rf "$S"
  fi
}
trap stop EXIT
fail() { say "FAILED: $*"; exit 1; }

# Two free ports for slurmctld and slurmd.
free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port from $1"
}
ctl_port=$(free_port 26817)
d_port=$(free_port $((ctl_port + 1)))

dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge/munge.key"
munged --key-file="$S/munge/munge.key" --socket="$S/run/munge.sock" \
  --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" --seed-file="$S/munge/seed" -f
host=$(hostname -s)
cat >"$S/slurm.conf" <<EOF
ClusterName=varlabtest
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$S/run/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$(nproc) RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$S/slurm.conf
slurmctld -f "$S/slurm.conf"
sleep 2
slurmd -f "$S/slurm.conf"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %T | grep -q idle || fail "the node did not come up idle: $(sinfo 2>&1)"
say "a one-node cluster is up ($host, slurmctld port $ctl_port)"

# Large enough that a run lasts a few seconds (to be cancelled mid-run), small for CI.
opts=(--model mlp --optim sgd,var --seeds 2 --train-size 12000 --test-size 1000
  --epochs 2 --sparsities 0.5,0.9,0.98 --executor cpu)
D=$S/sweep

wait_for() { # job ids: until squeue lists none of them (bounded)
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return
    sleep 0.5
  done
  fail "jobs $1 still queued after 300 s: $(squeue)"
}
submit() {
  scripts/slurm/submit.sh "$D" --throttle 2 -- "${opts[@]}" | tee "$S/submit.out"
  array=$(sed -n 's/^submitted: array \([0-9]*\) .*merge \([0-9]*\)$/\1/p' "$S/submit.out")
  merge=$(sed -n 's/^submitted: array \([0-9]*\) .*merge \([0-9]*\)$/\2/p' "$S/submit.out")
  [ -n "$array" ] && [ -n "$merge" ] || fail "no job ids from submit.sh"
}

# 1. Submit; cancel task 0 once it is training.
submit
log0=$D/varlab-run-${array}_0.out
for _ in $(seq 600); do
  grep -q '^executor:' "$log0" 2>/dev/null && break
  sleep 0.1
done
grep -q '^executor:' "$log0" || fail "task 0 did not start"
scancel "${array}_0"
say "cancelled task 0 of array $array mid-run"
wait_for "$array,$merge"
[ ! -e "$D/results/0000.json" ] || fail "the cancelled task left a result"
ls "$D/results" | grep -q partial && fail "the cancelled task left a partial file"
[ "$(ls "$D/results" | wc -l)" -eq 3 ] || fail "expected 3 results, found: $(ls "$D/results")"
grep -q '"partial": "3 of 4 planned runs finished; missing: run 0 (sgd seed 0)."' \
  "$D/merged.json" || fail "the first merge does not name the missing run"
say "the cancelled run left no result; the merge names it"

# 2. Submit again: three tasks keep their results, task 0 trains.
submit
wait_for "$array,$merge"
for i in 1 2 3; do
  grep -q 'is already done' "$D/varlab-run-${array}_$i.out" || fail "task $i trained again"
done
[ -f "$D/results/0000.json" ] || fail "the re-submitted task 0 wrote no result"
grep -q '"partial"' "$D/merged.json" && fail "the second merge is still partial"
say "the re-submitted array completed run 0 and kept runs 1–3"

# 3. The same options here, in one go: the same result.
"$VARLAB" compare "${opts[@]}" --json "$S/local.json" >/dev/null 2>"$S/log/local.err" ||
  fail "local compare: $(cat "$S/log/local.err")"
node -e '
const fs = require("fs");
const read = (p) => {
  const r = JSON.parse(fs.readFileSync(p, "utf8"));
  for (const run of r.runs) delete run.timing;
  delete r.environment; delete r.jobs;
  return JSON.stringify(r);
};
if (read(process.argv[1]) !== read(process.argv[2])) {
  console.error("the merged result differs from the local compare"); process.exit(1);
}
const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
console.log(`[slurm test] merged ${m.runs.length} runs = local compare; jobs on ${[...new Set(m.jobs.map((j) => j.host))].join(", ")}`);
' "$D/merged.json" "$S/local.json" || fail "merged ≠ local"
ok=1
say "passed"
