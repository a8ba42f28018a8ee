"""Probe: does a rerun repeat a run? Compares two history.csv files epoch by epoch.

For every epoch row the two files share, the training columns (step,
learning rate, loss and its parts, labeled accuracy) and, where both rows
have them, the evaluation columns (validation and test error, the
a-diagnostics) are compared as the strings the runs wrote, i.e. to the last
digit Python printed of the float32 value. Prints the rows compared, the
number that differ and the first difference of each column. Wall and CPU
time are left out: they never repeat.

    python experiments/probes/same_history.py FIRST/history.csv SECOND/history.csv

Exit status 0 when every shared row agrees in every shared value, 1 otherwise.
"""

import csv
import sys

USAGE = "python experiments/probes/same_history.py FIRST/history.csv SECOND/history.csv"
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
  if len(argv) != 3:
    print(f"usage: {USAGE}", file=sys.stderr)
    return 2
  try:
    rows, values, differ = compare(argv[1], argv[2])
  except (OSError, KeyError) as e:
    print(f"same_history: cannot compare {argv[1]} and {argv[2]}: {e}", file=sys.stderr)
    return 2
  print(f"{rows} shared epoch rows, {values} values compared, "
        f"{len(differ)} column(s) differ")
  for key, (epoch, a, b) in sorted(differ.items()):
    print(f"  {key}: first differs at epoch {epoch}: {a} against {b}")
  return 0 if rows and not differ else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv))
