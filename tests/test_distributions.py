"""Tests for adgm_tf.distributions: parameters -> densities, samples and KLs."""


import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import distributions as dists


def test_distribution_shapes():
  logits = tf.zeros([2, 3, 5])
  b = dists.bernoulli(logits)
  assert b.event_shape == (5,) and b.batch_shape == (2, 3)
  np.testing.assert_allclose(b.log_prob(tf.ones([2, 3, 5])), 5 * np.log(0.5), rtol=1e-6)
  c = dists.categorical(tf.zeros([4, 10]))
  assert c.batch_shape == (4,) and c.event_shape == ()
  assert dists.uniform_categorical(10).log_prob(3).numpy() == pytest.approx(-np.log(10))
  n = dists.standard_normal(6)
  assert n.event_shape == (6,)
  assert n.log_prob(tf.zeros([2, 6])).numpy() == pytest.approx(-3 * np.log(2 * np.pi))


def test_closed_form_bernoulli_log_prob_matches_tfp():
  rng = np.random.default_rng(4)
  logits = tf.constant(rng.normal(size=(2, 3, 5)) * 8, tf.float32)
  for x in (tf.constant((rng.random((2, 3, 5)) < 0.5).astype(np.float32)),
            tf.constant(rng.random((1, 3, 5)).astype(np.float32))):  # grey, broadcast
    np.testing.assert_allclose(dists.bernoulli_log_prob(logits, x),
                               dists.bernoulli(logits).log_prob(x), rtol=1e-5, atol=1e-5)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([logits, x])
    w = tf.constant(rng.normal(size=(2, 3)), tf.float32)  # a non-uniform upstream gradient
    a = tf.reduce_sum(w * dists.bernoulli_log_prob(logits, x))
    b = tf.reduce_sum(w * dists.bernoulli(logits).log_prob(x))
  for wrt in (logits, x):  # x is broadcast [1, 3, 5] -> [2, 3, 5]
    np.testing.assert_allclose(tape.gradient(a, wrt), tape.gradient(b, wrt),
                               rtol=1e-5, atol=1e-5)


def test_reparameterized_sample_has_the_right_moments():
  loc = tf.constant([1.0, -2.0])
  log_var = tf.constant([np.log(4.0), np.log(0.25)], tf.float32)
  eps = tf.random.stateless_normal([200000, 2], seed=[1, 2])
  z = dists.reparameterize(loc, log_var, eps).numpy()
  np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.02)
  np.testing.assert_allclose(z.std(0), [2.0, 0.5], rtol=0.01)


def test_analytic_gaussian_kl_matches_monte_carlo():
  loc_q = tf.constant([0.5, -1.0, 2.0])
  lv_q = tf.constant([-1.0, 0.3, 0.0])
  loc_p = tf.constant([0.0, 0.5, 1.0])
  lv_p = tf.constant([0.0, -0.5, 1.0])
  analytic = dists.gaussian_kl(loc_q, lv_q, loc_p, lv_p).numpy()
  z = dists.reparameterize(loc_q, lv_q,
                           tf.random.stateless_normal([400000, 3], seed=[3, 4]))
  log_q = -0.5 * (np.log(2 * np.pi) + lv_q + (z - loc_q) ** 2 / np.exp(lv_q))
  log_p = -0.5 * (np.log(2 * np.pi) + lv_p + (z - loc_p) ** 2 / np.exp(lv_p))
  diff = log_q - log_p
  mc = np.mean(diff, axis=0)
  standard_error = np.std(diff, axis=0) / np.sqrt(len(diff))
  assert np.all(np.abs(analytic - mc) < 4 * standard_error), (analytic, mc,
                                                               standard_error)
  assert np.all(analytic > 0)
  np.testing.assert_allclose(dists.gaussian_kl(loc_q, lv_q, loc_q, lv_q), 0.0, atol=1e-6)
