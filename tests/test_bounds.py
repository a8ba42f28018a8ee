"""Tests for adgm_tf.bounds on hand-made factors (no networks involved)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import bounds

S, BL, BU, Y = 2, 3, 4, 10


def random_factors(seed=0, one_hot_label=None):
  rng = np.random.default_rng(seed)

  def f32(*s):
    return tf.constant(rng.normal(size=s) * 3 - 5, tf.float32)

  logits = rng.normal(size=(S, Y, BU)) * 2
  if one_hot_label is not None:
    logits = np.full((S, Y, BU), -1e4)
    logits[:, one_hot_label] = 0.0
  log_qy_u = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(
      1, keepdims=True)) - logits.max(1, keepdims=True)
  log_qy_l = rng.normal(size=(S, BL, Y))
  log_qy_l = log_qy_l - np.log(np.exp(log_qy_l).sum(-1, keepdims=True))
  return bounds.Factors(
      log_px_l=f32(S, BL), log_py_l=tf.fill([BL], -math.log(Y)),
      log_pz_l=f32(S, BL), log_pa_l=f32(S, BL), log_qz_l=f32(S, BL),
      log_qa_l=f32(S, BL), log_qy_l=tf.constant(log_qy_l, tf.float32),
      y_l=tf.constant([1, 4, 9], tf.int32),
      log_px_u=f32(S, Y, BU), log_py_u=tf.fill([1, Y, 1], -math.log(Y)),
      log_pz_u=f32(S, Y, BU), log_pa_u=f32(S, Y, BU), log_qz_u=f32(S, Y, BU),
      log_qa_u=f32(S, BU), log_qy_u=tf.constant(log_qy_u, tf.float32))


def joint_u(n, s, y, b):
  """log p(x,y,z,a) - log q(z|a,x,y) of one unlabeled row, by hand (float64)."""
  return (n["log_px_u"][s, y, b] + n["log_py_u"][0, y, 0] + n["log_pz_u"][s, y, b]
          + n["log_pa_u"][s, y, b] - n["log_qz_u"][s, y, b])


def test_labeled_elbo_is_the_sample_mean_of_the_log_weight():
  f = random_factors()
  want = np.mean(f.log_px_l + f.log_py_l + f.log_pz_l + f.log_pa_l
                 - f.log_qz_l - f.log_qa_l, axis=0)
  np.testing.assert_allclose(bounds.labeled_elbo(f), want, rtol=1e-6)


def test_unlabeled_elbo_by_hand():
  f = random_factors(1)
  n = {k: np.asarray(v, np.float64) for k, v in f._asdict().items()}
  want = np.zeros(BU)
  for b in range(BU):
    per_s = []
    for s in range(S):
      total = 0.0
      for y in range(Y):
        q = math.exp(n["log_qy_u"][s, y, b])
        total += q * (joint_u(n, s, y, b) - n["log_qy_u"][s, y, b])
      per_s.append(total - n["log_qa_u"][s, b])
    want[b] = np.mean(per_s)
  np.testing.assert_allclose(bounds.unlabeled_elbo(f), want, rtol=1e-5)


@pytest.mark.parametrize("label", [0, 7])
def test_unlabeled_equals_labeled_when_q_y_is_one_hot(label):
  f = random_factors(2, one_hot_label=label)
  u = bounds.unlabeled_elbo(f).numpy()
  # The labeled bound of the same examples with y = label: the per-label
  # unlabeled factors at `label`, with q(a|x) subtracted.
  labeled = f._replace(
      log_px_l=f.log_px_u[:, label], log_pz_l=f.log_pz_u[:, label],
      log_pa_l=f.log_pa_u[:, label], log_qz_l=f.log_qz_u[:, label],
      log_qa_l=f.log_qa_u, log_py_l=tf.fill([BU], -math.log(Y)))
  np.testing.assert_allclose(u, bounds.labeled_elbo(labeled), rtol=1e-6)


def test_label_elbos_by_hand_and_the_classifier_that_maximises_u():
  f = random_factors(5)
  n = {k: np.asarray(v, np.float64) for k, v in f._asdict().items()}
  got = bounds.label_elbos(f).numpy()
  assert got.shape == (Y, BU)
  for b in range(BU):
    for y in range(Y):
      want = np.mean([joint_u(n, s, y, b) - n["log_qa_u"][s, b] for s in range(S)])
      assert got[y, b] == pytest.approx(want, rel=1e-5)
  # For a classifier that does not read a (the same q(y|x) at every sample),
  # U(x) = sum_y q (L(x,y) - log q): softmax_y L gives log sum_y exp L, and
  # any other q gives less.
  def u_of(q):  # q [Y, B_u]
    log_q = np.log(q)[None].repeat(S, 0)
    return bounds.unlabeled_elbo(f._replace(log_qy_u=tf.constant(log_q, tf.float32))).numpy()
  best = np.exp(got - got.max(0)) / np.exp(got - got.max(0)).sum(0)
  top = np.log(np.exp(got - got.max(0)).sum(0)) + got.max(0)
  np.testing.assert_allclose(u_of(best), top, rtol=1e-5)
  other = np.random.default_rng(0).dirichlet(np.ones(Y), BU).T
  assert np.all(u_of(other) < top - 1e-3)


def test_log_qbar_averages_probabilities_not_logs():
  log_qy = tf.math.log(tf.constant([[[0.9, 0.1]], [[0.1, 0.9]]]))  # [S=2, B=1, Y=2]
  got = bounds.log_qbar(log_qy).numpy()
  np.testing.assert_allclose(got, np.log([[0.5, 0.5]]), rtol=1e-6)
  mean_of_logs = np.mean(np.log([0.9, 0.1]))
  assert abs(got[0, 0] - mean_of_logs) > 0.4  # the trap gives log 0.3


def test_classification_term_picks_the_true_label():
  f = random_factors(3)
  qbar = np.log(np.mean(np.exp(f.log_qy_l.numpy()), axis=0))  # [B_l, Y]
  want = qbar[np.arange(BL), f.y_l.numpy()]
  np.testing.assert_allclose(bounds.classification(f), want, rtol=1e-6)


def test_parts_add_up_to_the_bounds():
  f = random_factors(4)
  t = bounds.bound_terms(f)
  # L = log p(x|.) + log p(y) - KL_z - KL_a for labeled examples ...
  np.testing.assert_allclose(
      t.elbo_l, t.log_px[:BL] - math.log(Y) - t.kl_z[:BL] - t.kl_a[:BL],
      rtol=1e-5)
  # ... and U = log p(x|.) - KL_z - KL_a - KL_y for unlabeled ones.
  np.testing.assert_allclose(
      t.elbo_u, t.log_px[BL:] - t.kl_z[BL:] - t.kl_a[BL:] - t.kl_y, rtol=1e-5)


def test_objective_and_alpha():
  f = random_factors(5)
  t = bounds.bound_terms(f)
  alpha = bounds.classification_weight(60000, 100, beta=0.1)
  assert alpha == pytest.approx(60.0)
  want = (np.mean(t.elbo_l.numpy() + alpha * t.log_qbar_l.numpy())
          + np.mean(t.elbo_u.numpy()))
  assert float(bounds.objective(t, alpha)) == pytest.approx(want, rel=1e-6)


def test_importance_weighted_bounds_dominate_the_elbo():
  f = random_factors(6)
  # Jensen, for the same samples: log mean exp >= mean (labeled), and
  # log sum_y exp >= sum_y q (. - log q) (unlabeled), example by example.
  assert np.all(bounds.iw_labeled(f).numpy() >= bounds.labeled_elbo(f).numpy() - 1e-5)
  assert np.all(bounds.iw_unlabeled(f).numpy() >= bounds.unlabeled_elbo(f).numpy() - 1e-5)
  one = f._replace(**{k: getattr(f, k)[:1] for k in (
      "log_px_l", "log_pz_l", "log_pa_l", "log_qz_l", "log_qa_l")})
  np.testing.assert_allclose(bounds.iw_labeled(one), bounds.labeled_elbo(one),
                             rtol=1e-6)


def test_iw_unlabeled_enumerates_labels_inside_each_weight():
  f = random_factors(7)
  n = {k: np.asarray(v, np.float64) for k, v in f._asdict().items()}
  want = np.zeros(BU)
  for b in range(BU):
    w = []
    for k in range(S):
      joint = sum(math.exp(joint_u(n, k, y, b)) for y in range(Y))
      w.append(joint / math.exp(n["log_qa_u"][k, b]))
    want[b] = math.log(np.mean(w))
  np.testing.assert_allclose(bounds.iw_unlabeled(f), want, rtol=1e-5)


def test_classification_weight_rejects_no_labels():
  with pytest.raises(ValueError, match="num_labeled must be positive"):
    bounds.classification_weight(100, 0)


def test_mean_weighted_unlabeled_bound_by_hand():
  """The authors' form: sum_y qbar(y|x) (mean_s L_s(x,y) - log qbar(y|x))."""
  f = random_factors(7)
  n = {k: np.asarray(v, np.float64) for k, v in f._asdict().items()}
  want = np.zeros(BU)
  for b in range(BU):
    qbar = np.mean(np.exp(n["log_qy_u"][:, :, b]), axis=0)          # [Y]
    for y in range(Y):
      joint = np.mean([joint_u(n, s, y, b) - n["log_qa_u"][s, b] for s in range(S)])
      want[b] += qbar[y] * (joint - math.log(qbar[y]))
  np.testing.assert_allclose(bounds.unlabeled_elbo(f, "mean"), want, rtol=1e-5)
  # One sample: the two weightings are the same estimate.
  one = f._replace(**{k: v[:1] for k, v in f._asdict().items()
                      if k.endswith("_u") and k != "log_py_u"})
  np.testing.assert_allclose(bounds.unlabeled_elbo(one, "mean"),
                             bounds.unlabeled_elbo(one, "sample"), rtol=1e-5)
  with pytest.raises(ValueError, match="weighting"):
    bounds.unlabeled_elbo(f, "median")


