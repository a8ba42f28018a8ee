"""Probe: does a rerun repeat a run? Compares two history.csv files epoch by epoch.

For every epoch row the two files share, the training columns (step,
learning rate, loss and its parts, labeled accuracy) and, where both rows
have them, the evaluation columns (validation and test error, the
a-diagnostics) are compared as the strings the runs wrote, i.e. to the last
digit Python printed of the float32 value. Prints the rows compared, the
number that differ and the first difference of each column. Wall and CPU
time are left out: they never repeat.

    python -m experiments.probes.same_history --first=FIRST/history.csv --second=SECOND/history.csv

Exit status 0 when every shared row agrees in every shared value, 1 otherwise.
"""

import csv

from adgm_tf import cli
from adgm_tf.errors import ConfigError

SKIP = {"wall_time", "cpu_time"}


def compare(first_path, second_path):
  with open(first_path, newline="") as f:
    first = {row["epoch"]: row for row in csv.DictReader(f)}
  with open(second_path, newline="") as f:
    second = list(csv.DictReader(f))
  rows = values = 0
  differ = {}
  for row in second:
    other = first.get(row["epoch"])
    if other is None:
      continue
    rows += 1
    for key, value in row.items():
      if key in SKIP or key not in other or value == "" or other[key] == "":
        continue
      values += 1
      if value != other[key]:
        differ.setdefault(key, (row["epoch"], other[key], value))
  return rows, values, differ


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  first, second = flags.FLAGS.first, flags.FLAGS.second
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments {' '.join(argv[1:])}: give --first and "
                      f"--second.")
  try:
    rows, values, differ = compare(first, second)
  except (OSError, KeyError) as e:
    raise ConfigError(f"cannot compare {first} and {second}: {e}") from None
  print(f"{rows} shared epoch rows, {values} values compared, "
        f"{len(differ)} column(s) differ")
  for key, (epoch, a, b) in sorted(differ.items()):
    print(f"  {key}: first differs at epoch {epoch}: {a} against {b}")
  if not rows or differ:
    raise SystemExit(1)


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("first", None, "the first run's history.csv")
  flags.DEFINE_string("second", None, "the second run's history.csv")
  flags.mark_flags_as_required(["first", "second"])


if __name__ == "__main__":
  cli.run_absl("experiments.probes.same_history", main, define_flags)
