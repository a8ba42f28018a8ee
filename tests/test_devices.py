"""Tests for adgm_tf.devices: TF_CONFIG, the strategy, the chief.

Two logical CPU replicas standing in for two GPUs are tested in
tests/test_train.py (they must be configured before TensorFlow starts)."""

import pytest

from adgm_tf import config as config_lib
from adgm_tf import devices
from adgm_tf.errors import ConfigError


class _Resolver:
  def __init__(self, task_type, task_id, cluster):
    self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

  def cluster_spec(self):
    cluster = self._cluster

    class Spec:
      def as_dict(self):
        return cluster
    return Spec()


class _Strategy:
  def __init__(self, resolver):
    self.cluster_resolver = resolver


@pytest.mark.parametrize("task_type,task_id,cluster,chief", [
    ("worker", 0, {"worker": ["a", "b"]}, True),             # worker 0 without a chief
    ("worker", 1, {"worker": ["a", "b"]}, False),
    ("worker", 0, {"chief": ["c"], "worker": ["a"]}, False),  # the chief is elsewhere
    ("chief", 0, {"chief": ["c"], "worker": ["a"]}, True),
    (None, None, {}, True),                                   # one machine
])
def test_which_worker_writes(task_type, task_id, cluster, chief):
  assert devices.is_chief(_Strategy(_Resolver(task_type, task_id, cluster))) == chief
  assert devices.is_chief(object()) is True  # a strategy without a resolver


def test_tf_config(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, '
                                  '"task": {"type": "worker", "index": 1}}')
  assert devices.read_tf_config()["task"]["index"] == 1
  assert devices._cluster_has_workers()
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
    devices.read_tf_config()
  monkeypatch.delenv("TF_CONFIG")
  assert devices.read_tf_config() == {} and not devices._cluster_has_workers()
  with pytest.raises(ConfigError, match="--strategy=multi_worker needs the TF_CONFIG"):
    devices.make_strategy(config_lib.TrainConfig(strategy="multi_worker"))


# One S = 5 training step's gradient in a fresh process, on fixed data and a
# fixed initialisation, after configure_devices: Grappler's options as
# TensorFlow reports them and (unless asked for the options only) the
# gradient's SHA-256.
_STEP_GRADIENT = r"""
import dataclasses, hashlib, json, sys
import keras, numpy as np, tensorflow as tf
from adgm_tf import builders, config as config_lib, devices
c = config_lib.Config()
c = c.replace(model=dataclasses.replace(c.model, mc_samples=5, unlabeled_weighting="mean"),
              train=dataclasses.replace(c.train, grappler=sys.argv[1] == "on"))
devices.configure_devices(c.train)
if sys.argv[2:] == ["options"]:
  print(json.dumps({"options": tf.config.optimizer.get_experimental_options()}))
  sys.exit(0)
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(1)
model, _ = builders.create_model_and_optimizer(c, alpha=55.0, steps_per_epoch=550)
rng = np.random.default_rng(0)
x_l = tf.constant((rng.random((100, 784)) < 0.3).astype(np.float32))
y_l = tf.constant(rng.integers(0, 10, 100).astype(np.int32))
x_u = tf.constant((rng.random((100, 784)) < 0.3).astype(np.float32))
step = tf.constant(7, tf.int64)
@tf.function
def gradients():
  noise = model.training_noise(x_l, x_u, 5, step)
  return model._loss_and_gradients(x_l, y_l, x_u, noise, 1, step)[0]
h = hashlib.sha256()
for g in gradients():
  h.update(g.numpy().tobytes())
print(json.dumps({"options": tf.config.optimizer.get_experimental_options(),
                  "gradient": h.hexdigest()}))
"""


def _step_gradient(setting, *only):
  import json
  import os
  import subprocess
  import sys
  from conftest import REPO
  out = subprocess.run([sys.executable, "-c", _STEP_GRADIENT, setting, *only], cwd=REPO,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_nograppler_reaches_tensorflow():
  """--nograppler turns Grappler off; the default leaves TensorFlow's options at
  their defaults."""
  assert _step_gradient("off", "options")["options"].get("disable_meta_optimizer") is True
  assert _step_gradient("on", "options")["options"] == {"disable_model_pruning": False,
                                              "disable_meta_optimizer": False}


@pytest.mark.large
def test_an_s5_step_repeats_across_processes_without_grappler():
  """The gradient of one S = 5 step is the same in four fresh processes with
  Grappler off (with it on, it varied between processes on the screen's
  host: docs/results/endpoint_screen/determinism)."""
  assert len({_step_gradient("off")["gradient"] for _ in range(4)}) == 1
