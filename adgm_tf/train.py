"""Training and evaluation of one run: ``train_and_evaluate(config, model_dir)``.

The protocol, one named step each (see :func:`train_and_evaluate`):

1. build the strategy (``MirroredStrategy`` over the local GPUs, one CPU
   replica without them or ``cpu_replicas`` logical CPUs,
   ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, ``OneDeviceStrategy`` on
   request);
2. check that every directory it writes can be written, take the run
   directory's lock and check the files the run relies on, writing nothing
   (``rundir``);
3. resolve and split the data;
4. build the model and restore the newest intact checkpoint;
5. record the run (config.json, flags.txt);
6. train, with periodic evaluation and checkpoints (:class:`Trainer`);
7. the final evaluation;
8. the export.

One loop for every strategy: ``model.train_step`` runs through
``strategy.run`` inside a ``tf.function`` and the per-replica logs are
reduced with ``strategy.reduce`` (Keras 3 ``fit`` fails under
``MultiWorkerMirroredStrategy``, keras-team/keras#20585).

Resuming: the optimizer's step counter is in the checkpoint and every random
draw (data order, binarization, sampling noise) is a pure function of the
seeds and the step, so a resumed run continues exactly as an uninterrupted
one. ``rundir.py`` describes the run directory and its rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

from adgm_tf import builders
from adgm_tf import config as config_lib
from adgm_tf import data as data_lib
from adgm_tf import devices
from adgm_tf import export
from adgm_tf import pipeline
from adgm_tf import rundir
from adgm_tf.errors import AuxDied, ConfigError, Diverged, DiskFull, Interrupted

logger = logging.getLogger("adgm_tf")

# Kept importable from here: the run directory's formats live in rundir.py.
AUX_FIELDS = rundir.AUX_FIELDS
HISTORY_FIELDS = rundir.HISTORY_FIELDS


# ----------------------------------------------------------------------------
# 2. Checks before anything is written
# ----------------------------------------------------------------------------


def check_directories(config: config_lib.Config, model_dir: str, chief: bool) -> None:
  """Every directory the run will write can be written; writes nothing.

  The export directory too, so a bad ``--export_dir`` fails now and not
  after training; the data directory only if something will be prepared in it.
  """
  d, t = config.data, config.train
  rundir.check_writable(model_dir, "model_dir")
  data_dir = d.data_dir or data_lib.default_data_dir()
  kind = data_lib.dataset_kind(d.dataset)[0]
  if kind == "tfds" or (kind == "builtin"  # it may be prepared there
                        and not data_lib.prepared_version_dir(d.dataset, data_dir)):
    rundir.check_writable(data_dir, "data_dir")
  if t.export_dir and chief:
    rundir.check_writable(t.export_dir, "export_dir")


def check_run_files(config: config_lib.Config, model_dir: str, chief: bool) -> None:
  """config.json and history.csv, if present, are readable and belong to this run."""
  rundir.check_resumable(config, model_dir, rundir.read_run_config(model_dir))
  rundir.History(rundir.RunDir(model_dir).history, chief).read()


# ----------------------------------------------------------------------------
# 4. Model and checkpoints
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingState:
  """The model and everything checkpointed with it."""
  model: Any
  optimizer: Any
  checkpoint: Any
  wall_time: Any          # tf.Variable: training seconds, across launches
  manager: Any            # checkpoints/
  best_manager: Any       # best/
  write_dir: str          # model_dir, or a scratch directory on non-chief workers


def build_or_restore(config: config_lib.Config, data: pipeline.Data, strategy, model_dir: str,
                     chief: bool) -> TrainingState:
  """The model, and the newest intact checkpoint restored into it (if any)."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  t = config.train
  with strategy.scope():
    keras.utils.set_random_seed(t.seed)
    model, optimizer = builders.create_model_and_optimizer(
        config, data.alpha, data.steps_per_epoch, x_dim=data.shape["x_dim"],
        num_classes=data.shape["num_classes"], num_unlabeled=data.split.num_unlabeled)
    wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time")
    checkpoint = builders.make_checkpoint(model, optimizer, wall_time)
  # Every worker saves (saving may involve collectives); only the chief's
  # files are kept (the tf.distribute multi-worker checkpointing pattern).
  write_dir = model_dir if chief else tempfile.mkdtemp(prefix="adgm_tf_worker_")
  latest = rundir.intact_checkpoint(rundir.RunDir(model_dir).checkpoints, repair=chief)
  if latest:
    rundir.check_checkpoint_matches(checkpoint, latest)
    checkpoint.restore(latest).assert_existing_objects_matched()
    logger.info("resumed from %s (step %d)", latest, int(optimizer.iterations.numpy()))
  manager = tf.train.CheckpointManager(
      checkpoint, rundir.RunDir(write_dir).checkpoints, max_to_keep=t.keep_checkpoints)
  best_manager = tf.train.CheckpointManager(
      checkpoint, rundir.RunDir(write_dir).best, max_to_keep=1)
  return TrainingState(model, optimizer, checkpoint, wall_time, manager, best_manager, write_dir)


