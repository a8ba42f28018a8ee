"""Tests for adgm_tf.bench: the FLOP count, and the short mode runs (CI)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adgm_tf import bench
from adgm_tf import config as config_lib
from adgm_tf import experiments

from conftest import REPO, run_env


def test_flop_count_by_hand_for_the_paper_adgm():
  # 100 + 100 images, S = 1, a = z = 100, hidden 500, 500, x = 784, Y = 10.
  B, N = 200, 100 + 10 * 100
  rest = lambda out: 500 * 500 + 500 * out  # noqa: E731
  macs = (
      B * (784 * 500 + rest(200))                       # q(a|x)
      + B * 784 * 500 + B * 100 * 500 + B * rest(10)    # q(y|a,x)
      + B * 784 * 500 + B * 100 * 500 + N * rest(200)   # q(z|a,x,y)
      + N * 100 * 500 + N * rest(784)                   # p(x|y,z)
      + B * 784 * 500 + N * 100 * 500 + N * rest(200))  # p(a|x,y,z)
  assert bench.step_gflop("adgm", 100, 100, 1) == pytest.approx(3 * 2 * macs / 1e9)
  assert bench.step_gflop("adgm", 100, 100, 1) < 12.5 < bench.PYTORCH_PORT_GFLOP
  # Affine in the samples: the x-input layers run once per example, the rest
  # once per sample, so S = 10 costs less than 10 x (S = 1).
  f = {s: bench.step_gflop("adgm", 100, 1000, s) for s in (1, 2, 10)}
  per_sample, shared = f[2] - f[1], 2 * f[1] - f[2]
  assert f[10] == pytest.approx(shared + 10 * per_sample)
  assert 0 < shared < per_sample
  assert f[10] < 10 * f[1]
  assert bench.step_gflop("m2", 100, 100, 1) < bench.step_gflop("adgm", 100, 100, 1)


@pytest.mark.parametrize("number, run, expect", [
    (7, "long_s5_200", dict(S=5, weighting="mean", stats="joint")),
    (8, "long_split_bn_200", dict(S=1, weighting="sample", stats="split"))])
def test_a_configuration_is_a_200_epoch_runs_step(number, run, expect):
  """Configurations 7 and 8 build the steps of the two 200-epoch runs of
  docs/results (their flags.txt), so each run's steps/s can be set against the
  bench's on one host; the table names the per-pass statistics."""
  run = os.path.join(REPO, "docs/results", run)
  flags = experiments.read_flags(run)          # its --name=value lines
  with open(os.path.join(run, "flags.txt")) as f:
    switches = f.read().splitlines()           # and its boolean switches
  config = bench.run_config(bench.CONFIGS[number])
  m, d = config.model, config.data
  assert (m.model, m.mc_samples, m.iw_samples, m.unlabeled_weighting, m.bn_statistics) == (
      flags["model"], int(flags["mc_samples"]), int(flags["iw_samples"]),
      flags["unlabeled_weighting"], flags["bn_statistics"]) == (
      "sdgm", expect["S"], 1, expect["weighting"], expect["stats"])
  assert ",".join(map(str, m.hidden)) == flags["hidden"]
  assert (m.z_dim, m.a_dim) == (int(flags["z_dim"]), int(flags["a_dim"]))
  assert (d.labeled_batch_size, d.unlabeled_batch_size) == (
      int(flags["labeled_batch_size"]), int(flags["unlabeled_batch_size"]))
  assert m.batch_norm and "--batch_norm" in switches
  assert bench._label(dict(bench.CONFIGS[number])) == (
      "sdgm/split" if expect["stats"] == "split" else "sdgm")


def test_the_other_configurations_keep_the_defaults():
  default = config_lib.ModelConfig()
  assert {bench.run_config(c).model.unlabeled_weighting for c in bench.CONFIGS[:7]} == {
      default.unlabeled_weighting}
  assert {bench.run_config(c).model.bn_statistics for c in bench.CONFIGS[:8]} == {
      default.bn_statistics} == {"joint"}


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_short_benchmark_runs_and_prints_the_table(mnist_idx_dir, mnist_data_dir):
  out = subprocess.run(
      [sys.executable, "-m", "adgm_tf.bench", "--short", "--json", "--only=0",
       "--variants=fp32,bf16"],
      cwd=REPO, env=run_env(mnist_idx_dir, TFDS_DATA_DIR=mnist_data_dir),
      capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout)
  assert result["matmul_peak"]["gflops"] > 0
  assert result["bf16_matmul_peak"]["gflops"] > 0
  # One configuration is enough to test the script, under both arithmetics.
  assert [(r["model"], r["variant"], r["precision"]) for r in result["configs"]] == [
      ("adgm", "fp32", "float32"), ("adgm", "bf16", "mixed_bfloat16")]
  for r in result["configs"]:
    assert r["steps_per_s"] > 0 and r["gflop_per_step"] > 0 and r["peak_rss_gib"] > 0
    assert r["real_mnist"] is True
  fp32, bf16 = result["configs"]
  assert fp32["x_fp32"] == 1.0
  assert bf16["x_fp32"] == pytest.approx(bf16["steps_per_s"] / fp32["steps_per_s"])
  assert result["exported_classifier"]["p50_ms"] > 0
  table = bench.format_table(result)
  assert "fp32 matmul peak" in table and "bf16 matmul peak" in table
  assert "exported classifier" in table and " bf16 " in table


