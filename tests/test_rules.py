"""Tests for rules.py: one rule, two callers. Each bad model setting is refused
by Config.validate (the message names the flag) and by the model's
constructor (the message names the argument), with the same words."""

import dataclasses

import pytest

from adgm_tf import config as c
from adgm_tf import rules
from adgm_tf.errors import ConfigError

# (model setting, bad value, what the message says after "<name>=<value>: ")
CASES = [
    ("z_dim", 0, "must be at least 1."),
    ("a_dim", -2, "must be at least 1."),
    ("eval_samples", 0, "must be at least 1."),
    ("hidden", (500, 0), "give at least one positive width"),
    ("init", "he", "choose one of ['glorot', 'authors']."),
    ("activation", "sigmoid2", "choose one of ['relu',"),
    ("bn_momentum", 1.0, "must be in [0, 1)"),
    ("bn_epsilon", 0.0, "must be in (0, 1)"),
    ("bn_statistics", "both", "choose one of ['joint', 'split']."),
    ("unlabeled_weighting", "max", "choose one of ['sample', 'mean']."),
    ("aux_log_var_max", 99.0, "give a finite log-variance in [-30, 30]"),
]


def _config(**model):
  base = c.Config()
  return dataclasses.replace(base, model=dataclasses.replace(base.model, **model))


def _shown(name, value):
  return ",".join(map(str, value)) if name == "hidden" else (
      repr(value) if isinstance(value, str) else value)


@pytest.mark.parametrize("name, value, says", CASES)
def test_a_bad_model_setting_is_refused_by_the_config_and_by_the_model(name, value, says):
  with pytest.raises(ConfigError) as flag:
    _config(**{name: value}).validate()
  assert str(flag.value).startswith(f"--{name}={_shown(name, value)}: {says}")
  from adgm_tf.models import build_model
  with pytest.raises(ConfigError) as arg:  # a ValueError too, as Keras raises
    build_model("adgm", x_dim=12, num_classes=10, **{name: value})
  assert str(arg.value).startswith(f"{name}={_shown(name, value)}: {says}")
  assert isinstance(arg.value, ValueError)


def test_combinations_are_refused_in_both_places():
  with pytest.raises(ConfigError, match=r"^--iw_samples=5 with --model=adgm_det: importance "):
    _config(model="adgm_det", iw_samples=5).validate()
  from adgm_tf.models import build_model
  with pytest.raises(ConfigError, match=r"^iw_samples=5 with a deterministic auxiliary "
                                        r"unit: .* Use iw_samples=1"):
    build_model("adgm_det", x_dim=12, num_classes=10, iw_samples=5)
  with pytest.raises(ConfigError, match=r"Set --mc_samples=1, or --iw_samples=1"):
    _config(mc_samples=2, iw_samples=3).validate()
  with pytest.raises(ConfigError, match=r"Set mc_samples=1, or iw_samples=1"):
    build_model("sdgm", x_dim=12, num_classes=10, mc_samples=2, iw_samples=3)
  with pytest.raises(ConfigError, match=r"^--aux_log_var_init=-3.0 is not below "
                                        r"--aux_log_var_max=-4.0"):
    _config(aux_log_var_init=-3.0, aux_log_var_max=-4.0).validate()
  with pytest.raises(ConfigError, match=r"^aux_log_var_init=-3.0 is not below "
                                        r"aux_log_var_max=-4.0"):
    build_model("adgm", x_dim=12, num_classes=10, aux_log_var_init=-3.0,
                aux_log_var_max=-4.0)
  with pytest.raises(ConfigError, match=r"^--aux_warmup_epochs=-1: must be >= 0"):
    _config(aux_warmup_epochs=-1).validate()
  with pytest.raises(ConfigError, match=r"^aux_warmup_steps=-1: must be >= 0"):
    build_model("adgm", x_dim=12, num_classes=10, aux_warmup_steps=-1)


def test_the_choices_have_one_home():
  """config, networks and bounds read their choices from rules.py."""
  from adgm_tf import bounds
  from adgm_tf import networks
  assert c.INITS is rules.INITS and networks.INITS is rules.INITS
  assert c.ACTIVATIONS is rules.ACTIVATIONS and not hasattr(networks, "ACTIVATIONS")  # no copy
  assert c.BN_STATISTICS is rules.BN_STATISTICS
  assert c.UNLABELED_WEIGHTINGS is bounds.UNLABELED_WEIGHTINGS is rules.UNLABELED_WEIGHTINGS
  fields = {f.name: f for f in dataclasses.fields(c.ModelConfig)}
  assert fields["init"].metadata["choices"] == rules.INITS
