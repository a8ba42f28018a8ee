"""One training step's gradients (SDGM, L's networks, S samples, q̄-weighting)
on fixed random data and a fixed initialisation, hashed per variable.

Run it from the repository root in several fresh processes and compare:
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \
    python docs/results/endpoint_screen/determinism/grad_probe.py S CALLS REF.json
The first process writes REF.json; later ones list the variables whose
gradient differs from it. CALLS repeats the step inside the process. One intra- and one inter-op
thread are set here. PROBE_GRAPPLER=arithmetic_optimization,remapping (a
comma-separated list) turns those Grappler passes off, and
PROBE_GRAPPLER=disable_meta_optimizer all of Grappler;
PROBE_OP_DETERMINISM=1 calls tf.config.experimental.enable_op_determinism().
"""
import dataclasses
import hashlib
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.getcwd())
from adgm_tf import builders  # noqa: E402
from adgm_tf import config as config_lib  # noqa: E402

S, CALLS, REF = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
if os.environ.get("PROBE_GRAPPLER"):  # e.g. disable_meta_optimizer, or passes to turn off
  tf.config.optimizer.set_experimental_options({
      k: k == "disable_meta_optimizer" for k in os.environ["PROBE_GRAPPLER"].split(",")})
  print("grappler:", tf.config.optimizer.get_experimental_options())
if os.environ.get("PROBE_OP_DETERMINISM"):
  tf.config.experimental.enable_op_determinism()
print("threads: intra", tf.config.threading.get_intra_op_parallelism_threads(),
      "inter", tf.config.threading.get_inter_op_parallelism_threads())
c = config_lib.Config()
c = c.replace(model=dataclasses.replace(c.model, mc_samples=S, unlabeled_weighting="mean"))
keras.utils.set_random_seed(1)
model, _ = builders.create_model_and_optimizer(c, alpha=55.0, steps_per_epoch=550)
rng = np.random.default_rng(0)
x_l = tf.constant((rng.random((100, 784)) < 0.3).astype(np.float32))
y_l = tf.constant(rng.integers(0, 10, 100).astype(np.int32))
x_u = tf.constant((rng.random((100, 784)) < 0.3).astype(np.float32))
step = tf.constant(7, tf.int64)


@tf.function
def gradients():
  noise = model.training_noise(x_l, x_u, S, step)
  g, _, _ = model._loss_and_gradients(x_l, y_l, x_u, noise, 1, step)  # pylint: disable=protected-access
  return g


def digest(tensors):
  h = hashlib.sha256()
  for t in tensors:
    h.update(t.numpy().tobytes())
  return h.hexdigest()[:12]


print("initial weights", digest(model.trainable_variables))
calls = [gradients() for _ in range(CALLS)]
print("gradients, call by call in this process:", [digest(g) for g in calls])
per = {v.path: digest([t]) for v, t in zip(model.trainable_variables, calls[0])}
if os.path.exists(REF):
  with open(REF) as f:
    ref = json.load(f)
  differ = [k for k in per if per[k] != ref[k]]
  print(f"differ from {REF}: {len(differ)} of {len(per)} variables", differ)
else:
  with open(REF, "w") as f:
    json.dump(per, f)
  print("reference written:", REF)
