#!/usr/bin/env bash
# The 2-epoch probe read before RESULTS.md section 5's third rule: the SDGM
# on the CPU recipe of 2026-11-30 with the a-term warm-up off, seed 1,
# validation split only (the test set is not read).
#
#   bash experiments/sdgm_z.sh RUN_DIR
#
# Written from that section's description and the flags of
# docs/results/sdgm_nowarmup/runs/sdgm_nowarmup-seed1/flags.txt (whose run
# continued this probe to 10 epochs); the original script lived in a home
# directory lost on 2026-12-01. Today's mnist100_cpu.flags is that recipe
# with --model=sdgm --aux_warmup_epochs=0 already set.
{
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash experiments/sdgm_z.sh RUN_DIR" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
exec "${PYTHON:-python}" launch.py --flagfile=mnist100_cpu.flags --model=sdgm \
  --aux_warmup_epochs=0 --seed=1 --label_seed=1 --validation_size=5000 \
  --test_evaluation=never --eval_every=1 --epochs=2 --time_budget_minutes=0 \
  --ll_examples=0 --checkpoint_every=1 --model_dir="$1" --progress=epoch
}
