"""Probe: does p(a|x,y,z) pull q(a|x)'s mean toward a shrunk copy of itself?

The a-terms' gradient on q(a|x)'s mean is E[d log p(a|x,y,z)/da] =
-(mu_q - mu_p) / var_p (reparameterised a = mu_q + sigma eps). If p's mean is a
regression of q's (spread below q's, residual correlated with mu_q's own
deviation from its mean), that pull contracts the spread of mu_q across images,
at a rate 1 / var_p. This prints, for one checkpoint and one batch of 200
binarised unlabeled training images (their true labels as y; never test
images): q's spread and log-variance, p's log-variance, p's spread relative to
q's, the share of var(mu_q) along which the residual points, R^2 of mu_p for
mu_q per dimension, and the mismatch (mu_q - mu_p)^2 / var_p.

    python -m experiments.probes.a_pull --model_dir=MODEL_DIR [--checkpoint=PREFIX]

Uses the model's ``forward`` (it needs p(a|.)'s parameters).
"""

import numpy as np

from experiments.probes import common
from experiments.probes.common import tf


def main(model_dir, checkpoint=None):
  model, path, split, images = common.load(model_dir, checkpoint)
  if model.p_a is None or model.wiring.p_a == ():
    raise common.ConfigError(f"{model_dir}: this model has no conditional p(a|.) to "
                             f"probe.")
  rng = np.random.default_rng(0)
  idx = rng.choice(split.unlabeled, 200)
  x, y = common.binarised(rng, images, idx), common.labels(split, idx)
  noise = model.sample_noise(tf.constant([3, 7], tf.int64), 1, 200, 1)
  _, params = model.forward(x, y, x[:1], noise, training=True)
  mq, lq = (t.numpy()[:200] for t in params.q_a)                  # [B, A]
  mp, lp = (t.numpy()[:200] for t in params.p_a)                  # labeled rows, S = 1
  var_q = np.maximum(mq.var(0), 1e-12)
  r2 = 1 - ((mq - mp) ** 2).mean(0) / var_q
  along = np.mean(((mq - mp) * (mq - mq.mean(0))).mean(0) / var_q)
  print(f"{path}\n  q(a|x): spread {mq.std(0).mean():.3f}, log-variance {lq.mean():.2f}"
        f"\n  p(a|x,y,z): log-variance {lp.mean():.2f}, spread / q's spread "
        f"{np.median(mp.std(0) / np.sqrt(var_q)):.2f} (median over dims)"
        f"\n  residual mu_q - mu_p along mu_q - mean: {along:.2f} of var(mu_q)"
        f"\n  R^2 of mu_p for mu_q: median {np.median(r2):.2f}"
        f"\n  mismatch (mu_q - mu_p)^2 / var_p per dim: {(((mq - mp) ** 2) / np.exp(lp)).mean():.3f}")


if __name__ == "__main__":
  common.run(main, "a_pull")
