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
    get.base = base
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
  for name in ("2_bounds/elbo_labeled", "2_bounds/elbo_unlabeled", "2_bounds/classification",
               "2_bounds/kl_z", "2_bounds/kl_a", "2_bounds/log_px", "4_optimizer/loss",
               "4_optimizer/labeled_batch_accuracy", "4_optimizer/learning_rate",
               "4_optimizer/epoch_seconds"):
    assert name in train, (name, sorted(train))
  evals = set(tags["eval"])
  for name in ("1_evaluation/test_error", "1_evaluation/final_test_error",
               "1_evaluation/final_test_log_likelihood", "2_bounds/elbo_labeled",
               "2_bounds/elbo_unlabeled", "2_bounds/active_units_z",
               "3_auxiliary/alive_fraction", "3_auxiliary/mean_spread",
               "3_auxiliary/swap_error", "3_auxiliary/information"):
    assert name in evals, (name, sorted(evals))
  points = tensorboard("/data/plugin/scalars/scalars?run=eval&tag="
                       + urllib.parse.quote("1_evaluation/test_error"))
  assert [p[1] for p in points][:2] == [10, 20]  # one evaluation per epoch
  assert all(0 <= p[2] <= 1 for p in points)


def test_a_newcomer_sees_evaluation_first_then_bounds_auxiliary_optimizer(tensorboard):
  """The groups a user scans, in TensorBoard's own order (by name)."""
  tags = tensorboard("/data/plugin/scalars/tags")
  groups = sorted({t.split("/")[0] for run in tags.values() for t in run})
  assert groups == ["1_evaluation", "2_bounds", "3_auxiliary", "4_optimizer"]
  # The evaluation group's data, as the scalars page fetches it.
  body = urllib.parse.urlencode({"requests": json.dumps([
      {"plugin": "scalars", "tag": "1_evaluation/test_error", "run": "eval"}])}).encode()
  with urllib.request.urlopen(
      tensorboard.base + "/experiment/defaultExperimentId/data/plugin/timeseries/timeSeries",
      data=body, timeout=10) as r:
    series = json.loads(r.read())
  runs = series[0]["runToSeries"]["eval"]
  assert [p["step"] for p in runs][:2] == [10, 20]
  # The auxiliary group carries its descriptions (what a dead a looks like).
  described = tensorboard("/data/plugin/scalars/tags")["eval"]["3_auxiliary/mean_spread"]
  assert "noise" in described["description"]


def test_hparams_list_the_final_errors(tensorboard):
  body = json.dumps({"experimentName": ""}).encode()
  with urllib.request.urlopen(urllib.request.Request(
      tensorboard.base + "/data/plugin/hparams/experiment", data=body,
      headers={"Content-Type": "application/json"}), timeout=10) as r:
    experiment = json.loads(r.read())
  metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
  assert {"1_evaluation/final_test_error", "1_evaluation/final_validation_error"} <= metrics
  assert any(h["name"] == "model.model" for h in experiment["hparamInfos"])


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


@pytest.mark.parametrize("name,tag", [
    ("test_error", "1_evaluation/test_error"),
    ("final_validation_error", "1_evaluation/final_validation_error"),
    ("test_elbo_unlabeled", "2_bounds/elbo_unlabeled"),
    ("validation_elbo_labeled", "2_bounds/validation_elbo_labeled"),
    ("kl_a", "2_bounds/kl_a"),
    ("aux_swap_error", "3_auxiliary/swap_error"),
    ("validation_aux_information", "3_auxiliary/validation/information"),
    ("accuracy", "4_optimizer/labeled_batch_accuracy"),
    ("learning_rate", "4_optimizer/learning_rate"),
    ("something_else", None),
])
def test_every_metric_has_its_group(name, tag):
  assert summaries.tag(name) == tag
