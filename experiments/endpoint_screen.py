r"""RESULTS.md section 7's rule, applied by code: which long recipe goes on.

    python -m experiments.endpoint_screen --out=$HOME/adgm-results/endpoint_screen \
        [--config=experiments/endpoint_screen.json] [--write=docs/results/endpoint_screen/screen.md]

reads every run of the screen (``<out>/runs/<name>-seed<N>/``: history.csv,
flags.txt, metrics.json; a published copy works too) and prints, per
candidate, what the rule reads, in the rule's order:

1. **Measure**: the validation error (10 samples of a) averaged over the
   evaluations at epochs 40, 45 and 50 (:data:`MEASURE_EPOCHS`).
2. **a alive and used**: q(a|x)'s alive fraction at least 0.5 at every
   evaluation, and the validation swap cost (error with another image's a
   minus error) at least 0.2 points at epoch 50; a candidate that fails is
   reported and not chosen.
3. **Equal epochs decide**: the two best candidates by (1) that pass (2) go on
   to seeds 2 and 3; once they have, the lower 3-seed mean of (1) wins.
4. **Equal CPU-hours**, reported beside it, never used to choose: for each
   candidate with more Monte Carlo samples than the cheapest, its validation
   error at the evaluation nearest below epoch 50 x c1 / cS, where c1 and cS
   are the median CPU seconds per epoch of the 1-sample candidates and of the
   candidates with its sample count (seed 1 only). The config's
   ``"rule4_c1_runs"`` names the 1-sample candidates c1 comes from when not
   all of them ran alike (RESULTS.md section 7: only the single-thread one).
5. The slope of the last 20 epochs (error at 50 minus error at 30), so that a
   late reversal can be seen, not used.

A candidate that has not reached epoch 50 is listed as running. A study of
this repository (RESULTS.md section 7), not part of the package.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any, Dict, List, Optional

from adgm_tf import cli
from adgm_tf import experiments as runner
from adgm_tf import rundir
from adgm_tf.errors import ConfigError

PROG = "experiments.endpoint_screen"
MEASURE_EPOCHS = (40, 45, 50)
ALIVE_FLOOR = 0.5      # fraction of q(a|x)'s units
SWAP_FLOOR = 0.2       # points of validation error, at epoch 50
SLOPE_FROM = 30        # the last 20 epochs: 30 -> 50
FINAL_EPOCH = 50


def cpu_seconds_per_epoch(history: List[Dict[str, float]]) -> Optional[float]:
  """The median CPU seconds of one epoch, over consecutive rows one epoch
  apart within one launch (``cpu_time`` restarts with each launch)."""
  per_epoch = []
  for before, after in zip(history, history[1:]):
    if None in (before.get("cpu_time"), after.get("cpu_time")):
      continue
    grew = after["cpu_time"] - before["cpu_time"]
    if after["epoch"] - before["epoch"] == 1 and grew > 0:
      per_epoch.append(grew)
  return statistics.median(per_epoch) if per_epoch else None


def candidate(name: str, seed: int, model_dir: str,
              history: List[Dict[str, float]]) -> Dict[str, Any]:
  """What the rule reads of one run, from its ``history`` (errors and swap
  costs in points)."""
  evaluated = {h["epoch"]: h for h in history if h.get("validation_error") is not None}
  row: Dict[str, Any] = dict(name=name, seed=seed,
                             samples=int((runner.read_flags(model_dir) or {}).get("mc_samples", 1)),
                             last_epoch=max(evaluated, default=0.0),
                             cpu_per_epoch=cpu_seconds_per_epoch(history))
  if not all(e in evaluated for e in MEASURE_EPOCHS):
    row["status"] = "running"
    return row
  errors = [100 * evaluated[e]["validation_error"] for e in MEASURE_EPOCHS]
  last = evaluated[FINAL_EPOCH]
  alive = [h.get("validation_aux_alive_fraction") for h in evaluated.values()]
  swap = (None if last.get("validation_aux_swap_error") is None
          else 100 * (last["validation_aux_swap_error"] - last["validation_error"]))
  row.update(errors=errors, measure=statistics.mean(errors),
             min_alive=None if None in alive else min(alive), swap=swap,
             slope=(100 * (last["validation_error"] - evaluated[SLOPE_FROM]["validation_error"])
                    if SLOPE_FROM in evaluated else None),
             evaluations=sorted(evaluated))
  failures = []
  if row["min_alive"] is None or row["min_alive"] < ALIVE_FLOOR:
    failures.append(f"q(a|x) alive {row['min_alive']} < {ALIVE_FLOOR} at an evaluation")
  if swap is None or swap < SWAP_FLOOR:
    failures.append(f"swap cost {swap} < {SWAP_FLOOR} points at epoch {FINAL_EPOCH}")
  row["status"] = "; ".join(failures) if failures else "passes"
  return row


def equal_cpu_error(row: Dict[str, Any], history: List[Dict[str, float]],
                    c1: Optional[float], cs: Optional[float]) -> Optional[Dict[str, float]]:
  """Rule 4: the error at the evaluation nearest below epoch 50 x c1 / cS."""
  if row["samples"] == 1 or not c1 or not cs:
    return None
  target = FINAL_EPOCH * c1 / cs
  below = [h for h in history
           if h.get("validation_error") is not None and h["epoch"] <= target]
  if not below:
    return dict(target_epoch=target, epoch=None, error=None)
  h = max(below, key=lambda h: h["epoch"])
  return dict(target_epoch=target, epoch=h["epoch"], error=100 * h["validation_error"])


def screen(config: Dict[str, Any], out: str) -> Dict[str, Any]:
  """Every candidate's row, the rule-4 figures and the verdict so far."""
  rows, histories = [], {}
  for run in config["runs"]:
    for seed in run.get("seeds", [1]):
      d = runner.run_dir(out, run["name"], seed)
      if not os.path.exists(rundir.RunDir(d).history):
        rows.append(dict(name=run["name"], seed=seed, status="not started"))
        continue
      histories[(run["name"], seed)] = runner.read_history(d)
      rows.append(candidate(run["name"], seed, d, histories[(run["name"], seed)]))
  c1_runs = config.get("rule4_c1_runs")
  names = [r["name"] for r in config["runs"]]
  if c1_runs is not None and (not c1_runs or set(c1_runs) - set(names)):
    raise ConfigError(f"rule4_c1_runs {c1_runs} must name runs of the config "
                      f"(its runs: {', '.join(names)}).")
  costs = {}   # S -> median CPU seconds per epoch of the seed-1 candidates with S samples
  for samples in sorted({r["samples"] for r in rows if "samples" in r}):
    per = [r["cpu_per_epoch"] for r in rows
           if r.get("samples") == samples and r["seed"] == 1 and r.get("cpu_per_epoch")
           and (samples != 1 or c1_runs is None or r["name"] in c1_runs)]
    if per:
      costs[samples] = statistics.median(per)
  c1 = costs.get(1)
  for r in rows:
    if r.get("status") not in (None, "not started", "running"):
      r["equal_cpu"] = equal_cpu_error(r, histories[(r["name"], r["seed"])], c1,
                                       costs.get(r["samples"]))
  return dict(rows=rows, c1=c1, costs=costs, c1_runs=c1_runs, verdict=verdict(rows),
              seed_means=seed_means(config, rows))


