"""Tests for experiments/precision_check.py: RESULTS.md section 9's rule on
made-up runs whose answer is known by hand."""

import json
import subprocess
import sys

import pytest

from experiments import precision_check as pc

from conftest import REPO


def _row(error, alive=1.0, swap=3.0):
  return dict(error=error, alive=alive, swap=swap, eval_samples=100, cpu_per_epoch=100.0)


def _rows(fp32, bf16, **bf16_kw):
  return {"fp32": {s: _row(e) for s, e in zip(pc.SEEDS, fp32)},
          "bf16": {s: _row(e, **bf16_kw) for s, e in zip(pc.SEEDS, bf16)}}


def test_a_mean_within_one_fp32_standard_deviation_passes():
  # fp32 8, 10, 12: mean 10, sample std 2; bf16 mean 11.5 is 0.75 std away.
  result = pc.check(_rows([8.0, 10.0, 12.0], [10.0, 11.5, 13.0]))
  assert result["passes"] and result["within_spread"]
  assert result["fp32_std"] == pytest.approx(2.0)
  assert result["distance_in_stds"] == pytest.approx(0.75)
  assert result["differences"] == pytest.approx([2.0, 1.5, 1.0])


def test_a_mean_outside_the_spread_fails():
  result = pc.check(_rows([8.0, 10.0, 12.0], [12.0, 12.5, 13.0]))  # mean 12.5: 1.25 std
  assert not result["passes"] and not result["within_spread"]
  assert "outside one fp32 standard deviation" in pc.markdown(
      _rows([8.0, 10.0, 12.0], [12.0, 12.5, 13.0]), result)


@pytest.mark.parametrize("kw", [dict(alive=0.4), dict(swap=0.1), dict(swap=None)])
def test_a_dead_or_unused_in_bf16_fails_even_at_equal_error(kw):
  result = pc.check(_rows([8.0, 10.0, 12.0], [8.0, 10.0, 12.0], **kw))
  assert result["within_spread"] and not result["passes"]
  assert len(result["a_failures"]) == 3


def test_unfinished_runs_are_named():
  rows = _rows([8.0, 10.0, 12.0], [8.0, 10.0, 12.0])
  rows["bf16"][3] = None
  assert pc.check(rows) == dict(stage="running", missing=["bf16-seed3"])


def test_reads_runs_from_disk_and_prints_the_verdict(tmp_path):
  for p, errors in (("fp32", [0.08, 0.10, 0.12]), ("bf16", [0.09, 0.10, 0.11])):
    for s, e in zip(pc.SEEDS, errors):
      d = tmp_path / "runs" / f"{p}-seed{s}"
      d.mkdir(parents=True)
      (d / "metrics.json").write_text(json.dumps(dict(
          validation_error=e, validation_aux_alive_fraction=1.0,
          validation_aux_swap_error=e + 0.03, eval_samples=100)))
      (d / "history.csv").write_text("epoch,cpu_time,validation_error\n" + "".join(
          f"{k},{100 * k},{e}\n" for k in range(1, 11)))
  out = subprocess.run([sys.executable, "-m", "experiments.precision_check",
                        f"--out={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  assert "bfloat16 **passes** the rule" in out.stdout
  assert "| bf16 | 1 | 9.00 | 1.00 | +3.00 | 100 |" in out.stdout


def test_a_directory_without_runs_is_one_line(tmp_path):
  out = subprocess.run([sys.executable, "-m", "experiments.precision_check",
                        f"--out={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert (out.returncode, out.stderr.strip()) == (
      2, f"experiments.precision_check: error: --out={tmp_path} has no runs/ directory: "
         f"not the precision check's output.")
