"""Probe: does a block of errors move when a few more of its images are labelled?

A diagnostic, not a recipe: it reads training labels beyond the run's own
labelled set. A block is a cell T -> P of the validation confusion matrix
that a run holds with q̄(y=P|x) near 1 (RESULTS.md, section 7: crossed 7s
classified as 9). From a checkpoint of the run, the probe trains ``--epochs``
more epochs with the run's recipe, data order and α (the classification
weight is the run's, not recomputed for the larger labelled set), with
``--add`` more labelled images: training images of class T (never validation
or test images, never the run's labelled ones) that the checkpoint's
classifier calls P, drawn with ``--pick_seed``. ``--add=0`` is the control:
the same continuation without them. Training resumes the checkpoint's
optimizer state and step, as a relaunch of the run would; it writes only to
``--out``, a new directory (its checkpoints, history.csv and events; the
probe's record, not a run to relaunch with launch.py, whose config.json
would not hold the added labels).

At the start and after every epoch, with the run's own evaluation (grey or
fixed-binarised images, ``eval_samples`` samples of a, fixed noise), it prints
on the validation images (never test): the error; the cell's size; how many
of the start's cell images are still in it and the median of their
q̄(y=P|x); on the training images of class T outside the labelled set, how
many the classifier calls P; and q̄(y=T|x) of each added image.

    python -m experiments.probes.more_labels --model_dir=RUN [--checkpoint=PREFIX]
        --cell=T,P --add=3 --epochs=5 --out=NEW_DIR [--pick_seed=0] [--write=FILE.json]
"""

import dataclasses
import os

import numpy as np

from experiments.probes import common
from experiments.probes import confusion

from adgm_tf import devices  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import evaluation  # noqa: E402
from adgm_tf import pipeline  # noqa: E402
from adgm_tf import rundir  # noqa: E402
from adgm_tf import train  # noqa: E402


def pick(candidates: np.ndarray, add: int, seed: int) -> np.ndarray:
  """``add`` of ``candidates`` (training indices) drawn without replacement
  with ``seed``, sorted."""
  rng = np.random.default_rng([seed, 0x1abe1])
  return np.sort(rng.choice(np.asarray(candidates), size=add, replace=False))


def more_labels(split, extra: np.ndarray):
  """``split`` with the training images ``extra`` added to its labelled set
  (they stay in the unlabeled set, as every labelled image does)."""
  extra = np.asarray(extra, np.int64)
  clash = np.intersect1d(extra, np.concatenate([split.labeled, split.validation]))
  if len(clash) or not np.all(np.isin(extra, split.unlabeled)):
    raise ValueError(f"images {extra.tolist()} must be unlabeled training images of the "
                     f"split, not labelled or validation ones")
  return dataclasses.replace(split, labeled=np.sort(np.concatenate([split.labeled, extra])))


class Measure:
  """The figures the probe prints, for whatever weights the model holds now."""

  def __init__(self, model, config, split, true: int, pred: int):
    self.ev = evaluation.Evaluator(model, config.data.eval_batch_size)
    self.samples = int(config.model.eval_samples)
    self.true, self.pred = true, pred
    d, seed = config.data, config.train.seed
    raw, self.labels = evaluation.split_images(split, "validation")
    self.labels = np.asarray(self.labels)
    self.x = evaluation.evaluation_images(raw, d.binarize_eval, seed)
    a = split.arrays
    others = np.setdiff1d(split.unlabeled, split.labeled)
    self.pool = others[a.train_labels[others] == true]   # training images of T, unlabelled
    self.x_pool = evaluation.evaluation_images(a.train_images[self.pool], d.binarize_eval, seed)
    self.train_images, self.binarize, self.seed = a.train_images, d.binarize_eval, seed

  def pool_predictions(self) -> np.ndarray:
    return np.argmax(self.ev.log_proba(self.x_pool, self.samples), axis=1)

  def row(self, epoch: float, start_cell=None, added=(),
          names=("start_cell_still_in_cell", "start_cell_median_q_pred")) -> tuple:
    """``(row, cell's validation indices)``; ``start_cell`` (default: the cell
    itself) is the reference whose members still in the cell and median
    q̄(y=P|x) the row holds, under ``names``."""
    log_q = self.ev.log_proba(self.x, self.samples)                   # [N, Y]
    predicted = np.argmax(log_q, axis=1)
    in_cell = np.flatnonzero((self.labels == self.true) & (predicted == self.pred))
    start_cell = in_cell if start_cell is None else np.asarray(start_cell)
    q_pred = np.exp(log_q[start_cell, self.pred])
    row = {"epoch": epoch, "validation_error": float(np.mean(predicted != self.labels)),
           "cell": int(len(in_cell)),
           names[0]: int(np.sum(np.isin(start_cell, in_cell))),
           names[1]: float(np.median(q_pred)) if len(q_pred) else None,
           "train_pool_called_pred": int(np.sum(
               np.isin(self.pool, added, invert=True) & (self.pool_predictions() == self.pred)))}
    if len(added):
      x = evaluation.evaluation_images(self.train_images[np.asarray(added)], self.binarize,
                                       self.seed)
      row["added_q_true"] = np.exp(self.ev.log_proba(x, self.samples)[:, self.true]).tolist()
    return row, in_cell


