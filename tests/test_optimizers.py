"""Tests for adgm_tf.optimizers: the fused Adam is Keras's Adam."""

import keras
import numpy as np
import tensorflow as tf

from adgm_tf import optimizers


def _run(opt_cls, steps=5):
  rng = np.random.default_rng(0)
  variables = [keras.Variable(rng.normal(size=(4, 3)).astype(np.float32)),
               keras.Variable(rng.normal(size=(3,)).astype(np.float32))]
  schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)
  opt = opt_cls(learning_rate=schedule, beta_1=0.8, beta_2=0.95, epsilon=1e-6)
  for i in range(steps):
    grads = [tf.constant(np.random.default_rng(i).normal(size=v.shape), tf.float32)
             for v in variables]
    opt.apply(grads, variables)
  return [v.numpy() for v in variables], [s.numpy() for s in opt.variables]


def test_fused_adam_matches_keras_adam():
  ours, ours_slots = _run(optimizers.Adam)
  keras_vals, keras_slots = _run(keras.optimizers.Adam)
  for a, b in zip(ours, keras_vals):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert len(ours_slots) == len(keras_slots)  # same slots: checkpoints unchanged
  for a, b in zip(ours_slots, keras_slots):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fused_adam_config_round_trip():
  opt = optimizers.Adam(learning_rate=3e-4, beta_1=0.9)
  clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
  assert type(clone) is optimizers.Adam
  assert clone.get_config() == opt.get_config()
