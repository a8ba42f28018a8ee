r"""The experiment runner: the runs of one experiments/*.json config, their tables and figures.

  python -m adgm_tf.experiments --config=experiments/fig4.json \
      --out=~/adgm-results/fig4 --publish=docs/results/fig4

runs a list of (flagfile, seed) runs one after another, each a normal
``launch.py`` run in its own model_dir under ``<out>/runs/``, and writes to
``<out>``:

* ``summary.md`` and ``summary.json``: one row per run name with, mean +- std
  over seeds, the validation error (what settings are chosen on), the test
  error (the final table only), the a-diagnostics (``diagnostics.py``), epochs,
  wall time and the test log-likelihood estimate, next to the paper's Table 1
  (labeled as such);
* ``convergence.png``: validation and test error per epoch, mean over seeds
  with the range as a band (Fig. 4 of Maaløe et al. 2016, per epoch), and
  validation error against wall time;
* ``auxiliary.png``: the a-diagnostics per epoch on the validation split;
* ``active_units.png``: per-unit KL of z and of a, sorted, from each model's
  final checkpoint (Fig. 3);
* ``samples.png``: 10 samples per class from the first model (Fig. 5).

``--publish DIR`` copies those and each run's ``history.csv``,
``metrics.json`` and ``flags.txt`` (never checkpoints or events) to DIR.
Keep ``--out`` outside the work tree: long comparisons span sessions.
Starting it again skips the runs that finished (their ``metrics.json``
exists) and resumes the one that was interrupted (launch.py resumes from its
latest checkpoint).

The config is JSON::

  {"title": "...", "budget": "10 epochs each",
   "runs": [{"name": "adgm", "flagfile": "mnist100_cpu.flags",
             "flags": ["--epochs=10"], "seeds": [1, 2, 3]}, ...],
   "common_flags": ["--data_dir=..."]}

A run's seed sets both ``--seed`` and ``--label_seed``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List, Optional

import numpy as np

from adgm_tf import cli
from adgm_tf import rundir
from adgm_tf.errors import AdgmError, ConfigError

PROG = "adgm_tf.experiments"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunFailed(AdgmError):
  """One of the runs exited with an error (its launch.log says which)."""


def read_config(path: str) -> Dict[str, Any]:
  """The experiment's JSON, checked."""
  try:
    with open(path) as f:
      config = json.load(f)
  except OSError as e:
    raise ConfigError(f"--config={path}: {e.strerror}.") from None
  except ValueError as e:
    raise ConfigError(f"--config={path} is not valid JSON ({e}).") from None
  runs = config.get("runs") if isinstance(config, dict) else None
  if not runs or not all(isinstance(r, dict) and "name" in r and "flagfile" in r
                         for r in runs):
    raise ConfigError(f"--config={path}: expected {{\"runs\": [{{\"name\": ..., "
                      f"\"flagfile\": ..., \"seeds\": [...]}}, ...]}}.")
  for r in runs:
    flagfile = os.path.join(REPO, r["flagfile"])
    if not os.path.exists(flagfile):
      raise ConfigError(f"--config={path}: run {r['name']!r} names the flagfile "
                        f"{r['flagfile']}, which does not exist in {REPO}.")
  return config

# Published figures, MNIST with 100 labels: test error in percent, mean +- std
# (not measured here). Maaløe, Sønderby, Sønderby & Winther, "Auxiliary Deep
# Generative Models", ICML 2016, Table 1; and the same authors' NIPS 2015
# workshop poster ("Improving semi-supervised learning with auxiliary deep
# generative models"), Table 1, whose ADGM is the workshop form.
PAPER_TABLE = [
    ("M1+M2 (Kingma et al. 2014), as quoted in ICML 2016 Table 1", 3.33, 0.14),
    ("ADGM (workshop form), 1 Monte Carlo sample: NIPS 2015 workshop poster, Table 1", 2.25, 0.08),
    ("SDGM: ICML 2016, Table 1", 1.32, 0.07),
    ("ADGM, 10 Monte Carlo samples: ICML 2016, Table 1", 0.96, 0.02),
]


