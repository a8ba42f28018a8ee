"""Devices and the distribution strategy of a run.

Logical CPU replicas and the precision policy (set before any TF op), the
``TF_CONFIG`` of a multi-worker run, the strategy (``--strategy``), and which
worker is the chief. Used by training, the benchmark and the probes; it
imports neither the trainer nor the launcher.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict

from adgm_tf import config as config_lib
from adgm_tf import hardware
from adgm_tf.errors import ConfigError

logger = logging.getLogger("adgm_tf")




def configure_devices(train_config: config_lib.TrainConfig) -> None:
  """Logical CPU replicas, the mixed-precision policy and Grappler; before any TF op."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not train_config.grappler:
    # Set only when off, so that a default run's graph is TensorFlow's own.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  if train_config.cpu_replicas > 1 and not tf.config.list_physical_devices("GPU"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * train_config.cpu_replicas
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != len(wanted):
      try:
        tf.config.set_logical_device_configuration(cpu, wanted)
      except RuntimeError as e:
        raise ConfigError(
            f"--cpu_replicas={train_config.cpu_replicas}: TensorFlow's devices "
            f"were initialised before the launcher could split the CPU ({e}). "
            f"Start a fresh process.") from e
  precision = hardware.resolve_precision(
      train_config.precision, gpu=bool(tf.config.list_physical_devices("GPU")))
  if train_config.precision == "auto":
    logger.info("--precision=auto: %s on %s", precision, hardware.describe_cpu())
  keras.mixed_precision.set_global_policy(hardware.POLICIES[precision])


def read_tf_config() -> Dict[str, Any]:
  """The ``TF_CONFIG`` environment variable, parsed and checked."""
  text = os.environ.get("TF_CONFIG", "")
  if not text.strip():
    return {}
  try:
    value = json.loads(text)
  except ValueError:
    raise ConfigError(
        f"TF_CONFIG is not valid JSON (it starts {text[:60]!r}). Set it to e.g. "
        f"'{{\"cluster\": {{\"worker\": [\"host1:12345\", \"host2:12345\"]}}, "
        f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}', or unset it for one "
        f"machine.") from None
  if not isinstance(value, dict) or not isinstance(value.get("cluster", {}), dict):
    raise ConfigError(
        f"TF_CONFIG must be a JSON object with \"cluster\" and \"task\" (it starts "
        f"{text[:60]!r}); see BUILD.md, 'GPUs and several machines'.")
  return value


def _cluster_has_workers() -> bool:
  cluster = read_tf_config().get("cluster", {})
  return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1


def make_strategy(train_config: config_lib.TrainConfig):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  kind = train_config.strategy
  if kind == "auto":
    kind = "multi_worker" if _cluster_has_workers() else "mirrored"
  if kind == "multi_worker":
    if not read_tf_config():
      raise ConfigError(
          "--strategy=multi_worker needs the TF_CONFIG environment variable "
          "(cluster and task) on every worker; see BUILD.md.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if kind == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  gpus = tf.config.list_logical_devices("GPU")
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  # Reduction through one device: replica-context all-reduces go through a
  # merge call, so the synchronized batch norm's independent all-reduces
  # cannot be launched in different orders on different CPU replicas.
  return tf.distribute.MirroredStrategy(
      cpus[:max(1, train_config.cpu_replicas)],
      cross_device_ops=tf.distribute.ReductionToOneDevice())


def strategy_name(strategy) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return "MultiWorkerMirroredStrategy"
  return type(strategy).__name__


def is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def make_train_step(strategy, model):
  """A tf.function running ``model.train_step`` on every replica; mean logs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @tf.function
  def train_step(iterator):
    per_replica = strategy.run(model.train_step, args=(next(iterator),))
    return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  return train_step
