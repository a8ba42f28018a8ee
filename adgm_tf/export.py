r"""SavedModel export for TensorFlow Serving.

``export_saved_model(model, export_dir)`` writes ``export_dir/<version>/``
(TF Serving's layout; the next free integer version, an existing version is
never overwritten; written to a temporary directory and renamed, so a server
watching ``export_dir`` never sees half a model) with two signatures:

* ``serving_default``: ``images`` float32 ``[batch, 784]`` in [0, 1] (the
  shape is checked in the graph, with a message saying what is expected:
  TF Serving does not check requests against a signature) ->
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

  docker run -p 8501:8501 -v "$PWD/exports/adgm:/models/adgm" \
      -e MODEL_NAME=adgm tensorflow/serving
  curl -X POST localhost:8501/v1/models/adgm:predict \
      -d '{"instances": [[0.0, 0.0, ..., 0.0]]}'   # 784 floats in [0, 1]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

from adgm_tf import cli
from adgm_tf import rundir
from adgm_tf.errors import ConfigError


def _checked(value, ok, message, empty_shape):
  """``value`` if ``ok`` holds, else an InvalidArgumentError with ``message``.

  A cond whose failing branch asserts and returns a well-formed empty tensor
  (``empty_shape``): ops that depend on the result only through a control
  edge, or on the bad value itself, could otherwise fail first with a shape
  error instead of the message.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def fail():
    with tf.control_dependencies([tf.debugging.Assert(False, message, summarize=8)]):
      return tf.zeros(empty_shape, value.dtype)

  return tf.cond(ok, lambda: tf.identity(value), fail)


def serving_signatures(model, samples: Optional[int] = None):
  """The two tf.functions that make up the export."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  samples = int(samples or model.eval_samples)
  x_dim, num_classes = model.x_dim, model.num_classes

  shape_message = (f"images must be a float32 tensor of shape [batch, {x_dim}]: each "
                   f"image's {x_dim} grey levels in [0, 1], flattened row by row with "
                   f"channels last, as the model was trained (divide uint8 pixels by "
                   f"255)")

  # The input's shape is left unknown in the signature and checked here:
  # TF Serving feeds requests without checking them against the signature, and
  # a declared [None, 784] would let TensorFlow fold these checks away.
  @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
  def serve(images):
    shape = tf.shape(images)
    shape_ok = tf.logical_and(tf.equal(tf.size(shape), 2),
                              tf.reduce_all(tf.equal(shape[-1:], x_dim)))
    images = tf.ensure_shape(_checked(images, shape_ok, [shape_message + "; got shape",
                                                         shape], [0, x_dim]), [None, x_dim])
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

  @tf.function(input_signature=[tf.TensorSpec(None, tf.int32, name="labels")])
  def generate(labels):
    labels = tf.ensure_shape(_checked(
        labels, tf.equal(tf.rank(labels), 1),
        [f"labels must be an int32 vector [batch] of classes in [0, {num_classes}); "
         f"got shape", tf.shape(labels)], [0]), [None])
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


def check_export_args(export_dir: str, version: Optional[int] = None,
                      samples: Optional[int] = None) -> int:
  """Checks the arguments before anything is written; returns the version to write."""
  if samples is not None and int(samples) < 1:
    raise ConfigError(f"--samples={samples}: the classifier averages q(y|a,x) over "
                      f"samples of a, so give at least 1 (default: the run's "
                      f"--eval_samples).")
  if version is not None and int(version) < 1:
    raise ConfigError(f"--version={version}: TF Serving versions are positive "
                      f"integers; leave it out to take the next free one.")
  if os.path.exists(export_dir) and not os.path.isdir(export_dir):
    raise ConfigError(f"--export_dir={export_dir} is a file, not a directory.")
  version = next_version(export_dir) if version is None else int(version)
  final = os.path.join(export_dir, str(version))
  if os.path.exists(final):
    raise FileExistsError(
        f"{final} already exists; a SavedModel version is never overwritten. "
        f"Leave --version out to take the next one ({next_version(export_dir)}).")
  return version


def export_saved_model(model, export_dir: str, version: Optional[int] = None,
                       samples: Optional[int] = None,
                       metadata: Optional[dict] = None) -> str:
  """Exports ``model`` to ``export_dir/<version>``; returns that path."""
  import keras  # pylint: disable=g-import-not-at-top
  version = check_export_args(export_dir, version, samples)
  os.makedirs(export_dir, exist_ok=True)
  final = os.path.join(export_dir, str(version))
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


def export_from_checkpoint(model_dir: str, export_dir: str, version=None,
                           checkpoint=None, samples=None) -> str:
  """``python -m adgm_tf.export``: a SavedModel from any checkpoint of a run.

  Every argument is checked before anything is written.
  """
  check_export_args(export_dir, version, samples)
  rundir.check_writable(export_dir, "export_dir")
  config, model, path = rundir.load_run(model_dir, checkpoint)
  return export_saved_model(
      model, export_dir, version=version, samples=samples,
      metadata=dict(checkpoint=path, config=config.to_dict()))


def main(argv):  # pragma: no cover - exercised through a subprocess in tests
  """``python -m adgm_tf.export``: a run's checkpoint as a SavedModel for TF Serving."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: every input is a "
                      f"flag (--helpshort lists them).")
  f = flags.FLAGS
  cli.import_tensorflow(show=f.show_tf_logs or None)
  path = export_from_checkpoint(f.model_dir, f.export_dir, version=f.version,
                                checkpoint=f.checkpoint, samples=f.samples)
  print(f"exported {f.model_dir} to {path}")
  print(f"serve it: tensorflow_model_server --model_name=adgm "
        f"--model_base_path={os.path.abspath(f.export_dir)} --rest_api_port=8501")


def define_flags():  # pragma: no cover
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_dir", None, "Run directory (holds config.json and checkpoints/).")
  flags.DEFINE_string("export_dir", None, "Where to write <version>/ (TF Serving's model base path).")
  flags.DEFINE_integer("version", None, "Version number; default: the next free one.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (ckpt-<step> alone is looked up "
                      "in model_dir/checkpoints), or 'best': the run's checkpoint with the "
                      "lowest validation error; default: the latest in model_dir.")
  flags.DEFINE_integer("samples", None, "S_eval for serving; default: the run's --eval_samples.")
  flags.mark_flags_as_required(["model_dir", "export_dir"])


if __name__ == "__main__":  # pragma: no cover
  cli.run_absl("adgm_tf.export", main, define_flags)
