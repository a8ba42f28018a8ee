"""One long run's report: every evaluation of a run, in progress or finished.

    python -m experiments.long_run --model_dir=MODEL_DIR --publish=docs/results/long

writes to the ``--publish`` directory ``summary.md`` (every evaluation: error,
swap cost and a-diagnostics on the validation split; the run's clock in wall
and CPU hours; RESULTS.md section 6's rule for going on past 200 epochs, and
its verdict once the run has the evaluations the rule reads; with
``--keep_epochs``, the run at each kept length), ``long.png``
(error against epochs beside the paper's figures and the authors' log) and
the run's small files (history.csv, metrics.json, flags.txt; never
checkpoints), and, once ``experiments/long_run.sh`` has written the final
evaluation of best/ (MODEL_DIR/final/), its ``best_eval.json`` and samples.

A study of this repository, not part of the package: its constants (the
authors' log, the continue rule fixed on 2026-12-01) belong to RESULTS.md
section 6. Run from the repository's root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from adgm_tf import cli
from adgm_tf import experiments as runner
from adgm_tf.errors import ConfigError

PROG = "experiments.long_run"


# The authors' training log of their workshop ADGM (q(a|x), q(z|x,y),
# p(x|z,y): a different model and recipe from this package's runs: 10
# samples of a in training, batch 100 + 100, no batch norm), in the ml-lab
# fork of their repository, github.com/ml-lab/auxiliary-deep-generative-models
# at 88094513, output/id_20151209002003_ADGMSSL_784_[500, 500, 500, 500, 500,
# 500]_200/_logging_2015-12-09-002003.log: its per-epoch test error, computed
# with 1 sample of a ("Test -> samples: [1]"), at epochs 1, 10, 50, 100, 200
# and 1000 (its 100-sample evaluation at epoch 1000: 1.19%).
AUTHORS_LOG = ((1, 21.80), (10, 18.03), (50, 15.18), (100, 5.73), (200, 1.61), (1000, 1.20))
AUTHORS_LOG_LABEL = ("authors' log: their workshop ADGM (ml-lab fork),\n10 samples in "
                     "training, test error with 1 sample")
# The published tables (PAPER_TABLE above).
PAPER_LINES = (("ICML 2016 Table 1, ADGM: 0.96% (10 samples, 1000 epochs)", 0.96),
               ("ICML 2016 Table 1, SDGM: 1.32%", 1.32),
               ("NIPS 2015 workshop poster, workshop ADGM: 2.25% (1 sample)", 2.25))


def long_run_rows(history: List[Dict[str, float]]) -> List[Dict[str, Any]]:
  """The evaluated rows of a run's history, with the swap costs in points."""
  def points(value):
    return None if value is None else 100 * value

  rows = []
  for h in map(runner.with_swap_cost, history):  # history rows carry metrics.json's keys
    if h.get("validation_error") is None:
      continue
    row = dict(epoch=h["epoch"], minutes=h.get("wall_time", 0.0) / 60,
               validation_error=points(h["validation_error"]),
               test_error=points(h.get("test_error")),
               validation_swap_cost=points(h.get("validation_aux_swap_cost")),
               test_swap_cost=points(h.get("aux_swap_cost")))
    for k in ("aux_alive_fraction", "aux_mean_spread", "aux_information"):
      row[k] = h.get(f"validation_{k}")
    rows.append(row)
  return rows


