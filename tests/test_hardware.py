"""Tests for adgm_tf.hardware: CPU flags and --precision=auto."""

import pytest

from adgm_tf import hardware

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""


def test_cpu_info_reads_model_and_flags(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(CPUINFO)
  info = hardware.cpu_info(str(path))
  assert info["model"] == "AMD EPYC 9R14"
  assert {"avx2", "avx512_bf16"} <= info["flags"]
  assert hardware.describe_cpu(info) == "AMD EPYC 9R14 (avx2, avx512_bf16, avx512f)"
  missing = hardware.cpu_info(str(tmp_path / "absent"))
  assert missing["flags"] == frozenset() and missing["model"]


@pytest.mark.parametrize("flags,gpu,want", [
    ({"avx2", "avx512f", "avx512_bf16"}, False, "bf16"),   # AMD Zen 4
    ({"avx2", "amx_bf16", "amx_tile"}, False, "bf16"),      # Intel with AMX
    ({"avx2", "fma"}, False, "fp32"),                       # AVX2 only
    ({"avx512f", "avx512_bf16"}, True, "fp32"),             # a GPU is in use
])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it(flags, gpu, want):
  assert hardware.resolve_precision("auto", frozenset(flags), gpu=gpu) == want
  for explicit in ("fp32", "bf16", "fp16"):
    assert hardware.resolve_precision(explicit, frozenset(flags), gpu=gpu) == explicit
  with pytest.raises(ValueError, match="precision must be one of"):
    hardware.resolve_precision("fp8", frozenset(flags))
