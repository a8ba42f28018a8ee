"""Tests for adgm_tf.heads: the conditionals that return distribution parameters."""

import json

import keras
import numpy as np
import tensorflow as tf

from adgm_tf import distributions as dists
from adgm_tf import heads


def test_gaussian_head_shapes_and_unconstrained_log_variance():
  layer = heads.GaussianConditional({"x": 5}, units=6, hidden=(8,))
  layer.build()
  loc, log_var = layer({"x": tf.ones([3, 5])})
  assert loc.shape == (3, 6) and log_var.shape == (3, 6)
  # A log-variance head may ask for variance far below 1 (a softplus on it
  # would floor the variance at 1).
  layer.head.kernel.assign(tf.zeros_like(layer.head.kernel))
  layer.head.bias.assign(tf.concat([tf.zeros([6]), tf.fill([6], -6.0)], 0))
  loc, log_var = layer({"x": tf.ones([3, 5])})
  d = dists.diag_gaussian(loc, log_var)
  np.testing.assert_allclose(d.distribution.stddev(), np.exp(-3.0), rtol=1e-6)
  assert d.event_shape == (6,) and d.batch_shape == (3,)


def test_gaussian_log_variance_is_clipped_only_beyond_the_float32_safeguard():
  """Inside [-20, 20] the head's log-variance passes unchanged, with gradient 1;
  beyond it is clipped, so the log-density and its gradient stay finite where
  the raw value (182.7, as in the SDGM run that diverged) would overflow."""
  layer = heads.GaussianConditional({"x": 5}, units=4, hidden=(8,))
  layer.build()
  layer.head.kernel.assign(tf.zeros_like(layer.head.kernel))
  raw = tf.constant([-300.0, -19.5, 7.25, 182.7])
  layer.head.bias.assign(tf.concat([tf.zeros([4]), raw], 0))
  with tf.GradientTape() as tape:
    loc, log_var = layer({"x": tf.ones([2, 5])})
    log_prob = dists.diag_gaussian(loc, log_var).log_prob(tf.fill([2, 4], 3.0))
  np.testing.assert_array_equal(log_var[0].numpy(), [-20.0, -19.5, 7.25, 20.0])
  assert heads.LOG_VAR_LIMIT == 20.0
  grad = tape.gradient(log_var, layer.head.bias).numpy()[4:]
  np.testing.assert_array_equal(grad, [0.0, 2.0, 2.0, 0.0])  # two rows, 1 each inside
  assert np.isfinite(log_prob.numpy()).all()
  # Unclipped, the same raw value is not a usable float32 scale.
  with np.errstate(over="ignore"):
    assert not np.isfinite(np.exp(np.float32(0.5) * np.float32(182.7)))


def test_heads_config_round_trip():
  for cls in (heads.GaussianConditional, heads.LogitsConditional,
              heads.DeterministicConditional):
    layer = cls({"a": 4, "y": 10}, units=6, hidden=(8, 9), batch_norm=True,
                categorical=("y",))
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is cls and clone.get_config() == layer.get_config()
