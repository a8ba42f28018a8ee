"""Tests for adgm_tf.rundir's layout: RunDir names every path of a run.

The run directory's behaviour under faults (locks, damaged files, resume) is
tested in tests/test_faults.py (cross-module)."""

import os

from adgm_tf import rundir


def test_run_dir_names_every_file_of_the_layout(tmp_path):
  run = rundir.RunDir(str(tmp_path / "run"))
  assert run.root == str(tmp_path / "run")
  names = {p: os.path.relpath(getattr(run, p), run.root) for p in (
      "config", "flags", "history", "metrics", "checkpoints", "best", "best_json")}
  assert names == dict(config="config.json", flags="flags.txt", history="history.csv",
                       metrics="metrics.json", checkpoints="checkpoints", best="best",
                       best_json=os.path.join("best", "best.json"))
  assert os.path.relpath(run.older_flags(2), run.root) == "flags.2.txt"
  assert os.path.relpath(run.events("eval"), run.root) == "eval"
  # Every name it gives is in the module's documented layout.
  for name in ("config.json", "flags.txt", "checkpoints/", "best/", "history.csv",
               "metrics.json", "train/, eval/"):
    assert name in rundir.__doc__, name


def test_run_dir_resolves_home_and_relative_paths(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert rundir.RunDir("r").root == str(tmp_path / "r")
  assert rundir.RunDir("~/r").root == os.path.join(os.path.expanduser("~"), "r")


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
  path = str(tmp_path / "metrics.json")
  rundir.atomic_write(path, "old")
  rundir.atomic_write(path, "new")
  with open(path) as f:
    assert f.read() == "new"
  assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary left behind
