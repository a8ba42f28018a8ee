"""Typed, frozen configuration: what ``launch.py`` turns its flags into.

The library takes these objects, never flags. ``Config.validate`` holds the
cross-field rules; each violation is a ``ConfigError`` that names the
setting (by its flag name) and says what to change.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple

from adgm_tf import data as data_lib
from adgm_tf.errors import ConfigError  # noqa: F401  (re-exported)

MODELS = ("adgm", "adgm_workshop", "sdgm", "m2", "adgm_det")
# What each --model is, in the words of the launch's first line.
MODEL_DESCRIPTIONS = {
    "adgm": "the ADGM (Maaløe et al., ICML 2016): q(a|x) q(y|a,x) q(z|a,x,y), p(a|x,y,z)",
    "adgm_workshop": "the ADGM in its NIPS 2015 workshop form: p(a) = N(0, I), q(z|x,y)",
    "adgm_det": "the ADGM with a deterministic auxiliary unit a = mu(x) (the ablation)",
    "sdgm": "the SDGM (Maaløe et al., ICML 2016): p(a|y,z) p(x|a,y,z)",
    "m2": "M2 (Kingma et al., NIPS 2014): q(y|x) q(z|x,y), no auxiliary variable",
}
STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
# --precision (hardware.PRECISIONS); the Keras policy names of the older
# --mixed_precision flag, still read from old flags.txt and config.json.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KERAS_POLICIES = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}
# When the test set is read: at every evaluation and at the end, only at the
# end, or never (runs that choose settings read the validation split only).
TEST_EVALUATIONS = ("every", "end", "never")
INITS = ("glorot", "authors")                 # networks.INITS
BN_STATISTICS = ("joint", "split")            # networks.BN_STATISTICS
UNLABELED_WEIGHTINGS = ("sample", "mean")     # bounds.UNLABELED_WEIGHTINGS


@dataclasses.dataclass(frozen=True)
class DataConfig:
  dataset: str = "mnist"
  idx_dir: Optional[str] = None
  data_dir: Optional[str] = None
  num_labels: int = 100
  label_seed: int = 1
  validation_size: int = 0
  labeled_batch_size: int = 100
  unlabeled_batch_size: int = 100
  max_unlabeled: Optional[int] = None
  binarize_eval: bool = False
  eval_batch_size: int = 500


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  model: str = "adgm"
  hidden: Tuple[int, ...] = (500, 500)
  z_dim: int = 100
  a_dim: int = 100
  activation: str = "relu"
  batch_norm: bool = True
  mc_samples: int = 1
  iw_samples: int = 1
  eval_samples: int = 100
  alpha_beta: float = 0.1
  weight_prior: bool = False
  init: str = "glorot"
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  bn_statistics: str = "joint"
  unlabeled_weighting: str = "sample"
  aux_warmup_epochs: float = 0.0
  aux_log_var_init: Optional[float] = None
  aux_log_var_max: Optional[float] = None

  def architecture(self) -> Dict[str, Any]:
    """The settings that determine the model's variables and their shapes."""
    return dict(model=self.model, hidden=list(self.hidden), z_dim=self.z_dim,
                a_dim=self.a_dim, batch_norm=self.batch_norm)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  epochs: int = 1000
  seed: int = 0
  learning_rate: float = 3e-4
  beta1: float = 0.9
  beta2: float = 0.999
  adam_epsilon: float = 1e-7
  lr_decay: float = 0.75
  lr_decay_every: int = 200
  lr_min: float = 3e-5
  clip_norm: float = 5.0
  clip_value: float = 0.0
  strategy: str = "auto"
  cpu_replicas: int = 1
  checkpoint_every: int = 1
  keep_checkpoints: int = 3
  eval_every: int = 1
  eval_samples_periodic: int = 10
  test_evaluation: str = "every"
  summary_every: int = 100
  ll_samples: int = 100
  ll_examples: int = 500
  jit_compile: bool = False
  # auto: bf16 where the CPU has bf16 instructions, else fp32 (hardware.py).
  precision: str = "fp32"
  time_budget_minutes: Optional[float] = None  # None or 0: no budget
  # Wall-clock minutes of training for this launch alone (None or 0: no
  # limit): the launch then checkpoints and exits, and the same command
  # resumes. The budget above counts across launches; this one does not.
  chunk_minutes: Optional[float] = None
  # The guard of the auxiliary variable, read on the validation split at
  # every evaluation: the run stops (errors.AuxDied) when fewer than this
  # fraction of q(a|x)'s units are alive (0: off) ...
  aux_alive_floor: float = 0.0
  # ... or when swapping a costs fewer than this many points of error (None: off).
  aux_swap_floor: Optional[float] = None
  export_dir: Optional[str] = None
  verbose: int = 1

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

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "Config":
    model = dict(d.get("model", {}))
    if "hidden" in model:
      model["hidden"] = tuple(model["hidden"])
    train = dict(d.get("train", {}))
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
    _choice("model", m.model, MODELS)
    _choice("strategy", t.strategy, STRATEGIES)
    _choice("precision", t.precision, PRECISIONS)
    _choice("init", m.init, INITS)
    _choice("test_evaluation", t.test_evaluation, TEST_EVALUATIONS)
    _choice("bn_statistics", m.bn_statistics, BN_STATISTICS)
    _choice("unlabeled_weighting", m.unlabeled_weighting, UNLABELED_WEIGHTINGS)
    if m.aux_warmup_epochs < 0:
      raise ConfigError(f"--aux_warmup_epochs={m.aux_warmup_epochs}: must be >= 0 "
                        f"(0 turns the warm-up off).")
    for name, value in (("aux_log_var_init", m.aux_log_var_init),
                        ("aux_log_var_max", m.aux_log_var_max)):
      if value is not None and not -30 <= value <= 30:
        raise ConfigError(f"--{name}={value}: give a finite log-variance in "
                          f"[-30, 30] (e.g. -4), or leave it unset.")
    if (m.aux_log_var_init is not None and m.aux_log_var_max is not None
        and m.aux_log_var_init >= m.aux_log_var_max):
      raise ConfigError(
          f"--aux_log_var_init={m.aux_log_var_init} is not below "
          f"--aux_log_var_max={m.aux_log_var_max}: q(a|x)'s log-variance cannot "
          f"start above its cap; lower the start or raise the cap.")
    if not 0 <= m.bn_momentum < 1:
      raise ConfigError(f"--bn_momentum={m.bn_momentum}: must be in [0, 1) "
                        f"(0.9 is the authors' rate, Lasagne's alpha = 0.1).")
    for name, value, authors in (("bn_epsilon", m.bn_epsilon, "1e-4"),
                                 ("adam_epsilon", t.adam_epsilon, "1e-8")):
      if not 0 < value < 1:
        raise ConfigError(f"--{name}={value}: must be in (0, 1) (the authors' "
                          f"code: {authors}).")
    for name, value in (("num_labels", d.num_labels),
                        ("labeled_batch_size", d.labeled_batch_size),
                        ("unlabeled_batch_size", d.unlabeled_batch_size),
                        ("eval_batch_size", d.eval_batch_size),
                        ("z_dim", m.z_dim), ("a_dim", m.a_dim),
                        ("mc_samples", m.mc_samples), ("iw_samples", m.iw_samples),
                        ("eval_samples", m.eval_samples), ("epochs", t.epochs),
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
    if not m.hidden or min(m.hidden) < 1:
      raise ConfigError(f"--hidden={','.join(map(str, m.hidden))}: give at "
                        f"least one positive width, e.g. --hidden=500,500.")
    if m.iw_samples > 1 and m.model == "adgm_det":
      raise ConfigError(
          f"--iw_samples={m.iw_samples} with --model=adgm_det: importance "
          f"weighting over a is undefined for a deterministic auxiliary unit. "
          f"Use --iw_samples=1, or a model with a stochastic a.")
    if m.iw_samples > 1 and m.mc_samples > 1:
      raise ConfigError(
          f"--iw_samples={m.iw_samples} with --mc_samples={m.mc_samples}: the "
          f"importance-weighted objective draws its own K samples. Set "
          f"--mc_samples=1, or --iw_samples=1 for the plain bound.")
    if m.alpha_beta < 0:
      raise ConfigError(f"--alpha_beta={m.alpha_beta}: must be >= 0.")
    if not 0 < t.learning_rate < 1:
      raise ConfigError(f"--learning_rate={t.learning_rate}: must be in (0, 1).")
    if not 0 < t.lr_decay <= 1:
      raise ConfigError(f"--lr_decay={t.lr_decay}: must be in (0, 1].")
    if t.lr_min < 0 or t.lr_min > t.learning_rate:
      raise ConfigError(
          f"--lr_min={t.lr_min} must be in [0, --learning_rate={t.learning_rate}].")
    if t.clip_norm < 0:
      raise ConfigError(f"--clip_norm={t.clip_norm}: must be >= 0 (0 turns it off).")
    if t.clip_value < 0:
      raise ConfigError(f"--clip_value={t.clip_value}: must be >= 0 (0 turns it off).")
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


def _choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ConfigError(f"--{name}={value!r}: choose one of {list(choices)}.")
