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

  def histogram(self, name: str, values: Optional[np.ndarray], step: int) -> None:
    if not self.enabled or values is None:
      return
    with self.eval.as_default(step=step):
      tf.summary.histogram(name, np.asarray(values, np.float32))

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
