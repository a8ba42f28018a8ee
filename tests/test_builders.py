"""Tests for adgm_tf.builders: config -> schedule, optimizer and model."""

import pytest
import tensorflow as tf

from adgm_tf import builders
from adgm_tf import config as config_lib
from adgm_tf import networks


def _authors_annealing(initial, decay, every, minimum, epochs):
  """The learning rate of each epoch 1..epochs under the authors' rule
  (auxiliary-deep-generative-models, training/train.py:35-53): after epoch e,
  new = lr * decay; lr = minimum if new < minimum, else new if e % every == 0."""
  lr, out = initial, []
  for epoch in range(1, epochs + 1):
    out.append(lr)
    new = lr * decay
    if new < minimum:
      lr = minimum
    elif epoch % every == 0:
      lr = new
  return out


@pytest.mark.parametrize("epochs", [1000, 1601])
def test_the_authors_schedule_is_their_annealing_rule(epochs):
  """mnist100_sdgm_authors.flags: 3e-4, x0.75 every 200 epochs, floor 3e-5.
  Every step of every epoch of the authors' 1000 takes their epoch's rate (to
  float32 precision); the two rules part only after epoch 1601, where theirs
  snaps 3.003e-5 to the floor an epoch end early (a 0.1% step)."""
  steps_per_epoch = 2
  cfg = config_lib.TrainConfig(learning_rate=3e-4, lr_decay=0.75, lr_decay_every=200,
                               lr_min=3e-5)
  schedule = builders.learning_rate_schedule(cfg, steps_per_epoch=steps_per_epoch)
  theirs = _authors_annealing(3e-4, 0.75, 200, 3e-5, epochs)
  steps = tf.range(epochs * steps_per_epoch)
  ours = tf.reshape(tf.map_fn(schedule, steps, fn_output_signature=tf.float32),
                    [epochs, steps_per_epoch]).numpy()
  for e in range(epochs):
    assert ours[e] == pytest.approx([theirs[e]] * steps_per_epoch, rel=1e-6), e + 1
  assert len(set(theirs)) == (5 if epochs == 1000 else 9)  # 1000 epochs: 4 decays + start


def test_the_rules_differ_where_the_floor_binds_between_decays():
  """Where the floor binds, theirs reaches it at the first epoch end at which
  one more decay would pass it, ours at the next decay: this is the case the
  authors' settings never reach in 1000 epochs (test above)."""
  theirs = _authors_annealing(1e-3, 0.5, 2, 3e-4, 6)
  assert theirs == pytest.approx([1e-3, 1e-3, 5e-4, 3e-4, 3e-4, 3e-4])
  cfg = config_lib.TrainConfig(learning_rate=1e-3, lr_decay=0.5, lr_decay_every=2,
                               lr_min=3e-4)
  schedule = builders.learning_rate_schedule(cfg, steps_per_epoch=1)
  ours = [float(schedule(s)) for s in range(6)]
  assert ours == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 3e-4, 3e-4])


@pytest.mark.parametrize("epsilon", [1e-8, 1e-7])
def test_the_optimizer_takes_adam_epsilon(epsilon):
  opt = builders.make_optimizer(config_lib.TrainConfig(adam_epsilon=epsilon), 10)
  assert opt.epsilon == epsilon
  # Adam's first step (TensorFlow's and Lasagne's form: epsilon added to
  # sqrt(v), the bias correction folded into the rate) is
  # lr * s g / (s |g| + epsilon) with s = sqrt(1 - beta2): with g = 1e-7 the
  # epsilon is visible in the result.
  var = tf.Variable([0.0])
  opt = builders.make_optimizer(config_lib.TrainConfig(
      adam_epsilon=epsilon, learning_rate=1e-3, lr_min=1e-3), 10)
  opt.apply([tf.constant([1e-7])], [var])
  s = (1 - 0.999) ** 0.5
  assert float(var[0]) == pytest.approx(-1e-3 * s * 1e-7 / (s * 1e-7 + epsilon), rel=1e-3)


def test_model_from_config_passes_bn_epsilon_to_every_batch_norm():
  cfg = config_lib.Config(model=config_lib.ModelConfig(
      model="sdgm", hidden=(6, 5), z_dim=3, a_dim=4, bn_epsilon=1e-4))
  model = builders.model_from_config(cfg, alpha=1.0)
  norms = [layer for layer in model._flatten_layers()
           if isinstance(layer, networks.BatchNormalization)]
  # q_a, q_y, q_z, p_a, p_x: five MLPs of two layers each.
  assert len(norms) == 10
  assert {n.epsilon for n in norms} == {1e-4}
  assert model.get_config()["bn_epsilon"] == 1e-4
  default = builders.model_from_config(config_lib.Config(model=config_lib.ModelConfig(
      model="sdgm", hidden=(6,), z_dim=3, a_dim=4)), alpha=1.0)
  assert default.bn_epsilon == 1e-3  # Keras's, as before the option existed
