#!/bin/bash
# The autotuner stall, before and after 7a5bd21: the same 8-epoch S = 5 run
# (10 steps an epoch, --nograppler, one thread) with tf.data's autotuner put
# back (data.without_autotune replaced by the identity: the code before the fix)
# on core 0 and as shipped on core 1, side by side, nothing else running.
#   CODE=<checkout> OUT=<scratch dir> ADGM_MNIST_DIR=<IDX files> bash ab.sh
set -u
cd "${CODE:?set CODE to a checkout of the repository}"
export ADGM_MNIST_DIR=${ADGM_MNIST_DIR:?set ADGM_MNIST_DIR to the IDX files} TF_CPP_MIN_LOG_LEVEL=3 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
ARGS="--flagfile=mnist100_long.flags --mc_samples=5 --unlabeled_weighting=mean --max_unlabeled=1000 --validation_size=500 --test_evaluation=never --eval_every=10 --eval_samples_periodic=2 --eval_samples=2 --ll_examples=0 --checkpoint_every=1 --time_budget_minutes=0 --progress=epoch --seed=1 --label_seed=1 --epochs=8 --nograppler"
one() {  # core tag patch(0/1)
  rm -rf "$OUT/$2"
  taskset -c "$1" ${PYTHON:-python} -c "
import runpy, sys
from adgm_tf import data
if $3:
  data.without_autotune = lambda ds: ds
sys.argv = ['launch.py'] + sys.argv[1:]
runpy.run_path('launch.py', run_name='__main__')" $ARGS --model_dir="$OUT/$2" > "$OUT/$2.log" 2>&1
}
one 0 autotune_on 1 & one 1 autotune_off 0 & wait
for t in autotune_on autotune_off; do
  echo "$t: $(grep -a 'weights sha256' "$OUT/$t.log")"
  ${PYTHON:-python} -c "
import csv
rows = list(csv.DictReader(open('$OUT/$t/history.csv')))
print('  wall per epoch', [round(float(b['wall_time']) - float(a['wall_time']), 1) for a, b in zip(rows, rows[1:])])
print('  cpu per epoch ', [round(float(b['cpu_time']) - float(a['cpu_time']), 1) for a, b in zip(rows, rows[1:])])
print('  8 epochs: wall', rows[-1]['wall_time'], 's, cpu', rows[-1]['cpu_time'], 's')"
done
