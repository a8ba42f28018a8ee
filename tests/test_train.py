"""Tests for adgm_tf.train: resume, SIGKILL, replicas, workers, selection, budget."""

import csv
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from adgm_tf import builders
from adgm_tf import config as config_lib
from adgm_tf import data
from adgm_tf import devices as devices_lib
from adgm_tf import evaluate
from adgm_tf import pipeline
from adgm_tf import rundir
from adgm_tf import train
from adgm_tf.errors import ConfigError

from conftest import REPO, run_env


def tiny_config(data_dir, data=None, model=None, train_=None):
  c = config_lib.Config(
      data=config_lib.DataConfig(data_dir=data_dir, num_labels=100,
                                 max_unlabeled=1000, labeled_batch_size=100,
                                 unlabeled_batch_size=100),
      model=config_lib.ModelConfig(hidden=(32,), z_dim=8, a_dim=8, mc_samples=1,
                                   eval_samples=10),
      train=config_lib.TrainConfig(epochs=2, learning_rate=1e-3,
                                   eval_samples_periodic=5, ll_samples=10,
                                   ll_examples=100, summary_every=5, progress="none"))
  return c.replace(data=dataclasses.replace(c.data, **(data or {})),
                   model=dataclasses.replace(c.model, **(model or {})),
                   train=dataclasses.replace(c.train, **(train_ or {})))


def checkpoint_weights(model_dir, sub="checkpoints"):
  path = tf.train.latest_checkpoint(os.path.join(model_dir, sub))
  reader = tf.train.load_checkpoint(path)
  return path, {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if k.startswith("model/")}


def assert_same_weights(a, b, atol=1e-5):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=0, err_msg=k)


def dir_digest(path):
  out = {}
  for f in sorted(glob.glob(os.path.join(path, "**"), recursive=True)):
    if os.path.isfile(f):
      out[os.path.relpath(f, path)] = hashlib.sha256(open(f, "rb").read()).hexdigest()
  return out


# ---------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------


