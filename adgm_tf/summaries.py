"""TensorBoard summaries: scalars in four groups, per-unit KL histograms, samples, hparams.

Layout under ``model_dir``: ``train/`` (the training batch's values every
``summary_every`` steps) and ``eval/`` (each evaluation: the test set under
the same tags, the validation split under ``validation_*`` tags, the per-unit
KL histograms, a 10x10 grid of class-conditional samples, and the
hyperparameters once). TensorBoard orders the groups by name, so they are
numbered in the order a reader scans them:

1. ``1_evaluation``: test and validation error, the final test error and
   log-likelihood;
2. ``2_bounds``: L(x,y), U(x), log qbar(y|x), the KL terms, log p(x|.), the
   active units (train: the training batch; eval: the test set);
3. ``3_auxiliary``: the a-diagnostics (``diagnostics.py``);
4. ``4_optimizer``: loss, learning rate, labeled-batch accuracy, epoch time.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

GROUPS = ("1_evaluation", "2_bounds", "3_auxiliary", "4_optimizer")
BOUND_NAMES = ("elbo_labeled", "elbo_unlabeled", "classification", "kl_z", "kl_a",
               "kl_y", "log_px", "active_units_z", "active_units_a")
OPTIMIZER_NAMES = {"loss": "loss", "learning_rate": "learning_rate",
                   "accuracy": "labeled_batch_accuracy", "epoch_seconds": "epoch_seconds"}
# The metrics the HParams view lists beside each run's hyperparameters.
HPARAM_METRICS = ("1_evaluation/final_test_error", "1_evaluation/final_validation_error",
                  "1_evaluation/test_error", "1_evaluation/validation_error")


def tag(name: str) -> Optional[str]:
  """The TensorBoard tag of a metric name (train logs or evaluation results)."""
  if name in ("test_error", "validation_error", "final_test_error",
              "final_validation_error", "final_test_log_likelihood"):
    return f"{GROUPS[0]}/{name}"
  for prefix in ("test_", "validation_", ""):
    rest = name[len(prefix):] if name.startswith(prefix) else None
    if rest in BOUND_NAMES:
      return f"{GROUPS[1]}/{'validation_' if prefix == 'validation_' else ''}{rest}"
  if name.startswith(("aux_", "validation_aux_")):
    which, _, rest = name.partition("aux_")
    return f"{GROUPS[2]}/{'validation/' if which else ''}{rest}"
  if name in OPTIMIZER_NAMES:
    return f"{GROUPS[3]}/{OPTIMIZER_NAMES[name]}"
  return None


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
                     "mean the classifier uses a (see 3_auxiliary). For the workshop "
                     "form (p(a) = N(0,I)) and the SDGM (p(a|y,z)), whose p(a) "
                     "does not see x, a unit with KL near 0 carries nothing about x.",
}


class Summaries:
  """Writers for one run; a no-op object on non-chief workers."""

  def __init__(self, train_dir: Optional[str], eval_dir: Optional[str] = None):
    """``train_dir`` and ``eval_dir``: where the two event streams go (a run's
    ``RunDir.events``); None: a no-op object (non-chief workers)."""
    self.enabled = train_dir is not None
    if self.enabled:
      self.train = tf.summary.create_file_writer(train_dir)
      self.eval = tf.summary.create_file_writer(eval_dir or os.path.join(train_dir, "eval"))

  def scalars(self, which: str, values: Mapping[str, Optional[float]], step: int) -> None:
    """Every known metric of ``values`` under its group's tag (``tag``)."""
    if not self.enabled:
      return
    with getattr(self, which).as_default(step=step):
      for name, value in values.items():
        t = tag(name)
        if t is None or value is None or not np.isfinite(value):
          continue
        description = None
        if t.startswith(GROUPS[2]):
          description = AUX_DESCRIPTIONS.get(t.rsplit("/", 1)[1])
        tf.summary.scalar(t, float(value), description=description)

  def histogram(self, name: str, values: Optional[np.ndarray], step: int,
                description: Optional[str] = None) -> None:
    if not self.enabled or values is None:
      return
    with self.eval.as_default(step=step):
      tf.summary.histogram(name, np.asarray(values, np.float32),
                           description=description or KL_DESCRIPTIONS.get(name))

  def image(self, name: str, grid: np.ndarray, step: int) -> None:
    """``grid``: ``[H, W]`` in [0, 1]."""
    if not self.enabled:
      return
    with self.eval.as_default(step=step):
      tf.summary.image(name, np.asarray(grid, np.float32)[None, :, :, None])

  def hparams(self, hparams: Dict[str, object], run_name: str) -> None:
    """The run's settings, with the final errors as the HParams view's metrics."""
    if not self.enabled:
      return
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v))
             for k, v in hparams.items()}
    with self.eval.as_default(step=0):
      hp.hparams_config(hparams=[hp.HParam(k) for k in clean],
                        metrics=[hp.Metric(m, display_name=m.split("/")[1])
                                 for m in HPARAM_METRICS])
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