def weights_fingerprint(model) -> str:
  """SHA-256 of every model variable's float32 bytes, in a fixed order."""
  h = hashlib.sha256()
  for v in sorted(model.variables, key=lambda v: v.path):
    h.update(v.path.encode())
    h.update(np.ascontiguousarray(v.numpy(), np.float32).tobytes())
  return h.hexdigest()


# ----------------------------------------------------------------------------
# 5. Record the run
# ----------------------------------------------------------------------------


def record_run(config: config_lib.Config, data: pipeline.Data, replicas: int, model_dir: str,
               flagfile_text: Optional[str]) -> None:
  """config.json (with the derived sizes) and flags.txt; an older flags.txt is kept."""
  derived = dict(alpha=data.alpha, num_labeled=data.split.num_labeled,
                 num_unlabeled=data.split.num_unlabeled,
                 num_validation=len(data.split.validation),
                 steps_per_epoch=data.steps_per_epoch, replicas=replicas,
                 data_source=data.source.describe(), **data.shape)
  run = rundir.RunDir(model_dir)
  rundir.atomic_write(run.config, json.dumps(
      dict(config=config.to_dict(), derived=derived), indent=2, sort_keys=True,
      default=str))
  if flagfile_text is None:
    return
  flags_path = run.flags
  if os.path.exists(flags_path):
    with open(flags_path) as f:
      previous = f.read()
    if previous != flagfile_text:
      n = len([p for p in os.listdir(model_dir) if p.startswith("flags.")])
      rundir.atomic_write(run.older_flags(n), previous)
  rundir.atomic_write(flags_path, flagfile_text)


# ----------------------------------------------------------------------------
# 6-7. Training and evaluation
# ----------------------------------------------------------------------------


NON_FINITE_END = "inputs are in [0, 1]."


def _non_finite_error(error: Exception) -> Optional[str]:
  """The text of the in-graph non-finite-loss assertion, whole; None for other errors.

  ``SemiSupervisedModel._check_finite`` stops the step with an
  InvalidArgumentError (possibly wrapped by the distribution strategy) whose
  text runs from ``adgm_tf: non-finite loss`` to ``NON_FINITE_END``.
  """
  text = str(error)
  start = text.find("adgm_tf: non-finite loss")
  if start < 0:
    return None
  end = text.find(NON_FINITE_END, start)
  end = len(text) if end < 0 else end + len(NON_FINITE_END)
  return text[start:end].replace("adgm_tf: ", "", 1).strip()


def _fmt(value, spec=".4f"):
  return "-" if value is None else format(value, spec)


def _cpu_time() -> float:
  """CPU seconds of this process (all threads) since it started."""
  t = os.times()
  return t.user + t.system


