r"""``python -m adgm_tf.evaluate``: the final numbers of any checkpoint of a run.

Command line::

    python -m adgm_tf.evaluate --model_dir=RUN [--checkpoint=best] \
        [--splits=validation,test] [--samples=S] \
        [--ll_examples=10000 --ll_samples=1000 [--ll_resume_file=LL.npz]] \
        [--output=NEW.json] [--samples_png=NEW.png]

It rebuilds the run's model and data split from ``RUN/config.json``, restores
the checkpoint (``best``: the one with the lowest validation error, kept in
``RUN/best``; default: the newest) and prints what the run's own final
evaluation puts in ``metrics.json`` (:func:`evaluate_checkpoint`): the
error of qbar(y|x), the a-diagnostics, active units and, when asked, the
importance-weighted test log-likelihood (Maaløe et al. 2016, Table 2: K = 1000
on the 10,000 test images). The test set is for final tables: choose
checkpoints and settings with ``--splits=validation``.

Nothing is written unless ``--output``/``--samples_png`` name new files
(existing files are never overwritten); every argument is checked before the
model is loaded. Importing this module imports neither TensorFlow nor absl.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, Optional, Tuple

from adgm_tf import cli
from adgm_tf import data as data_lib
from adgm_tf import pipeline
from adgm_tf import rundir
from adgm_tf.errors import ConfigError

SPLITS = ("validation", "test")


def check_evaluate_args(splits, samples: Optional[int], ll_samples: int,
                        ll_examples: int) -> Tuple[str, ...]:
  """The arguments of :func:`evaluate_checkpoint`, checked before anything is read."""
  if isinstance(splits, str):
    splits = tuple(s.strip() for s in splits.split(",") if s.strip())
  splits = tuple(splits)
  unknown = [s for s in splits if s not in SPLITS]
  if not splits or unknown:
    raise ConfigError(f"--splits={','.join(splits)}: give one or both of "
                      f"{','.join(SPLITS)} (comma-separated).")
  if samples is not None and samples < 1:
    raise ConfigError(f"--samples={samples}: the classifier needs at least 1 sample "
                      f"of a; leave it out for the run's --eval_samples.")
  if ll_samples < 1:
    raise ConfigError(f"--ll_samples={ll_samples}: the importance-weighted "
                      f"estimate needs K >= 1 (the paper uses 1000).")
  if ll_examples < 0:
    raise ConfigError(f"--ll_examples={ll_examples}: must be >= 0 (0: skip the "
                      f"log-likelihood; 10000: every test image).")
  if ll_examples and "test" not in splits:
    raise ConfigError(f"--ll_examples={ll_examples}: the log-likelihood is taken on "
                      f"test images, and --splits={','.join(splits)} does not read "
                      f"the test set. Add test to --splits or set --ll_examples=0.")
  return splits


def evaluate_checkpoint(model_dir: str, checkpoint: Optional[str] = None,
                        samples: Optional[int] = None, splits=SPLITS,
                        ll_samples: int = 1000, ll_examples: int = 0,
                        idx_dir: Optional[str] = None, data_dir: Optional[str] = None,
                        samples_png: Optional[str] = None, say=None,
                        ll_resume_file: Optional[str] = None) -> Dict[str, object]:
  """The numbers of a run's final evaluation, for any of its checkpoints.

  Rebuilds the run's model from ``config.json``, restores ``checkpoint`` (a
  prefix, "best" for the checkpoint with the lowest validation error, or the
  newest by default), rebuilds the run's data split (the same labeled images,
  validation split and test set) and computes what ``metrics.json`` holds,
  with the run's evaluation seed and input treatment: the error of qbar(y|x)
  with ``samples`` samples of a (default: the run's ``eval_samples``), the
  a-diagnostics, the bounds L and U, active units, and optionally the IW
  log-likelihood (K = ``ll_samples``) on the first ``ll_examples`` test
  images. On the newest checkpoint of a finished run it reproduces the run's
  own final evaluation. ``idx_dir``/``data_dir`` replace the run's data
  location when the data moved. ``samples_png``: a file for 10 class-conditional
  samples per class. ``say(text)`` receives progress lines.
  ``ll_resume_file`` (.npz): the per-image log-likelihoods are kept there as
  they are computed, and a later call with the same file, checkpoint and
  settings continues where a cut one stopped (``Evaluator.log_likelihood``).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from adgm_tf import evaluation  # pylint: disable=g-import-not-at-top
  splits = check_evaluate_args(splits, samples, ll_samples, ll_examples)
  say = say or (lambda text: None)
  start = time.time()
  config, model, path = rundir.load_run(model_dir, checkpoint)
  _, saved = rundir.read_run(model_dir)
  steps_per_epoch = int(saved["derived"]["steps_per_epoch"])
  step = int(model.optimizer.iterations.numpy())
  if idx_dir or data_dir:
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, **{k: v for k, v in (("idx_dir", idx_dir), ("data_dir", data_dir))
                        if v}))
  d, m, t = config.data, config.model, config.train
  builtin = data_lib.dataset_kind(d.dataset)[0] == "builtin"
  if builtin and not [w for w in splits if w == "test" or d.validation_size > 0]:
    raise ConfigError(f"{model_dir}: the run holds no validation images to evaluate "
                      f"(its --validation_size is 0). Add test to --splits.")
  split = pipeline.build_data(config).split
  images = {w: evaluation.split_images(split, w) for w in SPLITS}  # (images, labels)
  held = [w for w in splits if len(images[w][1])]
  if not held:
    raise ConfigError(f"{model_dir}: the run holds no {' or '.join(splits)} images to "
                      f"evaluate (its dataset has no test set and --validation_size "
                      f"is 0); give --splits=validation,test.")
  samples = int(samples or m.eval_samples)
  say(f"{path}: step {step}, epoch {step / steps_per_epoch:g}; the classifier with "
      f"{samples} samples of a")
  ev = evaluation.Evaluator(model, d.eval_batch_size)
  out: Dict[str, object] = {"checkpoint": path, "step": step,
                            "epoch": step / steps_per_epoch, "eval_samples": samples}
  for which in SPLITS:
    if which in splits and which not in held:
      say(f"  {which}: the run holds no {which} images (--validation_size=0); skipped")
  # The trainer's final evaluation, exactly (evaluation.evaluate_splits): active
  # units on the test images if read, else on the validation images.
  numbers = evaluation.evaluate_splits(
      ev, [(w, images[w]) for w in SPLITS if w in held],
      samples, max(1, m.mc_samples), binarize=d.binarize_eval, seed=t.seed,
      kl_split="test")
  out.update(numbers.results)
  for which in held:
    say(f"  {which}: error {100 * out[f'{which}_error']:.2f}% on "
        f"{len(images[which][1])} images")
  out["ll_samples"], out["ll_examples"], out["test_log_likelihood"] = ll_samples, 0, None
  if ll_examples and not split.arrays.has_test:
    say("  test log-likelihood: the dataset has no test set; skipped")
  elif ll_examples:
    test_images = split.arrays.test_images[:ll_examples]
    say(f"  test log-likelihood: K = {ll_samples} on {len(test_images)} images")
    if ll_resume_file and os.path.exists(ll_resume_file):
      say(f"  continuing from {ll_resume_file}")
    ll = ev.log_likelihood(test_images, samples=ll_samples, seed=t.seed,
                           progress=evaluation.progress_printer(say),
                           resume_file=ll_resume_file, tag=os.path.abspath(path))
    out["test_log_likelihood"] = float(np.mean(ll))
    out["ll_examples"] = len(test_images)
  if samples_png:
    evaluation.save_samples_png(model, samples_png,
                                shape=saved["derived"].get("image_shape"))
  out["seconds"] = time.time() - start
  return out


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.2f}%"


