"""A brute-force numpy reference of the bounds: plain loops, from the weights.

It shares no code with the package: every conditional is re-run from its
weights for one (sample, label, example) at a time, in float64. Batch
normalization is not supported (tests that use this build models without it).
"""

import math

import numpy as np


def _act(h, name):
  if name == "relu":
    return np.maximum(h, 0.0)
  if name == "tanh":
    return np.tanh(h)
  if name == "softplus":
    return np.logaddexp(0.0, h)
  raise ValueError(name)


def conditional(layer, inputs):
  """Runs a heads.Conditional on one example: ``inputs`` is {name: vector or int}."""
  mlp = layer.mlp
  assert not mlp.batch_norm, "the reference has no batch norm"
  h = np.zeros(mlp.hidden[0])
  for name, kernel in mlp.first.kernels.items():
    k = np.asarray(kernel.numpy(), np.float64)
    v = inputs[name]
    h = h + (k[int(v)] if name in mlp.categorical else np.asarray(v, np.float64) @ k)
  h = _act(h + mlp.first.bias.numpy(), mlp.activation)
  for dense in mlp.dense:
    h = _act(h @ dense.kernel.numpy() + dense.bias.numpy(), mlp.activation)
  out = h @ layer.head.kernel.numpy() + layer.head.bias.numpy()
  if type(layer).__name__ == "GaussianConditional":
    return np.split(out, 2)
  return out


def log_normal(v, loc, log_var):
  return float(np.sum(-0.5 * (math.log(2 * math.pi) + log_var
                              + (v - loc) ** 2 / np.exp(log_var))))


def log_bernoulli(x, logits):
  return float(np.sum(x * logits - np.logaddexp(0.0, logits)))


def log_softmax(logits):
  m = logits.max()
  return logits - (m + math.log(np.sum(np.exp(logits - m))))


def log_weights(model, x, y, eps_a, eps_z):
  """For one example and one label: (log w_s [S], log q(a_s|x) [S], log q(y|a_s,x) [S, Y]).

  log w_s = log p(x,y,z_s,a_s) - log q(z_s|a_s,x,y) - log q(a_s|x).
  ``eps_a``: [S, A] (ignored without a stochastic a); ``eps_z``: [S, Z].
  """
  w = model.wiring
  S = eps_z.shape[0]
  Y = model.num_classes
  out_w, out_qa, out_qy = [], [], []
  for s in range(S):
    if w.auxiliary == "stochastic":
      loc, lv = conditional(model.q_a, {"x": x})
      a = loc + np.exp(0.5 * lv) * eps_a[s]
      log_qa = log_normal(a, loc, lv)
    elif w.auxiliary == "deterministic":
      a = conditional(model.q_a, {"x": x})
      log_qa = 0.0
    else:
      a, log_qa = None, 0.0
    env = {"x": x, "a": a, "y": y}
    logits_y = conditional(model.q_y, {k: env[k] for k in w.q_y})
    loc_z, lv_z = conditional(model.q_z, {k: env[k] for k in w.q_z})
    z = loc_z + np.exp(0.5 * lv_z) * eps_z[s]
    env["z"] = z
    log_qz = log_normal(z, loc_z, lv_z)
    log_pz = log_normal(z, np.zeros_like(z), np.zeros_like(z))
    log_px = log_bernoulli(x, conditional(model.p_x, {k: env[k] for k in w.p_x}))
    if w.p_a is None:
      log_pa = 0.0
    elif not w.p_a:
      log_pa = log_normal(a, np.zeros_like(a), np.zeros_like(a))
    else:
      loc_pa, lv_pa = conditional(model.p_a, {k: env[k] for k in w.p_a})
      log_pa = log_normal(a, loc_pa, lv_pa)
    log_py = -math.log(Y)
    out_w.append(log_px + log_py + log_pz + log_pa - log_qz - log_qa)
    out_qa.append(log_qa)
    out_qy.append(log_softmax(logits_y))
  return np.array(out_w), np.array(out_qa), np.array(out_qy)


def labeled_elbo(model, x, y, eps_a, eps_z):
  log_w, _, _ = log_weights(model, x, y, eps_a, eps_z)
  return float(np.mean(log_w))


def unlabeled_elbo(model, x, eps_a, eps_z_by_label):
  """U(x); ``eps_z_by_label``: [S, Y, Z] (z noise of each enumerated label)."""
  S, Y = eps_z_by_label.shape[:2]
  total = np.zeros(S)
  log_qa = log_qy = None
  per_label = []
  for y in range(Y):
    log_w, log_qa, log_qy = log_weights(model, x, y, eps_a, eps_z_by_label[:, y])
    per_label.append(log_w + log_qa)  # log p(x,y,z,a) - log q(z|.)
  per_label = np.stack(per_label, 1)  # [S, Y]
  for s in range(S):
    q = np.exp(log_qy[s])
    total[s] = np.sum(q * (per_label[s] - log_qy[s])) - log_qa[s]
  return float(np.mean(total))


def log_qbar(model, x, eps_a):
  """log (1/S sum_s q(y|a_s,x)), [Y]."""
  S = eps_a.shape[0] if eps_a is not None else 1
  probs = []
  for s in range(S):
    env = {"x": x}
    if model.wiring.auxiliary == "stochastic":
      loc, lv = conditional(model.q_a, {"x": x})
      env["a"] = loc + np.exp(0.5 * lv) * eps_a[s]
    elif model.wiring.auxiliary == "deterministic":
      env["a"] = conditional(model.q_a, {"x": x})
    logits = conditional(model.q_y, {k: env[k] for k in model.wiring.q_y})
    probs.append(np.exp(log_softmax(logits)))
  return np.log(np.mean(probs, axis=0))