def only_seeds(config: Dict[str, Any], seeds: str, path: str = "") -> Dict[str, Any]:
  """The config with each run's seeds cut to those listed in ``seeds`` ("2,3")."""
  try:
    wanted = {int(s) for s in seeds.split(",") if s.strip()}
  except ValueError:
    raise ConfigError(f"--seeds={seeds}: give seeds as integers, e.g. --seeds=3 "
                      f"or --seeds=2,3.") from None
  runs = [dict(r, seeds=[s for s in r.get("seeds", [0]) if s in wanted])
          for r in config["runs"]]
  runs = [r for r in runs if r["seeds"]]
  if not runs:
    have = sorted({s for r in config["runs"] for s in r.get("seeds", [0])})
    raise ConfigError(f"--seeds={seeds}: {path or 'the config'} has no run with "
                      f"these seeds (its seeds: {', '.join(map(str, have))}).")
  return dict(config, runs=runs)


def only_runs(config: Dict[str, Any], names: str, path: str = "") -> Dict[str, Any]:
  """The config cut to the runs named in ``names`` ("long,authors"), in the
  config's order: two runners given disjoint names can share one --out (each
  pinned to its own core, BUILD.md "Two runs at once")."""
  wanted = [n.strip() for n in names.split(",") if n.strip()]
  have = [r["name"] for r in config["runs"]]
  unknown = [n for n in wanted if n not in have]
  if unknown or not wanted:
    raise ConfigError(f"--runs={names}: {path or 'the config'} has no run named "
                      f"{', '.join(unknown) or '(none given)'} (its runs: {', '.join(have)}).")
  return dict(config, runs=[r for r in config["runs"] if r["name"] in wanted])


def run_dir(out: str, name: str, seed: int) -> str:
  return os.path.join(out, "runs", f"{name}-seed{seed}")


def run_all(config: Dict[str, Any], out: str, python: str = sys.executable,
            log=print) -> List[Dict[str, Any]]:
  """Runs (or resumes, or skips) every (run, seed); returns their records."""
  records = []
  for run in config["runs"]:
    for seed in run.get("seeds", [0]):
      model_dir = run_dir(out, run["name"], seed)
      paths = rundir.RunDir(model_dir)
      if os.path.exists(paths.metrics):
        log(f"[experiments] {run['name']} seed {seed}: finished, skipped")
      else:
        resuming = os.path.isdir(paths.checkpoints)
        log(f"[experiments] {run['name']} seed {seed}: "
            f"{'resuming' if resuming else 'starting'} in {model_dir}")
        os.makedirs(model_dir, exist_ok=True)
        args = ([python, os.path.join(REPO, "launch.py"), f"--flagfile={run['flagfile']}"]
                + list(config.get("common_flags", [])) + list(run.get("flags", []))
                + [f"--seed={seed}", f"--label_seed={seed}", f"--model_dir={model_dir}",
                   "--progress=epoch"])
        with open(paths.launch_log, "a") as logf:
          logf.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n")
          logf.flush()
          proc = subprocess.run(args, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
          raise RunFailed(f"{run['name']} seed {seed} failed (exit {proc.returncode}); "
                             f"see {paths.launch_log}")
      with open(paths.metrics) as f:
        metrics = json.load(f)
      records.append(dict(name=run["name"], seed=seed, model_dir=model_dir,
                          metrics=metrics, history=read_history(model_dir)))
  return records


def read_history(model_dir: str) -> List[Dict[str, float]]:
  path = rundir.RunDir(model_dir).history
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]


# Per-run numbers summarised over seeds (metrics.json keys; errors in percent).
SUMMARY_KEYS = (
    ("validation_error", 100.0), ("test_error", 100.0),
    ("aux_alive_fraction", 1.0), ("aux_mean_spread", 1.0),
    ("validation_aux_alive_fraction", 1.0), ("validation_aux_mean_spread", 1.0),
    ("validation_aux_information", 1.0),
    ("aux_swap_cost", 100.0), ("validation_aux_swap_cost", 100.0),
    ("aux_information", 1.0), ("test_log_likelihood", 1.0),
    ("active_units_z", 1.0), ("active_units_a", 1.0),
)


# Columns that show the validation split's figure, marked "(val.)", for runs
# that never read the test set (the swap cost has a validation column of its own).
FALLBACK_TO_VALIDATION = ("aux_alive_fraction", "aux_mean_spread", "aux_information")


