"""Tests for adgm_tf.networks: multi-input dense layers, MLPs, batch norm, initialisation."""

import json

import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import heads
from adgm_tf import networks


def test_sum_of_projections_is_a_dense_layer_over_the_concatenation():
  layer = networks.MultiInputDense(7, {"a": 4, "x": 5, "y": 10},
                                   categorical=("y",))
  layer.build()
  layer.bias.assign(np.arange(7, dtype=np.float32) / 10)
  rng = np.random.default_rng(0)
  a = rng.normal(size=(3, 4)).astype(np.float32)
  x = rng.normal(size=(3, 5)).astype(np.float32)
  y = np.array([2, 0, 9])
  got = layer({"a": a, "x": x, "y": y}).numpy()
  kernel = np.concatenate([layer.kernels[k].numpy() for k in ("a", "x", "y")])
  inputs = np.concatenate([a, x, np.eye(10, dtype=np.float32)[y]], axis=1)
  np.testing.assert_allclose(got, inputs @ kernel + layer.bias.numpy(), rtol=1e-5)
  # The label table is the whole kernel, and any leading shape projects.
  np.testing.assert_array_equal(layer.project("y"), layer.kernels["y"].numpy())
  a3 = rng.normal(size=(2, 3, 4)).astype(np.float32)
  np.testing.assert_allclose(layer.project("a", a3),
                             a3 @ layer.kernels["a"].numpy(), rtol=1e-5)


def test_initialisation_matches_glorot_over_the_concatenation():
  layer = networks.MultiInputDense(500, {"x": 784, "a": 100})
  layer.build()
  limit = np.sqrt(6.0 / (884 + 500))
  for k in layer.kernels.values():
    v = k.numpy()
    # The bound as float32 holds it: a draw next to the limit rounds to it.
    assert np.abs(v).max() <= np.float32(limit)
    assert np.std(v) == pytest.approx(limit / np.sqrt(3), rel=0.05)


def test_mlp_shapes_batch_norm_and_config_round_trip():
  mlp = networks.MLP({"x": 5, "y": 10}, hidden=(8, 9), activation="tanh",
                     batch_norm=True, categorical=("y",))
  mlp.build()
  out = mlp({"x": tf.ones([3, 5]), "y": tf.constant([1, 2, 3])}, training=True)
  assert out.shape == (3, 9)
  assert len(mlp.norms) == 2 and mlp.first.bias is None  # BN replaces biases
  config = json.loads(json.dumps(mlp.get_config()))
  clone = networks.MLP.from_config(config)
  assert clone.get_config() == mlp.get_config()


@pytest.mark.parametrize("bad,match", [
    (dict(activation="sigmoidish"), r"activation='sigmoidish': choose one of \['relu'"),
    (dict(hidden=()), "at least one positive width"),
])
def test_mlp_rejects_bad_arguments(bad, match):
  kwargs = dict(input_dims={"x": 5}, hidden=(8,), activation="relu")
  kwargs.update(bad)
  with pytest.raises(ValueError, match=match):
    networks.MLP(**kwargs)


def test_authors_init_matches_their_lasagne_layers():
  """Glorot-normal gain sqrt(2) per input, N(0, 1e-3^2) biases and Gaussian heads."""
  mlp = networks.MLP({"x": 784, "a": 100}, hidden=(500, 400), init="authors")
  mlp.build()
  for name, dim in (("x", 784), ("a", 100)):
    want = np.sqrt(2.0) * np.sqrt(2.0 / (dim + 500))  # each input's own fan-in
    assert np.std(mlp.first.kernels[name].numpy()) == pytest.approx(want, rel=0.03)
  assert np.std(mlp.dense[0].kernel.numpy()) == pytest.approx(
      np.sqrt(2.0) * np.sqrt(2.0 / 900), rel=0.03)
  assert np.std(mlp.first.bias.numpy()) == pytest.approx(1e-3, rel=0.2)
  gauss = heads.GaussianConditional({"x": 784}, units=100, hidden=(500,), init="authors")
  gauss.build()
  assert np.std(gauss.head.kernel.numpy()) == pytest.approx(1e-3, rel=0.05)
  assert np.abs(gauss.head.bias.numpy()).max() < 6e-3
  logits = heads.LogitsConditional({"x": 784}, units=10, hidden=(500,), init="authors")
  logits.build()
  assert np.std(logits.head.kernel.numpy()) == pytest.approx(np.sqrt(2.0 / 510), rel=0.1)
  with pytest.raises(ValueError, match=r"init='he': choose one of \["):
    networks.MLP({"x": 5}, hidden=(4,), init="he")


def test_split_batch_norm_normalises_each_pass_and_learns_from_the_unlabeled_one():
  bn = networks.BatchNormalization(momentum=0.9)
  bn.build((None, 3))
  rng = np.random.default_rng(0)
  labeled = rng.normal(5.0, 2.0, size=(20, 3)).astype(np.float32)
  unlabeled = rng.normal(-1.0, 0.5, size=(60, 3)).astype(np.float32)
  out = bn(tf.concat([labeled, unlabeled], 0), training=True, split=20).numpy()
  for part in (out[:20], out[20:]):  # each pass standardised by its own moments
    np.testing.assert_allclose(part.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(part.std(0), 1.0, atol=1e-2)
  # The moving averages moved 10% of the way to the unlabeled moments only.
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * unlabeled.mean(0), rtol=1e-4)
  np.testing.assert_allclose(bn.moving_variance.numpy(),
                             0.9 + 0.1 * unlabeled.var(0), rtol=1e-4)
  # Joint statistics (no split) mix the two passes.
  joint = networks.BatchNormalization(momentum=0.9)
  joint.build((None, 3))
  out = joint(tf.concat([labeled, unlabeled], 0), training=True).numpy()
  assert np.abs(out[:20].mean(0)).min() > 1.0
  # In inference, split changes nothing.
  x = tf.constant(labeled)
  np.testing.assert_array_equal(bn(x, training=False, split=5), bn(x, training=False))


