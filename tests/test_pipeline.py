"""Tests for adgm_tf.pipeline: a run's data and its sizes."""

import numpy as np

from adgm_tf import config as config_lib
from adgm_tf import pipeline


def test_build_data_derives_the_sizes_from_the_data(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (120, 5, 4, 3), dtype=np.uint8)
  y = np.arange(120) % 4
  np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
  cfg = config_lib.Config(data=config_lib.DataConfig(
      dataset=f"npz:{tmp_path / 'd.npz'}", num_labels=8, validation_size=20,
      unlabeled_batch_size=25, labeled_batch_size=8))
  data = pipeline.build_data(cfg)
  assert data.shape == dict(x_dim=60, num_classes=4, image_shape=[5, 4, 3])
  assert data.split.num_labeled == 8 and len(data.split.validation) == 20
  assert data.steps_per_epoch == 100 // 25          # 120 - 20 unlabeled images
  assert data.alpha == 0.1 * 100 / 8                # alpha = beta N / N_l
