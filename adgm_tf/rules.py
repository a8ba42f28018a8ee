"""A model's settings, their choices and the rules they obey: one home.

Two callers check the same rules: ``Config.validate`` for the command line
(messages name ``--flag=value`` and say what to pass instead) and
``SemiSupervisedModel.__init__`` for a model built in Python (messages name
the argument). ``networks.py`` and ``bounds.py`` take their choices from here.
Importing this module imports neither TensorFlow nor absl, so flags are
checked before TensorFlow loads.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from adgm_tf.errors import ConfigError

INITS = ("glorot", "authors")
BN_STATISTICS = ("joint", "split")
UNLABELED_WEIGHTINGS = ("sample", "mean")
ACTIVATIONS = ("relu", "softplus", "tanh", "elu", "gelu", "swish", "leaky_relu")
AUXILIARIES = ("stochastic", "deterministic", "none")
LOG_VAR_RANGE = (-30.0, 30.0)  # where a log-variance setting is finite in float32


class _Names:
  """How a message names a setting: ``--name`` (flags) or ``name`` (arguments)."""

  def __init__(self, flags: bool):
    self.flags = flags

  def __call__(self, name: str, value: Any = None, show: bool = True) -> str:
    prefix = "--" if self.flags else ""
    return f"{prefix}{name}={value}" if show else f"{prefix}{name}"


def choice(name: str, value: Any, choices: Sequence[Any], flags: bool = True) -> None:
  """Raises ConfigError unless ``value`` is one of ``choices``."""
  if value not in choices:
    raise ConfigError(f"{_Names(flags)(name, repr(value))}: choose one of {list(choices)}.")


def check_network(*, hidden: Sequence[int], activation: str, init: str,
                  bn_momentum: float, bn_epsilon: float, flags: bool = False) -> None:
  """Raises ConfigError for the first setting of an MLP (networks.MLP) that breaks a rule."""
  n = _Names(flags)
  if not hidden or min(hidden) < 1:
    raise ConfigError(f"{n('hidden', ','.join(map(str, hidden)))}: give at least one "
                      f"positive width, e.g. {n('hidden', '500,500')}.")
  choice("activation", activation, ACTIVATIONS, flags)
  choice("init", init, INITS, flags)
  if not 0 <= bn_momentum < 1:
    raise ConfigError(f"{n('bn_momentum', bn_momentum)}: must be in [0, 1) (0.9 is the "
                      f"authors' rate, Lasagne's alpha = 0.1).")
  if not 0 < bn_epsilon < 1:
    raise ConfigError(f"{n('bn_epsilon', bn_epsilon)}: must be in (0, 1) (the authors' "
                      f"code: 1e-4).")


def check_model(*, flags: bool, z_dim: int, a_dim: int, hidden: Sequence[int],
                mc_samples: int, iw_samples: int, eval_samples: int, deterministic_a: bool,
                init: str, activation: str, bn_momentum: float, bn_epsilon: float,
                bn_statistics: str, unlabeled_weighting: str, clip_norm: float,
                clip_value: float, aux_warmup: int, aux_warmup_name: str,
                aux_log_var_init: Optional[float], aux_log_var_max: Optional[float],
                x_dim: Optional[int] = None, num_classes: Optional[int] = None,
                model_name: Optional[str] = None) -> None:
  """Raises ConfigError for the first setting of a model that breaks a rule.

  Args:
    flags: name settings as command-line flags (``--z_dim=0``) or as Python
      arguments (``z_dim=0``).
    deterministic_a: the variant's a is the deterministic unit a = mu(x).
    aux_warmup, aux_warmup_name: the warm-up length and its unit's name
      (``aux_warmup_epochs`` on the command line, ``aux_warmup_steps`` in the
      model).
    x_dim, num_classes: the data's sizes (the model's arguments; the command
      line derives them from the dataset).
    model_name: the ``--model`` variant, named in messages about it.
    The rest: the model's settings (config.ModelConfig, SemiSupervisedModel).
  """
  n = _Names(flags)
  for name, value in (("x_dim", x_dim), ("num_classes", num_classes), ("z_dim", z_dim),
                      ("a_dim", a_dim), ("mc_samples", mc_samples),
                      ("iw_samples", iw_samples), ("eval_samples", eval_samples)):
    if value is not None and int(value) < 1:
      raise ConfigError(f"{n(name, value)}: must be at least 1.")
  check_network(hidden=hidden, activation=activation, init=init,
                bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, flags=flags)
  if iw_samples > 1 and deterministic_a:
    which = f" with --model={model_name}" if flags and model_name else (
        " with a deterministic auxiliary unit")
    raise ConfigError(
        f"{n('iw_samples', iw_samples)}{which}: importance weighting over a is "
        f"undefined for a deterministic auxiliary unit (a = mu(x)). Use "
        f"{n('iw_samples', 1)}, or a model with a stochastic a.")
  if iw_samples > 1 and mc_samples > 1:
    raise ConfigError(
        f"{n('iw_samples', iw_samples)} with {n('mc_samples', mc_samples)}: the "
        f"importance-weighted objective draws its own K samples. Set "
        f"{n('mc_samples', 1)}, or {n('iw_samples', 1)} for the plain bound.")
  choice("bn_statistics", bn_statistics, BN_STATISTICS, flags)
  choice("unlabeled_weighting", unlabeled_weighting, UNLABELED_WEIGHTINGS, flags)
  for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
    if value < 0:
      raise ConfigError(f"{n(name, value)}: must be >= 0 (0 turns it off).")
  if aux_warmup < 0:
    raise ConfigError(f"{n(aux_warmup_name, aux_warmup)}: must be >= 0 (0 turns the "
                      f"warm-up off).")
  lo, hi = LOG_VAR_RANGE
  for name, value in (("aux_log_var_init", aux_log_var_init),
                      ("aux_log_var_max", aux_log_var_max)):
    if value is not None and not lo <= value <= hi:
      raise ConfigError(f"{n(name, value)}: give a finite log-variance in [{lo:g}, "
                        f"{hi:g}] (e.g. -4), or leave it unset.")
  if (aux_log_var_init is not None and aux_log_var_max is not None
      and aux_log_var_init >= aux_log_var_max):
    raise ConfigError(
        f"{n('aux_log_var_init', aux_log_var_init)} is not below "
        f"{n('aux_log_var_max', aux_log_var_max)}: q(a|x)'s log-variance cannot "
        f"start above its cap; lower the start or raise the cap.")