def with_swap_cost(metrics: Dict[str, Any]) -> Dict[str, Any]:
  """Adds ``aux_swap_cost`` = aux_swap_error - error (test and validation)."""
  m = dict(metrics)
  for prefix, err in (("", "test_error"), ("validation_", "validation_error")):
    swap = m.get(f"{prefix}aux_swap_error")
    if swap is not None and m.get(err) is not None:
      m[f"{prefix}aux_swap_cost"] = swap - m[err]
  return m


def mean_std(values):
  """Mean and sample standard deviation; the std is None for one value (no
  spread was measured) and both are None for none."""
  values = [float(v) for v in values if v is not None]
  if not values:
    return None, None
  std = float(np.std(values, ddof=1)) if len(values) > 1 else None
  return float(np.mean(values)), std


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Any]:
  """One row per run name: mean and sample std over seeds of each run's metrics.

  Validation figures are for choosing between settings; test figures are
  for the final table only.
  """
  rows = []
  for name in dict.fromkeys(r["name"] for r in records):
    group = [with_swap_cost(r["metrics"]) for r in records if r["name"] == name]
    row = dict(name=name, model=group[0].get("model"), seeds=len(group))
    for key, scale in SUMMARY_KEYS:
      mean, std = mean_std(g.get(key) * scale if g.get(key) is not None else None
                           for g in group)
      row[key], row[f"{key}_std"] = mean, std
    # Kept under their earlier names too (percent).
    row["test_error_percent"], row["test_error_std"] = row["test_error"], row["test_error_std"]
    row["epochs"] = mean_std(g.get("epochs") for g in group)[0]
    row["wall_time_minutes"] = mean_std(
        g.get("wall_time") / 60 if g.get("wall_time") else None for g in group)[0]
    row.update(eval_samples=group[0].get("eval_samples"),
               ll_samples=group[0].get("ll_samples"), ll_examples=group[0].get("ll_examples"),
               stopped_by_time_budget=all(g.get("stopped_by_time_budget") for g in group))
    rows.append(row)
  return dict(rows=rows, paper_table=[
      dict(name=n, test_error_percent=m, test_error_std=s) for n, m, s in PAPER_TABLE])


def _pm(mean, std, digits=2):
  if mean is None:
    return "-"
  if std is None:  # one seed: no spread to show
    return f"{mean:.{digits}f}"
  return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _row_pm(row: Dict[str, Any], key: str, digits: int = 2) -> str:
  """A summary row's ``key`` as mean ± std; the value alone for one seed."""
  return _pm(row.get(key), row.get(f"{key}_std"), digits)


