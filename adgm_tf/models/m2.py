"""M2 (Kingma et al., 2014): the baseline without an auxiliary variable.

Generative model p(y) p(z) p(x|y,z); inference model q(y|x) q(z|x,y). The
bound is that of ``bounds.py`` with every a-term zero: with S samples only
z is sampled, and q(y|x) is deterministic.
"""

from __future__ import annotations

import keras

from adgm_tf.models.base import SemiSupervisedModel
from adgm_tf.models.layout import Wiring

M2_WIRING = Wiring(auxiliary="none", q_y=("x",), q_z=("x", "y"), p_x=("y", "z"),
                   p_a=None)


@keras.saving.register_keras_serializable(package="adgm_tf")
class M2(SemiSupervisedModel):
  """M2 of Kingma et al. (2014); arguments as :class:`SemiSupervisedModel`."""

  def __init__(self, **kwargs):
    kwargs.pop("wiring", None)
    super().__init__(wiring=M2_WIRING, **kwargs)

  @staticmethod
  def wiring_for() -> Wiring:
    return M2_WIRING