def summary_lines(out: Dict[str, object]) -> list:
  """What ``python -m adgm_tf.evaluate`` prints."""
  lines = [f"checkpoint {out['checkpoint']} (epoch {out['epoch']:g}), "
           f"{out['eval_samples']} samples of a"]
  for which, prefix in (("validation", "validation_"), ("test", "")):
    if out.get(f"{which}_error") is None:
      continue
    line = f"  {which}: error {_percent(out[f'{which}_error'])}"
    swap = out.get(f"{prefix}aux_swap_error")
    if out.get(f"{prefix}aux_alive_fraction") is not None:
      line += (f"; a: {100 * out[f'{prefix}aux_alive_fraction']:.0f}% of units alive, "
               f"spread {out[f'{prefix}aux_mean_spread']:.3g}")
    if swap is not None:
      line += f", swap cost {100 * (swap - out[f'{which}_error']):+.2f} points"
    lines.append(line)
  if out.get("test_log_likelihood") is not None:
    lines.append(f"  test log-likelihood {out['test_log_likelihood']:.2f} nats "
                 f"(K = {out['ll_samples']}, {out['ll_examples']} images)")
  lines.append(f"  active units: z {out['active_units_z']}"
               + ("" if out.get("active_units_a") is None else
                  f", a {out['active_units_a']}"))
  return lines


