"""Tests for experiments/speed_ab.py: its arithmetic and its one-line errors."""

import subprocess
import sys

import pytest

from experiments import speed_ab

from conftest import REPO


def test_medians_and_paired_ratios_to_the_first_condition():
  s = speed_ab.summarize({"a": [10.0, 6.0, 9.0], "b": [13.0, 9.0, 9.9]})
  assert s["a"] == dict(median=9.0, x_first=1.0)
  assert s["b"]["median"] == 9.9
  assert s["b"]["x_first"] == pytest.approx(1.3)  # median of 1.3, 1.5, 1.1


@pytest.mark.parametrize("argv, message", [
    ([], "--conditions is not JSON"),
    (["--conditions={}"], "--conditions must map two or more names"),
    (['--conditions={"a": {}, "b": {"CWD": "/nonexistent"}}'],
     "condition b: CWD=/nonexistent is not a checkout of this repository"),
    (['--conditions={"a": {}, "b": {}}', "--rounds=0"], "--rounds=0: give 1 or more."),
    (['--conditions={"a": {}, "b": {}}', "--config=9"], "--config=9: the configurations"),
])
def test_bad_arguments_are_one_line(argv, message):
  out = subprocess.run([sys.executable, "-m", "experiments.speed_ab", *argv], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 2
  assert out.stderr.strip().startswith(f"experiments.speed_ab: error: {message}"), out.stderr
  assert len(out.stderr.strip().splitlines()) == 1
