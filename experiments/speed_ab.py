r"""Interleaved A/B of the training step under different environments or checkouts.

    python -m experiments.speed_ab --rounds=3 \
        --conditions='{"default": {}, "inter1": {"TF_NUM_INTEROP_THREADS": "1"}}'
    python -m experiments.speed_ab --conditions='{"old": {"CWD": "/path/to/old/checkout"}, "new": {}}'

Each round runs one benchmark child (``python -m adgm_tf.bench --child=config``:
the launcher's own loop, steps/s as the bench measures it) per condition, in
the order given; a condition is a set of environment variables, and ``CWD``
runs the child from another checkout of the repository (its ``adgm_tf``).
Prints each run and, per condition, the median steps/s and the median of
the per-round ratios to the first condition. For thread settings, library
switches (``TF_ENABLE_ONEDNN_OPTS=0``) and before/after comparisons of a code
change on a host whose speed drifts; BUILD.md, "Where the step's time goes",
quotes its results. A study of this repository, not part of the package.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Dict, List

from adgm_tf import bench
from adgm_tf import cli
from adgm_tf.errors import ConfigError

PROG = "experiments.speed_ab"


def parse_conditions(text: str) -> Dict[str, Dict[str, str]]:
  try:
    conditions = json.loads(text)
  except ValueError as e:
    raise ConfigError(f"--conditions is not JSON ({e}); give e.g. "
                      f"'{{\"default\": {{}}, \"inter1\": {{\"TF_NUM_INTEROP_THREADS\": \"1\"}}}}'") from None
  if (not isinstance(conditions, dict) or len(conditions) < 2
      or not all(isinstance(v, dict) for v in conditions.values())):
    raise ConfigError("--conditions must map two or more names to objects of environment "
                      "variables (CWD: another checkout), e.g. '{\"a\": {}, \"b\": {...}}'")
  for name, env in conditions.items():
    if "CWD" in env and not os.path.isdir(os.path.join(env["CWD"], "adgm_tf")):
      raise ConfigError(f"condition {name}: CWD={env['CWD']} is not a checkout of this "
                        f"repository (no adgm_tf/ there).")
  return {k: {e: str(v) for e, v in env.items()} for k, env in conditions.items()}


def summarize(results: Dict[str, List[float]]) -> Dict[str, Dict[str, float]]:
  """Per condition: median steps/s and the median of its per-round ratios to the first."""
  base = next(iter(results.values()))
  return {name: dict(median=statistics.median(v), x_first=bench.paired_ratio(v, base))
          for name, v in results.items()}


def run_child(cfg: Dict, precision: str, env: Dict[str, str]) -> Dict:
  """One benchmark child under ``env`` (``CWD``: from that checkout)."""
  return bench._child(  # pylint: disable=protected-access
      "config", dict(cfg=cfg, precision=precision), short=False,
      env={k: v for k, v in env.items() if k != "CWD"}, cwd=env.get("CWD"))


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}.")
  conditions = parse_conditions(f.conditions or "")
  if f.rounds < 1:
    raise ConfigError(f"--rounds={f.rounds}: give 1 or more.")
  if not 0 <= f.config < len(bench.CONFIGS):
    raise ConfigError(f"--config={f.config}: the configurations are numbered 0 to "
                      f"{len(bench.CONFIGS) - 1} (python -m adgm_tf.bench).")
  precision = bench.VARIANTS[f.variant][0]
  results = {name: [] for name in conditions}
  for r in range(f.rounds):
    for name, env in conditions.items():
      d = run_child(bench.CONFIGS[f.config], precision, env)
      results[name].append(d["steps_per_s"])
      print(f"round {r + 1} {name}: {d['steps_per_s']:.2f} steps/s", flush=True)
  for name, s in summarize(results).items():
    print(f"{name}: median {s['median']:.2f} steps/s "
          f"({', '.join(f'{v:.2f}' for v in results[name])}), "
          f"x {next(iter(conditions))} {s['x_first']:.3f} (median of per-round ratios)")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("conditions", None, "JSON: name -> environment variables (CWD: "
                      "another checkout); the first is the base")
  flags.DEFINE_integer("rounds", 3, "rounds; each runs every condition once, in order")
  flags.DEFINE_integer("config", 0, "the bench configuration (0 = ADGM 100+100 S=1)")
  flags.DEFINE_enum("variant", "fp32", list(bench.VARIANTS), "arithmetic (no XLA variants: "
                    "fp32 or bf16)")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