def run_clock(history: List[Dict[str, float]]) -> Optional[Dict[str, float]]:
  """The run's wall and CPU time at its newest history row.

  ``wall_time`` in history.csv is the run's clock, carried across launches;
  ``cpu_time`` is the CPU seconds (all threads) of the launch that wrote the row.
  A row starts a new launch where ``cpu_time`` falls, or where it grew by less
  than half of what the run's rows usually grow over as many epochs (the
  median CPU seconds an epoch between rows of growing ``cpu_time``) and is
  itself small enough to be a new launch's (at most 16 cores busy since the
  row before). A new launch that ran one epoch can show more CPU seconds than
  the last row of a launch cut after one epoch, but far fewer than an epoch
  costs on top of it. Growth per second of the clock does not tell launches
  apart: a run sharing its core with others gets a small share of each
  second. The CPU time of the run is the sum of each launch's last value.
  Neither counts what a launch did after its last row (a launch cut
  mid-epoch); a launch that ended before its first row does not show at all.
  """
  timed = [h for h in history
           if h.get("wall_time") is not None and h.get("cpu_time") is not None]
  if not timed:
    return None
  pairs = list(zip(timed, timed[1:]))
  per_epoch = [(b["cpu_time"] - a["cpu_time"]) / (b["epoch"] - a["epoch"]) for a, b in pairs
               if b["epoch"] > a["epoch"] and b["cpu_time"] > a["cpu_time"]]
  usual = float(np.median(per_epoch)) if per_epoch else 0.0   # CPU seconds an epoch
  cpu, launches = 0.0, 1
  for before, after in pairs:
    grew = after["cpu_time"] - before["cpu_time"]
    clock = after["wall_time"] - before["wall_time"]
    if grew < 0 or (grew < 0.5 * usual * (after["epoch"] - before["epoch"])
                    and after["cpu_time"] <= 16 * clock):
      cpu += before["cpu_time"]
      launches += 1
  cpu += timed[-1]["cpu_time"]
  wall = timed[-1]["wall_time"]
  return dict(epoch=timed[-1]["epoch"], wall_hours=wall / 3600, cpu_hours=cpu / 3600,
              launches=launches, cores_busy=cpu / wall if wall > 0 else float("nan"))


# RESULTS.md section 6's rule for going on past 200 epochs, fixed on
# 2026-12-01 before any evaluation after epoch 146 had been seen.
CONTINUE_EARLIER = tuple(range(105, 151, 5))  # 10 evaluations
CONTINUE_LATER = tuple(range(155, 201, 5))    # 10 evaluations
CONTINUE_DROP = 0.15                          # points of validation error