def test_kernels_names_what_runs_each_arithmetic():
  out = subprocess.run([sys.executable, "-m", "adgm_tf.bench", "--kernels", "--short", "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  rows = json.loads(out.stdout)
  assert [r["variant"] for r in rows] == list(bench.VARIANTS)
  assert all(r["ms"] > 0 and r["onednn_per_call"] >= 0 for r in rows)
  assert rows[0]["x_fp32"] == 1.0
  if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0":  # TensorFlow's x86 default
    # float32 matmuls outside XLA run in oneDNN, in float32.
    assert rows[0]["onednn_per_call"] > 0
    assert rows[0]["onednn_types"] and all(t.endswith(":f32") for t in rows[0]["onednn_types"])
  assert "oneDNN prims/call" in bench.format_kernels(rows)


@pytest.mark.parametrize("argv, message", [
    (["--variants=fp8"], "--variants=fp8: unknown; choose from fp32, bf16, xla, bf16+xla."),
    (["--variants="], "--variants was given without a value; name at least one of fp32, "
                      "bf16, xla, bf16+xla."),
    (["--only=9"], "--only=9: the configurations are numbered 0 to 8."),
    (["--only=x"], "--only=x: give configuration numbers, e.g. --only=0,2."),
    (["--kernels", "--only=9"], "--kernels times its fixed matmul shapes under every "
     "variant; it takes no --only. Run it alone (with --short or --json if wanted)."),
    (["--only", "0", "2"], "unexpected arguments 2: lists take commas, e.g. --only=0,2 "
                           "--variants=fp32,bf16."),
    (["--rounds=0"], "--rounds=0: give 1 or more (each round repeats every configuration "
                     "under every variant)."),
    (["--bogus"], "Unknown command line flag 'bogus' (--helpshort lists the flags)"),
])
def test_bad_arguments_are_one_line_before_any_measurement(argv, message):
  out = subprocess.run([sys.executable, "-m", "adgm_tf.bench", *argv], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert (out.returncode, out.stderr.strip()) == (2, f"adgm_tf.bench: error: {message}")
  assert out.stdout == ""


def test_rounds_interleave_and_report_medians_and_paired_ratios(monkeypatch):
  """--rounds: every round measures the peak then each variant; a row's steps/s is
  the median over rounds and x_fp32 the median of the per-round ratios."""
  calls = []
  speeds = {"fp32": [10.0, 6.0, 9.0], "bf16": [13.0, 9.0, 9.9]}  # ratios 1.3, 1.5, 1.1

  def fake_child(kind, payload, short):
    calls.append((kind, payload.get("precision", payload.get("dtype"))))
    if kind == "peak":
      return dict(n=2048, gflops=100.0 + len(calls), gflops_min=90.0, gflops_max=110.0)
    if kind == "export":
      return dict(samples=100, p50_ms=1.0, p99_ms=2.0, batch1024_images_per_s=1.0)
    variant = "fp32" if payload["precision"] == "float32" else "bf16"
    v = speeds[variant][sum(1 for k, p in calls if k == "config" and
                            (p == "float32") == (variant == "fp32")) - 1]
    return dict(payload["cfg"], samples=1, real_mnist=True, jit=False,
                precision=payload["precision"], steps_per_s=v, steps_per_s_min=v - 1,
                steps_per_s_max=v + 1, examples_per_s=200 * v, compute_steps_per_s=v,
                gflop_per_step=12.0, gflops=12.0 * v, compute_gflops=12.0 * v,
                peak_rss_gib=1.0)

  monkeypatch.setattr(bench, "_child", fake_child)
  result = bench.run(short=True, configs=[bench.CONFIGS[0]], variants=["fp32", "bf16"],
                     rounds=3)
  # Interleaved: peak, bf16 peak, fp32, bf16, then the same again, twice more.
  assert [k for k, _ in calls] == ["peak", "peak", "config", "config"] * 3 + ["export"]
  fp32, bf16 = result["configs"]
  assert fp32["steps_per_s"] == 9.0 and bf16["steps_per_s"] == 9.9
  assert bf16["rounds_steps_per_s"] == [13.0, 9.0, 9.9]
  assert bf16["x_fp32"] == pytest.approx(1.3)  # median of 1.3, 1.5, 1.1
  assert fp32["x_fp32"] == 1.0
  assert (bf16["steps_per_s_min"], bf16["steps_per_s_max"]) == (8.0, 14.0)
  # % of peak: each round's against that round's fp32 peak (101, 105, 109).
  assert fp32["fraction_of_peak"] == pytest.approx(np.median(
      [12 * 10 / 101, 12 * 6 / 105, 12 * 9 / 109]))
  assert result["matmul_peak"]["gflops"] == 105.0
  assert "3 interleaved rounds" in bench.format_table(result)
  with pytest.raises(ValueError, match="rounds"):
    bench.run(short=True, rounds=0)
