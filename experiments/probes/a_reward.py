"""Probe: does the bound pay the classifier for reading a?

U(x) in its per-sample form (bounds.py) with S samples a_s ~ q(a|x), the
classifier's q_s(y) = q(y|a_s,x), their mean qbar(y) and the per-label terms
L_s(y) = log p(x,y,z_s^y,a_s) - log q(z_s^y|a_s,x,y):

  U = 1/S sum_s sum_y q_s(y) (L_s(y) - log q_s(y)) - 1/S sum_s log q(a_s|x).

Replace every q_s by qbar (the same classifier averaged over a: it ignores
a and keeps its answer) and the bound changes by exactly
(``bounds.classifier_a_reward``)

  U - U_ignore = C - I,  C = 1/S sum_s sum_y (q_s(y) - qbar(y)) L_s(y),
                         I = H[qbar] - 1/S sum_s H[q_s]   (I(y;a|x), nats),

with nothing else in the objective changed (the labeled terms see qbar or no
classifier at all). C is what the generative model pays for an answer that
follows a (large when the L_s(y) of the label the classifier picks for a_s
is high for that a_s), I what the entropy term charges for it. C - I < 0
means the bound is higher for the same classifier made blind to a. C splits into the part from log p(a|.) (C_a, the
a-terms, weighted by the warm-up weight w in training) and the rest (C_z:
log p(x|.), log p(z), log q(z|.)); in training the difference is w C_a + C_z - I.

Over 8 batches of 100 unlabeled images of the run's own training split
(binarised; never validation or test images), S = 32 samples of a, batch
statistics as in training. Prints the means over the 800 images and, in
brackets, the standard error over the 8 batches.

    python -m experiments.probes.a_reward --model_dir=MODEL_DIR [--checkpoint=PREFIX]
        [--write=FILE.json]

``--write`` also saves the figures (means and standard errors) as JSON to a
new file, small enough to publish beside a run.
"""

import os

import numpy as np

from experiments.probes import common
from experiments.probes.common import tf

from adgm_tf import bounds

SAMPLES = 32


def main(model_dir, checkpoint=None, write=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  write = write if write is not None else flags.FLAGS.write
  common.check_new_file("write", write)
  model, path, split, images, w = common.load_with_a(model_dir, checkpoint)
  rng = np.random.default_rng(0)
  rows = []
  for b in range(8):
    li, ui = rng.choice(split.labeled, 100), rng.choice(split.unlabeled, 100)
    x_l, x_u = common.binarised(rng, images, li), common.binarised(rng, images, ui)
    noise = model.sample_noise(tf.constant([b, 11], tf.int64), SAMPLES, 100, 100)
    f = model.compute_factors(x_l, common.labels(split, li), x_u, noise, training=True)
    c_a, c_z, info = (t.numpy() for t in bounds.classifier_a_reward(f))
    rows.append([c_a.mean(), c_z.mean(), info.mean(), (c_a + c_z - info).mean(),
                 (w * c_a + c_z - info).mean()])
  rows = np.array(rows)
  mean, se = rows.mean(0), rows.std(0, ddof=1) / np.sqrt(len(rows))
  names = ["C_a", "C_z", "I", "C-I", "wC_a+C_z-I"]
  print(f"{path} (warm-up weight {w:.2f}, S = {SAMPLES}, nats per image)")
  print("  " + "  ".join(f"{n} {m:+.4f} ({s:.4f})" for n, m, s in zip(names, mean, se)))
  if write:
    common.write_json(write, dict(checkpoint=os.path.basename(path), warmup_weight=float(w),
                                  samples=SAMPLES, batches=len(rows), images_per_batch=100,
                                  mean=dict(zip(names, map(float, mean))),
                                  standard_error=dict(zip(names, map(float, se)))))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("write", None, "also save the figures as JSON to this new file")


if __name__ == "__main__":
  define_flags()
  common.run(main, "a_reward")
