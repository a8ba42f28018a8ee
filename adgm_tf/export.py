"""SavedModel export for TensorFlow Serving.

``export_saved_model(model, export_dir)`` writes ``export_dir/<version>/``
(TF Serving's layout; the next free integer version, an existing version is
never overwritten; written to a temporary directory and renamed, so a server
watching ``export_dir`` never sees half a model) with two signatures:

* ``serving_default``: ``images`` float32 ``[None, 784]`` in [0, 1] ->
  ``probabilities`` float32 ``[None, 10]`` (qbar(y|x), S_eval samples of a
  averaged) and ``classes`` int32 ``[None]``. Deterministic: the S_eval noise
  vectors are fixed, and shared by all images of a request, so an image's
  answer does not depend on the rest of the batch.
* ``generate``: ``labels`` int32 ``[None]`` -> ``images`` float32
  ``[None, 784]``, pixel means of p(x|y,z) with z ~ N(0, I) drawn from a
  fixed seed per position.

The graph holds stock TensorFlow ops only: it loads with plain TensorFlow in
a process that imports neither adgm_tf nor TensorFlow Probability.

Command line, from any checkpoint of a run::

  python -m adgm_tf.export --model_dir=runs/mnist100 --export_dir=exports/adgm

then, for example::

  docker run -p 8501:8501 -v "$PWD/exports/adgm:/models/adgm" \\
      -e MODEL_NAME=adgm tensorflow/serving
  curl -X POST localhost:8501/v1/models/adgm:predict \\
      -d '{"instances": [[0.0, 0.0, ..., 0.0]]}'   # 784 floats in [0, 1]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

import keras
import tensorflow as tf


def serving_signatures(model, samples: Optional[int] = None):
  """The two tf.functions that make up the export."""
  samples = int(samples or model.eval_samples)
  x_dim, num_classes = model.x_dim, model.num_classes

  @tf.function(input_signature=[tf.TensorSpec([None, x_dim], tf.float32, name="images")])
  def serve(images):
    checks = [
        tf.debugging.assert_greater_equal(
            images, 0.0, message="images must be in [0, 1]: divide uint8 pixels by 255"),
        tf.debugging.assert_less_equal(
            images, 1.0, message="images must be in [0, 1]: divide uint8 pixels by 255"),
    ]
    with tf.control_dependencies(checks):
      log_probs = model.predict_log_proba(images, samples)
    return {"probabilities": tf.exp(log_probs),
            "classes": tf.argmax(log_probs, axis=1, output_type=tf.int32)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="labels")])
  def generate(labels):
    checks = [
        tf.debugging.assert_greater_equal(
            labels, 0, message=f"labels must be in [0, {num_classes})"),
        tf.debugging.assert_less(
            labels, num_classes, message=f"labels must be in [0, {num_classes})"),
    ]
    with tf.control_dependencies(checks):
      images = model.generate(labels)
    return {"images": images}

  return serve, generate


def next_version(export_dir: str) -> int:
  if not os.path.isdir(export_dir):
    return 1
  versions = [int(d) for d in os.listdir(export_dir) if d.isdigit()]
  return max(versions, default=0) + 1


def export_saved_model(model, export_dir: str, version: Optional[int] = None,
                       samples: Optional[int] = None,
                       metadata: Optional[dict] = None) -> str:
  """Exports ``model`` to ``export_dir/<version>``; returns that path."""
  os.makedirs(export_dir, exist_ok=True)
  version = next_version(export_dir) if version is None else int(version)
  if version < 1:
    raise ValueError(f"version must be a positive integer, got {version}")
  final = os.path.join(export_dir, str(version))
  if os.path.exists(final):
    raise FileExistsError(
        f"{final} already exists; a SavedModel version is never overwritten. "
        f"Leave version unset to take the next one ({next_version(export_dir)}).")
  serve, generate = serving_signatures(model, samples)
  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint("serving_default", serve)
  archive.add_endpoint("generate", generate)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
  try:
    archive.write_out(tmp, verbose=False)
    extra = os.path.join(tmp, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "adgm_tf.json"), "w") as f:
      json.dump(dict(metadata or {}, model_config=model.get_config(),
                     eval_samples=int(samples or model.eval_samples),
                     signatures=["serving_default", "generate"]), f, indent=2,
                default=str)
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def _main(argv):  # pragma: no cover - exercised through a subprocess in tests
  from absl import flags  # pylint: disable=g-import-not-at-top
  from adgm_tf import train  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  path = train.export_from_checkpoint(f.model_dir, f.export_dir,
                                      version=f.version, checkpoint=f.checkpoint,
                                      samples=f.samples)
  print(path)


def _define_flags():  # pragma: no cover
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_dir", None, "Run directory (holds config.json and checkpoints/).")
  flags.DEFINE_string("export_dir", None, "Where to write <version>/ (TF Serving's model base path).")
  flags.DEFINE_integer("version", None, "Version number; default: the next free one.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; default: the latest in model_dir.")
  flags.DEFINE_integer("samples", None, "S_eval for serving; default: the run's --eval_samples.")
  flags.mark_flags_as_required(["model_dir", "export_dir"])


if __name__ == "__main__":  # pragma: no cover
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(_main)