class Trainer:
  """Step 6 and 7: the training loop with its evaluations and checkpoints."""

  def __init__(self, config: config_lib.Config, data: pipeline.Data, trainee: TrainingState,
               strategy, model_dir: str, chief: bool):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from adgm_tf import evaluation  # pylint: disable=g-import-not-at-top
    from adgm_tf import summaries as summaries_lib  # pylint: disable=g-import-not-at-top
    self.config, self.data, self.trainee = config, data, trainee
    self.strategy, self.model_dir, self.chief = strategy, model_dir, chief
    self.model, self.optimizer = trainee.model, trainee.optimizer
    self.steps_per_epoch = data.steps_per_epoch
    self.step = int(self.optimizer.iterations.numpy())
    self.epoch = self.step // self.steps_per_epoch
    self.stopped_by_budget = False
    self.stopped_by_chunk = False  # --chunk_minutes: this launch ends, the run goes on
    self.run = rundir.RunDir(model_dir)
    self.summaries = (summaries_lib.Summaries(self.run.events("train"),
                                              self.run.events("eval"))
                      if chief else summaries_lib.Summaries(None))
    self.history = rundir.History(self.run.history, chief)
    self.evaluator = evaluation.Evaluator(self.model, config.data.eval_batch_size)
    self.test = evaluation.split_images(data.split, "test")
    self.validation = evaluation.split_images(data.split, "validation")
    self.best = _read_best(model_dir)
    self._tf = tf
    self._evaluation = evaluation
    self._summaries_lib = summaries_lib
    t = config.train
    self.budget = None if t.budget_minutes is None else 60.0 * t.budget_minutes
    self._clock0, self._wall0 = time.time(), float(trainee.wall_time.numpy())
    self.last_eval: Dict[str, Any] = {}
    self.final_estimate: Optional[float] = None  # seconds the final evaluation will take
    self._eval_seconds: Optional[float] = None
    self._evaluations = 0
    self._ll_rate: Optional[float] = None        # seconds per (image, importance sample)

  def say(self, text: str) -> None:
    """A progress line (chief, unless --progress=none)."""
    if self.chief and self.config.train.progress != "none":
      print(text, flush=True)

  def reads_test(self, final: bool) -> bool:
    """Whether an evaluation (the final one, or a periodic one) reads the test set."""
    when = self.config.train.test_evaluation
    if not len(self.test[1]):  # a dataset without a test set
      return False
    return when == "every" or (when == "end" and final)

  def time_left(self) -> Optional[float]:
    """Seconds of training left in the budget, the final evaluation's share kept back."""
    if self.budget is None:
      return None
    return self.budget - (self.final_estimate or 0.0) - self.elapsed()

  # -- time -------------------------------------------------------------------

  def elapsed(self) -> float:
    """Training wall time, across launches."""
    return self._wall0 + time.time() - self._clock0

  def chunk_over(self) -> bool:
    """Whether this launch has used its ``--chunk_minutes`` (never without one)."""
    limit = self.config.train.chunk_seconds
    return limit is not None and time.time() - self._clock0 >= limit

  # -- checkpoints ------------------------------------------------------------

  def save(self, manager) -> None:
    """Writes a checkpoint; a full disk becomes DiskFull, with what is intact."""
    self.trainee.wall_time.assign(self.elapsed())
    try:
      manager.save(checkpoint_number=self.step, check_interval=False)
    except (self._tf.errors.OpError, OSError) as e:
      text = str(e)
      reason = next((r for r in ("No space left on device", "Disk quota exceeded",
                                 "File too large") if r in text), None)
      if reason is None:
        raise
      removed = rundir.remove_temporaries(manager.directory)
      for path in removed:
        logger.debug("removed the partial checkpoint %s", path)
      intact = rundir.intact_checkpoint(manager.directory, repair=False) if os.path.isdir(
          manager.directory) else None
      advice = ("raising the file-size limit (ulimit -f)" if reason == "File too large"
                else "freeing space")
      raise DiskFull(
          f"could not write the checkpoint of step {self.step} in "
          f"{manager.directory}: {reason}. The partial files were removed; "
          + (f"the newest intact checkpoint is {intact}, and relaunching the same "
             f"command after {advice} resumes from it." if intact else
             f"no earlier checkpoint exists, so relaunching after {advice} starts "
             f"from the beginning.")) from None

  def keep_epoch(self) -> None:
    """--keep_epochs: this epoch's checkpoint (just saved) and best/ of now, for good."""
    # CheckpointManager names each checkpoint by its number, here the step.
    prefix = os.path.join(self.trainee.manager.directory, f"ckpt-{self.step}")
    try:
      where = rundir.keep_epoch(self.run, self.epoch, self.step, prefix)
    except OSError as e:
      raise DiskFull(
          f"could not keep epoch {self.epoch}'s checkpoint in "
          f"{self.run.kept(self.epoch)}: {e}. The run's own checkpoints are intact "
          f"(the newest is {self.newest_checkpoint()}); relaunching the same command "
          f"once that is fixed (e.g. space freed) keeps it and goes on.") from None
    logger.info("kept epoch %d's checkpoint and best/ of now in %s", self.epoch, where)

  def keep_missed_epoch(self) -> None:
    """At a resume: the kept copy of the restored epoch, if a stop came between
    its checkpoint and the copy; epochs already past without one are named."""
    t = self.config.train
    if not (self.chief and t.keep_epochs):
      return
    spe = self.steps_per_epoch
    if (self.step and self.step % spe == 0 and self.epoch in t.keep_epochs
        and not os.path.isdir(self.run.kept(self.epoch))):
      self.keep_epoch()
    missed = sorted(e for e in t.keep_epochs
                    if e * spe < self.step and not os.path.isdir(self.run.kept(e)))
    if missed:
      logger.warning("--keep_epochs: epoch(s) %s passed before this launch without a "
                     "kept copy; from now on the others are kept.",
                     ", ".join(map(str, missed)))

  def newest_checkpoint(self) -> Optional[str]:
    return self._tf.train.latest_checkpoint(self.trainee.manager.directory)

  def where_to_resume(self, change: str = "") -> str:
    """Where a relaunch (``change``: e.g. "with a lower --learning_rate") continues."""
    latest = self.newest_checkpoint() if self.chief else None
    how = f"relaunching {change}" if change else "relaunching the same command"
    if latest:
      return f"the newest checkpoint is {latest}; {how} resumes from it"
    return f"no checkpoint was written yet, so {how} starts the run from the beginning"

  # -- evaluation -------------------------------------------------------------

  def evaluate(self, samples: int, final: bool):
    """Errors, a-diagnostics and bounds on the validation (and test) images,
    and the per-unit KL (``evaluation.SplitNumbers``)."""
    d, m, t = self.config.data, self.config.model, self.config.train
    splits = [("validation", self.validation)]
    if self.reads_test(final):
      splits.append(("test", self.test))
    # Active units on the validation split, except at the end if the test set is read.
    numbers = self._evaluation.evaluate_splits(
        self.evaluator, splits, samples, max(1, m.mc_samples), binarize=d.binarize_eval,
        seed=t.seed, kl_split="test" if final else "validation",
        bound_examples=None if final else 1000)
    if self.chief and not final:  # the final numbers are written as final_*
      self._write_eval_summaries(numbers.results, numbers.kl_z, numbers.kl_a)
    return numbers

  def _write_eval_summaries(self, results, kl_z, kl_a) -> None:
    s, step = self.summaries, self.step
    s.scalars("eval", {k: v for k, v in results.items() if isinstance(v, (int, float))},
              step)
    s.histogram("kl_per_unit/z", kl_z, step)
    s.histogram("kl_per_unit/a", kl_a, step)
    grid = self._evaluation.image_grid(
        self._evaluation.class_conditional_samples(self.model, 10, self.config.train.seed),
        self.data.shape["image_shape"])
    s.image("samples/class_conditional", grid, step)
    s.flush()

  def _keep_if_best(self, results: Dict[str, Any]) -> None:
    val_err = results.get("validation_error")
    if val_err is None or (self.best is not None and val_err >= self.best["validation_error"]):
      return
    self.best = dict(validation_error=val_err, step=self.step,
                     epoch=self.step / self.steps_per_epoch)
    self.save(self.trainee.best_manager)
    if self.chief:
      rundir.atomic_write(self.run.best_json,
                          json.dumps(self.best))

  # -- training ---------------------------------------------------------------

  def _train_steps(self, train_step, iterator, progbar, skip: int) -> Dict[str, float]:
    """The steps of one epoch from ``skip``; stops early at the time budget."""
    tf, t = self._tf, self.config.train
    logs: Dict[str, float] = {}
    for _ in range(skip, self.steps_per_epoch):
      try:
        logs = {k: float(v) for k, v in train_step(iterator).items()}
      except tf.errors.OpError as e:
        text = _non_finite_error(e)
        if text is None:
          raise
        raise Diverged(f"{text} The run stopped; "
                       f"{self.where_to_resume('with a lower --learning_rate')}.") from None
      self.step += 1
      bad = [k for k, v in logs.items() if not math.isfinite(v)]
      if bad:  # also catches XLA, where the in-graph assertion compiles away
        raise Diverged(
            f"non-finite training metrics at step {self.step}: {', '.join(bad)}. "
            f"The run stopped; "
            f"{self.where_to_resume('with a lower --learning_rate or --clip_norm on')}.")
      if progbar is not None:
        values = [("loss", logs["loss"]), ("accuracy", logs["accuracy"]),
                  ("elbo_unlabeled", logs["elbo_unlabeled"])]
        values += [(k, v) for k, v in (("val_err", self.last_eval.get("validation_error")),
                                       ("test_err", self.last_eval.get("test_error")))
                   if v is not None]
        if self.budget is not None:
          values.append(("min_left", max(0.0, self.time_left() / 60)))
        progbar.update(self.step - self.epoch * self.steps_per_epoch, values)
      if self.chief and self.step % t.summary_every == 0:
        self.summaries.scalars("train", dict(logs, learning_rate=float(
            self.optimizer.learning_rate)), self.step)
      if self.budget is not None and self.time_left() <= 0:
        self.stopped_by_budget = True
        break
      if self.chunk_over() and self.step < t.epochs * self.steps_per_epoch:
        self.stopped_by_chunk = True  # the run goes on at the next launch
        break
    return logs

  def train(self) -> None:
    """Epochs until ``--epochs`` or the time budget, with evaluations and checkpoints."""
    import keras  # pylint: disable=g-import-not-at-top
    t = self.config.train
    spe = self.steps_per_epoch
    train_step = devices.make_train_step(self.strategy, self.model)
    if self.step >= t.epochs * spe:
      logger.info("already trained for %d epochs; evaluating", t.epochs)
    self.keep_missed_epoch()
    # One iterator feeds a block of epochs (pipeline.EPOCHS_PER_ITERATOR): each
    # iterator's end can stall up to a minute, so not one per epoch.
    iterator, block_end = None, 0
    while self.epoch < t.epochs and not (self.stopped_by_budget or self.stopped_by_chunk):
      epoch_start, skip = time.time(), self.step - self.epoch * spe
      for tracker in self.model.metrics:
        tracker.reset_state()
      if self.epoch >= block_end:  # block_end 0: the first epoch of this launch
        iterator = None  # the last block's, released before the next is built
        block_end = min(t.epochs, self.epoch + pipeline.EPOCHS_PER_ITERATOR)
        iterator = iter(pipeline.distributed_epoch(
            self.strategy, self.data.split, self.config.data, t.seed, self.epoch, skip,
            epochs=block_end - self.epoch))
      progbar = None
      # A bar only on a terminal: in a log file (CI, nohup) its carriage-return
      # redraws pile up, and the one line per epoch below says what it would.
      if self.chief and t.progress == "bar" and sys.stdout.isatty():
        progbar = keras.utils.Progbar(spe, verbose=1, stateful_metrics=[
            "loss", "accuracy", "elbo_unlabeled", "val_err", "test_err", "min_left"])
        budget = ""
        if self.budget is not None:
          budget = (f" ({max(0.0, self.time_left()) / 60:.1f} of "
                    f"{t.budget_minutes:g} budget minutes left for training"
                    + ("" if self.final_estimate is not None else
                       "; the final evaluation's share is estimated after this epoch")
                    + ")")
        print(f"Epoch {self.epoch + 1}/{t.epochs}{budget}", flush=True)
        if skip:
          progbar.update(skip)
      logs = self._train_steps(train_step, iterator, progbar, skip)
      epoch_done = self.step % spe == 0
      if epoch_done:
        self.epoch += 1
      self._end_of_epoch(logs, time.time() - epoch_start, epoch_done)

  def _end_of_epoch(self, logs: Dict[str, float], epoch_time: float,
                    epoch_done: bool) -> None:
    t = self.config.train
    lr = float(self.optimizer.learning_rate)
    if self.chief:
      self.summaries.scalars("train", {"epoch_seconds": epoch_time}, self.step)
    last = self.epoch >= t.epochs or self.stopped_by_budget
    results: Dict[str, Any] = {}
    if (epoch_done and (self.epoch % t.eval_every == 0 or last)) or self.stopped_by_budget:
      start = time.time()
      results = self.evaluate(t.eval_samples_periodic, final=False).results
      # The first evaluation also compiles its functions: a poor guide to the
      # next, used only when a budget needs an estimate now (better too much
      # kept back than too little).
      if self._evaluations or self.budget is not None:
        self._eval_seconds = time.time() - start
      self._evaluations += 1
      self.last_eval = results
      self._keep_if_best(results)
      if self.budget is not None and not last:
        self._estimate_final_evaluation()
    aux_problems = self._auxiliary_problems(results)
    keep = epoch_done and self.epoch in t.keep_epochs
    if (last or self.stopped_by_chunk or aux_problems or keep
        or (epoch_done and self.epoch % t.checkpoint_every == 0)):
      self.save(self.trainee.manager)
    self.history.append(dict(
        epoch=round(self.step / self.steps_per_epoch, 4), step=self.step,
        wall_time=round(self.elapsed(), 2), cpu_time=round(_cpu_time(), 1),
        learning_rate=lr,
        **{k: results.get(k) for k in HISTORY_FIELDS
           if k.endswith("_error") or k.startswith(("aux_", "validation_aux_",
                                                    "active_units_"))},
        **logs))
    if self.chief and t.progress != "none":
      print(f"epoch {self.step / self.steps_per_epoch:g}/{t.epochs}  {epoch_time:.1f}s  "
            f"loss {_fmt(logs.get('loss'), '.2f')}  "
            f"L {_fmt(logs.get('elbo_labeled'), '.2f')}  "
            f"U {_fmt(logs.get('elbo_unlabeled'), '.2f')}  "
            f"acc {_fmt(logs.get('accuracy'), '.3f')}  "
            f"val_err {_fmt(results.get('validation_error'))}  "
            f"test_err {_fmt(results.get('test_error'))}"
            + ("  [time budget reached]" if self.stopped_by_budget else "")
            + ("  [chunk over]" if self.stopped_by_chunk else ""), flush=True)
    if keep and self.chief:  # after the history row: a failed copy loses no row
      self.keep_epoch()
    if aux_problems:
      raise AuxDied(
          f"the auxiliary variable is dead or unused at epoch "
          f"{self.step / self.steps_per_epoch:g} on the validation split: "
          + "; ".join(aux_problems) + ". The run stopped: from here on it would train "
          f"M2 with a noisy extra input. Its history and checkpoint "
          f"({self.newest_checkpoint()}) are kept; change the recipe (docs/RESULTS.md, "
          f"section 2) rather than train on, or relaunch with a lower floor to go on.")

  def _auxiliary_problems(self, results: Dict[str, Any]) -> List[str]:
    """What the guard finds on the validation split: a dead or unused a (else [])."""
    t = self.config.train
    alive = results.get("validation_aux_alive_fraction")
    swap, err = results.get("validation_aux_swap_error"), results.get("validation_error")
    problems = []
    if t.aux_alive_floor and alive is not None and alive < t.aux_alive_floor:
      problems.append(f"only {100 * alive:.0f}% of q(a|x)'s units are alive "
                      f"(--aux_alive_floor={t.aux_alive_floor:g})")
    if (t.aux_swap_floor is not None and swap is not None and err is not None
        and 100 * (swap - err) < t.aux_swap_floor):
      problems.append(f"giving each image another image's a changes the error by "
                      f"{100 * (swap - err):+.2f} points (--aux_swap_floor="
                      f"{t.aux_swap_floor:g})")
    return problems

  def _classify_estimate(self) -> Optional[float]:
    """Seconds of the final classification, scaled from the last periodic evaluation."""
    m, t = self.config.model, self.config.train
    if self._eval_seconds is None:
      return None
    n_periodic = len(self.validation[1]) + (len(self.test[1]) if self.reads_test(False) else 0)
    n_final = len(self.validation[1]) + (len(self.test[1]) if self.reads_test(True) else 0)
    return (self._eval_seconds * m.eval_samples / t.eval_samples_periodic
            * n_final / max(1, n_periodic))

  def _ll_examples(self) -> int:
    t = self.config.train
    return min(t.ll_examples, len(self.test[1])) if self.reads_test(True) else 0

  def _ll_estimate(self) -> float:
    """Seconds of the final log-likelihood, from a timed probe (made once)."""
    t = self.config.train
    n_ll = self._ll_examples()
    if not n_ll:
      return 0.0
    if self._ll_rate is None:
      k, n = min(t.ll_samples, 100), min(20, n_ll)
      probe = self.test[0][:n]
      self.evaluator.log_likelihood(probe, samples=k, seed=t.seed, batch_size=n)  # compile
      start = time.time()
      self.evaluator.log_likelihood(probe, samples=k, seed=t.seed, batch_size=n)
      self._ll_rate = (time.time() - start) / (n * k)
    return self._ll_rate * n_ll * t.ll_samples

  def _estimate_final_evaluation(self) -> None:
    """Keeps the final evaluation's estimated time out of the training budget."""
    first = self.final_estimate is None
    self.final_estimate = (self._classify_estimate() or 0.0) + self._ll_estimate()
    if first:
      self.say(f"the final evaluation should take about {self.final_estimate / 60:.1f} "
               f"min; it is kept out of the {self.config.train.budget_minutes:g}-"
               f"minute budget")

  def final_evaluation(self) -> Dict[str, Any]:
    """metrics.json's numbers: errors, a-diagnostics, log-likelihood, best checkpoint."""
    m, t = self.config.model, self.config.train
    test_images, test_labels = self.test
    estimate = self._classify_estimate()
    n_test = len(test_labels) if self.reads_test(True) else 0
    self.say(f"final evaluation: the classifier with {m.eval_samples} samples of a on "
             f"{len(self.validation[1])} validation and {n_test} test images"
             + (f" (about {estimate:.0f} s)" if estimate else ""))
    start = time.time()
    final, kl_z, kl_a = self.evaluate(m.eval_samples, final=True)
    self.say(f"  done in {time.time() - start:.0f} s")
    n_ll = self._ll_examples()
    ll = None
    if n_ll:
      estimate = self._ll_estimate()
      self.say(f"test log-likelihood: importance-weighted bound, K = {t.ll_samples}, on "
               f"{n_ll} test images (about {estimate / 60:.1f} min)")
      ll = self.evaluator.log_likelihood(
          test_images[:n_ll], samples=t.ll_samples, seed=t.seed,
          progress=self._evaluation.progress_printer(self.say))
    metrics = {
        "test_error": final.get("test_error"),
        "validation_error": final.get("validation_error"),
        "eval_samples": m.eval_samples,
        "test_log_likelihood": None if ll is None else float(np.mean(ll)),
        "ll_samples": t.ll_samples,
        "ll_examples": n_ll,
        "test_elbo_labeled": final.get("test_elbo_labeled"),
        "test_elbo_unlabeled": final.get("test_elbo_unlabeled"),
        "active_units_z": final.get("active_units_z"),
        "active_units_a": final.get("active_units_a"),
        # The auxiliary variable (diagnostics.py), on the test images with
        # eval_samples samples; validation_aux_* on the validation split.
        **{k: final.get(k) for k in AUX_FIELDS},
        **{f"validation_{k}": final.get(f"validation_{k}") for k in AUX_FIELDS},
        "kl_per_unit_z": None if kl_z is None else [round(float(v), 5) for v in kl_z],
        "kl_per_unit_a": None if kl_a is None else [round(float(v), 5) for v in kl_a],
        "epochs": self.step / self.steps_per_epoch,
        "steps": self.step,
        "wall_time": self.elapsed(),
        # CPU seconds of the last launch (all threads). On a shared machine,
        # wall time also counts the moments the process got no CPU.
        "cpu_time_last_launch": _cpu_time(),
        "stopped_by_time_budget": self.stopped_by_budget,
        # Seconds of --time_budget_minutes kept back for this final evaluation
        # (training stops at the budget less this; None without a budget).
        "time_budget_kept_for_final_evaluation": (
            None if self.budget is None else round(self.final_estimate or 0.0, 2)),
        "model": m.model,
        "replicas": self.strategy.num_replicas_in_sync,
        "weights_sha256": weights_fingerprint(self.model),
    }
    if self.best is not None:
      metrics["best_validation"] = dict(self.best)
      metrics["best_validation"]["test_error"] = self._best_test_error(metrics)
    if self.chief:
      self.summaries.scalars("eval", {
          "final_test_error": metrics["test_error"],
          "final_validation_error": metrics["validation_error"],
          "final_test_log_likelihood": metrics["test_log_likelihood"]}, self.step)
      self.summaries.flush()
    return metrics

  def _best_test_error(self, metrics: Dict[str, Any]) -> Optional[float]:
    """Test error of the checkpoint chosen on validation error (reported, never chosen on)."""
    tf, d, m, t = self._tf, self.config.data, self.config.model, self.config.train
    if self.best["step"] == self.step or not self.reads_test(True):
      return metrics["test_error"]
    best_dir = self.run.best
    try:
      best_path = rundir.intact_checkpoint(best_dir, repair=False)
    except ConfigError as e:
      logger.warning("the best-validation checkpoint is not usable: %s", e)
      return None
    if not best_path:
      return None
    current = [v.numpy() for v in self.model.variables]
    tf.train.Checkpoint(model=self.model).restore(best_path).expect_partial()
    error = self.evaluator.error(*self.test, m.eval_samples, binarize=d.binarize_eval,
                                 seed=t.seed)
    for v, value in zip(self.model.variables, current):
      v.assign(value)
    return error