def summary_markdown(summary: Dict[str, Any], title: str) -> str:
  lines = [f"# {title}", "",
           "Measured here (each run's own metrics.json; mean ± sample std over seeds, "
           "the value alone for one seed). "
           "Validation error (a split of the training set) is what settings are chosen "
           "on; test error is reported, never used to choose. Swap cost: error with "
           "every image given another image's a-samples, minus the error (points). "
           "Alive fraction, spread and I(y;a|x) are the test images' figures, or the "
           "validation split's where marked (val.) (runs that never read the test set); "
           "every figure comes from the final evaluation, with the eval_samples of the "
           "run's flags.txt.", "",
           "| run | model | seeds | epochs | validation error (%) | test error (%) | "
           "alive fraction of q(a\\|x), test | spread of q(a\\|x)'s mean, test | swap cost, "
           "validation (points) | swap cost, test (points) | I(y;a\\|x), test (nats) | "
           "active units z (test) | wall time (min) | test log-likelihood (nats) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in summary["rows"]:
    def f(key, digits=2, r=r):
      if (key in FALLBACK_TO_VALIDATION and r.get(key) is None
          and r.get(f"validation_{key}") is not None):
        # Runs that never read the test set: the validation split's figure.
        return _row_pm(r, f"validation_{key}", digits) + " (val.)"
      return _row_pm(r, key, digits)
    lines.append(
        f"| {r['name']} | {r['model']} | {r['seeds']} | "
        f"{'-' if r['epochs'] is None else format(r['epochs'], '.1f')} | "
        f"{f('validation_error')} | {f('test_error')} | {f('aux_alive_fraction')} | "
        f"{f('aux_mean_spread', 3)} | {f('validation_aux_swap_cost')} | "
        f"{f('aux_swap_cost')} | {f('aux_information', 3)} | {f('active_units_z', 1)} | "
        f"{'-' if r['wall_time_minutes'] is None else format(r['wall_time_minutes'], '.1f')} | "
        f"{f('test_log_likelihood')} |")
  lines += ["", "For comparison, **published figures** (MNIST, 100 labels, 1000 epochs "
            "on a GPU; not measured here):", "",
            "| model (paper) | test error (%) |", "|---|---|"]
  for r in summary["paper_table"]:
    lines.append(f"| {r['name']} | {_pm(r['test_error_percent'], r['test_error_std'])} |")
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------


def pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def per_epoch(records, key: str, scale: float = 1.0):
  """``{name: (epochs, mean, lo, hi, n_seeds)}`` of ``key`` over each run's seeds.

  Only epochs that every seed of the run evaluated are kept; the band is the
  range over seeds (min to max).
  """
  out = {}
  for name in dict.fromkeys(r["name"] for r in records):
    series = []
    for r in records:
      if r["name"] != name:
        continue
      series.append({round(h["epoch"], 3): h[key] * scale for h in r["history"]
                     if h.get(key) is not None and float(h["epoch"]).is_integer()})
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    if not common:
      continue
    values = np.array([[s[e] for e in common] for s in series])       # [seeds, epochs]
    out[name] = (np.array(common), values.mean(0), values.min(0), values.max(0),
                 len(series))
  return out


def percent_axis(ax, lo, hi):
  """A log axis with labelled ticks, plain percentages: at every 1-9 x 10^k
  over a narrow range (under 4x), 1, 2, 3, 5 x 10^k up to 30x, 1, 2, 5 x
  10^k beyond. ``numticks`` is high so that matplotlib never thins the
  labels (it had left a 5-19% axis with the one label 10)."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  ax.set_yscale("log")
  if hi < 4 * lo:
    subs = tuple(float(k) for k in range(1, 10))
  elif hi < 30 * lo:
    subs = (1.0, 2.0, 3.0, 5.0)
  else:
    subs = (1.0, 2.0, 5.0)
  ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs, numticks=100))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())
  ax.grid(True, which="both", alpha=0.3)


def read_flags(model_dir: str) -> Optional[Dict[str, str]]:
  """A run's flags.txt as ``{name: value}`` (``--name=value`` lines); None without one."""
  path = rundir.RunDir(model_dir).flags
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return dict(line[2:].strip().split("=", 1) for line in f
                if line.startswith("--") and "=" in line)


def _samples_text(records) -> str:
  """"S = 1 in training, 10 samples of a per evaluation", from the runs' flags.txt."""
  train, evals = set(), set()
  for r in records:
    flags = read_flags(r.get("model_dir", ""))
    if flags is None:
      continue
    train.add(flags.get("mc_samples", "?"))
    evals.add(flags.get("eval_samples_periodic", "?"))
  if not train:
    return ""
  return (f"S = {'/'.join(sorted(train))} in training, {'/'.join(sorted(evals))} samples "
          f"of a per evaluation")


DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _data_text(records) -> str:
  """"MNIST, 100 labels", from the runs' flags.txt (their --dataset and --num_labels)."""
  seen = set()
  for r in records:
    flags = read_flags(r.get("model_dir", "")) or {}
    name = flags.get("dataset", "mnist")
    seen.add(f"{DATASET_NAMES.get(name, name)}, {flags.get('num_labels', '100')} labels")
  return " / ".join(sorted(seen)) or "MNIST, 100 labels"


def _suptitle(fig, text: str) -> None:
  """A figure title wrapped to the figure's width (long ones were cut at the edges)."""
  width = max(60, int(fig.get_figwidth() * 9))  # about 9 characters an inch at 10 pt
  fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=10)


def _seeds_text(curves) -> str:
  counts = sorted({c[4] for c in curves.values()})
  return "/".join(map(str, counts)) + (" seed" if counts == [1] else " seeds")


