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