def test_classifier_a_reward_is_the_bound_gained_by_reading_a():
  """U with q(y|a_s,x) minus U with qbar(y|x) for every sample is C_a + C_z - I."""
  f = random_factors(3)
  log_qbar = bounds.log_mean_exp(f.log_qy_u, axis=0)                 # [Y, BU]
  ignoring = f._replace(log_qy_u=tf.broadcast_to(log_qbar[None], f.log_qy_u.shape))
  c_a, c_z, info = bounds.classifier_a_reward(f)
  for t in (c_a, c_z, info):
    assert t.shape == (BU,)
  np.testing.assert_allclose(
      bounds.unlabeled_elbo(f) - bounds.unlabeled_elbo(ignoring), c_a + c_z - info,
      rtol=1e-4, atol=1e-4)
  # I(y;a|x) by hand: H[qbar] - mean_s H[q_s].
  q = np.exp(np.asarray(f.log_qy_u, np.float64))
  qbar = q.mean(0)
  want = -(qbar * np.log(qbar)).sum(0) - (-(q * np.log(q)).sum(1)).mean(0)
  np.testing.assert_allclose(info, want, rtol=1e-4)
  assert np.all(np.asarray(info) > 0)
  # C_a comes from log p(a|.) alone; C_z from everything else.
  no_pa = f._replace(log_pa_u=tf.zeros_like(f.log_pa_u))
  np.testing.assert_allclose(bounds.classifier_a_reward(no_pa)[0], 0.0, atol=1e-6)
  np.testing.assert_allclose(bounds.classifier_a_reward(no_pa)[1], c_z, rtol=1e-5)
  # A classifier that ignores a is neither paid nor charged.
  for t in bounds.classifier_a_reward(ignoring):
    np.testing.assert_allclose(t, 0.0, atol=1e-4)