def plot_convergence(records, path: str, budget: str = "") -> None:
  """Validation and test error per epoch (mean over seeds, band = range), and
  validation error against wall time (Fig. 4 of Maaløe et al. 2016, per epoch)."""
  plt = pyplot()
  names = list(dict.fromkeys(r["name"] for r in records))
  colors = {n: f"C{i}" for i, n in enumerate(names)}
  # A split no run evaluated gets no panel (validation-only runs: no test
  # panel); a name missing from a panel is named in its title.
  keys = [k for k in ("validation_error", "test_error") if per_epoch(records, k, 100.0)]
  keys = keys or ["validation_error"]
  fig, axes = plt.subplots(1, len(keys) + 1, figsize=(5.4 * (len(keys) + 1), 4.8), dpi=100)
  lo, hi = math.inf, -math.inf
  seeds = ""
  for ax, key in zip(axes[:-1], keys):
    curves = per_epoch(records, key, 100.0)
    seeds = seeds or (_seeds_text(curves) if curves else "")
    missing = [n for n in names if n not in curves]
    for name, (e, mean, low, high, n) in curves.items():
      ax.plot(e, mean, color=colors[name], lw=1.5, marker=".",
              label=f"{name} ({n} seed{'s' if n > 1 else ''})")
      if n > 1:
        ax.fill_between(e, low, high, color=colors[name], alpha=0.2, lw=0)
      lo, hi = min(lo, float(low.min())), max(hi, float(high.max()))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key.replace('_', ' ')} (%)")
    ax.set_title(f"{key.replace('_', ' ')} per epoch"
                 + (f"\n(not evaluated: {', '.join(missing)})" if missing else ""),
                 fontsize=10)
    if curves:
      ax.legend(fontsize=8)
  for r in records:
    pts = [(h["wall_time"] / 60, 100 * h["validation_error"]) for h in r["history"]
           if h.get("validation_error") is not None]
    if pts:
      w, err = zip(*pts)
      axes[-1].plot(w, err, color=colors[r["name"]], lw=1, alpha=0.8)
      lo, hi = min(lo, min(err)), max(hi, max(err))
  axes[-1].set_xlabel("wall time (minutes; one line per seed)")
  axes[-1].set_ylabel("validation error (%)")
  axes[-1].set_title("validation error against wall time\n(comparable only between runs "
                     "that had the machine alone)", fontsize=10)
  if math.isfinite(lo):
    for ax in axes:
      percent_axis(ax, lo, hi)
  samples = _samples_text(records)
  _suptitle(fig, f"{_data_text(records)}: mean over {seeds or 'the seeds'}, band = range "
                 f"over seeds{'; ' + samples if samples else ''}"
                 f"{'; ' + budget if budget else ''}")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


AUX_PANELS = (
    ("validation_aux_alive_fraction", 1.0, "alive fraction of q(a|x)'s units", "linear"),
    ("validation_aux_mean_spread", 1.0, "std over images of q(a|x)'s mean", "log"),
    ("validation_aux_swap_cost", 100.0, "swap cost: error with another image's a\n"
     "minus the error (points)", "linear"),
    ("validation_aux_information", 1.0, "I(y; a | x) (nats)", "linear"),
)


