"""A run's data: the dataset, its semi-supervised split and the input pipeline.

``build_data`` loads the dataset a config names (``data.load_dataset``),
splits it and derives the sizes the model and the bound need (steps per
epoch, the classification weight alpha, the input width and classes);
``distributed_epoch`` feeds one epoch to a strategy's replicas. Used by
training, evaluation, the benchmark and the probes; it imports neither the
trainer nor the launcher.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

from adgm_tf import config as config_lib
from adgm_tf import data as data_lib




@dataclasses.dataclass
class Data:
  split: data_lib.SemiSupervisedSplit
  source: data_lib.Source
  steps_per_epoch: int
  alpha: float

  @property
  def shape(self) -> Dict[str, Any]:
    """What the model's size follows: input width, classes, image shape."""
    a = self.split.arrays
    return dict(x_dim=a.pixels, num_classes=a.num_classes,
                image_shape=list(a.image_shape))


def build_data(config: config_lib.Config) -> Data:
  from adgm_tf import bounds  # pylint: disable=g-import-not-at-top
  d, m = config.data, config.model
  arrays, source = data_lib.load_dataset(d.dataset, idx_dir=d.idx_dir,
                                         data_dir=d.data_dir)
  split = data_lib.split_semi_supervised(
      arrays, num_labels=d.num_labels, label_seed=d.label_seed,
      validation_size=d.validation_size, max_unlabeled=d.max_unlabeled)
  return Data(split, source, data_lib.steps_per_epoch(split, d.unlabeled_batch_size),
              bounds.classification_weight(split.num_unlabeled, split.num_labeled,
                                           m.alpha_beta))


# Epochs fed through one iterator (Trainer.train). Destroying a distributed
# iterator can hold the trainer up to a minute (the per-device iterators of
# tf.distribute's MultiDeviceIterator run tf.data's autotuner, whose thread
# sleeps up to 60 s between rounds and is waited for; our own pipelines turn
# it off, those are built by TensorFlow with default options). Seen on the
# chosen long run: 45-55 s of every ~140 s epoch idle at its end. One
# iterator for a block of epochs pays that at most once a block; the block's
# index arrays cost 2 x 8 bytes per image per epoch (about 0.9 MB an MNIST
# epoch), so blocks stay small.
EPOCHS_PER_ITERATOR = 25


def distributed_epoch(strategy, split, data_config: config_lib.DataConfig,
                      seed: int, epoch: int, skip: int = 0, epochs: int = 1):
  """Epochs ``epoch`` to ``epoch + epochs - 1`` of training data, one after
  another, split over the strategy's replicas.

  Each worker's input pipeline yields its replicas' slices of every global
  batch in replica order (``data.train_dataset``), so replica r always sees
  rows [r B/R, (r+1) B/R) of the batch a single replica would see. ``skip``
  drops the steps already done when resuming mid-epoch. The elements are
  those of the epochs one by one, whatever ``epochs`` is.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def dataset_fn(ctx):
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    ids = range(ctx.input_pipeline_id * local, (ctx.input_pipeline_id + 1) * local)
    ds = data_lib.train_dataset(
        split, labeled_batch_size=data_config.labeled_batch_size,
        unlabeled_batch_size=data_config.unlabeled_batch_size, seed=seed,
        epochs=epochs, start_epoch=epoch, num_replicas=ctx.num_replicas_in_sync,
        replica_ids=ids)
    return ds.skip(skip * local)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(dataset_fn, options)
