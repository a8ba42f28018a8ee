"""ADGM and SDGM (Maaløe, Sønderby, Sønderby & Winther, ICML 2016).

Both add an auxiliary variable a to M2's inference model, q(a|x) q(y|a,x)
q(z|a,x,y), which makes q(y, z|x) = int q(a|x) q(y|a,x) q(z|a,x,y) da a
richer, non-factorised posterior. They differ in the generative model:

* ADGM (ICML form): p(y) p(z) p(x|y,z) p(a|x,y,z); a is auxiliary, the
  marginal p(x, y, z) is M2's.
* ADGM, workshop form (Maaløe, Sønderby, Sønderby & Winther, "Improving
  Semi-Supervised Learning with Auxiliary Deep Generative Models", NIPS 2015
  Workshop on Advances in Approximate Bayesian Inference,
  approximateinference.org/accepted/MaaloeEtAl2015.pdf): p(a) = N(0, I) and
  q(z|x,y) without a. ``ADGM(form="workshop")``. In this form no term of
  L(x,y) depends on a except log p(a) - log q(a|x), which does not depend
  on y; so U(x) is largest when q(y|a,x) ignores a (pointwise in a, the best
  q(y|a,x) is proportional to exp L(x,y)) and q(a|x) = p(a): the bound never
  rewards information in a (``bounds.classifier_a_reward`` is zero up to
  sampling noise) and its optimum has a at its prior.
* ADGM with a deterministic auxiliary unit (ablation, Fig. 4 of the paper):
  a = mu(x), no noise and no a-terms in the bound.
  ``ADGM(auxiliary="deterministic")``.
* SDGM: the skip deep generative model, p(y) p(z) p(a|y,z) p(x|a,y,z): a is
  a latent variable of the generative model too.
"""

from __future__ import annotations

import keras

from adgm_tf.models.base import SemiSupervisedModel
from adgm_tf.models.layout import Wiring

FORMS = ("icml", "workshop")
ADGM_AUXILIARY = ("stochastic", "deterministic")


def adgm_wiring(form: str = "icml", auxiliary: str = "stochastic") -> Wiring:
  if form not in FORMS:
    raise ValueError(f"form must be one of {FORMS}, got {form!r}")
  if auxiliary not in ADGM_AUXILIARY:
    raise ValueError(f"auxiliary must be one of {ADGM_AUXILIARY}, got {auxiliary!r}")
  if auxiliary == "deterministic":
    if form != "icml":
      raise ValueError("the deterministic auxiliary unit is an ablation of the "
                       "ICML ADGM: use form='icml'")
    return Wiring(auxiliary, q_y=("a", "x"), q_z=("a", "x", "y"),
                  p_x=("y", "z"), p_a=None)
  if form == "workshop":
    return Wiring(auxiliary, q_y=("a", "x"), q_z=("x", "y"), p_x=("y", "z"),
                  p_a=())
  return Wiring(auxiliary, q_y=("a", "x"), q_z=("a", "x", "y"), p_x=("y", "z"),
                p_a=("x", "y", "z"))


SDGM_WIRING = Wiring("stochastic", q_y=("a", "x"), q_z=("a", "x", "y"),
                     p_x=("a", "y", "z"), p_a=("y", "z"))


@keras.saving.register_keras_serializable(package="adgm_tf")
class ADGM(SemiSupervisedModel):
  """The auxiliary deep generative model.

  Args:
    form: "icml" (p(a|x,y,z), q(z|a,x,y)) or "workshop" (p(a)=N(0,I), q(z|x,y)).
    auxiliary: "stochastic" or "deterministic" (a = mu(x), the ablation).
    **kwargs: as :class:`SemiSupervisedModel`.
  """

  def __init__(self, form: str = "icml", auxiliary: str = "stochastic", **kwargs):
    kwargs.pop("wiring", None)
    super().__init__(wiring=self.wiring_for(form, auxiliary), **kwargs)
    self.form, self.auxiliary = form, auxiliary

  @staticmethod
  def wiring_for(form: str = "icml", auxiliary: str = "stochastic") -> Wiring:
    return adgm_wiring(form, auxiliary)

  def get_config(self):
    config = super().get_config()
    config.update(form=self.form, auxiliary=self.auxiliary)
    return config


@keras.saving.register_keras_serializable(package="adgm_tf")
class SDGM(SemiSupervisedModel):
  """The skip deep generative model; arguments as :class:`SemiSupervisedModel`."""

  def __init__(self, **kwargs):
    kwargs.pop("wiring", None)
    super().__init__(wiring=SDGM_WIRING, **kwargs)

  @staticmethod
  def wiring_for() -> Wiring:
    return SDGM_WIRING