def main(model_dir, checkpoint=None, cell=None, add=None, epochs=None, out=None,
         pick_seed=None, write=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  cell = cell if cell is not None else f.cell
  add = add if add is not None else f.add
  epochs = epochs if epochs is not None else f.epochs
  out = out if out is not None else f.out
  pick_seed = pick_seed if pick_seed is not None else f.pick_seed
  write = write if write is not None else f.write
  if not cell:
    raise common.ConfigError("--cell: give the block's true and predicted class, e.g. "
                             "--cell=7,9.")
  confusion.parse_cell(cell)
  if add < 0:
    raise common.ConfigError(f"--add={add}: give how many training images of the cell to "
                             f"label, 0 for the control.")
  if epochs < 1:
    raise common.ConfigError(f"--epochs={epochs}: give how many more epochs to train, at "
                             f"least 1.")
  if not out:
    raise common.ConfigError("--out: give a new directory for the continued training's "
                             "checkpoints and history.")
  out = os.path.abspath(os.path.expanduser(out))
  if os.path.exists(out):
    raise common.ConfigError(f"--out={out} exists; nothing in it is overwritten: give a "
                             f"new directory.")
  if not os.path.isdir(os.path.dirname(out)):
    raise common.ConfigError(f"--out={out}: its parent directory does not exist; create "
                             f"it first.")
  common.check_new_file("write", write)
  config, model, path, split, _ = common.load_with_config(model_dir, checkpoint,
                                                          validation=True)
  true, pred = confusion.parse_cell(cell, model.num_classes)
  data = pipeline.build_data(config)
  step = int(path.rsplit("-", 1)[1])
  if step % data.steps_per_epoch:
    raise common.ConfigError(f"--checkpoint={path} is mid-epoch (step {step}, "
                             f"{data.steps_per_epoch} steps an epoch): give one written at "
                             f"the end of an epoch.")
  start_epoch = step // data.steps_per_epoch

  # Which training images of T the checkpoint's classifier calls P.
  start = Measure(model, config, split, true, pred)
  candidates = start.pool[start.pool_predictions() == pred]
  if add > len(candidates):
    raise common.ConfigError(f"--add={add}: the checkpoint calls only {len(candidates)} "
                             f"unlabelled training images of class {true} {pred}; give "
                             f"--add={len(candidates)} or fewer.")
  extra = pick(candidates, add, pick_seed)
  first, start_cell = start.row(float(start_epoch), added=extra)

  t = config.train
  config = config.replace(train=dataclasses.replace(
      t, epochs=start_epoch + epochs, keep_checkpoints=epochs + 1, keep_epochs=(),
      eval_every=1, test_evaluation="never", time_budget_minutes=None,
      chunk_minutes=None, export_dir=None, progress="epoch"))
  data = dataclasses.replace(data, split=more_labels(data.split, extra))  # α stays the run's
  devices.configure_devices(config.train)
  strategy = devices.make_strategy(config.train)
  with rundir.RunLock(out):
    trainee = train.build_or_restore(config, data, strategy, out, chief=True)
    rundir.check_checkpoint_matches(trainee.checkpoint, path)
    trainee.checkpoint.restore(path).assert_existing_objects_matched()
    train.record_run(config, data, strategy.num_replicas_in_sync, out, None)
    print(f"{path}: epoch {start_epoch}, cell {true} -> {pred}; {len(candidates)} unlabelled "
          f"training images of {true} called {pred}; labelling {add} of them "
          f"({extra.tolist()}), {epochs} more epoch(s) into {out}", flush=True)
    train.Trainer(config, data, trainee, strategy, out, chief=True).train()
    measure = Measure(trainee.model, config, split, true, pred)
    rows = [first]
    for ckpt in trainee.manager.checkpoints:  # oldest first: one per epoch
      trainee.checkpoint.restore(ckpt).expect_partial()
      epoch = int(ckpt.rsplit("-", 1)[1]) / data.steps_per_epoch
      rows.append(measure.row(epoch, start_cell, extra)[0])
  for r in rows:
    q = ("" if "added_q_true" not in r else "; added images' q̄(y=%d|x) " % true
         + ", ".join(f"{v:.3f}" for v in r["added_q_true"]))
    median = r["start_cell_median_q_pred"]
    print(f"  epoch {r['epoch']:g}: validation error {100 * r['validation_error']:.2f}%, "
          f"cell {r['cell']} ({r['start_cell_still_in_cell']} of the start's "
          f"{len(start_cell)}, median q̄(y={pred}|x) "
          f"{'-' if median is None else format(median, '.3f')}); unlabelled training "
          f"{true}s called {pred}: {r['train_pool_called_pred']}{q}")
  if write:
    common.write_json(write, dict(
        checkpoint=os.path.basename(path), start_epoch=start_epoch, epochs=epochs,
        cell=dict(true=true, predicted=pred), add=add, pick_seed=pick_seed,
        alpha=data.alpha, labeled=int(data.split.num_labeled),
        candidates=int(len(candidates)), added_train_indices=extra.tolist(),
        start_cell_validation_indices=start_cell.tolist(), rows=rows))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("cell", None, "T,P: the block, images of class T classified as P")
  flags.DEFINE_integer("add", 3, "training images of the block to label (0: the control)")
  flags.DEFINE_integer("epochs", 5, "epochs to train on from the checkpoint")
  flags.DEFINE_string("out", None, "a new directory for the continued training")
  flags.DEFINE_integer("pick_seed", 0, "seed drawing the images to label")
  flags.DEFINE_string("write", None, "also save the figures as JSON to this new file")


if __name__ == "__main__":
  define_flags()
  common.run(main, "more_labels")
