"""Evaluation: test error, bounds, the IW log-likelihood, active units, samples.

* **Test error**: argmax of qbar(y|x) = 1/S sum_s q(y|a_s,x) with S_eval
  samples (100 at the end of training), batch norm in inference mode, grey
  inputs unless asked otherwise.
* **Log-likelihood**: the importance-weighted bound of ``bounds.py`` with K
  samples (1000 by default), y enumerated in each weight, on a fixed
  Bernoulli sample of the test images (the model is a Bernoulli model).
  Reported in nats per image, as in the paper's Table 2.
* **Active units** (Maaløe et al. 2016, Fig. 3): a unit whose KL(q||p),
  averaged over the test set, exceeds 0.01 nats.

An :class:`Evaluator` compiles its functions once per model and is reused
across evaluations.
"""

from __future__ import annotations

import math
import time
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from adgm_tf import bounds
from adgm_tf import data as data_lib
from adgm_tf import diagnostics
from adgm_tf.errors import ConfigError
from adgm_tf.evaluate import SPLITS, check_evaluate_args

ACTIVE_UNIT_THRESHOLD = 0.01  # nats of KL(q||p), averaged over the test set


def as_grey(images: np.ndarray) -> np.ndarray:
  """uint8 ``[N, 28, 28, 1]`` or ``[N, 784]`` -> float32 ``[N, 784]`` in [0, 1]."""
  images = np.asarray(images)
  flat = images.reshape(len(images), -1)
  if images.dtype == np.uint8:
    return flat.astype(np.float32) / 255.0
  return flat.astype(np.float32)


def fixed_binarization(images: np.ndarray, seed: int) -> np.ndarray:
  """One fixed Bernoulli sample of grey images (float32 0/1)."""
  grey = as_grey(images)
  rng = np.random.default_rng([seed, 0xb1])
  return (rng.random(grey.shape, dtype=np.float32) < grey).astype(np.float32)


