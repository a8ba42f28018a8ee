"""The run directory: what it holds, who may write it, and restoring a model from it.

What ``model_dir`` holds::

  .lock                  held (flock) by the one process training this run
  config.json            the run's typed config and derived sizes (alpha, ...)
  flags.txt              the launcher's flags, a flagfile that replays the run
  checkpoints/           tf.train.CheckpointManager (model, optimizer, wall time)
  best/                  the checkpoint with the lowest validation error
  kept/epoch-<E>/        with --keep_epochs: the checkpoint of epoch E (last/) and
                         best/ as it was then (best/), kept for good; kept.json
  train/, eval/          TensorBoard events
  history.csv            one row per evaluated epoch (curves without TensorBoard)
  metrics.json           final results
  launch.log             each launch's output, when the experiment runner launched it

Rules kept here (the training loop and the exporter both rely on them):

* **Check first, write later.** :func:`check_resumable`, :class:`History` and
  :func:`check_writable` read and check every file a launch will rely on
  (config.json, history.csv) and every directory it will write, before
  anything is written (``train.check_run_files`` and ``check_directories``
  call them first).
* **One writer.** :class:`RunLock` holds an ``flock`` on ``.lock`` for the
  whole run; the OS releases it when the process dies (kill -9 included), so a
  stale lock never blocks a relaunch.
* **Verified checkpoints.** :func:`intact_checkpoint` reads every tensor of a
  checkpoint (each has a CRC) before it is used; a damaged newest checkpoint
  is renamed ``*.damaged-N`` (never deleted) and the newest intact one is used
  instead, with a message that says which and why.
* **One home for "restore a run"**: :func:`load_run`, used by export and the
  figures; it never imports the training loop.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

from adgm_tf import builders
from adgm_tf import config as config_lib
from adgm_tf.errors import CheckpointError, ConfigError, RunLockedError

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
# Files
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


def check_writable(path: str, flag: str) -> None:
  """Raises ConfigError unless ``path`` is, or can be created as, a writable directory.

  Probes the nearest existing directory with a temporary subdirectory that is
  removed at once (``os.access`` says yes to root on a read-only file system).
  """
  path = os.path.abspath(os.path.expanduser(path))
  probe = path
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not os.path.isdir(probe):
    raise ConfigError(f"--{flag}={path}: {probe} is a file, not a directory. "
                      f"Choose another path.")
  try:
    os.rmdir(tempfile.mkdtemp(prefix=".adgm_tf-probe-", dir=probe))
  except OSError as e:
    action = "write to" if probe == path else f"create {path} in"
    raise ConfigError(f"--{flag}={path}: cannot {action} {probe} ({e.strerror}). "
                      f"Choose a directory you can write to.") from None


def read_run_config(model_dir: str) -> Optional[Dict[str, Any]]:
  """config.json of a run, checked; None when there is none."""
  path = os.path.join(model_dir, "config.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
    config_lib.Config.from_dict(saved["config"])
    saved["derived"]["alpha"], saved["derived"]["steps_per_epoch"]  # pylint: disable=pointless-statement
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(
        f"{path} is damaged or not an adgm_tf config ({type(e).__name__}: "
        f"{str(e)[:120]}). Nothing was changed. Move it away and relaunch with "
        f"--flagfile={os.path.join(model_dir, 'flags.txt')}, which writes it "
        f"again (the checkpoints are checked against the flags).") from None
  return saved


def check_resumable(config: config_lib.Config, model_dir: str,
                    saved: Optional[Dict[str, Any]]) -> None:
  """Refuses a model_dir written by a different experiment (nothing is touched)."""
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
    raise ConfigError(
        f"{model_dir} holds a run of a different experiment ("
        + "; ".join(diffs) + "). Its checkpoints are not restored and nothing "
        f"in it is changed. Use a new --model_dir, or relaunch with "
        f"--flagfile={os.path.join(model_dir, 'flags.txt')} to resume it.")


class History:
  """history.csv: one row per evaluated epoch; truncated on resume."""

  def __init__(self, path: str, enabled: bool, fields: Sequence[str] = HISTORY_FIELDS):
    self.path, self.enabled, self.fields = path, enabled, list(fields)

  def read(self) -> List[Dict[str, str]]:
    """The rows, checked: every value a number or empty, steps increasing."""
    if not os.path.exists(self.path):
      return []
    with open(self.path, newline="") as f:
      text = f.read()
    rows = []
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text))
    last_step = -1.0
    for row in reader:
      line = reader.line_num
      bad = [k for k, v in row.items()
             if k is None or v is None or (v != "" and not _is_number(v))]
      step = row.get("step")
      ok = not bad and step and _is_number(step) and float(step) >= last_step
      if not ok:
        shown = lines[line - 1][:60] if 0 < line <= len(lines) else ""
        raise ConfigError(
            f"{self.path}, line {line} ({shown!r}), is not a row of this run's "
            f"history. Nothing was changed. Repair or delete that line (the "
            f"checkpoints do not depend on it), or use a new --model_dir.")
      last_step = float(step)
      rows.append(row)
    return rows

  def truncate_after(self, step: int) -> None:
    if not self.enabled or not os.path.exists(self.path):
      return
    self._write([r for r in self.read() if float(r["step"]) <= step])

  def _write(self, rows: List[Dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, self.fields)
    writer.writeheader()
    for r in rows:
      writer.writerow({k: r.get(k, "") for k in self.fields})
    atomic_write(self.path, buf.getvalue())

  def append(self, row: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    rows = self.read()
    rows.append({k: ("" if row.get(k) is None else row.get(k)) for k in self.fields})
    self._write(rows)


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


# ----------------------------------------------------------------------------
# The lock
# ----------------------------------------------------------------------------


class RunDir:
  """Every path of a run directory (the layout in this module's docstring):
  no other module joins names under ``model_dir``."""

  def __init__(self, root: str):
    self.root = os.path.abspath(os.path.expanduser(root))

  def _join(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  @property
  def config(self) -> str:
    return self._join("config.json")

  @property
  def flags(self) -> str:
    return self._join("flags.txt")

  def older_flags(self, n: int) -> str:
    """Where the n-th replaced flags.txt is kept."""
    return self._join(f"flags.{n}.txt")

  @property
  def history(self) -> str:
    return self._join("history.csv")

  @property
  def metrics(self) -> str:
    return self._join("metrics.json")

  @property
  def launch_log(self) -> str:
    """The output of each launch the experiment runner made (adgm_tf.experiments)."""
    return self._join("launch.log")

  @property
  def checkpoints(self) -> str:
    return self._join("checkpoints")

  @property
  def best(self) -> str:
    return self._join("best")

  @property
  def best_json(self) -> str:
    """The epoch, step and errors of the checkpoint in best/."""
    return self._join("best", "best.json")

  def kept(self, epoch: int) -> str:
    """Where --keep_epochs keeps epoch ``epoch``'s checkpoint and best/ of then."""
    return self._join("kept", f"epoch-{epoch}")

  def events(self, which: str) -> str:
    """TensorBoard event directory: "train" or "eval"."""
    return self._join(which)


class RunLock:
  """An exclusive ``flock`` on ``<model_dir>/.lock`` for the life of a run.

  The kernel drops the lock when the process ends, however it ends, so a
  killed run never leaves a stale lock. The file holds the owner's pid, host
  and start time, for the message a second launch gets.
  """

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    self.path = os.path.join(model_dir, ".lock")
    self._fd = None

  def acquire(self) -> "RunLock":
    import fcntl  # pylint: disable=g-import-not-at-top
    os.makedirs(self.model_dir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
      os.close(fd)
      raise RunLockedError(
          f"{self.model_dir} is in use by another run ({holder}). Wait for it "
          f"to finish or stop it, or use another --model_dir; two runs in one "
          f"directory would mix their checkpoints and history.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f"process {os.getpid()} on {socket.gethostname()}, started "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n").encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      import fcntl  # pylint: disable=g-import-not-at-top
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------

_CKPT = re.compile(r"^(?P<prefix>.*-(?P<step>\d+))\.index$")


def checkpoint_problem(prefix: str) -> Optional[str]:
  """Why the checkpoint at ``prefix`` cannot be restored, or None if it is intact.

  Checks that its index and every data shard exist, then reads every tensor
  (the checkpoint format keeps a CRC32C of each, so a flipped bit or a
  truncated shard is caught here, not in the middle of a restore).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not os.path.exists(prefix + ".index"):
    return "its .index file is missing"
  shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
  if not shards:
    return "its .data file is missing"
  total = int(shards[0].rsplit("-of-", 1)[1])
  if len(shards) != total:
    return f"{total - len(shards)} of its {total} .data files are missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
    text = (getattr(e, "message", None) or str(e)).strip().splitlines()[0][:160]
    return f"it cannot be read ({text})"
  return None


def _set_aside(prefix: str) -> List[str]:
  moved = []
  for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
    if ".damaged-" in path:
      continue
    n = 0
    while os.path.exists(f"{path}.damaged-{n}"):
      n += 1
    os.rename(path, f"{path}.damaged-{n}")
    moved.append(f"{path}.damaged-{n}")
  return moved


def _checkpoint_files(prefix: str) -> List[str]:
  """The index and data shards of the checkpoint at ``prefix`` (no set-aside copies)."""
  return sorted(p for p in glob.glob(glob.escape(prefix) + ".*")
                if p == prefix + ".index" or re.fullmatch(
                    re.escape(prefix) + r"\.data-\d+-of-\d+", p))


def write_checkpoint_state(directory: str, newest: str, names: Sequence[str]) -> None:
  """The state file CheckpointManager reads (a text proto): the newest
  checkpoint and every one listed, by basename, oldest first."""
  atomic_write(os.path.join(directory, "checkpoint"),
               f'model_checkpoint_path: "{newest}"\n'
               + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names))


def copy_checkpoint(prefix: str, directory: str) -> str:
  """Copies the checkpoint at ``prefix`` into ``directory`` (created), with a
  state file naming it; returns its prefix there. The copy is read back in
  full (:func:`checkpoint_problem`) before it counts."""
  os.makedirs(directory, exist_ok=True)
  for path in _checkpoint_files(prefix):
    shutil.copyfile(path, os.path.join(directory, os.path.basename(path)))
  name = os.path.basename(prefix)
  write_checkpoint_state(directory, name, [name])
  copy = os.path.join(directory, name)
  problem = checkpoint_problem(copy)
  if problem:
    raise OSError(f"the copy of {prefix} in {directory} does not read back: {problem}")
  return copy


def keep_epoch(run: "RunDir", epoch: int, step: int, last_prefix: str) -> str:
  """``run.kept(epoch)``: the checkpoint of that epoch (last/) and best/ as it is
  now (best/, with its best.json), with kept.json saying what each is.

  Written to ``<dir>.partial`` and renamed when complete, so a kept epoch is
  whole or absent; an existing one is never changed. Returns its directory.
  """
  final = run.kept(epoch)
  if os.path.isdir(final):
    return final
  partial = final + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  last = copy_checkpoint(last_prefix, os.path.join(partial, "last"))
  info: Dict[str, Any] = dict(epoch=epoch, step=step,
                              last=os.path.relpath(last, partial), best=None)
  best = intact_checkpoint(run.best, repair=False) if os.path.isdir(run.best) else None
  if best is not None:
    copy = copy_checkpoint(best, os.path.join(partial, "best"))
    info["best"] = os.path.relpath(copy, partial)
    if os.path.exists(run.best_json):
      shutil.copyfile(run.best_json, os.path.join(partial, "best", "best.json"))
      with open(run.best_json) as f:
        info["best_of_then"] = json.load(f)
  atomic_write(os.path.join(partial, "kept.json"), json.dumps(info, indent=2))
  os.replace(partial, final)
  return final


def remove_temporaries(directory: str) -> List[str]:
  """Removes what an interrupted checkpoint write leaves (``*_temp*``); returns it."""
  removed = []
  for path in glob.glob(os.path.join(glob.escape(directory), "*_temp*")):
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      with contextlib.suppress(OSError):
        os.remove(path)
    removed.append(path)
  return removed


def checkpoint_prefixes(directory: str) -> List[Tuple[int, str]]:
  """``(step, prefix)`` of every checkpoint index in ``directory``, newest first."""
  found = []
  for path in glob.glob(os.path.join(glob.escape(directory), "*.index")):
    match = _CKPT.match(path)
    if match:
      found.append((int(match["step"]), match["prefix"]))
  return sorted(found, reverse=True)


def intact_checkpoint(directory: str, repair: bool = True,
                      advice: str = "Use a new --model_dir, or restore the files "
                                    "from a backup.") -> Optional[str]:
  """The newest intact checkpoint in ``directory``; None if it holds none.

  With ``repair`` (the process holding the run's lock), damaged newer
  checkpoints are renamed ``*.damaged-N`` (never deleted), the checkpoint
  state file is rewritten to list the intact ones, and leftovers of
  interrupted writes are removed; without it (export, other workers) nothing
  is changed and damaged ones are only skipped. Either way a warning names
  each damaged checkpoint and why. Raises CheckpointError when checkpoints
  exist but none is intact; its message ends with ``advice``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(directory):
    return None
  if repair:
    for path in remove_temporaries(directory):
      logger.warning("removed %s, left by an interrupted checkpoint write", path)
  candidates = checkpoint_prefixes(directory)
  if not candidates:
    return None
  damaged = []
  for _, prefix in candidates:
    problem = checkpoint_problem(prefix)
    if problem is None:
      break
    damaged.append((prefix, problem))
  else:
    raise CheckpointError(
        f"{directory} holds {len(candidates)} checkpoint(s) and none is intact "
        f"(newest: {candidates[0][1]}: {damaged[0][1]}). Nothing was changed. "
        + advice)
  for bad, problem in damaged:
    if repair:
      kept = ", ".join(os.path.basename(m) for m in _set_aside(bad))
      logger.warning("checkpoint %s is damaged (%s); its files are kept as %s. "
                     "Using %s instead.", bad, problem, kept, prefix)
    else:
      logger.warning("checkpoint %s is damaged (%s); using %s instead.",
                     bad, problem, prefix)
  if repair and (damaged or tf.train.latest_checkpoint(directory) != prefix):
    # The state file, listing the intact ones.
    intact = [os.path.basename(p) for _, p in candidates if p not in dict(damaged)]
    write_checkpoint_state(directory, os.path.basename(prefix), list(reversed(intact)))
  return prefix


def check_checkpoint_matches(checkpoint, checkpoint_path: str) -> None:
  """Compares every variable of ``checkpoint`` with the saved one, before restoring.

  ``checkpoint`` is the tf.train.Checkpoint about to restore: written once
  to a scratch directory it gives the key and shape of every variable it
  expects, which must all be in ``checkpoint_path`` with the same shapes.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Written to TF's in-memory file system: a full disk cannot stop the check.
  scratch = f"ram://adgm_tf_probe_{uuid.uuid4().hex}"
  try:
    probe = checkpoint.write(f"{scratch}/probe")
    reader = tf.compat.v1.train.NewCheckpointReader(probe)
    expected = {k: s for k, s in reader.get_variable_to_shape_map().items()
                if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
  finally:
    with contextlib.suppress(Exception):
      tf.io.gfile.rmtree(scratch)
  try:
    found = dict(tf.train.list_variables(checkpoint_path))
  except (tf.errors.OpError, ValueError) as e:
    raise CheckpointError(
        f"cannot read checkpoint {checkpoint_path}: {str(e).splitlines()[0][:200]}. "
        f"Give an intact checkpoint, or leave it out to use the newest intact one.") from None
  missing = [k for k in expected if k not in found]
  wrong = [(k, expected[k], found[k]) for k in expected
           if k in found and list(found[k]) != list(expected[k])]
  if missing or wrong:
    detail = (f"e.g. {wrong[0][0]} has shape {wrong[0][1]} in this model and "
              f"{wrong[0][2]} in the checkpoint" if wrong else
              f"e.g. {missing[0]} is not in the checkpoint")
    raise CheckpointError(
        f"Checkpoint {checkpoint_path} was written by a different model "
        f"architecture ({len(missing)} variables missing, {len(wrong)} with "
        f"other shapes; {detail}). Nothing was restored. Use a new --model_dir, "
        f"or the flags of the run that wrote it.")


def read_run(model_dir: str) -> Tuple[str, Dict[str, Any]]:
  """``(absolute model_dir, saved config.json)`` of an existing run, or a ConfigError.

  Cheap (imports no TensorFlow): command lines call it before loading a model.
  """
  model_dir = os.path.abspath(os.path.expanduser(model_dir))
  if not os.path.isdir(model_dir):
    raise ConfigError(f"--model_dir={model_dir} does not exist. Check the path: "
                      f"it is the directory a training run wrote (it holds "
                      f"config.json and checkpoints/).")
  saved = read_run_config(model_dir)
  if saved is None:
    raise ConfigError(
        f"{model_dir} has no config.json, so it is not a finished or running "
        f"adgm_tf run directory. Point --model_dir at the directory given to "
        f"launch.py.")
  return model_dir, saved


def _in_run(model_dir: str, checkpoint: Optional[str]) -> Optional[str]:
  """A relative ``checkpoint`` that names nothing from here, read inside the run:
  ``model_dir/<it>`` (e.g. kept/epoch-100/best), then ``model_dir/checkpoints/<it>``
  (e.g. ckpt-550). Anything else is returned as given."""
  if (checkpoint is None or checkpoint == "best" or os.path.isabs(checkpoint)
      or os.path.exists(checkpoint) or os.path.exists(checkpoint + ".index")):
    return checkpoint
  for base in (model_dir, os.path.join(model_dir, "checkpoints")):
    inside = os.path.join(base, checkpoint)
    if os.path.isdir(inside) or os.path.exists(inside + ".index"):
      return inside
  return checkpoint


def load_run(model_dir: str, checkpoint: Optional[str] = None):
  """Rebuilds a run's model from ``config.json`` and restores a checkpoint.

  Returns ``(config, model, checkpoint path)``. ``checkpoint``: a prefix, a
  directory (its newest intact checkpoint, e.g. ``model_dir/kept/epoch-100/best``),
  or "best" for the one with the lowest validation error (``model_dir/best``);
  by default the newest intact one in ``model_dir/checkpoints``. A relative
  one that does not exist from the working directory is looked up in the run
  (``kept/epoch-100/best``, ``ckpt-550``).
  """
  model_dir, saved = read_run(model_dir)
  checkpoint = _in_run(model_dir, checkpoint)
  config = config_lib.Config.from_dict(saved["config"])
  if checkpoint == "best":
    checkpoint = intact_checkpoint(
        os.path.join(model_dir, "best"), repair=False,
        advice=f"Leave --checkpoint out for the newest checkpoint, or give one "
               f"by its prefix ({model_dir}/checkpoints/ckpt-<step>).")
    if checkpoint is None:
      raise CheckpointError(
          f"{model_dir}/best holds no checkpoint: the best checkpoint by validation "
          f"error is kept only by runs with a validation split (--validation_size) "
          f"after their first evaluation. Leave --checkpoint out for the newest.")
  elif checkpoint is not None and os.path.isdir(checkpoint):
    directory, checkpoint = checkpoint, intact_checkpoint(checkpoint, repair=False)
    if checkpoint is None:
      raise CheckpointError(
          f"--checkpoint={directory} is a directory that holds no checkpoint. Give a "
          f"checkpoint prefix ({model_dir}/checkpoints/ckpt-<step>), a directory of "
          f"checkpoints such as {model_dir}/kept/epoch-<E>/best, or 'best'.")
  if checkpoint is None:
    path = intact_checkpoint(os.path.join(model_dir, "checkpoints"), repair=False)
    if path is None:
      raise CheckpointError(
          f"{model_dir}/checkpoints holds no checkpoint yet: the run has not "
          f"finished its first checkpoint interval. Train longer first.")
  else:
    path = checkpoint
    if not os.path.exists(path + ".index"):
      raise CheckpointError(
          f"--checkpoint={path}: no such checkpoint ({path}.index does not "
          f"exist{'' if os.path.isabs(path) else ' here or in the run'}). Give a "
          f"prefix such as {model_dir}/checkpoints/ckpt-<step> (or ckpt-<step> "
          f"alone), or leave it out for the newest.")
    problem = checkpoint_problem(path)
    if problem:
      raise CheckpointError(f"--checkpoint={path} is damaged: {problem}. "
                            f"Leave it out to use the newest intact one.")
  derived = saved["derived"]
  model, optimizer = builders.create_model_and_optimizer(
      config, derived["alpha"], derived["steps_per_epoch"],
      x_dim=derived.get("x_dim", 784), num_classes=derived.get("num_classes", 10),
      num_unlabeled=derived.get("num_unlabeled"))
  ckpt = builders.make_checkpoint(model, optimizer)
  check_checkpoint_matches(ckpt, path)
  ckpt.restore(path).assert_existing_objects_matched()
  return config, model, path
