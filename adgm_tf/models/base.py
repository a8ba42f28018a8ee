"""SemiSupervisedModel: the shared forward pass, train_step and test_step.

One forward pass serves every variant (ADGM, its workshop form and its
deterministic-auxiliary ablation, SDGM, M2); a variant is a :class:`Wiring`
that says which inputs each factor takes.

**The enumerated batch.** A training step sees a labeled batch (x_l, y_l) of
B_l images and an unlabeled batch x_u of B_u images, with S Monte Carlo
samples. The rows the generative model must evaluate are

* labeled:   (s, b)    for s < S, b < B_l                  -> ``[S, B_l, ...]``
* unlabeled: (s, y, b) for s < S, y < Y, b < B_u           -> ``[S, Y, B_u, ...]``

flattened and concatenated into N = S B_l + S Y B_u rows, so every network
after the first layer runs once, on one matrix, with no Python loop over
labels or samples. The first layers are sums of per-input projections
(``networks.MultiInputDense``): x is projected once per example, a once per
sample, a label is a row lookup (all labels: the kernel itself), and only the
broadcast sum is formed per row. q(a|x) runs once per example, and the a
samples it draws are the ones every enumerated label and the classifier see.

**Noise.** Standard-normal noise is drawn for the whole *global* batch from a
stateless seed ``(seed, optimizer step)`` and each replica takes its slice,
so a step's update does not depend on how many replicas share the batch, and
resuming from a checkpoint (which holds the step) replays the same noise.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf

from adgm_tf import bounds
from adgm_tf import distributions as dists
from adgm_tf import heads
from adgm_tf import rules
from adgm_tf.models.layout import Layout, Noise, Params, Wiring

AUXILIARY = rules.AUXILIARIES


class SemiSupervisedModel(keras.Model):
  """Base of every variant: factors, forward pass, bounds, train/test steps.

  Args:
    x_dim: pixels (784).
    num_classes: Y (10).
    z_dim: width of the latent z.
    a_dim: width of the auxiliary a (ignored by M2).
    hidden: hidden widths of every conditional's MLP.
    activation: hidden activation.
    batch_norm: dense -> batch norm -> activation in every hidden layer.
    mc_samples: S, Monte Carlo samples per training step.
    iw_samples: K > 1 trains on the importance-weighted bound with K samples.
    eval_samples: S_eval for the classifier qbar(y|x) at evaluation/serving.
    eval_bound_samples: samples for the bounds in ``test_step`` (default:
      ``mc_samples``; U(x) costs S * Y network passes per image).
    alpha: weight of the classification term (beta N / N_l; 0.1 * 60000 /
      100 = 60 for MNIST-100).
    clip_norm: clip the global gradient norm to this (0 or None: off).
    clip_value: then clip every gradient element to [-clip_value,
      clip_value] (the authors' code: 1 after a global norm of 5; 0: off).
    weight_prior_scale: scale of an N(0, 1) prior on the kernels added to the
      loss (1/N in the authors' code; 0: off).
    init: "glorot" or "authors" (``rules.INITS``).
    bn_momentum: momentum of batch norm's moving averages (0.9: the authors'
      Lasagne rate alpha = 0.1).
    bn_epsilon: batch norm's variance epsilon (Keras 1e-3; the authors'
      Lasagne layers 1e-4).
    bn_statistics: "joint" (one set of batch statistics over the labeled and
      the unlabeled rows of a step) or "split" (each pass its own, moving
      averages from the unlabeled pass only, as the authors' code).
    unlabeled_weighting: with S > 1, U(x) weights the labels by q(y|a_s,x)
      per sample ("sample") or by their average qbar(y|x) ("mean", the
      authors' code); see ``bounds.unlabeled_elbo``.
    aux_warmup_steps: deterministic warm-up of the a-terms, log p(a|.) -
      log q(a|x), whose weight rises linearly from 0 to 1 over this many
      training steps (Sønderby et al., 2016, warm up the KL terms of deep
      VAEs the same way); 0: off. Metrics report the true bounds.
    aux_log_var_init: start q(a|x)'s log-variance at this value (its head's
      bias; None: as ``init`` gives, about 0). A small start (e.g. -6)
      makes a nearly deterministic at first, so the classifier can read it.
    aux_log_var_max: an upper bound on q(a|x)'s log-variance (a smooth cap,
      ``heads.GaussianConditional``; None: none). A restricted variational
      family, so L and U stay lower bounds; it keeps the a-terms from buying
      their match by raising a's noise above the spread of its mean.
    seed: seed of the sampling noise.
    check_numerics: raise when a training step's loss is not finite.
    jit_compile_gradients: compile the loss and its gradients with XLA (the
      finiteness check, clipping and the update stay outside XLA, where the
      check can stop the update).
  """

  def __init__(self, *, wiring: Wiring, x_dim: int = 784, num_classes: int = 10,
               z_dim: int = 100,
               a_dim: int = 100, hidden: Sequence[int] = (500, 500),
               activation: str = "relu", batch_norm: bool = False,
               mc_samples: int = 1, iw_samples: int = 1, eval_samples: int = 100,
               eval_bound_samples: Optional[int] = None, alpha: float = 60.0,
               clip_norm: Optional[float] = 5.0, clip_value: float = 0.0,
               weight_prior_scale: float = 0.0,
               init: str = "glorot", bn_momentum: float = 0.9,
               bn_epsilon: float = 1e-3, bn_statistics: str = "joint", unlabeled_weighting: str = "sample",
               aux_warmup_steps: int = 0, aux_log_var_init: Optional[float] = None,
               aux_log_var_max: Optional[float] = None, seed: int = 0, check_numerics: bool = True,
               jit_compile_gradients: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.wiring = wiring
    rules.check_model(
        flags=False, x_dim=x_dim, num_classes=num_classes, z_dim=z_dim, a_dim=a_dim,
        hidden=tuple(hidden), mc_samples=mc_samples, iw_samples=iw_samples,
        eval_samples=eval_samples, deterministic_a=wiring.auxiliary == "deterministic",
        init=init, activation=activation, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
        bn_statistics=bn_statistics, unlabeled_weighting=unlabeled_weighting,
        clip_norm=clip_norm or 0.0, clip_value=clip_value or 0.0,
        aux_warmup=aux_warmup_steps, aux_warmup_name="aux_warmup_steps",
        aux_log_var_init=aux_log_var_init, aux_log_var_max=aux_log_var_max)
    self.x_dim, self.num_classes = int(x_dim), int(num_classes)
    self.z_dim, self.a_dim = int(z_dim), int(a_dim)
    self.hidden = tuple(int(h) for h in hidden)
    self.activation = activation
    self.batch_norm = bool(batch_norm)
    self.mc_samples, self.iw_samples = int(mc_samples), int(iw_samples)
    self.eval_samples = int(eval_samples)
    self.eval_bound_samples = int(eval_bound_samples or mc_samples)
    self.alpha = float(alpha)
    self.clip_norm = float(clip_norm) if clip_norm else 0.0
    self.clip_value = float(clip_value) if clip_value else 0.0
    self.weight_prior_scale = float(weight_prior_scale)
    self.init = init
    self.bn_momentum = float(bn_momentum)
    self.bn_epsilon = float(bn_epsilon)
    self.bn_statistics = bn_statistics
    self.unlabeled_weighting = unlabeled_weighting
    self.aux_warmup_steps = int(aux_warmup_steps)
    self.aux_log_var_init = None if aux_log_var_init is None else float(aux_log_var_init)
    self.aux_log_var_max = None if aux_log_var_max is None else float(aux_log_var_max)
    self.seed = int(seed)
    self.check_numerics = bool(check_numerics)
    self.jit_compile_gradients = bool(jit_compile_gradients)
    self._build_factors()
    self._train_trackers = {n: keras.metrics.Mean(name=n) for n in (
        "loss", "elbo_labeled", "elbo_unlabeled", "classification", "kl_z",
        "kl_a", "kl_y", "log_px", "accuracy")}
    self._eval_trackers = {n: keras.metrics.Mean(name=n) for n in (
        "elbo_labeled", "elbo_unlabeled", "classification", "error")}

  # --------------------------------------------------------------------------
  # Factors
  # --------------------------------------------------------------------------

  def _dims(self) -> Dict[str, int]:
    return {"x": self.x_dim, "a": self.a_dim, "y": self.num_classes,
            "z": self.z_dim}

  def _conditional(self, cls, inputs: Sequence[str], units: int, name: str,
                   **kwargs):
    dims = self._dims()
    layer = cls({i: dims[i] for i in inputs}, units, hidden=self.hidden,
                activation=self.activation, batch_norm=self.batch_norm,
                categorical=("y",) if "y" in inputs else (), init=self.init,
                bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                name=name, **kwargs)
    layer.build()
    return layer

  def _build_factors(self):
    w = self.wiring
    if w.auxiliary not in AUXILIARY:
      raise ValueError(f"auxiliary must be one of {AUXILIARY}, got {w.auxiliary!r}")

    def name(f, inputs):
      return f"{f}_given_{''.join(inputs)}" if inputs else f

    self.q_a = None
    if w.auxiliary == "stochastic":
      self.q_a = self._conditional(heads.GaussianConditional, ("x",),
                                   self.a_dim, "q_a_given_x",
                                   log_var_max=self.aux_log_var_max)
    elif w.auxiliary == "deterministic":
      self.q_a = self._conditional(heads.DeterministicConditional, ("x",),
                                   self.a_dim, "a_given_x")
    self.q_y = self._conditional(heads.LogitsConditional, w.q_y,
                                 self.num_classes, name("q_y", w.q_y))
    self.q_z = self._conditional(heads.GaussianConditional, w.q_z, self.z_dim,
                                 name("q_z", w.q_z))
    self.p_x = self._conditional(heads.LogitsConditional, w.p_x, self.x_dim,
                                 name("p_x", w.p_x))
    self.p_a = None
    if w.p_a:
      self.p_a = self._conditional(heads.GaussianConditional, w.p_a, self.a_dim,
                                   name("p_a", w.p_a))
    if self.aux_log_var_init is not None and w.auxiliary == "stochastic":
      bias = self.q_a.head.bias  # [loc (A), log_var (A)]
      bias.assign(tf.concat([bias[:self.a_dim],
                             tf.fill([self.a_dim], self.q_a.raw_log_var(
                                 self.aux_log_var_init))], 0))
    self.built = True

  @property
  def factors(self) -> Dict[str, keras.layers.Layer]:
    """The model's conditionals by factor name (``q_a``, ``q_y``, ...)."""
    out = {"q_a": self.q_a, "q_y": self.q_y, "q_z": self.q_z, "p_x": self.p_x,
           "p_a": self.p_a}
    return {k: v for k, v in out.items() if v is not None}

  @property
  def has_stochastic_a(self) -> bool:
    return self.wiring.auxiliary == "stochastic"

  # --------------------------------------------------------------------------
  # Noise
  # --------------------------------------------------------------------------

  def sample_noise(self, seed, samples: int, num_labeled: int,
                   num_unlabeled: int, replica_id=0, num_replicas: int = 1) -> Noise:
    """Noise for one replica's slice of a global batch.

    Noise is drawn for the global batch (``num_replicas`` times the local
    sizes) from the stateless ``seed`` and sliced, so replicas together use
    exactly the numbers a single replica would.
    """
    seed = tf.cast(seed, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    S, Y = samples, self.num_classes
    gl, gu = num_labeled * num_replicas, num_unlabeled * num_replicas
    lo_l, lo_u = replica_id * num_labeled, replica_id * num_unlabeled

    def normal(shape, s, axis, lo, n):
      eps = tf.random.stateless_normal(shape, seed=s)
      if num_replicas == 1:
        return eps
      begin = [0] * len(shape)
      begin[axis] = lo
      size = list(shape)
      size[axis] = n
      return tf.slice(eps, begin, size)

    a_l = a_u = None
    if self.has_stochastic_a:
      a_l = normal([S, gl, self.a_dim], seeds[0], 1, lo_l, num_labeled)
      a_u = normal([S, gu, self.a_dim], seeds[1], 1, lo_u, num_unlabeled)
    z_l = normal([S, gl, self.z_dim], seeds[2], 1, lo_l, num_labeled)
    z_u = normal([S, Y, gu, self.z_dim], seeds[3], 2, lo_u, num_unlabeled)
    return Noise(a_l, a_u, z_l, z_u)

  # --------------------------------------------------------------------------
  # Forward pass
  # --------------------------------------------------------------------------

  def _bn_split(self, num_labeled_rows, training):
    """The ``bn_split`` argument of the networks: labeled rows come first."""
    if training and self.batch_norm and self.bn_statistics == "split":
      return num_labeled_rows
    return None

  def _auxiliary(self, x, eps_a, samples: int, training, num_labeled=None):
    """a ``[S, B, A]``, log q(a|x) ``[S, B]`` and q(a|x)'s (loc, log_var).

    Without a: (None, zeros, None). Deterministic a = mu(x): ``[1, B, A]``
    (the same for every sample; broadcasting does the rest), zeros, None.
    ``num_labeled``: the first rows of ``x`` that are labeled (batch norm
    with split statistics).
    """
    w = self.wiring
    if w.auxiliary == "none":
      return None, tf.zeros([samples, tf.shape(x)[0]]), None
    split = self._bn_split(num_labeled, training)
    if w.auxiliary == "deterministic":
      mu = self.q_a({"x": x}, training=training, bn_split=split)     # [B, A]
      return mu[None], tf.zeros([samples, tf.shape(x)[0]]), None
    loc, log_var = self.q_a({"x": x}, training=training, bn_split=split)  # [B, A]
    a = dists.reparameterize(loc[None], log_var[None], eps_a)       # [S, B, A]
    log_qa = dists.diag_gaussian(loc, log_var).log_prob(a)          # [S, B]
    return a, log_qa, (loc, log_var)

  def _classifier_logits(self, x, a, samples: int, training, num_labeled=None):
    """Logits of q(y|a,x) (M2: q(y|x)), ``[S, B, Y]``.

    ``a``: ``[S, B, A]`` or ``[1, B, A]`` (ignored by M2). ``num_labeled``: the
    first examples of ``x`` that are labeled (batch norm with split
    statistics: their rows are gathered ahead of the unlabeled ones).
    """
    net = self.q_y
    h = net.project("x", x)[None]                                   # [1, B, H]
    if "a" in self.wiring.q_y:
      h = h + net.project("a", a)                                   # [S, B, H]
    width = net.hidden[0]
    lead = tf.shape(h)[:2]
    split = self._bn_split(num_labeled, training)
    if split is None:
      logits = net.from_preactivation(tf.reshape(h, [-1, width]), training=training)
      logits = tf.reshape(logits, tf.concat([lead, [self.num_classes]], 0))
    else:  # rows [S, B_l] first, then [S, B_u]
      h_l, h_u = tf.split(h, tf.stack([split, lead[1] - split]), axis=1)
      rows_l = lead[0] * split
      logits = net.from_preactivation(
          tf.concat([tf.reshape(h_l, [-1, width]), tf.reshape(h_u, [-1, width])], 0),
          training=training, bn_split=rows_l)
      logits_l, logits_u = tf.split(logits, tf.stack([rows_l, tf.shape(logits)[0] - rows_l]))
      logits = tf.concat([
          tf.reshape(logits_l, tf.stack([lead[0], split, self.num_classes])),
          tf.reshape(logits_u, tf.stack([lead[0], lead[1] - split, self.num_classes]))], 1)
    return tf.broadcast_to(logits, tf.stack(
        [samples, tf.shape(x)[0], self.num_classes]))

  # --------------------------------------------------------------------------
  # The auxiliary variable, piece by piece (``diagnostics.py``)
  # --------------------------------------------------------------------------

  def auxiliary_posterior(self, x, training=False):
    """q(a|x)'s ``(loc, log_var)``, each ``[B, A]``; ``(mu, None)`` for a
    deterministic a; None for a model without a."""
    if self.q_a is None:
      return None
    out = self.q_a({"x": tf.cast(x, tf.float32)}, training=training)
    return (out, None) if self.wiring.auxiliary == "deterministic" else out

  def auxiliary_hidden(self, x, training=False):
    """The hidden layers of q(a|x)'s network for images ``x``: ``[[B, H_0], ...]``."""
    mlp = self.q_a.mlp
    return mlp.activations(mlp.preactivation({"x": tf.cast(x, tf.float32)}),
                           training=training)

  def auxiliary_noise(self, samples: int, seed=None) -> tf.Tensor:
    """The classifier's standard-normal noise ``[S, 1, A]``, shared by all images.

    The default seed is the one :meth:`predict_log_proba` uses, so an
    analysis with this noise sees the predictions the model makes.
    """
    seed = tf.constant([self.seed, -1], tf.int64) if seed is None else seed
    return tf.random.stateless_normal([samples, 1, self.a_dim], seed=seed)

  def classifier_log_probs(self, x, a, training=False) -> tf.Tensor:
    """log q(y|a_s,x) for given a ``[S, B, A]`` (or ``[1, B, A]``), ``[S, B, Y]``."""
    x = tf.cast(x, tf.float32)
    samples = tf.shape(a)[0] if a is not None else 1
    return tf.nn.log_softmax(self._classifier_logits(x, a, samples, training), axis=-1)

  def compute_factors(self, x_l, y_l, x_u, noise: Noise,
                      training=False) -> bounds.Factors:
    """Every factor's log-density on the enumerated batch (module docstring).

    Args:
      x_l: ``[B_l, D]`` labeled images in [0, 1] (binary when training).
      y_l: ``[B_l]`` integer labels.
      x_u: ``[B_u, D]`` unlabeled images.
      noise: from :meth:`sample_noise` (S samples).
      training: batch-norm mode.
    Returns:
      :class:`bounds.Factors`.
    """
    return self.forward(x_l, y_l, x_u, noise, training)[0]

  def forward(self, x_l, y_l, x_u, noise: Noise, training=False):
    """The forward pass: :meth:`compute_factors` (same arguments), plus the
    Gaussian parameters it drew from (``Params``: (loc, log-variance) of q(a|x),
    q(z|.) and p(a|.), for probes and diagnostics)."""
    w = self.wiring
    S, Y = noise.samples, self.num_classes
    x_l = tf.cast(x_l, tf.float32)
    x_u = tf.cast(x_u, tf.float32)
    y_l = tf.cast(y_l, tf.int32)
    Bl, Bu = tf.shape(x_l)[0], tf.shape(x_u)[0]
    layout = Layout(S, Bl, Bu, Y)
    x = tf.concat([x_l, x_u], 0)                                    # [B, D]

    eps_a = (tf.concat([noise.a_l, noise.a_u], 1)
             if noise.a_l is not None else None)                    # [S, B, A]
    a, log_qa, q_a_params = self._auxiliary(x, eps_a, S, training, Bl)  # [S,B,A], [S,B]
    log_qy = tf.nn.log_softmax(
        self._classifier_logits(x, a, S, training, Bl), axis=-1)    # [S, B, Y]
    split = self._bn_split(S * Bl, training)  # rows of the enumerated batch

    def inputs_of(factor_inputs, z=None):
      per_example = {"x": x} if "x" in factor_inputs else {}
      per_sample = {"a": a} if "a" in factor_inputs else {}
      per_row = {"z": z} if "z" in factor_inputs else {}
      return dict(per_example=per_example, per_sample=per_sample,
                  y_l=y_l if "y" in factor_inputs else None, per_row=per_row)

    # q(z|a,x,y) and z for every row.
    h = layout.first_layer(self.q_z, **inputs_of(w.q_z))            # [N, H]
    loc_z, log_var_z = self.q_z.from_preactivation(h, training, split)  # [N, Z]
    z = dists.reparameterize(loc_z, log_var_z,
                             layout.flatten(noise.z_l, noise.z_u))  # [N, Z]
    log_qz_l, log_qz_u = layout.split(
        dists.diag_gaussian(loc_z, log_var_z).log_prob(z))           # [S,B_l], [S,Y,B_u]
    log_pz_l, log_pz_u = layout.split(
        dists.standard_normal(self.z_dim).log_prob(z))

    # p(x|y,z) (SDGM: p(x|a,y,z)).
    h = layout.first_layer(self.p_x, **inputs_of(w.p_x, z))
    logits_l, logits_u = layout.split(self.p_x.from_preactivation(h, training, split))
    log_px_l = dists.bernoulli_log_prob(logits_l, x_l[None])                # [S, B_l]
    log_px_u = dists.bernoulli_log_prob(logits_u, x_u[None, None])          # [S, Y, B_u]

    # p(a|x,y,z) (SDGM: p(a|y,z); workshop: N(0, I); none: no a-terms).
    p_a_params = None
    if w.p_a is None:
      log_pa_l, log_pa_u = tf.zeros([S, Bl]), tf.zeros([S, 1, Bu])
    elif not w.p_a:
      log_pa = dists.standard_normal(self.a_dim).log_prob(a)        # [S, B]
      log_pa_l, log_pa_u = log_pa[:, :Bl], log_pa[:, None, Bl:]
    else:
      h = layout.first_layer(self.p_a, **inputs_of(w.p_a, z))
      loc_a, log_var_a = self.p_a.from_preactivation(h, training, split)  # [N, A]
      p_a_params = (loc_a, log_var_a)
      (loc_l, loc_u), (lv_l, lv_u) = layout.split(loc_a), layout.split(log_var_a)
      a_l, a_u = layout.per_sample_rows(a)                          # [S,B_l,A], [S,1,B_u,A]
      log_pa_l = dists.diag_gaussian(loc_l, lv_l).log_prob(a_l)     # [S, B_l]
      log_pa_u = dists.diag_gaussian(loc_u, lv_u).log_prob(a_u)     # [S, Y, B_u]

    p_y = dists.uniform_categorical(Y)
    factors = bounds.Factors(
        log_px_l=log_px_l, log_py_l=p_y.log_prob(y_l), log_pz_l=log_pz_l,
        log_pa_l=log_pa_l, log_qz_l=log_qz_l, log_qa_l=log_qa[:, :Bl],
        log_qy_l=log_qy[:, :Bl], y_l=y_l,
        log_px_u=log_px_u,
        log_py_u=tf.reshape(p_y.log_prob(tf.range(Y)), [1, Y, 1]),
        log_pz_u=log_pz_u, log_pa_u=log_pa_u, log_qz_u=log_qz_u,
        log_qa_u=log_qa[:, Bl:],
        log_qy_u=tf.transpose(log_qy[:, Bl:], [0, 2, 1]))
    return factors, Params(layout, q_a_params, (loc_z, log_var_z), p_a_params)

  def posterior_kl_per_unit(self, x, samples: int = 1, seed=None):
    """Per-unit KL of z and of a for images ``x`` ``[B, D]`` (Fig. 3 of [1]).

    kl_z[b, j] = E_{q(a|x)} sum_y q(y|a,x) KL(q(z_j|a,x,y) || N(0, 1)), and
    kl_a[b, j] = E_{q(a|x)} sum_y q(y|a,x) E_{q(z|.)} KL(q(a_j|x) || p(a_j|.))
    (for the workshop form p(a) = N(0, I); None for models without a
    stochastic a). Expectations over a and z use ``samples`` draws; the
    Gaussian KLs are analytic. Units whose average KL is above 0.01 nats
    are "active".

    Returns:
      ``(kl_z [B, Z], kl_a [B, A] or None)``.
    """
    seed = tf.constant([self.seed, -4], tf.int64) if seed is None else seed
    n = tf.shape(x)[0]
    noise = self.sample_noise(seed, samples, 0, n)
    factors, params = self.forward(tf.zeros([0, self.x_dim]), tf.zeros([0], tf.int32),
                                    x, noise, training=False)
    layout = params.layout
    qy = tf.exp(factors.log_qy_u)[..., None]                        # [S, Y, B, 1]

    def expect(per_label):  # [S, Y, B, d] -> [B, d], weighted by q(y|a,x), mean over a
      return tf.reduce_mean(tf.reduce_sum(qy * per_label, axis=1), axis=0)

    kl_z = expect(layout.split(dists.gaussian_kl(*params.q_z))[1])
    kl_a = None
    if self.has_stochastic_a:
      loc_q, log_var_q = params.q_a                                 # [B, A]
      if params.p_a is None:  # p(a) = N(0, I)
        kl_a = dists.gaussian_kl(loc_q, log_var_q)
      else:
        loc_p, log_var_p = (layout.split(t)[1] for t in params.p_a)  # [S, Y, B, A]
        kl_a = expect(dists.gaussian_kl(loc_q[None, None], log_var_q[None, None],
                                        loc_p, log_var_p))
    return kl_z, kl_a

  def bound_terms(self, x_l, y_l, x_u, noise: Noise, training=False,
                  importance_weighted: bool = False) -> bounds.BoundTerms:
    return bounds.bound_terms(
        self.compute_factors(x_l, y_l, x_u, noise, training=training),
        importance_weighted=importance_weighted,
        unlabeled_weighting=self.unlabeled_weighting)

  # --------------------------------------------------------------------------
  # The classifier
  # --------------------------------------------------------------------------

  def predict_log_proba(self, x, samples: Optional[int] = None, seed=None,
                        training=False) -> tf.Tensor:
    """log qbar(y|x) = log 1/S sum_s q(y|a_s,x), ``[B, Y]``.

    The S noise vectors are shared by all examples of the batch (an
    example's answer does not depend on what else is in the batch) and come
    from a fixed seed unless one is given, so predictions are deterministic.
    """
    samples = int(samples or self.eval_samples)
    x = tf.cast(x, tf.float32)
    eps_a = self.auxiliary_noise(samples, seed) if self.has_stochastic_a else None
    s = samples if self.has_stochastic_a else 1  # q(y|.) is deterministic otherwise
    a, _, _ = self._auxiliary(x, eps_a, s, training)
    logits = self._classifier_logits(x, a, s, training)             # [S, B, Y]
    return bounds.log_qbar(tf.nn.log_softmax(logits, axis=-1))

  def call(self, x, training=False):
    """qbar(y|x) with ``eval_samples`` samples, ``[B, Y]`` probabilities."""
    return tf.exp(self.predict_log_proba(x, training=training))

  # --------------------------------------------------------------------------
  # Training and evaluation steps
  # --------------------------------------------------------------------------

  @property
  def metrics(self):
    return list(self._train_trackers.values()) + list(self._eval_trackers.values())

  def _weight_prior(self) -> tf.Tensor:
    if not self.weight_prior_scale:
      return tf.constant(0.0)
    kernels = [v for v in self.trainable_variables if "kernel" in v.path]
    return self.weight_prior_scale * 0.5 * tf.add_n(
        [tf.reduce_sum(tf.square(tf.cast(k, tf.float32))) for k in kernels])

  def training_noise(self, x_l, x_u, samples: int, step) -> Noise:
    """The noise :meth:`train_step` draws at optimizer step ``step`` on this
    replica: ``sample_noise`` seeded by (seed, step), so a replay from a
    checkpoint draws what the run drew."""
    strategy = tf.distribute.get_strategy()
    ctx = tf.distribute.get_replica_context()
    replica_id = ctx.replica_id_in_sync_group if ctx is not None else 0
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
    return self.sample_noise(seed, samples, tf.shape(x_l)[0], tf.shape(x_u)[0],
                             replica_id, strategy.num_replicas_in_sync)

  def aux_kl_weight(self, step) -> tf.Tensor:
    """The weight of the a-terms at optimizer step ``step`` (warm-up), a scalar.

    min(1, (step + 1) / aux_warmup_steps); 1 without warm-up.
    """
    if not self.aux_warmup_steps:
      return tf.constant(1.0)
    return tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(self.aux_warmup_steps))

  def compute_loss_terms(self, x_l, y_l, x_u, noise: Noise, training=True,
                         step=None):
    """(loss, BoundTerms, objective J): the loss is -J plus the weight prior.

    ``step``: the optimizer step, for the warm-up of the a-terms; the loss is
    then that of ``bounds.warm_up``'s factors while BoundTerms (the metrics)
    stay the true bounds.
    """
    factors = self.compute_factors(x_l, y_l, x_u, noise, training=training)
    iw = self.iw_samples > 1
    terms = bounds.bound_terms(factors, importance_weighted=iw,
                               unlabeled_weighting=self.unlabeled_weighting)
    objective_terms = terms
    if self.aux_warmup_steps and step is not None:
      objective_terms = bounds.bound_terms(
          bounds.warm_up(factors, self.aux_kl_weight(step)), importance_weighted=iw,
          unlabeled_weighting=self.unlabeled_weighting)
    objective = bounds.objective(objective_terms, self.alpha)
    loss = -objective + self._weight_prior()
    return loss, terms, objective

  def _check_finite(self, step, values: Dict[str, tf.Tensor]):
    names = tf.constant(list(values))
    finite = tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in values.values()])
    bad = tf.strings.reduce_join(tf.boolean_mask(names, ~finite), separator=", ")
    message = tf.strings.join([
        "adgm_tf: non-finite loss at training step ",
        tf.strings.as_string(tf.cast(step, tf.int64)),
        "; non-finite terms: ", bad,
        ". The weights were not updated. Lower the learning rate, keep "
        "gradient clipping on (clip_norm), and check that inputs are in [0, 1]."])
    return tf.debugging.Assert(tf.reduce_all(finite), [message])

  def _loss_and_gradients(self, x_l, y_l, x_u, noise: Noise, num_replicas: int,
                          step=None):
    """Gradients of loss / num_replicas, and the step's metric values."""
    variables = self.trainable_variables
    with tf.GradientTape() as tape:
      loss, terms, _ = self.compute_loss_terms(x_l, y_l, x_u, noise, training=True,
                                               step=step)
      # Keras does not scale the loss for a custom train_step: the optimizer
      # sums gradients over replicas, so each replica contributes 1/R.
      scaled = loss / num_replicas
      if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
        scaled = self.optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, variables)
    means = {
        "loss": loss,
        "elbo_labeled": tf.reduce_mean(terms.elbo_l),
        "elbo_unlabeled": tf.reduce_mean(terms.elbo_u),
        "classification": tf.reduce_mean(terms.log_qbar_l),
        "kl_z": tf.reduce_mean(terms.kl_z),
        "kl_a": tf.reduce_mean(terms.kl_a),
        "kl_y": tf.reduce_mean(terms.kl_y),
        "log_px": tf.reduce_mean(terms.log_px),
    }
    return grads, means, tf.reduce_mean(terms.correct_l)

  def train_step(self, data):
    """One step on ``((x_l, y_l), x_u)``; see the module docstring."""
    (x_l, y_l), x_u = data
    if not self.optimizer.built:  # slots (and a loss scale) exist before use
      self.optimizer.build(self.trainable_variables)
    strategy = tf.distribute.get_strategy()
    num_replicas = strategy.num_replicas_in_sync
    samples = self.iw_samples if self.iw_samples > 1 else self.mc_samples
    step = self.optimizer.iterations
    noise = self.training_noise(x_l, x_u, samples, step)
    compute = self._loss_and_gradients
    if self.jit_compile_gradients:
      if getattr(self, "_jit_gradients", None) is None:
        object.__setattr__(self, "_jit_gradients",
                           tf.function(self._loss_and_gradients, jit_compile=True))
      compute = self._jit_gradients
    grads, means, accuracy = compute(x_l, y_l, x_u, noise, num_replicas,
                                     tf.convert_to_tensor(step))
    deps = []
    if self.check_numerics:
      deps.append(self._check_finite(step, means))
    with tf.control_dependencies(deps):
      grads = self._clip(grads, num_replicas)
      self.optimizer.apply(grads, self.trainable_variables)

    means["accuracy"] = accuracy
    for name, value in means.items():
      self._train_trackers[name].update_state(value)
    return {name: t.result() for name, t in self._train_trackers.items()}

  def _clip(self, grads, num_replicas: int):
    """Clip the *global* (all-replica) gradient to ``clip_norm``, then to ``clip_value``.

    Keras clips each replica's gradient before summing them; here the norm
    is that of the summed gradient, and the same factor scales every
    replica's share, so the update equals the single-replica one. The
    element-wise clip (the authors' ``T.clip(g, -1, 1)`` after their total
    norm constraint) also acts on the summed gradient.
    """
    if not self.clip_norm and not self.clip_value:
      return grads
    total = grads
    if num_replicas > 1:
      ctx = tf.distribute.get_replica_context()
      total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    loss_scale = 1.0
    if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      loss_scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
    if self.clip_norm:
      norm = tf.linalg.global_norm(total) / loss_scale
      factor = self.clip_norm / tf.maximum(norm, self.clip_norm)
      grads = [g * tf.cast(factor, g.dtype) for g in grads]
      total = [g * tf.cast(factor, g.dtype) for g in total]
    if not self.clip_value:
      return grads
    # Element-wise clipping of the summed gradient; each replica passes on
    # its 1/R share of the clipped sum, which the optimizer adds up again.
    return [tf.clip_by_value(g, -tf.cast(self.clip_value * loss_scale, g.dtype),
                             tf.cast(self.clip_value * loss_scale, g.dtype))
            / num_replicas for g in total]

  def test_step(self, data):
    """Error with ``eval_samples``; L, U and log qbar with ``eval_bound_samples``.

    ``data`` is ``(x, y)``: every image enters both as labeled (with its true
    label) and as unlabeled.
    """
    x, y = data
    y = tf.cast(y, tf.int32)
    log_probs = self.predict_log_proba(x, self.eval_samples)
    error = tf.cast(tf.not_equal(
        tf.argmax(log_probs, axis=1, output_type=tf.int32), y), tf.float32)
    seed = tf.constant([self.seed, -2], tf.int64)
    noise = self.sample_noise(seed, self.eval_bound_samples, tf.shape(x)[0],
                              tf.shape(x)[0])
    terms = self.bound_terms(x, y, x, noise, training=False)
    self._eval_trackers["elbo_labeled"].update_state(terms.elbo_l)
    self._eval_trackers["elbo_unlabeled"].update_state(terms.elbo_u)
    self._eval_trackers["classification"].update_state(
        tf.gather(log_probs, y, axis=1, batch_dims=1))
    self._eval_trackers["error"].update_state(error)
    return {name: t.result() for name, t in self._eval_trackers.items()}

  # --------------------------------------------------------------------------
  # Generation and serialization
  # --------------------------------------------------------------------------

  def generate(self, labels, seed=None) -> tf.Tensor:
    """Pixel means of p(x|y,z) (SDGM: p(x|a,y,z), a ~ p(a|y,z)), ``[B, D]``.

    z ~ N(0, I) per position from a stateless seed: the same request gives
    the same images, different positions give different samples.
    """
    labels = tf.cast(labels, tf.int32)
    n = tf.shape(labels)[0]
    seed = tf.constant([self.seed, -3], tf.int64) if seed is None else seed
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    z = tf.random.stateless_normal(tf.stack([n, self.z_dim]), seed=seeds[0])
    inputs = {"y": labels, "z": z}
    if "a" in self.wiring.p_x:
      # a ~ p(a|y,z), as in the SDGM's generative model.
      loc, log_var = self.p_a({"y": labels, "z": z})
      eps = tf.random.stateless_normal(tf.stack([n, self.a_dim]), seed=seeds[1])
      inputs["a"] = dists.reparameterize(loc, log_var, eps)
    return tf.sigmoid(self.p_x({k: inputs[k] for k in self.wiring.p_x}))

  def get_config(self):
    config = super().get_config()
    config.update(
        x_dim=self.x_dim, num_classes=self.num_classes, z_dim=self.z_dim,
        a_dim=self.a_dim, hidden=list(self.hidden), activation=self.activation,
        batch_norm=self.batch_norm, mc_samples=self.mc_samples,
        iw_samples=self.iw_samples, eval_samples=self.eval_samples,
        eval_bound_samples=self.eval_bound_samples, alpha=self.alpha,
        clip_norm=self.clip_norm, clip_value=self.clip_value,
        weight_prior_scale=self.weight_prior_scale, init=self.init,
        bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
        bn_statistics=self.bn_statistics,
        unlabeled_weighting=self.unlabeled_weighting,
        aux_warmup_steps=self.aux_warmup_steps,
        aux_log_var_init=self.aux_log_var_init,
        aux_log_var_max=self.aux_log_var_max, seed=self.seed, check_numerics=self.check_numerics,
        jit_compile_gradients=self.jit_compile_gradients)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config.pop("trainable", None)
    config.pop("dtype", None)
    return cls(**config)
