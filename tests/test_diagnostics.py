"""Tests for adgm_tf.diagnostics on constructed models whose answer is known."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import diagnostics
from adgm_tf import evaluation
from adgm_tf import models

N, A, Z = 40, 4, 6


def small(name="adgm", **kwargs):
  return models.build_model(name, hidden=(16, 12), z_dim=Z, a_dim=A,
                            mc_samples=1, seed=3, **kwargs)


def images(n=N, seed=0):
  return np.random.default_rng(seed).random((n, 784)).astype(np.float32)


def predictions(model, x, samples):
  return np.argmax(model.predict_log_proba(x, samples).numpy(), axis=1)


def test_derangement_is_a_fixed_point_free_permutation():
  for n in (2, 3, 10, 501):
    p = diagnostics.derangement(n, seed=4)
    assert sorted(p) == list(range(n))
    assert np.all(p != np.arange(n))
  np.testing.assert_array_equal(diagnostics.derangement(50, 1),
                                diagnostics.derangement(50, 1))
  assert not np.array_equal(diagnostics.derangement(50, 1),
                            diagnostics.derangement(50, 2))
  with pytest.raises(ValueError, match="at least 2"):
    diagnostics.derangement(1)


def test_information_by_hand():
  # Two samples that agree: no information. Two one-hot samples on different
  # labels: H[qbar] = log 2, each sample's entropy 0, so I = log 2.
  agree = np.log(np.full((2, 1, 3), 1 / 3))
  eps = 1e-30
  disagree = np.log(np.array([[[1 - 2 * eps, eps, eps]], [[eps, 1 - 2 * eps, eps]]]))
  got = diagnostics.information(tf.constant(np.concatenate([agree, disagree], 1),
                                            tf.float32)).numpy()
  np.testing.assert_allclose(got, [0.0, math.log(2)], atol=1e-5)


def test_a_dead_network_has_no_alive_units_no_spread_and_no_swap_cost():
  model = small()
  mlp = model.q_a.mlp
  mlp.first.bias.assign(tf.fill(mlp.first.bias.shape, -1e3))   # every ReLU off ...
  mlp.dense[0].bias.assign(tf.fill(mlp.dense[0].bias.shape, -1.0))  # ... in both layers
  x = images()
  labels = predictions(model, x, 5)
  out = diagnostics.AuxiliaryDiagnostics(model, batch_size=16)(x, labels, 5)
  assert out["aux_alive_fraction"] == 0.0
  assert out["aux_mean_spread"] == pytest.approx(0.0, abs=1e-7)
  # q(a|x) is the same for every image, so another image's a is the same a.
  assert out["aux_swap_error"] == out["error"] == 0.0


def test_a_classifier_that_ignores_a_pays_nothing_for_a_swap_and_gets_no_information():
  model = small()
  model.q_y.mlp.first.kernel_a.assign(tf.zeros_like(model.q_y.mlp.first.kernel_a))
  x = images()
  labels = np.arange(N) % 10
  out = diagnostics.AuxiliaryDiagnostics(model, batch_size=16)(x, labels, 7)
  assert out["aux_alive_fraction"] > 0.5 and out["aux_mean_spread"] > 1e-3
  assert out["aux_swap_error"] == out["error"]
  assert out["aux_information"] == pytest.approx(0.0, abs=1e-6)


def test_a_classifier_that_reads_only_a_answers_for_the_image_whose_a_it_got():
  keras.utils.set_random_seed(0)
  model = small("adgm_det")  # a = mu(x): no noise, so the answer is exact
  first = model.q_y.mlp.first
  first.kernel_x.assign(tf.zeros_like(first.kernel_x))
  first.kernel_a.assign(10.0 * tf.random.stateless_normal(first.kernel_a.shape, [3, 4]))
  head = model.q_a.head  # make mu(x) vary between images
  head.kernel.assign(tf.random.stateless_normal(head.kernel.shape, [1, 2]))
  x = images()
  pred = predictions(model, x, 1)
  assert len(set(pred)) > 1
  out = diagnostics.AuxiliaryDiagnostics(model, batch_size=16)(x, pred, 1, seed=5)
  perm = diagnostics.derangement(N, seed=5)
  assert out["error"] == 0.0
  assert out["aux_swap_error"] == pytest.approx(np.mean(pred[perm] != pred))
  assert out["aux_swap_error"] > 0.1  # the swap changes answers
  assert out["aux_information"] is None  # no noise in a deterministic a


def test_error_is_the_models_own_error_and_m2_has_no_aux_numbers():
  x = images(seed=1)
  labels = np.arange(N) % 10
  for name in ("adgm", "sdgm", "adgm_workshop", "adgm_det", "m2"):
    model = small(name, eval_samples=6)
    ev = evaluation.Evaluator(model, batch_size=16)
    out = ev.classify(x, labels, 6)
    assert out["error"] == ev.error(x, labels, 6)
    keys = diagnostics.KEYS
    if name == "m2":
      assert all(out[k] is None for k in keys)
    else:
      assert all(out[k] is not None for k in keys if k != "aux_information")
      assert (out["aux_information"] is None) == (name == "adgm_det")
