"""Tests for adgm_tf.op_table: grouping a profile's ops (names from a real profile)."""

import subprocess
import sys

import pytest

from adgm_tf import op_table

from conftest import REPO


@pytest.mark.parametrize("op_type, name, group", [
    ("_MklNativeFusedMatMul", "head_5/BiasAdd", "matmul"),
    ("_MklMatMul", "gradient_tape/dense_1_5/MatMul/MatMul_1", "matmul"),
    ("Mul", "gradient_tape/bn_0_1/Mul_3", "batch norm"),
    ("Mean", "bn_1_7/Mean", "batch norm"),
    ("Tile", "gradient_tape/bn_0_3/Tile", "batch norm"),
    ("ResourceApplyAdam", "adam/update_0_36/ResourceApplyAdam", "Adam update"),
    ("Dataset", "Iterator::Root::Prefetch::Generator", "input pipeline"),
    ("StatelessRandomNormalV2", "stateless_random_normal_3/StatelessRandomNormalV2",
     "random draws"),
    ("L2Loss", "global_norm/L2Loss_39", "gradient clip (L2Loss)"),
    ("ConcatV2", "concat_14", "data movement and casts"),
    ("Cast", "Cast_3", "data movement and casts"),
    ("Sum", "Sum_2", "reductions"),
    ("Softplus", "Softplus_1", "elementwise"),
    ("ReluGrad", "gradient_tape/ReluGrad_7", "elementwise"),
    ("StridedSliceGrad", "gradient_tape/strided_slice_1/StridedSliceGrad", "other"),
])
def test_ops_fall_in_their_group(op_type, name, group):
  assert op_table.group_of(op_type, name) == group


def test_grouped_shares_sum_to_one_and_count_per_step():
  rows = [dict(type="_MklMatMul", name="MatMul", self_us=600.0, occurrences=20),
          dict(type="Mul", name="bn_0/Mul", self_us=300.0, occurrences=40),
          dict(type="Mul", name="mul_3", self_us=100.0, occurrences=10)]
  groups = {g["group"]: g for g in op_table.grouped(rows, steps=10)}
  assert groups["matmul"]["share"] == pytest.approx(0.6)
  assert groups["batch norm"]["ms_per_step"] == pytest.approx(0.03)
  assert groups["elementwise"]["ops_per_step"] == 1.0
  assert sum(g["share"] for g in groups.values()) == pytest.approx(1.0)
  text = op_table.format_grouped(op_table.grouped(rows, 10), rows, 10)
  assert "0.1 ms and 7 ops per step" in text and "matmul" in text
  assert "Adam update" not in text  # groups with no ops are left out


def test_a_directory_without_a_profile_is_one_line(tmp_path):
  out = subprocess.run([sys.executable, "-m", "adgm_tf.op_table",
                        f"--profile_dir={tmp_path}"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert (out.returncode, out.stderr.strip()) == (
      2, f"adgm_tf.op_table: error: no *.xplane.pb under {tmp_path}: record one with "
         f"python -m adgm_tf.bench --only=0 --profile={tmp_path}")


def test_a_file_that_is_not_a_profile_is_one_line(tmp_path):
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "host.xplane.pb").write_bytes(b"not a profile")
  out = subprocess.run([sys.executable, "-m", "adgm_tf.op_table",
                        f"--profile_dir={tmp_path}"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
  path = tmp_path / "x" / "host.xplane.pb"
  assert out.returncode == 2, out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
      f"adgm_tf.op_table: error: TensorFlow could not read the profile {path} (cut short "
      f"or not a profile): record it again with python -m adgm_tf.bench --only=0 "
      f"--profile=DIR")