def _read_best(model_dir: str) -> Optional[Dict[str, Any]]:
  path = rundir.RunDir(model_dir).best_json
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      best = json.load(f)
    float(best["validation_error"]), int(best["step"])  # pylint: disable=expression-not-assigned
    return best
  except (OSError, ValueError, KeyError, TypeError):
    logger.warning("%s is unreadable; the best checkpoint is chosen anew from "
                   "here on", path)
    return None


# ----------------------------------------------------------------------------
# 8. Export
# ----------------------------------------------------------------------------


def export_model(model, config: config_lib.Config, metrics: Dict[str, Any]) -> str:
  return export.export_saved_model(
      model, config.train.export_dir, metadata=dict(
          test_error=metrics.get("test_error"), config=config.to_dict()))


# ----------------------------------------------------------------------------
# The protocol
# ----------------------------------------------------------------------------


def train_and_evaluate(config: config_lib.Config, model_dir: str,
                       flagfile_text: Optional[str] = None) -> Dict[str, Any]:
  """Trains (or resumes) the run in ``model_dir``; returns the final metrics.

  Nothing is written to ``model_dir`` before every check has passed (steps
  1-4); a failure is an ``errors.AdgmError`` with a one-line message.
  """
  config.validate()
  model_dir = os.path.abspath(os.path.expanduser(model_dir))
  devices.configure_devices(config.train)
  strategy = devices.make_strategy(config.train)                                  # 1
  chief = devices.is_chief(strategy)
  replicas = strategy.num_replicas_in_sync
  for name in ("labeled_batch_size", "unlabeled_batch_size"):
    if getattr(config.data, name) % replicas:
      raise ConfigError(f"--{name}={getattr(config.data, name)} does not divide "
                        f"over the {replicas} replicas.")
  check_directories(config, model_dir, chief)                             # 2
  existed = os.path.isdir(model_dir)
  lock = rundir.RunLock(model_dir) if chief else contextlib.nullcontext()
  recorded = False
  try:
    with lock:
      check_run_files(config, model_dir, chief)  # under the lock: no one else writes
      data = pipeline.build_data(config)                                           # 3
      trainee = build_or_restore(config, data, strategy, model_dir, chief)  # 4
      if chief:
        record_run(config, data, replicas, model_dir, flagfile_text)      # 5
      recorded = True
      trainer = Trainer(config, data, trainee, strategy, model_dir, chief)
      _log_start(config, data, trainer, strategy)
      try:
        trainer.train()                                                   # 6
        if trainer.stopped_by_chunk:
          return _end_of_chunk(config, trainer)
        metrics = trainer.final_evaluation()                              # 7
      except KeyboardInterrupt:
        raise Interrupted(f"interrupted at step {trainer.step}; "
                          f"{trainer.where_to_resume()}.") from None
      if chief:
        rundir.atomic_write(trainer.run.metrics,
                            json.dumps(metrics, indent=2, sort_keys=True))
        if config.train.export_dir:                                       # 8
          metrics["export_path"] = export_model(trainee.model, config, metrics)
          rundir.atomic_write(trainer.run.metrics,
                              json.dumps(metrics, indent=2, sort_keys=True))
      _log_end(config, metrics, chief, model_dir, trainer)
      return metrics
  finally:
    if not chief and "trainee" in locals():
      shutil.rmtree(trainee.write_dir, ignore_errors=True)
    if chief and not existed and not recorded:
      _remove_if_only_lock(model_dir)


