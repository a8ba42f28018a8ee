"""What the host can do: its CPU's model and bf16 flags, and ``--precision=auto``.

``lscpu`` reads the same flags from /proc/cpuinfo; bfloat16 arithmetic is in
hardware where the CPU has ``avx512_bf16`` (AVX-512 BF16: Intel Cooper Lake
and later, AMD Zen 4 and later) or ``amx_bf16`` (Intel AMX, Sapphire Rapids
and later). Without them TensorFlow's bf16 matmuls widen to float32 and run
slower than float32 (measured on an AVX2 host, BUILD.md "Speed"), so
``auto`` chooses bf16 only where one of these flags is present. Imports
neither TensorFlow nor numpy.
"""

from __future__ import annotations

import platform
from typing import Dict, FrozenSet, Optional

# --precision: the Keras dtype policy each name sets. The bound, the
# log-densities, the log-variance heads and the classifier's log qbar stay
# float32 under every policy (heads.py, bounds.py).
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
PRECISIONS = ("auto",) + tuple(POLICIES)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_info(path: str = "/proc/cpuinfo") -> Dict[str, object]:
  """``{"model": str, "flags": frozenset}`` of the first CPU (empty flags
  where /proc/cpuinfo is not readable, e.g. not Linux)."""
  model, flags = "", frozenset()
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
          model = value.strip()
        elif key == "flags" and not flags:
          flags = frozenset(value.split())
        if model and flags:
          break
  except OSError:
    pass
  return {"model": model or platform.processor() or platform.machine(), "flags": flags}


def bf16_flags(flags: FrozenSet[str]) -> FrozenSet[str]:
  """The bfloat16 instruction sets among ``flags``."""
  return frozenset(f for f in BF16_FLAGS if f in flags)


def describe_cpu(info: Optional[Dict[str, object]] = None) -> str:
  """One line for logs and benchmark tables: model and bf16/AMX/AVX-512 flags."""
  info = info or cpu_info()
  flags = info["flags"]
  shown = sorted(f for f in flags if f in BF16_FLAGS or f.startswith("amx")
                 or f in ("avx512f", "avx2"))
  return f"{info['model']} ({', '.join(shown) or 'no AVX2/AVX-512/AMX flags'})"


def resolve_precision(precision: str, flags: Optional[FrozenSet[str]] = None,
                      gpu: bool = False) -> str:
  """``fp32``, ``bf16`` or ``fp16`` for ``--precision``; ``auto`` is bf16 on a
  CPU with bf16 instructions (and no GPU in use), float32 otherwise."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  if precision != "auto":
    return precision
  if gpu:
    return "fp32"
  flags = cpu_info()["flags"] if flags is None else flags
  return "bf16" if bf16_flags(flags) else "fp32"
