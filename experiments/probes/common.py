"""What the probes share: a run's model and its own training split, binarised
batches drawn as training draws them, and the command-line wrapper."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from adgm_tf import cli  # noqa: E402

tf = cli.import_tensorflow()

from adgm_tf import rundir  # noqa: E402
from adgm_tf import pipeline  # noqa: E402


def load(model_dir, checkpoint=None):
  """``(model, checkpoint path, split, images [N, 784] uint8)``: the run's model
  and the labeled/unlabeled/validation split it trained on (``pipeline.build_data``)."""
  config, model, path = rundir.load_run(model_dir, checkpoint)
  split = pipeline.build_data(config).split
  images = split.arrays.train_images.reshape(len(split.arrays.train_images), -1)
  return model, path, split, images


def load_with_a(model_dir, checkpoint=None):
  """:func:`load` for a model with a stochastic a, plus the warm-up weight of
  the a-terms at the checkpoint's step: ``(model, path, split, images, w)``."""
  model, path, split, images = load(model_dir, checkpoint)
  if model.q_a is None or model.wiring.auxiliary != "stochastic":
    raise SystemExit(f"{model_dir}: this model has no stochastic a.")
  step = int(path.rsplit("-", 1)[1])
  w = float(model.aux_kl_weight(step)) if model.aux_warmup_steps else 1.0
  return model, path, split, images, w


def binarised(rng, images, idx):
  """Images ``idx`` as one Bernoulli draw of their grey levels, ``[len(idx), 784]``."""
  return tf.cast(rng.random((len(idx), images.shape[1])) < images[idx] / 255.0, tf.float32)


def labels(split, idx):
  return tf.constant(split.arrays.train_labels[idx].astype(np.int32))


def run(main, file, usage):
  """``python FILE RUN_DIR [CHECKPOINT_PREFIX]``: one thread, one-line errors."""
  if not 2 <= len(sys.argv) <= 3:
    raise SystemExit(f"usage: python {usage}")
  tf.config.threading.set_intra_op_parallelism_threads(1)
  cli.run_main(f"experiments/probes/{os.path.basename(file)}", lambda: main(*sys.argv[1:3]))