def continue_verdict(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
  """Whether the long run goes on toward 1,000 epochs, by the rule fixed in advance.

  The validation curve "still falls" if the mean validation error of the
  evaluations at epochs 155, 160, ..., 200 is lower than that of the ones at
  105, ..., 150 by ``CONTINUE_DROP`` points or more. The run goes on if it
  falls and, at epoch 200, a is alive (validation alive fraction >= 0.5) and
  in use (validation swap cost > 0). Only the validation split is read.

  Args:
    rows: ``long_run_rows`` of the run (errors and swap costs in points).

  Returns:
    None while any of the 20 evaluations is missing; else the two means, the
    drop (earlier minus later), ``falls``, the a-diagnostics at 200 and
    ``go_on``.
  """
  by_epoch = {int(round(r["epoch"])): r for r in rows
              if abs(r["epoch"] - round(r["epoch"])) < 1e-6}
  if any(e not in by_epoch for e in CONTINUE_EARLIER + CONTINUE_LATER):
    return None
  earlier = float(np.mean([by_epoch[e]["validation_error"] for e in CONTINUE_EARLIER]))
  later = float(np.mean([by_epoch[e]["validation_error"] for e in CONTINUE_LATER]))
  last = by_epoch[CONTINUE_LATER[-1]]
  drop = earlier - later
  falls = drop >= CONTINUE_DROP - 1e-9
  alive, swap = last["aux_alive_fraction"], last["validation_swap_cost"]
  a_ok = alive is not None and alive >= 0.5 and swap is not None and swap > 0
  return dict(earlier_mean=earlier, later_mean=later, drop=drop, falls=falls,
              alive_fraction=alive, swap_cost=swap, go_on=bool(falls and a_ok))


def verdict_markdown(verdict: Dict[str, Any]) -> List[str]:
  """One paragraph stating the continue rule's outcome with its figures."""
  early, late = CONTINUE_EARLIER, CONTINUE_LATER
  alive = "-" if verdict["alive_fraction"] is None else f"{verdict['alive_fraction']:.2f}"
  swap = "-" if verdict["swap_cost"] is None else f"{verdict['swap_cost']:+.2f}"
  end = ("**the run goes on toward 1,000 epochs** (same command with --epochs=1000)"
         if verdict["go_on"] else "**the run ends at 200 epochs**")
  return [f"Going on past 200 epochs (the rule fixed in advance, RESULTS.md section 6): "
          f"mean validation error {verdict['earlier_mean']:.2f}% at epochs "
          f"{early[0]}-{early[-1]} and {verdict['later_mean']:.2f}% at epochs "
          f"{late[0]}-{late[-1]} "
          f"(10 evaluations each), a drop of {verdict['drop']:+.2f} points against the "
          f"{CONTINUE_DROP:.2f} required: the curve "
          + ("still falls" if verdict["falls"] else "no longer falls")
          + f"; at epoch {late[-1]} alive fraction {alive}, swap cost {swap} points "
          f"(validation); so {end}.", ""]


def _pct(e: Dict[str, Any], key: str) -> str:
  """An evaluation's error ``key`` in %, or "-"."""
  return "-" if e.get(key) is None else f"{100 * e[key]:.2f}%"


def _swap(e: Dict[str, Any], prefix: str) -> Optional[str]:
  """An evaluation's swap cost (``with_swap_cost``'s) in signed points, or None."""
  cost = e.get(f"{prefix}aux_swap_cost")
  return None if cost is None else f"{100 * cost:+.2f}"


def _alive(e: Dict[str, Any]) -> str:
  alive = e.get("validation_aux_alive_fraction")
  return "-" if alive is None else format(alive, ".2f")


def _read_json(path: str, fix: str) -> Tuple[Dict[str, Any], str]:
  """``(numbers, text)`` of an evaluation's JSON; a damaged one is one line ending in ``fix``."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text), text
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path} is not JSON ({e}); {fix}") from None


def final_markdown(final: Dict[str, Any]) -> List[str]:
  """The final evaluation of best/ (``python -m adgm_tf.evaluate --checkpoint=best``)."""
  final = runner.with_swap_cost(final)

  def pct(key):
    return _pct(final, key)

  def swap(prefix):
    cost = _swap(final, prefix)
    return "-" if cost is None else f"{cost} points"
  lines = [f"**The checkpoint chosen by validation error** (best/, epoch {final['epoch']:g}), "
           f"evaluated at the end with {final['eval_samples']} samples of a "
           f"(`best_eval.json` beside this file):", "",
           "| validation error | test error | swap cost, validation | swap cost, test "
           "| alive fraction (val.) | test log-likelihood |",
           "|---|---|---|---|---|---|"]
  ll = final.get("test_log_likelihood")
  lines.append(
      f"| {pct('validation_error')} | {pct('test_error')} | {swap('validation_')} "
      f"| {swap('')} | {_alive(final)} | "
      + ("-" if ll is None else
         f"{ll:.2f} nats (K = {final['ll_samples']}, {final['ll_examples']} images)") + " |")
  return lines + [""]


def kept_markdown(kept: List[Tuple[int, Dict[str, Any]]]) -> List[str]:
  """The run at shorter lengths: each ``kept/epoch-<E>/best`` (what a run
  stopped at epoch E would have chosen by validation error), evaluated by
  experiments/long_run.sh with the final settings (``kept-epoch-<E>.json``)."""
  lines = ["**At each kept length** (`--keep_epochs`): the checkpoint a run stopped at "
           "epoch E would have chosen by validation error, evaluated at the end like "
           "best/ (`kept-epoch-<E>.json` beside this file; no log-likelihood):", "",
           "| stopped at epoch | chosen epoch | samples of a | validation error | test error "
           "| swap cost val. (points) | swap cost test (points) | alive (val.) |",
           "|---|---|---|---|---|---|---|---|"]
  for epoch, e in kept:
    e = runner.with_swap_cost(e)
    lines.append(f"| {epoch} | {e['epoch']:g} | {e['eval_samples']} "
                 f"| {_pct(e, 'validation_error')} | {_pct(e, 'test_error')} "
                 f"| {_swap(e, 'validation_') or '-'} | {_swap(e, '') or '-'} "
                 f"| {_alive(e)} |")
  return lines + [""]


def read_kept(final_dir: str) -> List[Tuple[int, Dict[str, Any], str]]:
  """``(E, numbers, text)`` of each ``kept-epoch-<E>.json`` in ``final_dir``, by E."""
  found = []
  for name in os.listdir(final_dir) if os.path.isdir(final_dir) else []:
    match = re.fullmatch(r"kept-epoch-(\d+)\.json", name)
    if match:
      numbers, text = _read_json(os.path.join(final_dir, name), (
          "move it away and run experiments/long_run.sh again (it redoes only that "
          "evaluation)."))
      found.append((int(match[1]), numbers, text))
  return sorted(found, key=lambda k: k[0])


def long_run_markdown(rows: List[Dict[str, Any]], title: str,
                      clock: Optional[Dict[str, float]] = None,
                      final: Optional[Dict[str, Any]] = None,
                      kept: Optional[List[Tuple[int, Dict[str, Any]]]] = None) -> str:
  def f(v, fmt):
    return "-" if v is None else format(v, fmt)
  best = min(rows, key=lambda r: r["validation_error"]) if rows else None
  lines = [f"# {title}", ""]
  if final:
    lines += final_markdown(final)
  if kept:
    lines += kept_markdown(kept)
  verdict = continue_verdict(rows)
  if verdict:
    lines += verdict_markdown(verdict)
  if clock:
    lines += [f"Time at epoch {clock['epoch']:g}: **{clock['wall_hours']:.2f} h of wall "
              f"time** on the run's clock (training and evaluations, over "
              f"{clock['launches']} launch(es); what a cut launch did after its last "
              f"row is not counted) and **{clock['cpu_hours']:.2f} h of CPU time** "
              f"(all threads, summed over the launches), {clock['cores_busy']:.2f} "
              f"cores busy on average.", ""]
  lines += ["Every evaluation of the run (10 samples of a unless its flags say otherwise). "
           "Errors in %; swap cost = error with another image's a minus the error, in "
           "points; a-diagnostics on the validation split. The best row by validation "
           "error is marked *; the test column is reported, never used to choose.", "",
           "| epoch | wall min | validation | test | alive | spread | swap cost val. "
           "| swap cost test | I(y;a\\|x) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    mark = " *" if r is best else ""
    lines.append(
        f"| {r['epoch']:g}{mark} | {r['minutes']:.0f} | {r['validation_error']:.2f} | "
        f"{f(r['test_error'], '.2f')} | {f(r['aux_alive_fraction'], '.2f')} | "
        f"{f(r['aux_mean_spread'], '.3f')} | {f(r['validation_swap_cost'], '+.2f')} | "
        f"{f(r['test_swap_cost'], '+.2f')} | {f(r['aux_information'], '.3f')} |")
  return "\n".join(lines) + "\n"


def plot_long_run(rows: List[Dict[str, Any]], path: str, title: str,
                  final: Optional[Dict[str, Any]] = None) -> None:
  """Error against epochs (log x) with the published references; a over the run.

  ``final``: best/'s final evaluation (best_eval.json), marked on the curve
  with its test error and sample count.
  """
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  plt = runner.pyplot()
  fig, all_axes = plt.subplots(1, 4, figsize=(21, 5), dpi=100,
                               gridspec_kw=dict(width_ratios=[1.25, 0.9, 1, 1]))
  legend_slot = all_axes[1]
  legend_slot.axis("off")
  axes = [all_axes[0], all_axes[2], all_axes[3]]
  ax = axes[0]
  e = [r["epoch"] for r in rows]
  ax.plot(e, [r["validation_error"] for r in rows], "C0.-", label="validation (this run)")
  test = [(r["epoch"], r["test_error"]) for r in rows if r["test_error"] is not None]
  if test:
    ax.plot(*zip(*test), "C1.-", label="test (this run)")
  best = min(rows, key=lambda r: r["validation_error"])
  ax.axvline(best["epoch"], color="C0", ls=":", lw=1,
             label=f"best/ by validation: epoch {best['epoch']:g}")
  marks = []
  if final and final.get("test_error") is not None:
    ax.plot([final.get("epoch", best["epoch"])], [100 * final["test_error"]], "r*", ms=12,
            label=f"best/'s final test error: {100 * final['test_error']:.2f}% "
                  f"({final.get('eval_samples', '?')} samples of a)")
    marks.append(100 * final["test_error"])
  ax.plot(*zip(*AUTHORS_LOG), "kD--", ms=5, lw=0.8, label=AUTHORS_LOG_LABEL)
  for (label, value), style in zip(PAPER_LINES, (":", "-.", "--")):
    ax.axhline(value, color="gray", ls=style, lw=1, label=label)
  ax.set_xscale("log")
  ax.set_xlim(0.8, 1200)
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
  values = ([r["validation_error"] for r in rows] + [t for _, t in test] + marks
            + [v for _, v in PAPER_LINES])
  runner.percent_axis(ax, min(values), max(values + [v for _, v in AUTHORS_LOG]))
  ax.set_xlabel("epoch (log scale)")
  ax.set_ylabel("error (%)")
  ax.set_title("error against epochs (10 samples of a per evaluation)", fontsize=10)
  # The legend in its own slot beside the panel, so that it covers no curve.
  legend_slot.legend(*ax.get_legend_handles_labels(), loc="center left", fontsize=7,
                     frameon=False)
  ax = axes[1]
  ax.plot(e, [r["aux_alive_fraction"] for r in rows], "C2.-", label="alive fraction of q(a|x)")
  ax.axhline(0.5, color="C2", ls="--", lw=0.8, label="0.5 (the issue's floor)")
  ax.set_ylim(0, 1.05)
  ax.set_xlabel("epoch")
  ax.set_ylabel("alive fraction")
  twin = ax.twinx()
  spread = [r["aux_mean_spread"] for r in rows]
  twin.plot(e, spread, "C3.-", label="spread of q(a|x)'s mean")
  twin.set_ylim(0, 1.1 * max([s for s in spread if s is not None] or [1.0]))
  twin.set_ylabel("std over images of q(a|x)'s mean (axis from 0)")
  handles, labels = ax.get_legend_handles_labels()
  twin_handles, twin_labels = twin.get_legend_handles_labels()
  ax.legend(handles + twin_handles, labels + twin_labels, loc="lower right", fontsize=7)
  ax.set_title("is a alive? (validation split)")
  ax.grid(True, alpha=0.3)
  ax = axes[2]
  for key, style, label in (("validation_swap_cost", "C0.-", "validation"),
                            ("test_swap_cost", "C1.-", "test")):
    pts = [(r["epoch"], r[key]) for r in rows if r[key] is not None]
    if pts:
      ax.plot(*zip(*pts), style, label=f"swap cost, {label} (points)")
  ax.axhline(0.0, color="gray", lw=0.8)
  ax.set_xlabel("epoch")
  ax.set_ylabel("error with another image's a minus error (points)")
  ax.set_title("is a used?")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def long_run_title(model_dir: str, rows: List[Dict[str, Any]]) -> str:
  """What a long-run figure shows: model, seed, samples, budget (from flags.txt)."""
  saved = runner.read_flags(model_dir) or {}
  last = rows[-1]["epoch"]
  return (f"{os.path.basename(os.path.normpath(model_dir))}: {saved.get('model', '?')} on "
          f"MNIST, {saved.get('num_labels', '?')} labels, 1 seed (--seed="
          f"{saved.get('seed', '?')}), {saved.get('mc_samples', '?')} Monte Carlo "
          f"sample(s) in training, {last:g} of {saved.get('epochs', '?')} epochs")


def report_long_run(model_dir: str, dest: str, title: str) -> List[Dict[str, Any]]:
  """summary.md, long.png and the run's small files in ``dest`` (no checkpoints)."""
  model_dir = os.path.abspath(os.path.expanduser(model_dir))
  if not os.path.exists(os.path.join(model_dir, "history.csv")):
    raise ConfigError(f"{model_dir} has no history.csv: not a run directory, or the "
                      f"run has not finished its first epoch.")
  history = runner.read_history(model_dir)
  rows = long_run_rows(history)
  if not rows:
    raise ConfigError(f"{model_dir}/history.csv has no evaluation yet (see --eval_every).")
  final = None
  final_dir = os.path.join(model_dir, "final")  # experiments/long_run.sh writes it
  if (not os.path.exists(os.path.join(final_dir, "best_eval.json"))
      and os.path.exists(os.path.join(model_dir, "best_eval.json"))):
    final_dir = model_dir  # a published copy: best_eval.json beside history.csv
  if os.path.exists(os.path.join(final_dir, "best_eval.json")):
    final, text = _read_json(os.path.join(final_dir, "best_eval.json"), (
        f"redo the final evaluation: move {final_dir} away and run "
        f"experiments/long_run.sh again."))
  kept = read_kept(final_dir)
  os.makedirs(dest, exist_ok=True)
  with open(os.path.join(dest, "summary.md"), "w") as f:
    f.write(long_run_markdown(rows, title, run_clock(history), final,
                              [(epoch, numbers) for epoch, numbers, _ in kept]))
  plot_long_run(rows, os.path.join(dest, "long.png"), long_run_title(model_dir, rows),
                final)
  if os.path.abspath(dest) != model_dir:
    runner.publish([dict(model_dir=model_dir)], dest, dest, flat=os.path.abspath(dest))
  if final is not None:
    if os.path.abspath(dest) != final_dir:
      with open(os.path.join(dest, "best_eval.json"), "w") as f:
        f.write(runner.portable(text, model_dir))
    if (os.path.exists(os.path.join(final_dir, "samples.png"))
        and os.path.abspath(dest) != final_dir):
      shutil.copy(os.path.join(final_dir, "samples.png"), os.path.join(dest, "samples.png"))
  if os.path.abspath(dest) != final_dir:
    for epoch, _, text in kept:
      with open(os.path.join(dest, f"kept-epoch-{epoch}.json"), "w") as f:
        f.write(runner.portable(text, model_dir))
  return rows


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --model_dir and "
                      f"--publish.")
  model_dir, dest = flags.FLAGS.model_dir, flags.FLAGS.publish
  if not model_dir or not dest:
    raise ConfigError("give --model_dir=MODEL_DIR (the run) and --publish=DIR (e.g. "
                      "docs/results/long).")
  rows = report_long_run(model_dir, dest,
                         f"{os.path.basename(os.path.normpath(model_dir))}: "
                         f"every evaluation of the run")
  last = rows[-1]
  print(f"{len(rows)} evaluations, last at epoch {last['epoch']:g}: validation error "
        f"{last['validation_error']:.2f} %; written to {dest}")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_dir", None, "the run directory (in progress or finished), or "
                      "a published copy of one")
  flags.DEFINE_string("publish", None, "where to write the report (e.g. docs/results/long)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
