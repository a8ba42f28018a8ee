r"""RESULTS.md section 9's rule, applied by code: does bfloat16 train as float32 does?

    python -m experiments.precision_check --out=$HOME/adgm-results/precision_check \
        [--write=docs/results/precision_check/verdict.md]

reads the six runs of ``experiments/precision_check.json`` (``<out>/runs/{fp32,bf16}-seed{1,2,3}/``;
a published copy works too) and applies the rule written before their results
were read, from each run's final evaluation after epoch 10 (validation split,
100 samples of a; ``metrics.json``):

1. the 3-seed mean validation error of bf16 lies within fp32's 3-seed mean ±
   one sample standard deviation;
2. in every bf16 seed, q(a|x) has at least half its units alive and the swap
   cost (error with another image's a minus error) is at least 0.2 points.

Beside it: the per-seed differences (bf16 minus fp32, same seed, so the same
labels and batches) and the median CPU seconds per epoch of each run. A study
of this repository, not part of the package.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any, Dict, Optional

from adgm_tf import cli
from adgm_tf import experiments as runner
from adgm_tf.errors import ConfigError
from experiments.endpoint_screen import cpu_seconds_per_epoch

PROG = "experiments.precision_check"
ALIVE_FLOOR = 0.5   # fraction of q(a|x)'s units
SWAP_FLOOR = 0.2    # points of validation error
SEEDS = (1, 2, 3)
EPOCHS = 10


def run_row(model_dir: str) -> Optional[Dict[str, Any]]:
  """One run's final evaluation (errors in %), or None if it has not finished."""
  path = os.path.join(model_dir, "metrics.json")
  history_path = os.path.join(model_dir, "history.csv")
  if not os.path.exists(path) or not os.path.exists(history_path):
    return None
  with open(path) as f:
    m = json.load(f)
  history = runner.read_history(model_dir)
  if not history or history[-1]["epoch"] < EPOCHS:
    return None
  swap = m.get("validation_aux_swap_error")
  return dict(error=100 * m["validation_error"],
              alive=m.get("validation_aux_alive_fraction"),
              swap=None if swap is None else 100 * (swap - m["validation_error"]),
              eval_samples=m.get("eval_samples"),
              cpu_per_epoch=cpu_seconds_per_epoch(history))


def check(rows: Dict[str, Dict[int, Optional[Dict[str, Any]]]]) -> Dict[str, Any]:
  """The rule over ``rows[precision][seed]`` (None for a run not finished)."""
  missing = [f"{p}-seed{s}" for p in ("fp32", "bf16") for s in SEEDS
             if rows.get(p, {}).get(s) is None]
  if missing:
    return dict(stage="running", missing=missing)
  fp32 = [rows["fp32"][s]["error"] for s in SEEDS]
  bf16 = [rows["bf16"][s]["error"] for s in SEEDS]
  mean32, std32 = statistics.mean(fp32), statistics.stdev(fp32)
  mean16 = statistics.mean(bf16)
  within = abs(mean16 - mean32) <= std32
  a_fail = [f"seed {s}: alive {rows['bf16'][s]['alive']}, swap {rows['bf16'][s]['swap']}"
            for s in SEEDS
            if rows["bf16"][s]["alive"] is None or rows["bf16"][s]["alive"] < ALIVE_FLOOR
            or rows["bf16"][s]["swap"] is None or rows["bf16"][s]["swap"] < SWAP_FLOOR]
  return dict(stage="decided", fp32_mean=mean32, fp32_std=std32, bf16_mean=mean16,
              bf16_std=statistics.stdev(bf16), within_spread=within,
              distance_in_stds=abs(mean16 - mean32) / std32 if std32 else None,
              a_failures=a_fail, passes=within and not a_fail,
              differences=[b - a for a, b in zip(fp32, bf16)])


def read(out: str) -> Dict[str, Dict[int, Optional[Dict[str, Any]]]]:
  return {p: {s: run_row(runner.run_dir(out, p, s)) for s in SEEDS} for p in ("fp32", "bf16")}


def _cell(v, fmt):
  return "-" if v is None else format(v, fmt)


def markdown(rows, result) -> str:
  lines = ["| precision | seed | validation error (%) | alive fraction | swap cost (points) "
           "| CPU s/epoch |", "|---|---|---|---|---|---|"]
  for p in ("fp32", "bf16"):
    for s in SEEDS:
      r = rows[p][s]
      if r is None:
        lines.append(f"| {p} | {s} | running or not started | | | |")
        continue
      lines.append(f"| {p} | {s} | {r['error']:.2f} | {_cell(r['alive'], '.2f')} | "
                   f"{_cell(r['swap'], '+.2f')} | {_cell(r['cpu_per_epoch'], '.0f')} |")
  if result["stage"] == "running":
    return "\n".join(lines) + f"\n\nStill to finish: {', '.join(result['missing'])}.\n"
  verdict = "passes" if result["passes"] else "fails"
  why = []
  why.append(f"(1) bf16 mean {result['bf16_mean']:.2f}% against fp32 {result['fp32_mean']:.2f} "
             f"± {result['fp32_std']:.2f}%: "
             + ("within" if result["within_spread"] else "outside") + " one fp32 standard deviation"
             + (f" ({result['distance_in_stds']:.2f} of them away)"
                if result["distance_in_stds"] is not None else ""))
  why.append("(2) a alive and used in every bf16 seed" if not result["a_failures"]
             else "(2) a fails in " + "; ".join(result["a_failures"]))
  diffs = ", ".join(f"{d:+.2f}" for d in result["differences"])
  return ("\n".join(lines) + f"\n\nbfloat16 **{verdict}** the rule: " + "; ".join(why)
          + f". Per seed, bf16 minus fp32: {diffs} points.\n")


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --out.")
  if not f.out:
    raise ConfigError("give --out=DIR, the precision check's output directory (its runs/ "
                      "are read).")
  out = os.path.expanduser(f.out)
  if not os.path.isdir(os.path.join(out, "runs")):
    raise ConfigError(f"--out={f.out} has no runs/ directory: not the precision check's "
                      f"output.")
  rows = read(out)
  text = markdown(rows, check(rows))
  print(text, end="")
  if f.write:
    with open(f.write, "w") as fh:
      fh.write(runner.portable(text))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("out", None, "the precision check's output directory (holds runs/)")
  flags.DEFINE_string("write", None, "also write the table and verdict here (.md)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
