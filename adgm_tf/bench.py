"""Speed benchmark: the training step against this machine's own matmul peak.

  python -m adgm_tf.bench            # full table
  python -m adgm_tf.bench --short    # a few steps per configuration (CI)
  python -m adgm_tf.bench --json     # machine-readable
  python -m adgm_tf.bench --profile=/tmp/prof   # TensorBoard profile of 10 steps,
                                                # and its op table grouped (op_table.py)
  python -m adgm_tf.bench --only=0 --variants=fp32,bf16 --rounds=3   # interleaved
  python -m adgm_tf.bench --kernels   # which library runs the matmuls, per arithmetic

For each configuration (model, labeled + unlabeled batch, samples S or K) it
reports steps/s (median of several timed windows after warm-up, with min and
max), examples/s, the GFLOP a step does (counted analytically from the layer
shapes of the work the step really does, forward + backward taken as 3x
forward), the achieved GFLOP/s, the fraction of the fp32 matmul peak measured
in the same run, and the peak resident memory of a process that ran only that
configuration. Each configuration runs in its own subprocess, so memory
figures do not mix.

Two timings are reported per configuration: ``loop`` runs the launcher's own
training loop (tf.data pipeline on real MNIST when available, ``strategy.run``,
metric reduction, one host sync per step, as ``train.py`` does) and
``compute`` runs ``model.train_step`` on tensors already in memory; their
ratio is the cost of the input pipeline and the metric updates.

``--variants`` times each configuration under several arithmetics in one run
(``fp32``, ``bf16`` = Keras ``mixed_bfloat16``, ``xla`` = ``jit_compile``,
``bf16+xla``) and gives each one's steps/s as a ratio to fp32 in the same run;
the matmul peak is then measured in bf16 as well.

Ratios measured in one run are what to compare: these machines are shared and
absolute times drift. On a host whose speed drifts within minutes (one AMD
EPYC host here measured the same configuration at 8.2 to 10.2 steps/s in
consecutive runs), ``--rounds=3`` or more repeats the sweep interleaved and
reports medians and the median of the per-round ratios.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from adgm_tf import builders
from adgm_tf import cli
from adgm_tf import config as config_lib
from adgm_tf import data
from adgm_tf import devices
from adgm_tf import export
from adgm_tf import hardware
from adgm_tf import op_table
from adgm_tf import pipeline
from adgm_tf.errors import ConfigError

PROG = "adgm_tf.bench"

# The paper's architecture (Maaløe et al. 2016): a = z = 100, two hidden
# layers of 500 in every network, 784 pixels, 10 classes.
PAPER = dict(x_dim=784, num_classes=10, z_dim=100, a_dim=100, hidden=(500, 500))

CONFIGS = [
    dict(model="adgm", labeled=100, unlabeled=100, samples=1),
    dict(model="adgm", labeled=100, unlabeled=100, samples=10),
    dict(model="adgm", labeled=100, unlabeled=1000, samples=1),
    dict(model="adgm", labeled=100, unlabeled=1000, samples=10),
    dict(model="m2", labeled=100, unlabeled=100, samples=1),
    dict(model="sdgm", labeled=100, unlabeled=100, samples=1),
    dict(model="adgm", labeled=100, unlabeled=100, samples=1, iw=10),
    # The end-point screen's S = 5 SDGM step (mnist100_long.flags with
    # --mc_samples=5 --unlabeled_weighting=mean): the 200-epoch run's step.
    dict(model="sdgm", labeled=100, unlabeled=100, samples=5, unlabeled_weighting="mean"),
    # The long recipe section 7 chose (mnist100_long_split_bn.flags: S = 1,
    # batch-norm statistics per pass): the step of docs/results/long_split_bn_200.
    dict(model="sdgm", labeled=100, unlabeled=100, samples=1, bn_statistics="split"),
]

# Arithmetic variants: (Keras dtype policy, XLA).
VARIANTS = {"fp32": ("float32", False), "bf16": ("mixed_bfloat16", False),
            "xla": ("float32", True), "bf16+xla": ("mixed_bfloat16", True)}

# A PyTorch ADGM port at the same architecture and batch, 1 sample: the figure
# quoted in the speed issue (it reruns q(a|x) for every label and recomputes
# every input projection).
PYTORCH_PORT_GFLOP = 21.4

# Steps recorded by --profile.
PROFILE_STEPS = 10


# ----------------------------------------------------------------------------
# Analytic FLOP count
# ----------------------------------------------------------------------------


def step_gflop(model: str, labeled: int, unlabeled: int, samples: int,
               x_dim: int = 784, num_classes: int = 10, z_dim: int = 100,
               a_dim: int = 100, hidden=(500, 500), backward_factor: float = 3.0) -> float:
  """GFLOP of one training step, from the layer shapes of the work it does.

  Counts the multiply-adds of every dense layer (2 FLOP each) at the number
  of rows it really runs on: per example (B = B_l + B_u), per sample of a
  (S B), or per enumerated row (N = S (B_l + Y B_u)); label projections are
  lookups (0). Forward + backward = ``backward_factor`` x forward.
  Elementwise work (activations, batch norm, log-densities) is not counted.
  """
  from adgm_tf import networks  # pylint: disable=g-import-not-at-top
  from adgm_tf import models  # pylint: disable=g-import-not-at-top
  wiring = models.wiring_of(model)
  S, Y = samples, num_classes
  B = labeled + unlabeled
  N = S * (labeled + Y * unlabeled)
  dims = {"x": x_dim, "a": a_dim, "y": Y, "z": z_dim}
  sample_rows = S * B if wiring.auxiliary == "stochastic" else B
  rows_of = {"x": B, "a": sample_rows, "y": 0, "z": N}
  macs = 0

  def factor(inputs, out, rest_rows):
    nonlocal macs
    first, rest = networks.flops_per_row({i: dims[i] for i in inputs}, hidden, out,
                                         categorical=("y",))
    macs += sum(first[i] * rows_of[i] for i in inputs)
    macs += rest * rest_rows

  if wiring.auxiliary != "none":
    heads = 2 * a_dim if wiring.auxiliary == "stochastic" else a_dim
    factor(("x",), heads, B)                                  # q(a|x)
  factor(wiring.q_y, Y, sample_rows if "a" in wiring.q_y else B)  # q(y|.)
  factor(wiring.q_z, 2 * z_dim, N)                             # q(z|.)
  factor(wiring.p_x, x_dim, N)                                 # p(x|.)
  if wiring.p_a:
    factor(wiring.p_a, 2 * a_dim, N)                           # p(a|.)
  return 2.0 * macs * backward_factor / 1e9


# ----------------------------------------------------------------------------
# Measurements (run in a child process per configuration)
# ----------------------------------------------------------------------------


def _quiet_tf():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def _windows(fn, steps_per_window: int, windows: int, warmup: int) -> List[float]:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(windows):
    t0 = time.perf_counter()
    for _ in range(steps_per_window):
      fn()
    times.append((time.perf_counter() - t0) / steps_per_window)
  return times


def matmul_peak(n: int = 2048, seconds: float = 3.0,
                dtype: str = "float32") -> Dict[str, float]:
  """GFLOP/s of an n x n x n matmul in TensorFlow (median of windows)."""
  tf = _quiet_tf()
  a = tf.cast(tf.random.normal([n, n], seed=1), dtype)
  b = tf.cast(tf.random.normal([n, n], seed=2), dtype)
  mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
  mm().numpy()
  t0 = time.perf_counter()
  mm().numpy()
  one = time.perf_counter() - t0
  per_window = max(1, int(seconds / 5 / max(one, 1e-4)))
  times = _windows(lambda: mm().numpy(), per_window, 5, 1)
  rates = [2 * n ** 3 / t / 1e9 for t in times]
  return dict(n=n, gflops=float(np.median(rates)), gflops_min=float(min(rates)),
              gflops_max=float(max(rates)))


def _mnist_split(unlabeled: int):
  """A real MNIST split when a source is at hand, else random grey images."""
  try:
    source = data.resolve_source("mnist", allow_download=False)
    arrays = data.load_arrays("mnist", source.data_dir)
    real = True
  except data.DataError:
    rng = np.random.default_rng(0)
    arrays = data.Arrays(rng.integers(0, 256, (6000, 28, 28, 1), dtype=np.uint8),
                         np.arange(6000) % 10,
                         rng.integers(0, 256, (100, 28, 28, 1), dtype=np.uint8),
                         np.arange(100) % 10)
    real = False
  # Every unlabeled image: one epoch holds more steps than a benchmark runs.
  return data.split_semi_supervised(arrays, 100, 1, 0), real


def run_config(cfg: Dict, jit: bool = False,
               precision: str = "float32") -> config_lib.Config:
  """The typed config a configuration's step is built from (paper architecture)."""
  iw = cfg.get("iw", 1)
  return config_lib.Config(
      data=config_lib.DataConfig(labeled_batch_size=cfg["labeled"],
                                 unlabeled_batch_size=cfg["unlabeled"]),
      model=config_lib.ModelConfig(model=cfg["model"], batch_norm=True,
                                   mc_samples=1 if iw > 1 else cfg["samples"],
                                   iw_samples=iw,
                                   **{k: cfg[k] for k in ("unlabeled_weighting", "bn_statistics")
                                      if k in cfg},
                                   **{k: PAPER[k] for k in ("z_dim", "a_dim", "hidden")}),
      train=config_lib.TrainConfig(jit_compile=jit,
                                   precision=config_lib.KERAS_POLICIES[precision]))


