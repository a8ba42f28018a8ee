"""Tests for the model variants: forward pass, bounds, traps, train_step, fit."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import bounds
from adgm_tf import data
from adgm_tf.models import MODELS, build_model

import reference

# Distinct small dims, so that a transposed axis cannot go unnoticed.
S, BL, BU, X, A, Z, Y = 2, 3, 4, 5, 4, 6, 10
HIDDEN = (8, 9)


def small_model(name, batch_norm=False, **kwargs):
  kwargs = dict(dict(x_dim=X, z_dim=Z, a_dim=A, hidden=HIDDEN,
                     batch_norm=batch_norm, mc_samples=S, alpha=0.5), **kwargs)
  return build_model(name, **kwargs)


def small_batch(seed=0):
  rng = np.random.default_rng(seed)
  x_l = (rng.random((BL, X)) < 0.5).astype(np.float32)
  y_l = np.array([0, 3, 9], np.int32)
  x_u = (rng.random((BU, X)) < 0.5).astype(np.float32)
  return x_l, y_l, x_u


def _np(t):
  return None if t is None else np.asarray(t, np.float64)


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_factor_shapes(name):
  model = small_model(name)
  x_l, y_l, x_u = small_batch()
  noise = model.sample_noise([1, 2], S, BL, BU)
  f = model.compute_factors(x_l, y_l, x_u, noise)
  for field in ("log_px_l", "log_pz_l", "log_qz_l", "log_qa_l", "log_pa_l"):
    assert tuple(getattr(f, field).shape) == (S, BL), field
  for field in ("log_px_u", "log_pz_u", "log_qz_u", "log_qy_u"):
    assert tuple(getattr(f, field).shape) == (S, Y, BU), field
  assert tuple(f.log_qa_u.shape) == (S, BU)
  assert tuple(f.log_qy_l.shape) == (S, BL, Y)
  t = bounds.bound_terms(f)
  assert t.elbo_l.shape == (BL,) and t.elbo_u.shape == (BU,)
  assert t.kl_z.shape == (BL + BU,) and t.kl_y.shape == (BU,)
  assert model(x_u).shape == (BU, Y)
  assert model.generate(tf.constant([1, 2, 3])).shape == (3, X)
  if model.wiring.auxiliary == "stochastic":
    assert noise.a_l.shape == (S, BL, A) and noise.a_u.shape == (S, BU, A)
  assert noise.z_u.shape == (S, Y, BU, Z)


def test_factor_names_follow_the_maths():
  names = {n: sorted(small_model(n).factors) for n in MODELS}
  assert names["adgm"] == ["p_a", "p_x", "q_a", "q_y", "q_z"]
  assert names["sdgm"] == ["p_a", "p_x", "q_a", "q_y", "q_z"]
  assert names["adgm_workshop"] == ["p_x", "q_a", "q_y", "q_z"]
  assert names["m2"] == ["p_x", "q_y", "q_z"]
  assert names["adgm_det"] == ["p_x", "q_a", "q_y", "q_z"]
  model = small_model("adgm")
  assert model.q_z.name == "q_z_given_axy" and model.p_a.name == "p_a_given_xyz"
  assert sorted(small_model("sdgm").p_x.input_dims) == ["a", "y", "z"]
  assert sorted(small_model("adgm_workshop").q_z.input_dims) == ["x", "y"]


# ---------------------------------------------------------------------------
# The bounds against references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_vectorized_bounds_equal_the_brute_force_reference(name):
  model = small_model(name)
  x_l, y_l, x_u = small_batch(1)
  noise = model.sample_noise([3, 4], S, BL, BU)
  t = model.bound_terms(x_l, y_l, x_u, noise)
  a_l, a_u = _np(noise.a_l), _np(noise.a_u)
  for b in range(BL):
    want = reference.labeled_elbo(model, x_l[b], y_l[b],
                                  None if a_l is None else a_l[:, b],
                                  _np(noise.z_l)[:, b])
    np.testing.assert_allclose(t.elbo_l[b], want, rtol=1e-5, atol=1e-5)
    qbar = reference.log_qbar(model, x_l[b], None if a_l is None else a_l[:, b])
    np.testing.assert_allclose(t.log_qbar_l[b], qbar[y_l[b]], rtol=1e-5, atol=1e-5)
  for b in range(BU):
    want = reference.unlabeled_elbo(model, x_u[b],
                                    None if a_u is None else a_u[:, b],
                                    _np(noise.z_u)[:, :, b])
    np.testing.assert_allclose(t.elbo_u[b], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_unlabeled_bound_equals_a_loop_over_labels_of_labeled_bounds(name):
  model = small_model(name)
  _, _, x_u = small_batch(2)
  noise = model.sample_noise([5, 6], S, 0, BU)
  f = model.compute_factors(np.zeros((0, X), np.float32), np.zeros(0, np.int32),
                            x_u, noise)
  vectorized = bounds.unlabeled_elbo(f).numpy()
  # Plain loop: for each y, the labeled bound of every image with label y,
  # using the same a-samples and that label's z-noise.
  log_w, log_qy, log_qa = [], None, None
  for y in range(Y):
    noise_y = noise._replace(a_l=noise.a_u, z_l=noise.z_u[:, y],
                             a_u=None if noise.a_u is None else noise.a_u[:, :0],
                             z_u=noise.z_u[:, :, :0])
    fy = model.compute_factors(x_u, np.full(BU, y, np.int32),
                               np.zeros((0, X), np.float32), noise_y)
    log_w.append(bounds.labeled_log_weight(fy).numpy())       # [S, B]
    log_qa = fy.log_qa_l.numpy()                               # [S, B]
    log_qy = fy.log_qy_l.numpy()                               # [S, B, Y]
  log_w = np.stack(log_w, 1)                                   # [S, Y, B]
  qy = np.exp(np.transpose(log_qy, (0, 2, 1)))                 # [S, Y, B]
  loop = np.mean(np.sum(qy * (log_w + log_qa[:, None]
                              - np.log(qy)), axis=1) - log_qa, axis=0)
  np.testing.assert_allclose(vectorized, loop, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Known traps of public ports
# ---------------------------------------------------------------------------


def _record_projections(model, factor_names, input_name, store):
  for fname in factor_names:
    layer = getattr(model, fname)
    original = layer.project

    def project(name, value=None, _orig=original, _f=fname):
      if name == input_name:
        store.setdefault(_f, []).append(value)
      return _orig(name, value)
    layer.project = project


@pytest.mark.parametrize("name", ["adgm", "sdgm"])
def test_one_a_sample_per_example_is_shared_by_every_label_and_the_classifier(name):
  model = small_model(name)
  x_l, y_l, x_u = small_batch(3)
  seen = {}
  factors_with_a = [f for f in ("q_y", "q_z", "p_x") if "a" in getattr(model, f).input_dims]
  _record_projections(model, factors_with_a, "a", seen)
  noise = model.sample_noise([7, 8], S, BL, BU)
  model.compute_factors(x_l, y_l, x_u, noise)
  a_seen = [np.asarray(v) for f in factors_with_a for v in seen[f]]
  assert len(a_seen) == len(factors_with_a)  # a is projected once per factor
  for a in a_seen:
    assert a.shape == (S, BL + BU, A)  # no label axis: drawn once per (s, example)
    np.testing.assert_array_equal(a, a_seen[0])  # the very same samples
  # And they are q(a|x)'s samples for this noise.
  loc, log_var = model.q_a({"x": np.concatenate([x_l, x_u])})
  eps = np.concatenate([noise.a_l, noise.a_u], 1)
  np.testing.assert_allclose(a_seen[0], loc + np.exp(0.5 * log_var) * eps,
                             rtol=1e-5, atol=1e-6)


def test_deterministic_auxiliary_has_no_noise_and_no_a_terms():
  model = small_model("adgm_det")
  x_l, y_l, x_u = small_batch(4)
  noise = model.sample_noise([1, 1], S, BL, BU)
  assert noise.a_l is None and noise.a_u is None
  seen = {}
  _record_projections(model, ["q_y", "q_z"], "a", seen)
  f = model.compute_factors(x_l, y_l, x_u, noise)
  mu = model.q_a({"x": np.concatenate([x_l, x_u])}).numpy()
  for v in seen["q_y"] + seen["q_z"]:
    np.testing.assert_allclose(np.asarray(v)[0], mu, rtol=1e-6)  # a = mu(x)
  for term in (f.log_qa_l, f.log_qa_u, f.log_pa_l, f.log_pa_u):
    assert not np.any(term.numpy())
  # q(y|a,x) is the same for every sample.
  np.testing.assert_allclose(f.log_qy_l[0], f.log_qy_l[1], rtol=1e-6)
  other = model.sample_noise([2, 2], S, BL, BU)
  np.testing.assert_allclose(model.compute_factors(x_l, y_l, x_u, other).log_qy_u,
                             f.log_qy_u, rtol=1e-6)


def test_classifier_averages_probabilities_over_many_a_samples_at_test_time():
  model = small_model("adgm", eval_samples=50)
  _, _, x_u = small_batch(5)
  seen = {}
  _record_projections(model, ["q_y"], "a", seen)
  got = model.predict_log_proba(x_u).numpy()
  a = np.asarray(seen["q_y"][-1])
  assert a.shape[0] == 50 and len(np.unique(a[:, 0, 0])) == 50  # 50 distinct samples
  eps = tf.random.stateless_normal([50, 1, A], seed=tf.constant([model.seed, -1], tf.int64))
  for b in range(BU):
    want = reference.log_qbar(model, x_u[b], np.asarray(eps)[:, 0].astype(np.float64))
    np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6)
  # Deterministic, and an example's answer does not depend on its batch.
  np.testing.assert_array_equal(got, model.predict_log_proba(x_u).numpy())
  np.testing.assert_allclose(model.predict_log_proba(x_u[1:2]).numpy()[0], got[1],
                             rtol=1e-6)


# ---------------------------------------------------------------------------
# Importance weighting
# ---------------------------------------------------------------------------


def test_importance_weighted_bound_is_above_the_elbo_and_rises_with_k(mnist_arrays):
  model = build_model("adgm", z_dim=8, a_dim=8, hidden=(32,), mc_samples=1)
  x = mnist_arrays.test_images[:64].reshape(64, 784).astype(np.float32) / 255
  y = mnist_arrays.test_labels[:64]
  means = {}
  for k in (1, 8, 64):
    noise = model.sample_noise([11, k], k, 64, 64)
    f = model.compute_factors(x, y, x, noise)
    iw_l, iw_u = bounds.iw_labeled(f).numpy(), bounds.iw_unlabeled(f).numpy()
    assert np.all(iw_l >= bounds.labeled_elbo(f).numpy() - 1e-3)
    assert np.all(iw_u >= bounds.unlabeled_elbo(f).numpy() - 1e-3)
    means[k] = (iw_l.mean(), iw_u.mean())
  assert means[1][0] < means[8][0] < means[64][0], means
  assert means[1][1] < means[8][1] < means[64][1], means


def test_iw_training_is_refused_for_the_deterministic_auxiliary():
  with pytest.raises(ValueError, match="deterministic auxiliary unit"):
    small_model("adgm_det", iw_samples=5, mc_samples=1)
  with pytest.raises(ValueError, match="Set mc_samples=1, or iw_samples=1"):
    small_model("adgm", iw_samples=5, mc_samples=2)


# ---------------------------------------------------------------------------
# Gradients and the train step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_gradients_reach_every_weight(name, batch_norm):
  model = small_model(name, batch_norm=batch_norm)
  x_l, y_l, x_u = small_batch(6)
  noise = model.sample_noise([9, 9], S, BL, BU)
  with tf.GradientTape() as tape:
    loss, _, _ = model.compute_loss_terms(x_l, y_l, x_u, noise, training=True)
  grads = tape.gradient(loss, model.trainable_variables)
  assert len(grads) == len(model.trainable_variables) > 0
  for v, g in zip(model.trainable_variables, grads):
    assert g is not None, v.path
    assert float(tf.norm(g)) > 0, v.path


def test_a_train_step_updates_weights_and_reports_every_metric():
  model = small_model("adgm", batch_norm=True)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  x_l, y_l, x_u = small_batch(7)
  before = [v.numpy().copy() for v in model.trainable_variables]
  logs = model.train_step(((x_l, y_l), x_u))
  assert set(logs) == {"loss", "elbo_labeled", "elbo_unlabeled", "classification",
                       "kl_z", "kl_a", "kl_y", "log_px", "accuracy"}
  assert all(np.isfinite(float(v)) for v in logs.values())
  changed = [not np.array_equal(b, v.numpy())
             for b, v in zip(before, model.trainable_variables)]
  assert all(changed)
  assert int(model.optimizer.iterations) == 1


def test_weight_prior_adds_a_scaled_gaussian_log_density_of_the_kernels():
  model = small_model("adgm", weight_prior_scale=0.0)
  x_l, y_l, x_u = small_batch(14)
  noise = model.sample_noise([4, 4], S, BL, BU)
  plain = float(model.compute_loss_terms(x_l, y_l, x_u, noise, training=False)[0])
  # A scale large enough that the float32 difference of two losses resolves it.
  model.weight_prior_scale = 0.5
  with_prior = float(model.compute_loss_terms(x_l, y_l, x_u, noise, training=False)[0])
  kernels = [v.numpy() for v in model.trainable_variables if "kernel" in v.path]
  assert len(kernels) > 10  # every first-layer input kernel, hidden and head
  expected = 0.5 * 0.5 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels)
  assert with_prior - plain == pytest.approx(expected, rel=1e-4)


def test_gradient_clipping_bounds_the_update():
  x_l, y_l, x_u = small_batch(8)
  updates = {}
  for clip in (0.0, 1e-3):
    keras.utils.set_random_seed(1)
    model = small_model("adgm", clip_norm=clip)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.train_step(((x_l, y_l), x_u))
    updates[clip] = np.sqrt(sum(np.sum((v.numpy() - b) ** 2) for b, v in
                                zip(before, model.trainable_variables)))
  assert updates[0.0] > 1e-2
  assert updates[1e-3] == pytest.approx(1e-3, rel=1e-3)


def test_a_non_finite_loss_names_the_step_and_term_and_keeps_the_weights():
  model = small_model("adgm")
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  x_l, y_l, x_u = small_batch(9)
  model.train_step(((x_l, y_l), x_u))
  bias = model.p_x.head.bias
  bias.assign(tf.fill(bias.shape, np.inf))
  before = [v.numpy().copy() for v in model.trainable_variables]
  with pytest.raises(tf.errors.InvalidArgumentError) as err:
    model.train_step(((x_l, y_l), x_u))
  msg = str(err.value)
  assert "non-finite loss at training step 1; non-finite terms: loss," in msg
  assert "log_px" in msg and "kl_a" not in msg
  for b, v in zip(before, model.trainable_variables):
    np.testing.assert_array_equal(b, v.numpy())
  # The same inside `fit` (a tf.function), at the step it happens.
  ds = tf.data.Dataset.from_tensors(((x_l, y_l), x_u)).repeat(3)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="non-finite loss at training step 1; non-finite terms"):
    model.fit(ds, epochs=1, verbose=0)
  for b, v in zip(before, model.trainable_variables):
    np.testing.assert_array_equal(b, v.numpy())


def test_test_step_reports_bounds_and_error():
  model = small_model("adgm", eval_samples=7)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  x_l, y_l, _ = small_batch(10)
  logs = model.test_step((x_l, y_l))
  assert set(logs) == {"elbo_labeled", "elbo_unlabeled", "classification", "error"}
  probs = model.predict_log_proba(x_l, 7).numpy()
  want = np.mean(np.argmax(probs, 1) != y_l)
  assert float(logs["error"]) == pytest.approx(want)


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip_and_keras_file(name, tmp_path):
  model = small_model(name, batch_norm=True, eval_samples=3, activation="tanh")
  config = json.loads(json.dumps(model.get_config()))
  clone = type(model).from_config(config)
  assert clone.get_config() == model.get_config()
  assert clone.wiring == model.wiring
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert type(loaded) is type(model)
  x = small_batch(11)[2]
  np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
  for a, b in zip(loaded.weights, model.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unknown_model_name_lists_the_choices():
  with pytest.raises(ValueError, match=r"choose one of \['adgm', 'adgm_workshop'"):
    build_model("adgm2")


# ---------------------------------------------------------------------------
# One epoch of fit on real MNIST
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "adgm", "m2",
    # The others share every piece of these two (test_factor_shapes and the
    # brute-force bound tests cover each); a real fit of each is a minute more.
    pytest.param("adgm_workshop", marks=pytest.mark.large),
    pytest.param("adgm_det", marks=pytest.mark.large),
    pytest.param("sdgm", marks=pytest.mark.large)])
def test_one_epoch_of_fit_on_mnist_learns(name, mnist_arrays):
  keras.utils.set_random_seed(0)
  split = data.split_semi_supervised(mnist_arrays, num_labels=100, label_seed=1,
                                     max_unlabeled=1000)
  ds = data.train_dataset(split, labeled_batch_size=100, unlabeled_batch_size=10,
                          seed=0)
  alpha = bounds.classification_weight(split.num_unlabeled, split.num_labeled)
  model = build_model(name, z_dim=32, a_dim=32, hidden=(256, 256),
                      batch_norm=True, mc_samples=1, eval_samples=20,
                      alpha=alpha, seed=0)
  model.compile(optimizer=keras.optimizers.Adam(3e-3))
  (x_l, y_l), x_u = next(iter(ds))
  noise = model.sample_noise([1, 2], 1, 100, 10)

  def loss():
    return float(model.compute_loss_terms(x_l, y_l, x_u, noise, training=False)[0])

  before = loss()
  history = model.fit(ds, epochs=1, verbose=0)
  assert len(history.history["loss"]) == 1
  after = loss()
  assert after < before - 100, (before, after)
  x_test = mnist_arrays.test_images[:2000].reshape(-1, 784).astype(np.float32) / 255
  y_test = mnist_arrays.test_labels[:2000]
  accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test)
  assert accuracy > 0.4, accuracy  # chance is 0.1
  print(f"{name}: loss {before:.1f} -> {after:.1f}, test accuracy {accuracy:.3f}")


# ---------------------------------------------------------------------------
# XLA and mixed precision (the GPU paths, checked on CPU)
# ---------------------------------------------------------------------------


def _copy_weights(src, dst):
  for a, b in zip(src.variables, dst.variables):
    b.assign(tf.cast(a, b.dtype))


@pytest.mark.large  # ~35 s: XLA gives no speed-up on CPU (BUILD.md); run with --run_large
def test_xla_step_equals_the_plain_step():
  x_l, y_l, x_u = small_batch(12)
  models = []
  for jit in (False, True):
    keras.utils.set_random_seed(5)
    m = small_model("adgm", batch_norm=True, jit_compile_gradients=jit)
    m.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = tf.function(m.train_step)(((x_l, y_l), x_u))
    models.append((m, {k: float(v) for k, v in logs.items()}))
  (plain, a), (xla, b) = models
  for k in a:
    assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-4), k
  for u, v in zip(plain.trainable_variables, xla.trainable_variables):
    np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-4, atol=1e-5)


# Stated tolerances for the bound under mixed precision, relative to float32:
# bfloat16 keeps 8 bits of mantissa (about 3 significant digits), float16 11.
MIXED_TOLERANCE = {"mixed_bfloat16": 3e-2, "mixed_float16": 5e-3}


@pytest.mark.parametrize("policy", [
    # bf16: no bf16 instructions on these CPUs (BUILD.md); ~17 s, so --run_large only.
    pytest.param("mixed_bfloat16", marks=pytest.mark.large), "mixed_float16"])
def test_mixed_precision_gives_the_float32_bound_and_finite_steps(policy):
  x = (np.random.default_rng(13).random((6, 784)) < 0.3).astype(np.float32)
  y = np.arange(6) % 10
  keras.utils.set_random_seed(6)
  ref = build_model("adgm", z_dim=16, a_dim=16, hidden=(64, 64), batch_norm=True)
  try:
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(6)
    mixed = build_model("adgm", z_dim=16, a_dim=16, hidden=(64, 64), batch_norm=True)
    assert mixed.q_z.mlp.first.compute_dtype == policy.split("_")[1]
    _copy_weights(ref, mixed)
    noise = ref.sample_noise([3, 3], 1, 6, 6)
    t32 = ref.bound_terms(x, y, x, noise)
    t16 = mixed.bound_terms(x, y, x, noise)
    for a, b in ((t32.elbo_l, t16.elbo_l), (t32.elbo_u, t16.elbo_u)):
      assert b.dtype == tf.float32  # bounds stay float32
      np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=MIXED_TOLERANCE[policy])
    optimizer = keras.optimizers.Adam(1e-3)
    if policy == "mixed_float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    mixed.compile(optimizer=optimizer)
    step = tf.function(mixed.train_step)
    for _ in range(3):
      logs = step(((x, y), x))
    assert all(np.isfinite(float(v)) for v in logs.values())
  finally:
    keras.mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------------------
# The authors' recipe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adgm", "sdgm", "adgm_workshop"])
def test_authors_init_starts_q_a_at_p_a(name):
  """At step 0 the a-terms nearly cancel with the authors' init, not with Glorot heads."""
  rng = np.random.default_rng(0)
  x = (rng.random((20, 784)) < 0.2).astype(np.float32)
  y = np.arange(20, dtype=np.int32) % 10
  kl = {}
  for init in ("glorot", "authors"):
    keras.utils.set_random_seed(0)
    model = build_model(name, hidden=(100, 100), batch_norm=True, init=init)
    noise = model.sample_noise(tf.constant([0, 1], tf.int64), 1, 20, 20)
    kl[init] = float(tf.reduce_mean(model.bound_terms(x, y, x, noise, training=True).kl_a))
  assert abs(kl["authors"]) < 0.5
  assert kl["glorot"] > 10.0


