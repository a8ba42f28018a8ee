#!/bin/bash
# CPU seconds per S = 5 epoch with Grappler on and off: two 3-epoch runs side by
# side, one per core (taskset), one thread each; then again with the cores swapped.
#   CODE=<checkout> OUT=<scratch dir> ADGM_MNIST_DIR=<IDX files> bash speed.sh
# Per-epoch CPU time is read from each run's history.csv (epochs 2 and 3: the
# first holds the tracing).
set -u
cd "${CODE:?set CODE to a checkout of the repository}"
export ADGM_MNIST_DIR=${ADGM_MNIST_DIR:?set ADGM_MNIST_DIR to the IDX files} TF_CPP_MIN_LOG_LEVEL=3 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
C="--flagfile=mnist100_long.flags --mc_samples=5 --unlabeled_weighting=mean --max_unlabeled=11000 --validation_size=500 --test_evaluation=never --eval_every=3 --eval_samples_periodic=2 --eval_samples=2 --ll_examples=0 --checkpoint_every=1 --time_budget_minutes=0 --progress=epoch --seed=1 --label_seed=1 --epochs=3"
one() {  # core tag extra-flags
  rm -rf "$OUT/$2"
  taskset -c "$1" ${PYTHON:-python} launch.py $C $3 --model_dir="$OUT/$2" > "$OUT/$2.log" 2>&1
}
for round in 1 2; do
  if [ $round = 1 ]; then a=0; b=1; else a=1; b=0; fi
  one $a on$round "" & one $b off$round "--nograppler" & wait
done
for t in on1 off1 on2 off2; do
  echo "$t $(${PYTHON:-python} -c "
import csv,sys
rows=list(csv.DictReader(open('$OUT/$t/history.csv')))
c=[float(r['cpu_time']) for r in rows]
print('cpu per epoch (epochs 2, 3):', round(c[1]-c[0],1), round(c[2]-c[1],1), 'epoch-1 cpu:', round(c[0],1))")"
done
