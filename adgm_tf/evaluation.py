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

import hashlib
import json
import math
import os
import tempfile
import time
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from adgm_tf import bounds
from adgm_tf import data as data_lib
from adgm_tf import diagnostics
from adgm_tf.errors import ConfigError

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


def evaluation_images(images: np.ndarray, binarize: bool, seed: int) -> np.ndarray:
  """The images as evaluation sees them: float32 ``[N, 784]``, grey, or one
  fixed binarisation with ``seed`` (``--binarize_eval``)."""
  return fixed_binarization(images, seed) if binarize else as_grey(images)


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

  def predict(self, images, samples: int, binarize: bool = False,
              seed: int = 0) -> np.ndarray:
    """argmax_y qbar(y|x) ``[N]``, on the images as evaluation sees them
    (grey, or one fixed binarisation with ``seed``)."""
    x = evaluation_images(images, binarize, seed)
    return np.argmax(self.log_proba(x, samples), axis=1)

  def error(self, images, labels, samples: int, binarize: bool = False,
            seed: int = 0) -> float:
    pred = self.predict(images, samples, binarize=binarize, seed=seed)
    return float(np.mean(pred != np.asarray(labels)))

  def classify(self, images, labels, samples: int, binarize: bool = False,
               seed: int = 0) -> Dict[str, Optional[float]]:
    """The error and the a-diagnostics (``diagnostics.py``) in one pass.

    ``error`` equals :meth:`error`'s; the ``aux_*`` values are None for a
    model without a.
    """
    x = evaluation_images(images, binarize, seed)
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
    x = evaluation_images(images, binarize, seed)
    ls, us = [], []
    for i, (b, y) in enumerate(self._batches(x, np.asarray(labels))):
      lab, unl = self._bounds[samples](tf.constant(b), tf.constant(y),
                                   tf.constant([seed, i], tf.int64))
      ls.append(lab.numpy())
      us.append(unl.numpy())
    return {"elbo_labeled": float(np.mean(np.concatenate(ls))),
            "elbo_unlabeled": float(np.mean(np.concatenate(us)))}

  def label_bounds(self, images, samples: int, binarize: bool = False,
                   seed: int = 0) -> np.ndarray:
    """L(x,y) for every label y (``bounds.label_elbos``), nats, ``[N, Y]``.

    ``samples`` samples of a (and of z for each label), shared by the labels
    of an image; noise fixed by ``seed`` and the batch's position.
    """
    key = ("labels", samples)
    if key not in self._bounds:
      model = self.model

      def fn(x, s):
        b = tf.shape(x)[0]
        noise = model.sample_noise(s, samples, 0, b)
        f = model.compute_factors(x[:0], tf.zeros([0], tf.int32), x, noise,
                                  training=False)
        return tf.transpose(bounds.label_elbos(f))               # [B, Y]
      self._bounds[key] = tf.function(fn, reduce_retracing=True)
    x = evaluation_images(images, binarize, seed)
    out = [self._bounds[key](tf.constant(b), tf.constant([seed, i], tf.int64)).numpy()
           for i, (b,) in enumerate(self._batches(x))]
    return np.concatenate(out) if out else np.zeros((0, self.model.num_classes), np.float32)

  def log_likelihood(self, images, samples: int = 1000, seed: int = 0,
                     batch_size: int = 50, chunk: int = 100,
                     progress=None, resume_file: Optional[str] = None,
                     tag: str = "") -> np.ndarray:
    """IW estimate of log p(x) per image (nats), ``[N]``.

    ``samples`` importance samples, drawn ``chunk`` at a time (memory grows
    with chunk * batch_size * Y rows), combined with a running logsumexp.
    Images are binarized once with ``seed``; batch i draws its noise from the
    stateless seed (seed, i * 1000003 + j), so each batch's estimate depends
    on nothing computed before it. ``progress(done, total)`` is called after
    every batch of images, counting this call's images only.

    ``resume_file`` (.npz): the estimates are saved there after every batch
    (through a rename, so a kill leaves the previous state), and a call with
    the same file, ``tag`` (e.g. the checkpoint's path), images and settings
    continues after its last batch, with the same result as one uninterrupted
    call. A file written for anything else raises ``ConfigError``.
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
    key = None
    if resume_file:
      key = json.dumps(dict(tag=tag, samples=int(samples), seed=int(seed),
                            batch_size=int(batch_size), chunk=int(chunk), images=len(x),
                            digest=hashlib.sha256(x.tobytes()).hexdigest()[:16]),
                       sort_keys=True)
      out = _read_ll_progress(resume_file, key, batch_size)
    resumed = sum(len(o) for o in out)
    for i, (b,) in enumerate(self._batches(x, batch_size=batch_size)):
      if i < len(out):
        continue
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
      if resume_file:
        _write_ll_progress(resume_file, key, out)
      if progress is not None:
        progress(sum(len(o) for o in out) - resumed, len(x) - resumed)
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


def _read_ll_progress(path: str, key: str, batch_size: int) -> list:
  """The per-batch estimates saved in ``path`` by an earlier call with ``key``."""
  if not os.path.exists(path):
    return []
  try:
    with np.load(path) as saved:
      saved_key, values = str(saved["key"]), saved["log_likelihood"]
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"{path} is not a log-likelihood progress file ({type(e).__name__}); "
                      f"delete it to start the log-likelihood over.") from None
  if saved_key != key:
    theirs, ours = json.loads(saved_key), json.loads(key)
    diff = ", ".join(f"{k} {theirs.get(k)!r} there, {ours[k]!r} now" for k in ours
                     if theirs.get(k) != ours[k])
    raise ConfigError(f"{path} holds the log-likelihoods of another evaluation ({diff}); "
                      f"delete it to start over, or give another file.")
  return [values[i:i + batch_size] for i in range(0, len(values), batch_size)]


def _write_ll_progress(path: str, key: str, out: list) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, key=np.array(key), log_likelihood=np.concatenate(out))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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


def image_grid(images: np.ndarray, shape=None) -> np.ndarray:
  """``[rows, cols, H*W*C]`` -> one grey ``[rows*H, cols*W]`` image.

  ``shape``: the images' ``(H, W, C)`` (default: square and grey, e.g. 28x28
  for 784 pixels; a single row of pixels when the width is not a square);
  several channels are shown as their mean.
  """
  rows, cols, d = images.shape
  if shape is None:
    side = int(round(d ** 0.5))
    shape = (side, side, 1) if side * side == d else (1, d, 1)
  h, w, c = (int(v) for v in shape)
  grid = images.reshape(rows, cols, h, w, c).mean(-1).transpose(0, 2, 1, 3)
  return grid.reshape(rows * h, cols * w)


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


class SplitNumbers(NamedTuple):
  """What an evaluation of the held-out splits gives: metrics.json's keys, and
  the per-unit KL of z and a behind the active-unit counts."""
  results: Dict[str, object]
  kl_z: Optional[np.ndarray]   # [z_dim] nats
  kl_a: Optional[np.ndarray]   # [a_dim] nats, None without a stochastic a


def evaluate_splits(ev: "Evaluator", splits, samples: int, bound_samples: int,
                    binarize: bool, seed: int, kl_split: str,
                    bound_examples: Optional[int] = None) -> SplitNumbers:
  """The error, a-diagnostics and bounds of each ``(name, (images, labels))`` in
  ``splits`` (empty ones skipped), and the active units of z and a on the
  first 1,000 images of ``kl_split``. The one evaluation the trainer's
  periodic and final evaluations and ``python -m adgm_tf.evaluate`` all run.
  """
  results: Dict[str, object] = {}
  held = {}
  for which, (images, labels) in splits:
    if len(labels) == 0:
      continue
    held[which] = images
    results.update(split_numbers(ev, which, images, labels, samples, bound_samples,
                                 binarize=binarize, seed=seed,
                                 bound_examples=bound_examples))
  kl_images = held.get(kl_split, next(iter(held.values()), None))
  if kl_images is None:  # nothing held out (no validation split, test not read)
    results["active_units_z"] = results["active_units_a"] = None
    return SplitNumbers(results, None, None)
  kl_z, kl_a = ev.kl_per_unit(kl_images[:1000])
  results["active_units_z"] = active_units(kl_z)
  results["active_units_a"] = active_units(kl_a)
  return SplitNumbers(results, kl_z, kl_a)


def split_numbers(ev: "Evaluator", which: str, images, labels, samples: int,
                  bound_samples: int, binarize: bool, seed: int,
                  bound_examples: Optional[int] = None) -> Dict[str, object]:
  """One split's error, a-diagnostics and bounds, keyed as metrics.json keys them.

  The test set's a-diagnostics are the top-level ``aux_*`` keys; every other
  key carries the split's name. The bounds use the first ``bound_examples``
  images (all by default).
  """
  out: Dict[str, object] = {}
  c = ev.classify(images, labels, samples, binarize=binarize, seed=seed)
  out[f"{which}_error"] = c.pop("error")
  out.update({(k if which == "test" else f"{which}_{k}"): v for k, v in c.items()})
  sub = slice(None, bound_examples)
  b = ev.bounds(images[sub], labels[sub], bound_samples, binarize=binarize, seed=seed)
  out.update({f"{which}_{k}": v for k, v in b.items()})
  return out


def split_images(split: data_lib.SemiSupervisedSplit, which: str):
  """(images, labels) of ``which`` in {"test", "validation", "labeled"} (the
  labelled training images in the run's order)."""
  a = split.arrays
  if which == "test":
    return a.test_images, a.test_labels
  if which == "labeled":
    return a.train_images[split.labeled], a.train_labels[split.labeled]
  return a.train_images[split.validation], a.train_labels[split.validation]


def save_samples_png(model, path: str, seed: int = 0, shape=None) -> None:
  """10 class-conditional samples per class (a row per class) as one grey PNG
  (``shape``: the images' (H, W, C), see ``image_grid``)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  grid = image_grid(class_conditional_samples(model, 10, seed=seed), shape)
  plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0)
