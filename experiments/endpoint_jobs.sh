#!/usr/bin/env bash
# Issue 30's runs on one core, one after another (docs/RESULTS.md, section 7):
#
#   bash experiments/endpoint_jobs.sh CORE OUT JOB [JOB ...]
#   e.g. bash experiments/endpoint_jobs.sh 1 ~/adgm-results long_split_bn:2 long_s5:2
#        bash experiments/endpoint_jobs.sh 0 ~/adgm-results long:long_s5
#
# A job is either
#   NAME:SEED   a run of experiments/endpoint_screen.json, through the
#               experiment runner (python -m adgm_tf.experiments --runs=NAME
#               --seeds=SEED --out=OUT/endpoint_screen), or
#   long:NAME   the 200-epoch run of the screen's candidate NAME, seed 1
#               (rule 5): experiments/long_run.sh OUT/endpoint_long/NAME with
#               NAME's flagfile and flags, --epochs=200, validation split as in
#               the screen, no test error until the end, best/ at 50, 100, 150
#               and 200 epochs kept (--keep_epochs), then the final evaluation.
#               EXTRA_LONG_FLAGS adds flags (e.g. --nograppler; a later
#               --epochs=1000 --keep_epochs=... takes a finished run further).
#   long:NAME:SEED  the same with --seed=SEED --label_seed=SEED, in
#               OUT/endpoint_long/NAME-seedSEED (SEED 1 is long:NAME).
# Every process runs pinned to CORE (taskset) with one TensorFlow thread. Each
# job resumes where it stopped and a finished one is skipped, so after a stop,
# a kill or a reboot the same command goes on. ADGM_MNIST_DIR (default
# ../shared/data/mnist beside the repository) holds the IDX files; PYTHON
# (default .venv/bin/python of the repository). Logs: OUT/jobs-core<CORE>.log.
# The published copies of finished screen runs (docs/results/endpoint_screen/
# runs/) can be copied into OUT/endpoint_screen/runs/: the runner skips them.
set -u -o pipefail
{
PROG="endpoint_jobs.sh"
die() { echo "$PROG: error: $*" >&2; exit 2; }
[ $# -ge 3 ] || die "usage: bash experiments/endpoint_jobs.sh CORE OUT JOB [JOB ...] (JOB: NAME:SEED, long:NAME or long:NAME:SEED)"
CORE=$1; OUT=${2%/}; shift 2
[[ "$CORE" =~ ^[0-9]+$ ]] || die "CORE=$CORE: give a CPU number, e.g. 0"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
command -v "$PYTHON" > /dev/null || die "PYTHON=$PYTHON is not a command; set PYTHON to the python that has adgm_tf installed."
export ADGM_MNIST_DIR="${ADGM_MNIST_DIR:-$(cd "$REPO/../shared/data/mnist" 2> /dev/null && pwd)}"
[ -d "$ADGM_MNIST_DIR" ] || die "no MNIST IDX directory: set ADGM_MNIST_DIR to the four IDX files."
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=3
CONFIG="$REPO/experiments/endpoint_screen.json"
mkdir -p "$OUT/endpoint_screen" "$OUT/endpoint_long" || die "cannot create $OUT"
LOG="$OUT/jobs-core$CORE.log"
cd "$REPO" || die "cannot enter $REPO"

for job in "$@"; do
  case "$job" in
    long:*)
      name=${job#long:}; seed=1
      if [[ "$name" == *:* ]]; then
        seed=${name#*:}; name=${name%%:*}
        [[ "$seed" =~ ^[1-9][0-9]*$ ]] || die "$job: give the seed as a whole number from 1, e.g. long:$name:2"
      fi
      dir="$name"; [ "$seed" = 1 ] || dir="$name-seed$seed"
      # The candidate's flagfile and flags, from the screen's config.
      lines=$("$PYTHON" - "$CONFIG" "$name" 2>&1 <<'PY'
import json, sys
runs = {r["name"]: r for r in json.load(open(sys.argv[1]))["runs"]}
if sys.argv[2] not in runs:
  sys.exit(f"no candidate {sys.argv[2]!r} in {sys.argv[1]} (its candidates: {', '.join(runs)})")
print(runs[sys.argv[2]]["flagfile"])
for flag in runs[sys.argv[2]]["flags"]:
  print(flag)
PY
) || die "$job: $lines"
      mapfile -t spec <<< "$lines"
      echo "$(date -Is) $PROG: core $CORE: $job" | tee -a "$LOG"
      # shellcheck disable=SC2086
      FLAGFILE="${spec[0]}" PYTHON="$PYTHON" taskset -c "$CORE" bash experiments/long_run.sh \
          "$OUT/endpoint_long/$dir" "${spec[@]:1}" --seed="$seed" --label_seed="$seed" \
          --validation_size=5000 --epochs=200 --keep_epochs=50,100,150,200 \
          --test_evaluation=never --eval_every=5 --eval_samples_periodic=10 --eval_samples=10 \
          --ll_examples=0 --checkpoint_every=1 --time_budget_minutes=0 \
          --idx_dir="$ADGM_MNIST_DIR" ${EXTRA_LONG_FLAGS:-} >> "$LOG" 2>&1 \
        || die "$job failed; see $LOG and $OUT/endpoint_long/$dir.log"
      ;;
    *:*)
      name=${job%%:*}; seed=${job#*:}
      echo "$(date -Is) $PROG: core $CORE: $job" | tee -a "$LOG"
      taskset -c "$CORE" "$PYTHON" -m adgm_tf.experiments --config="$CONFIG" \
          --out="$OUT/endpoint_screen" --runs="$name" --seeds="$seed" >> "$LOG" 2>&1 \
        || die "$job failed; see $LOG"
      ;;
    *) die "$job: give NAME:SEED, long:NAME or long:NAME:SEED" ;;
  esac
done
echo "$(date -Is) $PROG: core $CORE: all jobs done" | tee -a "$LOG"
exit 0
}
