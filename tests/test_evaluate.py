"""``python -m adgm_tf.evaluate`` and ``evaluate.evaluate_checkpoint``.

The checkpoint of a best-by-validation run is evaluated in
tests/test_train.py (``test_when_the_test_set_is_read``), which trains one.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adgm_tf import evaluate, rundir
from adgm_tf.errors import CheckpointError, ConfigError
from conftest import REPO, run_env


@pytest.mark.parametrize("kwargs,message", [
    (dict(splits="train"), "--splits=train: give one or both of validation,test"),
    (dict(splits=""), "give one or both"),
    (dict(samples=0), "--samples=0: the classifier needs at least 1"),
    (dict(ll_samples=0), "--ll_samples=0: the importance-weighted estimate needs K >= 1"),
    (dict(ll_examples=-1), "--ll_examples=-1: must be >= 0"),
    (dict(splits="validation", ll_examples=10), "does not read the test set"),
])
def test_bad_arguments_are_refused_before_the_run_is_read(kwargs, message):
  args = dict(splits="validation,test", samples=None, ll_samples=1000, ll_examples=0)
  args.update(kwargs)
  with pytest.raises(ConfigError, match=message):
    evaluate.check_evaluate_args(**args)
  with pytest.raises(ConfigError, match=message):  # before --model_dir is looked at
    evaluate.evaluate_checkpoint("/nonexistent/run", **args)


def test_what_the_run_does_not_hold(tiny_run):
  with pytest.raises(ConfigError, match=r"no validation images .*Add test to --splits"):
    evaluate.evaluate_checkpoint(tiny_run["model_dir"], splits="validation")
  with pytest.raises(CheckpointError, match="--validation_size"):
    evaluate.evaluate_checkpoint(tiny_run["model_dir"], checkpoint="best")


def _cli(args, mnist_idx_dir):
  return subprocess.run([sys.executable, "-m", "adgm_tf.evaluate", *args], cwd=REPO,
                        env=run_env(mnist_idx_dir), capture_output=True, text=True,
                        timeout=300)


def test_command_line_reproduces_the_runs_final_evaluation_and_never_overwrites(
    tiny_run, mnist_idx_dir, tmp_path):
  """On the newest checkpoint it gives what the run wrote into metrics.json."""
  metrics = json.load(open(os.path.join(tiny_run["model_dir"], "metrics.json")))
  output, png = tmp_path / "eval.json", tmp_path / "samples.png"
  args = [f"--model_dir={tiny_run['model_dir']}", f"--output={output}",
          f"--samples_png={png}", f"--ll_examples={metrics['ll_examples']}",
          f"--ll_samples={metrics['ll_samples']}", f"--ll_resume_file={tmp_path / 'll.npz'}"]
  out = _cli(args, mnist_idx_dir)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stderr.strip() == ""                          # no TensorFlow start-up noise
  assert "test: error" in out.stdout and "K = 20, 200 images" in out.stdout
  saved = json.loads(output.read_text())
  assert saved["checkpoint"].endswith("ckpt-20")
  assert saved["step"] == metrics["steps"] == 20 and saved["epoch"] == metrics["epochs"] == 2
  assert saved["eval_samples"] == metrics["eval_samples"] == 20
  assert saved["test_error"] == metrics["test_error"]
  assert "validation_error" not in saved                   # tiny.flags holds no validation split
  assert saved["ll_examples"] == 200
  assert saved["test_log_likelihood"] == pytest.approx(metrics["test_log_likelihood"],
                                                       abs=1e-3)
  with np.load(tmp_path / "ll.npz") as kept:       # the per-image estimates, kept
    assert kept["log_likelihood"].shape == (200,)
    assert np.mean(kept["log_likelihood"]) == pytest.approx(saved["test_log_likelihood"])
  for key in ("aux_alive_fraction", "aux_mean_spread", "aux_swap_error",
              "aux_information", "test_elbo_labeled", "test_elbo_unlabeled"):
    assert saved[key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-6), key
  assert saved["active_units_z"] == metrics["active_units_z"]
  assert saved["active_units_a"] == metrics["active_units_a"]
  image = __import__("matplotlib.pyplot").pyplot.imread(str(png))
  assert image.shape[:2] == (280, 280)                      # 10 classes x 10 samples
  assert np.ptp(image[..., 0]) > 0
  # A second launch with the same files fails with one line and changes nothing.
  before = output.read_bytes(), png.read_bytes()
  again = _cli(args, mnist_idx_dir)
  assert again.returncode == 2
  lines = (again.stdout + again.stderr).strip().splitlines()
  assert lines == [f"adgm_tf.evaluate: error: --output={output} already exists and is "
                   f"never overwritten; give a new file name or remove it."]
  assert (output.read_bytes(), png.read_bytes()) == before


@pytest.mark.parametrize("args,message", [
    (["--model_dir=/nonexistent/run"], "--model_dir=/nonexistent/run does not exist"),
    (["--splits=train"], "--splits=train"),
    (["--output=/nonexistent/dir/x.json"], "the directory /nonexistent/dir does not exist"),
    (["--ll_resume_file=/tmp/ll.npz"], "no log-likelihood to resume without --ll_examples"),
    (["--ll_examples=10", "--ll_resume_file=/nonexistent/dir/ll.npz"],
     "the directory /nonexistent/dir does not exist"),
    (["--ll_examples=10", "--ll_resume_file=/tmp/ll.json"], "ending in .npz"),
])
def test_command_line_failures_are_one_line(tiny_run, mnist_idx_dir, args, message):
  if not any(a.startswith("--model_dir") for a in args):
    args = [f"--model_dir={tiny_run['model_dir']}", *args]
  out = _cli(args, mnist_idx_dir)
  assert out.returncode == 2
  lines = (out.stdout + out.stderr).strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("adgm_tf.evaluate: error: ")
  assert message in lines[0]


def test_a_damaged_best_checkpoint_is_reported_with_the_way_out(tiny_run, tmp_path):
  """best/ whose only checkpoint is truncated: one error that says what to do
  instead (the newest checkpoint, or one by prefix), and best/ left as it was."""
  import glob
  import shutil
  run = str(tmp_path / "run")
  shutil.copytree(tiny_run["model_dir"], run)
  _, prefix = rundir.checkpoint_prefixes(os.path.join(run, "checkpoints"))[0]  # newest
  os.makedirs(os.path.join(run, "best"))
  for path in glob.glob(prefix + ".*"):
    shutil.copy(path, os.path.join(run, "best"))
  data = glob.glob(os.path.join(run, "best", "*.data-*"))[0]
  with open(data, "r+b") as f:
    f.truncate(1000)
  before = {p: open(p, "rb").read() for p in glob.glob(os.path.join(run, "best", "*"))}
  with pytest.raises(CheckpointError,
                     match=r"best holds 1 checkpoint\(s\) and none is intact.*"
                           r"Leave --checkpoint out for the newest checkpoint, or "
                           r"give one by its prefix .*checkpoints/ckpt-<step>"):
    evaluate.evaluate_checkpoint(run, checkpoint="best")
  after = {p: open(p, "rb").read() for p in glob.glob(os.path.join(run, "best", "*"))}
  assert after == before
