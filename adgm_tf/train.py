"""Training and evaluation of one run: ``train_and_evaluate(config, model_dir)``.

One loop for every strategy: ``model.train_step`` runs through
``strategy.run`` inside a ``tf.function`` and the per-replica logs are
reduced with ``strategy.reduce``. ``MirroredStrategy`` over the local GPUs
(one CPU replica without them, or ``cpu_replicas`` logical CPUs),
``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (Keras 3 ``fit`` fails
under it, keras-team/keras#20585), ``OneDeviceStrategy`` on request.

What ``model_dir`` holds::

  config.json            the run's typed config and derived sizes (alpha, ...)
  flags.txt              the launcher's flags, a flagfile that replays the run
  checkpoints/           tf.train.CheckpointManager (model, optimizer, wall time)
  best/                  the checkpoint with the lowest validation error
  train/, eval/          TensorBoard events
  history.csv            one row per epoch (curves without TensorBoard)
  metrics.json           final results

Resuming: the optimizer's step counter is in the checkpoint and every random
draw (data order, binarization, sampling noise) is a pure function of the
seeds and the step, so a resumed run continues exactly as an uninterrupted
one. A checkpoint written by a different architecture is refused before
anything is restored.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

from adgm_tf import config as config_lib
from adgm_tf import data as data_lib

logger = logging.getLogger("adgm_tf")

AUX_FIELDS = ["aux_alive_fraction", "aux_mean_spread", "aux_swap_error",
              "aux_information", "aux_log_variance"]
HISTORY_FIELDS = (["epoch", "step", "wall_time", "cpu_time", "learning_rate", "loss",
                   "elbo_labeled", "elbo_unlabeled", "classification", "kl_z",
                   "kl_a", "kl_y", "log_px", "accuracy", "validation_error",
                   "test_error"] + AUX_FIELDS
                  + ["validation_" + k for k in AUX_FIELDS]
                  + ["active_units_z", "active_units_a"])

# Settings that must not change when a run is resumed: they define the
# experiment (its variables, its data and its random draws).
FIXED_ON_RESUME = {
    "model": ("model", "hidden", "z_dim", "a_dim", "batch_norm", "activation",
              "init"),
    "data": ("dataset", "num_labels", "label_seed", "validation_size",
             "max_unlabeled", "labeled_batch_size", "unlabeled_batch_size"),
    "train": ("seed",),
}


# ----------------------------------------------------------------------------
# Devices, strategy, optimizer
# ----------------------------------------------------------------------------


def configure_devices(train_config: config_lib.TrainConfig) -> None:
  """Logical CPU replicas and the mixed-precision policy; before any TF op."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if train_config.cpu_replicas > 1 and not tf.config.list_physical_devices("GPU"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * train_config.cpu_replicas
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != len(wanted):
      try:
        tf.config.set_logical_device_configuration(cpu, wanted)
      except RuntimeError as e:
        raise config_lib.ConfigError(
            f"--cpu_replicas={train_config.cpu_replicas}: TensorFlow's devices "
            f"were initialised before the launcher could split the CPU ({e}). "
            f"Start a fresh process.") from e
  keras.mixed_precision.set_global_policy(train_config.mixed_precision)


def _cluster_has_workers() -> bool:
  tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  cluster = tf_config.get("cluster", {})
  return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1


