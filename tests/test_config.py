"""Tests for config.py: validation errors name the flag, the value and the fix."""

import dataclasses
import json
import os

import pytest

from adgm_tf import config as c

from conftest import REPO


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


def test_old_configs_with_a_verbose_code_still_load():
  """config.json before TrainConfig.progress held the launcher's verbose code."""
  for code, progress in ((1, "bar"), (2, "epoch"), (0, "none")):
    assert c.Config.from_dict({"train": {"verbose": code}}).train.progress == progress
  published = os.path.join(REPO, "docs", "results", "long_sdgm3", "flags.txt")
  assert "--progress=" in open(published).read()  # flags.txt replays with the same flag


# ---------------------------------------------------------------------------
# One declaration per option: the flags are generated from the fields
# ---------------------------------------------------------------------------


def _fresh_flags(sections=c.SECTIONS):
  from absl import flags
  fv = flags.FlagValues()
  names = c.define_flags(fv, sections)
  return fv, names


def test_every_field_has_a_flag_with_its_default_and_help():
  fv, names = _fresh_flags()
  fields = [f.name for _, cls in c.SECTIONS for f in dataclasses.fields(cls)]
  assert names == fields and len(names) == len(set(names))
  fv(["prog"])
  parsed = c.sections_from_flags(fv)
  assert parsed == {"data": c.DataConfig(), "model": c.ModelConfig(), "train": c.TrainConfig()}
  for name in names:
    assert fv[name].help, name  # every flag says what it does


def _other_value(f, kind):
  if kind == "enum":
    return next(v for v in f.metadata["choices"] if v != f.default)
  return {"integer": lambda d: 7 if d is None else d + 1,
          "float": lambda d: 0.125,
          "bool": lambda d: not d,
          "string": lambda d: "x",
          "list": lambda d: (3, 4)}[kind](f.default)


def test_each_flag_reaches_its_field():
  fv, _ = _fresh_flags()
  argv, want = ["prog"], {}
  for section, f, kind in c.flag_fields():
    value = _other_value(f, kind)
    if kind == "bool":
      argv.append(f"--{f.name}" if value else f"--no{f.name}")
    elif kind == "list":
      argv.append(f"--{f.name}={','.join(map(str, value))}")
    else:
      argv.append(f"--{f.name}={value}")
    want[(section, f.name)] = value
  fv(argv)
  parsed = c.sections_from_flags(fv)
  for (section, name), value in want.items():
    assert getattr(parsed[section], name) == value, name


def test_a_new_option_is_one_field():
  """Adding an option: one field with option(...) in its section; the flag,
  its help and the parsing follow with no other change."""
  train = dataclasses.make_dataclass(
      "TrainConfigPlus", [("throwaway", int, c.option(7, "A throwaway option."))],
      bases=(c.TrainConfig,), frozen=True)
  sections = (c.SECTIONS[0], c.SECTIONS[1], ("train", train))
  fv, names = _fresh_flags(sections)
  assert names[-1] == "throwaway" and fv["throwaway"].help == "A throwaway option."
  fv(["prog", "--throwaway=9", "--epochs=3"])
  parsed = c.sections_from_flags(fv, sections)
  assert parsed["train"].throwaway == 9 and parsed["train"].epochs == 3
  fv2, _ = _fresh_flags(sections)
  fv2(["prog"])
  assert c.sections_from_flags(fv2, sections)["train"].throwaway == 7


def test_a_bad_list_value_names_the_flag():
  fv, _ = _fresh_flags()
  fv(["prog", "--hidden=500,big"])
  with pytest.raises(c.ConfigError, match=r"--hidden=500,big: widths must be integers"):
    c.sections_from_flags(fv)
  fv, _ = _fresh_flags()
  fv(["prog", "--keep_epochs=50,x"])
  with pytest.raises(c.ConfigError, match=r"--keep_epochs=50,x: epochs must be integers, "
                     r"e.g. --keep_epochs=50,100,200"):
    c.sections_from_flags(fv)


def test_keep_epochs_parse_validate_and_survive_config_json():
  fv, _ = _fresh_flags()
  fv(["prog", "--keep_epochs=100,50"])
  config = c.Config(**c.sections_from_flags(fv)).validate()
  assert config.train.keep_epochs == (100, 50)
  # config.json stores lists; read back, the run's config is the same.
  back = c.Config.from_dict(json.loads(json.dumps(config.to_dict())))
  assert back == config
  with pytest.raises(c.ConfigError, match=r"--keep_epochs=50,0: epochs must be at least 1"):
    config.replace(train=dataclasses.replace(config.train, keep_epochs=(50, 0))).validate()