def test_split_batch_statistics_keep_the_two_passes_apart():
  """With split statistics the unlabeled bound does not depend on the labeled batch."""
  x_l, y_l, x_u = small_batch(3)
  x_l2 = 1.0 - x_l
  for stats, independent in (("split", True), ("joint", False)):
    model = small_model("adgm", batch_norm=True, bn_statistics=stats)
    noise = model.sample_noise(tf.constant([0, 2], tf.int64), S, BL, BU)
    u1 = model.bound_terms(x_l, y_l, x_u, noise, training=True).elbo_u
    u2 = model.bound_terms(x_l2, y_l, x_u, noise, training=True).elbo_u
    if independent:
      np.testing.assert_allclose(u1, u2, rtol=1e-5)
    else:
      assert np.max(np.abs(u1 - u2)) > 1e-3
  with pytest.raises(ValueError, match="bn_statistics"):
    small_model("adgm", bn_statistics="both")


def test_elementwise_clipping_bounds_every_gradient_element():
  x_l, y_l, x_u = small_batch(8)
  for clip_value in (0.0, 1e-4):
    keras.utils.set_random_seed(1)
    model = small_model("adgm", clip_norm=5.0, clip_value=clip_value)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.train_step(((x_l, y_l), x_u))
    biggest = max(float(np.max(np.abs(v.numpy() - b)))
                  for b, v in zip(before, model.trainable_variables))
    if clip_value:
      assert biggest == pytest.approx(clip_value, rel=1e-3)
    else:
      assert biggest > 1e-2


