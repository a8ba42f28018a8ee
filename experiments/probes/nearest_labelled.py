"""Probe: what the run's labelled images alone say about each validation image.

Classifies the run's validation images (never test) by their ``--k`` nearest
labelled training images, the ones the run's labeled terms train on, in
squared Euclidean distance between grey levels in [0, 1] (majority vote, ties
to the nearest), with no model and no training. A block of errors that this
classifier makes too is a property of the label set: those images lie nearer
the labelled images of another class than of their own (RESULTS.md,
section 7, "Inside the first epoch").

    python -m experiments.probes.nearest_labelled --model_dir=MODEL_DIR [--k=1]
        [--cell=T,P] [--write=FILE.json]

prints the error and the largest confusions; ``--cell=T,P`` also lists how
many images of class T it calls P; ``--write`` saves the matrix and every
validation image's prediction (``predicted``, in the validation split's order).
"""

import numpy as np

from experiments.probes import common
from experiments.probes import confusion

from adgm_tf import evaluation  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import pipeline  # noqa: E402


def nearest_labels(x: np.ndarray, x_labelled: np.ndarray, y_labelled: np.ndarray, k: int,
                   classes: int) -> np.ndarray:
  """The majority label of each row of ``x`` [N, D] among its ``k`` nearest rows
  of ``x_labelled`` [L, D] (squared Euclidean distance; a tie goes to the label
  of the nearest among the tied), ``[N]`` int."""
  x, x_labelled = x.astype(np.float64), x_labelled.astype(np.float64)
  d2 = (np.sum(x ** 2, 1)[:, None] - 2 * x @ x_labelled.T
        + np.sum(x_labelled ** 2, 1)[None, :])                           # [N, L]
  order = np.argsort(d2, axis=1, kind="stable")[:, :k]                    # [N, k]
  votes = y_labelled[order]                                               # [N, k]
  counts = np.stack([np.sum(votes == c, axis=1) for c in range(classes)], 1)  # [N, Y]
  best = counts.max(1, keepdims=True)
  tied = counts == best                                                   # [N, Y]
  # Among the tied labels, the one whose first vote comes first (nearest).
  first = np.where(tied[np.arange(len(x))[:, None], votes], np.arange(k)[None, :], k)
  return votes[np.arange(len(x)), first.argmin(1)]


def main(model_dir, checkpoint=None, k=None, cell=None, write=None, top=6):
  from absl import flags  # pylint: disable=g-import-not-at-top
  k = k if k is not None else flags.FLAGS.k
  cell = cell if cell is not None else flags.FLAGS.cell
  write = write if write is not None else flags.FLAGS.write
  if checkpoint:
    raise common.ConfigError("--checkpoint: this probe reads no checkpoint, only the run's "
                             "labelled and validation images; leave it out.")
  if k < 1:
    raise common.ConfigError(f"--k={k}: give how many nearest labelled images vote, at "
                             f"least 1.")
  if cell:
    confusion.parse_cell(cell)
  common.check_new_file("write", write)
  config = common.run_config(model_dir, validation=True)
  if k > config.data.num_labels:
    raise common.ConfigError(f"--k={k}: the run has only {config.data.num_labels} labelled "
                             f"images.")
  split = pipeline.build_data(config).split
  raw, labels = evaluation.split_images(split, "validation")
  labels = np.asarray(labels)
  a = split.arrays
  classes = int(a.num_classes)
  x = raw.reshape(len(raw), -1) / 255.0
  x_labelled = a.train_images[split.labeled].reshape(len(split.labeled), -1) / 255.0
  predicted = nearest_labels(x, x_labelled, a.train_labels[split.labeled], k, classes)
  s = dict(k=k, labelled=int(len(split.labeled)), **confusion.summarise(
      confusion.confusion_matrix(labels, predicted, classes), top))
  print(f"{model_dir}: validation error {100 * s['error']:.2f}% of {s['images']} images by "
        f"the {k} nearest of the run's {s['labelled']} labelled images (grey levels, "
        f"no model)")
  for c in s["confusions"]:
    print(f"    {c['true']} -> {c['predicted']}: {c['images']} ({100 * c['of_class']:.1f}%)")
  if cell:
    true, pred = confusion.parse_cell(cell, classes)
    n = int(np.sum((labels == true) & (predicted == pred)))
    print(f"  {n} of the {int(np.sum(labels == true))} validation {true}s are nearer "
          f"labelled {pred}s")
  if write:
    s["predicted"] = predicted.tolist()
    common.write_json(write, s)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("k", 1, "how many nearest labelled images vote")
  flags.DEFINE_string("cell", None, "T,P: also count the images of class T it calls P")
  flags.DEFINE_string("write", None, "also save the figures as JSON to this new file")


if __name__ == "__main__":
  define_flags()
  common.run(main, "nearest_labelled")
