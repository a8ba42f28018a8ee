"""Tests for config.py: validation errors name the flag, the value and the fix."""

import dataclasses

import pytest

from adgm_tf import config as c


def _with_model(**changes):
  base = c.Config()
  return dataclasses.replace(base, model=dataclasses.replace(base.model, **changes))


@pytest.mark.parametrize("changes,message", [
    (dict(aux_log_var_init=-3.0, aux_log_var_max=-4.0),
     "--aux_log_var_init=-3.0 is not below --aux_log_var_max=-4.0"),
    (dict(aux_log_var_init=-4.0, aux_log_var_max=-4.0),  # the boundary: equal is refused
     "--aux_log_var_init=-4.0 is not below --aux_log_var_max=-4.0"),
    (dict(aux_log_var_max=float("inf")), "--aux_log_var_max=inf: give a finite log-variance"),
    (dict(aux_log_var_init=float("nan")), "--aux_log_var_init=nan: give a finite log-variance"),
    (dict(aux_log_var_max=-40.0), "--aux_log_var_max=-40.0: give a finite log-variance in [-30, 30]"),
])
def test_bad_log_variance_settings_are_refused(changes, message):
  with pytest.raises(c.ConfigError) as e:
    _with_model(**changes).validate()
  assert message in str(e.value)


def test_a_start_below_the_cap_is_accepted():
  """The other side of the boundary above: validate() returns without raising."""
  _with_model(aux_log_var_init=-4.001, aux_log_var_max=-4.0).validate()
  _with_model(aux_log_var_init=-6.0, aux_log_var_max=-4.0).validate()
  _with_model(aux_log_var_max=-4.0).validate()


@pytest.mark.parametrize("section,changes,message", [
    ("model", dict(bn_epsilon=0.0), "--bn_epsilon=0.0: must be in (0, 1) (the authors' code: 1e-4)"),
    ("train", dict(adam_epsilon=-1e-8), "--adam_epsilon=-1e-08: must be in (0, 1) (the authors' code: 1e-8)"),
])
def test_bad_epsilons_are_refused(section, changes, message):
  base = c.Config()
  cfg = dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **changes)})
  with pytest.raises(c.ConfigError) as e:
    cfg.validate()
  assert message in str(e.value)


def test_old_configs_with_mixed_precision_still_load():
  for old, new in (("float32", "fp32"), ("mixed_bfloat16", "bf16"), ("mixed_float16", "fp16")):
    cfg = c.Config.from_dict({"train": {"mixed_precision": old}})
    assert cfg.train.precision == new
  with pytest.raises(c.ConfigError, match=r"--precision='fp64': choose one of \['auto'"):
    dataclasses.replace(c.Config(), train=dataclasses.replace(
        c.Config().train, precision="fp64")).validate()
