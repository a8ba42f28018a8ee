"""The model variants."""

from adgm_tf.models.adgm import ADGM, SDGM
from adgm_tf.models.base import Noise, SemiSupervisedModel, Wiring
from adgm_tf.config import MODELS
from adgm_tf.models.m2 import M2


def build_model(name: str, **kwargs) -> SemiSupervisedModel:
  """A model by its launcher name (``--model``)."""
  if name == "adgm":
    return ADGM(form="icml", auxiliary="stochastic", **kwargs)
  if name == "adgm_workshop":
    return ADGM(form="workshop", auxiliary="stochastic", **kwargs)
  if name == "adgm_det":
    return ADGM(form="icml", auxiliary="deterministic", **kwargs)
  if name == "sdgm":
    return SDGM(**kwargs)
  if name == "m2":
    return M2(**kwargs)
  raise ValueError(f"Unknown model {name!r}; choose one of {list(MODELS)}.")


__all__ = ["ADGM", "SDGM", "M2", "SemiSupervisedModel", "Wiring", "Noise",
           "MODELS", "build_model"]
