"""Tests for adgm_tf.variants: the one table of model variants."""

import pytest

from adgm_tf import config
from adgm_tf import models
from adgm_tf import variants


def test_the_table_drives_the_config_the_models_and_their_wirings():
  assert config.MODELS == variants.MODELS == tuple(variants.VARIANTS)
  assert set(config.MODEL_DESCRIPTIONS) == set(variants.MODELS)
  for name, v in variants.VARIANTS.items():
    model = models.build_model(name, z_dim=3, a_dim=2, hidden=(4,))
    assert type(model).__name__ == v.cls
    assert model.wiring == models.wiring_of(name), name
  # Where the variants differ (the paper's factorizations):
  assert models.wiring_of("m2").auxiliary == "none"
  assert models.wiring_of("adgm_det").auxiliary == "deterministic"
  assert models.wiring_of("sdgm").p_x == ("a", "y", "z")
  assert models.wiring_of("adgm_workshop").q_z == ("x", "y")
  assert models.wiring_of("adgm").p_a == ("x", "y", "z")


def test_an_unknown_variant_lists_the_choices():
  with pytest.raises(ValueError, match=r"Unknown model 'vae'; choose one of \['adgm'"):
    variants.variant("vae")