def plot_auxiliary(records, path: str, budget: str = "") -> None:
  """The a-diagnostics per epoch on the validation split (``diagnostics.py``)."""
  plt = pyplot()
  fig, axes = plt.subplots(1, 4, figsize=(18, 4.5), dpi=100)
  names = list(dict.fromkeys(r["name"] for r in records))
  colors = {n: f"C{i}" for i, n in enumerate(names)}
  with_cost = [dict(r, history=[with_swap_cost(h) for h in r["history"]])
               for r in records]
  seeds = ""
  for ax, (key, scale, label, scale_kind) in zip(axes, AUX_PANELS):
    curves = per_epoch(with_cost, key, scale)
    seeds = seeds or (_seeds_text(curves) if curves else "")
    for name, (e, mean, low, high, n) in curves.items():
      ax.plot(e, mean, color=colors[name], lw=1.5, marker=".", label=name)
      if n > 1:
        ax.fill_between(e, low, high, color=colors[name], alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    if scale_kind == "log" and curves:
      ax.set_yscale("log")
    if key.endswith("swap_cost"):
      ax.axhline(0.0, color="gray", lw=0.8)
    if key.endswith("alive_fraction"):
      ax.set_ylim(0.0, 1.05)  # a fraction: from 0, so that 0.005 looks like 0.005
    ax.grid(True, which="both", alpha=0.3)
    if curves:
      ax.legend(fontsize=8)
  samples = _samples_text(records)
  _suptitle(fig, f"The auxiliary variable on the validation split ({_data_text(records)}): "
                 f"mean over {seeds or 'the seeds'}, band = range"
                 f"{'; ' + samples if samples else ''}{'; ' + budget if budget else ''}")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_active_units(records, path: str) -> None:
  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
  seen = set()
  for i, r in enumerate(records):
    if r["name"] in seen:
      continue  # the first seed of each run
    seen.add(r["name"])
    m = r["metrics"]
    for ax, key in zip(axes, ("kl_per_unit_z", "kl_per_unit_a")):
      kl = m.get(key)
      if kl:
        ax.plot(sorted(kl, reverse=True), marker=".", lw=1, color=f"C{i}",
                label=f"{r['name']} seed {r['seed']} ({sum(k > 0.01 for k in kl)} active)")
  for ax, title in zip(axes, ("z: KL(q(z|.) || N(0, I))",
                              "a: KL(q(a|x) || p(a|.)) (ICML form: p sees x)")):
    ax.axhline(0.01, color="gray", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("unit (sorted)")
    ax.set_ylabel("KL per unit (nats)")
    ax.set_title(f"per-unit KL of {title}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.suptitle("Active units (test images, final checkpoint; above 0.01 nats: active)")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_samples(model_dir: str, path: str) -> None:
  """10 samples per class (rows) from a run's final checkpoint."""
  from adgm_tf import evaluation  # pylint: disable=g-import-not-at-top
  _, model, _ = rundir.load_run(model_dir)
  shape = rundir.read_run(model_dir)[1]["derived"].get("image_shape")
  grid = evaluation.image_grid(evaluation.class_conditional_samples(model, 10, seed=0),
                               shape)
  plt = pyplot()
  fig = plt.figure(figsize=(5, 5), dpi=100)
  ax = fig.add_axes([0, 0, 1, 1])
  ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
  ax.axis("off")
  fig.savefig(path)
  plt.close(fig)


def report(records, out: str, title: str, budget: str = "") -> Dict[str, Any]:
  summary = summarize(records)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(summary_markdown(summary, title))
  plot_convergence(records, os.path.join(out, "convergence.png"), budget)
  plot_auxiliary(records, os.path.join(out, "auxiliary.png"), budget)
  plot_active_units(records, os.path.join(out, "active_units.png"))
  if os.path.isdir(rundir.RunDir(records[0]["model_dir"]).checkpoints):
    plot_samples(records[0]["model_dir"], os.path.join(out, "samples.png"))
  return summary


PUBLISHED_FILES = ("history", "metrics", "flags")  # RunDir's small files


def publish(records, out: str, dest: str, flat: str = "") -> None:
  """Copies the small result files (never checkpoints or events) to ``dest``.

  Each run's files go to ``dest/runs/<run>/``, or to ``flat`` when given (one run).
  """
  os.makedirs(dest, exist_ok=True)
  for name in ("summary.md", "summary.json", "convergence.png", "auxiliary.png",
               "active_units.png", "samples.png"):
    if not flat and os.path.exists(os.path.join(out, name)):
      shutil.copy(os.path.join(out, name), os.path.join(dest, name))
  for r in records:
    target = flat or os.path.join(dest, "runs", os.path.basename(r["model_dir"]))
    os.makedirs(target, exist_ok=True)
    for name in PUBLISHED_FILES:
      src = getattr(rundir.RunDir(r["model_dir"]), name)
      if not os.path.exists(src):
        continue
      with open(src) as f:
        text = f.read()
      with open(os.path.join(target, os.path.basename(src)), "w") as f:
        f.write(portable(text, r["model_dir"]))


# Flags whose value is a path on the machine that ran: a published flags.txt
# leaves them out (replay with your own --model_dir and data source).
MACHINE_FLAGS = ("--model_dir=", "--idx_dir=", "--data_dir=", "--export_dir=")
# Where run directories live, as published text names it.
RESULTS_PLACEHOLDER = "<results>"
HOME_PLACEHOLDER = "<home>"


def portable(text: str, run_dir: Optional[str] = None) -> str:
  """Published text with no path of the machine that ran it.

  Paths inside ``run_dir`` become relative to it ("best/ckpt-77000"), paths
  in the repository relative to the repository, other run directories under
  ~/adgm-results become ``<results>/...``, anything else under the home
  directory ``<home>/...``; a flags.txt loses its machine-specific flags
  (``MACHINE_FLAGS``) and says so in a comment. ``tests/test_results.py``
  checks every published file for what is left.
  """
  home = os.path.expanduser("~")
  if run_dir:
    run_dir = os.path.abspath(os.path.expanduser(run_dir))
    text = text.replace(run_dir + os.sep, "").replace(run_dir, ".")
  text = text.replace(REPO + os.sep, "")
  for prefix in (home, "~"):
    text = text.replace(prefix + "/adgm-results", RESULTS_PLACEHOLDER)
    text = text.replace(prefix + "/", HOME_PLACEHOLDER + "/")
  lines = text.split("\n")
  kept = [ln for ln in lines if not ln.startswith(MACHINE_FLAGS)]
  if len(kept) < len(lines) and kept and kept[0].startswith("# Written by launch.py"):
    kept.insert(1, "# Published copy: --model_dir and data/export paths of the machine "
                   "that ran are left out; give your own to replay.")
  return "\n".join(kept)


# ----------------------------------------------------------------------------
# One long run, in progress or finished ("Toward the paper's table")
# ----------------------------------------------------------------------------

# Reference points, not results of this package. Test error in percent.


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --config and --out.")
  if not (f.config and f.out):
    raise ConfigError("give --config=FILE.json (the runs) and --out=DIR (where they run); "
                      "a long run's report is python -m experiments.long_run.")
  config = read_config(f.config)
  if f.runs is not None:
    config = only_runs(config, f.runs, f.config)
  if f.seeds:
    config = only_seeds(config, f.seeds, f.config)
  out = os.path.abspath(os.path.expanduser(f.out))
  os.makedirs(out, exist_ok=True)
  if f.report_only:
    records = []
    for run in config["runs"]:
      for seed in run.get("seeds", [0]):
        d = run_dir(out, run["name"], seed)
        if os.path.exists(rundir.RunDir(d).metrics):
          records.append(dict(name=run["name"], seed=seed, model_dir=d,
                              metrics=json.load(open(rundir.RunDir(d).metrics)),
                              history=read_history(d)))
  else:
    records = run_all(config, out, log=lambda m: print(m, flush=True))
  if not records:
    raise ConfigError(f"no finished runs to report in {out}/runs.")
  cli.import_tensorflow()  # the sample figure restores a model: no C++ start-up lines
  summary = report(records, out, config.get("title", os.path.basename(f.config)),
                   config.get("budget", ""))
  if f.publish:
    publish(records, out, f.publish)
  for r in summary["rows"]:
    print(f"{r['name']}: validation error {_row_pm(r, 'validation_error')} %, "
          f"test error {_row_pm(r, 'test_error')} % over {r['seeds']} seed(s)")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("config", None, "JSON list of runs (e.g. experiments/fig4.json)")
  flags.DEFINE_string("out", None, "output directory, outside the work tree "
                      "(e.g. ~/adgm-results/fig4)")
  flags.DEFINE_bool("report_only", False,
                    "only rebuild the summary and figures from finished runs")
  flags.DEFINE_string("publish", None, "copy the summary, figures and each run's "
                      "history.csv, metrics.json and flags.txt here (e.g. docs/results/fig4)")
  flags.DEFINE_string("seeds", None, "run only these of the config's seeds, e.g. 3 or 2,3 "
                      "(the report still covers every finished run)")
  flags.DEFINE_string("runs", None, "run only the config's runs with these names, e.g. "
                      "long,authors (two runners with disjoint --runs can share --out)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
