"""Probe: where a checkpoint's validation errors are, digit by digit.

With 100 labels, two runs of the same recipe can differ by several points of
validation error (RESULTS.md, section 7). This prints, for one checkpoint and
the validation images only (never test), with the run's own evaluation (grey
or fixed-binarised images, ``eval_samples`` samples of a, fixed noise):

* the error, which is the run's own validation error for that checkpoint;
* each digit's error (the share of its images classified as another digit);
* the largest entries of the confusion matrix C[true, predicted], each with
  its share of the true digit's images and of all errors.

    python -m experiments.probes.confusion --model_dir=MODEL_DIR [--checkpoint=PREFIX]
        [--top=6] [--write=FILE.json]

``--write`` saves the matrix and the figures above as JSON (a new file only:
an existing one is never overwritten), small enough to publish beside a run.
"""

import json
import os

import numpy as np

from experiments.probes import common

from adgm_tf import evaluation  # noqa: E402  (after TensorFlow's quiet import)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
  """``C[k, j]``: images of class k predicted as j, ``[classes, classes]`` int."""
  c = np.zeros((classes, classes), np.int64)
  np.add.at(c, (np.asarray(labels), np.asarray(predicted)), 1)
  return c


def summarise(c: np.ndarray, top: int) -> dict:
  """Error, per-class error and the ``top`` largest off-diagonal cells of ``c``."""
  n, errors = int(c.sum()), int(c.sum() - np.trace(c))
  per_class = [float(1 - c[k, k] / c[k].sum()) if c[k].sum() else None for k in range(len(c))]
  cells = sorted(((int(c[i, j]), i, j) for i in range(len(c)) for j in range(len(c))
                  if i != j and c[i, j]), key=lambda t: (-t[0], t[1], t[2]))[:top]
  return dict(images=n, errors=errors, error=errors / n if n else None,
              per_class_error=per_class,
              confusions=[dict(true=i, predicted=j, images=k,
                               of_class=k / int(c[i].sum()), of_errors=k / errors)
                          for k, i, j in cells],
              matrix=c.tolist())


def main(model_dir, checkpoint=None, top=None, write=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  top = top if top is not None else flags.FLAGS.top
  write = write if write is not None else flags.FLAGS.write
  if top < 1:
    raise common.ConfigError(f"--top={top}: give how many confusions to list, at least 1.")
  if write and os.path.exists(write):
    raise common.ConfigError(f"--write={write} exists; it is not overwritten: give a new "
                             f"file name.")
  if write and not os.path.isdir(os.path.dirname(os.path.abspath(write))):
    raise common.ConfigError(f"--write={write}: its directory does not exist; create it "
                             f"first.")
  config, model, path, split, _ = common.load_with_config(model_dir, checkpoint)
  val_x, val_y = evaluation.split_images(split, "validation")
  if not len(val_y):
    raise common.ConfigError(f"{model_dir}: the run has no validation images "
                             f"(--validation_size=0).")
  samples = int(config.model.eval_samples)
  ev = evaluation.Evaluator(model, config.data.eval_batch_size)
  predicted = ev.predict(val_x, samples, binarize=config.data.binarize_eval,
                         seed=config.train.seed)
  s = summarise(confusion_matrix(val_y, predicted, model.num_classes), top)
  print(f"{path}: validation error {100 * s['error']:.2f}% ({s['errors']} of {s['images']} "
        f"images, {samples} samples of a)")
  print("  error by true class (%): " + ", ".join(
      f"{k}: {100 * e:.1f}" for k, e in enumerate(s["per_class_error"]) if e is not None))
  print("  largest confusions (true -> predicted: images, % of the class, % of all errors):")
  for cell in s["confusions"]:
    print(f"    {cell['true']} -> {cell['predicted']}: {cell['images']} "
          f"({100 * cell['of_class']:.1f}%, {100 * cell['of_errors']:.1f}%)")
  if write:
    with open(write, "x") as f:
      json.dump(dict(checkpoint=os.path.basename(path), eval_samples=samples, **s), f, indent=1)
      f.write("\n")
    print(f"  written: {write}")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("top", 6, "how many of the largest confusions to list")
  flags.DEFINE_string("write", None, "also save the matrix and figures as JSON to this new file")


if __name__ == "__main__":
  define_flags()
  common.run(main, "confusion")
