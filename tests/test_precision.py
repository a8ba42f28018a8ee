"""Cross-module: --precision=bf16 trains the same model as fp32 (a large test).

The accuracy of bfloat16 on the real recipe is measured by
experiments/precision_check.json (10 epochs, 3 seeds); this test checks, on
real MNIST and a small network, that a bf16 run reaches the fp32 run's
validation error within a few points and keeps a alive. bf16 is emulated
(and slow) on CPUs without bf16 instructions; the arithmetic is the same.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_env


def _run(tmp_path, precision, mnist_idx_dir, mnist_data_dir):
  model_dir = str(tmp_path / precision)
  out = subprocess.run(
      [sys.executable, "launch.py", "--flagfile=tests/tiny.flags", "--model=sdgm",
       "--epochs=4", "--validation_size=1000", "--test_evaluation=never",
       "--ll_examples=0", f"--precision={precision}", f"--model_dir={model_dir}",
       f"--data_dir={mnist_data_dir}", "--seed=1", "--label_seed=1"],
      cwd=REPO, env=run_env(mnist_idx_dir), capture_output=True, text=True, timeout=1200)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  with open(os.path.join(model_dir, "metrics.json")) as f:
    return json.load(f)


@pytest.mark.large
def test_bf16_reaches_the_fp32_validation_error(tmp_path, mnist_idx_dir, mnist_data_dir):
  fp32 = _run(tmp_path, "fp32", mnist_idx_dir, mnist_data_dir)
  bf16 = _run(tmp_path, "bf16", mnist_idx_dir, mnist_data_dir)
  assert abs(bf16["validation_error"] - fp32["validation_error"]) < 0.05, (fp32, bf16)
  assert bf16["validation_aux_alive_fraction"] >= 0.5
  assert bf16["weights_sha256"] != fp32["weights_sha256"]  # it did run in bf16
