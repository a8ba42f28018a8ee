r"""The variational bounds of the ADGM, SDGM and M2, per example, reduced late.

Notation (Maaløe et al., 2016, Sec. 3): image x, label y in {1..K}, latent z,
auxiliary a. Generative model p(y) p(z) p(x|y,z) p(a|x,y,z) (ADGM; the SDGM
moves a into p(a|y,z) p(x|a,y,z); the workshop ADGM has p(a)=N(0,I); M2 has
no a); inference model q(a|x) q(y|a,x) q(z|a,x,y).

With S samples a_s ~ q(a|x), **shared by every enumerated label and by the
classifier**, and z_s^y ~ q(z|a_s,x,y):

* labeled bound (eq. 7 of the paper, a Monte Carlo estimate):
  L(x,y) = 1/S sum_s [ log p(x|y,z_s) + log p(y) + log p(z_s) + log p(a_s|x,y,z_s)
                        - log q(a_s|x) - log q(z_s|a_s,x,y) ]
* unlabeled bound, y enumerated exactly (eq. 8):
  U(x) = 1/S sum_s [ sum_y q(y|a_s,x) ( L_s(x,y) + log q(a_s|x) - log q(y|a_s,x) )
                      - log q(a_s|x) ]
  (the -log q(a_s|x) of L_s does not depend on y and sits outside the sum);
  with S > 1 the authors' code weights the labels by the averaged classifier
  qbar(y|x) = 1/S sum_s q(y|a_s,x) instead ("mean" weighting, below):
  U_mean(x) = sum_y qbar(y|x) ( 1/S sum_s L_s(x,y) - log qbar(y|x) ).
  Both equal U(x) at S = 1. The per-sample form is the Monte Carlo estimate
  of eq. 8 (the expectation over a outside the sum over y). The mean form
  puts the sum over y outside the average over samples: as S grows it tends
  to the bound of the *factorised* posterior q(a|x) qbar(y|x) q(z|a,x,y), in
  which a and y are independent given x (still a lower bound on log p(x),
  but not an unbiased estimate of eq. 8), its entropy term is that of qbar
  (never below the average per-sample entropy), and a sample's L_s(x,y)
  counts for a label that q(y|a_s,x) itself may give no weight.
* what U(x) asks of the classifier's use of a: since
  E_{q(a|x)} H[q(y|a,x)] = H[qbar(y|x)] - I_q(y; a | x), the per-sample form is
    U(x) = E_a sum_y q(y|a,x) L_a(x,y) + H[qbar(y|x)] - I_q(y; a | x) - E_a log q(a|x),
  so a classifier whose answer depends on the sample of a pays I(y;a|x) nats
  per image unless the L_a(x,y) terms reward it, i.e. unless a is informative
  about y under the generative model (in the ICML form only through
  p(a|x,y,z) and, via z, q(z|a,x,y)). The mean form below has no such term
  (only qbar enters); the classification term alpha log qbar(y|x), the log
  of a mean over S samples, penalises an answer that varies with a's noise
  less as S grows (at S = 1 it is E_a log q(y|a,x), below log qbar).
  ``diagnostics.py`` measures I(y;a|x) (aux_information) and whether the
  classifier uses a at all (aux_swap_error); :func:`classifier_a_reward`
  splits what U(x) gains from a classifier that reads a into the reward C
  and the charge I. In the ICML form the bound's optimum never needs that
  reading (networks flexible enough): with q(y|a,x) = p(y|x), a
  q(z|a,x,y) whose mixture over q(a|x) is p(z|x,y), and p(a|x,y,z) the
  resulting posterior of a, the gap KL(q(a,y,z|x) || p(y,z|x) p(a|x,y,z))
  is zero; a enriches q(z|x,y), while q(y|x), a categorical, is
  unrestricted without it;
* classification term (Kingma et al., 2014, eq. 9; the authors' code):
  alpha * log qbar(y|x), qbar(y|x) = 1/S sum_s q(y|a_s,x): the log of the
  averaged probability, not the average of the logs; alpha = beta N / N_l;
* objective: J = mean_{labeled} [L + alpha log qbar] + mean_{unlabeled} U; the
  loss is -J.
* importance-weighted bound (Burda et al., 2016) with K samples:
  log 1/K sum_k w_k, where w_k = p(x,y,z_k,a_k) / (q(a_k|x) q(z_k|a_k,x,y))
  for labeled data and, for unlabeled data, y is enumerated inside each
  weight: w_k = sum_y p(x,y,z_k^y,a_k) / (q(a_k|x) q(z_k^y|a_k,x,y)). With
  exact enumeration q(y|a,x) cancels from the unlabeled weight, so when this
  is the *training* objective the classifier learns from the labeled term
  alone; it is tighter than U(x) already at K=1 (Jensen over y).

Shapes: labeled terms are ``[S, B_l]``; unlabeled per-label terms are
``[S, Y, B_u]`` and per-sample ones ``[S, B_u]`` (or broadcastable to them);
``log_qy_*`` hold log q(y|a_s,x) for every y. Functions return per-example
vectors ``[B]``; only :func:`objective` reduces over the batch.

References:
  [1] Maaløe, Sønderby, Sønderby, Winther. Auxiliary Deep Generative Models.
      ICML 2016 (arXiv:1602.05473).
  [2] Kingma, Rezende, Mohamed, Welling. Semi-Supervised Learning with Deep
      Generative Models. NIPS 2014.
  [3] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  [4] Sønderby, Raiko, Maaløe, Sønderby, Winther. Ladder Variational
      Autoencoders. NIPS 2016 (deterministic warm-up).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from adgm_tf import rules

# How U(x) weights the enumerated labels when S > 1 (module docstring).
UNLABELED_WEIGHTINGS = rules.UNLABELED_WEIGHTINGS


class Factors(NamedTuple):
  """Log-densities of every factor at the sampled values.

  Labeled part (true label y_l): ``[S, B_l]``. Unlabeled part: ``[S, Y, B_u]``
  for terms that depend on the enumerated label, ``[S, B_u]`` for q(a|x).
  Factors a model does not have are zeros of a broadcastable shape.
  """
  log_px_l: tf.Tensor   # [S, B_l]     log p(x|y,z[,a])
  log_py_l: tf.Tensor   # [B_l]        log p(y)
  log_pz_l: tf.Tensor   # [S, B_l]     log p(z)
  log_pa_l: tf.Tensor   # [S, B_l]     log p(a|...)
  log_qz_l: tf.Tensor   # [S, B_l]     log q(z|a,x,y)
  log_qa_l: tf.Tensor   # [S, B_l]     log q(a|x)
  log_qy_l: tf.Tensor   # [S, B_l, Y]  log q(y'|a,x) for every y'
  y_l: tf.Tensor        # [B_l]        int32 labels
  log_px_u: tf.Tensor   # [S, Y, B_u]
  log_py_u: tf.Tensor   # [1, Y, 1]
  log_pz_u: tf.Tensor   # [S, Y, B_u]
  log_pa_u: tf.Tensor   # [S, Y, B_u]  (or [S, 1, B_u] when p(a) ignores y, z)
  log_qz_u: tf.Tensor   # [S, Y, B_u]
  log_qa_u: tf.Tensor   # [S, B_u]
  log_qy_u: tf.Tensor   # [S, Y, B_u]  log q(y|a,x)


class BoundTerms(NamedTuple):
  """Per-example results; every field is a vector over its examples."""
  elbo_l: tf.Tensor          # [B_l]  L(x,y) (or its IW version)
  elbo_u: tf.Tensor          # [B_u]  U(x)  (or its IW version)
  log_qbar_l: tf.Tensor      # [B_l]  log qbar(y|x) of the true label
  correct_l: tf.Tensor       # [B_l]  1.0 where argmax qbar == y
  log_px: tf.Tensor          # [B_l + B_u]  E_q log p(x|.)
  kl_z: tf.Tensor            # [B_l + B_u]  E_q [log q(z|.) - log p(z)]
  kl_a: tf.Tensor            # [B_l + B_u]  E_q [log q(a|x) - log p(a|.)]
  kl_y: tf.Tensor            # [B_u]        KL(q(y|a,x) || p(y)), averaged over a


def _mean_s(t):
  return tf.reduce_mean(t, axis=0)


def log_mean_exp(t, axis=0):
  """log (1/n) sum exp(t) along ``axis``, computed stably."""
  n = tf.cast(tf.shape(t)[axis], t.dtype)
  return tf.reduce_logsumexp(t, axis=axis) - tf.math.log(n)


def labeled_log_weight(f: Factors) -> tf.Tensor:
  """log p(x,y,z_s,a_s) - log q(a_s,z_s|x,y), ``[S, B_l]``."""
  return (f.log_px_l + f.log_py_l + f.log_pz_l + f.log_pa_l
          - f.log_qz_l - f.log_qa_l)


def unlabeled_log_joint(f: Factors) -> tf.Tensor:
  """log p(x,y,z_s^y,a_s) - log q(z_s^y|a_s,x,y) for every y, ``[S, Y, B_u]``.

  q(a_s|x) is not included: it does not depend on y.
  """
  return (f.log_px_u + f.log_py_u + f.log_pz_u + f.log_pa_u - f.log_qz_u)


def label_elbos(f: Factors) -> tf.Tensor:
  """L(x,y) for every enumerated label y of the unlabeled images, ``[Y, B_u]``.

  The labeled bound (eq. 7) of each label, the S samples of a shared by all
  labels (so differences between labels carry no noise from a). U(x) is, for
  a classifier that does not read a, sum_y q(y|x) (L(x,y) - log q(y|x)); over
  such classifiers it is largest, log sum_y exp L(x,y), at
  q(y|x) = softmax_y L(x,y): the label distribution the unlabeled term alone
  pulls q(y|x) toward (Maaløe et al., 2016, eq. 8; Kingma et al., 2014, eq. 7).
  """
  return _mean_s(unlabeled_log_joint(f) - f.log_qa_u[:, None])


def labeled_elbo(f: Factors) -> tf.Tensor:
  """L(x,y), ``[B_l]``."""
  return _mean_s(labeled_log_weight(f))


def unlabeled_elbo(f: Factors, weighting: str = "sample") -> tf.Tensor:
  """U(x) with exact enumeration of y and the entropy of q(y|a,x), ``[B_u]``.

  ``weighting``: "sample" weights each sample's label terms by q(y|a_s,x);
  "mean" (the authors' code) by qbar(y|x), with the entropy of qbar.
  """
  if weighting == "mean":
    log_qbar_u = log_mean_exp(f.log_qy_u, axis=0)                 # [Y, B_u]
    per_label = _mean_s(unlabeled_log_joint(f)) - log_qbar_u      # [Y, B_u]
    return (tf.reduce_sum(tf.exp(log_qbar_u) * per_label, axis=0)
            - _mean_s(f.log_qa_u))                                # [B_u]
  if weighting != "sample":
    raise ValueError(f"weighting must be one of {UNLABELED_WEIGHTINGS}, got {weighting!r}")
  qy = tf.exp(f.log_qy_u)                                         # [S, Y, B_u]
  per_label = unlabeled_log_joint(f) - f.log_qy_u                 # [S, Y, B_u]
  per_sample = tf.reduce_sum(qy * per_label, axis=1) - f.log_qa_u  # [S, B_u]
  return _mean_s(per_sample)


def classifier_a_reward(f: Factors):
  """What U(x) (per-sample form) pays and charges the classifier for reading a.

  Replacing every q(y|a_s,x) by qbar(y|x) (the same classifier averaged over
  the S samples: it ignores a and keeps its answer) changes U(x) by exactly
  C - I, where

    C = 1/S sum_s sum_y (q(y|a_s,x) - qbar(y|x)) L_s(y),
    I = H[qbar(y|x)] - 1/S sum_s H[q(y|a_s,x)]   (I(y;a|x) in nats),

  and L_s(y) = ``unlabeled_log_joint`` (terms constant in y drop out). C is
  split into the part from log p(a|.) (``c_a``; scaled by the warm-up weight
  in training) and the rest (``c_z``: log p(x|.), p(y), p(z), q(z|.)).
  C - I < 0: the bound prefers a classifier that ignores a. Returns
  ``(c_a, c_z, info)``, each ``[B_u]``.
  """
  q = tf.exp(f.log_qy_u)                                           # [S, Y, B_u]
  dq = q - tf.reduce_mean(q, axis=0, keepdims=True)                # [S, Y, B_u]
  log_pa = tf.broadcast_to(f.log_pa_u, tf.shape(q))
  rest = unlabeled_log_joint(f) - log_pa                           # [S, Y, B_u]
  c_a = _mean_s(tf.reduce_sum(dq * log_pa, axis=1))
  c_z = _mean_s(tf.reduce_sum(dq * rest, axis=1))
  return c_a, c_z, information(tf.transpose(f.log_qy_u, [0, 2, 1]))


def information(log_qy: tf.Tensor) -> tf.Tensor:
  """I(y; a | x) per image from log q(y|a_s,x) ``[S, B, Y]``: ``[B]`` nats.

  H[qbar(y|x)] - 1/S sum_s H[q(y|a_s,x)] with qbar = 1/S sum_s q(y|a_s,x);
  never negative (entropy is concave). The ``aux_information`` diagnostic.
  """
  log_qbar_ = log_qbar(log_qy)                                      # [B, Y]
  h_bar = -tf.reduce_sum(tf.exp(log_qbar_) * log_qbar_, axis=-1)    # [B]
  h_s = -tf.reduce_sum(tf.exp(log_qy) * log_qy, axis=-1)            # [S, B]
  return tf.maximum(h_bar - tf.reduce_mean(h_s, axis=0), 0.0)


def warm_up(f: Factors, weight) -> Factors:
  """The factors with the a-terms log p(a|.) and log q(a|x) scaled by ``weight``.

  The bounds are linear in these terms, so the bound of the result is the
  bound with the a-part, E[log p(a|.) - log q(a|x)], weighted (a
  deterministic warm-up of that part, as Sønderby et al., 2016, do for the
  KL terms of deep VAEs). ``weight`` = 1 gives the bound itself.
  """
  return f._replace(log_pa_l=weight * f.log_pa_l, log_qa_l=weight * f.log_qa_l,
                    log_pa_u=weight * f.log_pa_u, log_qa_u=weight * f.log_qa_u)


def log_qbar(log_qy: tf.Tensor) -> tf.Tensor:
  """log qbar(y|x) = log (1/S sum_s q(y|a_s,x)), from ``[S, B, Y]`` to ``[B, Y]``."""
  return log_mean_exp(log_qy, axis=0)


def classification(f: Factors) -> tf.Tensor:
  """log qbar(y|x) of the true label, ``[B_l]``."""
  return tf.gather(log_qbar(f.log_qy_l), f.y_l, axis=1, batch_dims=1)


def iw_labeled(f: Factors) -> tf.Tensor:
  """Importance-weighted labeled bound: log 1/K sum_k w_k, ``[B_l]``."""
  return log_mean_exp(labeled_log_weight(f), axis=0)


def unlabeled_log_weight(f: Factors) -> tf.Tensor:
  """log w_k = log sum_y p(x,y,z_k^y,a_k) / (q(a_k|x) q(z_k^y|a_k,x,y)), ``[K, B_u]``."""
  return tf.reduce_logsumexp(unlabeled_log_joint(f), axis=1) - f.log_qa_u


def iw_unlabeled(f: Factors) -> tf.Tensor:
  """Importance-weighted unlabeled bound, y enumerated in each weight, ``[B_u]``."""
  return log_mean_exp(unlabeled_log_weight(f), axis=0)


def bound_terms(f: Factors, importance_weighted: bool = False,
                unlabeled_weighting: str = "sample") -> BoundTerms:
  """Every per-example quantity the training step and the metrics need."""
  if importance_weighted:
    elbo_l, elbo_u = iw_labeled(f), iw_unlabeled(f)
  else:
    elbo_l, elbo_u = labeled_elbo(f), unlabeled_elbo(f, unlabeled_weighting)
  log_qbar_all = log_qbar(f.log_qy_l)                              # [B_l, Y]
  log_qbar_l = tf.gather(log_qbar_all, f.y_l, axis=1, batch_dims=1)
  correct_l = tf.cast(
      tf.equal(tf.argmax(log_qbar_all, axis=1, output_type=tf.int32), f.y_l),
      tf.float32)

  qy = tf.exp(f.log_qy_u)                                          # [S, Y, B_u]

  def expect_u(t):  # E_{q(y|a,x)} averaged over a samples: [S, Y, B_u] -> [B_u]
    return _mean_s(tf.reduce_sum(qy * t, axis=1))

  log_px = tf.concat([_mean_s(f.log_px_l), expect_u(f.log_px_u)], 0)
  kl_z = tf.concat([_mean_s(f.log_qz_l - f.log_pz_l),
                    expect_u(f.log_qz_u - f.log_pz_u)], 0)
  kl_a = tf.concat([_mean_s(f.log_qa_l - f.log_pa_l),
                    _mean_s(f.log_qa_u) - expect_u(f.log_pa_u)], 0)
  kl_y = expect_u(f.log_qy_u - f.log_py_u)
  return BoundTerms(elbo_l, elbo_u, log_qbar_l, correct_l, log_px, kl_z, kl_a,
                    kl_y)


def objective(terms: BoundTerms, alpha: float) -> tf.Tensor:
  """J = mean_l [L(x,y) + alpha log qbar(y|x)] + mean_u U(x); a scalar."""
  labeled = tf.reduce_mean(terms.elbo_l + alpha * terms.log_qbar_l)
  unlabeled = tf.reduce_mean(terms.elbo_u)
  return labeled + unlabeled


def classification_weight(num_unlabeled: int, num_labeled: int,
                          beta: float = 0.1) -> float:
  """alpha = beta * N / N_l (Kingma et al., 2014; the authors' code)."""
  if num_labeled <= 0:
    raise ValueError("num_labeled must be positive")
  return beta * num_unlabeled / num_labeled

