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

    ... --cell=7,9 [--png=FILE.png] [--against=PREFIX]

``--cell=T,P`` picks one cell, the images of class T classified as P: their
validation indices and q̄(y=P|x) go into the JSON (``cell``), and ``--png``
draws them (up to 100, grey) above the run's labelled images of classes T
and P. ``--against`` names another checkpoint of the same run (e.g. a later
one): the probe classifies the validation images with it too and prints which
errors the two share, and how many of the cell's images the other checkpoint
gets right, so a block of errors can be followed through a run.
"""

import os

import numpy as np

from experiments.probes import common

from adgm_tf import evaluation  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import rundir  # noqa: E402


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


def parse_cell(text, classes=None):
  """``"T,P"`` -> ``(T, P)``, two different classes (below ``classes`` if given)."""
  try:
    t, p = (int(v) for v in text.split(","))
  except ValueError:
    raise common.ConfigError(f"--cell={text}: give the true and the predicted class, "
                             f"e.g. --cell=7,9.") from None
  if t == p or min(t, p) < 0 or (classes is not None and max(t, p) >= classes):
    bound = f" below {classes}" if classes is not None else ""
    raise common.ConfigError(f"--cell={text}: give two different classes{bound}, "
                             f"e.g. --cell=7,9.")
  return t, p


def shared_errors(labels, first, second) -> dict:
  """Which images two classifiers of the same images get wrong: ``both``,
  ``first_only``, ``second_only`` (counts)."""
  labels, first, second = (np.asarray(v) for v in (labels, first, second))
  a, b = first != labels, second != labels
  return dict(both=int(np.sum(a & b)), first_only=int(np.sum(a & ~b)),
              second_only=int(np.sum(~a & b)))


def draw_cell(groups, shape, title: str, path: str, columns: int = 10) -> None:
  """Grey images in grids saved to ``path``: ``groups`` is a list of
  ``(caption, images [N, H * W] in [0, 1])``, one grid of ``columns`` per
  group (``evaluation.image_grid``), at most 100 images each; ``shape`` = (H, W)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  groups = [(caption, np.asarray(images, np.float32)[:100]) for caption, images in groups]
  heights = [max(1, -(-len(images) // columns)) for _, images in groups]
  fig, axes = plt.subplots(len(groups), 1, figsize=(columns, sum(heights) + 0.4 * len(groups) + 0.6),
                           gridspec_kw=dict(height_ratios=heights), squeeze=False)
  for ax, (caption, images), rows in zip(axes[:, 0], groups, heights):
    padded = np.zeros((rows * columns, int(np.prod(shape))), np.float32)  # blank after the last
    padded[:len(images)] = images
    ax.imshow(evaluation.image_grid(padded.reshape(rows, columns, -1), shape=(*shape, 1)),
              cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(caption, fontsize=8, loc="left")
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def main(model_dir, checkpoint=None, top=None, write=None, cell=None, png=None,
         against=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  top = top if top is not None else flags.FLAGS.top
  write = write if write is not None else flags.FLAGS.write
  cell = cell if cell is not None else flags.FLAGS.cell
  png = png if png is not None else flags.FLAGS.png
  against = against if against is not None else flags.FLAGS.against
  if top < 1:
    raise common.ConfigError(f"--top={top}: give how many confusions to list, at least 1.")
  common.check_new_file("write", write)
  common.check_new_file("png", png)
  if png and not cell:
    raise common.ConfigError(f"--png={png}: say which images to draw with --cell=T,P.")
  if cell:
    parse_cell(cell)
  config, model, path, split, _ = common.load_with_config(model_dir, checkpoint,
                                                          validation=True)
  val_x, val_y = evaluation.split_images(split, "validation")
  true, pred = parse_cell(cell, model.num_classes) if cell else (None, None)
  if against:  # loaded before the first classification, so a bad path fails fast
    try:
      _, other_model, other = rundir.load_run(model_dir, against)
    except rundir.CheckpointError as e:
      raise rundir.CheckpointError(str(e).replace("--checkpoint=", "--against=", 1)) from None
  samples = int(config.model.eval_samples)

  # The images as the run's evaluation (Evaluator.predict) sees them, made once.
  x = evaluation.evaluation_images(val_x, config.data.binarize_eval, config.train.seed)

  def log_proba(m):  # log qbar(y|x) [N, Y]
    return evaluation.Evaluator(m, config.data.eval_batch_size).log_proba(x, samples)

  first = log_proba(model)
  predicted = np.argmax(first, axis=1)
  s = summarise(confusion_matrix(val_y, predicted, model.num_classes), top)
  print(f"{path}: validation error {100 * s['error']:.2f}% ({s['errors']} of {s['images']} "
        f"images, {samples} samples of a)")
  print("  error by true class (%): " + ", ".join(
      f"{k}: {100 * e:.1f}" for k, e in enumerate(s["per_class_error"]) if e is not None))
  print("  largest confusions (true -> predicted: images, % of the class, % of all errors):")
  for k in s["confusions"]:
    print(f"    {k['true']} -> {k['predicted']}: {k['images']} "
          f"({100 * k['of_class']:.1f}%, {100 * k['of_errors']:.1f}%)")
  if cell:
    idx = np.flatnonzero((np.asarray(val_y) == true) & (predicted == pred))
    confidence = np.exp(first[idx, pred])
    s["cell"] = dict(true=true, predicted=pred, validation_indices=idx.tolist(),
                     probability_of_predicted=confidence.tolist())
    print(f"  cell {true} -> {pred}: {len(idx)} images, validation indices "
          f"{', '.join(map(str, idx[:20]))}{' ...' if len(idx) > 20 else ''}")
    if len(idx):
      print(f"    qbar(y={pred}|x) over them: median {np.median(confidence):.3f}, "
            f"lowest {confidence.min():.3f}")
  if against:
    second = np.argmax(log_proba(other_model), axis=1)
    both = shared_errors(val_y, predicted, second)
    s["against"] = dict(checkpoint=os.path.basename(other),
                        errors=int(np.sum(second != np.asarray(val_y))), **both)
    print(f"  against {other}: {s['against']['errors']} errors; {both['both']} shared, "
          f"{both['first_only']} only here, {both['second_only']} only there")
    if cell:
      right = int(np.sum(second[idx] == true))
      s["against"]["cell"] = dict(right=right, same=int(np.sum(second[idx] == pred)))
      print(f"  of the {len(idx)} images of cell {true} -> {pred}, {other} classifies "
            f"{right} as {true} and {s['against']['cell']['same']} as {pred}")
  if png:
    side = int(round(np.sqrt(np.prod(val_x.shape[1:]))))
    lab_x, lab_y = evaluation.split_images(split, "labeled")
    labeled = [(f"the run's labeled images of class {k}", evaluation.as_grey(lab_x[lab_y == k]))
               for k in (true, pred)]
    draw_cell([(f"validation images of class {true} classified as {pred} ({len(idx)}"
                f"{', first 100' if len(idx) > 100 else ''})", evaluation.as_grey(val_x[idx]))]
              + labeled, (side, side), os.path.basename(path), png)
    print(f"  drawn: {png}")
  if write:
    common.write_json(write, dict(checkpoint=os.path.basename(path), eval_samples=samples, **s))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("top", 6, "how many of the largest confusions to list")
  flags.DEFINE_string("write", None, "also save the matrix and figures as JSON to this new file")
  flags.DEFINE_string("cell", None, "T,P: list (and with --png draw) the images of class T "
                      "classified as P")
  flags.DEFINE_string("png", None, "draw --cell's images into this new PNG file")
  flags.DEFINE_string("against", None, "another checkpoint of the same run: which errors "
                      "the two share")


if __name__ == "__main__":
  define_flags()
  common.run(main, "confusion")
