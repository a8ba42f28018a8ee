#!/bin/bash
# one fresh 1-epoch run; args: tag extra-flags
set -u
tag=$1; shift
cd "${CODE:?set CODE to a checkout of the repository}"
export ADGM_MNIST_DIR=${ADGM_MNIST_DIR:?set ADGM_MNIST_DIR to the IDX files} TF_CPP_MIN_LOG_LEVEL=3 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
C="--flagfile=mnist100_long.flags --max_unlabeled=3000 --validation_size=500 --test_evaluation=never --eval_every=1 --eval_samples_periodic=2 --eval_samples=2 --ll_examples=0 --checkpoint_every=1 --time_budget_minutes=0 --progress=epoch --seed=1 --label_seed=1 --epochs=1 $*"
rm -rf ${OUT:?set OUT to a scratch directory}/$tag
${PYTHON:-python} launch.py $C --model_dir=${OUT:?set OUT to a scratch directory}/$tag > ${OUT:?set OUT to a scratch directory}/$tag.log 2>&1
echo "$tag $(grep -h 'weights sha256' ${OUT:?set OUT to a scratch directory}/$tag.log)"
