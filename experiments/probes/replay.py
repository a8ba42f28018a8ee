"""Probe: replay a run from its newest checkpoint to a step, printing the
range of every Gaussian parameter of the forward pass on the way.

For a run that stopped on a non-finite loss: the run stops with its weights
as they were before the step that failed, and training is deterministic for
a given thread count, so replaying from the newest checkpoint with the run's
own data order and noise reaches the same step with the same weights. At
every 20th step and the last four, prints for q(a|x), q(z|.) and p(a|.) the
smallest and largest log-variance and the largest |mean| on that step's
training batch (batch statistics, as in training), and the smallest
log p(a|.) of the unlabeled rows.

    python -m experiments.probes.replay --model_dir=MODEL_DIR --step=STEP

Run it on a copy of the run directory: it restores, trains and never saves,
but a copy keeps the original out of reach. Use the thread count the run
used (the launchers here run 1 thread: TF_NUM_INTRAOP_THREADS=1).
"""
import os

from adgm_tf import cli

tf = cli.import_tensorflow()

from adgm_tf import config as config_lib  # noqa: E402  (after TensorFlow's quiet import)
from adgm_tf import devices  # noqa: E402
from adgm_tf import pipeline  # noqa: E402
from adgm_tf import rundir  # noqa: E402
from adgm_tf import train  # noqa: E402
from adgm_tf.errors import ConfigError  # noqa: E402


def ranges(model, batch, step):
  """The parameter ranges of the forward pass on ``batch`` at ``step``."""
  (x_l, y_l), x_u = batch
  noise = model.training_noise(x_l, x_u, model.mc_samples, tf.constant(step, tf.int64))
  factors, params = model.forward(x_l, y_l, x_u, noise, training=True)
  parts = []
  for name, p in (("q_a", params.q_a), ("q_z", params.q_z), ("p_a", params.p_a)):
    if p is None:
      continue
    loc, log_var = p
    parts.append(f"{name} log-var [{float(tf.reduce_min(log_var)):.1f}, "
                 f"{float(tf.reduce_max(log_var)):.1f}] |mean| <= "
                 f"{float(tf.reduce_max(tf.abs(loc))):.1f}")
  parts.append(f"min log p(a|.) unlabeled {float(tf.reduce_min(factors.log_pa_u)):.4g}")
  return "; ".join(parts)


def replay(model_dir: str, last: int) -> None:
  """Restores ``model_dir``'s newest checkpoint and trains on to step ``last``."""
  saved = rundir.read_run_config(os.path.abspath(model_dir)) if os.path.isdir(model_dir) else None
  if saved is None:
    raise ConfigError(f"{model_dir}: not a run directory (no config.json).")
  config = config_lib.Config.from_dict(saved["config"])
  data = pipeline.build_data(config)
  strategy = devices.make_strategy(config.train)
  trainee = train.build_or_restore(config, data, strategy, model_dir, chief=True)
  model, step = trainee.model, int(trainee.optimizer.iterations.numpy())
  if last < step:
    raise ConfigError(f"--step={last} is before the newest checkpoint's step {step}.")
  spe = data.steps_per_epoch
  print(f"restored step {step}; replaying to step {last}", flush=True)

  @tf.function
  def train_step(batch):
    return strategy.run(model.train_step, args=(batch,))

  while step <= last:
    epoch_start = step
    iterator = iter(pipeline.distributed_epoch(strategy, data.split, config.data,
                                            config.train.seed, step // spe, step % spe))
    for batch in iterator:
      if step >= last - 3 or step % 20 == 0:
        local = strategy.experimental_local_results(batch)[0]  # replica 0's rows
        print(f"step {step}: {ranges(model, local, step)}", flush=True)
      if step == last:
        return
      train_step(batch)
      step += 1
    if step == epoch_start:
      return


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --model_dir and "
                      f"--step.")
  replay(flags.FLAGS.model_dir, flags.FLAGS.step)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_dir", None, "the run directory (a copy: see the docstring)")
  flags.DEFINE_integer("step", None, "the training step to replay to, e.g. 2896",
                       lower_bound=0)
  flags.mark_flags_as_required(["model_dir", "step"])


if __name__ == "__main__":
  cli.run_absl("experiments.probes.replay", main, define_flags)
