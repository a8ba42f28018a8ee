r"""Train, evaluate and export an ADGM / SDGM / M2 on MNIST-100.

  python launch.py --flagfile=mnist100.flags --model_dir=runs/adgm

Defines the flags, turns them into ``adgm_tf.config.Config`` and calls
``adgm_tf.train.train_and_evaluate``; the library never reads flags.
Launching again with the same ``--model_dir`` resumes from its latest
checkpoint; ``--flagfile=<model_dir>/flags.txt`` replays a run's flags.
Several machines: set ``TF_CONFIG`` on each and use ``--strategy=auto`` or
``multi_worker`` (see BUILD.md).
"""

import sys

from absl import flags
from absl import logging

from adgm_tf import cli
from adgm_tf import config as c  # light: TensorFlow loads only after the checks
from adgm_tf import data as data_lib

FLAGS = flags.FLAGS

# Names of the flags this launcher defines, in order (flags.txt lists them).
_DEFINED = []


def _define(kind, name, default, *args, **kwargs):
  """``flags.DEFINE_<kind>(name, default, ...)``, remembering the name."""
  getattr(flags, f"DEFINE_{kind}")(name, default, *args, **kwargs)
  _DEFINED.append(name)


def define_flags():
  """Registers the launcher's flags (only when run as a program).

  Every setting of the run is a field of ``adgm_tf.config`` and its flag is
  generated from it (``config.define_flags``: name, default, help, choices);
  the launcher adds only what is not a setting of the run.
  """
  _define("string", "model_dir", None, "Run directory: checkpoints, events, metrics. Required.")
  _DEFINED.extend(c.define_flags(FLAGS, module_name=sys.argv[0]))
  _define("enum", "mixed_precision", None, list(c.KERAS_POLICIES),
          "The older name of --precision, as a Keras policy (float32, "
          "mixed_bfloat16, mixed_float16); kept so that old flags.txt replay.")
  _define("bool", "show_tf_logs", False,
          "Keep TensorFlow's C++ start-up lines (also ADGM_SHOW_TF_LOGS=1); "
          "hidden by default.")
  _define("bool", "verbose_errors", False,
          "Show the Python traceback of a failure (also ADGM_VERBOSE_ERRORS=1); "
          "by default a known failure prints one line.")
  flags.mark_flag_as_required("model_dir")


def _precision(f):
  """--precision, or the same choice made with the older --mixed_precision."""
  if f.mixed_precision is None:
    return f.precision
  old = c.KERAS_POLICIES[f.mixed_precision]
  if f["precision"].present and f.precision != old:
    raise c.ConfigError(f"--precision={f.precision} and --mixed_precision="
                        f"{f.mixed_precision} disagree; give --precision alone.")
  return old


def config_from_flags():
  """The run's typed config: every field from its own flag (config.py), and
  --precision also from the older --mixed_precision."""
  return c.config_from_flags(FLAGS, overrides={"train": dict(precision=_precision(FLAGS))})


def flagfile_text():
  """Every launcher flag as ``--name=value``: a flagfile replaying this run."""
  lines = ["# Written by launch.py; replay with --flagfile=<this file>."]
  for name in _DEFINED:
    flag = FLAGS[name]
    if flag.value is None:
      continue
    lines.append(flag.serialize())
  return "\n".join(lines) + "\n"


def _log_to_stderr(name):
  import logging as std_logging
  logger = std_logging.getLogger(name)
  handler = std_logging.StreamHandler(sys.stderr)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(name)s: %(message)s",
                                             "%H:%M:%S"))
  logger.addHandler(handler)
  logger.setLevel(std_logging.INFO)
  logger.propagate = False


def run(argv):
  """The program: flags -> config -> ``train.train_and_evaluate``."""
  if len(argv) > 1:
    raise c.ConfigError(f"unexpected arguments {' '.join(argv[1:])}: every setting is a "
                        f"flag (--helpshort lists them).")
  _log_to_stderr("adgm_tf")
  config = config_from_flags().validate()  # stops here on bad flags
  kind, arg = data_lib.dataset_kind(config.data.dataset)
  if kind == "npz":  # every check of the archive, before TensorFlow loads
    data_lib.load_npz(arg)
  cli.import_tensorflow(show=FLAGS.show_tf_logs or None)
  logging.set_verbosity(logging.WARNING)  # TensorFlow's and tfds's chatter
  from adgm_tf import train  # pylint: disable=g-import-not-at-top  (after the checks)
  train.train_and_evaluate(config, FLAGS.model_dir, flagfile_text=flagfile_text())


if __name__ == "__main__":
  cli.run_absl("launch.py", run, define_flags)