def test_mean_weighting_is_used_by_the_training_objective():
  x_l, y_l, x_u = small_batch(5)
  values = {}
  for weighting in ("sample", "mean"):
    keras.utils.set_random_seed(2)
    model = small_model("adgm", unlabeled_weighting=weighting)
    noise = model.sample_noise(tf.constant([0, 3], tf.int64), S, BL, BU)
    f = model.compute_factors(x_l, y_l, x_u, noise)
    values[weighting] = model.bound_terms(x_l, y_l, x_u, noise).elbo_u
    np.testing.assert_allclose(values[weighting], bounds.unlabeled_elbo(f, weighting))
  assert np.max(np.abs(values["sample"] - values["mean"])) > 1e-4  # S = 2 differs


def test_warm_up_scales_the_a_terms_of_the_loss_but_not_the_reported_bound():
  x_l, y_l, x_u = small_batch(6)
  model = small_model("adgm", aux_warmup_steps=4)
  noise = model.sample_noise(tf.constant([0, 4], tf.int64), S, BL, BU)
  f = model.compute_factors(x_l, y_l, x_u, noise)
  plain_loss, plain_terms, _ = model.compute_loss_terms(x_l, y_l, x_u, noise, False)
  for step, weight in ((0, 0.25), (1, 0.5), (3, 1.0), (9, 1.0)):
    assert float(model.aux_kl_weight(step)) == weight
    loss, terms, _ = model.compute_loss_terms(x_l, y_l, x_u, noise, False, step=step)
    want = -bounds.objective(bounds.bound_terms(bounds.warm_up(f, weight)), 0.5)
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    np.testing.assert_allclose(terms.elbo_u, plain_terms.elbo_u)  # metrics: true bound
  # The a-part of the labeled bound is what the weight scales.
  half = bounds.labeled_elbo(bounds.warm_up(f, 0.5))
  a_part = np.mean(np.asarray(f.log_pa_l) - np.asarray(f.log_qa_l), axis=0)
  np.testing.assert_allclose(bounds.labeled_elbo(f) - half, 0.5 * a_part, rtol=1e-4, atol=1e-3)
  assert float(plain_loss) != pytest.approx(float(
      model.compute_loss_terms(x_l, y_l, x_u, noise, False, step=0)[0]), rel=1e-6)