class Evaluator:
  """Compiled evaluation functions for one model."""

  def __init__(self, model, batch_size: int = 500):
    self.model = model
    self.batch_size = int(batch_size)
    self._log_proba = tf.function(
        lambda x, s: model.predict_log_proba(x, s), reduce_retracing=True)
    self._bounds = {}
    self._iw = {}
    self._kl = tf.function(
        lambda x: model.posterior_kl_per_unit(x, samples=1), reduce_retracing=True)
    self._diagnostics = diagnostics.AuxiliaryDiagnostics(model, self.batch_size)

  def _batches(self, *arrays, batch_size=None):
    n = len(arrays[0])
    bs = batch_size or self.batch_size
    for i in range(0, n, bs):
      yield tuple(a[i:i + bs] for a in arrays)

  def log_proba(self, images: np.ndarray, samples: int) -> np.ndarray:
    """log qbar(y|x) ``[N, Y]``."""
    x = as_grey(images) if images.dtype == np.uint8 else images
    out = [self._log_proba(tf.constant(b), samples).numpy()
           for (b,) in self._batches(x)]
    return np.concatenate(out) if out else np.zeros((0, self.model.num_classes))

  def error(self, images, labels, samples: int, binarize: bool = False,
            seed: int = 0) -> float:
    x = fixed_binarization(images, seed) if binarize else as_grey(images)
    pred = np.argmax(self.log_proba(x, samples), axis=1)
    return float(np.mean(pred != np.asarray(labels)))

  def classify(self, images, labels, samples: int, binarize: bool = False,
               seed: int = 0) -> Dict[str, Optional[float]]:
    """The error and the a-diagnostics (``diagnostics.py``) in one pass.

    ``error`` equals :meth:`error`'s; the ``aux_*`` values are None for a
    model without a.
    """
    x = fixed_binarization(images, seed) if binarize else as_grey(images)
    return self._diagnostics(x, labels, samples, seed=seed)

  def bounds(self, images, labels, samples: int, binarize: bool = False,
             seed: int = 0) -> Dict[str, float]:
    """Mean L(x,y) (true labels) and U(x), in nats, with ``samples`` samples."""
    if samples not in self._bounds:
      model = self.model

      def fn(x, y, s):
        noise = model.sample_noise(s, samples, tf.shape(x)[0], tf.shape(x)[0])
        t = model.bound_terms(x, y, x, noise, training=False)
        return t.elbo_l, t.elbo_u
      self._bounds[samples] = tf.function(fn, reduce_retracing=True)
    x = fixed_binarization(images, seed) if binarize else as_grey(images)
    ls, us = [], []
    for i, (b, y) in enumerate(self._batches(x, np.asarray(labels))):
      lab, unl = self._bounds[samples](tf.constant(b), tf.constant(y),
                                   tf.constant([seed, i], tf.int64))
      ls.append(lab.numpy())
      us.append(unl.numpy())
    return {"elbo_labeled": float(np.mean(np.concatenate(ls))),
            "elbo_unlabeled": float(np.mean(np.concatenate(us)))}

  def log_likelihood(self, images, samples: int = 1000, seed: int = 0,
                     batch_size: int = 50, chunk: int = 100,
                     progress=None) -> np.ndarray:
    """IW estimate of log p(x) per image (nats), ``[N]``.

    ``samples`` importance samples, drawn ``chunk`` at a time (memory grows
    with chunk * batch_size * Y rows), combined with a running logsumexp.
    Images are binarized once with ``seed``. ``progress(done, total)`` is
    called after every batch of images.
    """
    model = self.model
    chunk = min(chunk, samples)
    if chunk not in self._iw:
      def fn(x, s):
        noise = model.sample_noise(s, chunk, 0, tf.shape(x)[0])
        f = model.compute_factors(tf.zeros([0, model.x_dim]), tf.zeros([0], tf.int32),
                                  x, noise, training=False)
        return bounds.unlabeled_log_weight(f)                       # [chunk, B]
      self._iw[chunk] = tf.function(fn, reduce_retracing=True)
    x = fixed_binarization(images, seed)
    out = []
    for i, (b,) in enumerate(self._batches(x, batch_size=batch_size)):
      b = tf.constant(b)
      acc = None
      done = 0
      j = 0
      while done < samples:
        log_w = self._iw[chunk](b, tf.constant([seed, i * 1_000_003 + j], tf.int64))
        take = min(chunk, samples - done)
        lse = tf.reduce_logsumexp(log_w[:take], axis=0)
        acc = lse if acc is None else tf.reduce_logsumexp(tf.stack([acc, lse]), 0)
        done += take
        j += 1
      out.append((acc - math.log(samples)).numpy())
      if progress is not None:
        progress(sum(len(o) for o in out), len(x))
    return np.concatenate(out) if out else np.zeros((0,))

  def kl_per_unit(self, images) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Per-unit KL of z and of a averaged over ``images`` (nats)."""
    x = as_grey(images)
    kz, ka, n = 0.0, 0.0, 0
    for (b,) in self._batches(x):
      z, a = self._kl(tf.constant(b))
      kz = kz + z.numpy().sum(0)
      ka = None if a is None else ka + a.numpy().sum(0)
      n += len(b)
    return kz / n, (None if ka is None else ka / n)


def active_units(kl_per_unit: Optional[np.ndarray],
                 threshold: float = ACTIVE_UNIT_THRESHOLD) -> Optional[int]:
  if kl_per_unit is None:
    return None
  return int(np.sum(np.asarray(kl_per_unit) > threshold))


def class_conditional_samples(model, per_class: int = 10, seed: int = 0) -> np.ndarray:
  """``[Y, per_class, D]`` pixel means of p(x|y,z), z ~ N(0, I) (Fig. 5 of [1])."""
  labels = np.repeat(np.arange(model.num_classes, dtype=np.int32), per_class)
  images = model.generate(tf.constant(labels), seed=tf.constant([seed, 5], tf.int64))
  return images.numpy().reshape(model.num_classes, per_class, -1)


def image_grid(images: np.ndarray, side: int = 28) -> np.ndarray:
  """``[rows, cols, side*side]`` -> one ``[rows*side, cols*side]`` image."""
  rows, cols = images.shape[:2]
  grid = images.reshape(rows, cols, side, side).transpose(0, 2, 1, 3)
  return grid.reshape(rows * side, cols * side)


def progress_printer(say):
  """A ``progress(done, total)`` callback that says about every 10% with the time left."""
  start, last = time.time(), [0.0]

  def progress(done: int, total: int) -> None:
    if done < total and done / total - last[0] < 0.1:
      return
    last[0] = done / total
    spent = time.time() - start
    left = spent * (total - done) / max(done, 1)
    say(f"  {done}/{total} images, {spent:.0f} s" + (f", about {left:.0f} s left"
                                                     if done < total else ""))
  return progress


def split_images(split: data_lib.SemiSupervisedSplit, which: str):
  """(images, labels) of ``which`` in {"test", "validation"}."""
  a = split.arrays
  if which == "test":
    return a.test_images, a.test_labels
  return a.train_images[split.validation], a.train_labels[split.validation]


# ----------------------------------------------------------------------------
# Any checkpoint of a run, after the fact (``python -m adgm_tf.evaluate``)
# ----------------------------------------------------------------------------

def evaluate_checkpoint(model_dir: str, checkpoint: Optional[str] = None,
                        samples: Optional[int] = None, splits=SPLITS,
                        ll_samples: int = 1000, ll_examples: int = 0,
                        idx_dir: Optional[str] = None, data_dir: Optional[str] = None,
                        samples_png: Optional[str] = None, say=None) -> Dict[str, object]:
  """The numbers of a run's final evaluation, for any of its checkpoints.

  Rebuilds the run's model from ``config.json``, restores ``checkpoint`` (a
  prefix, "best" for the checkpoint with the lowest validation error, or the
  newest by default), rebuilds the run's data split (the same labeled images,
  validation split and test set) and computes what ``metrics.json`` holds,
  with the run's evaluation seed and input treatment: the error of qbar(y|x)
  with ``samples`` samples of a (default: the run's ``eval_samples``), the
  a-diagnostics, the bounds L and U, active units, and optionally the IW
  log-likelihood (K = ``ll_samples``) on the first ``ll_examples`` test
  images. On the newest checkpoint of a finished run it reproduces the run's
  own final evaluation. ``idx_dir``/``data_dir`` replace the run's data
  location when the data moved. ``samples_png``: a file for 10 class-conditional
  samples per class. ``say(text)`` receives progress lines.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from adgm_tf import rundir, train  # pylint: disable=g-import-not-at-top
  splits = check_evaluate_args(splits, samples, ll_samples, ll_examples)
  say = say or (lambda text: None)
  start = time.time()
  config, model, path = rundir.load_run(model_dir, checkpoint)
  _, saved = rundir.read_run(model_dir)
  steps_per_epoch = int(saved["derived"]["steps_per_epoch"])
  step = int(model.optimizer.iterations.numpy())
  if idx_dir or data_dir:
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, **{k: v for k, v in (("idx_dir", idx_dir), ("data_dir", data_dir))
                        if v}))
  d, m, t = config.data, config.model, config.train
  held = [w for w in splits if w == "test" or d.validation_size > 0]
  if not held:
    raise ConfigError(f"{model_dir}: the run holds no validation images to evaluate "
                      f"(its --validation_size is 0). Add test to --splits.")
  split = train.build_data(config).split
  samples = int(samples or m.eval_samples)
  say(f"{path}: step {step}, epoch {step / steps_per_epoch:g}; the classifier with "
      f"{samples} samples of a")
  ev = Evaluator(model, d.eval_batch_size)
  out: Dict[str, object] = {"checkpoint": path, "step": step,
                            "epoch": step / steps_per_epoch, "eval_samples": samples}
  images_for_kl = None
  for which in SPLITS:
    images, labels = split_images(split, which)
    if which not in held:
      if which in splits:
        say(f"  {which}: the run holds no {which} images (--validation_size=0); skipped")
      continue
    c = ev.classify(images, labels, samples, binarize=d.binarize_eval, seed=t.seed)
    out[f"{which}_error"] = c.pop("error")
    out.update({(k if which == "test" else f"{which}_{k}"): v for k, v in c.items()})
    b = ev.bounds(images, labels, max(1, m.mc_samples), binarize=d.binarize_eval,
                  seed=t.seed)
    out.update({f"{which}_{k}": v for k, v in b.items()})
    images_for_kl = images  # the test images if read, as in the run's final evaluation
    say(f"  {which}: error {100 * out[f'{which}_error']:.2f}% on {len(labels)} images")
  kl_z, kl_a = ev.kl_per_unit(images_for_kl[:1000])
  out["active_units_z"], out["active_units_a"] = active_units(kl_z), active_units(kl_a)
  out["ll_samples"], out["ll_examples"], out["test_log_likelihood"] = ll_samples, 0, None
  if ll_examples:
    test_images = split.arrays.test_images[:ll_examples]
    say(f"  test log-likelihood: K = {ll_samples} on {len(test_images)} images")
    ll = ev.log_likelihood(test_images, samples=ll_samples, seed=t.seed,
                           progress=progress_printer(say))
    out["test_log_likelihood"] = float(np.mean(ll))
    out["ll_examples"] = len(test_images)
  if samples_png:
    save_samples_png(model, samples_png)
  out["seconds"] = time.time() - start
  return out


def save_samples_png(model, path: str, seed: int = 0) -> None:
  """10 class-conditional samples per class (rows 0-9) as one grey PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  grid = image_grid(class_conditional_samples(model, 10, seed=seed))
  plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0)
