"""Tests for adgm_tf.evaluation: the log-likelihood that survives a cut."""

import numpy as np
import pytest

from adgm_tf import bounds
from adgm_tf import evaluation
from adgm_tf import models
from adgm_tf.errors import ConfigError

N = 23  # 5 batches of 5 images, the last one of 3


def small():
  return models.build_model("sdgm", hidden=(16, 12), z_dim=6, a_dim=4, mc_samples=1,
                            seed=3)


def images(seed=0):
  return np.random.default_rng(seed).integers(0, 256, (N, 28, 28, 1), dtype=np.uint8)


@pytest.mark.parametrize("name", models.MODELS)
def test_label_bounds_are_the_labeled_bound_of_each_label(name):
  # L(x,y) for all y from the unlabeled pass equals the labeled bound of the
  # same image with label y when the labeled pass is given the same noise.
  import tensorflow as tf
  model = models.build_model(name, hidden=(16, 12), z_dim=6, a_dim=4, mc_samples=1, seed=3)
  ev = evaluation.Evaluator(model, batch_size=5)
  x = images(1)
  got = ev.label_bounds(x, samples=3, seed=4)                        # [N, Y]
  assert got.shape == (N, 10) and np.all(np.isfinite(got))
  grey = evaluation.as_grey(x)[5:10]                                 # the second batch
  noise = model.sample_noise(tf.constant([4, 1], tf.int64), 3, 0, 5)
  for y in (0, 3, 9):
    a_u = noise.a_u
    labeled = noise._replace(a_l=a_u, z_l=noise.z_u[:, y], z_u=noise.z_u[:, :, :0],
                             a_u=None if a_u is None else a_u[:, :0])
    f = model.compute_factors(grey, tf.fill([5], y), grey[:0], labeled)
    np.testing.assert_allclose(got[5:10, y], bounds.labeled_elbo(f).numpy(), rtol=1e-5)
  # Deterministic for a seed; another seed draws other samples.
  np.testing.assert_array_equal(ev.label_bounds(x, samples=3, seed=4), got)
  assert not np.allclose(ev.label_bounds(x, samples=3, seed=5), got)


class Cut(Exception):
  pass


def cut_after(batches):
  def progress(done, total):
    if done >= 5 * batches:
      raise Cut()
  return progress


def test_a_cut_log_likelihood_resumes_to_the_uncut_result(tmp_path):
  ev = evaluation.Evaluator(small())
  x = images()
  kwargs = dict(samples=7, seed=2, batch_size=5, chunk=3)
  whole = ev.log_likelihood(x, **kwargs)
  assert whole.shape == (N,) and np.all(whole < 0)
  path = str(tmp_path / "ll.npz")
  with pytest.raises(Cut):
    ev.log_likelihood(x, resume_file=path, tag="ckpt-9", progress=cut_after(2), **kwargs)
  with np.load(path) as saved:
    np.testing.assert_array_equal(saved["log_likelihood"], whole[:10])  # 2 batches kept
  seen = []
  again = ev.log_likelihood(x, resume_file=path, tag="ckpt-9",
                            progress=lambda d, t: seen.append((d, t)), **kwargs)
  np.testing.assert_array_equal(again, whole)
  assert seen == [(5, 13), (10, 13), (13, 13)]  # only the 3 batches left were computed
  # Done: a third call computes nothing and returns the same.
  seen.clear()
  np.testing.assert_array_equal(
      ev.log_likelihood(x, resume_file=path, tag="ckpt-9",
                        progress=lambda d, t: seen.append(d), **kwargs), whole)
  assert seen == []


@pytest.mark.parametrize("change, named", [
    (dict(tag="ckpt-10"), "tag 'ckpt-9' there, 'ckpt-10' now"),
    (dict(samples=8), "samples 7 there, 8 now"),
    (dict(batch_size=4), "batch_size 5 there, 4 now"),
    (dict(x=images(seed=1)), "digest"),
])
def test_a_progress_file_of_another_evaluation_is_refused_and_kept(tmp_path, change,
                                                                     named):
  ev = evaluation.Evaluator(small())
  path = tmp_path / "ll.npz"
  args = dict(x=images(), samples=7, seed=2, batch_size=5, chunk=3, tag="ckpt-9")
  with pytest.raises(Cut):
    ev.log_likelihood(args.pop("x"), resume_file=str(path), progress=cut_after(1), **args)
  before = path.read_bytes()
  args = {**args, "x": images(), **change}
  with pytest.raises(ConfigError, match=f"holds the log-likelihoods of another "
                                        f"evaluation .*{named}.*delete it to start over"):
    ev.log_likelihood(args.pop("x"), resume_file=str(path), **args)
  assert path.read_bytes() == before


def test_a_damaged_progress_file_is_refused(tmp_path):
  path = tmp_path / "ll.npz"
  path.write_bytes(b"not an npz")
  with pytest.raises(ConfigError, match="is not a log-likelihood progress file"):
    evaluation.Evaluator(small()).log_likelihood(images(), samples=2, batch_size=5,
                                                 resume_file=str(path))
