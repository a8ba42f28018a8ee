"""A real TensorBoard reads the tiny run's events: scalars, images, histograms, hparams."""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from adgm_tf import summaries


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def tensorboard(tiny_run):
  port = _free_port()
  proc = subprocess.Popen(
      [sys.executable, "-m", "tensorboard.main", "--logdir", tiny_run["model_dir"],
       "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  base = f"http://127.0.0.1:{port}"

  def get(path, raw=False):
    with urllib.request.urlopen(base + path, timeout=10) as r:
      body = r.read()
    return body if raw else json.loads(body)

  try:
    deadline = time.time() + 60
    while True:
      try:
        if sorted(get("/data/runs")) == ["eval", "train"]:
          break
      except OSError:
        pass
      assert proc.poll() is None, proc.communicate()[1][-2000:]
      assert time.time() < deadline, "tensorboard did not come up"
      time.sleep(0.5)
    yield get
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
      proc.kill()


def test_scalars_for_every_metric_train_and_eval(tensorboard):
  tags = tensorboard("/data/plugin/scalars/tags")
  train = set(tags["train"])
  for name in ("loss", "elbo_labeled", "elbo_unlabeled", "classification", "kl_z",
               "kl_a", "log_px", "accuracy", "learning_rate", "epoch/loss",
               "epoch/learning_rate"):
    assert name in train, (name, sorted(train))
  evals = set(tags["eval"])
  for name in ("test_error", "test_elbo_labeled", "test_elbo_unlabeled",
               "active_units_z", "active_units_a", "final/test_error",
               "final/test_log_likelihood"):
    assert name in evals, (name, sorted(evals))
  points = tensorboard("/data/plugin/scalars/scalars?run=eval&tag=test_error")
  assert [p[1] for p in points][:2] == [10, 20]  # one evaluation per epoch
  assert all(0 <= p[2] <= 1 for p in points)


def test_sample_grid_and_kl_histograms(tensorboard):
  images = tensorboard("/data/plugin/images/tags")
  assert "samples/class_conditional" in images["eval"]
  entries = tensorboard("/data/plugin/images/images?run=eval&tag="
                        + urllib.parse.quote("samples/class_conditional"))
  assert len(entries) >= 2
  png = tensorboard("/data/plugin/images/" + entries[-1]["query"].join(
      ["individualImage?", ""]), raw=True)
  from PIL import Image
  assert Image.open(io.BytesIO(png)).size == (280, 280)  # 10 x 10 digits of 28
  hist = tensorboard("/data/plugin/histograms/tags")
  assert {"kl_per_unit/z", "kl_per_unit/a"} <= set(hist["eval"])


def test_hyperparameters_are_recorded(tensorboard):
  listing = tensorboard("/data/plugins_listing")
  assert listing["hparams"]["enabled"] is True


def test_flatten_config():
  flat = summaries.flatten_config({"model": {"hidden": (500, 500), "z_dim": 100}})
  assert flat == {"model.hidden": "500,500", "model.z_dim": 100}
