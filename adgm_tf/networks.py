"""MLP trunks whose first layer is a sum of per-input projections.

A conditional such as q(z|a,x,y) is an MLP over the concatenation [a, x, y].
Its first layer is ``concat(a, x, onehot(y)) @ W + b``, which is the same as
``a @ W_a + x @ W_x + W_y[y] + b``. Written that way, each projection can be
computed at the granularity at which its input varies:

* ``x @ W_x`` once per example (the costliest: x is 784 wide),
* ``a @ W_a`` once per Monte Carlo sample of a,
* ``W_y[y]`` is a row lookup, and for all labels at once it is ``W_y`` itself,

and only their (broadcast) sum is formed per (sample, label, example) triple.
This is what lets the unlabeled bound enumerate the 10 labels without
recomputing the input projections 10 times (see ``models/base.py``).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from adgm_tf import rules
from adgm_tf.rules import INITS


# Weight initialisations:
# * "glorot": one Glorot-uniform kernel over the concatenated inputs, zero
#   biases, Keras's default heads (Glorot-uniform, zero bias);
# * "authors": as the code of Maaløe et al. (2016) (Lasagne): every input's
#   kernel Glorot-normal with gain sqrt(2) over its own fan-in and fan-out (one
#   DenseLayer per input there), biases N(0, 1e-3^2); Gaussian heads (mu and
#   log-variance) N(0, 1e-3^2) for kernel and bias, so q(a|x), q(z|.), p(a|.)
#   start at N(~0, ~I), which matches the priors; logits heads Glorot-normal
#   with gain 1, bias N(0, 1e-3^2).
AUTHORS_STD = 1e-3


def check_init(init: str) -> str:
  rules.choice("init", init, INITS, flags=False)
  return init


def glorot_normal(gain: float = 1.0):
  """Glorot-normal with a gain (Lasagne's GlorotNormal(gain)): std = gain sqrt(2 / (fan_in + fan_out))."""
  return keras.initializers.VarianceScaling(scale=gain * gain, mode="fan_avg",
                                            distribution="untruncated_normal")


def small_normal():
  return keras.initializers.RandomNormal(stddev=AUTHORS_STD)


def hidden_initializers(init: str):
  """(kernel, bias) initializers of a hidden Dense layer."""
  if check_init(init) == "authors":
    return glorot_normal(math.sqrt(2.0)), small_normal()
  return "glorot_uniform", "zeros"


def _apply_activation(h, activation: str):
  if activation == "leaky_relu":
    return tf.nn.leaky_relu(h, alpha=0.1)
  return keras.activations.get(activation)(h)


@keras.saving.register_keras_serializable(package="adgm_tf")
class BatchNormalization(keras.layers.BatchNormalization):
  """Keras batch norm whose statistics always cover the global batch.

  With several replicas the sums behind the moments are all-reduced over
  replicas (Keras's synchronized batch norm), so R replicas train exactly as
  one and every worker ends with the same moving statistics. With one
  replica the same one-pass moments, E[x] and E[x^2] - E[x]^2, are computed
  without an all-reduce: cheaper than ``tf.nn.moments``, and free of the
  merge call that cannot run inside an XLA-compiled function.

  ``call(..., split=n)`` in training normalises the first ``n`` rows (the
  labeled pass) and the rest (the unlabeled pass) each with its own batch
  statistics, and updates the moving statistics from the unlabeled rows
  only: the authors' code evaluates the labeled and the unlabeled bound in
  separate passes, and only the unlabeled pass updates the averages.
  """

  def __init__(self, **kwargs):
    kwargs.setdefault("synchronized", True)
    super().__init__(**kwargs)

  def _moments(self, inputs, mask):
    if mask is not None:
      return super()._moments(inputs, mask)
    mean, variance = self._global_moments(inputs)
    return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)

  def _global_moments(self, inputs):
    """float32 mean and variance over every axis but the last, all replicas."""
    x = tf.cast(inputs, tf.float32)
    axes = self._reduction_axes
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
      mean = tf.reduce_mean(x, axis=axes)
      variance = tf.reduce_mean(tf.square(x), axis=axes) - tf.square(mean)
      return mean, tf.maximum(variance, 0.0)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float32)
    total, squares, count = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [tf.reduce_sum(x, axis=axes), tf.reduce_sum(tf.square(x), axis=axes), count])
    mean = total / count
    return mean, tf.maximum(squares / count - tf.square(mean), 0.0)

  def call(self, inputs, training=None, mask=None, split=None):
    if split is None or not (training and self.trainable) or self.renorm:
      return super().call(inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)
    groups = tf.split(x, tf.stack([split, tf.shape(x)[0] - split]))
    gamma = tf.cast(self.gamma, tf.float32) if self.scale else None
    beta = tf.cast(self.beta, tf.float32) if self.center else None
    out = []
    for g in groups:
      mean, variance = self._global_moments(g)
      out.append(tf.nn.batch_normalization(g, mean, variance, beta, gamma,
                                           self.epsilon))
    # Moving statistics from the unlabeled rows (the last group) only.
    for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
      moving.assign(tf.cast(moving, tf.float32) * self.momentum
                    + value * (1.0 - self.momentum))
    return tf.cast(tf.concat(out, 0), self.compute_dtype)


