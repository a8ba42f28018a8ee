"""TensorBoard summaries: scalars, per-unit KL histograms, sample grids, hparams.

Layout under ``model_dir``: ``train/`` (training metrics every
``summary_every`` steps and per epoch, the learning rate) and ``eval/``
(test and validation metrics, active units, the per-unit KL histograms and
the 10x10 grid of class-conditional samples at each evaluation, and the
hyperparameters once).
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf


AUX_DESCRIPTIONS = {
    "alive_fraction": "Fraction of q(a|x)'s hidden units (all layers) positive on "
                      ">= 1% of the images. Near 0: q(a|x) is the same for every image.",
    "mean_spread": "Std over images of q(a|x)'s mean, averaged over a's dimensions. "
                   "Near 0: a carries nothing about x (it is noise).",
    "swap_error": "Classification error when every image gets another image's "
                  "a-samples (same noise). Equal to the error: the classifier "
                  "ignores a.",
    "information": "I(y; a | x) in nats: H[qbar(y|x)] - mean_s H[q(y|a_s,x)]. "
                   "Positive whenever q(y|a,x) reads a, even pure noise: read it "
                   "with the spread.",
    "log_variance": "Mean log-variance of q(a|x). 0 with a spread near 0: q(a|x) "
                    "has collapsed onto N(0, I).",
}

KL_DESCRIPTIONS = {
    "kl_per_unit/z": "Per-unit KL(q(z|a,x,y) || N(0,1)) averaged over test images "
                     "(Maaloe et al. 2016, Fig. 3); above 0.01 nats: active.",
    "kl_per_unit/a": "Per-unit KL(q(a|x) || p(a|.)). For the ICML ADGM p(a|x,y,z) sees "
                     "x, so it can match q(a|x) whether or not a carries anything: a "
                     "small KL does not mean a is dead, and a large one does not "
                     "mean the classifier uses a (see auxiliary/). For the workshop "
                     "form (p(a) = N(0,I)) and the SDGM (p(a|y,z)), whose p(a) "
                     "does not see x, a unit with KL near 0 carries nothing about x.",
}


class Summaries:
  """Writers for one run; a no-op object on non-chief workers."""

  def __init__(self, model_dir: Optional[str]):
    self.enabled = model_dir is not None
    if self.enabled:
      self.train = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
      self.eval = tf.summary.create_file_writer(os.path.join(model_dir, "eval"))

  def scalars(self, which: str, values: Mapping[str, float], step: int,
              prefix: str = "") -> None:
    if not self.enabled:
      return
    with getattr(self, which).as_default(step=step):
      for name, value in values.items():
        if value is not None and np.isfinite(value):
          tf.summary.scalar(prefix + name, float(value))

  def histogram(self, name: str, values: Optional[np.ndarray], step: int,
                description: Optional[str] = None) -> None:
    if not self.enabled or values is None:
      return
    with self.eval.as_default(step=step):
      tf.summary.histogram(name, np.asarray(values, np.float32),
                           description=description or KL_DESCRIPTIONS.get(name))

  def auxiliary(self, values: Mapping[str, Optional[float]], step: int) -> None:
    """The a-diagnostics (``diagnostics.py``) under one group, ``auxiliary/``.

    ``aux_swap_error`` -> ``auxiliary/swap_error`` (test images),
    ``validation_aux_swap_error`` -> ``auxiliary/validation/swap_error``.
    """
    if not self.enabled:
      return
    with self.eval.as_default(step=step):
      for key, value in values.items():
        if value is None or not np.isfinite(value):
          continue
        which, _, name = key.partition("aux_")
        tag = "auxiliary/" + ("validation/" if which else "") + name
        tf.summary.scalar(tag, float(value), description=AUX_DESCRIPTIONS.get(name))

  def image(self, name: str, grid: np.ndarray, step: int) -> None:
    """``grid``: ``[H, W]`` in [0, 1]."""
    if not self.enabled:
      return
    with self.eval.as_default(step=step):
      tf.summary.image(name, np.asarray(grid, np.float32)[None, :, :, None])

  def hparams(self, hparams: Dict[str, object], run_name: str) -> None:
    if not self.enabled:
      return
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v))
             for k, v in hparams.items()}
    with self.eval.as_default(step=0):
      hp.hparams(clean, trial_id=run_name)

  def flush(self) -> None:
    if self.enabled:
      self.train.flush()
      self.eval.flush()


def flatten_config(config_dict: Mapping[str, Mapping[str, object]]) -> Dict[str, object]:
  """``{"model": {"z_dim": 100}}`` -> ``{"model.z_dim": 100}``."""
  out = {}
  for section, values in config_dict.items():
    for k, v in values.items():
      out[f"{section}.{k}"] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
  return out