def _check_new_file(path: Optional[str], flag: str, suffix: str) -> Optional[str]:
  if not path:
    return None
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(path):
    raise ConfigError(f"--{flag}={path} already exists and is never overwritten; "
                      f"give a new file name or remove it.")
  if not path.endswith(suffix):
    raise ConfigError(f"--{flag}={path}: give a file name ending in {suffix}.")
  parent = os.path.dirname(path)
  if not os.path.isdir(parent):
    raise ConfigError(f"--{flag}={path}: the directory {parent} does not exist; "
                      f"create it first.")
  if not os.access(parent, os.W_OK):
    raise ConfigError(f"--{flag}={path}: the directory {parent} is not writable.")
  return path


def _check_resume_file(path: Optional[str], ll_examples: int) -> Optional[str]:
  if not path:
    return None
  path = os.path.abspath(os.path.expanduser(path))
  if not ll_examples:
    raise ConfigError(f"--ll_resume_file={path}: there is no log-likelihood to resume "
                      f"without --ll_examples; give both or neither.")
  if not path.endswith(".npz"):
    raise ConfigError(f"--ll_resume_file={path}: give a file name ending in .npz.")
  parent = os.path.dirname(path)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
    raise ConfigError(f"--ll_resume_file={path}: the directory {parent} does not exist "
                      f"or is not writable.")
  return path


def main(argv):  # pragma: no cover - exercised through a subprocess in tests
  """``python -m adgm_tf.evaluate``: any checkpoint of a run, afterwards."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: every input is a "
                      f"flag (--helpshort lists them).")
  f = flags.FLAGS
  check_evaluate_args(f.splits, f.samples, f.ll_samples, f.ll_examples)
  output = _check_new_file(f.output, "output", ".json")
  png = _check_new_file(f.samples_png, "samples_png", ".png")
  resume = _check_resume_file(f.ll_resume_file, f.ll_examples)
  rundir.read_run(f.model_dir)  # a wrong --model_dir fails before TensorFlow loads
  cli.import_tensorflow(show=f.show_tf_logs or None)
  out = evaluate_checkpoint(
      f.model_dir, checkpoint=f.checkpoint, samples=f.samples, splits=f.splits,
      ll_samples=f.ll_samples, ll_examples=f.ll_examples, idx_dir=f.idx_dir,
      data_dir=f.data_dir, samples_png=png, say=lambda text: print(text, flush=True),
      ll_resume_file=resume)
  print("\n".join(summary_lines(out)), flush=True)
  if png:
    print(f"  class-conditional samples: {png}")
  if output:
    rundir.atomic_write(output, json.dumps(out, indent=2, default=float) + "\n")
    print(f"  metrics: {output}")


def define_flags():  # pragma: no cover
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_dir", None, "Run directory (holds config.json and checkpoints/).")
  flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (ckpt-<step> alone is looked up "
                      "in model_dir/checkpoints); a directory of checkpoints (its newest, e.g. "
                      "kept/epoch-100/best, inside the run); or 'best': the "
                      "run's checkpoint with the lowest validation error; default: the newest.")
  flags.DEFINE_string("splits", "validation,test", "Which images to classify: validation, "
                      "test or both (the test set is for final tables only).")
  flags.DEFINE_integer("samples", None, "Samples of a in qbar(y|x); default: the run's "
                       "--eval_samples.")
  flags.DEFINE_integer("ll_samples", 1000, "Importance samples K of the test log-likelihood.")
  flags.DEFINE_integer("ll_examples", 0, "Test images in the log-likelihood (0: skip; "
                       "10000: all; 1.27 hours on 2 cores for the long SDGM run's best/).")
  flags.DEFINE_string("ll_resume_file", None, "Keep the per-image log-likelihoods in this "
                      ".npz file as they are computed; run the same command again after "
                      "a cut to continue from them (the result is the same as uncut).")
  flags.DEFINE_string("output", None, "Write the numbers to this new .json file.")
  flags.DEFINE_string("samples_png", None, "Write 10 class-conditional samples per class "
                      "to this new .png file.")
  flags.DEFINE_string("idx_dir", None, "The MNIST IDX files, if they moved since the run.")
  flags.DEFINE_string("data_dir", None, "The prepared dataset directory, if it moved.")
  flags.mark_flags_as_required(["model_dir"])


if __name__ == "__main__":  # pragma: no cover
  cli.run_absl("adgm_tf.evaluate", main, define_flags)