def test_aux_log_var_init_starts_q_a_nearly_deterministic():
  x = np.random.default_rng(0).random((6, X)).astype(np.float32)
  model = small_model("adgm", aux_log_var_init=-6.0)
  _, log_var = model.auxiliary_posterior(x)
  assert abs(float(np.mean(log_var)) + 6.0) < 1.0
  _, log_var = small_model("adgm").auxiliary_posterior(x)
  assert abs(float(np.mean(log_var))) < 2.0
  assert build_model("m2", aux_log_var_init=-6.0).q_a is None  # no a: no effect
  clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
  assert clone.aux_log_var_init == -6.0


def test_aux_log_var_max_caps_q_a_and_keeps_the_start():
  x_l, y_l, x_u = small_batch(8)
  model = small_model("adgm", aux_log_var_init=-6.0, aux_log_var_max=-4.0)
  _, log_var = model.auxiliary_posterior(x_u)
  # The start is where it was asked to be, through the cap's inverse.
  assert abs(float(np.mean(log_var)) + 6.0) < 1.0
  head, a_dim = model.q_a, model.a_dim
  # Far below the cap it is the identity; far above it sits at the cap.
  raw = np.concatenate([np.zeros([2, a_dim]), [[-12.0] * a_dim, [50.0] * a_dim]], 1)
  _, lv = head._split(tf.constant(raw, tf.float32))
  np.testing.assert_allclose(lv.numpy()[0], -12.0, atol=1e-3)
  np.testing.assert_allclose(lv.numpy()[1], -4.0, atol=1e-6)
  # Push the head's log-variance bias far up: q(a|x) never goes past the cap.
  bias = head.head.bias
  bias.assign(tf.concat([bias[:a_dim], tf.fill([a_dim], 50.0)], 0))
  _, log_var = model.auxiliary_posterior(x_u)
  assert float(np.max(log_var)) <= -4.0
  # Below it, gradients reach the raw head through the cap; the loss is finite.
  bias.assign(tf.concat([bias[:a_dim], tf.fill([a_dim], -5.0)], 0))
  noise = model.sample_noise(tf.constant([0, 8], tf.int64), S, BL, BU)
  with tf.GradientTape() as tape:
    loss = model.compute_loss_terms(x_l, y_l, x_u, noise, True)[0]
  grad = tape.gradient(loss, bias)
  assert np.isfinite(float(loss)) and float(tf.reduce_sum(tf.abs(grad[a_dim:]))) > 0
  clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
  assert clone.aux_log_var_max == -4.0 and clone.q_a.log_var_max == -4.0
  with pytest.raises(ValueError, match="below"):
    small_model("adgm", aux_log_var_init=-3.0, aux_log_var_max=-4.0)
  assert build_model("m2", aux_log_var_max=-4.0).q_a is None  # no a: no effect