def make_strategy(train_config: config_lib.TrainConfig):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  kind = train_config.strategy
  if kind == "auto":
    kind = "multi_worker" if _cluster_has_workers() else "mirrored"
  if kind == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise config_lib.ConfigError(
          "--strategy=multi_worker needs the TF_CONFIG environment variable "
          "(cluster and task) on every worker; see BUILD.md.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if kind == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  gpus = tf.config.list_logical_devices("GPU")
  if gpus:
    return tf.distribute.MirroredStrategy()
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  # Reduction through one device: replica-context all-reduces go through a
  # merge call, so the synchronized batch norm's independent all-reduces
  # cannot be launched in different orders on different CPU replicas.
  return tf.distribute.MirroredStrategy(
      cpus[:max(1, train_config.cpu_replicas)],
      cross_device_ops=tf.distribute.ReductionToOneDevice())


def strategy_name(strategy) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return "MultiWorkerMirroredStrategy"
  return type(strategy).__name__


def is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _step_decay_class():
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @keras.saving.register_keras_serializable(package="adgm_tf")
  class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = max(initial * decay^floor(step / decay_steps), minimum)."""

    def __init__(self, initial, decay, decay_steps, minimum):
      self.initial, self.decay = float(initial), float(decay)
      self.decay_steps, self.minimum = int(decay_steps), float(minimum)

    def __call__(self, step):
      k = tf.floor(tf.cast(step, tf.float32) / self.decay_steps)
      return tf.maximum(self.initial * tf.pow(self.decay, k), self.minimum)

    def get_config(self):
      return dict(initial=self.initial, decay=self.decay,
                  decay_steps=self.decay_steps, minimum=self.minimum)

  return StepDecay


def learning_rate_schedule(train_config: config_lib.TrainConfig, steps_per_epoch: int):
  return _step_decay_class()(train_config.learning_rate, train_config.lr_decay,
                             train_config.lr_decay_every * steps_per_epoch,
                             train_config.lr_min)


def make_optimizer(train_config: config_lib.TrainConfig, steps_per_epoch: int):
  import keras  # pylint: disable=g-import-not-at-top
  from adgm_tf import optimizers  # pylint: disable=g-import-not-at-top
  optimizer = optimizers.Adam(
      learning_rate=learning_rate_schedule(train_config, steps_per_epoch),
      beta_1=train_config.beta1, beta_2=train_config.beta2)
  if train_config.mixed_precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def build_model(config: config_lib.Config, alpha: float, steps_per_epoch: int = 1):
  """The model a config describes (classification weight ``alpha``)."""
  from adgm_tf import models  # pylint: disable=g-import-not-at-top
  m, t = config.model, config.train
  return models.build_model(
      m.model, hidden=m.hidden, z_dim=m.z_dim, a_dim=m.a_dim,
      activation=m.activation, batch_norm=m.batch_norm,
      mc_samples=m.mc_samples, iw_samples=m.iw_samples,
      eval_samples=m.eval_samples, eval_bound_samples=m.mc_samples,
      alpha=alpha, clip_norm=t.clip_norm, clip_value=t.clip_value,
      weight_prior_scale=0.0, init=m.init, bn_momentum=m.bn_momentum,
      bn_statistics=m.bn_statistics, unlabeled_weighting=m.unlabeled_weighting,
      aux_warmup_steps=int(round(m.aux_warmup_epochs * steps_per_epoch)),
      seed=t.seed, jit_compile_gradients=t.jit_compile)


def create_model_and_optimizer(config: config_lib.Config, alpha: float,
                               steps_per_epoch: int):
  """Model and optimizer, compiled, with every variable created.

  Call inside ``strategy.scope()``: the optimizer's slots are created here,
  not lazily inside the first distributed step (where MirroredStrategy
  cannot initialise them).
  """
  model = build_model(config, alpha, steps_per_epoch)
  optimizer = make_optimizer(config.train, steps_per_epoch)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)
  return model, optimizer


# ----------------------------------------------------------------------------
# The run directory
# ----------------------------------------------------------------------------


def atomic_write(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def read_run_config(model_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(model_dir, "config.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_resumable(config: config_lib.Config, model_dir: str) -> None:
  """Refuses a model_dir written by a different experiment (nothing is touched)."""
  saved = read_run_config(model_dir)
  if saved is None:
    return
  old = saved["config"]
  new = config.to_dict()
  diffs = []
  for section, keys in FIXED_ON_RESUME.items():
    for key in keys:
      a, b = old[section].get(key), new[section].get(key)
      if isinstance(a, (list, tuple)):
        a = list(a)
      if isinstance(b, (list, tuple)):
        b = list(b)
      if a != b:
        diffs.append(f"--{key}: {a} in the saved run, {b} now")
  if diffs:
    raise config_lib.ConfigError(
        f"{model_dir} holds a run of a different experiment ("
        + "; ".join(diffs) + "). Its checkpoints are not restored and nothing "
        f"in it is changed. Use a new --model_dir, or relaunch with "
        f"--flagfile={os.path.join(model_dir, 'flags.txt')} to resume it.")


def check_checkpoint_matches(checkpoint, checkpoint_path: str) -> None:
  """Compares every variable of ``checkpoint`` with the saved one, before restoring.

  ``checkpoint`` is the tf.train.Checkpoint about to restore: written once
  to a scratch directory it gives the key and shape of every variable it
  expects, which must all be in ``checkpoint_path`` with the same shapes.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    probe = checkpoint.write(os.path.join(tmp, "probe"))
    expected = {k: s for k, s in tf.train.list_variables(probe)
                if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
  try:
    found = dict(tf.train.list_variables(checkpoint_path))
  except (tf.errors.OpError, ValueError) as e:
    raise config_lib.ConfigError(
        f"Cannot read checkpoint {checkpoint_path}: {e}. Remove the damaged "
        f"checkpoint (or its 'checkpoint' index file) to fall back to an "
        f"earlier one, or use a new --model_dir.") from e
  missing = [k for k in expected if k not in found]
  wrong = [(k, expected[k], found[k]) for k in expected
           if k in found and list(found[k]) != list(expected[k])]
  if missing or wrong:
    detail = (f"e.g. {wrong[0][0]} has shape {wrong[0][1]} in this model and "
              f"{wrong[0][2]} in the checkpoint" if wrong else
              f"e.g. {missing[0]} is not in the checkpoint")
    raise config_lib.ConfigError(
        f"Checkpoint {checkpoint_path} was written by a different model "
        f"architecture ({len(missing)} variables missing, {len(wrong)} with "
        f"other shapes; {detail}). Nothing was restored. Use a new --model_dir, "
        f"or the flags of the run that wrote it.")


def make_checkpoint(model, optimizer, wall_time=None):
  """The tf.train.Checkpoint of a run (its structure fixes the variable keys)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if wall_time is None:
    wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time")
  return tf.train.Checkpoint(model=model, optimizer=optimizer, wall_time=wall_time)


class History:
  """history.csv: one row per evaluated epoch; truncated on resume."""

  def __init__(self, path: str, enabled: bool):
    self.path, self.enabled = path, enabled

  def truncate_after(self, step: int) -> None:
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    self._write(rows)

  def _write(self, rows: List[Dict[str, Any]]) -> None:
    import io  # pylint: disable=g-import-not-at-top
    buf = io.StringIO()
    writer = csv.DictWriter(buf, HISTORY_FIELDS)
    writer.writeheader()
    for r in rows:
      writer.writerow({k: r.get(k, "") for k in HISTORY_FIELDS})
    atomic_write(self.path, buf.getvalue())

  def append(self, row: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    rows = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        rows = list(csv.DictReader(f))
    rows.append({k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_FIELDS})
    self._write(rows)


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


def distributed_epoch(strategy, split, data_config: config_lib.DataConfig,
                      seed: int, epoch: int, skip: int = 0):
  """Epoch ``epoch`` of training data, split over the strategy's replicas.

  Each worker's input pipeline yields its replicas' slices of every global
  batch in replica order (``data.train_dataset``), so replica r always sees
  rows [r B/R, (r+1) B/R) of the batch a single replica would see. ``skip``
  drops the steps already done when resuming mid-epoch.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def dataset_fn(ctx):
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    ids = range(ctx.input_pipeline_id * local, (ctx.input_pipeline_id + 1) * local)
    ds = data_lib.train_dataset(
        split, labeled_batch_size=data_config.labeled_batch_size,
        unlabeled_batch_size=data_config.unlabeled_batch_size, seed=seed,
        epochs=1, start_epoch=epoch, num_replicas=ctx.num_replicas_in_sync,
        replica_ids=ids)
    return ds.skip(skip * local)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(dataset_fn, options)


def make_train_step(strategy, model):
  """A tf.function running ``model.train_step`` on every replica; mean logs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @tf.function
  def train_step(iterator):
    per_replica = strategy.run(model.train_step, args=(next(iterator),))
    return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  return train_step


@dataclasses.dataclass
class _State:
  epoch: int
  step: int
  stop: bool = False
  stopped_by_budget: bool = False


def _fmt(value, spec=".4f"):
  return "-" if value is None else format(value, spec)


def _non_finite_error(error: Exception) -> Exception:
  """The in-graph non-finite-loss assertion as a one-line FloatingPointError.

  ``SemiSupervisedVAE._check_finite`` stops the step with an
  InvalidArgumentError (possibly wrapped by the distribution strategy) whose
  text holds ``adgm_tf: non-finite loss ... ]``; any other error is returned
  unchanged.
  """
  text = str(error)
  start = text.find("adgm_tf: non-finite loss")
  if start < 0:
    return error
  end = text.find("]", start)
  return FloatingPointError(text[start:end if end > 0 else None].strip())


def train_and_evaluate(config: config_lib.Config, model_dir: str,
                       flagfile_text: Optional[str] = None) -> Dict[str, Any]:
  """Trains (or resumes) the run in ``model_dir``; returns the final metrics.

  Order of work: validate the config, check ``model_dir`` against it,
  resolve and split the data, build the model and check the latest
  checkpoint against it; only then is anything written.
  """
  config.validate()
  model_dir = os.path.abspath(model_dir)
  check_resumable(config, model_dir)
  d, m, t = config.data, config.model, config.train

  configure_devices(t)
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from adgm_tf import bounds  # pylint: disable=g-import-not-at-top
  from adgm_tf import evaluation  # pylint: disable=g-import-not-at-top
  from adgm_tf import summaries as summaries_lib  # pylint: disable=g-import-not-at-top

  strategy = make_strategy(t)
  chief = is_chief(strategy)
  replicas = strategy.num_replicas_in_sync
  for name, value in (("labeled_batch_size", d.labeled_batch_size),
                      ("unlabeled_batch_size", d.unlabeled_batch_size)):
    if value % replicas:
      raise config_lib.ConfigError(
          f"--{name}={value} does not divide over the {replicas} replicas.")

  source = data_lib.resolve_source(d.dataset, idx_dir=d.idx_dir, data_dir=d.data_dir)
  arrays = data_lib.load_arrays(d.dataset, source.data_dir)
  split = data_lib.split_semi_supervised(
      arrays, num_labels=d.num_labels, label_seed=d.label_seed,
      validation_size=d.validation_size, max_unlabeled=d.max_unlabeled)
  steps_per_epoch = data_lib.steps_per_epoch(split, d.unlabeled_batch_size)
  alpha = bounds.classification_weight(split.num_unlabeled, split.num_labeled,
                                       m.alpha_beta)
  derived = dict(alpha=alpha, num_labeled=split.num_labeled,
                 num_unlabeled=split.num_unlabeled,
                 num_validation=len(split.validation),
                 steps_per_epoch=steps_per_epoch, replicas=replicas,
                 data_source=source.describe())

  with strategy.scope():
    keras.utils.set_random_seed(t.seed)
    model, optimizer = create_model_and_optimizer(config, alpha, steps_per_epoch)
    if m.weight_prior:
      model.weight_prior_scale = 1.0 / split.num_unlabeled
    wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time")
    checkpoint = make_checkpoint(model, optimizer, wall_time)

  # Every worker saves (saving may involve collectives); only the chief's
  # files are kept (the tf.distribute multi-worker checkpointing pattern).
  write_dir = model_dir if chief else tempfile.mkdtemp(prefix="adgm_tf_worker_")
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"),
                                       max_to_keep=t.keep_checkpoints)
  latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
  if latest:
    check_checkpoint_matches(checkpoint, latest)
    checkpoint.restore(latest).assert_existing_objects_matched()
    logger.info("resumed from %s (step %d)", latest, int(optimizer.iterations.numpy()))
  elif os.path.isdir(os.path.join(model_dir, "checkpoints")) and os.listdir(
      os.path.join(model_dir, "checkpoints")):
    raise config_lib.ConfigError(
        f"{model_dir}/checkpoints holds files but no readable checkpoint index; "
        f"refusing to start over on top of them. Move them away or use a new "
        f"--model_dir.")

  # -- From here on, the run directory is written. ---------------------------
  if chief:
    os.makedirs(model_dir, exist_ok=True)
    atomic_write(os.path.join(model_dir, "config.json"), json.dumps(
        dict(config=config.to_dict(), derived=derived), indent=2, sort_keys=True,
        default=str))
    if flagfile_text is not None:
      flags_path = os.path.join(model_dir, "flags.txt")
      if os.path.exists(flags_path):
        with open(flags_path) as f:
          previous = f.read()
        if previous != flagfile_text:
          n = len([p for p in os.listdir(model_dir) if p.startswith("flags.")])
          atomic_write(os.path.join(model_dir, f"flags.{n}.txt"), previous)
      atomic_write(flags_path, flagfile_text)

  summaries = summaries_lib.Summaries(model_dir if chief else None)
  history = History(os.path.join(model_dir, "history.csv"), chief)
  start_step = int(optimizer.iterations.numpy())
  history.truncate_after(start_step)
  if chief and start_step == 0:
    summaries.hparams(summaries_lib.flatten_config(config.to_dict()),
                      os.path.basename(model_dir))
  logger.info("labeled %d, unlabeled %d, validation %d; alpha %.3g; %d steps per "
              "epoch; %d replica(s) (%s)", split.num_labeled, split.num_unlabeled,
              len(split.validation), alpha, steps_per_epoch, replicas,
              strategy_name(strategy))

  evaluator = evaluation.Evaluator(model, d.eval_batch_size)
  test_images, test_labels = evaluation.split_images(split, "test")
  val_images, val_labels = evaluation.split_images(split, "validation")
  best_manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(write_dir, "best"), max_to_keep=1)
  best = _read_best(model_dir)

  train_step = make_train_step(strategy, model)

  def evaluate(state: _State, samples: int, final: bool) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    bound_examples = None if final else 1000
    for which, (images, labels) in (("validation", (val_images, val_labels)),
                                    ("test", (test_images, test_labels))):
      if len(labels) == 0 or (which == "test" and not final and not t.periodic_test):
        continue
      c = evaluator.classify(images, labels, samples, binarize=d.binarize_eval,
                             seed=t.seed)
      results[f"{which}_error"] = c.pop("error")
      # The a-diagnostics of the test set are the top-level aux_* numbers.
      results.update({(k if which == "test" else f"{which}_{k}"): v
                      for k, v in c.items()})
      sub = slice(None, bound_examples)
      b = evaluator.bounds(images[sub], labels[sub], max(1, m.mc_samples),
                           binarize=d.binarize_eval, seed=t.seed)
      results.update({f"{which}_{k}": v for k, v in b.items()})
    # Periodic active units on the validation split when there is one.
    kl_images = val_images if len(val_labels) and not final else test_images
    kl_z, kl_a = evaluator.kl_per_unit(kl_images[:1000])
    results["active_units_z"] = evaluation.active_units(kl_z)
    results["active_units_a"] = evaluation.active_units(kl_a)
    if chief:
      step = state.step
      summaries.scalars("eval", {k: v for k, v in results.items()
                                 if isinstance(v, (int, float))
                                 and not k.startswith(("aux_", "validation_aux_"))},
                        step)
      summaries.auxiliary({k: v for k, v in results.items()
                           if k.startswith(("aux_", "validation_aux_"))}, step)
      summaries.histogram("kl_per_unit/z", kl_z, step)
      summaries.histogram("kl_per_unit/a", kl_a, step)
      grid = evaluation.image_grid(evaluation.class_conditional_samples(model, 10, t.seed))
      summaries.image("samples/class_conditional", grid, step)
      summaries.flush()
    results["_kl"] = (kl_z, kl_a)
    return results

  state = _State(epoch=start_step // steps_per_epoch, step=start_step)
  budget = None if t.time_budget_minutes is None else 60.0 * t.time_budget_minutes
  clock0, wall0 = time.time(), float(wall_time.numpy())

  def elapsed() -> float:
    return wall0 + time.time() - clock0

  def cpu_time() -> float:
    """CPU seconds of this process (all threads) since it started."""
    t = os.times()
    return t.user + t.system

  def save(manager_, force: bool = False):
    wall_time.assign(elapsed())
    manager_.save(checkpoint_number=state.step, check_interval=not force)

  last_logs: Dict[str, float] = {}
  eval_results: Dict[str, Any] = {}
  if state.step >= t.epochs * steps_per_epoch:
    logger.info("already trained for %d epochs; evaluating", t.epochs)
  while state.epoch < t.epochs and not state.stop:
    epoch_start, skip = time.time(), state.step - state.epoch * steps_per_epoch
    for tracker in model.metrics:
      tracker.reset_state()
    iterator = iter(distributed_epoch(strategy, split, d, t.seed, state.epoch, skip))
    progbar = (keras.utils.Progbar(steps_per_epoch, verbose=t.verbose,
                                   stateful_metrics=["loss", "accuracy", "elbo_unlabeled"])
               if chief and t.verbose == 1 else None)
    if progbar is not None:
      print(f"Epoch {state.epoch + 1}/{t.epochs}", flush=True)
      if skip:
        progbar.update(skip)
    for _ in range(skip, steps_per_epoch):
      try:
        logs = {k: float(v) for k, v in train_step(iterator).items()}
      except tf.errors.OpError as e:
        stop = _non_finite_error(e)
        if stop is e:
          raise
        raise stop from None
      state.step += 1
      bad = [k for k, v in logs.items() if not math.isfinite(v)]
      if bad:  # also catches XLA, where the in-graph assertion compiles away
        raise FloatingPointError(
            f"non-finite training metrics at step {state.step}: {', '.join(bad)}. "
            f"Lower --learning_rate or keep --clip_norm on; the last good "
            f"checkpoint is in {model_dir}/checkpoints.")
      last_logs = logs
      if progbar is not None:
        progbar.update(state.step - state.epoch * steps_per_epoch, [
            ("loss", logs["loss"]), ("accuracy", logs["accuracy"]),
            ("elbo_unlabeled", logs["elbo_unlabeled"])])
      if chief and state.step % t.summary_every == 0:
        summaries.scalars("train", dict(logs, learning_rate=float(
            optimizer.learning_rate)), state.step)
      if budget is not None and elapsed() >= budget:
        state.stop = state.stopped_by_budget = True
        break
    epoch_done = state.step % steps_per_epoch == 0
    if epoch_done:
      state.epoch += 1
    epoch_time = time.time() - epoch_start
    lr = float(optimizer.learning_rate)
    if chief:
      summaries.scalars("train", dict(last_logs, learning_rate=lr,
                                      epoch_seconds=epoch_time), state.step,
                        prefix="epoch/")
    last_epoch = state.epoch >= t.epochs or state.stop
    evaluated = epoch_done and (state.epoch % t.eval_every == 0 or last_epoch)
    eval_results = {}
    if evaluated or state.stop:
      eval_results = evaluate(state, t.eval_samples_periodic, final=False)
      val_err = eval_results.get("validation_error")
      if val_err is not None and (best is None or val_err < best["validation_error"]):
        best = dict(validation_error=val_err, step=state.step,
                    epoch=state.step / steps_per_epoch)
        save(best_manager, force=True)
        if chief:
          atomic_write(os.path.join(model_dir, "best", "best.json"), json.dumps(best))
    if state.stop or last_epoch or (epoch_done and state.epoch % t.checkpoint_every == 0):
      save(manager, force=True)
    history.append(dict(
        epoch=round(state.step / steps_per_epoch, 4), step=state.step,
        wall_time=round(elapsed(), 2), cpu_time=round(cpu_time(), 1), learning_rate=lr,
        **{k: eval_results.get(k) for k in HISTORY_FIELDS
           if k.endswith("_error") or k.startswith(("aux_", "validation_aux_",
                                                    "active_units_"))},
        **last_logs))
    if chief and t.verbose:
      print(f"epoch {state.step / steps_per_epoch:g}/{t.epochs}  {epoch_time:.1f}s  "
            f"loss {_fmt(last_logs.get('loss'), '.2f')}  "
            f"L {_fmt(last_logs.get('elbo_labeled'), '.2f')}  "
            f"U {_fmt(last_logs.get('elbo_unlabeled'), '.2f')}  "
            f"acc {_fmt(last_logs.get('accuracy'), '.3f')}  "
            f"val_err {_fmt(eval_results.get('validation_error'))}  "
            f"test_err {_fmt(eval_results.get('test_error'))}"
            + ("  [time budget reached]" if state.stopped_by_budget else ""),
            flush=True)

  # -- Final evaluation --------------------------------------------------------
  final = evaluate(state, m.eval_samples, final=True)
  kl_z, kl_a = final.pop("_kl")
  ll = None
  n_ll = min(t.ll_examples, len(test_labels))
  if n_ll:
    ll = evaluator.log_likelihood(test_images[:n_ll], samples=t.ll_samples, seed=t.seed)
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
      "epochs": state.step / steps_per_epoch,
      "steps": state.step,
      "wall_time": elapsed(),
      # CPU seconds of the last launch (all threads). On a shared machine,
      # wall time also counts the moments the process got no CPU.
      "cpu_time_last_launch": cpu_time(),
      "stopped_by_time_budget": state.stopped_by_budget,
      "model": m.model,
      "replicas": replicas,
      "weights_sha256": weights_fingerprint(model),
  }
  if best is not None:
    metrics["best_validation"] = dict(best)
    best_path = tf.train.latest_checkpoint(os.path.join(model_dir, "best"))
    if best_path and best["step"] != state.step:
      current = [v.numpy() for v in model.variables]
      tf.train.Checkpoint(model=model).restore(best_path).expect_partial()
      metrics["best_validation"]["test_error"] = evaluator.error(
          test_images, test_labels, m.eval_samples, binarize=d.binarize_eval,
          seed=t.seed)
      for v, value in zip(model.variables, current):
        v.assign(value)
    else:
      metrics["best_validation"]["test_error"] = metrics["test_error"]
  if not chief:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(write_dir, ignore_errors=True)
  if chief:
    summaries.scalars("eval", {"final/test_error": metrics["test_error"],
                               "final/test_log_likelihood": metrics["test_log_likelihood"]},
                      state.step)
    summaries.flush()
    atomic_write(os.path.join(model_dir, "metrics.json"),
                 json.dumps(metrics, indent=2, sort_keys=True))
    if t.export_dir:
      path = _export(model, t.export_dir, metrics, config)
      metrics["export_path"] = path
      atomic_write(os.path.join(model_dir, "metrics.json"),
                   json.dumps(metrics, indent=2, sort_keys=True))
    if t.verbose:
      print(f"final: test error {_fmt(metrics['test_error'])} "
            f"({m.eval_samples} samples), validation error "
            f"{_fmt(metrics['validation_error'])}, test log-likelihood "
            f"{_fmt(metrics['test_log_likelihood'], '.2f')} nats (K={t.ll_samples}, "
            f"{n_ll} images), {metrics['epochs']:g} epochs, "
            f"{metrics['wall_time']:.0f}s", flush=True)
  if t.verbose:
    print(f"weights sha256 {metrics['weights_sha256']}", flush=True)
  return metrics


def weights_fingerprint(model) -> str:
  """SHA-256 of every model variable's float32 bytes, in a fixed order."""
  import hashlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for v in sorted(model.variables, key=lambda v: v.path):
    h.update(v.path.encode())
    h.update(np.ascontiguousarray(v.numpy(), np.float32).tobytes())
  return h.hexdigest()


def _read_best(model_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(model_dir, "best", "best.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return None


def _export(model, export_dir: str, metrics: Dict[str, Any],
            config: config_lib.Config) -> str:
  from adgm_tf import export  # pylint: disable=g-import-not-at-top
  return export.export_saved_model(
      model, export_dir, metadata=dict(
          test_error=metrics.get("test_error"), config=config.to_dict()))


def load_run(model_dir: str, checkpoint: Optional[str] = None):
  """Rebuilds a run's model from ``config.json`` and restores a checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  saved = read_run_config(model_dir)
  if saved is None:
    raise config_lib.ConfigError(
        f"{model_dir} has no config.json: it is not an adgm_tf run directory.")
  config = config_lib.Config.from_dict(saved["config"])
  model, optimizer = create_model_and_optimizer(
      config, saved["derived"]["alpha"], saved["derived"]["steps_per_epoch"])
  ckpt = make_checkpoint(model, optimizer)
  path = checkpoint or tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
  if not path:
    raise config_lib.ConfigError(f"{model_dir}/checkpoints holds no checkpoint.")
  check_checkpoint_matches(ckpt, path)
  ckpt.restore(path).assert_existing_objects_matched()
  return config, model, path


def export_from_checkpoint(model_dir: str, export_dir: str, version=None,
                           checkpoint=None, samples=None) -> str:
  """``python -m adgm_tf.export``: a SavedModel from any checkpoint of a run."""
  from adgm_tf import export  # pylint: disable=g-import-not-at-top
  config, model, path = load_run(model_dir, checkpoint)
  return export.export_saved_model(
      model, export_dir, version=version, samples=samples,
      metadata=dict(checkpoint=path, config=config.to_dict()))
