"""What the probes share: a run's model and its own training split, binarised
batches drawn as training draws them, and the command line
(``python -m experiments.probes.NAME --model_dir=MODEL_DIR [--checkpoint=PREFIX]``)."""
import json
import os
import sys

import numpy as np

from adgm_tf import cli

tf = cli.import_tensorflow()

from adgm_tf import config as config_lib  # noqa: E402
from adgm_tf import pipeline  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import rundir  # noqa: E402
from adgm_tf.errors import ConfigError  # noqa: E402


def load(model_dir, checkpoint=None):
  """``(model, checkpoint path, split, images [N, 784] uint8)``: the run's model
  and the labeled/unlabeled/validation split it trained on (``pipeline.build_data``)."""
  return load_with_config(model_dir, checkpoint)[1:]


def load_with_config(model_dir, checkpoint=None, validation=False):
  """:func:`load` with the run's ``Config`` first: ``(config, model, path, split, images)``.

  ``validation``: the probe reads the run's validation images; a run that held
  out none (``--validation_size=0``) gets a clear error before anything loads.
  """
  run_config(model_dir, validation)
  config, model, path = rundir.load_run(model_dir, checkpoint)
  split = pipeline.build_data(config).split
  images = split.arrays.train_images.reshape(len(split.arrays.train_images), -1)
  return config, model, path, split, images


def run_config(model_dir, validation=False):
  """The run's ``Config`` from its config.json, without loading a model;
  ``validation``: a clear error if the run held out no validation images."""
  config = config_lib.Config.from_dict(rundir.read_run(model_dir)[1]["config"])
  if validation and not config.data.validation_size:
    raise ConfigError(f"{model_dir}: the run has no validation images "
                      f"(--validation_size=0).")
  return config


def load_with_a(model_dir, checkpoint=None):
  """:func:`load` for a model with a stochastic a, plus the warm-up weight of
  the a-terms at the checkpoint's step: ``(model, path, split, images, w)``."""
  model, path, split, images = load(model_dir, checkpoint)
  if model.q_a is None or model.wiring.auxiliary != "stochastic":
    raise ConfigError(f"{model_dir}: this model has no stochastic a.")
  step = int(path.rsplit("-", 1)[1])
  w = float(model.aux_kl_weight(step)) if model.aux_warmup_steps else 1.0
  return model, path, split, images, w


def binarised(rng, images, idx):
  """Images ``idx`` as one Bernoulli draw of their grey levels, ``[len(idx), 784]``."""
  return tf.cast(rng.random((len(idx), images.shape[1])) < images[idx] / 255.0, tf.float32)


def labels(split, idx):
  return tf.constant(split.arrays.train_labels[idx].astype(np.int32))


def check_new_file(flag, path):
  """A clear error unless ``path`` (the value of ``--flag``) is a new file in an
  existing directory (the probes never overwrite what they wrote)."""
  if path and os.path.exists(path):
    raise ConfigError(f"--{flag}={path} exists; it is not overwritten: give a new "
                      f"file name.")
  if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
    raise ConfigError(f"--{flag}={path}: its directory does not exist; create it "
                      f"first.")


def write_json(path, obj) -> None:
  """``obj`` as indented JSON to the new file ``path`` (checked first with
  :func:`check_new_file`; never overwritten), and say so."""
  with open(path, "x") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")
  print(f"  written: {path}")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  here = sys.argv[0]  # listed by --helpshort as the probe's own flags
  flags.DEFINE_string("model_dir", None, "the run directory (config.json, checkpoints/)",
                      module_name=here)
  flags.DEFINE_string("checkpoint", None, "a checkpoint prefix (ckpt-<step> alone: in model_dir/"
                      "checkpoints), or a directory of checkpoints (its newest, e.g. "
                      "kept/epoch-100/best, inside the run); default: the newest",
                      module_name=here)
  flags.mark_flag_as_required("model_dir")


def run(main, name: str) -> None:
  """``python -m experiments.probes.NAME --model_dir=MODEL_DIR [--checkpoint=PREFIX]``:
  ``main(model_dir, checkpoint)`` on one thread, with one-line errors."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  def body(argv):
    if len(argv) > 1:
      raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --model_dir "
                        f"(and --checkpoint).")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    main(flags.FLAGS.model_dir, flags.FLAGS.checkpoint)

  cli.run_absl(f"experiments.probes.{name}", body, define_flags)
