"""Parameters -> ``tfp.distributions`` objects, and the few closed forms we need.

Event dimensions are reinterpreted with ``tfd.Independent`` so ``log_prob``
sums over units and returns one value per row: a diagonal Gaussian over
``[..., units]`` gives ``[...]``. Everything is float32.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

LOG_2PI = math.log(2.0 * math.pi)


def diag_gaussian(loc: tf.Tensor, log_var: tf.Tensor) -> tfd.Distribution:
  """N(loc, diag(exp(log_var))), event shape ``[units]``."""
  return tfd.Independent(tfd.Normal(loc=loc, scale=tf.exp(0.5 * log_var)),
                         reinterpreted_batch_ndims=1)


def standard_normal(units: int) -> tfd.Distribution:
  """N(0, I) over ``[units]`` (the prior p(z), and p(a) in the workshop ADGM)."""
  return tfd.Independent(tfd.Normal(loc=tf.zeros([units]), scale=1.0),
                         reinterpreted_batch_ndims=1)


def bernoulli(logits: tf.Tensor) -> tfd.Distribution:
  """Independent Bernoulli pixels on logits, event shape ``[pixels]``."""
  return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32),
                         reinterpreted_batch_ndims=1)


def bernoulli_log_prob(logits: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
  """``bernoulli(logits).log_prob(x)`` in closed form: sum_d x_d l_d - softplus(l_d).

  log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l), so
  the log-density is linear in x; this form needs one softplus where TFP's
  takes two, on the largest tensor of the step (every enumerated row times
  784 pixels). ``tests/test_networks.py`` checks it against TFP.
  """
  return _bernoulli_log_prob(logits, tf.cast(x, logits.dtype))


def _unbroadcast(t: tf.Tensor, shape) -> tf.Tensor:
  """Sums ``t`` down to ``shape`` (the inverse of broadcasting)."""
  t_shape = tf.shape(t)
  shape = tf.convert_to_tensor(shape)
  padded = tf.concat([tf.ones([tf.rank(t) - tf.size(shape)], tf.int32), shape], 0)
  _, axes = tf.raw_ops.BroadcastGradientArgs(s0=t_shape, s1=padded)
  return tf.reshape(tf.reduce_sum(t, axis=axes), shape)


@tf.custom_gradient
def _bernoulli_log_prob(logits, x):
  # The forward keeps no [..., D] intermediate for the backward pass (only
  # its inputs): d/dl = x - sigmoid(l), d/dx = l.
  log_prob = tf.reduce_sum(x * logits - tf.nn.softplus(logits), axis=-1)

  def grad(g):
    g = g[..., None]
    d_logits = _unbroadcast(g * (x - tf.sigmoid(logits)), tf.shape(logits))
    d_x = _unbroadcast(g * logits, tf.shape(x))
    return d_logits, d_x

  return log_prob, grad


def categorical(logits: tf.Tensor) -> tfd.Distribution:
  """Categorical over the last axis of ``logits``."""
  return tfd.Categorical(logits=logits)


def uniform_categorical(num_classes: int) -> tfd.Distribution:
  """p(y) = Cat(1/K)."""
  return tfd.Categorical(logits=tf.zeros([num_classes]))


def reparameterize(loc: tf.Tensor, log_var: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
  """A sample of N(loc, exp(log_var)) from standard-normal noise ``eps``.

  The same as ``diag_gaussian(loc, log_var).sample(seed=...)`` with the noise
  made explicit, so that it can be drawn once for a whole global batch,
  shared where the maths shares it, and fixed in tests.
  """
  return loc + tf.exp(0.5 * log_var) * eps


def gaussian_kl(loc_q, log_var_q, loc_p=0.0, log_var_p=0.0) -> tf.Tensor:
  """Per-unit KL(N(loc_q, e^log_var_q) || N(loc_p, e^log_var_p)), in nats.

  ``0.5 * (log_var_p - log_var_q + (e^log_var_q + (loc_q - loc_p)^2) / e^log_var_p - 1)``,
  elementwise (no sum over units), so active units can be counted.
  """
  return 0.5 * (log_var_p - log_var_q
                + (tf.exp(log_var_q) + tf.square(loc_q - loc_p)) * tf.exp(-log_var_p)
                - 1.0)
