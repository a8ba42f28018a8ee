"""The paper's comparisons and figures from one command.

  python -m adgm_tf.experiments --config=experiments/equal_cost.json --out=results/equal_cost

runs a list of (flagfile, seed) runs one after another, each a normal
``launch.py`` run in its own model_dir under ``<out>/runs/``, and writes to
``<out>``:

* ``summary.md`` and ``summary.json``: one row per model with test error mean
  +- std over seeds, number of seeds, epochs, wall time and the test
  log-likelihood estimate, next to the paper's Table 1 (labeled as such);
* ``convergence.png``: test error against epoch and against wall time, one
  line per run (Fig. 4 of Maaløe et al. 2016);
* ``active_units.png``: per-unit KL of z and of a, sorted, from each model's
  final checkpoint (Fig. 3);
* ``samples.png``: 10 samples per class from the first model (Fig. 5).

Starting it again skips the runs that finished (their ``metrics.json``
exists) and resumes the one that was interrupted (launch.py resumes from its
latest checkpoint).

The config is JSON::

  {"runs": [{"name": "adgm", "flagfile": "mnist100_cpu.flags",
             "flags": ["--time_budget_minutes=20"], "seeds": [0]}, ...],
   "common_flags": ["--data_dir=..."]}

A run's seed sets both ``--seed`` and ``--label_seed``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Maaløe et al. (2016), Table 1, MNIST with 100 labels: test error in percent,
# mean +- std (the paper's figures, not measured here).
PAPER_TABLE = [
    ("M1+M2 (Kingma et al. 2014)", 3.33, 0.14),
    ("ADGM, 1 Monte Carlo sample", 2.25, 0.08),
    ("ADGM, 10 Monte Carlo samples", 0.96, 0.02),
]


def run_dir(out: str, name: str, seed: int) -> str:
  return os.path.join(out, "runs", f"{name}-seed{seed}")


def run_all(config: Dict[str, Any], out: str, python: str = sys.executable,
            log=print) -> List[Dict[str, Any]]:
  """Runs (or resumes, or skips) every (run, seed); returns their records."""
  records = []
  for run in config["runs"]:
    for seed in run.get("seeds", [0]):
      model_dir = run_dir(out, run["name"], seed)
      metrics_path = os.path.join(model_dir, "metrics.json")
      if os.path.exists(metrics_path):
        log(f"[experiments] {run['name']} seed {seed}: finished, skipped")
      else:
        resuming = os.path.isdir(os.path.join(model_dir, "checkpoints"))
        log(f"[experiments] {run['name']} seed {seed}: "
            f"{'resuming' if resuming else 'starting'} in {model_dir}")
        os.makedirs(model_dir, exist_ok=True)
        args = ([python, os.path.join(REPO, "launch.py"), f"--flagfile={run['flagfile']}"]
                + list(config.get("common_flags", [])) + list(run.get("flags", []))
                + [f"--seed={seed}", f"--label_seed={seed}", f"--model_dir={model_dir}",
                   "--progress=epoch"])
        with open(os.path.join(model_dir, "launch.log"), "a") as logf:
          logf.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n")
          logf.flush()
          proc = subprocess.run(args, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
          raise RuntimeError(f"{run['name']} seed {seed} failed (exit {proc.returncode}); "
                             f"see {model_dir}/launch.log")
      with open(metrics_path) as f:
        metrics = json.load(f)
      records.append(dict(name=run["name"], seed=seed, model_dir=model_dir,
                          metrics=metrics, history=read_history(model_dir)))
  return records


def read_history(model_dir: str) -> List[Dict[str, float]]:
  path = os.path.join(model_dir, "history.csv")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = list(csv.DictReader(f))
  return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Any]:
  """One row per run name: mean and sample std over seeds of each run's metrics."""
  rows = []
  for name in dict.fromkeys(r["name"] for r in records):
    group = [r["metrics"] for r in records if r["name"] == name]

    def stats(key, scale=1.0, group=group):
      values = [g[key] * scale for g in group if g.get(key) is not None]
      if not values:
        return None, None
      std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
      return float(np.mean(values)), std

    err, err_std = stats("test_error", 100.0)
    ll, ll_std = stats("test_log_likelihood")
    rows.append(dict(
        name=name, model=group[0].get("model"), seeds=len(group),
        test_error_percent=err, test_error_std=err_std,
        test_log_likelihood=ll, test_log_likelihood_std=ll_std,
        epochs=stats("epochs")[0], wall_time_minutes=stats("wall_time", 1 / 60)[0],
        eval_samples=group[0].get("eval_samples"),
        ll_samples=group[0].get("ll_samples"), ll_examples=group[0].get("ll_examples"),
        stopped_by_time_budget=all(g.get("stopped_by_time_budget") for g in group)))
  return dict(rows=rows, paper_table=[
      dict(name=n, test_error_percent=m, test_error_std=s) for n, m, s in PAPER_TABLE])


