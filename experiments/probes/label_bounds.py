"""Probe: which label the bound itself prefers, image by image.

For an unlabeled image the bound U(x) pulls the classifier toward
softmax_y L(x,y), the labeled bound of every label (``bounds.label_elbos``):
for a classifier that does not read a, that is the q(y|x) at which U(x) is
largest. This probe computes L(x,y) for every label on the run's validation
images (never test; grey or fixed-binarised as the run evaluates, ``--samples``
samples of a and z shared by the labels of an image, fixed noise) and prints:

* the classifier's validation error (argmax q̄(y|x), the run's own evaluation)
  and the error of the bound's vote argmax_y L(x,y), with how often the two
  agree and the vote's largest confusions;
* with ``--cell=T,P`` (e.g. 7,9): for the images of class T the classifier
  calls P, and for those of class T it gets right, how many the bound votes
  T, P or another label, and the median margin L(x,P) - L(x,T) in nats;
  ``--write`` also saves, for every image of class T, the classifier's label,
  the bound's vote and the margin (``cell.of_class``), to follow one set of
  images across checkpoints.

A block of confident errors the bound votes for is held there by the
unlabeled term: the generative model explains those images better as P. One
the bound votes against is the classifier's own.

    python -m experiments.probes.label_bounds --model_dir=MODEL_DIR [--checkpoint=PREFIX]
        [--samples=20] [--cell=T,P] [--write=FILE.json] [--images=labeled]

``--images=labeled`` reads the run's labelled training images instead (the
ones the labeled bound and the classification term train on); with ``--cell``
it also lists L(x,P) - L(x,T) for each labelled image of class T, in the
run's order (the order the confusion probe draws them in).
"""

import os

import numpy as np

from experiments.probes import common
from experiments.probes import confusion

from adgm_tf import evaluation  # noqa: E402  (after TensorFlow's quiet import)


def votes_in(l_xy: np.ndarray, idx: np.ndarray, true: int, pred: int) -> dict:
  """Of images ``idx``: how many the bound votes ``true``, ``pred``, another
  label, and the median margin L(x,pred) - L(x,true) (nats)."""
  vote = np.argmax(l_xy[idx], axis=1)
  margin = l_xy[idx, pred] - l_xy[idx, true]
  return dict(images=int(len(idx)), bound_votes_true=int(np.sum(vote == true)),
              bound_votes_predicted=int(np.sum(vote == pred)),
              bound_votes_other=int(np.sum((vote != true) & (vote != pred))),
              median_margin_nats=float(np.median(margin)) if len(idx) else None)


def main(model_dir, checkpoint=None, samples=None, cell=None, write=None, images=None,
         top=6):
  from absl import flags  # pylint: disable=g-import-not-at-top
  samples = samples if samples is not None else flags.FLAGS.samples
  images = images if images is not None else flags.FLAGS.images
  cell = cell if cell is not None else flags.FLAGS.cell
  write = write if write is not None else flags.FLAGS.write
  if samples < 1:
    raise common.ConfigError(f"--samples={samples}: give how many samples of a and z to "
                             f"average L(x,y) over, at least 1.")
  common.check_new_file("write", write)
  if cell:
    confusion.parse_cell(cell)
  config, model, path, split, _ = common.load_with_config(
      model_dir, checkpoint, validation=images == "validation")
  raw, labels = evaluation.split_images(split, images)
  true, pred = confusion.parse_cell(cell, model.num_classes) if cell else (None, None)
  labels = np.asarray(labels)
  ev = evaluation.Evaluator(model, config.data.eval_batch_size)
  x = evaluation.evaluation_images(raw, config.data.binarize_eval, config.train.seed)
  classifier = np.argmax(ev.log_proba(x, int(config.model.eval_samples)), axis=1)
  l_xy = ev.label_bounds(x, samples, seed=config.train.seed)          # [N, Y]
  vote = np.argmax(l_xy, axis=1)
  s = dict(checkpoint=os.path.basename(path), samples=samples, images_of=images,
           images=int(len(labels)),
           classifier_error=float(np.mean(classifier != labels)),
           bound_vote_error=float(np.mean(vote != labels)),
           agreement=float(np.mean(vote == classifier)),
           classifier=confusion.summarise(
               confusion.confusion_matrix(labels, classifier, model.num_classes), top),
           bound_vote=confusion.summarise(
               confusion.confusion_matrix(labels, vote, model.num_classes), top))
  print(f"{path}: {images} error {100 * s['classifier_error']:.2f}% (classifier), "
        f"{100 * s['bound_vote_error']:.2f}% (argmax_y L(x,y), {samples} samples); "
        f"they agree on {100 * s['agreement']:.1f}% of {s['images']} images")
  print("  the bound's largest confusions (true -> voted: images, % of the class):")
  for k in s["bound_vote"]["confusions"]:
    print(f"    {k['true']} -> {k['predicted']}: {k['images']} ({100 * k['of_class']:.1f}%)")
  if cell:
    idx = np.flatnonzero((labels == true) & (classifier == pred))
    right = np.flatnonzero((labels == true) & (classifier == true))
    s["cell"] = {"true": true, "predicted": pred, f"{images}_indices": idx.tolist(),
                 "wrong": votes_in(l_xy, idx, true, pred),
                 "right": votes_in(l_xy, right, true, pred)}
    of_class = np.flatnonzero(labels == true)
    s["cell"]["of_class"] = dict(  # every image of class T, to follow a set across checkpoints
        indices=of_class.tolist(), classifier=classifier[of_class].tolist(),
        bound_vote=vote[of_class].tolist(),
        margin_nats=(l_xy[of_class, pred] - l_xy[of_class, true]).tolist())
    if images == "labeled":  # few enough to list: each labelled T, in the run's order
      margins = s["cell"]["of_class"]["margin_nats"]
      s["cell"]["margins_of_class"] = margins
      print(f"  the labelled {true}s, in the run's order: L(x,{pred}) - L(x,{true}) = "
            + ", ".join(f"{m:+.1f}" for m in margins) + " nats")
    for name, v in (("classified as " + str(pred), s["cell"]["wrong"]),
                    ("classified right", s["cell"]["right"])):
      margin = ("" if v["median_margin_nats"] is None
                else f"; median L(x,{pred}) - L(x,{true}) {v['median_margin_nats']:+.1f} nats")
      print(f"  {v['images']} images of {true} {name}: the bound votes {true} for "
            f"{v['bound_votes_true']}, {pred} for {v['bound_votes_predicted']}, another "
            f"label for {v['bound_votes_other']}{margin}")
  if write:
    common.write_json(write, s)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("samples", 20, "samples of a and z to average L(x,y) over")
  flags.DEFINE_string("cell", None, "T,P: compare the bound's vote on the images of class T "
                      "classified as P with those classified right")
  flags.DEFINE_string("write", None, "also save the figures as JSON to this new file")
  flags.DEFINE_enum("images", "validation", ["validation", "labeled"],
                    "the run's validation images, or its labelled training images")


if __name__ == "__main__":
  define_flags()
  common.run(main, "label_bounds")
