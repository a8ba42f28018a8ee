"""Probe: when a block of errors forms, checkpoint by checkpoint.

For every checkpoint a run kept (``--every`` to thin them), with the run's
own evaluation on the validation images (never test): the error, the size of
the cell T -> P, how many of the *last* checkpoint's cell images are already
in it, the median q̄(y=P|x) of those, and how many of the unlabelled training
images of class T the classifier calls P. Keep every checkpoint of a run
(``--keep_checkpoints`` at least its epochs) to follow a block from its
first epoch (RESULTS.md, section 7, "When a block forms").

    python -m experiments.probes.cell_history --model_dir=RUN --cell=7,9
        [--every=1] [--write=FILE.json]
"""

import os


from experiments.probes import common
from experiments.probes import confusion
from experiments.probes import more_labels

from adgm_tf import rundir  # noqa: E402  (after TensorFlow's quiet import)


def main(model_dir, checkpoint=None, cell=None, every=None, write=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  cell = cell if cell is not None else flags.FLAGS.cell
  every = every if every is not None else flags.FLAGS.every
  write = write if write is not None else flags.FLAGS.write
  if checkpoint:
    raise common.ConfigError("--checkpoint: this probe reads every checkpoint of the run; "
                             "leave it out.")
  if not cell:
    raise common.ConfigError("--cell: give the cell's true and predicted class, e.g. "
                             "--cell=7,9.")
  confusion.parse_cell(cell)
  if every < 1:
    raise common.ConfigError(f"--every={every}: give 1 for every checkpoint, or N for "
                             f"every N-th.")
  common.check_new_file("write", write)
  config, model, last, split, _ = common.load_with_config(model_dir, validation=True)
  true, pred = confusion.parse_cell(cell, model.num_classes)
  steps = int(rundir.read_run(model_dir)[1]["derived"]["steps_per_epoch"])
  paths = common.tf.train.get_checkpoint_state(os.path.dirname(last)).all_model_checkpoint_paths
  paths = [p if os.path.isabs(p) else os.path.join(os.path.dirname(last), p) for p in paths]
  chosen = paths[::-1][::every][::-1]  # every N-th, counting back from the newest
  measure = more_labels.Measure(model, config, split, true, pred)
  names = ("last_cell_in_cell", "last_cell_median_q_pred")

  def epoch(path):
    return int(path.rsplit("-", 1)[1]) / steps

  newest = measure.row(epoch(last), names=names)   # the model holds the newest checkpoint
  final_cell = newest[1]
  restore = common.tf.train.Checkpoint(model=model)
  rows = []
  for path in chosen:
    if os.path.normpath(path) == os.path.normpath(last):
      row, in_cell = newest                          # measured above, not again
    else:
      restore.restore(path).expect_partial()
      row, in_cell = measure.row(epoch(path), final_cell, names=names)
    row["checkpoint"] = os.path.basename(path)
    row["cell_validation_indices"] = in_cell.tolist()
    rows.append(row)
    median = row["last_cell_median_q_pred"]
    print(f"  epoch {row['epoch']:g}: validation error {100 * row['validation_error']:.2f}%, "
          f"cell {true} -> {pred} {row['cell']}, {row['last_cell_in_cell']} of the last "
          f"checkpoint's {len(final_cell)} (their median q̄(y={pred}|x) "
          f"{'-' if median is None else format(median, '.3f')}); unlabelled training {true}s "
          f"called {pred}: {row['train_pool_called_pred']}", flush=True)
  if write:
    common.write_json(write, dict(cell=dict(true=true, predicted=pred),
                                  last_checkpoint=os.path.basename(last),
                                  last_cell_validation_indices=final_cell.tolist(),
                                  train_pool=int(len(measure.pool)), rows=rows))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("cell", None, "T,P: images of class T classified as P")
  flags.DEFINE_integer("every", 1, "every N-th checkpoint, counting back from the newest")
  flags.DEFINE_string("write", None, "also save the figures as JSON to this new file")


if __name__ == "__main__":
  define_flags()
  common.run(main, "cell_history")
