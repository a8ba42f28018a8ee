"""The enumerated batch's data structures: a variant's wiring, one step's
noise, the parameters of a forward pass, and the row layout.

A training step sees a labeled batch (x_l, y_l) of B_l images and an
unlabeled batch x_u of B_u images, with S Monte Carlo samples. The rows the
generative model evaluates are

* labeled:   (s, b)    for s < S, b < B_l                  -> ``[S, B_l, ...]``
* unlabeled: (s, y, b) for s < S, y < Y, b < B_u           -> ``[S, Y, B_u, ...]``

flattened and concatenated into N = S B_l + S Y B_u rows (:class:`Layout`);
``base.py`` explains why.
"""

from __future__ import annotations

import functools
import operator
from typing import NamedTuple, Optional, Tuple

import tensorflow as tf

from adgm_tf import heads


class Wiring(NamedTuple):
  """Which inputs each factor takes; a variant of the model.

  Attributes:
    auxiliary: "none" (M2), "stochastic" (ADGM, SDGM) or "deterministic"
      (a = mu(x), the ablation of Maaløe et al. 2016, Fig. 4).
    q_y: inputs of q(y|.), e.g. ("a", "x").
    q_z: inputs of q(z|.), e.g. ("a", "x", "y").
    p_x: inputs of p(x|.), e.g. ("y", "z").
    p_a: inputs of p(a|.); () for the N(0, I) prior; None when the bound
      has no a-terms.
  """
  auxiliary: str
  q_y: Tuple[str, ...]
  q_z: Tuple[str, ...]
  p_x: Tuple[str, ...]
  p_a: Optional[Tuple[str, ...]]


class Noise(NamedTuple):
  """Standard-normal noise for one step (for one replica's slice)."""
  a_l: Optional[tf.Tensor]  # [S, B_l, A]
  a_u: Optional[tf.Tensor]  # [S, B_u, A]
  z_l: tf.Tensor            # [S, B_l, Z]
  z_u: tf.Tensor            # [S, Y, B_u, Z]

  @property
  def samples(self) -> int:
    return int(self.z_l.shape[0])


class Params(NamedTuple):
  """Distribution parameters of one forward pass (for analysis)."""
  layout: "Layout"
  q_a: Optional[Tuple[tf.Tensor, tf.Tensor]]  # ([B, A], [B, A])
  q_z: Tuple[tf.Tensor, tf.Tensor]            # ([N, Z], [N, Z])
  p_a: Optional[Tuple[tf.Tensor, tf.Tensor]]  # ([N, A], [N, A])


class Layout:
  """Row bookkeeping for the enumerated batch (see the module docstring)."""

  def __init__(self, samples: int, num_labeled, num_unlabeled, num_classes: int):
    self.S, self.Bl, self.Bu, self.Y = samples, num_labeled, num_unlabeled, num_classes

  def first_layer(self, net: heads.Conditional, per_example=None,
                  per_sample=None, y_l=None, per_row=None) -> tf.Tensor:
    """The summed first-layer projections of ``net`` for all N rows, ``[N, H]``.

    Args:
      per_example: ``{name: [B_l + B_u, d]}`` (labeled rows first).
      per_sample: ``{name: [S, B_l + B_u, d]}``.
      y_l: labels ``[B_l]`` if ``net`` takes y (unlabeled rows enumerate y).
      per_row: ``{name: [N, d]}``, already one value per row.
    """
    S, Bl, Y = self.S, self.Bl, self.Y
    h_l, h_u = [], []
    # tf.split rather than slicing: the gradient of a split is a concat, that
    # of a slice a zero-padded copy of the whole tensor.
    for name, v in (per_example or {}).items():
      p_l, p_u = self._split_examples(net.project(name, v), 0)   # [B, H]
      h_l.append(p_l[None])                             # [1, B_l, H]
      h_u.append(p_u[None, None])                       # [1, 1, B_u, H]
    for name, v in (per_sample or {}).items():
      p_l, p_u = self._split_examples(net.project(name, v), 1)   # [S, B, H]
      h_l.append(p_l)                                   # [S, B_l, H]
      h_u.append(p_u[:, None])                          # [S, 1, B_u, H]
    if y_l is not None:
      table = net.project("y")                          # [Y, H]
      h_l.append(tf.gather(table, y_l)[None])           # [1, B_l, H]
      h_u.append(table[None, :, None])                  # [1, Y, 1, H]
    width = net.hidden[0]
    h_l = tf.broadcast_to(functools.reduce(operator.add, h_l),
                          tf.stack([S, Bl, width]))
    h_u = tf.broadcast_to(functools.reduce(operator.add, h_u),
                          tf.stack([S, Y, self.Bu, width]))
    h = tf.concat([tf.reshape(h_l, [-1, width]), tf.reshape(h_u, [-1, width])], 0)
    for name, v in (per_row or {}).items():
      h = h + net.project(name, v)                      # [N, H]
    return h

  def _split_examples(self, t: tf.Tensor, axis: int):
    """Labeled and unlabeled examples along ``axis`` (B = B_l + B_u)."""
    return tf.split(t, tf.stack([self.Bl, self.Bu]), axis=axis)

  def split(self, t: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``[N, ...]`` -> ``([S, B_l, ...], [S, Y, B_u, ...])``."""
    t_l, t_u = tf.split(t, tf.stack([self.S * self.Bl, self.S * self.Y * self.Bu]))
    rest = tf.shape(t)[1:]
    t_l = tf.reshape(t_l, tf.concat([[self.S, self.Bl], rest], 0))
    t_u = tf.reshape(t_u, tf.concat([[self.S, self.Y, self.Bu], rest], 0))
    return t_l, t_u

  def flatten(self, t_l: tf.Tensor, t_u: tf.Tensor) -> tf.Tensor:
    """Inverse of :meth:`split`."""
    d = t_l.shape[-1]
    return tf.concat([tf.reshape(t_l, [-1, d]), tf.reshape(t_u, [-1, d])], 0)

  def per_sample_rows(self, t: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """A per-sample tensor ``[S, B, d]`` as row-aligned ``([S,B_l,d], [S,1,B_u,d])``."""
    t_l, t_u = self._split_examples(t, 1)
    return t_l, t_u[:, None]
