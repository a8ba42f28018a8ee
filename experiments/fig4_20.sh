#!/usr/bin/env bash
# Fig. 4 continued to 20 epochs: copies each 10-epoch run of M2, the SDGM and
# the ICML ADGM (experiments/fig4.json) and resumes the copy with
# experiments/fig4_20.json (--epochs=20; neither the learning-rate schedule
# nor the warm-up depends on --epochs, so the copy becomes the 20-epoch run).
#
#   bash experiments/fig4_20.sh FIG4_OUT FIG4_20_OUT [SEED ...]   # default seeds 1 2 3
#
# A seed whose 10-epoch run is missing is run from scratch for 20 epochs (as
# the seed-3 runs were on 2026-12-04, after the originals were lost).
# Written from RESULTS.md's description; the original script lived in a home
# directory lost on 2026-12-01.
{
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash experiments/fig4_20.sh FIG4_OUT FIG4_20_OUT [SEED ...]" >&2
  exit 2
fi
src=$1; dst=$2; shift 2
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dst/runs"
for seed in "${seeds[@]}"; do
  for model in adgm m2 sdgm; do
    from="$src/runs/$model-seed$seed"; to="$dst/runs/$model-seed$seed"
    if [ -d "$from/checkpoints" ] && [ ! -e "$to" ]; then
      cp -a "$from" "$to"
      mv "$to/metrics.json" "$to/metrics_epoch10.json"
    fi
  done
done
cd "$repo"
exec "${PYTHON:-python}" -m adgm_tf.experiments --config=experiments/fig4_20.json \
  --out="$dst" --seeds="$(IFS=,; echo "${seeds[*]}")"
}