def _pm(mean, std, digits=2):
  if mean is None:
    return "-"
  return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summary: Dict[str, Any], title: str) -> str:
  lines = [f"# {title}", "",
           "Measured here (each run's own metrics.json; mean ± sample std over seeds):", "",
           "| run | model | seeds | test error (%) | epochs | wall time (min) | "
           "test log-likelihood (nats) |",
           "|---|---|---|---|---|---|---|"]
  for r in summary["rows"]:
    lines.append(
        f"| {r['name']} | {r['model']} | {r['seeds']} | "
        f"{_pm(r['test_error_percent'], r['test_error_std'])} | "
        f"{'-' if r['epochs'] is None else format(r['epochs'], '.1f')} | "
        f"{'-' if r['wall_time_minutes'] is None else format(r['wall_time_minutes'], '.1f')} | "
        f"{_pm(r['test_log_likelihood'], r['test_log_likelihood_std'])} |")
  lines += ["", "For comparison, **the paper's** Table 1 (Maaløe et al. 2016, MNIST, 100 "
            "labels, 1000 epochs on a GPU; not measured here):", "",
            "| model (paper) | test error (%) |", "|---|---|"]
  for r in summary["paper_table"]:
    lines.append(f"| {r['name']} | {_pm(r['test_error_percent'], r['test_error_std'])} |")
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_convergence(records, path: str) -> None:
  plt = _plt()
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
  names = list(dict.fromkeys(r["name"] for r in records))
  colors = {n: f"C{i}" for i, n in enumerate(names)}
  lo, hi = math.inf, -math.inf
  for r in records:
    pts = [(h["epoch"], h["wall_time"] / 60, 100 * h["test_error"])
           for h in r["history"] if "test_error" in h]
    if not pts:
      continue
    e, w, err = zip(*pts)
    lo, hi = min(lo, min(err)), max(hi, max(err))
    label = f"{r['name']} (seed {r['seed']})"
    axes[0].plot(e, err, color=colors[r["name"]], label=label, lw=1.2)
    axes[1].plot(w, err, color=colors[r["name"]], label=label, lw=1.2)
  for ax, xlabel in zip(axes, ("epoch", "wall time (minutes)")):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error (%)")
    # Log scale with plain percentages; ticks at 1, 2, ..., 9 times each power
    # of ten when the curves span less than a decade, else at 1, 2 and 5.
    ax.set_yscale("log")
    subs = (tuple(float(k) for k in range(1, 10)) if hi < 10 * lo
            else (1.0, 2.0, 5.0))
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
  axes[0].legend(fontsize=8)
  axes[0].set_title("test error against epochs")
  axes[1].set_title("test error against wall time")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_active_units(records, path: str) -> None:
  plt = _plt()
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
                label=f"{r['name']} ({sum(k > 0.01 for k in kl)} active)")
  for ax, title in zip(axes, ("z", "a")):
    ax.axhline(0.01, color="gray", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("unit (sorted)")
    ax.set_ylabel("KL(q || p) per unit (nats)")
    ax.set_title(f"per-unit KL of {title} (test set, final checkpoint)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_samples(model_dir: str, path: str) -> None:
  """10 samples per class (rows) from a run's final checkpoint."""
  from adgm_tf import evaluation, train  # pylint: disable=g-import-not-at-top
  _, model, _ = train.load_run(model_dir)
  grid = evaluation.image_grid(evaluation.class_conditional_samples(model, 10, seed=0))
  plt = _plt()
  fig = plt.figure(figsize=(5, 5), dpi=100)
  ax = fig.add_axes([0, 0, 1, 1])
  ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
  ax.axis("off")
  fig.savefig(path)
  plt.close(fig)


def report(records, out: str, title: str) -> Dict[str, Any]:
  summary = summarize(records)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(summary_markdown(summary, title))
  plot_convergence(records, os.path.join(out, "convergence.png"))
  plot_active_units(records, os.path.join(out, "active_units.png"))
  plot_samples(records[0]["model_dir"], os.path.join(out, "samples.png"))
  return summary


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="JSON list of runs")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--report_only", action="store_true",
                      help="only rebuild the summary and figures from finished runs")
  args = parser.parse_args(argv)
  with open(args.config) as f:
    config = json.load(f)
  os.makedirs(args.out, exist_ok=True)
  if args.report_only:
    records = []
    for run in config["runs"]:
      for seed in run.get("seeds", [0]):
        d = run_dir(args.out, run["name"], seed)
        if os.path.exists(os.path.join(d, "metrics.json")):
          records.append(dict(name=run["name"], seed=seed, model_dir=d,
                              metrics=json.load(open(os.path.join(d, "metrics.json"))),
                              history=read_history(d)))
  else:
    records = run_all(config, args.out, log=lambda m: print(m, flush=True))
  if not records:
    raise SystemExit("no finished runs to report")
  summary = report(records, args.out, config.get("title", os.path.basename(args.config)))
  for r in summary["rows"]:
    print(f"{r['name']}: test error {_pm(r['test_error_percent'], r['test_error_std'])} % "
          f"over {r['seeds']} seed(s)")


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  main()