def _end_of_chunk(config: config_lib.Config, trainer: Trainer) -> Dict[str, Any]:
  """A launch ended by ``--chunk_minutes``: checkpointed, no final evaluation."""
  t = config.train
  epochs = trainer.step / trainer.steps_per_epoch
  trainer.say(f"chunk over: {t.chunk_minutes:g} minutes of this launch used, at step "
              f"{trainer.step} (epoch {epochs:g} of {t.epochs}); checkpoint "
              f"{trainer.newest_checkpoint()}. Relaunch the same command to continue; "
              f"metrics.json is written when the run ends.")
  return {"chunk_over": True, "step": trainer.step, "epochs": epochs,
          "wall_time": trainer.elapsed()}


def _remove_if_only_lock(model_dir: str) -> None:
  """A launch that failed before writing leaves no empty run directory behind."""
  with contextlib.suppress(OSError):
    if set(os.listdir(model_dir)) <= {".lock"}:
      shutil.rmtree(model_dir)


def _log_start(config, data: pipeline.Data, trainer: Trainer, strategy) -> None:
  """What will happen: model, data, split, strategy, directory, stopping rule, export."""
  d, m, t = config.data, config.model, config.train
  split = data.split
  samples = f"{m.mc_samples} Monte Carlo sample{'s' if m.mc_samples > 1 else ''}"
  if m.iw_samples > 1:
    samples = f"the importance-weighted bound with K = {m.iw_samples}"
  state = ("new" if trainer.step == 0 else
           f"resuming at step {trainer.step}, epoch {trainer.step / trainer.steps_per_epoch:g}")
  if t.budget_minutes is not None:
    stops = (f"after {t.budget_minutes:g} minutes (time budget, the final "
             f"evaluation included) or {t.epochs} epochs, whichever comes first")
  else:
    stops = f"after {t.epochs} epochs"
  if t.chunk_minutes:
    stops += (f"; this launch trains for {t.chunk_minutes:g} minutes at most, then "
              f"checkpoints and exits (relaunch the same command to continue)")
  n_ll = min(t.ll_examples, len(split.arrays.test_labels))
  lines = [
      f"adgm_tf: {config_lib.MODEL_DESCRIPTIONS[m.model]}",
      f"  networks: a = {m.a_dim}, z = {m.z_dim}, hidden {'-'.join(map(str, m.hidden))} "
      f"{m.activation}, {'batch norm' if m.batch_norm else 'no batch norm'}, "
      f"{m.init} init; {samples}; alpha {data.alpha:.3g}",
      f"  data: {d.dataset}, {data.source.kind} ({data.source.detail})",
      f"  split: {split.num_labeled} labeled (label seed {d.label_seed}), "
      f"{split.num_unlabeled} unlabeled, {len(split.validation)} validation images; "
      f"{data.steps_per_epoch} steps of {d.labeled_batch_size} + "
      f"{d.unlabeled_batch_size} images per epoch",
      f"  strategy: {devices.strategy_name(strategy)}, {strategy.num_replicas_in_sync} replica(s)",
      f"  run directory: {trainer.model_dir} ({state})",
      f"  stops: {stops}",
  ]
  if t.keep_epochs:
    lines.append(f"  keeps: the checkpoints of epoch(s) {', '.join(map(str, t.keep_epochs))} "
                 f"and best/ of then, in {trainer.run.kept('<E>')}")
  lines += [
      f"  evaluation: every {t.eval_every} epoch(s) with {t.eval_samples_periodic} "
      f"samples of a; at the end with {m.eval_samples}"
      + (f", and the test log-likelihood (K = {t.ll_samples}, {n_ll} images)" if n_ll else ""),
      f"  export: {t.export_dir + '/<next version>' if t.export_dir else 'none (--export_dir)'}",
      f"  watch: tensorboard --logdir {trainer.model_dir}",
  ]
  trainer.say("\n".join(lines))
  if trainer.chief and trainer.step == 0:
    trainer.summaries.hparams(
        trainer._summaries_lib.flatten_config(config.to_dict()),  # pylint: disable=protected-access
        os.path.basename(trainer.model_dir))
  trainer.history.truncate_after(trainer.step)


