"""Where a profiled step's time goes: TensorFlow's op table, grouped.

  python -m adgm_tf.bench --only=0 --profile=/tmp/prof   # records, then prints this
  python -m adgm_tf.op_table --profile_dir=/tmp/prof [--top=20]   # reads it again

``python -m adgm_tf.bench --profile=DIR`` records 10 training steps with the
TensorFlow profiler; this module reads the recorded ``*.xplane.pb`` with
TensorFlow's own converter (``framework_op_stats``, the table TensorBoard's
profile plugin shows) and sums each op's *self* time into groups: matmuls,
elementwise arithmetic, batch norm, data movement and casts, the input
pipeline, the Adam update, reductions, random draws, the gradient clip's
``L2Loss`` and the rest. Idle time is left out. Shares are of the summed op
self time, which with two threads is about twice the wall time.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, List

from adgm_tf import cli
from adgm_tf.errors import ConfigError

PROG = "adgm_tf.op_table"

# Group of an op, decided in this order (first match wins).
GROUPS = (
    "matmul", "batch norm", "Adam update", "input pipeline", "random draws",
    "gradient clip (L2Loss)", "data movement and casts", "reductions",
    "elementwise", "other")
_MOVEMENT = {"Tile", "ConcatV2", "Reshape", "Transpose", "GatherV2", "Slice",
             "StridedSlice", "Pack", "Unpack", "BroadcastTo", "Split", "SplitV",
             "ExpandDims", "Squeeze", "Identity", "Fill", "ZerosLike", "OnesLike",
             "Shape", "Cast", "_MklReshape", "_MklTranspose", "ResourceGather",
             "GatherNd", "ScatterNd", "Select", "SelectV2"}
_REDUCTIONS = {"Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin"}
_ELEMENTWISE = {
    "Mul", "AddV2", "Add", "Sub", "RealDiv", "Neg", "Exp", "Log", "Log1p",
    "Softplus", "SoftplusGrad", "Sigmoid", "SigmoidGrad", "Relu", "ReluGrad",
    "LeakyRelu", "LeakyReluGrad", "Square", "Sqrt", "Rsqrt", "RsqrtGrad",
    "Maximum", "Minimum", "Tanh", "TanhGrad", "BiasAdd", "BiasAddGrad",
    "AddN", "_MklAddN", "Reciprocal", "SquaredDifference", "ClipByValue",
    "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual",
    "LogicalAnd", "LogicalOr", "LogicalNot", "Floor", "FloorMod", "Abs", "Sign",
    "Pow", "IsFinite", "All", "Any", "_FusedMulAdd", "_MklFusedMish", "Softmax",
    "LogSoftmax", "_MklSoftmax", "_MklLayerNorm", "Erf", "DivNoNan", "MulNoNan",
    "_MklSwish", "_FusedAddN", "BiasAddV1", "Xdivy", "Xlogy", "Xlog1py"}


def group_of(op_type: str, op_name: str) -> str:
  """The group an op's self time counts in (``GROUPS``)."""
  if "MatMul" in op_type or op_type in ("Einsum", "_MklEinsum", "BatchMatMulV2"):
    return "matmul"
  if "BatchNorm" in op_type or any(k in op_name for k in ("BatchNorm", "bn_", "moments")):
    return "batch norm"
  if op_type.startswith("ResourceApplyAdam") or op_type.startswith("ApplyAdam"):
    return "Adam update"
  if op_type in ("Dataset", "IteratorGetNext") or op_type.startswith("Iterator"):
    return "input pipeline"
  if op_type.startswith("StatelessRandom") or op_type.startswith("Random"):
    return "random draws"
  if op_type == "L2Loss":
    return "gradient clip (L2Loss)"
  if op_type in _MOVEMENT:
    return "data movement and casts"
  if op_type in _REDUCTIONS:
    return "reductions"
  if op_type in _ELEMENTWISE:
    return "elementwise"
  return "other"


def find_xplane(profile_dir: str) -> str:
  """The newest ``*.xplane.pb`` under ``profile_dir``."""
  found = glob.glob(os.path.join(profile_dir, "**", "*.xplane.pb"), recursive=True)
  if not found:
    raise ConfigError(f"no *.xplane.pb under {profile_dir}: record one with "
                      f"python -m adgm_tf.bench --only=0 --profile={profile_dir}")
  return max(found, key=os.path.getmtime)


