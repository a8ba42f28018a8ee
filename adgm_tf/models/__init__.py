"""The model variants (the table is adgm_tf/variants.py)."""

from adgm_tf.models.adgm import ADGM, SDGM
from adgm_tf.models.base import SemiSupervisedModel
from adgm_tf.models.layout import Noise, Wiring
from adgm_tf.models.m2 import M2
from adgm_tf.variants import MODELS, variant

_CLASSES = {"ADGM": ADGM, "SDGM": SDGM, "M2": M2}


def build_model(name: str, **kwargs) -> SemiSupervisedModel:
  """A model by its launcher name (``--model``), from ``variants.VARIANTS``."""
  v = variant(name)
  return _CLASSES[v.cls](**v.kwargs, **kwargs)


def wiring_of(name: str) -> Wiring:
  """The factorization of a variant, without building it."""
  v = variant(name)
  return _CLASSES[v.cls].wiring_for(**v.kwargs)


__all__ = ["ADGM", "SDGM", "M2", "SemiSupervisedModel", "Wiring", "Noise",
           "MODELS", "build_model", "wiring_of"]