@keras.saving.register_keras_serializable(package="adgm_tf")
class MultiInputDense(keras.layers.Layer):
  """``h = sum_i project(name_i, input_i) + b`` with one kernel per input.

  Real-valued inputs are projected by a matmul; categorical inputs (labels)
  by a row lookup, and ``project(name, None)`` returns the whole table
  ``[num_categories, units]`` for enumeration. With ``init="glorot"`` the
  kernels are initialised as one Glorot-uniform kernel over the concatenated
  input would be; with ``init="authors"`` each kernel is Glorot-normal with
  gain sqrt(2) over its own input, as one Lasagne DenseLayer per input.

  Args:
    units: output width H.
    input_dims: ``{name: width}``; for categorical inputs, the number of
      categories.
    categorical: names of the inputs that are labels (integer indices).
    use_bias: add a bias (off when batch normalization follows).
    init: "glorot" or "authors" (see ``INITS``).
  """

  def __init__(self, units: int, input_dims: Dict[str, int],
               categorical: Sequence[str] = (), use_bias: bool = True,
               init: str = "glorot", **kwargs):
    super().__init__(**kwargs)
    self.init = check_init(init)
    self.units = int(units)
    self.input_dims = {str(k): int(v) for k, v in input_dims.items()}
    self.categorical = tuple(categorical)
    unknown = set(self.categorical) - set(self.input_dims)
    if unknown:
      raise ValueError(f"categorical inputs {sorted(unknown)} are not in "
                       f"input_dims {sorted(self.input_dims)}")
    self.use_bias = bool(use_bias)

  @property
  def kernels(self) -> Dict[str, keras.Variable]:
    """``{input name: kernel [width, units]}``."""
    return {name: getattr(self, f"kernel_{name}") for name in sorted(self.input_dims)}

  def build(self, input_shape=None):
    del input_shape  # widths come from input_dims
    fan_in = sum(self.input_dims.values())
    limit = math.sqrt(6.0 / (fan_in + self.units))
    kernel_init, bias_init = hidden_initializers(self.init)
    for name in sorted(self.input_dims):
      # One attribute per kernel: tf.train.Checkpoint only follows direct
      # attributes of Keras-3 layers, not dicts or lists.
      setattr(self, f"kernel_{name}", self.add_weight(
          name=f"kernel_{name}", shape=(self.input_dims[name], self.units),
          initializer=(kernel_init if self.init == "authors"
                       else keras.initializers.RandomUniform(-limit, limit))))
    self.bias = (self.add_weight(name="bias", shape=(self.units,),
                                 initializer=bias_init)
                 if self.use_bias else None)
    self.built = True

  def project(self, name: str, value: Optional[tf.Tensor] = None) -> tf.Tensor:
    """The first-layer contribution of input ``name``.

    Args:
      name: which input.
      value: ``[..., width]`` for a real input (any leading shape); ``[...]``
        integer labels for a categorical one, or None for the whole table.
    Returns:
      ``[..., units]`` (``[num_categories, units]`` for a table).
    """
    kernel = tf.cast(self.kernels[name], self.compute_dtype)
    if name in self.categorical:
      return kernel if value is None else tf.gather(kernel, value)
    value = tf.cast(value, self.compute_dtype)
    if value.shape.rank == 2:
      return tf.matmul(value, kernel)
    lead = tf.shape(value)[:-1]
    flat = tf.matmul(tf.reshape(value, [-1, self.input_dims[name]]), kernel)
    return tf.reshape(flat, tf.concat([lead, [self.units]], 0))

  def add_bias(self, h: tf.Tensor) -> tf.Tensor:
    if self.bias is None:
      return h
    return h + tf.cast(self.bias, self.compute_dtype)

  def call(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
    missing = set(self.input_dims) - set(inputs)
    if missing:
      raise ValueError(f"{self.name}: missing inputs {sorted(missing)}")
    h = None
    for name in sorted(self.input_dims):
      p = self.project(name, inputs[name])
      h = p if h is None else h + p
    return self.add_bias(h)

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, input_dims=dict(self.input_dims),
                  categorical=list(self.categorical), use_bias=self.use_bias,
                  init=self.init)
    return config


