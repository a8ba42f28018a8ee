#!/usr/bin/env bash
# The long run to its end, over as many launches as it takes (docs/RESULTS.md,
# section 6), then the final numbers of the checkpoint chosen by validation error.
#
#   bash experiments/long_run.sh RUN_DIR [more launch.py flags, e.g. --idx_dir=DIR]
#
# 1. Launches `python launch.py --flagfile=mnist100_long.flags --model_dir=RUN_DIR
#    --chunk_minutes=150 [flags]` again and again: each launch trains 150
#    minutes, checkpoints and says "chunk over"; the run ends when launch.py
#    writes RUN_DIR/metrics.json (only when it reaches --epochs).
# 2. Evaluates best/ once (python -m adgm_tf.evaluate --checkpoint=best): 100
#    samples of a, the importance-weighted test log-likelihood (K = 1000, all
#    10,000 test images: 1.27 hours on 2 cores for long_sdgm3) and class-conditional
#    samples, into RUN_DIR/final/ (best_eval.json, samples.png, log, and
#    ll_per_image.npz: the estimate per test image). It is written to
#    RUN_DIR/final.partial/ and renamed when complete; cut, it continues from
#    the log-likelihoods already in final.partial/ when run again.
# 3. With --keep_epochs (launch.py), evaluates each RUN_DIR/kept/epoch-<E>/best
#    the same way but without the log-likelihood, into
#    RUN_DIR/final/kept-epoch-<E>.json: the run's figures at shorter lengths,
#    the test set read with the final one.
#
# Run it again at any time (after a stop, a kill or a reboot): it resumes the
# run, or redoes only the missing final evaluation, or says the run is done.
#
# To go on past the end of a finished run, give a larger --epochs=N among the
# flags: the finished run's metrics.json and final/ are kept as
# metrics-epochs<E>.json and final-epochs<E>/ (E: the epochs it had; nothing
# is overwritten), and the run continues from its last checkpoint to N, then
# best/ (chosen over all its evaluations) is evaluated again into final/.
# It stops at the first launch that fails or is interrupted or killed (Ctrl-C,
# the OOM killer: it names the signal; run it again), at a launch that ends without a new
# checkpoint, and when launch.py's guard stops the run because a died (exit 3). The output of every launch is appended to RUN_DIR.log.
#
# Environment: PYTHON (default python3), FLAGFILE (default mnist100_long.flags),
# CHUNK_MINUTES (150), FINAL_SAMPLES (100), FINAL_LL_EXAMPLES (10000),
# FINAL_LL_SAMPLES (1000).
set -u -o pipefail
# The body sits in braces that end in exit: bash reads it whole before running it,
# so a checkout that changes this file while a run goes on cannot change the driver.
{

PROG="long_run.sh"
die() { echo "$PROG: error: $*" >&2; exit 2; }

[ $# -ge 1 ] && [ -n "$1" ] && [ "${1#-}" = "$1" ] || die "give the run directory first: bash experiments/long_run.sh RUN_DIR [launch.py flags]"
RUN="${1%/}"; shift
case "$RUN" in /*) ;; *) RUN="$PWD/$RUN" ;; esac
PYTHON="${PYTHON:-python3}"
FLAGFILE="${FLAGFILE:-mnist100_long.flags}"
CHUNK_MINUTES="${CHUNK_MINUTES:-150}"
LOG="$RUN.log"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v "$PYTHON" > /dev/null || die "PYTHON=$PYTHON is not a command; set PYTHON to the python that has adgm_tf installed (e.g. PYTHON=.venv/bin/python)."
PYTHON="$(command -v "$PYTHON")"
cd "$REPO" || die "cannot enter the repository $REPO"
[ -f "$FLAGFILE" ] || die "FLAGFILE=$FLAGFILE not found in $REPO; give a flagfile relative to the repository."
[ -d "$(dirname "$RUN")" ] || die "the parent of $RUN does not exist; create it first (mkdir -p $(dirname "$RUN"))."

# The forwarded flags that tell evaluate where the data is, and the last --epochs.
DATA_FLAGS=()
EPOCHS=""
for arg in "$@"; do
  case "$arg" in
    --idx_dir=*|--data_dir=*) DATA_FLAGS+=("$arg") ;;
    --epochs=*) EPOCHS="${arg#--epochs=}" ;;
  esac
done
[ -z "$EPOCHS" ] || [[ "$EPOCHS" =~ ^[1-9][0-9]*$ ]] || die "--epochs=$EPOCHS: give a whole number of epochs, e.g. --epochs=1000."
touch "$LOG" 2> /dev/null || die "cannot write the log $LOG; choose a writable place for RUN_DIR."

newest_checkpoint() {
  ls "$RUN/checkpoints/" 2> /dev/null | sed -n 's/^\(ckpt-[0-9]*\)\.index$/\1/p' | sort -t- -k2 -n | tail -1
}

# 0. A run that reached its --epochs, given a larger one: keep what it has, then go on.
# metrics.json is written by launch.py with indent 2: its top-level keys
# ("epochs", "stopped_by_time_budget") are the lines with two spaces of indent.
if [ -f "$RUN/metrics.json" ] && [ -n "$EPOCHS" ]; then
  DONE="$(sed -n 's/^  "epochs": \([0-9.]*\),\{0,1\}$/\1/p' "$RUN/metrics.json")"
  if grep -q '^  "stopped_by_time_budget": true' "$RUN/metrics.json"; then
    echo "$PROG: the run ended at epoch $DONE, at its time budget, not at its --epochs; it is not extended."
  elif ! [[ "$DONE" =~ ^[0-9]+(\.0+)?$ ]]; then
    die "$RUN/metrics.json gives no whole number of epochs (\"$DONE\") for a run that reached its --epochs: it is damaged or not launch.py's; restore it from the run's publication."
  elif [ "$EPOCHS" -gt "${DONE%%.*}" ]; then
    DONE="${DONE%%.*}"
    for kept in "$RUN/metrics-epochs$DONE.json" "$RUN/final-epochs$DONE"; do
      [ -e "$kept" ] && die "$kept exists already; move it away and run the same command again."
    done
    [ -e "$RUN/final.partial" ] && die "$RUN/final.partial exists: the final evaluation at epoch $DONE is unfinished; run without --epochs=$EPOCHS to finish it first, or move it away."
    if [ -e "$RUN/final" ]; then
      mv "$RUN/final" "$RUN/final-epochs$DONE" || die "cannot rename $RUN/final"
    fi
    mv "$RUN/metrics.json" "$RUN/metrics-epochs$DONE.json" || die "cannot rename $RUN/metrics.json"
    echo "$(date -Is) $PROG: the run ended at epoch $DONE; going on to --epochs=$EPOCHS (kept: metrics-epochs$DONE.json$([ -e "$RUN/final-epochs$DONE" ] && echo ", final-epochs$DONE/"))" | tee -a "$LOG"
  fi
fi

# 1. The run, chunk by chunk.
while [ ! -f "$RUN/metrics.json" ]; do
  before="$(newest_checkpoint)"
  out="$(mktemp)"
  echo "$(date -Is) $PROG: launch from ${before:-the start}" | tee -a "$LOG"
  # The braces' 2> /dev/null only hides bash's own "Killed ..." job report:
  # launch.py's messages go through tee.
  { "$PYTHON" launch.py --flagfile="$FLAGFILE" --model_dir="$RUN" \
      --chunk_minutes="$CHUNK_MINUTES" "$@" 2>&1 | tee -a "$LOG" "$out"; } 2> /dev/null
  rc=${PIPESTATUS[0]}
  chunk_over=0; grep -q "chunk over:" "$out" && chunk_over=1
  rm -f "$out"
  [ "$rc" -eq 3 ] && die "launch.py stopped the run: its auxiliary variable fell below --aux_alive_floor or --aux_swap_floor (exit 3; its line is above and in $LOG). That is a result to look into, not to resume past; history.csv and the checkpoint of that step are kept."
  newest="$(newest_checkpoint)"
  [ "$rc" -ge 128 ] && die "launch.py was interrupted or killed (exit $rc: signal $((rc - 128))); nothing is lost but the steps after the newest checkpoint (${newest:-none}): run the same command again to resume."
  [ "$rc" -eq 0 ] || die "launch.py failed (exit $rc; its message is above and in $LOG). Fix that and run the same command again: the run resumes from its newest checkpoint."
  [ -f "$RUN/metrics.json" ] && break
  [ "$chunk_over" -eq 1 ] || die "launch.py ended without finishing the run or a chunk (no metrics.json, no 'chunk over'); see $LOG."
  [ "$(newest_checkpoint)" != "$before" ] || die "the launch ended without a new checkpoint (newest: ${before:-none}); CHUNK_MINUTES=$CHUNK_MINUTES may be too short for one checkpoint interval."
done

# 3. (after 2) The kept epochs (--keep_epochs): what a run stopped at each
# would have chosen, kept/epoch-<E>/best, on the same images with the same
# samples of a as best/ (no log-likelihood), into final/kept-epoch-<E>.json.
FINAL="$RUN/final"
kept_evaluations() {
  local kept epoch out rc
  for epoch in $(ls "$RUN/kept" 2> /dev/null | sed -n 's/^epoch-\([0-9]*\)$/\1/p' | sort -n); do
    kept="$RUN/kept/epoch-$epoch"
    out="$FINAL/kept-epoch-$epoch.json"
    [ -f "$out" ] && continue
    [ -d "$kept/best" ] || { echo "$PROG: $kept has no best/ (no evaluation before epoch $epoch): skipped" | tee -a "$LOG"; continue; }
    echo "$(date -Is) $PROG: evaluation of kept/epoch-$epoch/best into $out" | tee -a "$LOG"
    { "$PYTHON" -m adgm_tf.evaluate --model_dir="$RUN" --checkpoint="$kept/best" \
        --samples="${FINAL_SAMPLES:-100}" --ll_examples=0 "${DATA_FLAGS[@]}" \
        --output="$out" 2>&1 | tee -a "$LOG"; } 2> /dev/null
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || die "the evaluation of $kept/best failed (exit $rc; its message is above and in $LOG). Fix what it says and run the same command again: it redoes only the missing evaluations."
  done
}
done_line() {
  local kept
  kept="$(ls "$FINAL" 2> /dev/null | sed -n 's/^kept-epoch-\([0-9]*\)\.json$/\1/p' | sort -n | paste -sd, -)"
  echo "$PROG: the run is done: $RUN/metrics.json, and best/'s final evaluation in $FINAL/$([ -n "$kept" ] && echo " (and the kept epochs $kept: kept-epoch-<E>.json)")"
}

# 2. The final evaluation of best/.
if [ -f "$FINAL/best_eval.json" ]; then
  kept_evaluations
  done_line
  exit 0
fi
[ -e "$FINAL" ] && die "$FINAL exists without best_eval.json; move it away and run the same command again."
PARTIAL="$RUN/final.partial"
# A cut earlier attempt leaves its log-likelihoods so far in $PARTIAL/ll_per_image.npz:
# keep them (evaluate continues from them, to the same result) and nothing else.
mkdir -p "$PARTIAL" && find "$PARTIAL" -mindepth 1 -maxdepth 1 ! -name ll_per_image.npz \
    -exec rm -rf {} + || die "cannot create $PARTIAL"
echo "$(date -Is) $PROG: final evaluation of best/ into $FINAL" | tee -a "$LOG"
{ "$PYTHON" -m adgm_tf.evaluate --model_dir="$RUN" --checkpoint=best \
    --samples="${FINAL_SAMPLES:-100}" --ll_examples="${FINAL_LL_EXAMPLES:-10000}" \
    --ll_samples="${FINAL_LL_SAMPLES:-1000}" --ll_resume_file="$PARTIAL/ll_per_image.npz" \
    "${DATA_FLAGS[@]}" \
    --output="$PARTIAL/best_eval.json" --samples_png="$PARTIAL/samples.png" \
    2>&1 | tee -a "$LOG" "$PARTIAL/log"; } 2> /dev/null
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || die "the final evaluation failed (exit $rc; its message is above and in $PARTIAL/log). Fix what it says and run the same command again: it redoes the evaluation, continuing from $PARTIAL/ll_per_image.npz if that is kept."
mv "$PARTIAL" "$FINAL" || die "cannot rename $PARTIAL to $FINAL"
kept_evaluations
done_line
exit 0
}
