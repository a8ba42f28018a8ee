"""Cross-module: a user's own images (--dataset=npz:PATH) through launch.py,
the export and serving, on real data: scikit-learn's 8x8 digits.

The digits ship inside scikit-learn (1,797 images of 8x8 grey levels 0..16,
10 classes); no download. The bad-archive cases of tests/test_data.py are
replayed through the command line: each ends in one line, before TensorFlow
loads.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_env
from test_data import _bad_npz_cases

# A small network and budget: the digits are 8x8, 15 steps an epoch.
FLAGS = ["--flagfile=mnist100.flags", "--hidden=64", "--z_dim=8", "--a_dim=8",
         "--mc_samples=1", "--unlabeled_batch_size=100", "--eval_every=2",
         "--checkpoint_every=2", "--eval_samples=20", "--eval_samples_periodic=5",
         "--ll_samples=10", "--ll_examples=50", "--summary_every=50",
         "--learning_rate=3e-3", "--lr_decay_every=1000", "--progress=epoch",
         "--seed=1", "--label_seed=1"]


def digits(classes=None):
  """scikit-learn's digits as uint8 grey levels [N, 8, 8] and labels."""
  from sklearn.datasets import load_digits
  d = load_digits()
  x = np.round(d.images / 16.0 * 255.0).astype(np.uint8)
  y = d.target.astype(np.int64)
  if classes is not None:
    keep = np.isin(y, classes)
    x, y = x[keep], np.searchsorted(classes, y[keep])
  return x, y


def launch(args, tmp_path, timeout=600):
  return subprocess.run([sys.executable, "launch.py"] + args, cwd=REPO,
                        env=run_env(""), capture_output=True, text=True,
                        timeout=timeout)


def served(export_dir, images):
  import tensorflow as tf
  loaded = tf.saved_model.load(os.path.join(export_dir, "1"))
  serve = loaded.signatures["serving_default"]
  out = serve(images=tf.constant(images.reshape(len(images), -1).astype(np.float32) / 255.0))
  return serve, out["classes"].numpy()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  """K = 10, 8x8, with a test set: 100 labels, 20 epochs."""
  tmp = tmp_path_factory.mktemp("digits")
  x, y = digits()
  np.savez(tmp / "digits.npz", x_train=x[:1500], y_train=y[:1500], x_test=x[1500:],
           y_test=y[1500:])
  out = launch(FLAGS + [f"--dataset=npz:{tmp / 'digits.npz'}", "--num_labels=100",
                        "--labeled_batch_size=100", "--epochs=20",
                        f"--model_dir={tmp / 'run'}", f"--export_dir={tmp / 'export'}"],
               tmp)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  with open(tmp / "run" / "metrics.json") as f:
    metrics = json.load(f)
  return dict(tmp=tmp, metrics=metrics, x_test=x[1500:], y_test=y[1500:], out=out)


def test_own_8x8_digits_train_export_and_serve_the_logged_error(digits_run):
  m = digits_run["metrics"]
  # 297 test images, 10 classes (chance: 90% error).
  assert m["test_error"] < 0.35, m["test_error"]
  assert m["aux_alive_fraction"] is not None
  with open(digits_run["tmp"] / "run" / "config.json") as f:
    derived = json.load(f)["derived"]
  assert (derived["x_dim"], derived["num_classes"], derived["image_shape"]) == (64, 10, [8, 8, 1])
  serve, classes = served(digits_run["tmp"] / "export", digits_run["x_test"])
  assert float(np.mean(classes != digits_run["y_test"])) == pytest.approx(m["test_error"])
  # The signature's message names the width it expects.
  import tensorflow as tf
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[batch, 64\]"):
    serve(images=tf.zeros([2, 784]))
  # The log holds one line per epoch, no progress-bar redraws (stdout is a pipe).
  assert "\r" not in digits_run["out"].stdout
  assert sum(line.startswith("epoch ") for line in digits_run["out"].stdout.splitlines()) == 20


@pytest.mark.large  # the evaluation command is tested on MNIST in the default run
def test_the_evaluation_command_reads_the_same_archive(digits_run, tmp_path):
  run = digits_run["tmp"] / "run"
  out = subprocess.run(
      [sys.executable, "-m", "adgm_tf.evaluate", f"--model_dir={run}",
       f"--output={tmp_path / 'eval.json'}", f"--samples_png={tmp_path / 's.png'}",
       "--samples=20"], cwd=REPO, env=run_env(""), capture_output=True, text=True,
      timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  with open(tmp_path / "eval.json") as f:
    ev = json.load(f)
  assert ev["test_error"] == pytest.approx(digits_run["metrics"]["test_error"])
  from PIL import Image
  assert Image.open(tmp_path / "s.png").size == (80, 80)  # 10 x 10 samples of 8x8


def test_three_classes_without_a_test_set(tmp_path):
  """K = 3 (digits 0, 1, 2), no x_test: the validation split is drawn from the
  training images, the classifier is 3 wide, and serving it on the held-out
  images gives the logged validation error."""
  x, y = digits(classes=[0, 1, 2])
  np.savez(tmp_path / "three.npz", x_train=x, y_train=y)
  out = launch(FLAGS + [f"--dataset=npz:{tmp_path / 'three.npz'}", "--num_labels=30",
                        "--labeled_batch_size=30", "--unlabeled_batch_size=50",
                        "--epochs=6", f"--model_dir={tmp_path / 'run'}",
                        f"--export_dir={tmp_path / 'export'}"], tmp_path)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  with open(tmp_path / "run" / "metrics.json") as f:
    m = json.load(f)
  with open(tmp_path / "run" / "config.json") as f:
    derived = json.load(f)["derived"]
  assert m["test_error"] is None and m["validation_error"] < 0.3  # chance: 67%
  assert derived["num_classes"] == 3 and derived["num_validation"] == round(0.1 * len(y))
  # The held-out images are those of the split the run drew (same seed).
  from adgm_tf import data
  split = data.split_semi_supervised(data.load_npz(str(tmp_path / "three.npz")),
                                     num_labels=30, label_seed=1)
  serve, classes = served(tmp_path / "export", x[split.validation])
  assert float(np.mean(classes != y[split.validation])) == pytest.approx(m["validation_error"])


@pytest.mark.parametrize("arrays,message", _bad_npz_cases())
def test_bad_archives_through_the_command_line(tmp_path, arrays, message):
  path = str(tmp_path / "bad.npz")
  np.savez(path, **arrays)
  out = launch(["--flagfile=tests/tiny.flags", f"--dataset=npz:{path}",
                f"--model_dir={tmp_path / 'run'}"], tmp_path, timeout=120)
  assert out.returncode != 0 and "Traceback" not in out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], out.stderr
  assert not os.path.exists(tmp_path / "run")  # nothing written


@pytest.mark.parametrize("args,message", [
    (["--dataset=npz:/nonexistent/x.npz"], "--dataset=npz:/nonexistent/x.npz: no such file"),
    (["--dataset=cifar"], "--dataset='cifar': choose one of ['fashion_mnist', 'mnist']"),
    (["--dataset=tfds:"], "give a tensorflow-datasets name after 'tfds:'"),
])
def test_bad_dataset_flags_are_one_line(tmp_path, args, message):
  out = launch(["--flagfile=tests/tiny.flags", f"--model_dir={tmp_path / 'run'}"] + args,
               tmp_path, timeout=120)
  assert out.returncode != 0 and "Traceback" not in out.stderr
  assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
