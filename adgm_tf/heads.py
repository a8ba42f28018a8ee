"""Conditionals: an MLP over named inputs plus a head returning parameters.

Each layer here stands for one factor of the model and returns the tensors
that parameterise it; ``distributions.py`` turns them into ``tfd`` objects.
They are Keras-3 layers (not ``tfp.layers``, which are Keras-2 layers).

* ``GaussianConditional``: diagonal Gaussian, returns ``(loc, log_var)``,
  both ``[..., units]``. The log-variance head is unconstrained (a softplus on
  it would force variance >= 1, a bug of some public ports) apart from a
  float32 safeguard, a clip to [-20, 20] (``LOG_VAR_LIMIT``).
* ``LogitsConditional``: Bernoulli or Categorical, returns logits ``[..., units]``.
* ``DeterministicConditional``: a deterministic unit ``mu(inputs)``, the
  auxiliary unit of the ADGM ablation in Maaløe et al. (2016), Fig. 4.

All heads compute in the layer's compute dtype and return float32, so that
distributions and bounds stay float32 under mixed precision.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from adgm_tf import networks


class Conditional(keras.layers.Layer):
  """Base: an :class:`networks.MLP` trunk and a dense head of ``head_units``.

  ``init``, ``bn_momentum`` and ``bn_epsilon`` are those of :class:`networks.MLP`; with
  ``init="authors"`` the head is initialised as the authors' output layers
  (``head_init``).
  """

  head_multiplier = 1
  # The head under init="authors": "small" = N(0, 1e-3^2) kernel and bias (a
  # Gaussian's mu and log-variance), "glorot" = Glorot-normal kernel with
  # gain 1 and an N(0, 1e-3^2) bias (softmax and sigmoid outputs).
  head_init = "glorot"
  # Compute the head in float32 under mixed precision (its input is cast up).
  float32_head = False

  def __init__(self, input_dims: Dict[str, int], units: int,
               hidden: Sequence[int] = (500, 500), activation: str = "relu",
               batch_norm: bool = False, categorical: Sequence[str] = (),
               init: str = "glorot", bn_momentum: float = 0.9,
               bn_epsilon: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    self.input_dims = {str(k): int(v) for k, v in input_dims.items()}
    self.units = int(units)
    self.hidden = tuple(int(h) for h in hidden)
    self.activation = activation
    self.batch_norm = bool(batch_norm)
    self.categorical = tuple(categorical)
    self.init = networks.check_init(init)
    self.bn_momentum = float(bn_momentum)
    self.bn_epsilon = float(bn_epsilon)
    self.mlp = networks.MLP(self.input_dims, self.hidden, activation,
                            batch_norm, self.categorical, init=self.init,
                            bn_momentum=self.bn_momentum,
                            bn_epsilon=self.bn_epsilon, name="mlp",
                            dtype=self.dtype_policy)
    kernel_init, bias_init = "glorot_uniform", "zeros"
    if self.init == "authors":
      bias_init = networks.small_normal()
      kernel_init = (networks.small_normal() if self.head_init == "small"
                     else networks.glorot_normal(1.0))
    # Gaussian heads (loc and log-variance) compute in float32 under a
    # mixed-precision policy: exp(log_var) and the densities need its digits.
    # The variables are float32 either way, so checkpoints do not change.
    self.head = keras.layers.Dense(self.units * self.head_multiplier,
                                   kernel_initializer=kernel_init,
                                   bias_initializer=bias_init, name="head",
                                   dtype="float32" if self.float32_head else self.dtype_policy)

  def build(self, input_shape=None):
    del input_shape
    self.mlp.build()
    self.head.build((None, self.hidden[-1]))
    self.built = True

  def project(self, name: str, value: Optional[tf.Tensor] = None) -> tf.Tensor:
    """First-layer contribution of one input (see ``networks.MultiInputDense``)."""
    return self.mlp.project(name, value)

  def from_preactivation(self, h: tf.Tensor, training=None, bn_split=None):
    """Parameters from the summed first-layer projections ``[N, H0]``.

    ``bn_split``: see ``networks.MLP.trunk``.
    """
    return self._split(tf.cast(self.head(self.mlp.trunk(
        h, training=training, bn_split=bn_split)), tf.float32))

  def call(self, inputs: Dict[str, tf.Tensor], training=None, bn_split=None):
    return self._split(tf.cast(self.head(self.mlp(
        inputs, training=training, bn_split=bn_split)), tf.float32))

  def _split(self, out):
    return out

  def get_config(self):
    config = super().get_config()
    config.update(input_dims=dict(self.input_dims), units=self.units,
                  hidden=list(self.hidden), activation=self.activation,
                  batch_norm=self.batch_norm, categorical=list(self.categorical),
                  init=self.init, bn_momentum=self.bn_momentum,
                  bn_epsilon=self.bn_epsilon)
    return config


# Every Gaussian head's log-variance is clipped to [-LOG_VAR_LIMIT,
# LOG_VAR_LIMIT] (variances 2e-9 to 5e8), a float32 safeguard, not part of the
# model: a healthy run stays far inside, where the clip is the identity (the
# final checkpoints of Fig. 4's ADGM seeds 1-2 and of its SDGM, workshop ADGM
# and M2 seed 1, and of the SDGM without the warm-up seeds 1-2, all measured
# between -8 and 5 on a training batch). Without it a factor that carries
# almost no weight in the bound can drift unchecked: in U(x) the SDGM's
# p(a|y,z) at a label y that q(y|a,x) rules out is weighted by q(y|a,x) ~ 0,
# and in one SDGM run (seed 3 without the warm-up, step 2896) its
# log-variance passed 180, exp(0.5 * 182.7) overflowed float32 and the loss
# became non-finite.
LOG_VAR_LIMIT = 20.0


@keras.saving.register_keras_serializable(package="adgm_tf")
class GaussianConditional(Conditional):
  """A diagonal Gaussian factor; returns ``(loc, log_var)``, each ``[N, units]``.

  The log-variance is clipped to [-LOG_VAR_LIMIT, LOG_VAR_LIMIT] (see there).
  """

  head_multiplier = 2
  head_init = "small"
  float32_head = True

  def __init__(self, *args, log_var_max: Optional[float] = None, **kwargs):
    """``log_var_max``: an upper bound on the log-variance, applied smoothly as
    ``m - softplus(m - r)`` to the head's raw output ``r`` (about ``r`` well
    below ``m``, never above ``m``). It restricts the variational family, so
    the bound stays a bound; None: unconstrained."""
    super().__init__(*args, **kwargs)
    self.log_var_max = None if log_var_max is None else float(log_var_max)

  def raw_log_var(self, log_var: float) -> float:
    """The head output ``r`` that gives log-variance ``log_var`` (the inverse
    of the cap; ``log_var`` itself without one)."""
    if self.log_var_max is None:
      return float(log_var)
    gap = self.log_var_max - float(log_var)
    if gap <= 0:
      raise ValueError(f"log-variance {log_var} is not below the cap "
                       f"log_var_max={self.log_var_max}")
    return self.log_var_max - math.log(math.expm1(gap))  # softplus^-1(gap)

  def _split(self, out) -> Tuple[tf.Tensor, tf.Tensor]:
    loc, log_var = tf.split(out, 2, axis=-1)
    if self.log_var_max is not None:
      log_var = self.log_var_max - tf.nn.softplus(self.log_var_max - log_var)
    return loc, tf.clip_by_value(log_var, -LOG_VAR_LIMIT, LOG_VAR_LIMIT)

  def get_config(self):
    config = super().get_config()
    config.update(log_var_max=self.log_var_max)
    return config


@keras.saving.register_keras_serializable(package="adgm_tf")
class LogitsConditional(Conditional):
  """A Bernoulli or Categorical factor; returns logits ``[N, units]``."""


@keras.saving.register_keras_serializable(package="adgm_tf")
class DeterministicConditional(Conditional):
  """A deterministic unit ``mu(inputs)`` ``[N, units]`` (no noise, no density).

  Initialised as the mean head of the stochastic q(a|x) it replaces.
  """

  head_init = "small"
