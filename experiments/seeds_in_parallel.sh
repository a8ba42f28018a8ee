#!/usr/bin/env bash
# Runs one experiment config's seeds side by side, one process per seed, each
# with one TensorFlow thread (TF_NUM_INTRAOP_THREADS=1, TF_NUM_INTEROP_THREADS=1):
#
#   bash experiments/seeds_in_parallel.sh CONFIG OUT SEED [SEED ...]
#   e.g. bash experiments/seeds_in_parallel.sh experiments/aux_cap.json ~/adgm-results/aux_cap 1 2 3
#
# Each process is `python -m adgm_tf.experiments --config=CONFIG --out=OUT
# --seeds=SEED`, so a finished seed is skipped and an interrupted one resumes,
# and a later plain `python -m adgm_tf.experiments --config=CONFIG --out=OUT`
# finds every seed finished and only reports. Logs: OUT/parallel-seedN.log.
# This stands in for the helper scripts that ran Fig. 4's later runs
# (fig4_direct.sh) and the aux_cap seeds (aux_cap.sh) in a home directory that
# was lost on 2026-12-01; it is written from their description in
# docs/RESULTS.md ("the runner's exact arguments", "one thread each"), not
# copied from them. Runs are deterministic per thread count: one thread here
# rounds differently from two.
{
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash experiments/seeds_in_parallel.sh CONFIG OUT SEED [SEED ...]" >&2
  exit 2
fi
config=$1; out=$2; shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
mkdir -p "$out"
pids=()
for seed in "$@"; do
  (cd "$repo" && TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
     "$python" -m adgm_tf.experiments --config="$config" --out="$out" --seeds="$seed" \
     > "$out/parallel-seed$seed.log" 2>&1) &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "seeds_in_parallel.sh: seed ${*:$((i + 1)):1} failed; see $out/parallel-seed${*:$((i + 1)):1}.log" >&2
    status=1
  fi
done
exit $status
}