def seed_means(config: Dict[str, Any], rows: List[Dict[str, Any]]) -> Dict[str, Any]:
  """For each candidate given more than one seed: the mean of (1) over its
  finished seeds so far (what rule 3 will read once all three are in)."""
  means = {}
  for run in config["runs"]:
    if len(run.get("seeds", [1])) < 2:
      continue
    done = [r for r in rows if r["name"] == run["name"] and "measure" in r]
    if done:
      measures = [r["measure"] for r in done]
      means[run["name"]] = dict(
          seeds=[r["seed"] for r in done], of=list(run["seeds"]), measures=measures,
          mean=statistics.mean(measures),
          sd=statistics.stdev(measures) if len(measures) > 1 else None,
          failing=[r["seed"] for r in done if r["status"] != "passes"])
  return means


def verdict(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Rule 3 over the seed-1 rows, then over seeds 1-3 of the two it picks."""
  first = [r for r in rows if r.get("seed") == 1]
  pending = [r["name"] for r in first if r["status"] in ("not started", "running")]
  passing = sorted((r for r in first if r["status"] == "passes"), key=lambda r: r["measure"])
  if pending:
    return dict(stage="screening", pending=pending,
                leading=[r["name"] for r in passing[:2]])
  two = [r["name"] for r in passing[:2]]
  means = {}
  for name in two:
    seeds = [r for r in rows if r["name"] == name and r["status"] == "passes"]
    if len({r["seed"] for r in seeds} & {1, 2, 3}) < 3:
      return dict(stage="seeds 2 and 3", chosen_two=two)
    means[name] = statistics.mean(r["measure"] for r in seeds if r["seed"] in (1, 2, 3))
  return dict(stage="decided", chosen_two=two, means=means,
              winner=min(means, key=means.get) if means else None)


def _cell(value, fmt):
  return "-" if value is None else format(value, fmt)


def markdown(result: Dict[str, Any]) -> str:
  lines = ["| candidate | seed | S | validation error at 40/45/50 (%) | mean (rule 1) | "
           "min alive | swap cost at 50 (points) | rule 2 | last 20 epochs (points) | "
           "CPU s/epoch | at equal CPU (rule 4) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    if r["status"] in ("not started", "running"):
      lines.append(f"| {r['name']} | {r['seed']} | {r.get('samples', '-')} | "
                   f"{r['status']}" + (f" (epoch {r['last_epoch']:g})"
                                       if r.get("last_epoch") else "")
                   + " | | | | | | | |")
      continue
    eq = r.get("equal_cpu")
    eq_text = ("-" if not eq else
               f"{_cell(eq['error'], '.2f')}% at epoch {_cell(eq['epoch'], 'g')} "
               f"(50 x c1/cS = {eq['target_epoch']:.1f})")
    lines.append(
        f"| {r['name']} | {r['seed']} | {r['samples']} | "
        f"{' / '.join(f'{e:.2f}' for e in r['errors'])} | {r['measure']:.2f} | "
        f"{_cell(r['min_alive'], '.2f')} | {_cell(r['swap'], '+.2f')} | {r['status']} | "
        f"{_cell(r['slope'], '+.2f')} | {_cell(r['cpu_per_epoch'], '.0f')} | {eq_text} |")
  if result.get("costs"):
    lines.append("")
    lines.append("Rule 4's costs (median CPU seconds per epoch, seed-1 candidates): " + ", ".join(
        f"S = {k}: {c:.0f}" + (f" (from {', '.join(result['c1_runs'])})"
                               if k == 1 and result.get("c1_runs") else "")
        for k, c in sorted(result["costs"].items())) + ".")
  if result.get("seed_means"):
    lines.append("")
    lines.append("Means of (1) over the finished seeds (rule 3 reads seeds 1-3 of the two it "
                 "picks): " + "; ".join(
                     f"{name} {m['mean']:.2f}% (seed{'s' if len(m['seeds']) > 1 else ''} "
                     f"{', '.join(map(str, m['seeds']))} of {', '.join(map(str, m['of']))}"
                     + (f", sd {m['sd']:.2f}" if m["sd"] is not None else "")
                     + (f"; seed {', '.join(map(str, m['failing']))} fails rule 2"
                        if m["failing"] else "") + ")"
                     for name, m in result["seed_means"].items()) + ".")
  v = result["verdict"]
  if v["stage"] == "screening":
    tail = (f"Screening: {', '.join(v['pending'])} still to run or running; leading so "
            f"far: {', '.join(v['leading']) or 'none'}.")
  elif v["stage"] == "seeds 2 and 3":
    tail = f"Rule 3: {' and '.join(v['chosen_two'])} go on to seeds 2 and 3."
  else:
    tail = (f"Rule 3 decided: {v['winner']} (3-seed means: "
            + ", ".join(f"{k} {m:.2f}%" for k, m in v["means"].items()) + ").")
  return "\n".join(lines) + "\n\n" + tail + "\n"


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --out.")
  if not f.out:
    raise ConfigError("give --out=DIR, the screen's output directory (its runs/ are read).")
  if not os.path.isdir(os.path.join(os.path.expanduser(f.out), "runs")):
    raise ConfigError(f"--out={f.out} has no runs/ directory: not the screen's output.")
  result = screen(runner.read_config(f.config), os.path.expanduser(f.out))
  text = markdown(result)
  print(text, end="")
  if f.write:
    with open(f.write, "w") as out:
      out.write(runner.portable(text))
    with open(os.path.splitext(f.write)[0] + ".json", "w") as out:
      out.write(runner.portable(json.dumps(result, indent=2, default=float)) + "\n")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("out", None, "the screen's output directory (holds runs/)")
  flags.DEFINE_string("config", "experiments/endpoint_screen.json", "the screen's config")
  flags.DEFINE_string("write", None, "also write the table here (.md) and the numbers "
                      "beside it (.json)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
