"""Is the end of an epoch's distributed iterator what stalls the trainer?

  python docs/results/endpoint_screen/determinism/distributed_stall/stall.py \
      RUN/config.json PAUSE STEPS [threads]

Builds the run's training pipeline as the trainer did until 2026-12-06
(pipeline.distributed_epoch on a one-replica MirroredStrategy, one iterator
per epoch), takes STEPS batches of each of 3 epochs through a tf.function
with PAUSE seconds after each (a step's pace), then drops the iterator and
times that. With `threads`, also counts the threads in tf.data's
Model::OptimizeLoop (gdb on this process) after 30 steps, for the distributed
iterator and for the plain dataset of the same epoch.
"""
import gc
import json
import os
import subprocess
import sys
import time

from adgm_tf import cli

tf = cli.import_tensorflow()
from adgm_tf import config as config_lib  # noqa: E402
from adgm_tf import data as data_lib  # noqa: E402
from adgm_tf import pipeline  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
cfg = config_lib.Config.from_dict(json.load(open(sys.argv[1]))["config"])
pause, steps = float(sys.argv[2]), int(sys.argv[3])
threads = len(sys.argv) > 4 and sys.argv[4] == "threads"
data = pipeline.build_data(cfg)
strategy = tf.distribute.MirroredStrategy(["/cpu:0"])


@tf.function
def step(iterator):
  per = strategy.run(lambda b: tf.reduce_sum(b[1]), args=(next(iterator),))
  return strategy.reduce(tf.distribute.ReduceOp.MEAN, per, axis=None)


def optimize_loops():
  out = subprocess.run(["gdb", "-p", str(os.getpid()), "-batch", "-ex",
                        "thread apply all bt 12"], capture_output=True, text=True).stdout
  return out.count("OptimizeLoop")


if threads:
  plain = iter(data_lib.train_dataset(
      data.split, labeled_batch_size=cfg.data.labeled_batch_size,
      unlabeled_batch_size=cfg.data.unlabeled_batch_size, seed=1))
  for _ in range(30):
    next(plain)
  print("plain dataset: OptimizeLoop threads", optimize_loops(), flush=True)
  plain = None
  gc.collect()
for epoch in range(3):
  t0 = time.time()
  it = iter(pipeline.distributed_epoch(strategy, data.split, cfg.data, 1, epoch, 0))
  for i in range(steps):
    float(step(it))
    time.sleep(pause)
    if threads and epoch == 0 and i == 30:
      print("distributed iterator: OptimizeLoop threads", optimize_loops(), flush=True)
  t1 = time.time()
  it = None
  gc.collect()
  print(f"epoch {epoch}: {steps} steps in {t1 - t0:.1f} s; dropping the iterator took "
        f"{time.time() - t1:.1f} s", flush=True)
