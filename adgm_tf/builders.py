"""From a config to a model, an optimizer and the checkpoint that holds them.

Used by training (``train.py``) and by everything that restores a run
(``rundir.load_run``: export, figures), so the two always build the same
variables.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Optional

from adgm_tf import config as config_lib


def _step_decay_class():
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @keras.saving.register_keras_serializable(package="adgm_tf")
  class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = max(initial * decay^floor(step / decay_steps), minimum)."""

    def __init__(self, initial, decay, decay_steps, minimum):
      self.initial, self.decay = float(initial), float(decay)
      self.decay_steps, self.minimum = int(decay_steps), float(minimum)

    def __call__(self, step):
      k = tf.floor(tf.cast(step, tf.float32) / self.decay_steps)
      return tf.maximum(self.initial * tf.pow(self.decay, k), self.minimum)

    def get_config(self):
      return dict(initial=self.initial, decay=self.decay,
                  decay_steps=self.decay_steps, minimum=self.minimum)

  return StepDecay


def learning_rate_schedule(train_config: config_lib.TrainConfig, steps_per_epoch: int):
  return _step_decay_class()(train_config.learning_rate, train_config.lr_decay,
                             train_config.lr_decay_every * steps_per_epoch,
                             train_config.lr_min)


def make_optimizer(train_config: config_lib.TrainConfig, steps_per_epoch: int):
  import keras  # pylint: disable=g-import-not-at-top
  from adgm_tf import optimizers  # pylint: disable=g-import-not-at-top
  optimizer = optimizers.Adam(
      learning_rate=learning_rate_schedule(train_config, steps_per_epoch),
      beta_1=train_config.beta1, beta_2=train_config.beta2,
      epsilon=train_config.adam_epsilon)
  # Only fp16 needs loss scaling; --precision=auto never chooses it
  # (hardware.resolve_precision), so the policy itself is set once, by
  # devices.configure_devices.
  if train_config.precision == "fp16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _model_arguments() -> frozenset:
  """The keyword arguments of ``SemiSupervisedModel``: a ModelConfig field of
  the same name reaches the model with no code here."""
  from adgm_tf.models import base  # pylint: disable=g-import-not-at-top
  return frozenset(inspect.signature(base.SemiSupervisedModel.__init__).parameters)


def model_from_config(config: config_lib.Config, alpha: float, steps_per_epoch: int = 1,
                x_dim: int = 784, num_classes: int = 10,
                num_unlabeled: Optional[int] = None):
  """The model a config describes, for the data's sizes.

  Every ``ModelConfig`` field named like a model argument is passed as it is;
  the rest is derived here from the config and the data: ``alpha``
  (classification weight), the warm-up in steps, the weight prior's scale
  1/N (``num_unlabeled``), and the training settings the step uses.
  """
  from adgm_tf import models  # pylint: disable=g-import-not-at-top
  m, t = config.model, config.train
  if m.weight_prior and not num_unlabeled:
    raise ValueError("weight_prior needs num_unlabeled (its scale is 1/N)")
  arguments = _model_arguments()
  same = {k: v for k, v in dataclasses.asdict(m).items() if k in arguments}
  return models.build_model(
      m.model, **same, x_dim=int(x_dim), num_classes=int(num_classes),
      eval_bound_samples=m.mc_samples, alpha=alpha, clip_norm=t.clip_norm,
      clip_value=t.clip_value,
      weight_prior_scale=1.0 / num_unlabeled if m.weight_prior else 0.0,
      aux_warmup_steps=int(round(m.aux_warmup_epochs * steps_per_epoch)),
      seed=t.seed, jit_compile_gradients=t.jit_compile)


def create_model_and_optimizer(config: config_lib.Config, alpha: float,
                               steps_per_epoch: int, x_dim: int = 784,
                               num_classes: int = 10,
                               num_unlabeled: Optional[int] = None):
  """Model and optimizer, compiled, with every variable created.

  Call inside ``strategy.scope()``: the optimizer's slots are created here,
  not lazily inside the first distributed step (where MirroredStrategy
  cannot initialise them).
  """
  model = model_from_config(config, alpha, steps_per_epoch, x_dim, num_classes, num_unlabeled)
  optimizer = make_optimizer(config.train, steps_per_epoch)
  model.compile(optimizer=optimizer)
  optimizer.build(model.trainable_variables)
  return model, optimizer


def make_checkpoint(model, optimizer, wall_time=None):
  """The tf.train.Checkpoint of a run (its structure fixes the variable keys)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if wall_time is None:
    wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time")
  return tf.train.Checkpoint(model=model, optimizer=optimizer, wall_time=wall_time)