def test_a_chunked_run_resumes_mid_epoch_and_equals_a_straight_run(mnist_data_dir, tmp_path):
  """--chunk_minutes ends a launch mid-epoch with a checkpoint and no final
  evaluation; the same command continues, and the result is the straight
  run's, bit for bit (a --time_budget_minutes would count the earlier launch
  and end the run). The resume after a kill: tests/test_faults.py."""
  straight, chunked = str(tmp_path / "straight"), str(tmp_path / "chunked")
  m2 = train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=2)), straight)
  assert m2["steps"] == 20
  # 0.01 min: the launch stops within its first steps (compilation alone is longer).
  out = train.train_and_evaluate(
      tiny_config(mnist_data_dir, train_=dict(epochs=2, chunk_minutes=0.01)), chunked)
  assert out["chunk_over"] is True and 0 < out["step"] < 10
  assert not os.path.exists(os.path.join(chunked, "metrics.json"))
  path = tf.train.latest_checkpoint(os.path.join(chunked, "checkpoints"))
  assert path.endswith(f"ckpt-{out['step']}")  # checkpointed where it stopped
  m = train.train_and_evaluate(
      tiny_config(mnist_data_dir, train_=dict(epochs=2, chunk_minutes=30)), chunked)
  assert "chunk_over" not in m and m["steps"] == 20 and m["epochs"] == 2
  assert os.path.exists(os.path.join(chunked, "metrics.json"))
  assert m["weights_sha256"] == m2["weights_sha256"]  # bit for bit
  _, w_straight = checkpoint_weights(straight)
  path, w_chunked = checkpoint_weights(chunked)
  assert path.endswith("ckpt-20")
  assert_same_weights(w_straight, w_chunked)
  # The history: the partial epoch of the chunk (no evaluation), then one row
  # per epoch, with no duplicate from the relaunch.
  with open(os.path.join(chunked, "history.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [int(r["step"]) for r in rows] == [out["step"], 10, 20]
  assert rows[0]["validation_error"] == "" and rows[1]["test_error"] != ""
  assert m["test_error"] == pytest.approx(m2["test_error"], abs=1e-3)


def test_one_iterator_feeds_a_block_of_epochs_and_training_is_unchanged(mnist_data_dir,
                                                                        tmp_path, monkeypatch):
  """The trainer builds one distributed iterator per block of
  pipeline.EPOCHS_PER_ITERATOR epochs (an iterator's end can stall a minute),
  and a run fed in blocks of 2 is the run fed epoch by epoch, bit for bit."""
  from adgm_tf import pipeline
  real, calls = pipeline.distributed_epoch, []

  def spy(strategy, split, data_config, seed, epoch, skip=0, epochs=1):
    calls.append((epoch, skip, epochs))
    return real(strategy, split, data_config, seed, epoch, skip, epochs=epochs)

  monkeypatch.setattr(pipeline, "distributed_epoch", spy)
  cfg = tiny_config(mnist_data_dir, train_=dict(epochs=3, ll_examples=0,
                                                test_evaluation="never"))
  runs = {}
  for block in (1, 2):
    monkeypatch.setattr(pipeline, "EPOCHS_PER_ITERATOR", block)
    calls.clear()
    d = str(tmp_path / f"block{block}")
    runs[block] = (train.train_and_evaluate(cfg, d), list(calls))
    with open(os.path.join(d, "history.csv")) as f:
      runs[block] += ([(r["step"], r["loss"], r["elbo_unlabeled"]) for r in csv.DictReader(f)],)
  (by_epoch, by_epoch_calls, by_epoch_rows), (by_two, by_two_calls, by_two_rows) = runs[1], runs[2]
  assert by_epoch_calls == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]
  assert by_two_calls == [(0, 0, 2), (2, 0, 1)]
  assert by_two["steps"] == by_epoch["steps"] == 30
  assert by_two["weights_sha256"] == by_epoch["weights_sha256"]
  assert by_two_rows == by_epoch_rows and len(by_two_rows) == 3


def test_checkpoints_hold_every_model_variable(tmp_path):
  """Including batch norm's moving statistics (not reachable via the optimizer)."""
  cfg = tiny_config(None, model=dict(hidden=(8, 9), batch_norm=True))
  keras.utils.set_random_seed(0)
  model, optimizer = builders.create_model_and_optimizer(cfg, 1.0, 10)
  for v in model.variables:  # give every variable a distinct value
    v.assign(tf.random.normal(v.shape) + 3.0)
  path = builders.make_checkpoint(model, optimizer).save(str(tmp_path / "ckpt"))
  keras.utils.set_random_seed(1)
  fresh, fresh_opt = builders.create_model_and_optimizer(cfg, 1.0, 10)
  ckpt = builders.make_checkpoint(fresh, fresh_opt)
  rundir.check_checkpoint_matches(ckpt, path)
  ckpt.restore(path).assert_existing_objects_matched()
  moving = [v for v in model.variables if "moving" in v.path]
  assert len(moving) == 2 * 2 * len(model.factors)  # mean and variance, 2 layers
  for a, b in zip(model.variables, fresh.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.large
def test_a_finished_run_relaunched_only_evaluates(mnist_data_dir, tmp_path):
  d = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=1)), d)
  before = checkpoint_weights(d)
  again = train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=1)), d)
  assert again["steps"] == 10
  assert_same_weights(before[1], checkpoint_weights(d)[1], atol=0)


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_sigkill_mid_epoch_resumes_from_the_last_checkpoint(mnist_idx_dir, mnist_data_dir,
                                                            tmp_path):
  args = [sys.executable, "launch.py", "--flagfile=tests/tiny.flags",
          f"--data_dir={mnist_data_dir}", "--max_unlabeled=3000",
          "--unlabeled_batch_size=30", "--epochs=3", "--eval_every=3",
          "--ll_examples=0", "--progress=none"]
  env = run_env(mnist_idx_dir)
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(args + [f"--model_dir={killed}"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    index = os.path.join(killed, "checkpoints", "ckpt-100.index")
    deadline = time.time() + 300
    while not os.path.exists(index) and time.time() < deadline:
      assert proc.poll() is None, proc.communicate()
      time.sleep(0.2)
    assert os.path.exists(index), "no checkpoint after the first epoch"
    time.sleep(2.0)  # well into the second epoch (about 0.05 s a step)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  saved_step = int(tf.train.latest_checkpoint(
      os.path.join(killed, "checkpoints")).rsplit("-", 1)[1])
  assert saved_step in (100, 200)
  out = subprocess.run(args + [f"--model_dir={killed}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"(step {saved_step})" in out.stderr
  straight = str(tmp_path / "straight")
  out = subprocess.run(args + [f"--model_dir={straight}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert_same_weights(checkpoint_weights(straight)[1], checkpoint_weights(killed)[1])


@pytest.mark.large  # about 3 minutes on a 2-core machine: run with --run_large
def test_s5_with_grappler_off_resumes_in_a_new_process_bit_for_bit(mnist_idx_dir,
                                                                   mnist_data_dir, tmp_path):
  """The long recipe's network at S = 5 (RESULTS.md section 7: with Grappler
  on, such runs vary between processes): with --nograppler a run cut by
  --chunk_minutes and continued by a second process ends with the weights of
  a run that went straight through."""
  args = [sys.executable, "launch.py", "--flagfile=mnist100_long.flags",
          f"--data_dir={mnist_data_dir}", "--mc_samples=5", "--unlabeled_weighting=mean",
          "--nograppler", "--max_unlabeled=1000", "--validation_size=500",
          "--test_evaluation=never", "--epochs=2", "--eval_every=2", "--eval_samples=2",
          "--eval_samples_periodic=2", "--ll_examples=0", "--progress=none"]
  env = dict(run_env(mnist_idx_dir), TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
  straight, chunked = str(tmp_path / "straight"), str(tmp_path / "chunked")
  out = subprocess.run(args + [f"--model_dir={straight}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  out = subprocess.run(args + [f"--model_dir={chunked}", "--chunk_minutes=0.01"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  assert not os.path.exists(os.path.join(chunked, "metrics.json"))  # cut short, to go on
  out = subprocess.run(args + [f"--model_dir={chunked}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  a = json.load(open(os.path.join(straight, "metrics.json")))
  b = json.load(open(os.path.join(chunked, "metrics.json")))
  assert a["steps"] == b["steps"] == 20
  assert a["weights_sha256"] == b["weights_sha256"]
  assert a["validation_error"] == b["validation_error"]


# ---------------------------------------------------------------------------
# Replicas and workers
# ---------------------------------------------------------------------------


RECIPES = {
    "plain": (dict(batch_norm=False), {}),
    "batch_norm": (dict(batch_norm=True), {}),
    # The authors' recipe: their init, split batch statistics, element-wise
    # clipping (small enough to bind), qbar weighting of U(x).
    "authors": (dict(batch_norm=True, init="authors", bn_statistics="split",
                     unlabeled_weighting="mean"), dict(clip_value=1e-3)),
}


def _steps_under(devices, split, steps=2, clip_norm=1.0, recipe="batch_norm"):
  strategy = tf.distribute.MirroredStrategy(
      devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
  model_kw, train_kw = RECIPES[recipe]
  cfg = tiny_config(None, model=dict(model_kw, mc_samples=2),
                    train_=dict(train_kw, clip_norm=clip_norm))
  with strategy.scope():
    keras.utils.set_random_seed(3)
    model, _ = builders.create_model_and_optimizer(cfg, alpha=1.0, steps_per_epoch=10)
  step = devices_lib.make_train_step(strategy, model)
  iterator = iter(pipeline.distributed_epoch(strategy, split, cfg.data, seed=0, epoch=0))
  logs = [step(iterator) for _ in range(steps)]
  return {v.path: v.numpy() for v in model.variables}, logs


# The joint batch-norm recipe is the authors' minus their extras: large only.
@pytest.mark.parametrize("recipe", [pytest.param(r, marks=pytest.mark.large)
                                    if r == "batch_norm" else r for r in sorted(RECIPES)])
def test_two_replicas_make_the_same_update_as_one(mnist_arrays, recipe):
  """Noise, data slices, clipping and (synchronized) batch norm all match."""
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=1000)
  one, logs_one = _steps_under(["/cpu:0"], split, recipe=recipe)
  two, logs_two = _steps_under(["/cpu:0", "/cpu:1"], split, recipe=recipe)
  assert sorted(one) == sorted(two)
  moved = max(float(np.max(np.abs(one[k] - two[k]))) for k in one)
  for k in one:
    np.testing.assert_allclose(one[k], two[k], atol=1e-5, rtol=0, err_msg=k)
  for a, b in zip(logs_one, logs_two):
    assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
  assert moved < 1e-5
  # Not vacuous: the weights did move, by more than the tolerance.
  keras.utils.set_random_seed(3)
  cfg = tiny_config(None, model=dict(RECIPES[recipe][0], mc_samples=2))
  init = {v.path: v.numpy() for v in builders.model_from_config(cfg, 1.0).variables}
  assert max(float(np.max(np.abs(init[k] - one[k]))) for k in one) > 1e-4


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_two_workers_train_to_identical_weights(mnist_idx_dir, mnist_data_dir, tmp_path):
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  procs = []
  for i in range(2):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
    env = run_env(mnist_idx_dir, TF_CONFIG=tf_config)
    procs.append(subprocess.Popen(
        [sys.executable, "launch.py", "--flagfile=tests/tiny.flags",
         f"--model_dir={tmp_path / 'run'}", f"--data_dir={mnist_data_dir}",
         "--epochs=1", "--ll_examples=0", "--strategy=auto"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  prints = [[ln for ln in o.splitlines() if ln.startswith("weights sha256")]
            for o, _ in outs]
  assert len(prints[0]) == 1 and prints[0] == prints[1], prints
  metrics = json.load(open(tmp_path / "run" / "metrics.json"))
  assert metrics["replicas"] == 2 and metrics["steps"] == 10
  assert prints[0][0].endswith(metrics["weights_sha256"])
  assert "strategy: MultiWorkerMirroredStrategy, 2 replica(s)" in outs[0][0]


# ---------------------------------------------------------------------------
# Refusals: other experiments, foreign checkpoints
# ---------------------------------------------------------------------------


@pytest.mark.large  # ~20 s; the default suite keeps test_launch's relaunch refusal
def test_a_different_architecture_is_refused_and_nothing_changes(mnist_data_dir, tmp_path):
  d = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=1)), d)
  before = dir_digest(d)
  with pytest.raises(config_lib.ConfigError,
                     match=r"--hidden: \[32\] in the saved run, \[48\] now"):
    train.train_and_evaluate(tiny_config(mnist_data_dir, model=dict(hidden=(48,))), d)
  assert dir_digest(d) == before


@pytest.mark.large  # ~20 s; the default suite keeps test_launch's relaunch refusal
def test_a_foreign_checkpoint_is_never_partially_restored(mnist_data_dir, tmp_path):
  d = str(tmp_path / "run")
  train.train_and_evaluate(tiny_config(mnist_data_dir, train_=dict(epochs=1)), d)
  os.remove(os.path.join(d, "config.json"))  # as if written by something else
  before = dir_digest(d)
  with pytest.raises(config_lib.ConfigError,
                     match="written by a different model architecture .* Nothing was restored"):
    train.train_and_evaluate(tiny_config(mnist_data_dir, model=dict(z_dim=12)), d)
  assert dir_digest(d) == before


# ---------------------------------------------------------------------------
# Model selection, time budget, summaries of the run
# ---------------------------------------------------------------------------


@pytest.mark.large
def test_selection_uses_validation_never_the_test_set(mnist_data_dir, tmp_path,
                                                      monkeypatch):
  cfg = tiny_config(mnist_data_dir, data=dict(validation_size=2000),
                    train_=dict(epochs=2))
  a = train.train_and_evaluate(cfg, str(tmp_path / "a"))
  with open(tmp_path / "a" / "history.csv") as f:
    rows = list(csv.DictReader(f))
  assert a["best_validation"]["validation_error"] == pytest.approx(min(
      float(r["validation_error"]) for r in rows))
  # Scramble the test labels: the choice of the best checkpoint cannot move.
  arrays = data.load_arrays("mnist", mnist_data_dir)
  rng = np.random.default_rng(0)
  scrambled = arrays._replace(test_labels=rng.permutation(arrays.test_labels))
  monkeypatch.setattr(data, "load_arrays", lambda *a_, **k: scrambled)
  b = train.train_and_evaluate(cfg, str(tmp_path / "b"))
  assert b["best_validation"]["step"] == a["best_validation"]["step"]
  assert b["best_validation"]["validation_error"] == a["best_validation"]["validation_error"]
  assert b["test_error"] != a["test_error"]  # the test set did change


def test_kept_epochs_hold_that_epochs_checkpoint_and_best_of_then(mnist_data_dir, tmp_path,
                                                                   caplog, monkeypatch):
  """--keep_epochs copies epoch E's checkpoint and best/ of then to kept/epoch-E/,
  beyond --keep_checkpoints; a stop between the checkpoint and the copy is
  made good at the resume, and an epoch passed without one is named."""
  d = str(tmp_path / "run")
  cfg = tiny_config(mnist_data_dir, data=dict(validation_size=500),
                    train_=dict(epochs=2, keep_epochs=(2,), keep_checkpoints=1,
                                test_evaluation="never", ll_examples=0))
  train.train_and_evaluate(cfg, d)
  kept2 = os.path.join(d, "kept", "epoch-2")
  first = dir_digest(kept2)
  assert sorted(first) == ["best/best.json", "best/checkpoint", "best/ckpt-20.data-00000-of-00001",
                           "best/ckpt-20.index", "kept.json", "last/checkpoint",
                           "last/ckpt-20.data-00000-of-00001", "last/ckpt-20.index"]
  # As if the process died after epoch 2's checkpoint, before its copy.
  shutil.rmtree(kept2)
  cfg3 = cfg.replace(train=dataclasses.replace(cfg.train, epochs=3, keep_epochs=(1, 2, 3)))
  with caplog.at_level("WARNING", logger="adgm_tf"):
    train.train_and_evaluate(cfg3, d)
  assert dir_digest(kept2) == first  # made again at the resume, the same bytes
  assert "epoch(s) 1 passed before this launch without a kept copy" in caplog.text
  assert not os.path.exists(os.path.join(d, "kept", "epoch-1"))
  assert sorted(os.listdir(os.path.join(d, "kept"))) == ["epoch-2", "epoch-3"]
  assert [p for _, p in rundir.checkpoint_prefixes(os.path.join(d, "checkpoints"))] == [
      os.path.join(d, "checkpoints", "ckpt-30")]  # keep_checkpoints=1 kept one
  # last/ is the epoch's checkpoint: epoch 3's equals the run's newest.
  _, newest = checkpoint_weights(d)
  _, last3 = checkpoint_weights(d, "kept/epoch-3/last")
  _, last2 = checkpoint_weights(d, "kept/epoch-2/last")
  assert_same_weights(newest, last3, atol=0)
  assert any(not np.array_equal(last2[k], last3[k]) for k in last2)
  # best/ of then: the lowest validation error of the evaluations up to that epoch.
  with open(os.path.join(d, "history.csv")) as f:
    rows = [r for r in csv.DictReader(f) if r["validation_error"]]
  for epoch in (2, 3):
    info = json.load(open(os.path.join(d, "kept", f"epoch-{epoch}", "kept.json")))
    assert info["epoch"] == epoch and info["step"] == 10 * epoch
    assert info["last"] == f"last/ckpt-{10 * epoch}"
    then = [r for r in rows if int(r["step"]) <= 10 * epoch]
    best = min(then, key=lambda r: float(r["validation_error"]))
    assert info["best_of_then"]["step"] == int(best["step"])
    assert info["best"] == f"best/ckpt-{best['step']}"
    assert info["best_of_then"]["validation_error"] == pytest.approx(
        float(best["validation_error"]))
  # evaluate and the probes take the kept directory as --checkpoint.
  out = evaluate.evaluate_checkpoint(d, checkpoint=os.path.join(kept2, "best"),
                                     splits=("validation",), ll_examples=0,
                                     samples=cfg.train.eval_samples_periodic)
  info2 = json.load(open(os.path.join(kept2, "kept.json")))
  assert out["checkpoint"] == os.path.join(kept2, info2["best"])
  assert out["validation_error"] == pytest.approx(info2["best_of_then"]["validation_error"])
  with pytest.raises(rundir.CheckpointError, match="is a directory that holds no checkpoint"):
    rundir.load_run(d, str(tmp_path))
  # Relative names that do not exist from here are read inside the run.
  monkeypatch.chdir(tmp_path)
  assert rundir.load_run(d, "ckpt-30")[2] == os.path.join(d, "checkpoints", "ckpt-30")
  assert rundir.load_run(d, os.path.join("kept", "epoch-2", "best"))[2] == os.path.join(
      kept2, info2["best"])
  with pytest.raises(rundir.CheckpointError,
                     match=r"--checkpoint=ckpt-20: no such checkpoint \(ckpt-20.index does "
                           r"not exist here or in the run\)"):
    rundir.load_run(d, "ckpt-20")  # keep_checkpoints=1 left only ckpt-30


def test_time_budget_stops_training_and_still_evaluates(mnist_data_dir, tmp_path):
  d = str(tmp_path / "run")
  # 15 s: long enough for an evaluation before the budget ends even with both
  # cores busy (at 6 s, a loaded machine's first epoch and evaluation, compile
  # included, could take the whole budget).
  cfg = tiny_config(mnist_data_dir, train_=dict(epochs=1000, time_budget_minutes=0.25))
  start = time.time()
  m = train.train_and_evaluate(cfg, d)
  assert time.time() - start < 150
  assert m["stopped_by_time_budget"] and m["epochs"] < 1000
  # Training stops at the budget less the final evaluation's estimated share
  # (kept back so that the whole launch fits the budget), and not long after.
  kept = m["time_budget_kept_for_final_evaluation"]
  assert 0.0 < kept < 15.0
  assert 15.0 - kept <= m["wall_time"] < 15.0 - kept + 60.0
  assert m["test_error"] is not None
  saved = json.load(open(os.path.join(d, "metrics.json")))
  assert saved["stopped_by_time_budget"] is True
  step = int(tf.train.latest_checkpoint(os.path.join(d, "checkpoints")).rsplit("-", 1)[1])
  assert step == m["steps"]  # checkpointed where it stopped


def test_the_guard_stops_a_run_whose_a_is_unused_and_keeps_everything(mnist_data_dir,
                                                                      tmp_path):
  from adgm_tf.errors import AuxDied
  run = tmp_path / "run"
  # No tiny model moves its error by 100 points when a is swapped: the guard fires
  # at the first evaluation (epoch 1 of 2), reading the validation split only.
  cfg = tiny_config(mnist_data_dir, data=dict(validation_size=1000),
                    train_=dict(epochs=2, aux_swap_floor=100.0, checkpoint_every=2,
                                test_evaluation="never"))
  with pytest.raises(AuxDied, match=r"epoch 1 on the validation split: giving each image "
                                    r"another image's a changes the error by [+-]\d"):
    train.train_and_evaluate(cfg, str(run))
  assert AuxDied.exit_code == 3
  with open(run / "history.csv") as f:
    row, = list(csv.DictReader(f))
  assert row["step"] == "10" and row["validation_aux_swap_error"] != ""
  # The epoch was not due a checkpoint (every 2); the guard wrote one.
  assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-10")
  assert not (run / "metrics.json").exists()
  # A floor the run meets lets it finish.
  ok = train.train_and_evaluate(cfg.replace(train=dataclasses.replace(
      cfg.train, aux_swap_floor=-100.0, aux_alive_floor=0.01)), str(run))
  assert ok["steps"] == 20


@pytest.mark.parametrize("changes,message", [
    (dict(model=dict(model="m2"), data=dict(validation_size=1000)), "--model=m2 has none"),
    (dict(), "reads the validation split, never the test set"),
    (dict(data=dict(validation_size=1000), alive=1.5), "in [0, 1]"),
])
def test_the_guard_refuses_what_it_cannot_watch(changes, message):
  cfg = tiny_config(None, data=changes.get("data"), model=changes.get("model"),
                    train_=dict(aux_alive_floor=changes.get("alive", 0.5)))
  with pytest.raises(ConfigError, match=re.escape(message)):
    cfg.validate()


def test_learning_rate_schedule():
  cfg = config_lib.TrainConfig(learning_rate=3e-4, lr_decay=0.75, lr_decay_every=200,
                               lr_min=3e-5)
  schedule = builders.learning_rate_schedule(cfg, steps_per_epoch=600)
  assert float(schedule(0)) == pytest.approx(3e-4)
  assert float(schedule(200 * 600 - 1)) == pytest.approx(3e-4)
  assert float(schedule(200 * 600)) == pytest.approx(2.25e-4)
  assert float(schedule(800 * 600)) == pytest.approx(3e-4 * 0.75 ** 4)
  assert float(schedule(10 ** 9)) == pytest.approx(3e-5)


@pytest.mark.parametrize("when,periodic,final", [("never", False, False)])
def test_when_the_test_set_is_read(mnist_data_dir, tmp_path, when, periodic, final):
  cfg = tiny_config(mnist_data_dir, data=dict(validation_size=1000),
                    train_=dict(epochs=1, test_evaluation=when, ll_examples=50))
  m = train.train_and_evaluate(cfg, str(tmp_path / "run"))
  with open(tmp_path / "run" / "history.csv") as f:
    row, = list(csv.DictReader(f))
  assert (row["test_error"] != "") == periodic and row["validation_error"] != ""
  assert (m["test_error"] is not None) == final
  assert (m["test_log_likelihood"] is not None) == final
  assert (m["aux_swap_error"] is not None) == final
  assert m["validation_aux_swap_error"] is not None
  # The run chose its best checkpoint on validation alone; export serves that one.
  from adgm_tf import export
  best = json.load(open(tmp_path / "run" / "best" / "best.json"))
  path = export.export_from_checkpoint(str(tmp_path / "run"), str(tmp_path / "exports"),
                                       checkpoint="best")
  meta = json.load(open(os.path.join(path, "assets.extra", "adgm_tf.json")))
  assert meta["checkpoint"] == str(tmp_path / "run" / "best" / f"ckpt-{best['step']}")
  # Evaluated after the fact with the periodic evaluation's samples, the best
  # checkpoint gives the validation error it was chosen by.
  out = evaluate.evaluate_checkpoint(str(tmp_path / "run"), checkpoint="best",
                                       samples=cfg.train.eval_samples_periodic,
                                       splits="validation")
  assert out["step"] == best["step"] and "test_error" not in out
  assert out["validation_error"] == best["validation_error"]
