#!/usr/bin/env bash
# Three 3-epoch reruns of Fig. 4's ICML ADGM runs (seeds 1-3), one thread
# each, side by side, validation split only: the checkpoints after epochs
# 1-3 that experiments.probes.a_reward reads (RESULTS.md section 6).
#
#   bash experiments/early.sh OUT      # runs go to OUT/adgm-seed{1,2,3}
#
# Written from the runs' published flags
# (docs/results/mechanism/a_reward/early-adgm-seed*/flags.txt); the original
# script lived in a home directory lost on 2026-12-01.
{
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash experiments/early.sh OUT" >&2
  exit 2
fi
out=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
pids=()
for seed in 1 2 3; do
  mkdir -p "$out/adgm-seed$seed"
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "${PYTHON:-python}" launch.py \
    --flagfile=mnist100_cpu.flags --model=adgm --aux_warmup_epochs=10 \
    --seed=$seed --label_seed=$seed --validation_size=5000 --test_evaluation=never \
    --eval_every=1 --epochs=3 --time_budget_minutes=0 --ll_examples=0 \
    --checkpoint_every=1 --model_dir="$out/adgm-seed$seed" --progress=epoch \
    > "$out/adgm-seed$seed/launch.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
}