def op_rows(xplane: str) -> List[Dict]:
  """TensorFlow's framework op table of a profile: one dict per op (type,
  name, self time in microseconds, occurrences), idle time left out."""
  cli.import_tensorflow()  # quietly: no C++ start-up lines
  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin
  data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(
      [xplane], "framework_op_stats", {})
  try:
    tables = json.loads(data.decode() if isinstance(data, bytes) else data) if ok else None
  except ValueError:
    tables = None
  if not tables:
    raise ConfigError(f"TensorFlow could not read the profile {xplane} (cut short or "
                      f"not a profile): record it again with python -m adgm_tf.bench "
                      f"--only=0 --profile=DIR")
  table = tables[-1]  # the second table leaves out IDLE
  cols = [c["label"] for c in table["cols"]]
  ix = {k: cols.index(k) for k in ("Operation Type", "Operation Name",
                                   "Total self-time (us)", "#Occurrences")}
  rows = []
  for r in table["rows"]:
    v = [c.get("v") for c in r["c"]]
    if v[ix["Operation Type"]] == "IDLE":
      continue
    rows.append(dict(type=v[ix["Operation Type"]], name=v[ix["Operation Name"]],
                     self_us=float(v[ix["Total self-time (us)"]]),
                     occurrences=int(v[ix["#Occurrences"]])))
  return rows


def grouped(rows: List[Dict], steps: int) -> List[Dict]:
  """Per group: share of the summed self time, ms per step, ops per step."""
  total = sum(r["self_us"] for r in rows) or 1.0
  out = {g: dict(group=g, self_us=0.0, occurrences=0) for g in GROUPS}
  for r in rows:
    g = out[group_of(r["type"], r["name"])]
    g["self_us"] += r["self_us"]
    g["occurrences"] += r["occurrences"]
  result = []
  for g in out.values():
    result.append(dict(group=g["group"], share=g["self_us"] / total,
                       ms_per_step=g["self_us"] / 1e3 / steps,
                       ops_per_step=g["occurrences"] / steps))
  return sorted(result, key=lambda g: -g["share"])


def format_grouped(groups: List[Dict], rows: List[Dict], steps: int) -> str:
  total_ms = sum(r["self_us"] for r in rows) / 1e3 / steps
  ops = sum(r["occurrences"] for r in rows) / steps
  lines = [f"op self time of the {steps} profiled steps, grouped "
           f"({total_ms:.1f} ms and {ops:.0f} ops per step; python -m adgm_tf.op_table)",
           f"{'group':<26} {'share':>6} {'ms/step':>8} {'ops/step':>8}"]
  for g in groups:
    if g["ops_per_step"]:
      lines.append(f"{g['group']:<26} {100 * g['share']:>5.1f}% {g['ms_per_step']:>8.2f} "
                   f"{g['ops_per_step']:>8.1f}")
  return "\n".join(lines)


def format_top(rows: List[Dict], steps: int, top: int) -> str:
  lines = [f"the {top} ops with the most self time",
           f"{'ms/step':>8} {'per step':>8}  {'group':<24} type, name"]
  for r in sorted(rows, key=lambda r: -r["self_us"])[:top]:
    lines.append(f"{r['self_us'] / 1e3 / steps:>8.2f} {r['occurrences'] / steps:>8.1f}  "
                 f"{group_of(r['type'], r['name']):<24} {r['type']}, {r['name']}")
  return "\n".join(lines)


def report(profile_dir: str, steps: int = 10, top: int = 0) -> str:
  rows = op_rows(find_xplane(profile_dir))
  text = format_grouped(grouped(rows, steps), rows, steps)
  return text + ("\n\n" + format_top(rows, steps, top) if top else "")


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}; "
                      f"give the directory as --profile_dir=DIR.")
  if not f.profile_dir:
    raise ConfigError("--profile_dir is required: the directory given to "
                      "python -m adgm_tf.bench --profile=DIR.")
  if f.steps < 1:
    raise ConfigError(f"--steps={f.steps}: give the number of steps the profile "
                      f"recorded, at least 1 (bench records 10).")
  if f.top < 0:
    raise ConfigError(f"--top={f.top}: give 0 (no list) or more ops to list.")
  print(report(f.profile_dir, f.steps, f.top))


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("profile_dir", None, "the directory given to bench --profile")
  flags.DEFINE_integer("steps", 10, "steps the profile recorded (bench records 10)")
  flags.DEFINE_integer("top", 0, "also list this many ops with the most self time")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
