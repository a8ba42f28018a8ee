"""Probe: which part of the objective grows or shrinks q(a|x)'s mean map?

For one checkpoint, over 8 batches drawn as training draws them (100 labeled
images of the run's labeled set, 100 of its unlabeled set, binarised; never
validation or test images), the ascent gradient of each part of the training
objective J (at the run's warm-up weight w):

  a-terms   w * E[log p(a|.) - log q(a|x)] in L and U,
  alpha*cls alpha * log qbar(y|x) of the labeled images,
  L w/o a   L(x,y) without its a-terms,
  U w/o a   U(x) without its a-terms,

projected on q(a|x)'s mean head kernel (positive: the step grows the kernel's
norm), on each batch-norm scale gamma of q(a|x)'s MLP (sign(gamma) * grad:
positive grows |gamma|), and on q(y|a,x)'s first-layer kernels for a and x.

    python -m experiments.probes.a_gradients --model_dir=MODEL_DIR [--checkpoint=PREFIX]
"""

import numpy as np

from experiments.probes import common
from experiments.probes.common import tf

from adgm_tf import bounds


def main(model_dir, checkpoint=None):
  model, path, split, images, w = common.load_with_a(model_dir, checkpoint)
  targets = {"q_a mean head": model.q_a.head.kernel}
  for i, bn in enumerate(model.q_a.mlp.norms if model.batch_norm else []):
    targets[f"q_a layer {i} gamma"] = [v for v in bn.trainable_variables if "gamma" in v.path][0]
  for v in model.q_y.mlp.first.weights:
    if v.path.endswith(("kernel_a", "kernel_x")):
      targets["q_y " + v.path.split("/")[-1]] = v
  names, variables = list(targets), list(targets.values())
  rng = np.random.default_rng(0)
  sums = {}
  for b in range(8):
    li, ui = rng.choice(split.labeled, 100), rng.choice(split.unlabeled, 100)
    x_l, x_u = common.binarised(rng, images, li), common.binarised(rng, images, ui)
    y_l = common.labels(split, li)
    noise = model.sample_noise(tf.constant([b, 7], tf.int64), model.mc_samples, 100, 100)
    with tf.GradientTape(persistent=True) as tape:
      f = model.compute_factors(x_l, y_l, x_u, noise, training=True)
      t1 = bounds.bound_terms(f, unlabeled_weighting=model.unlabeled_weighting)
      t0 = bounds.bound_terms(bounds.warm_up(f, 0.0),
                              unlabeled_weighting=model.unlabeled_weighting)
      cls = model.alpha * tf.reduce_mean(t1.log_qbar_l)
      parts = {"a-terms": w * (bounds.objective(t1, model.alpha) - bounds.objective(t0, model.alpha)),
               "alpha*cls": cls, "L w/o a": tf.reduce_mean(t0.elbo_l),
               "U w/o a": tf.reduce_mean(t0.elbo_u)}
    for k, v in parts.items():
      for n, g, var in zip(names, tape.gradient(v, variables), variables):
        sums.setdefault((k, n), []).append(np.zeros(var.shape) if g is None else g.numpy())
  print(f"{path} (warm-up weight {w:.2f})")
  for n, var in zip(names, variables):
    val = var.numpy()
    if n == "q_a mean head":
      val = val[:, :model.a_dim]
    cells = []
    for k in parts:
      g = np.mean(sums[(k, n)], 0)
      if n == "q_a mean head":
        g = g[:, :model.a_dim]
      proj = (np.mean(np.sign(val) * g) if "gamma" in n
              else np.sum(g * val) / max(np.linalg.norm(val), 1e-12))
      cells.append(f"{k} {proj:+.4f}")
    print(f"  {n:18s} " + "  ".join(cells))


if __name__ == "__main__":
  common.run(main, "a_gradients")