@keras.saving.register_keras_serializable(package="adgm_tf")
class MLP(keras.layers.Layer):
  """Dense -> [BatchNorm] -> activation, repeated; first layer multi-input.

  ``project`` and ``trunk`` expose the first layer's per-input projections and
  everything after their sum, so callers can broadcast-sum projections made
  at different granularities; ``call`` is the plain composition.

  Args:
    input_dims: ``{name: width}`` of the inputs (categories for labels).
    hidden: widths of the hidden layers (at least one).
    activation: one of ``rules.ACTIVATIONS``.
    batch_norm: dense -> batch normalization -> activation in every layer.
    categorical: names of the label inputs.
    init: "glorot" or "authors" (see ``INITS``).
    bn_momentum: the moving averages' momentum (0.9 is Lasagne's alpha = 0.1,
      the authors' rate; Keras's default is 0.99).
    bn_epsilon: added to the batch variance before its square root (Keras's
      default 1e-3; Lasagne's BatchNormLayer, the authors' code, 1e-4).
  """

  def __init__(self, input_dims: Dict[str, int], hidden: Sequence[int] = (500, 500),
               activation: str = "relu", batch_norm: bool = False,
               categorical: Sequence[str] = (), init: str = "glorot",
               bn_momentum: float = 0.9, bn_epsilon: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    self.input_dims = {str(k): int(v) for k, v in input_dims.items()}
    self.hidden = tuple(int(h) for h in hidden)
    rules.check_network(hidden=self.hidden, activation=activation, init=init,
                        bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.activation = activation
    self.batch_norm = bool(batch_norm)
    self.categorical = tuple(categorical)
    self.init = init
    self.bn_momentum = float(bn_momentum)
    self.bn_epsilon = float(bn_epsilon)
    self.first = MultiInputDense(self.hidden[0], self.input_dims,
                                 categorical=self.categorical,
                                 use_bias=not self.batch_norm, name="dense_0",
                                 init=self.init, dtype=self.dtype_policy)
    kernel_init, bias_init = hidden_initializers(self.init)
    # Sublayers are direct attributes (dense_1, ..., bn_0, ...), not lists:
    # tf.train.Checkpoint follows only direct attributes of Keras-3 layers,
    # and batch norm's moving statistics are reachable no other way.
    for i, h in enumerate(self.hidden[1:]):
      setattr(self, f"dense_{i + 1}", keras.layers.Dense(
          h, use_bias=not self.batch_norm, name=f"dense_{i + 1}",
          kernel_initializer=kernel_init, bias_initializer=bias_init,
          dtype=self.dtype_policy))
    if self.batch_norm:
      # Batch statistics over the global batch, not each replica's slice
      # (see BatchNormalization).
      for i in range(len(self.hidden)):
        setattr(self, f"bn_{i}", BatchNormalization(
            name=f"bn_{i}", momentum=self.bn_momentum, epsilon=self.bn_epsilon,
            dtype=self.dtype_policy))

  @property
  def dense(self):
    return [getattr(self, f"dense_{i + 1}") for i in range(len(self.hidden) - 1)]

  @property
  def norms(self):
    if not self.batch_norm:
      return []
    return [getattr(self, f"bn_{i}") for i in range(len(self.hidden))]

  def build(self, input_shape=None):
    del input_shape
    self.first.build()
    width = self.hidden[0]
    for i, layer in enumerate(self.dense):
      layer.build((None, width))
      width = self.hidden[i + 1]
    for norm, h in zip(self.norms, self.hidden):
      norm.build((None, h))
    self.built = True

  def project(self, name: str, value: Optional[tf.Tensor] = None) -> tf.Tensor:
    return self.first.project(name, value)

  def trunk(self, h: tf.Tensor, training=None, bn_split=None) -> tf.Tensor:
    """From the summed first-layer projections ``[N, H0]`` to ``[N, H_last]``.

    ``bn_split``: in training, batch statistics of the first ``bn_split`` rows
    and of the rest are kept apart (see ``BatchNormalization``).
    """
    return self.activations(h, training=training, bn_split=bn_split)[-1]

  def activations(self, h: tf.Tensor, training=None, bn_split=None):
    """Every hidden layer's output ``[[N, H_0], ..., [N, H_last]]``, from the summed projections."""
    out = []
    h = self.first.add_bias(h)
    if self.batch_norm:
      h = self.norms[0](h, training=training, split=bn_split)
    h = _apply_activation(h, self.activation)
    out.append(h)
    for i, layer in enumerate(self.dense):
      h = layer(h)
      if self.batch_norm:
        h = self.norms[i + 1](h, training=training, split=bn_split)
      h = _apply_activation(h, self.activation)
      out.append(h)
    return out

  def preactivation(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
    """The summed first-layer projections of ``inputs`` (without bias), ``[N, H0]``."""
    h = None
    for name in sorted(self.input_dims):
      p = self.first.project(name, inputs[name])
      h = p if h is None else h + p
    return h

  def call(self, inputs: Dict[str, tf.Tensor], training=None, bn_split=None) -> tf.Tensor:
    return self.trunk(self.preactivation(inputs), training=training, bn_split=bn_split)

  def get_config(self):
    config = super().get_config()
    config.update(input_dims=dict(self.input_dims), hidden=list(self.hidden),
                  activation=self.activation, batch_norm=self.batch_norm,
                  categorical=list(self.categorical), init=self.init,
                  bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
    return config


def flops_per_row(input_dims: Dict[str, int], hidden: Sequence[int],
                  out: int, categorical: Sequence[str] = ()) -> Tuple[Dict[str, int], int]:
  """Multiply-adds of an MLP, split by where they are spent.

  Returns ``({input name: first-layer MACs per row of that input}, MACs per
  row of everything after the first-layer sum)``; categorical inputs cost 0
  (a lookup). Used by the benchmark to count the work a step really does.
  """
  first = {name: (0 if name in categorical else dim * hidden[0])
           for name, dim in input_dims.items()}
  rest = sum(a * b for a, b in zip(hidden[:-1], hidden[1:])) + hidden[-1] * out
  return first, rest