def measure(cfg: Dict, short: bool, jit: bool = False,
            profile_dir: Optional[str] = None, precision: str = "float32") -> Dict:
  """Times one configuration in this process (called in a child)."""
  tf = _quiet_tf()
  import keras  # pylint: disable=g-import-not-at-top
  keras.mixed_precision.set_global_policy(precision)

  iw = cfg.get("iw", 1)
  samples = cfg["samples"] if iw == 1 else iw
  config = run_config(cfg, jit, precision)
  split, real = _mnist_split(cfg["unlabeled"])
  strategy = tf.distribute.MirroredStrategy(
      ["/cpu:0"], cross_device_ops=tf.distribute.ReductionToOneDevice())
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model, _ = builders.create_model_and_optimizer(config, alpha=60.0, steps_per_epoch=600)
  step = devices.make_train_step(strategy, model)
  iterator = iter(pipeline.distributed_epoch(strategy, split, config.data, 0, 0))

  # The launcher's loop: pipeline + strategy.run + reduce + host sync.
  def loop_step():
    logs = step(iterator)
    float(logs["loss"])

  # Compute only: the same train_step on tensors already in memory.
  batch = next(iter(pipeline.distributed_epoch(strategy, split, config.data, 0, 1)))
  compute_fn = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))

  def compute_step():
    out = compute_fn(batch)
    float(strategy.experimental_local_results(out["loss"])[0])

  gflop = step_gflop(cfg["model"], cfg["labeled"], cfg["unlabeled"], samples,
                     **{k: PAPER[k] for k in ("z_dim", "a_dim", "hidden")})
  loop_step()  # trace
  compute_step()
  t0 = time.perf_counter()
  loop_step()
  one = time.perf_counter() - t0
  if short:
    per_window, windows, warmup = 1, 1, 0
  else:
    per_window, windows, warmup = max(1, int(2.0 / one)), 5, 1
  loop = _windows(loop_step, per_window, windows, warmup)
  compute = _windows(compute_step, per_window, windows, warmup)
  if profile_dir:
    tf.profiler.experimental.start(profile_dir)
    for _ in range(PROFILE_STEPS):
      loop_step()
    tf.profiler.experimental.stop()
  med = float(np.median(loop))
  return dict(
      cfg, samples=samples, real_mnist=real, jit=jit, precision=precision,
      steps_per_s=1.0 / med, steps_per_s_min=1.0 / max(loop),
      steps_per_s_max=1.0 / min(loop),
      examples_per_s=(cfg["labeled"] + cfg["unlabeled"]) / med,
      compute_steps_per_s=1.0 / float(np.median(compute)),
      gflop_per_step=gflop, gflops=gflop / med,
      compute_gflops=gflop / float(np.median(compute)),
      peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


# The step's two matmul shapes that dominate it (100 + 100 images, the paper's
# widths): the first hidden layer of a network reading x, and a 500 x 500 one.
KERNEL_SHAPES = ((200, 784, 500), (200, 500, 500))
_KERNEL_MARK = "ADGM_KERNEL"


def kernel_child(short: bool) -> None:
  """Times relu(x @ w) per variant, printing a mark after each (ONEDNN_VERBOSE on)."""
  tf = _quiet_tf()
  reps = 20 if short else 300
  for name, (precision, jit) in VARIANTS.items():
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    total = 0.0
    for m, k, n in KERNEL_SHAPES:
      x = tf.cast(tf.random.normal([m, k], seed=1), dtype)
      w = tf.cast(tf.random.normal([k, n], seed=2), dtype)
      fn = tf.function(lambda x, w: tf.nn.relu(tf.matmul(x, w)), jit_compile=jit)
      fn(x, w).numpy()
      print(f"{_KERNEL_MARK} warmup", flush=True)
      start = time.perf_counter()
      for _ in range(reps):
        out = fn(x, w)
      out.numpy()
      total += (time.perf_counter() - start) / reps
    print(f"{_KERNEL_MARK} {name} {1e3 * total:.4f} {reps}", flush=True)


def kernels(short: bool = False) -> List[Dict]:
  """Per variant: time of the step's matmul shapes, and the oneDNN primitives they ran.

  The child runs with ONEDNN_VERBOSE=1, which prints one line per oneDNN
  primitive execution with its data types; the lines between two marks belong
  to one variant's timed calls. No line means the matmul ran outside oneDNN
  (Eigen, or XLA's own code).
  """
  out = subprocess.run(
      [sys.executable, "-m", "adgm_tf.bench", "--child=kernels"]
      + (["--short"] if short else []), capture_output=True, text=True,
      env=dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3"))
  if out.returncode != 0:
    raise RuntimeError(f"benchmark child kernels failed:\n{out.stderr[-3000:]}")
  rows, execs, types = [], 0, set()
  for line in out.stdout.splitlines():
    if line.startswith("onednn_verbose") and ",exec," in line:
      execs += 1
      fields = line.split(",")
      if len(fields) > 8:  # ...,exec,cpu,<primitive>,<impl>,<prop>,src_f32::... wei_f32::...
        types.update(f"{fields[5]}:{t.split(':')[0].split('_', 1)[1]}"
                     for t in fields[8].split() if t.startswith(("src_", "wei_")))
    elif line.startswith(_KERNEL_MARK):
      parts = line.split()
      if parts[1] != "warmup":
        calls = int(parts[3]) * len(KERNEL_SHAPES)
        rows.append(dict(variant=parts[1], ms=float(parts[2]),
                         onednn_per_call=execs / calls, onednn_types=sorted(types)))
      execs, types = 0, set()
  fp32 = next((r["ms"] for r in rows if r["variant"] == "fp32"), None)
  for r in rows:
    r["x_fp32"] = None if not fp32 else fp32 / r["ms"]
  return rows


def format_kernels(rows: List[Dict]) -> str:
  shapes = " + ".join(f"{m}x{k}x{n}" for m, k, n in KERNEL_SHAPES)
  lines = [f"relu(x @ w) at the step's matmul shapes ({shapes}), one thread pool",
           f"{'variant':<9} {'ms/call':>8} {'x fp32':>7} {'oneDNN prims/call':>18}  types"]
  for r in rows:
    lines.append(f"{r['variant']:<9} {r['ms']:>8.3f} {r['x_fp32']:>7.2f} "
                 f"{r['onednn_per_call']:>18.1f}  {','.join(r['onednn_types']) or '-'}")
  lines.append("0 oneDNN primitives: the matmul ran outside oneDNN (Eigen or XLA's "
               "own code); f32 types under bf16: bf16 was widened to float32 first.")
  return "\n".join(lines)


def measure_export(short: bool) -> Dict:
  """Latency (batch 1) and throughput (batch 1024) of the exported classifier."""
  tf = _quiet_tf()
  import keras  # pylint: disable=g-import-not-at-top
  from adgm_tf import models  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = models.build_model("adgm", batch_norm=True, eval_samples=100,
                             **{k: PAPER[k] for k in ("z_dim", "a_dim", "hidden")})
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export_saved_model(model, tmp)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    one = tf.constant(np.random.default_rng(0).random((1, 784), dtype=np.float32))
    many = tf.constant(np.random.default_rng(1).random((1024, 784), dtype=np.float32))
    for _ in range(20):
      serve(images=one)["classes"].numpy()
    lat = []
    for _ in range(50 if short else 500):
      t0 = time.perf_counter()
      serve(images=one)["classes"].numpy()
      lat.append(time.perf_counter() - t0)
    serve(images=many)["classes"].numpy()
    tput = _windows(lambda: serve(images=many)["classes"].numpy(), 1 if short else 3,
                    2 if short else 5, 0)
  return dict(samples=100, p50_ms=1e3 * float(np.percentile(lat, 50)),
              p99_ms=1e3 * float(np.percentile(lat, 99)),
              batch1024_images_per_s=1024 / float(np.median(tput)),
              peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


# ----------------------------------------------------------------------------
# Parent: run every configuration in a child, print one table
# ----------------------------------------------------------------------------


def _child(kind: str, payload: Dict, short: bool, env: Optional[Dict[str, str]] = None,
           cwd: Optional[str] = None) -> Dict:
  """One measurement in a fresh process; ``env`` adds environment variables and
  ``cwd`` runs it from another checkout (``experiments/speed_ab.py``)."""
  args = [sys.executable, "-m", "adgm_tf.bench", f"--child={kind}",
          f"--child_payload={json.dumps(payload)}"] + (["--short"] if short else [])
  out = subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))
  if out.returncode != 0:
    raise RuntimeError(f"benchmark child {kind} {payload} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def paired_ratio(values: List[float], base: List[float]) -> float:
  """The median of the per-round ratios ``values[r] / base[r]``."""
  return float(np.median([v / b for v, b in zip(values, base)]))


def _median_peak(peaks: List[Dict]) -> Dict:
  """One peak record from several rounds: the median, min and max over them."""
  if len(peaks) == 1:
    return peaks[0]
  values = [p["gflops"] for p in peaks]
  return dict(peaks[0], gflops=float(np.median(values)), gflops_min=min(
      p["gflops_min"] for p in peaks), gflops_max=max(p["gflops_max"] for p in peaks),
              rounds=values)


def run(short: bool = False, configs=None, profile_dir=None, jit=False,
        variants=None, rounds: int = 1) -> Dict:
  """Every configuration under every variant, each in its own child process.

  ``variants`` (names of VARIANTS) default to fp32 alone, or xla alone when
  ``jit`` is set. Every row gets ``x_fp32``: its steps/s over the fp32 row
  of the same configuration (None when fp32 was not run).

  ``rounds`` > 1 repeats the whole sweep (the matmul peaks, then every
  configuration under every variant) that many times, interleaved, so that
  drifts of a shared host hit every variant alike. A row then reports the
  median over rounds of each child's steps/s (min and max over all timed
  windows), its fraction of the peak measured in the same round (median over
  rounds), and ``x_fp32`` as the median of the per-round ratios to fp32;
  ``rounds_steps_per_s`` keeps each round's figure.
  """
  configs = CONFIGS if configs is None else configs
  variants = variants or (["xla"] if jit else ["fp32"])
  if rounds < 1:
    raise ValueError(f"rounds must be at least 1, got {rounds}")
  need_bf16 = any(VARIANTS[v][0] != "float32" for v in variants)
  peaks, bf16_peaks = [], []
  timed = {(i, v): [] for i in range(len(configs)) for v in variants}
  for round_ in range(rounds):
    peaks.append(_child("peak", {}, short))
    if need_bf16:
      bf16_peaks.append(_child("peak", {"dtype": "bfloat16"}, short))
    for i, cfg in enumerate(configs):
      for variant in variants:
        precision, xla = VARIANTS[variant]
        profile = (profile_dir if (profile_dir and round_ == 0 and i == 0
                                   and variant == variants[0]) else None)
        r = _child("config", dict(cfg=cfg, jit=xla, precision=precision,
                                  profile=profile), short)
        r["variant"] = variant
        r["fraction_of_peak"] = r["gflops"] / peaks[-1]["gflops"]
        r["compute_fraction_of_peak"] = r["compute_gflops"] / peaks[-1]["gflops"]
        r["loop_overhead"] = 1.0 - r["steps_per_s"] / r["compute_steps_per_s"]
        timed[(i, variant)].append(r)
  rows = []
  for i in range(len(configs)):
    base = timed.get((i, "fp32"))
    for variant in variants:
      runs = timed[(i, variant)]
      row = dict(runs[0])
      if rounds > 1:
        for key in ("steps_per_s", "examples_per_s", "compute_steps_per_s", "gflops",
                    "compute_gflops", "fraction_of_peak", "compute_fraction_of_peak",
                    "loop_overhead"):
          row[key] = float(np.median([r[key] for r in runs]))
        row["steps_per_s_min"] = min(r["steps_per_s_min"] for r in runs)
        row["steps_per_s_max"] = max(r["steps_per_s_max"] for r in runs)
        row["peak_rss_gib"] = max(r["peak_rss_gib"] for r in runs)
        row["rounds_steps_per_s"] = [r["steps_per_s"] for r in runs]
      row["x_fp32"] = (paired_ratio([r["steps_per_s"] for r in runs],
                                    [b["steps_per_s"] for b in base])
                       if base else None)
      rows.append(row)
  exported = _child("export", {}, short)
  result = dict(date=time.strftime("%Y-%m-%d"), cpus=os.cpu_count(), short=short,
                rounds=rounds, cpu=hardware.describe_cpu(),
                matmul_peak=_median_peak(peaks),
                bf16_matmul_peak=_median_peak(bf16_peaks) if bf16_peaks else None,
                configs=rows, exported_classifier=exported,
                pytorch_port_gflop_per_step=PYTORCH_PORT_GFLOP)
  if profile_dir:
    ops = op_table.op_rows(op_table.find_xplane(profile_dir))
    groups = op_table.grouped(ops, PROFILE_STEPS)
    result["profile"] = dict(dir=profile_dir, steps=PROFILE_STEPS, groups=groups,
                             table=op_table.format_grouped(groups, ops, PROFILE_STEPS))
  return result


def _label(row: Dict) -> str:
  """The model's name in the table, with /split for per-pass batch statistics."""
  return row["model"] + ("/split" if row.get("bn_statistics") == "split" else "")


def format_table(result: Dict) -> str:
  p = result["matmul_peak"]
  lines = [
      f"adgm_tf benchmark, {result['date']}, {result['cpus']} CPUs: "
      f"{result.get('cpu', 'CPU not recorded')}"
      + (" (short mode: too few steps for stable figures)" if result["short"] else "")
      + (f"; {result['rounds']} interleaved rounds: medians, x fp32 = median of the "
         f"per-round ratios" if result.get("rounds", 1) > 1 else ""),
      f"fp32 matmul peak ({p['n']}^3): {p['gflops']:.1f} GFLOP/s "
      f"(min {p['gflops_min']:.1f}, max {p['gflops_max']:.1f})",
  ]
  b = result.get("bf16_matmul_peak")
  if b:
    lines.append(f"bf16 matmul peak ({b['n']}^3): {b['gflops']:.1f} GFLOP/s "
                 f"({b['gflops'] / p['gflops']:.2f}x fp32)")
  lines += [
      "",
      f"{'model':<10} {'B_l+B_u':>9} {'S':>3} {'K':>3} {'variant':>8} {'x fp32':>6} "
      f"{'steps/s (min-max)':>21} "
      f"{'ex/s':>7} {'GFLOP/step':>10} {'GFLOP/s':>8} {'%peak':>6} "
      f"{'compute %peak':>13} {'loop ovh':>8} {'RSS GiB':>7}",
  ]
  for r in result["configs"]:
    k = r.get("iw", 1)
    lines.append(
        f"{_label(r):<10} {str(r['labeled']) + '+' + str(r['unlabeled']):>9} "
        f"{(1 if k > 1 else r['samples']):>3} {k:>3} "
        f"{r.get('variant', 'fp32'):>8} "
        f"{(format(r['x_fp32'], '.2f') if r.get('x_fp32') else '-'):>6} "
        f"{r['steps_per_s']:>7.2f} ({r['steps_per_s_min']:.2f}-{r['steps_per_s_max']:.2f})"
        f"{'':>1} {r['examples_per_s']:>7.0f} {r['gflop_per_step']:>10.2f} "
        f"{r['gflops']:>8.1f} {100 * r['fraction_of_peak']:>5.1f}% "
        f"{100 * r['compute_fraction_of_peak']:>12.1f}% "
        f"{100 * r['loop_overhead']:>7.1f}% {r['peak_rss_gib']:>7.2f}")
  e = result["exported_classifier"]
  lines += [
      "",
      f"exported classifier (S_eval={e['samples']}): batch 1 p50 {e['p50_ms']:.2f} ms, "
      f"p99 {e['p99_ms']:.2f} ms; batch 1024 {e['batch1024_images_per_s']:.0f} images/s",
      f"reference: a PyTorch ADGM port does {result['pytorch_port_gflop_per_step']} GFLOP "
      f"per step at adgm 100+100 S=1 (the speed issue's figure)",
  ]
  if result.get("profile"):
    lines += ["", f"profile of the first row in {result['profile']['dir']}; "
              + result["profile"]["table"]]
  return "\n".join(lines)


def _ints(name: str, values) -> Optional[List[int]]:
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise ConfigError(f"--{name}={','.join(values)}: give configuration numbers, "
                      f"e.g. --{name}=0,2.") from None


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: lists take commas, "
                      f"e.g. --only=0,2 --variants=fp32,bf16.")
  only, variants = _ints("only", f.only), f.variants
  if f.child == "peak":
    p = json.loads(f.child_payload)
    print(json.dumps(matmul_peak(seconds=1.0 if f.short else 3.0,
                                 dtype=p.get("dtype", "float32"))))
    return
  if f.child == "config":
    p = json.loads(f.child_payload)
    print(json.dumps(measure(p["cfg"], f.short, p.get("jit", False), p.get("profile"),
                             p.get("precision", "float32"))))
    return
  if f.child == "kernels":
    kernel_child(f.short)
    return
  if f.child == "export":
    print(json.dumps(measure_export(f.short)))
    return
  if f.kernels:
    other = [name for name, v in (("--only", only), ("--variants", variants),
                                  ("--profile", f.profile), ("--jit_compile", f.jit_compile))
             if v is not None and v is not False]
    if other:
      raise ConfigError(f"--kernels times its fixed matmul shapes under every variant; "
                        f"it takes no {', '.join(other)}. Run it alone (with --short "
                        f"or --json if wanted).")
    rows = kernels(f.short)
    print(json.dumps(rows, indent=2) if f.json else format_kernels(rows))
    return
  bad = [i for i in only or [] if not 0 <= i < len(CONFIGS)]
  if bad:
    raise ConfigError(f"--only={','.join(map(str, bad))}: the configurations are "
                      f"numbered 0 to {len(CONFIGS) - 1}.")
  unknown = [v for v in variants or [] if v not in VARIANTS]
  if unknown:
    raise ConfigError(f"--variants={','.join(unknown)}: unknown; choose from "
                      f"{', '.join(VARIANTS)}.")
  if variants is not None and not variants:
    raise ConfigError("--variants was given without a value; name at least one of "
                      f"{', '.join(VARIANTS)}.")
  configs = None if only is None else [CONFIGS[i] for i in only]
  if f.rounds < 1:
    raise ConfigError(f"--rounds={f.rounds}: give 1 or more (each round repeats every "
                      f"configuration under every variant).")
  result = run(f.short, configs, f.profile, f.jit_compile, variants, f.rounds)
  print(json.dumps(result, indent=2) if f.json else format_table(result))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_bool("short", False, "a few steps per configuration")
  flags.DEFINE_bool("json", False, "print JSON instead of the table")
  flags.DEFINE_string("profile", None, "write a TensorBoard profile of 10 steps of the "
                      "first configuration here")
  flags.DEFINE_bool("jit_compile", False, "XLA for the loss and gradients")
  flags.DEFINE_bool("kernels", False, "only time the step's matmul shapes per arithmetic "
                    "and name the oneDNN primitives they run (why a variant is or is not "
                    "faster)")
  flags.DEFINE_list("variants", None, "arithmetics to time side by side, ratios to fp32 in "
                    f"the same run, comma-separated: any of {', '.join(VARIANTS)} "
                    "(default: fp32, or xla with --jit_compile)")
  flags.DEFINE_integer("rounds", 1, "repeat the whole sweep this many times, interleaved "
                       "(medians, and x fp32 as the median of per-round ratios): on a "
                       "host whose speed drifts, 3 or more")
  flags.DEFINE_list("only", None, "numbers of the configurations to run, comma-separated "
                    "(default: all)")
  flags.DEFINE_enum("child", None, ["peak", "config", "kernels", "export"],
                    "internal: one measurement, in the child process the bench starts")
  flags.DEFINE_string("child_payload", "{}", "internal: the child's arguments (JSON)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