def _keras_batch_norm(x, momentum=0.9, epsilon=1e-3, seed=0):
  """Keras's own BatchNormalization (autodiff through its moments), gamma and
  beta set away from 1 and 0 so that their gradients are checked."""
  import keras  # pylint: disable=g-import-not-at-top
  layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
  layer.build((None, x.shape[-1]))
  rng = np.random.default_rng(seed)
  layer.gamma.assign(rng.uniform(0.5, 2.0, x.shape[-1]).astype(np.float32))
  layer.beta.assign(rng.normal(0.0, 1.0, x.shape[-1]).astype(np.float32))
  return layer


@pytest.mark.parametrize("split", [None, 7])
def test_batch_norm_matches_keras_values_gradients_and_moving_statistics(split):
  """One replica: our one-pass moments (and, with split, the per-pass path)
  give Keras's outputs, gradients for x, gamma and beta, and moving statistics."""
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(3.0, 2.0, size=(19, 5)).astype(np.float32))
  upstream = tf.constant(rng.normal(size=(19, 5)).astype(np.float32))
  ours = networks.BatchNormalization(momentum=0.8, epsilon=1e-4)
  ours.build((None, 5))
  ref = _keras_batch_norm(x, momentum=0.8, epsilon=1e-4)
  ours.gamma.assign(ref.gamma.numpy())
  ours.beta.assign(ref.beta.numpy())
  results = []
  for layer in (ours, ref):
    with tf.GradientTape() as tape:
      tape.watch(x)
      if layer is ours:
        y = layer(x, training=True, split=split)
      elif split is None:
        y = layer(x, training=True)
      else:  # the reference: Keras's layer on each pass, moving stats from the last
        y = tf.concat([layer(x[:split], training=True), layer(x[split:], training=True)], 0)
      loss = tf.reduce_sum(y * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    results.append([y] + grads)
  for a, b in zip(*results):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-5)
  if split is None:  # (the reference's two calls moved its averages twice)
    np.testing.assert_allclose(ours.moving_mean.numpy(), ref.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), ref.moving_variance.numpy(),
                               rtol=1e-6)
  # The gradient is not the trivial one: it differs from treating the moments
  # as constants.
  with tf.GradientTape() as tape:
    tape.watch(x)
    m, v = tf.stop_gradient(tf.reduce_mean(x, 0)), tf.stop_gradient(tf.math.reduce_variance(x, 0))
    y = tf.nn.batch_normalization(x, m, v, ours.beta, ours.gamma, 1e-4)
    naive = tape.gradient(tf.reduce_sum(y * upstream), x)
  assert np.abs(naive.numpy() - results[0][1].numpy()).max() > 0.1


def test_batch_norm_keeps_float32_statistics_under_bfloat16():
  """Rows 8192 + 64 k (k = 0..7) are exact in bfloat16, their mean 8416 is not
  (bfloat16's spacing there is 64): float32 statistics keep it exactly."""
  layer = networks.BatchNormalization(dtype="mixed_bfloat16")
  layer.build((None, 4))
  x = tf.cast(tf.constant(8192.0 + 64.0 * np.repeat(np.arange(8.0), 4).reshape(8, 4),
                          tf.float32), tf.bfloat16)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(8.0)[:, None])
  assert y.dtype == tf.bfloat16
  assert tape.gradient(loss, x).dtype == tf.bfloat16
  assert layer.moving_mean.dtype == "float32"
  momentum = layer.momentum  # Keras's default 0.99 for this class
  np.testing.assert_allclose(layer.moving_mean.numpy(), (1 - momentum) * 8416.0, rtol=1e-6)


def test_batch_norm_momentum_is_the_authors_rate_by_default():
  mlp = networks.MLP({"x": 5}, hidden=(4,), batch_norm=True)
  assert mlp.norms[0].momentum == 0.9
  mlp = networks.MLP({"x": 5}, hidden=(4,), batch_norm=True, bn_momentum=0.99)
  assert mlp.norms[0].momentum == 0.99
  with pytest.raises(ValueError, match="bn_momentum"):
    networks.MLP({"x": 5}, hidden=(4,), bn_momentum=1.0)


def test_batch_norm_epsilon_is_used_and_round_trips():
  """A feature of variance v is scaled by 1 / sqrt(v + epsilon): with v = 1e-4,
  the authors' epsilon 1e-4 halves the variance that Keras's 1e-3 would leave."""
  x = tf.constant([[-0.01], [0.01]] * 4, tf.float32)  # variance 1e-4
  for eps in (1e-4, 1e-3):
    mlp = networks.MLP({"x": 1}, hidden=(1,), batch_norm=True, bn_epsilon=eps)
    mlp.build()
    h = mlp.norms[0](x, training=True).numpy()
    np.testing.assert_allclose(h[:2, 0], [-0.01, 0.01] / np.sqrt(1e-4 + eps), rtol=1e-3)
    clone = networks.MLP.from_config(mlp.get_config())
    assert clone.norms[0].epsilon == eps
  with pytest.raises(ValueError, match="bn_epsilon"):
    networks.MLP({"x": 5}, hidden=(4,), bn_epsilon=0.0)
