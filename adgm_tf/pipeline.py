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


def distributed_epoch(strategy, split, data_config: config_lib.DataConfig,
                      seed: int, epoch: int, skip: int = 0):
  """Epoch ``epoch`` of training data, split over the strategy's replicas.

  Each worker's input pipeline yields its replicas' slices of every global
  batch in replica order (``data.train_dataset``), so replica r always sees
  rows [r B/R, (r+1) B/R) of the batch a single replica would see. ``skip``
  drops the steps already done when resuming mid-epoch.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def dataset_fn(ctx):
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    ids = range(ctx.input_pipeline_id * local, (ctx.input_pipeline_id + 1) * local)
    ds = data_lib.train_dataset(
        split, labeled_batch_size=data_config.labeled_batch_size,
        unlabeled_batch_size=data_config.unlabeled_batch_size, seed=seed,
        epochs=1, start_epoch=epoch, num_replicas=ctx.num_replicas_in_sync,
        replica_ids=ids)
    return ds.skip(skip * local)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
  return strategy.distribute_datasets_from_function(dataset_fn, options)
