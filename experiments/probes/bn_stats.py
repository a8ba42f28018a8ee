"""Probe: how much of a checkpoint's validation error is its batch-norm averages?

Evaluation normalises with moving averages (momentum 0.9: in effect the
last ~10 training batches), so two checkpoints with the same weights but
other recent batches could classify differently. For one checkpoint, on the
validation images only (never test), this prints the error (the run's
evaluation: grey images, ``eval_samples`` samples of a, fixed noise):

* with the checkpoint's own moving averages;
* after each of ``--refreshes`` refreshes of the averages: 20 forward passes
  in training mode on fresh training batches (labeled + unlabeled, Bernoulli
  pixels, as training draws them; the weights untouched), which replace 88%
  of the averages (1 - 0.9^20): the spread of these errors is the part of
  an evaluation's error that the averages' noise explains;
* with population statistics: the averages replaced by the plain mean of the
  batch statistics over ``--population_batches`` such batches (each pass
  run with momentum 0), the usual "precise batch norm".

    python -m experiments.probes.bn_stats --model_dir=MODEL_DIR [--checkpoint=PREFIX]

The batch-norm variables are restored afterwards in memory; nothing on disk
changes.
"""

import numpy as np

from experiments.probes import common
from experiments.probes.common import tf

from adgm_tf import evaluation  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import networks  # noqa: E402


def _bn_layers(model):
  layers = [bn for bn in model._flatten_layers(include_self=False, recursive=True)  # noqa: SLF001
            if isinstance(bn, networks.BatchNormalization)]
  if not layers:
    raise common.ConfigError("this run has no batch norm (--nobatch_norm): nothing to probe.")
  return layers


def main(model_dir, checkpoint=None, refreshes=None, population_batches=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  refreshes = refreshes if refreshes is not None else flags.FLAGS.refreshes
  population_batches = (population_batches if population_batches is not None
                        else flags.FLAGS.population_batches)
  if refreshes < 0 or population_batches < 0:
    raise common.ConfigError("--refreshes and --population_batches must be >= 0.")
  config, model, path, split, images = common.load_with_config(model_dir, checkpoint,
                                                               validation=True)
  samples = int(config.model.eval_samples)
  layers = _bn_layers(model)
  saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy(), bn.momentum) for bn in layers]
  ev = evaluation.Evaluator(model, config.data.eval_batch_size)
  val_x, val_y = evaluation.split_images(split, "validation")

  def error():
    return 100 * ev.error(val_x, val_y, samples, binarize=config.data.binarize_eval,
                          seed=config.train.seed)

  rng = np.random.default_rng(0)
  n_l, n_u = config.data.labeled_batch_size, config.data.unlabeled_batch_size
  x_l = images[split.labeled]
  y_l = common.labels(split, split.labeled)
  def traced_forward():  # a training-mode pass; traced anew to read bn.momentum
    return tf.function(lambda a, b, c, noise: model.compute_loss_terms(
        a, b, c, noise, training=True)[0])

  forward = traced_forward()

  def batch_pass(k):
    take = rng.choice(len(split.labeled), min(n_l, len(split.labeled)), replace=False)
    xu = common.binarised(rng, images, rng.choice(split.unlabeled, n_u))
    xl = common.binarised(rng, x_l, take)
    noise = model.sample_noise(tf.constant([11, k], tf.int64), max(1, model.mc_samples),
                               len(take), n_u)
    forward(xl, tf.gather(y_l, take), xu, noise)

  print(f"{path}: validation error, {len(val_y)} images, {samples} samples of a")
  print(f"  own moving averages: {error():.2f}%")
  errors = []
  for r in range(refreshes):
    for k in range(20):
      batch_pass(1000 * r + k)
    errors.append(error())
  if errors:
    print(f"  after each of {refreshes} refreshes (20 fresh batches each): "
          + " ".join(f"{e:.2f}" for e in errors)
          + f"\n    mean {np.mean(errors):.2f}%, std {np.std(errors, ddof=1) if len(errors) > 1 else 0:.2f}, "
          f"range {min(errors):.2f}-{max(errors):.2f}")
  if population_batches:
    # With momentum 0 (set before tracing: Keras reads it when the function
    # is traced) a pass leaves each average at that batch's statistics.
    for bn in layers:
      bn.momentum = 0.0
    forward = traced_forward()
    sums = [[np.zeros_like(m), np.zeros_like(v)] for m, v, _ in saved]
    for k in range(population_batches):
      batch_pass(10 ** 6 + k)
      for s, bn in zip(sums, layers):
        s[0] += bn.moving_mean.numpy()
        s[1] += bn.moving_variance.numpy()
    for s, bn in zip(sums, layers):
      bn.moving_mean.assign(s[0] / population_batches)
      bn.moving_variance.assign(s[1] / population_batches)
    print(f"  population statistics ({population_batches} batches): {error():.2f}%")
  for (m, v, momentum), bn in zip(saved, layers):
    bn.moving_mean.assign(m)
    bn.moving_variance.assign(v)
    bn.momentum = momentum


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("refreshes", 10, "refreshes of the moving averages, each 20 batches")
  flags.DEFINE_integer("population_batches", 200, "batches for the population statistics")


if __name__ == "__main__":
  define_flags()
  common.run(main, "bn_stats")
