r"""Is the auxiliary variable alive, and does the classifier use it?

The bounds of the ADGM can be computed exactly while a carries nothing: when
q(a|x) collapses to one distribution for every image, a is noise and
q(y|a,x) is M2's classifier with a noisy extra input. The per-unit KL of a
cannot show this in the ICML form: p(a|x,y,z) sees x, so it can match
q(a|x) whether or not a carries anything about x. These four numbers can
(Maaløe et al., 2016, claim that a makes the classifier better; a that
does not reach the classifier cannot):

* ``aux_alive_fraction``: the fraction of q(a|x)'s hidden units (all hidden
  layers) whose activation is positive on at least 1% of the images. Dead
  ReLUs give a constant q(a|x).
* ``aux_mean_spread``: the standard deviation over images of q(a|x)'s mean,
  averaged over a's dimensions (0 when q(a|x) is the same for every image).
* ``aux_swap_error``: the classification error when every image is given the
  a-samples of another image (a fixed derangement of the images), with the
  same standard-normal noise and everything else unchanged. A paired
  comparison with ``error``: a classifier that ignores a scores the same.
* ``aux_information``: I(y; a | x) in nats, averaged over images,
  H[qbar(y|x)] - 1/S sum_s H[q(y|a_s,x)], with the evaluation's S samples.
  It is positive whenever q(y|a,x) reads a at all, even pure noise: on its
  own it cannot tell a dead a from a live one; the spread can.

A deterministic a = mu(x) (the ablation of Fig. 4) gets the alive fraction,
the spread and the swap error; it has no noise, so no information term.
Models without a (M2) get the error only.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from adgm_tf import bounds

ALIVE_MIN_FRACTION = 0.01  # a unit is alive when positive on >= 1% of images
KEYS = ("aux_alive_fraction", "aux_mean_spread", "aux_swap_error", "aux_information")


def derangement(n: int, seed: int = 0) -> np.ndarray:
  """A fixed permutation of ``range(n)`` without fixed points (n >= 2).

  One cycle through a random order: image ``order[i]`` is given the a of
  image ``order[i + 1]``.
  """
  if n < 2:
    raise ValueError(f"a derangement needs at least 2 images, got {n}")
  order = np.random.default_rng([seed, 0xde]).permutation(n)
  perm = np.empty(n, dtype=np.int64)
  perm[order] = np.roll(order, -1)
  return perm


# I(y; a | x) per image from log q(y|a_s,x) [S, B, Y] (aux_information); it
# lives in bounds.py, which also splits what U(x) pays and charges for it.
information = bounds.information


class AuxiliaryDiagnostics:
  """The classification error and the four a-diagnostics of one model.

  Functions are compiled once per model; call the object with images as
  float32 ``[N, D]`` in [0, 1] and their labels.
  """

  def __init__(self, model, batch_size: int = 500):
    self.model = model
    self.batch_size = int(batch_size)
    self.kind = model.wiring.auxiliary  # "none", "stochastic", "deterministic"
    self._posterior = tf.function(self._posterior_fn, reduce_retracing=True)
    self._classify = tf.function(self._classify_fn, reduce_retracing=True)

  # -- compiled pieces --------------------------------------------------------

  def _posterior_fn(self, x):
    """q(a|x)'s (loc, log_var) ``[B, A]`` and positive counts per hidden unit."""
    loc, log_var = self.model.auxiliary_posterior(x)
    if log_var is None:
      log_var = tf.fill(tf.shape(loc), -np.inf)
    hidden = self.model.auxiliary_hidden(x)
    counts = tf.concat([tf.reduce_sum(tf.cast(h > 0, tf.float32), axis=0)
                        for h in hidden], 0)                         # [units]
    return loc, log_var, counts

  def _classify_fn(self, x, loc, log_var, loc_swap, log_var_swap, eps):
    """Predictions with own and swapped a, and I(y;a|x) per image."""
    def draw(m, lv):                                                # [S, B, A]
      if self.kind == "deterministic":
        return m[None]
      return m[None] + tf.exp(0.5 * lv)[None] * eps
    log_qy = self.model.classifier_log_probs(x, draw(loc, log_var))         # [S, B, Y]
    log_qy_swap = self.model.classifier_log_probs(x, draw(loc_swap, log_var_swap))
    pred = tf.argmax(bounds.log_qbar(log_qy), axis=1, output_type=tf.int32)
    pred_swap = tf.argmax(bounds.log_qbar(log_qy_swap), axis=1, output_type=tf.int32)
    return pred, pred_swap, information(log_qy)

  # -- the evaluation -----------------------------------------------------------

  def __call__(self, images: np.ndarray, labels: np.ndarray, samples: int,
               seed: int = 0) -> Dict[str, Optional[float]]:
    """``{"error": ..., "aux_alive_fraction": ..., ...}`` over ``images``.

    ``samples``: S samples of a per image (shared noise: the model's own
    evaluation noise, so ``error`` is the model's error). ``seed`` fixes
    the derangement.
    """
    labels = np.asarray(labels)
    x = np.asarray(images, np.float32)
    n, bs = len(x), self.batch_size
    out: Dict[str, Optional[float]] = {k: None for k in KEYS}
    if self.kind == "none" or n < 2:
      pred = np.concatenate([np.argmax(self.model.predict_log_proba(
          tf.constant(x[i:i + bs]), samples).numpy(), axis=1)
                             for i in range(0, n, bs)]) if n else np.zeros(0)
      out["error"] = float(np.mean(pred != labels)) if n else None
      return out

    locs, log_vars, counts = [], [], 0.0
    for i in range(0, n, bs):
      loc, log_var, c = self._posterior(tf.constant(x[i:i + bs]))
      locs.append(loc.numpy())
      log_vars.append(log_var.numpy())
      counts = counts + c.numpy()
    loc, log_var = np.concatenate(locs), np.concatenate(log_vars)    # [N, A]
    perm = derangement(n, seed)
    eps = (self.model.auxiliary_noise(samples) if self.kind == "stochastic"
           else tf.zeros([1, 1, self.model.a_dim]))
    preds, swaps, infos = [], [], []
    for i in range(0, n, bs):
      j = perm[i:i + bs]
      p, q, info = self._classify(
          tf.constant(x[i:i + bs]), tf.constant(loc[i:i + bs]),
          tf.constant(log_var[i:i + bs]), tf.constant(loc[j]),
          tf.constant(log_var[j]), eps)
      preds.append(p.numpy())
      swaps.append(q.numpy())
      infos.append(info.numpy())
    pred, swap = np.concatenate(preds), np.concatenate(swaps)
    out["error"] = float(np.mean(pred != labels))
    out["aux_swap_error"] = float(np.mean(swap != labels))
    out["aux_alive_fraction"] = float(np.mean(counts >= ALIVE_MIN_FRACTION * n))
    out["aux_mean_spread"] = float(np.mean(np.std(loc, axis=0)))
    if self.kind == "stochastic":
      out["aux_information"] = float(np.mean(np.concatenate(infos)))
      out["aux_log_variance"] = float(np.mean(log_var))
    return out
