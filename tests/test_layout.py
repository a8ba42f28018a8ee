"""Tests for models/layout.py: the enumerated batch's rows, with distinct small
dims (S = 2 samples, B_l = 3 labeled, B_u = 4 unlabeled, Y = 5 labels)."""

import numpy as np
import tensorflow as tf

from adgm_tf import heads
from adgm_tf.models.layout import Layout

S, BL, BU, Y, D = 2, 3, 4, 5, 6
N = S * BL + S * Y * BU


def test_split_and_flatten_are_inverse_and_order_the_rows():
  layout = Layout(S, BL, BU, Y)
  rows = tf.reshape(tf.range(N * D, dtype=tf.float32), [N, D])
  t_l, t_u = layout.split(rows)
  assert t_l.shape == (S, BL, D) and t_u.shape == (S, Y, BU, D)
  np.testing.assert_array_equal(layout.flatten(t_l, t_u), rows)
  # Labeled rows first, sample-major; then unlabeled rows (s, y, b).
  np.testing.assert_array_equal(t_l[1, 2], rows[1 * BL + 2])
  np.testing.assert_array_equal(t_u[1, 3, 2], rows[S * BL + (1 * Y + 3) * BU + 2])


def test_per_sample_rows_align_with_the_enumerated_labels():
  layout = Layout(S, BL, BU, Y)
  t = tf.random.normal([S, BL + BU, D], seed=1)
  t_l, t_u = layout.per_sample_rows(t)
  assert t_l.shape == (S, BL, D) and t_u.shape == (S, 1, BU, D)
  np.testing.assert_array_equal(t_u[:, 0], t[:, BL:])


def test_first_layer_equals_the_projection_of_each_row_built_by_hand():
  """The broadcast sum of per-input projections, row by row, against one dense
  layer applied to the concatenated inputs of that row (x, a sample, a label)."""
  tf.keras.utils.set_random_seed(0)
  X, A = 7, 3
  net = heads.GaussianConditional({"x": X, "a": A, "y": Y}, units=2, hidden=(8,),
                                  categorical=("y",))
  net.build()
  layout = Layout(S, BL, BU, Y)
  x = tf.random.normal([BL + BU, X], seed=2)
  a = tf.random.normal([S, BL + BU, A], seed=3)
  y_l = tf.constant([4, 0, 2])
  h = layout.first_layer(net, per_example={"x": x}, per_sample={"a": a}, y_l=y_l)
  assert h.shape == (N, 8)
  h_l, h_u = layout.split(h)

  def by_hand(s, b, label):
    onehot = tf.one_hot([label], Y)
    return (net.project("x", x[b:b + 1]) + net.project("a", a[s, b:b + 1])
            + tf.matmul(onehot, net.project("y")))[0]

  np.testing.assert_allclose(h_l[1, 2], by_hand(1, 2, 2), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(h_u[0, 3, 1], by_hand(0, BL + 1, 3), rtol=1e-5, atol=1e-6)