def _percent(value) -> str:
  return "-" if value is None else f"{100 * value:.2f}%"


def _log_end(config, metrics: Dict[str, Any], chief: bool, model_dir: str,
             trainer: Trainer) -> None:
  """The result, and where everything is."""
  m, t = config.model, config.train
  if t.progress != "none":
    print(f"weights sha256 {metrics['weights_sha256']}", flush=True)
  if not (chief and t.progress != "none"):
    return
  lines = [f"final: test error {_percent(metrics['test_error'])} ({m.eval_samples} samples), "
           f"validation error {_percent(metrics['validation_error'])}; "
           f"{metrics['epochs']:g} epochs in {metrics['wall_time'] / 60:.1f} min"]
  if metrics.get("test_log_likelihood") is not None:
    lines[0] += (f"; test log-likelihood {metrics['test_log_likelihood']:.2f} nats "
                 f"(K = {t.ll_samples}, {metrics['ll_examples']} images)")
  if metrics.get("aux_mean_spread") is not None:
    swap = metrics.get("aux_swap_error")
    lines.append(
        f"  auxiliary variable: {100 * metrics['aux_alive_fraction']:.0f}% of q(a|x)'s "
        f"units alive, spread {metrics['aux_mean_spread']:.3g}"
        + ("" if swap is None else
           f", swap cost {100 * (swap - metrics['test_error']):+.2f} points")
        + ("" if metrics.get("aux_information") is None else
           f", I(y;a|x) {metrics['aux_information']:.3f} nats"))
  best = metrics.get("best_validation")
  lines += [f"  metrics: {rundir.RunDir(model_dir).metrics}",
            f"  checkpoints: {trainer.newest_checkpoint()}"
            + (f"; best by validation error (epoch {best['epoch']:g}): "
               f"{rundir.RunDir(model_dir).best}" if best else "")]
  if metrics.get("export_path"):
    lines += [f"  export: {metrics['export_path']}",
              f"  serve: tensorflow_model_server --model_name=adgm --model_base_path="
              f"{os.path.abspath(t.export_dir)} --rest_api_port=8501"]
  print("\n".join(lines), flush=True)