@pytest.mark.parametrize("name", ["adgm_workshop", "adgm", "sdgm"])
def test_only_the_forms_whose_bound_depends_on_a_pay_the_classifier_for_it(name):
  """bounds.classifier_a_reward on real networks, z's noise shared by the samples.

  With the same z-noise for every sample of a, the workshop form's per-label
  terms L_s(y) do not depend on a_s at all (models/adgm.py), so the bound
  pays nothing for a classifier that reads a (C = 0 exactly) and charges it
  I(y;a|x) > 0; in the ICML ADGM (through p(a|x,y,z) and q(z|a,x,y)) and the
  SDGM (through p(a|y,z), p(x|a,y,z) and q(z|a,x,y)) L_s(y) moves with a_s.
  """
  model = small_model(name, mc_samples=8)
  x_l, y_l, x_u = small_batch(1)
  noise = model.sample_noise([3, 4], 8, BL, BU)
  noise = noise._replace(z_u=tf.tile(noise.z_u[:1], [8, 1, 1, 1]))
  f = model.compute_factors(x_l, y_l, x_u, noise)
  c_a, c_z, info = (np.asarray(t) for t in bounds.classifier_a_reward(f))
  assert np.all(info > 0)  # the untrained classifier's answer moves with a
  if name == "adgm_workshop":
    np.testing.assert_allclose(c_a, 0.0, atol=1e-6)
    np.testing.assert_allclose(c_z, 0.0, atol=1e-5)
  else:
    assert np.max(np.abs(c_a)) > 1e-4 and np.max(np.abs(c_z)) > 1e-4


def test_gaussian_heads_compute_in_float32_under_mixed_precision():
  """--precision=bf16: the matmuls of the trunks run in bfloat16, the Gaussian
  heads (loc, log-variance) in float32; the logits heads stay mixed."""
  try:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_model("sdgm", z_dim=4, a_dim=3, hidden=(8,), batch_norm=True)
    for factor in (model.q_a, model.q_z, model.p_a):
      assert factor.mlp.first.compute_dtype == "bfloat16"
      assert factor.head.compute_dtype == "float32"
      assert factor.head.kernel.dtype == "float32"
    for factor in (model.q_y, model.p_x):
      assert factor.head.compute_dtype == "bfloat16"
  finally:
    keras.mixed_precision.set_global_policy("float32")
