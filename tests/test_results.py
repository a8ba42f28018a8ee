"""Cross-module: docs/RESULTS.md and docs/results/ against each other.

The main tables of RESULTS.md are recomputed from the committed per-run files
(metrics.json, history.csv, best_eval.json), so that a number that drifts
from its files fails the suite; and no published file carries a path of the
machine that produced it.
"""

import csv
import glob
import json
import os
import re
import statistics

import numpy as np
import pytest

from adgm_tf.experiments import read_history
from experiments import endpoint_screen
from experiments import long_run

from conftest import REPO

RESULTS = os.path.join(REPO, "docs", "RESULTS.md")
PUBLISHED = os.path.join(REPO, "docs", "results")
TEXT_SUFFIXES = (".json", ".txt", ".md", ".csv", ".flags")
# A path of the machine that ran: a home directory (~/..., /root/, /home/),
# the workspace (/work/), temporary files (/tmp/), macOS homes, Windows drives.
MACHINE_PATH = re.compile(r"(?<![\w<>.])(~/|/root/|/home/|/work/|/tmp/|/Users/|[A-Z]:\\)")


def _results_text():
  with open(RESULTS, encoding="utf-8") as f:
    return f.read()


def _table_after(text, header_start):
  """The rows (lists of cell strings) of the markdown table whose header line
  starts with ``header_start``."""
  lines = text.splitlines()
  start = [i for i, line in enumerate(lines) if line.startswith(header_start)]
  assert len(start) == 1, f"{len(start)} tables start with {header_start!r}"
  rows = []
  for line in lines[start[0] + 2:]:
    if not line.startswith("|"):
      break
    rows.append([c.strip() for c in line.strip().strip("|").split("|")])
  return rows


def _metrics(path):
  with open(os.path.join(PUBLISHED, path, "metrics.json")) as f:
    return json.load(f)


def _pm(values, digits, sign=""):
  mean, std = statistics.mean(values), statistics.stdev(values)
  return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def _plain(cell):
  """A table cell without markdown emphasis and with ASCII minus signs."""
  return cell.replace("**", "").replace("−", "-")


def test_no_published_file_carries_a_path_of_the_machine_that_ran():
  found = []
  for root, _, files in os.walk(PUBLISHED):
    for name in files:
      if not name.endswith(TEXT_SUFFIXES):
        continue
      path = os.path.join(root, name)
      with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
          if MACHINE_PATH.search(line):
            found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()[:100]}")
  assert not found, "machine paths in published files:\n" + "\n".join(found[:20])


def test_the_path_check_catches_what_it_is_for():
  for bad in ("--idx_dir=/work/shared/data/mnist", '"checkpoint": "~/adgm-results/x"',
              "/root/adgm-results/long", "/tmp/tfds", "/home/me/x", "/Users/me/x"):
    assert MACHINE_PATH.search(bad), bad
  for fine in ("best/ckpt-77000", "<results>/fig4/runs/adgm-seed1", "<home>/x",
               "docs/results/fig4", "a/b/tmp/x", "10 points/tmp"):
    assert not MACHINE_PATH.search(fine), fine


def _hour_values(m):
  """A 60-minute run's final figures as the hour tables of RESULTS section 4 give
  them (errors and swap costs in percent points, a-diagnostics on validation)."""
  return dict(
      epochs=m["epochs"], val=100 * m["validation_error"], test=100 * m["test_error"],
      swap_val=100 * (m["validation_aux_swap_error"] - m["validation_error"]),
      swap_test=100 * (m["aux_swap_error"] - m["test_error"]),
      alive=m["validation_aux_alive_fraction"], spread=m["validation_aux_mean_spread"],
      info=m["validation_aux_information"], z=m["active_units_z"],
      ll=m["test_log_likelihood"])


# How the hour tables print each column: one seed's cell, and the mean row's.
_HOUR_CELL = dict(epochs="{:.2f}", val="{:.2f}%", test="{:.2f}%", swap_val="{:+.2f}",
                  swap_test="{:+.2f}", alive="{:.3f}", spread="{:.3f}", info="{:.3f}",
                  z="{}", ll="{:.2f}")
_HOUR_MEAN = dict(epochs=(1, "", ""), val=(2, "", "%"), test=(2, "", "%"),
                  swap_val=(2, "+", ""), swap_test=(2, "+", ""), alive=(3, "", ""),
                  spread=(3, "", ""), info=(3, "", ""), z=(1, "", ""), ll=(2, "", ""))


def _hour_cells(values, keys):
  return [_HOUR_CELL[k].format(values[k]) for k in keys]


def _hour_mean_cells(cols, keys):
  return [_pm(cols[k], _HOUR_MEAN[k][0], _HOUR_MEAN[k][1]) + _HOUR_MEAN[k][2] for k in keys]


def test_the_sixty_minute_table_recomputes_from_its_runs():
  """RESULTS.md section 4 against docs/results/time_to_accuracy/runs/*."""
  rows = _table_after(_results_text(), "| seed | epochs in 60 min |")
  assert [r[0] for r in rows] == ["1", "2", "3", "mean ± std (3 seeds)"]
  cols = {k: [] for k in ("epochs", "val", "test", "swap_val", "swap_test", "alive",
                          "spread", "info", "z", "ll")}
  for seed, row in zip((1, 2, 3), rows):
    values = _hour_values(_metrics(f"time_to_accuracy/runs/sdgm_cpu-seed{seed}"))
    for k, v in values.items():
      cols[k].append(v)
    assert [_plain(c) for c in row[1:]] == _hour_cells(values, cols), f"seed {seed}"
  assert [_plain(c) for c in rows[3][1:]] == _hour_mean_cells(cols, cols)


def test_the_bfloat16_hour_recomputes_from_its_runs():
  """RESULTS.md section 4's bfloat16 table against
  docs/results/time_to_accuracy_auto/runs/*: one row per published seed, and
  the mean row once all three are in."""
  rows = _table_after(_results_text(), "| seed, bfloat16 | epochs in 60 min |")
  runs = os.path.join(PUBLISHED, "time_to_accuracy_auto", "runs")
  seeds = sorted(int(d.rsplit("seed", 1)[1]) for d in os.listdir(runs))
  seed_rows = [r for r in rows if not r[0].startswith("mean")]
  assert [int(r[0]) for r in seed_rows] == seeds
  cols = {k: [] for k in ("epochs", "val", "test", "swap_val", "swap_test", "alive", "ll")}
  for seed, row in zip(seeds, seed_rows):
    assert "--precision=auto" in open(os.path.join(
        runs, f"sdgm_cpu_auto-seed{seed}", "flags.txt")).read()
    values = _hour_values(_metrics(f"time_to_accuracy_auto/runs/sdgm_cpu_auto-seed{seed}"))
    for k in cols:
      cols[k].append(values[k])
    assert [_plain(c) for c in row[1:]] == _hour_cells(values, cols), f"seed {seed}"
  assert (len(rows) > len(seed_rows)) == (len(seeds) == 3)  # the mean row, once all are in
  if len(seeds) == 3:
    assert [_plain(c) for c in rows[-1][1:]] == _hour_mean_cells(cols, cols)
    # BUILD.md's Speed section repeats the hour's main columns.
    keys = ("epochs", "val", "test", "swap_test")
    build = _table_after(open(os.path.join(REPO, "BUILD.md")).read(),
                         "| seed | epochs in 60 min | validation error | test error | swap cost, test")
    per_seed = [{k: cols[k][i] for k in keys} for i in range(3)]
    assert [[_plain(c) for c in r[1:]] for r in build] == (
        [_hour_cells(v, keys) for v in per_seed] + [_hour_mean_cells(cols, keys)])


@pytest.mark.parametrize("model,label", [
    ("m2", "M2"), ("adgm", "ADGM (ICML form)"), ("adgm_det", "ADGM, deterministic a"),
    ("adgm_workshop", "ADGM (workshop form)"), ("sdgm", "SDGM")])
def test_the_fig4_table_recomputes_from_its_runs(model, label):
  """RESULTS.md section 5's table of the 10-epoch final evaluations (100
  samples): validation and test error, and the a-diagnostics on the
  validation split, against docs/results/fig4/runs/*."""
  rows = {r[0]: r for r in _table_after(_results_text(), "| model | seeds | validation error |")}
  ms = [_metrics(f"fig4/runs/{model}-seed{s}") for s in (1, 2, 3)]
  assert all(m["eval_samples"] == 100 for m in ms)

  def pm(key, scale=1.0, digits=2, sign=""):
    return _pm([scale * m[key] for m in ms], digits, sign)
  expected = ["3", pm("validation_error", 100) + "%", pm("test_error", 100) + "%"]
  if model == "m2":
    expected += ["-", "-", "-"]
  else:
    swaps = [100 * (m["validation_aux_swap_error"] - m["validation_error"]) for m in ms]
    expected += [_pm(swaps, 2, "+"), pm("validation_aux_alive_fraction"),
                 pm("validation_aux_mean_spread", digits=3)]
  z = [m["active_units_z"] for m in ms]
  expected.append("0" if not any(z) else _pm(z, 1))
  assert [_plain(c) for c in rows[label][1:]] == expected


def test_the_long_run_rows_recompute_from_its_files():
  """RESULTS.md section 6: best/'s final evaluation (best_eval.json), the
  log-likelihood and the run's clock (history.csv)."""
  text = _results_text()
  with open(os.path.join(PUBLISHED, "long_sdgm3", "best_eval.json")) as f:
    best = json.load(f)
  row = f"| best/ (epoch {best['epoch']:g}), the final evaluation | {best['eval_samples']} | " \
        f"{100 * best['validation_error']:.2f}% | **{100 * best['test_error']:.2f}%** |"
  assert row in text
  assert f"**{best['test_log_likelihood']:.2f} nats**" in text
  assert f"its test error is **{100 * best['test_error']:.2f}%** with 100 samples" in text
  with open(os.path.join(PUBLISHED, "long_sdgm3", "history.csv")) as f:
    history = [{k: float(v) if v not in ("", None) else None for k, v in r.items()}
               for r in csv.DictReader(f)]
  clock = long_run.run_clock(history)
  assert (f"**{clock['wall_hours']:.2f} h of wall time and {clock['cpu_hours']:.2f} h of "
          f"CPU\ntime**") in text
  # The evaluation chosen as best/ is the lowest validation error of the run.
  rows = long_run.long_run_rows(history)
  assert min(rows, key=lambda r: r["validation_error"])["epoch"] == best["epoch"]


@pytest.mark.parametrize("model,label", [
    ("m2", "M2"), ("adgm", "ICML ADGM"), ("sdgm", "SDGM with the warm-up")])
def test_the_20_epoch_table_recomputes_from_its_runs(model, label):
  """RESULTS.md section 5's second rule at 20 epochs, against docs/results/fig4_20."""
  rows = {r[0]: r for r in _table_after(_results_text(), "| model (20 epochs) |")}
  ms = [_metrics(f"fig4_20/runs/{model}-seed{s}") for s in (1, 2, 3)]
  assert all(m["epochs"] == 20 and m["eval_samples"] == 100 for m in ms)
  val = [100 * m["validation_error"] for m in ms]
  row = [_plain(c) for c in rows[label][1:]]
  assert row[0] == _pm(val, 2) + "% (" + ", ".join(f"{v:.2f}" for v in val) + ")"
  assert row[1] == _pm([100 * m["test_error"] for m in ms], 2) + "%"
  if model == "m2":
    assert row[2:4] == ["-", "-"]
  else:
    swaps = [100 * (m["validation_aux_swap_error"] - m["validation_error"]) for m in ms]
    assert row[2] == _pm(swaps, 2, "+")
    assert row[3] == _pm([m["validation_aux_alive_fraction"] for m in ms], 2)
  z = [m["active_units_z"] for m in ms]
  assert row[4] == ("0" if not any(z) else _pm(z, 1))


@pytest.mark.parametrize("name,label,tested", [
    ("sdgm_lr1e-3", "SDGM, learning rate 1e-3 (chosen)", True),
    ("sdgm_lr3e-3", "SDGM, learning rate 3e-3 (the MNIST recipe's)", False),
    ("m2", "M2", True)])
def test_the_fashion_mnist_table_recomputes_from_its_runs(name, label, tested):
  """RESULTS.md section 8, against docs/results/fashion_mnist: validation from
  each run's metrics.json, test from the test_eval.json written once after the
  choice (and only for the chosen candidate and M2)."""
  rows = {r[0]: r for r in _table_after(
      _results_text(), "| model (Fashion-MNIST, 100 labels, 10 epochs) |")}
  row = [_plain(c) for c in rows[label][1:]]
  runs = [f"fashion_mnist/runs/{name}-seed{s}" for s in (1, 2, 3)]
  ms = [_metrics(r) for r in runs]
  assert all(m["epochs"] == 10 and m["eval_samples"] == 100 for m in ms)
  assert all(m["test_error"] is None for m in ms)  # the runs never read the test set
  val = [100 * m["validation_error"] for m in ms]
  assert row[0] == _pm(val, 2) + "% (" + ", ".join(f"{v:.2f}" for v in val) + ")"
  test_files = [os.path.join(PUBLISHED, r, "test_eval.json") for r in runs]
  assert all(os.path.exists(f) for f in test_files) == tested
  if tested:
    ts = [json.load(open(f)) for f in test_files]
    assert all(t["eval_samples"] == 100 and t["checkpoint"] == "checkpoints/ckpt-5500"
               for t in ts)
    assert row[1] == _pm([100 * t["test_error"] for t in ts], 2) + "%"
  else:
    assert row[1] == "not read"
  if name == "m2":
    assert row[2:5] == ["-", "-", "-"]
  else:
    assert row[2] == _pm([100 * (m["validation_aux_swap_error"] - m["validation_error"])
                          for m in ms], 2, "+")
    assert row[3] == _pm([m["validation_aux_alive_fraction"] for m in ms], 2)
    assert row[4] == (_pm([100 * (t["aux_swap_error"] - t["test_error"]) for t in ts], 2, "+")
                      if tested else "not read")
  assert row[5] == _pm([m["active_units_z"] for m in ms], 1)


def test_the_fashion_mnist_choice_follows_the_rule():
  """Section 8's rule: among the SDGM candidates whose mean alive fraction is
  at least 0.5 and mean swap cost at least 0.2 points, the lower mean
  validation error; fashion_mnist.flags carries the chosen learning rate."""
  means = {}
  for name in ("sdgm_lr1e-3", "sdgm_lr3e-3"):
    ms = [_metrics(f"fashion_mnist/runs/{name}-seed{s}") for s in (1, 2, 3)]
    alive = statistics.mean(m["validation_aux_alive_fraction"] for m in ms)
    swap = statistics.mean(100 * (m["validation_aux_swap_error"] - m["validation_error"])
                           for m in ms)
    if alive >= 0.5 and swap >= 0.2:
      means[name] = statistics.mean(m["validation_error"] for m in ms)
  assert min(means, key=means.get) == "sdgm_lr1e-3"
  with open(os.path.join(REPO, "fashion_mnist.flags")) as f:
    flags = [line.strip() for line in f if line.startswith("--")]
  assert "--learning_rate=1e-3" in flags and "--dataset=fashion_mnist" in flags


def test_precision_check_verdict_recomputes_from_its_files():
  """RESULTS.md section 9's table and verdict, from docs/results/precision_check."""
  from experiments import precision_check as pc
  rows = pc.read(os.path.join(PUBLISHED, "precision_check"))
  result = pc.check(rows)
  assert result["passes"]
  assert round(result["fp32_mean"], 2) == 10.30 and round(result["fp32_std"], 2) == 2.40
  assert round(result["bf16_mean"], 2) == 9.57 and round(result["bf16_std"], 2) == 1.62
  assert [round(d, 2) for d in result["differences"]] == [-1.46, 0.10, -0.82]
  assert [round(rows["bf16"][s]["swap"], 2) for s in pc.SEEDS] == [5.32, 4.24, 5.72]
  assert [round(rows[p][s]["cpu_per_epoch"]) for p in ("fp32", "bf16") for s in pc.SEEDS] == [
      105, 98, 98, 68, 69, 70]
  with open(os.path.join(PUBLISHED, "precision_check", "verdict.md")) as f:
    assert f.read() == pc.markdown(rows, result)
  text = _results_text()
  assert "| bf16 | 2 | 7.78 | 1.00 | +4.24 | 0.026 | 69 | 454 |" in text


_CONFUSION_RUNS = {"long": "long-seed1", "long_lr_authors": "long_lr_authors-seed1",
                   "long_split_bn": "long_split_bn-seed1",
                   "long_authors_init": "long_authors_init-seed1",
                   "authors": "authors-seed1",
                   "long_s5": "long_s5-seed1",
                   "long_split_bn, seed 2": "long_split_bn-seed2",
                   "long_split_bn, seed 3": "long_split_bn-seed3",
                   "long_s5, seed 2": "long_s5-seed2",
                   "long_s5, seed 3": "long_s5-seed3",
                   "section 4's bfloat16 hour, seed 1": "bf16_hour-seed1",
                   "section 4's bfloat16 hour, seed 2": "bf16_hour-seed2",
                   "section 4's bfloat16 hour, seed 3": "bf16_hour-seed3"}


def test_the_five_to_three_paragraph_recomputes_from_the_confusion_table_runs():
  """RESULTS.md section 7, "In five of these thirteen runs": which runs hold a
  block of 5s classified as 3 (15% of the 5s or more) and the ranges it
  quotes, from the table's matrices."""
  text = " ".join(_results_text().split())
  confusion = os.path.join(PUBLISHED, "endpoint_screen", "confusion")
  runs = {name: json.load(open(os.path.join(confusion, f + ".json")))
          for name, f in _CONFUSION_RUNS.items()}
  share = {k: r["matrix"][5][3] / sum(r["matrix"][5]) for k, r in runs.items()}
  blocks = [k for k in runs if share[k] >= 0.15]
  words = {5: "five", 8: "eight", 13: "thirteen"}
  reverse = [r["matrix"][3][5] for r in runs.values()]
  points = [100 * runs[k]["matrix"][5][3] / runs[k]["images"] for k in blocks]
  rest = [100 * (r["errors"] - r["matrix"][5][3]) / r["images"] for r in runs.values()]
  others = [share[k] for k in runs if k not in blocks]
  assert max(others) < 0.075  # blocks and the rest lie apart
  phrase = (
      f"In {words[len(blocks)]} of these {words[len(runs)]} runs a block of the 5s, "
      f"{100 * min(share[k] for k in blocks):.0f}-{100 * max(share[k] for k in blocks):.0f}% "
      f"of them, is classified as 3 (in the other {words[len(others)]}, at most "
      f"{100 * max(others):.0f}%); the reverse, 3 → 5, stays at {min(reverse)}-{max(reverse)} "
      f"images. That one cell is {min(points):.1f}-{max(points):.1f} points of those runs' "
      f"errors, and with it removed the {words[len(runs)]} runs lie between {min(rest):.1f}% "
      f"and {max(rest):.1f}%.")
  assert phrase in text, phrase
  label_seed = {r[0]: int(r[1]) for r in _table_after(
      _results_text(), "| run | label seed | checkpoint | validation error |")}
  assert sorted({label_seed[k] for k in blocks}) == [1, 3] and "label sets (1 and 3)" in text
  three = {k: runs[k]["matrix"][5][3] for k in runs if label_seed[k] == 3}
  assert sorted(three) == ["long_s5, seed 3", "long_split_bn, seed 3",
                           "section 4's bfloat16 hour, seed 3"]
  bf16_three = "section 4's bfloat16 hour, seed 3"
  assert (f"on label set 3 in `long_s5` ({three['long_s5, seed 3']} images) and the bfloat16 "
          f"trajectory ({three[bf16_three]}) but not in "
          f"`long_split_bn` ({three['long_split_bn, seed 3']})") in " ".join(text.split())


def _long_run_phrases(name):
  """``(history, evaluations, phrases)`` of a published 200-epoch run: the
  phrases RESULTS.md's paragraph on it quotes from its evaluations (best,
  a-diagnostics from epoch 15 on) and its clock."""
  history = read_history(os.path.join(PUBLISHED, name))
  ev = [r for r in history if "validation_error" in r]
  epochs = [int(r["epoch"]) for r in ev]
  err = [100 * r["validation_error"] for r in ev]
  swap = {e: 100 * r["validation_aux_swap_error"] - v for e, r, v in zip(epochs, ev, err)}
  info = [r["validation_aux_information"] for r in ev]
  first_best = epochs[err.index(min(err))]  # the run keeps the first of equal bests
  listed = ", ".join(f"{v:.2f}" for v in err[:-1]) + f" and {err[-1]:.2f}%"
  clock = long_run.run_clock(history)
  later = [v for e, v in swap.items() if e >= 15]
  return history, ev, (
      f"Epoch {epochs[-1]} of 200",
      f"validation error {listed} at epochs {epochs[0]} to {epochs[-1]} (best so far "
      f"{min(err):.2f}% at {first_best},",
      f"alive (at least {min(r['validation_aux_alive_fraction'] for r in ev):.3f} of its "
      f"units) at every evaluation, swap cost +{min(later):.2f} to +{max(later):.2f} points from "
      f"epoch 15 on (+{swap[epochs[-1]]:.2f} at {epochs[-1]}), while I(y;a\\|x) fell from "
      f"{info[0]:.3f} at epoch {epochs[0]} to {info[-1]:.3f} at {epochs[-1]}; "
      f"{clock['wall_hours']:.2f} h of wall time, {clock['cpu_hours']:.2f} h of CPU time so far")


def test_the_chosen_recipes_rerun_repeats_the_lost_run_value_for_value():
  """RESULTS.md section 7, "The machine came back empty again": the restarted
  200-epoch run's rows (docs/results/long_split_bn_200/history.csv) equal the
  lost run's published rows (lost_2026-12-06/history.csv there) in every
  column but the clock."""
  text = " ".join(_results_text().split())
  d = os.path.join(PUBLISHED, "long_split_bn_200")
  with open(os.path.join(d, "lost_2026-12-06", "history.csv")) as f:
    lost = {r["epoch"]: r for r in csv.DictReader(f)}
  with open(os.path.join(d, "history.csv")) as f:
    full = list(csv.DictReader(f))
  rerun = [r for r in full if float(r["epoch"]) <= max(map(float, lost))]
  clock = ("wall_time", "cpu_time")
  # The training means of an epoch cover the steps of its last launch: where
  # the lost run was relaunched inside an epoch, they are not the epoch's.
  means = ("loss", "elbo_labeled", "elbo_unlabeled", "classification", "kl_z", "kl_a",
           "kl_y", "log_px", "accuracy")
  cut = {int(float(e)) + 1 for e in lost if float(e) != int(float(e))}
  whole = [r for r in rerun if float(r["epoch"]) == int(float(r["epoch"]))]
  assert [float(r["epoch"]) for r in whole] == list(range(1, len(whole) + 1))
  values, skipped = 0, []
  for r in whole:
    for k, v in r.items():
      if k in clock or (k in means and int(float(r["epoch"])) in cut):
        skipped += [r["epoch"]] if k == "loss" else []
        continue
      assert v == lost[r["epoch"]][k], (r["epoch"], k)
      values += 1
  assert len(skipped) == 1
  evaluations = sum(r["validation_error"] != "" for r in whole)
  partial = next(r for r in lost.values() if int(float(r["epoch"])) + 1 == int(float(skipped[0]))
                 and float(r["epoch"]) != int(float(r["epoch"])))
  after = 550 - (int(partial["step"]) - 550 * int(float(partial["epoch"])))
  assert (f"its epochs 1 to {len(whole)} equal the lost run's published rows in every "
          f"column but the clock ({values} values, {evaluations} evaluations among them), "
          f"except the training means of epoch {int(float(skipped[0]))}, which the lost run "
          f"averaged over the {after} steps after a relaunch inside that epoch") in text
  # Its step against the bench's configuration 8 (this recipe's), same host.
  with open(os.path.join(PUBLISHED, "bench", "long_split_bn_one_thread_2026-12-06.json")) as f:
    bench = {r.get("bn_statistics", "joint"): r["steps_per_s"] for r in json.load(f)["configs"]}
  cpu = [float(b["cpu_time"]) - float(a["cpu_time"]) for a, b in zip(full, full[1:])]
  median = statistics.median(c for c in cpu if c > 0)  # a relaunch resets the CPU clock
  steps = 550 / median
  last = int(float(full[-1]["epoch"]))
  assert (f"{bench['split']:.2f} steps/s with the per-pass statistics, {bench['joint']:.2f} with "
          f"joint ones") in text
  assert (f"the rerun's median {median:.1f} CPU-seconds an epoch (epochs 2 to {last}) is "
          f"{steps:.2f} steps per CPU-second, {100 * steps / bench['split']:.0f}% of the "
          f"bench's") in text


def test_adgm_authors_recomputes_from_its_published_run():
  """RESULTS.md section 7, "`adgm_authors` at rule 4's budget": its evaluations,
  a-diagnostics and rule 4's epoch from docs/results/endpoint_screen/runs/
  and the finished candidates' costs."""
  text = " ".join(_results_text().split())
  result = _published_screen()
  d = os.path.join(PUBLISHED, "endpoint_screen", "runs", "adgm_authors-seed1")
  history = read_history(d)
  row = endpoint_screen.candidate("adgm_authors", 1, d, history)
  assert row["status"] != "passes" and row["samples"] == 5  # rule 2 turns it away
  eq = endpoint_screen.equal_cpu_error(row, history, result["c1"], result["costs"][5])
  ev = {int(r["epoch"]): r for r in history if "validation_error" in r}
  assert sorted(ev) == list(range(5, 51, 5)) and eq["epoch"] == 10
  err = {e: 100 * r["validation_error"] for e, r in ev.items()}
  swap = {e: 100 * r["validation_aux_swap_error"] - err[e] for e, r in ev.items()}
  assert all(abs(v) < endpoint_screen.SWAP_FLOOR for v in swap.values())  # "a unused"
  drops = [err[e - 5] - err[e] for e in (10, 15, 20)]  # the paragraph's epochs to 20
  s5 = [r["equal_cpu"]["error"] for r in result["rows"]
        if r.get("samples") == 5 and r.get("equal_cpu") and r["equal_cpu"]["epoch"] == 10
        and r["name"] != "adgm_authors"]
  for phrase in (
      f"validation error {err[5]:.2f}% and {err[10]:.2f}% at epochs 5 and 10 (10 samples of a), "
      f"with q(a|x)'s units all alive "
      f"({min(ev[e]['validation_aux_alive_fraction'] for e in (5, 10)):.2f})",
      f"changed the error by {swap[5]:+.2f} and {swap[10]:+.2f} points, below rule 2's "
      f"{endpoint_screen.SWAP_FLOOR:.2f}",
      f"(spread {ev[5]['validation_aux_mean_spread']:.3f} and "
      f"{ev[10]['validation_aux_mean_spread']:.3f})",
      f"(50 x c1/c5 = 50 x {result['c1']:.1f}/{result['costs'][5]:.1f} = "
      f"{eq['target_epoch']:.1f}; its own epochs cost {row['cpu_per_epoch']:.0f} CPU-seconds, the "
      f"median to epoch {max(ev)})",
      f"the S = 5 SDGMs' at the same epoch ({min(s5):.2f}-{max(s5):.2f}%)",
      f"at epoch 20: validation error {err[15]:.2f}% and {err[20]:.2f}% at epochs 15 and 20, "
      f"swap costs {swap[15]:+.2f} and {swap[20]:+.2f} points, q(a\\|x) alive (at least "
      f"{min(ev[15]['validation_aux_alive_fraction'], ev[20]['validation_aux_alive_fraction']):.3f}"
      f"), spread {ev[15]['validation_aux_mean_spread']:.3f} and "
      f"{ev[20]['validation_aux_mean_spread']:.3f}: a still unused",
      "(" + ", ".join(f"{ev[e]['validation_aux_mean_spread']:.3f}" for e in (5, 10, 15, 20))
      + ")",
      f"falls {min(drops):.2f}-{max(drops):.2f} points every 5 epochs",
      # Published again at epoch 40.
      "validation error " + ", ".join(f"{err[e]:.2f}%" for e in (25, 30, 35)) +
      f" and {err[40]:.2f}% at epochs 25 to 40, swap costs " +
      ", ".join(f"{swap[e]:+.2f}" for e in (25, 30, 35)) + f" and {swap[40]:+.2f} points",
      f"fell from {ev[20]['validation_aux_alive_fraction']:.3f} at epoch 20 to " +
      ", ".join(f"{ev[e]['validation_aux_alive_fraction']:.3f}" for e in (25, 30, 35)) +
      f" and {ev[40]['validation_aux_alive_fraction']:.3f}",
      "(" + ", ".join(f"{ev[e]['validation_aux_mean_spread']:.3f}" for e in (25, 30, 35, 40))
      + ")",
      f"At epoch 45 (published at 18:50): validation error {err[45]:.2f}%, swap cost "
      f"{swap[45]:+.2f} points, alive fraction {ev[45]['validation_aux_alive_fraction']:.3f}, "
      f"spread {ev[45]['validation_aux_mean_spread']:.4f}"):
    assert phrase in text, phrase
  spreads = [ev[e]["validation_aux_mean_spread"] for e in sorted(ev)]
  assert all(b < a for a, b in zip(spreads, spreads[1:]))  # "smaller at every evaluation"
  alive = [ev[e]["validation_aux_alive_fraction"] for e in range(20, 46, 5)]
  assert all(b < a for a, b in zip(alive, alive[1:])) and min(alive) > 0.5  # "dying", above half
  screen_row, = [r for r in result["rows"] if r["name"] == "adgm_authors"]
  for phrase in (
      "At epoch 50 (published at its end,",
      f"validation error {err[45]:.2f}% and {err[50]:.2f}% at epochs 45 and 50, rule 1's mean "
      f"{screen_row['measure']:.2f}%",
      f"swap costs {swap[45]:+.2f} and {swap[50]:+.2f} points",
      f"alive fraction {ev[45]['validation_aux_alive_fraction']:.3f} and "
      f"{ev[50]['validation_aux_alive_fraction']:.3f}",
      f"rule 2: {screen_row['status']}"):
    assert phrase in text, phrase


def test_the_long_run_paragraph_recomputes_from_its_published_files():
  """RESULTS.md section 7, "Where the 200-epoch run stands": the long run's
  evaluations, best, a-diagnostics and time, from docs/results/long_s5_200."""
  text = " ".join(_results_text().split())
  _, ev, phrases = _long_run_phrases("long_s5_200")
  epochs = [int(r["epoch"]) for r in ev]
  err = [100 * r["validation_error"] for r in ev]
  first_best = epochs[err.index(min(err))]
  since_best = [v for e, v in zip(epochs, err) if e >= first_best]
  for phrase in phrases + (
      f"flat within {max(since_best) - min(since_best):.1f} points since epoch {first_best}",):
    assert phrase in text, phrase


def _evaluations(name):
  """{epoch: validation error in %} of a published long run's evaluations."""
  return {int(r["epoch"]): 100 * r["validation_error"]
          for r in read_history(os.path.join(PUBLISHED, name)) if "validation_error" in r}


def test_the_chosen_recipes_200_epochs_recompute_from_its_published_files():
  """RESULTS.md section 7, "The chosen recipe at 200 epochs" and "What the
  evidence says is next": its evaluations, the test errors read once at the
  end (best_eval.json, kept-epoch-<E>.json), a-diagnostics, cost, the rule
  for going on, its errors at epoch 180, and the plateau beside section 6's
  run and the `long_s5` run; its first 50 epochs are the screen's seed-1
  run value for value."""
  text = " ".join(_results_text().split())
  out = os.path.join(PUBLISHED, "long_split_bn_200")
  history = read_history(out)
  ev = [r for r in history if "validation_error" in r]
  err = [100 * r["validation_error"] for r in ev]
  epochs = [int(r["epoch"]) for r in ev]
  at = dict(zip(epochs, err))
  assert epochs == list(range(5, 201, 5))
  best = min(epochs, key=lambda e: (at[e], e))  # the run keeps the first of equal bests
  final = json.load(open(os.path.join(out, "best_eval.json")))
  kept = {e: json.load(open(os.path.join(out, f"kept-epoch-{e}.json"))) for e in (50, 100, 150, 200)}
  ckpt = os.path.basename(final["checkpoint"])
  assert final["epoch"] == best and os.path.basename(kept[200]["checkpoint"]) == ckpt
  assert final["test_error"] == kept[200]["test_error"]

  def pct(v):
    return f"{100 * v:.2f}%"

  def swaps(e):
    return (100 * (e["validation_aux_swap_error"] - e["validation_error"]),
            100 * (e["aux_swap_error"] - e["test_error"]))

  rows = []
  for stop, e in kept.items():
    # best/ as it was at ``stop``: the first of the lowest errors up to then.
    assert e["epoch"] == min((k for k in epochs if k <= stop), key=lambda k: (at[k], k))
    assert e["eval_samples"] == 100
    sv, st = swaps(e)
    cells = ((f"**{stop}**", f"**epoch {e['epoch']:g}** (best/)", f"**{pct(e['test_error'])}**")
             if stop == 200 else (f"{stop}", f"epoch {e['epoch']:g}", pct(e["test_error"])))
    rows.append(f"| {cells[0]} | {cells[1]} | {pct(e['validation_error'])} | {cells[2]} | "
                f"{sv:+.2f} / {st:+.2f} |")
  test = 100 * final["test_error"]
  sv, st = swaps(final)
  swap = {e: 100 * r["validation_aux_swap_error"] - v for e, r, v in zip(epochs, ev, err)}
  later = [v for e, v in swap.items() if e >= 15]
  clock = long_run.run_clock(history)
  verdict = long_run.continue_verdict(long_run.long_run_rows(history))
  assert verdict["go_on"]
  after = [at[e] for e in epochs if e >= 100]
  # Epoch times between consecutive whole-epoch rows of one launch, before
  # the stall fix (the first launch, to epoch 38) and after it.
  whole = [r for r in history if r["epoch"] == int(r["epoch"])]
  steps = {int(b["epoch"]): (b["wall_time"] - a["wall_time"], b["cpu_time"] - a["cpu_time"])
           for a, b in zip(whole, whole[1:]) if b["cpu_time"] > a["cpu_time"]}
  first = min(e for e in range(2, max(steps) + 1) if e not in steps)  # the first relaunch
  assert min(steps) == 2 and first == 39

  def median(values, i):
    return f"{statistics.median(v[i] for v in values):.1f}"

  early = [v for e, v in steps.items() if e < first]
  late = [v for e, v in steps.items() if e > first]
  c180 = json.load(open(os.path.join(out, "confusion-epoch180.json")))
  c100 = json.load(open(os.path.join(out, "confusion-epoch100.json")))
  assert c180["checkpoint"] == ckpt and 100 * c180["error"] == at[best]
  top = c180["confusions"][0]
  screen = _screen_evaluations("long_split_bn-seed1")
  for r in ev:
    if r["epoch"] <= 50:
      assert all(r[k] == screen[int(r["epoch"])][k] for k in (
          "validation_error", "validation_aux_swap_error", "loss")), r["epoch"]
  # The plateau beside section 6's run and the `long_s5` run (seed 1, label set 1).
  section6 = long_run.continue_verdict(long_run.long_run_rows(
      read_history(os.path.join(PUBLISHED, "long_sdgm3"))))
  s5 = _evaluations("long_s5_200")
  s5_after = [v for e, v in s5.items() if e >= 45]
  l6 = _evaluations("long_sdgm3")

  listed = ", ".join(f"{v:.2f}" for v in err[:-1]) + f" and {err[-1]:.2f}%"
  for phrase in rows + [
      f"{test:.2f}% test error, {test - 2.0:.2f} points above the target",
      f"validation error {listed} at epochs 5 to 200 (10 samples of a)",
      f"Validation error chose epoch {best} ({at[best]:.2f}%)",
      f"missed by {test - 2.0:.2f} points** ({test:.2f}%)",
      f"at least {min(r['validation_aux_alive_fraction'] for r in ev):.3f} of q(a\\|x)'s units "
      f"alive at all {len(ev)} evaluations; swapping a between images costs {sv:+.2f} points on "
      f"validation and {st:+.2f} on test at best/ ({swap[200]:+.2f} at epoch 200; "
      f"{min(later):+.2f} to {max(later):+.2f} from epoch 15 on), while I(y;a\\|x) fell from "
      f"{ev[0]['validation_aux_information']:.3f} at epoch 5 to "
      f"{ev[-1]['validation_aux_information']:.3f} at 200",
      f"{final['test_log_likelihood']:.2f} nats (K = {final['ll_samples']}, y enumerated, on "
      f"the first {final['ll_examples']:,} test images",
      f"{clock['wall_hours']:.2f} h of wall time and {clock['cpu_hours']:.2f} h of CPU time over "
      f"{clock['launches']} launches",
      f"epochs 2 to {first - 1}, before the stall fix: a median of {median(early, 0)} s of wall "
      f"time for {median(early, 1)} CPU-seconds an epoch; from epoch {first + 1} on, "
      f"{median(late, 0)} s for {median(late, 1)}",
      f"from epoch 100 to 200 it moved within {max(after) - min(after):.2f} points "
      f"({min(after):.2f}-{max(after):.2f}%)",
      f"mean validation error {verdict['earlier_mean']:.2f}% at epochs 105-150 and "
      f"{verdict['later_mean']:.2f}% at 155-200, a drop of {verdict['drop']:.2f} points against "
      f"the {long_run.CONTINUE_DROP:.2f} required",
      f"{c180['errors']} errors, the largest cell {top['true']} → {top['predicted']} with "
      f"{top['images']} images ({100 * top['of_class']:.1f}% of the {top['true']}s, "
      f"{100 * top['of_errors']:.1f}% of the errors), 5 → 3 with {c180['matrix'][5][3]}; at "
      f"epoch 100 9 → 7 had {c100['matrix'][9][7]} and 5 → 3 {c100['matrix'][5][3]}",
      f"this one at {verdict['later_mean']:.2f}% (mean of epochs 155-200), section 6's L at "
      f"{section6['later_mean']:.2f}%",
      f"`long_s5` (S = 5) at {min(s5_after):.2f}-{max(s5_after):.2f}% from epoch 45 to "
      f"{max(s5)} before it was lost",
      f"they stood at {_rule1_mean('long_split_bn-seed1'):.2f}%, {_rule1(l6):.2f}% and "
      f"{_rule1(s5):.2f}% (rule 1's mean; the screen's L on this host, "
      f"{_rule1_mean('long-seed1'):.2f}%)",
      f"seeds 2 and 3 were at {100 * _screen_at50('long_split_bn-seed2'):.2f}% and "
      f"{100 * _screen_at50('long_split_bn-seed3'):.2f}% at epoch 50, where seed 1 was at "
      f"{at[50]:.2f}%"]:
    assert phrase in text, phrase
  assert top["of_class"] < 0.15  # "spread, not blocked": no cell holds 15% of a class
  assert test > 2.0  # "missed"
  readme = " ".join(open(os.path.join(REPO, "README.md"), encoding="utf-8").read().split())
  assert (f"reached **{test:.2f}% test error** at the checkpoint chosen by validation error "
          f"(epoch {best}; 100 samples of a, the test set read once at the end; "
          f"{pct(kept[50]['test_error'])} and {pct(kept[100]['test_error'])} for the "
          f"checkpoints a run stopped at 50 and 100 epochs would have chosen), with a alive and "
          f"in use, {test - 2.0:.2f} points above the 2.0%") in readme


def _screen_at50(run):
  """A published screen run's validation error at epoch 50 (a fraction)."""
  return _screen_evaluations(run)[50]["validation_error"]


def test_the_crossed_seven_paragraph_recomputes_from_its_matrices():
  """RESULTS.md section 7, "What parts the two draws of seed 1": its counts
  from the long run's epoch-45 matrix, the screen draw's and the table's runs."""
  text = " ".join(_results_text().split())
  confusion = os.path.join(PUBLISHED, "endpoint_screen", "confusion")
  run = json.load(open(os.path.join(PUBLISHED, "long_s5_200", "confusion-epoch45.json")))
  screen = json.load(open(os.path.join(confusion, "long_s5-seed1.json")))
  a, b = np.array(run["matrix"]), np.array(screen["matrix"])
  off = ~np.eye(10, dtype=bool)
  d = a - b
  cell = int(a[7, 9])
  assert run["cell"]["true"] == 7 and run["cell"]["predicted"] == 9
  assert len(run["cell"]["validation_indices"]) == cell
  rest = d.copy()
  rest[7, 9] = 0
  against = run["against"]
  for phrase in (
      f"{run['errors']} errors ({100 * run['error']:.2f}%), {cell} of them 7s classified as "
      f"9 ({100 * cell / a[7].sum():.1f}% of the {a[7].sum()} validation 7s, "
      f"{100 * cell / run['errors']:.0f}% of its errors)",
      f"had {screen['errors']} errors at epoch 50 and {b[7, 9]} image in that cell",
      f"differ by {d[7, 9]} images in 7 → 9 and by {rest[off].sum()} net everywhere else "
      f"({np.abs(rest[off]).sum()} images moved among the other off-diagonal cells, none by "
      f"more than {np.abs(rest[off]).max()})",
      f"still classifies {against['cell']['same']} of the {cell} as 9 (`--against`: "
      f"{against['both']} of its {against['errors']} errors shared with epoch 45)"):
    assert phrase in text, phrase
  assert d[7, 9] == run["errors"] - screen["errors"]  # "the whole gap ... is that one cell"
  seven_nine = {name: json.load(open(os.path.join(confusion, f + ".json")))["matrix"][7][9]
                for name, f in _CONFUSION_RUNS.items()}
  bf16_one = seven_nine["section 4's bfloat16 hour, seed 1"]
  assert (f"`long` {seven_nine['long']}, `long_lr_authors` {seven_nine['long_lr_authors']}, "
          f"`long_authors_init` {seven_nine['long_authors_init']}, `authors` "
          f"{seven_nine['authors']}, this run {cell}; `long_s5`'s screen draw "
          f"{seven_nine['long_s5']}, `long_split_bn` {seven_nine['long_split_bn']}, "
          f"section 4's bfloat16 seed 1 {bf16_one})"
          ) in text
  later = json.load(open(os.path.join(PUBLISHED, "long_s5_200", "confusion-epoch60.json")))
  m = later["matrix"]
  k = later["cell"]
  p = sorted(k["probability_of_predicted"])
  median = statistics.median(p)
  kept = len(set(k["validation_indices"]) & set(run["cell"]["validation_indices"]))
  assert later["against"]["checkpoint"] == run["checkpoint"]  # epoch 45's
  assert later["against"]["cell"]["same"] == kept == cell  # "all 33 of epoch 45's"
  for phrase in (
      f"at epoch 60 ({100 * later['error']:.2f}%;",
      f"the cell holds {m[7][9]} images ({100 * m[7][9] / sum(m[7]):.1f}% of the 7s), among "
      f"them all {cell} of epoch 45's",
      f"median {median:.3f} over the {m[7][9]} (lowest {p[0]:.3f})",
      f"it alone costs the run {100 * m[7][9] / later['images']:.2f} points",
      f"the rest of its errors ({100 * (later['errors'] - m[7][9]) / later['images']:.2f}% "
      f"at epoch 60)"):
    assert phrase in text, phrase
  floor = json.load(open(os.path.join(PUBLISHED, "long_s5_200", "confusion-epoch80.json")))
  m, k = floor["matrix"], floor["cell"]
  assert floor["against"]["checkpoint"] == run["checkpoint"]
  assert floor["against"]["cell"]["same"] == cell == len(
      set(k["validation_indices"]) & set(run["cell"]["validation_indices"]))
  p = k["probability_of_predicted"]
  assert (f"At epoch 80, where the learning rate reaches its floor ({100 * floor['error']:.2f}%; "
          f"[`confusion-epoch80.json`](results/long_s5_200/confusion-epoch80.json)), the cell "
          f"holds {m[7][9]} images, again with all {cell} of epoch 45's among them, q̄(y = "
          f"9\\|x) median {statistics.median(p):.3f} (lowest {min(p):.3f}); the rest of its "
          f"errors are {100 * (floor['errors'] - m[7][9]) / floor['images']:.2f}% of the images, "
          f"as at epoch 60.") in text
  others = {k: v for k, v in seven_nine.items() if "seed 2" in k or "seed 3" in k}
  assert len(others) == 6
  sixth = others.pop("long_s5, seed 2")
  assert sixth > 3 * max(others.values())
  assert (f"stays at {min(others.values())}-{max(others.values())} images in five of the six "
          f"runs, and the sixth, `long_s5` seed 2 (label set 2; below), has {sixth}") in text


def _published_screen():
  """Section 7's screen (experiments/endpoint_screen.py) over the published
  copies of its runs (docs/results/endpoint_screen/runs)."""
  config = json.load(open(os.path.join(REPO, "experiments", "endpoint_screen.json")))
  return endpoint_screen.screen(config, os.path.join(PUBLISHED, "endpoint_screen"))


def _screen_evaluations(run):
  """{epoch: row} of a published screen run's evaluations."""
  return {int(r["epoch"]): r for r in read_history(
      os.path.join(PUBLISHED, "endpoint_screen", "runs", run)) if "validation_error" in r}


def _rule1(errors):
  """Rule 1's figure: the mean of ``errors`` ({epoch: validation error in %})
  at epochs 40, 45 and 50."""
  return sum(errors[e] for e in (40, 45, 50)) / 3


def _rule1_mean(run):
  """Rule 1's figure of a published screen run."""
  return _rule1({e: 100 * r["validation_error"] for e, r in _screen_evaluations(run).items()})


def test_the_third_extra_seed_paragraph_recomputes_from_its_files():
  """RESULTS.md section 7, "Rule 3, third extra seed": `long_s5` seed 2's
  figures, its crossed 7s and what seed 3 must reach, from the published runs."""
  text = " ".join(_results_text().split())
  ev = _screen_evaluations("long_s5-seed2")
  err = {e: 100 * r["validation_error"] for e, r in ev.items()}
  swap = {e: 100 * r["validation_aux_swap_error"] - err[e] for e, r in ev.items()}
  rule1 = {}
  for run in ("long_split_bn-seed1", "long_split_bn-seed2", "long_split_bn-seed3",
              "long_s5-seed1", "long_s5-seed2"):
    rule1[run] = [100 * _screen_evaluations(run)[e]["validation_error"]
                  for e in (40, 45, 50)]
  mean = {k: sum(v) / 3 for k, v in rule1.items()}
  split_bn = sum(sum(rule1[f"long_split_bn-seed{i}"]) for i in (1, 2, 3))
  s5 = sum(rule1["long_s5-seed1"]) + sum(rule1["long_s5-seed2"])
  confusion = json.load(open(os.path.join(PUBLISHED, "endpoint_screen", "confusion",
                                          "long_s5-seed2.json")))
  m, cell = confusion["matrix"], confusion["cell"]
  assert (cell["true"], cell["predicted"]) == (7, 9) and len(cell["validation_indices"]) == m[7][9]
  q = cell["probability_of_predicted"]
  s5_means = [mean["long_s5-seed1"], mean["long_s5-seed2"]]
  for phrase in (
      f"validation error {err[40]:.2f}%, {err[45]:.2f}% and {err[50]:.2f}% at epochs 40, 45 "
      f"and 50, **mean {mean['long_s5-seed2']:.2f}%**, "
      f"{mean['long_s5-seed2'] - mean['long_split_bn-seed2']:.2f} points above `long_split_bn` "
      f"on the same label set ({mean['long_split_bn-seed2']:.2f}%) and "
      f"{mean['long_s5-seed2'] - mean['long_s5-seed1']:.2f} above its own seed 1",
      f"(at least {min(r['validation_aux_alive_fraction'] for r in ev.values()):.3f} of "
      f"its units at every evaluation); swap cost +{swap[50]:.2f} points at epoch 50 "
      f"(+{swap[5]:.2f} at epoch 5, +{min(v for e, v in swap.items() if e >= 10):.2f} to "
      f"+{max(v for e, v in swap.items() if e >= 10):.2f} from epoch 10 on)",
      f"Last 20 epochs {err[50] - err[30]:.2f} points",
      f"{m[7][9]} of the {sum(m[7])} validation 7s classified as 9 "
      f"({100 * m[7][9] / sum(m[7]):.1f}%) and {m[4][9]} of the {sum(m[4])} 4s "
      f"({100 * m[4][9] / sum(m[4]):.1f}%) as 9, together {m[7][9] + m[4][9]} of its "
      f"{confusion['errors']} errors ({100 * (m[7][9] + m[4][9]) / confusion['errors']:.0f}%)",
      f"median {statistics.median(q):.3f} over the {m[7][9]} (lowest {min(q):.3f})",
      f"{s5_means[0]:.2f}% and {s5_means[1]:.2f}%, mean {statistics.mean(s5_means):.2f}% "
      f"(standard deviation {statistics.stdev(s5_means):.2f})",
      f"Its nine evaluations sum to {split_bn:.2f} points, `long_s5`'s six to {s5:.2f}",
      f"only if its seed 3 averages below {(split_bn - s5) / 3:.2f}%** (its three evaluations "
      f"summing to under {split_bn - s5:.2f} points); `long_split_bn`'s seed 3, on the same "
      f"label set, averaged {mean['long_split_bn-seed3']:.2f}%"):
    assert phrase in text, phrase


def test_the_screen_table_recomputes_from_the_published_runs_and_is_in_results():
  """docs/results/endpoint_screen/screen.md (written from the live run
  directories) agrees, in every finished row and every line below the table,
  with the rule applied to the published copies of those runs; RESULTS.md
  section 7 carries it verbatim."""
  screen_dir = os.path.join(PUBLISHED, "endpoint_screen")
  recomputed = endpoint_screen.markdown(_published_screen())
  with open(os.path.join(screen_dir, "screen.md"), encoding="utf-8") as f:
    shipped = f.read()

  def finished(text):
    return [line for line in text.splitlines()
            if "| not started |" not in line and "| running" not in line]

  assert finished(shipped) == finished(recomputed)
  assert sum("| passes |" in line for line in finished(shipped)) >= 8   # eight finished runs
  assert shipped in _results_text()


def test_how_settings_are_chosen_says_how_the_learning_rate_was_rechosen():
  """The learning-rate bullet of "How settings are chosen": section 7's rule-1
  means of `long` (3e-3 schedule) and `long_lr_authors` (3e-4), from the
  published runs, and the chosen flagfile keeps the 3e-3 schedule."""
  rows = _published_screen()["rows"]
  measure = {r["name"]: r["measure"] for r in rows if r["seed"] == 1 and "measure" in r}
  text = " ".join(_results_text().split())
  assert (f"on the validation split, at 50 epochs, by a rule written before the runs: "
          f"{measure['long']:.2f}% against {measure['long_lr_authors']:.2f}% mean "
          f"validation error at epochs 40-50 (seed 1;") in text
  assert measure["long"] < measure["long_lr_authors"]
  with open(os.path.join(REPO, "mnist100_long.flags")) as f:
    assert "--flagfile=mnist100_cpu.flags" in f.read().split("\n")
  with open(os.path.join(REPO, "mnist100_cpu.flags")) as f:
    lines = f.read().split("\n")
  assert {"--learning_rate=3e-3", "--lr_decay=0.75", "--lr_decay_every=10"} <= set(lines)
  with open(os.path.join(REPO, "mnist100_long_split_bn.flags")) as f:
    assert not [line for line in f.read().split("\n")
                if line.startswith(("--learning_rate", "--lr_"))]


def test_the_confusion_table_recomputes_from_its_matrices():
  """RESULTS.md section 7, "Where the errors are": every cell but the label
  and checkpoint columns from docs/results/endpoint_screen/confusion/*.json."""
  rows = _table_after(_results_text(), "| run | label seed | checkpoint | validation error |")
  assert [r[0] for r in rows] == list(_CONFUSION_RUNS)
  for row in rows:
    with open(os.path.join(PUBLISHED, "endpoint_screen", "confusion",
                           _CONFUSION_RUNS[row[0]] + ".json")) as f:
      s = json.load(f)
    c, n, errors = s["matrix"], s["images"], s["errors"]
    assert sum(map(sum, c)) == n and n - sum(c[k][k] for k in range(10)) == errors
    k = c[5][3]
    other = next(x for x in s["confusions"] if (x["true"], x["predicted"]) != (5, 3))
    assert row[3:] == [f"{100 * errors / n:.2f}%", f"{k} ({100 * k / sum(c[5]):.1f}%)",
                       f"{100 * k / n:.2f}", f"{100 * (errors - k) / n:.2f}%",
                       f"{other['true']} → {other['predicted']}: {other['images']}"], row


_LABEL_BOUNDS = [
    ("the 200-epoch run (`long_s5`, label set 1), epoch 45",
     ("long_s5_200", "label-bounds-epoch45.json")),
    ("`long_s5` seed 2 (label set 2), epoch 50",
     ("endpoint_screen", "label_bounds", "long_s5-seed2-7to9.json")),
    ("`long_s5` seed 2 (label set 2), epoch 50",
     ("endpoint_screen", "label_bounds", "long_s5-seed2-4to9.json")),
    ("`long_split_bn` seed 3 (label set 3), epoch 50",
     ("endpoint_screen", "label_bounds", "long_split_bn-seed3-5to3.json")),
    ("`long_split_bn` seed 2 (label set 2), epoch 50",
     ("endpoint_screen", "label_bounds", "long_split_bn-seed2-4to9.json"))]


def test_the_whose_errors_table_and_paragraph_recompute_from_the_probe_files():
  """RESULTS.md section 7, "Whose errors": each row from its label_bounds JSON
  (and its classifier error the run's own, from the confusion probe or the
  history), and the sentences under it from the rows."""
  text = _results_text()
  flat = " ".join(text.split())
  table = _table_after(text, "| checkpoint | classifier's error | error of argmax_y L(x,y)")
  assert len(table) == len(_LABEL_BOUNDS)
  files = {}
  for (name, path), row in zip(_LABEL_BOUNDS, table):
    d = json.load(open(os.path.join(PUBLISHED, *path)))
    files[path[-1]] = d
    c = d["cell"]
    w, r = c["wrong"], c["right"]
    assert d["samples"] == 20 and d["images"] == 5000
    assert w["images"] == len(c["validation_indices"])
    assert w["images"] == d["classifier"]["matrix"][c["true"]][c["predicted"]]
    want = [name, f"{100 * d['classifier_error']:.2f}%", f"{100 * d['bound_vote_error']:.2f}%",
            f"{100 * d['agreement']:.1f}%", f"{c['true']} → {c['predicted']}",
            f"{w['bound_votes_predicted']} / {w['bound_votes_true']} / "
            f"{w['bound_votes_other']} of {w['images']}",
            f"{w['median_margin_nats']:+.1f}",
            f"{r['bound_votes_true']} of {r['images']}; {r['median_margin_nats']:+.1f}"]
    assert row == want
  # The classifier's errors are the runs' own validation errors.
  own = {"long_s5-seed2-7to9.json": ("long_s5-seed2", 50),
         "long_split_bn-seed3-5to3.json": ("long_split_bn-seed3", 50),
         "long_split_bn-seed2-4to9.json": ("long_split_bn-seed2", 50)}
  for f, (run, epoch) in own.items():
    assert files[f]["classifier_error"] == pytest.approx(
        _screen_evaluations(run)[epoch]["validation_error"])
  long45 = json.load(open(os.path.join(PUBLISHED, "long_s5_200", "confusion-epoch45.json")))
  assert files["label-bounds-epoch45.json"]["classifier"]["matrix"] == long45["matrix"]
  assert (files["label-bounds-epoch45.json"]["cell"]["validation_indices"]
          == long45["cell"]["validation_indices"])
  # The sentences.
  checkpoints = {f: d for f, d in files.items() if f != "long_s5-seed2-4to9.json"}
  gaps = [abs(d["classifier_error"] - d["bound_vote_error"]) * 100 for d in checkpoints.values()]
  agree = [100 * d["agreement"] for d in checkpoints.values()]
  assert len(checkpoints) == 4
  assert (f"On all four checkpoints the bound's vote is as good a classifier as q(y\\|a,x) "
          f"({min(gaps):.2f} to {max(gaps):.2f} points apart, either way) and agrees with it "
          f"on {min(agree):.1f}-{max(agree):.1f}% of the images.") in flat
  long_w = files["label-bounds-epoch45.json"]["cell"]["wrong"]
  s2_w = files["long_s5-seed2-7to9.json"]["cell"]["wrong"]
  assert (f"it votes 9 for {long_w['bound_votes_predicted']} of the long run's "
          f"{long_w['images']} crossed 7s and for {s2_w['bound_votes_predicted']} of seed 2's "
          f"{s2_w['images']}, by a median {long_w['median_margin_nats']:.1f} and "
          f"{s2_w['median_margin_nats']:.1f} nats") in flat
  right = [-files[f]["cell"]["right"]["median_margin_nats"]
           for f in ("label-bounds-epoch45.json", "long_s5-seed2-7to9.json")]
  assert f"sit a median {min(right):.0f}-{max(right):.0f} nats on the other side" in flat
  small = [files[f]["cell"]["wrong"]["median_margin_nats"]
           for f in ("long_s5-seed2-4to9.json", "long_split_bn-seed3-5to3.json")]
  assert f"are the bound's too but by {min(small):.0f}-{max(small):.0f} nats" in flat
  edge = files["long_split_bn-seed2-4to9.json"]["cell"]["wrong"]
  assert (f"({edge['median_margin_nats']:+.1f} nats, the bound split "
          f"{edge['bound_votes_predicted']} / {edge['bound_votes_true']} / "
          f"{edge['bound_votes_other']})") in flat
  big = [long_w["median_margin_nats"], s2_w["median_margin_nats"]]
  assert f"against {min(big):.0f}-{max(big):.0f} nats each" in flat
  # The labelled images: every one voted its label; the barred 7s are the
  # 4th of label set 2's labelled 7s and the 9th of label set 1's (by eye, in
  # the confusion figures, which draw them in this order).
  lab2 = json.load(open(os.path.join(PUBLISHED, "endpoint_screen", "label_bounds",
                                     "long_s5-seed2-labeled-7to9.json")))
  lab1 = json.load(open(os.path.join(PUBLISHED, "long_s5_200",
                                     "label-bounds-epoch45-labeled.json")))
  for lab in (lab1, lab2):
    assert lab["images_of"] == "labeled" and lab["images"] == 100
    assert lab["bound_vote_error"] == 0 and lab["cell"]["right"]["images"] == 10
  m2, m1 = lab2["cell"]["margins_of_class"], lab1["cell"]["margins_of_class"]
  assert (f"puts each labelled 7 on 7's side by {-max(m2):.1f} to {-min(m2):.1f} nats (the "
          f"barred one by {-m2[3]:.1f}); in the long run, label set 1's barred labelled 7 "
          f"sits there by {-m1[8]:.1f}") in flat
  medians = [-lab["cell"]["right"]["median_margin_nats"] for lab in (lab2, lab1)]
  ratio = [m / r for m, r in zip(medians, right[::-1])]
  # Beside the authors' script's public run: ours, from the published files.
  long_ev = {int(r["epoch"]): 100 * r["validation_error"]
             for r in read_history(os.path.join(PUBLISHED, "long_s5_200"))
             if "validation_error" in r}
  span = [v for e, v in long_ev.items() if 45 <= e <= 100]
  means = [statistics.mean(100 * _screen_evaluations(run)[e]["validation_error"]
                           for e in (40, 45, 50)) for run in ("long_s5-seed1", "long_s5-seed2")]
  assert (f"was at {min(span):.2f}-{max(span):.2f}% validation from epoch 45 to 100, and the "
          f"same recipe ranged from {min(means):.2f}% to {max(means):.2f}% over label sets "
          f"(rule 1's means of epochs 40, 45 and 50).") in flat
  assert (f"The labelled 7s' median margins, {medians[0]:.1f} and {medians[1]:.1f} nats, are "
          f"{min(ratio):.1f}-{max(ratio):.0f} times those of the validation 7s") in flat


def test_the_epoch_100_sentence_recomputes_from_its_probe_files():
  """RESULTS.md section 7: the long run's epoch-100 checkpoint, its 7 -> 9 cell
  against epoch 45's and the bound's vote on it, from the two probe files."""
  text = " ".join(_results_text().split())
  home = os.path.join(PUBLISHED, "long_s5_200")
  c = json.load(open(os.path.join(home, "confusion-epoch100.json")))
  b = json.load(open(os.path.join(home, "label-bounds-epoch100.json")))
  e45 = json.load(open(os.path.join(home, "confusion-epoch45.json")))
  assert c["checkpoint"] == b["checkpoint"] == "ckpt-55000"  # epoch 100 (550 steps an epoch)
  ev = {int(r["epoch"]): r for r in read_history(home) if "validation_error" in r}
  assert c["error"] == ev[100]["validation_error"] == b["classifier_error"]
  cell = c["cell"]["validation_indices"]
  assert b["cell"]["validation_indices"] == cell
  kept = set(e45["cell"]["validation_indices"])
  assert c["against"]["checkpoint"] == e45["checkpoint"]
  assert c["against"]["cell"]["same"] == len(kept & set(cell)) == len(kept)
  p = c["cell"]["probability_of_predicted"]
  w = b["cell"]["wrong"]
  old = json.load(open(os.path.join(home, "label-bounds-epoch45.json")))["cell"]["wrong"]
  assert (f"At epoch 100 ({100 * c['error']:.2f}%; "
          f"[`confusion-epoch100.json`](results/long_s5_200/confusion-epoch100.json)) it holds "
          f"{len(cell)}, all {len(kept)} of epoch 45's among them, q̄(y = 9\\|x) median "
          f"{statistics.median(p):.3f} (lowest {min(p):.3f}), and the bound's own vote") in text
  assert (f"errs on {100 * b['bound_vote_error']:.2f}% of the images and votes 9 for "
          f"{w['bound_votes_predicted']} of the {w['images']}, by a median "
          f"{w['median_margin_nats']:.1f} nats ({old['median_margin_nats']:.1f} at epoch 45).") in text


def test_the_a_reward_paragraph_recomputes_from_its_probe_files():
  """RESULTS.md section 7, "Why I(y;a|x) falls": the a_reward probe's figures
  at epochs 45 and 100 and the swap cost at 100, from the published files."""
  text = " ".join(_results_text().split())
  home = os.path.join(PUBLISHED, "long_s5_200")
  a45 = json.load(open(os.path.join(home, "a-reward-epoch45.json")))
  a100 = json.load(open(os.path.join(home, "a-reward-epoch100.json")))
  assert (a45["checkpoint"], a100["checkpoint"]) == ("ckpt-24750", "ckpt-55000")
  m, e, m2, e2 = a45["mean"], a45["standard_error"], a100["mean"], a100["standard_error"]
  assert m2["I"] < m["I"] and m["C-I"] < 0 and m2["C-I"] < 0
  ev = {int(r["epoch"]): r for r in read_history(home) if "validation_error" in r}
  swap = 100 * (ev[100]["validation_aux_swap_error"] - ev[100]["validation_error"])
  assert (f"At the epoch-45 checkpoint C = C_a + C_z with C_a = {m['C_a']:+.4f} and C_z = "
          f"{m['C_z']:+.4f}, and "
          f"I = {m['I']:.4f} nats per image, C − I = {m['C-I']:+.4f} (standard error "
          f"{e['C-I']:.4f};") in text
  assert (f"at epoch 100, I = {m2['I']:.4f} and C − I = {m2['C-I']:+.4f} ({e2['C-I']:.4f};"
          in text)
  assert f"(+{swap:.2f} points at epoch 100)" in text


def test_the_block_paragraphs_recompute_from_their_files():
  """RESULTS.md section 7, "When a block forms" and "Does a block move": the
  rerun repeats the screen run, the cells' histories and the more_labels
  table, from docs/results/blocks."""
  from experiments.probes import same_history
  text = " ".join(_results_text().split())
  blocks = os.path.join(PUBLISHED, "blocks")
  rows_compared, values, differ = same_history.compare(
      os.path.join(PUBLISHED, "endpoint_screen", "runs", "long-seed1", "history.csv"),
      os.path.join(blocks, "long-seed1-history.csv"))[:3]
  assert not differ
  assert (f"finds its first {rows_compared} epochs identical to the screen run's, 0 of "
          f"{values} values differing") in text
  history = {c: json.load(open(os.path.join(blocks, f"cell-history-{c}.json")))
             for c in ("5to3", "9to7", "7to9")}
  by_epoch = {c: {int(r["epoch"]): r for r in h["rows"]} for c, h in history.items()}
  last = max(by_epoch["5to3"])
  first = {c: by_epoch[c][1] for c in history}
  n_last = {c: len(h["last_cell_validation_indices"]) for c, h in history.items()}
  cells = {c: [r["cell"] for r in h["rows"]] for c, h in history.items()}
  q79 = [r["last_cell_median_q_pred"] for r in history["7to9"]["rows"]]
  for phrase in (
      f"at epoch 1, {first['5to3']['cell']} validation 5s are classified as 3, "
      f"{first['5to3']['last_cell_in_cell']} of epoch {last}'s {n_last['5to3']} among them, "
      f"q̄(y = 3\\|x) of those {n_last['5to3']} already at a median of "
      f"{first['5to3']['last_cell_median_q_pred']:.3f}, and "
      f"{first['5to3']['train_pool_called_pred']} of the unlabelled training 5s are called 3; "
      f"from epoch 1 to {last} the cell holds {min(cells['5to3'])}-{max(cells['5to3'])} images, "
      f"and the median stays at "
      f"{min(r['last_cell_median_q_pred'] for r in history['5to3']['rows']):.3f}.",
      f"({first['9to7']['cell']} images at epoch 1, {first['9to7']['last_cell_in_cell']} of "
      f"them among epoch {last}'s {n_last['9to7']})",
      f"{min(cells['7to9'][1:])}-{max(cells['7to9'][1:])} images from epoch 2 on, its members "
      f"changing ({first['7to9']['last_cell_in_cell']} of epoch {last}'s {n_last['7to9']} in "
      f"it at epoch 1) and q̄(y = 9\\|x) of epoch {last}'s at a median of "
      f"{min(q79):.2f}-{max(q79):.2f}"):
    assert phrase in text, phrase
  rows, gain, cell_points, added = [], {}, {}, {}
  for c, name, n, f in (("5to3", "5 → 3", 3, "more-labels-5to3.json"),
                        ("5to3", "5 → 3", 10, "more-labels-5to3-add10.json"),
                        ("5to3", "5 → 3", 30, "more-labels-5to3-add30.json"),
                        ("7to9", "7 → 9", 3, "more-labels-7to9.json")):
    m = json.load(open(os.path.join(blocks, f)))
    run = by_epoch[c]
    assert m["start_epoch"] == 10 and m["epochs"] == 10 and m["add"] == n
    assert m["rows"][0]["validation_error"] == run[10]["validation_error"]
    start = set(run[10]["cell_validation_indices"])
    assert sorted(start) == m["start_cell_validation_indices"]
    ours = [run[e]["cell"] for e in range(11, 21)]
    theirs = [r["cell"] for r in m["rows"][1:]]
    ours_err = statistics.mean(100 * run[e]["validation_error"] for e in range(11, 21))
    theirs_err = statistics.mean(100 * r["validation_error"] for r in m["rows"][1:])
    gain[c, n], cell_points[c, n] = ours_err - theirs_err, (statistics.mean(ours)
                                                             - statistics.mean(theirs)) / 50
    rows.append(f"| {name} | {n} | {len(start)} | {statistics.mean(ours):.1f} ({min(ours)}-"
                f"{max(ours)}) | {statistics.mean(theirs):.1f} ({min(theirs)}-{max(theirs)}) | "
                f"{len(start & set(run[20]['cell_validation_indices']))} / "
                f"{m['rows'][-1]['start_cell_still_in_cell']} | {ours_err:.2f}% / "
                f"{theirs_err:.2f}% |")
    added[c, n] = m
  for row in rows:
    assert row in _results_text(), row
  five, ten, thirty = added["5to3", 3], added["5to3", 10], added["5to3", 30]
  assert (f"the unlabelled training 5s called 3: {five['rows'][-1]['train_pool_called_pred']} "
          f"at epoch 20, the run {by_epoch['5to3'][20]['train_pool_called_pred']})") in text
  assert (f"to {ten['rows'][1]['cell']} and {thirty['rows'][1]['cell']} images at epoch 11, "
          f"and then it grows back while the labels stay fitted: {ten['rows'][-1]['cell']} and "
          f"{thirty['rows'][-1]['cell']} images at epoch 20 (the unlabelled training 5s called "
          f"3: {ten['rows'][-1]['train_pool_called_pred']} and "
          f"{thirty['rows'][-1]['train_pool_called_pred']})") in text
  assert (f"(10 and 30 labels: {gain['5to3', 10]:.2f} and {gain['5to3', 30]:.2f} points below "
          f"the run over the ten epochs, the cell's own share {cell_points['5to3', 10]:.2f} and "
          f"{cell_points['5to3', 30]:.2f})") in text
  assert (f"by {gain['5to3', 3]:.2f} and {gain['7to9', 3]:.2f} points, the 7 → 9 one by more "
          f"than its cell's own {cell_points['7to9', 3]:.2f}") in text
  assert gain["7to9", 3] > cell_points["7to9", 3] > 2 * cell_points["5to3", 3]
  added = list(added.values())
  before = max(max(m["rows"][0]["added_q_true"]) for m in added)
  after = min(min(r["added_q_true"]) for m in added for r in m["rows"][1:])
  assert (f"q̄(y = T\\|x) of each from at most {before:.2f} to at least {after:.3f} at "
          f"epoch 11, and to the end)") in text


def test_the_fourth_extra_seed_paragraph_recomputes_from_its_files():
  """RESULTS.md section 7, "Rule 3, fourth extra seed": seed 3's evaluations,
  rule 2, and rule 3's answer, from the published runs."""
  text = " ".join(_results_text().split())
  ev = _screen_evaluations("long_s5-seed3")
  err = [100 * ev[e]["validation_error"] for e in sorted(ev)]
  listed = ", ".join(f"{v:.2f}" for v in err[:-1]) + f" and {err[-1]:.2f}%"
  rule1 = {run: statistics.mean(100 * _screen_evaluations(run)[e]["validation_error"]
                                for e in (40, 45, 50))
           for run in ("long_split_bn-seed1", "long_split_bn-seed2", "long_split_bn-seed3",
                       "long_s5-seed1", "long_s5-seed2", "long_s5-seed3")}
  split_bn = [rule1[f"long_split_bn-seed{i}"] for i in (1, 2, 3)]
  s5 = [rule1[f"long_s5-seed{i}"] for i in (1, 2, 3)]
  assert statistics.mean(split_bn) < statistics.mean(s5)   # rule 3 chooses long_split_bn
  swap = 100 * ev[50]["validation_aux_swap_error"] - 100 * ev[50]["validation_error"]
  for phrase in (
      f"has validation error {listed} at epochs {min(ev)} to {max(ev)}, **rule-1 mean "
      f"{rule1['long_s5-seed3']:.2f}%**",
      f"(at least {min(r['validation_aux_alive_fraction'] for r in ev.values()):.3f} of its "
      f"units at every evaluation), swap cost +{swap:.2f} points at epoch 50",
      f"`long_s5`'s three seeds: mean {statistics.mean(s5):.2f}% (standard deviation "
      f"{statistics.stdev(s5):.2f}), against `long_split_bn`'s {statistics.mean(split_bn):.2f}% "
      f"({statistics.stdev(split_bn):.2f}): **rule 3 chooses `long_split_bn`.**",
      f"seed 3 then stood at {100 * ev[40]['validation_error']:.2f}% at epoch 40, so epochs 45 "
      f"and 50 would have had to average under "
      f"{(3 * statistics.mean(split_bn) * 3 - sum(s5[:2]) * 3 - 100 * ev[40]['validation_error']) / 2:.2f}%"):
    assert phrase in text, phrase


def _label_bounds(*parts):
  """{step: file} of the label_bounds files in docs/results/blocks/<parts>."""
  files = [json.load(open(f)) for f in glob.glob(
      os.path.join(PUBLISHED, "blocks", *parts, "label-bounds-step*.json"))]
  return {int(j["checkpoint"].split("-")[1]): j for j in files}


def _follow(j, block, pred):
  """Of the images ``block`` in a label_bounds file's class: how many the
  classifier calls ``pred`` and the bound votes ``pred``, the median margin
  L(x,pred) - L(x,true) inside and outside the block, and the class's size."""
  of = j["cell"]["of_class"]
  c, v, m = (np.array(of[k]) for k in ("classifier", "bound_vote", "margin_nats"))
  inside = np.isin(of["indices"], block)
  return dict(called=int((c[inside] == pred).sum()), voted=int((v[inside] == pred).sum()),
              m_in=float(np.median(m[inside])), m_out=float(np.median(m[~inside])),
              n=len(of["indices"]))


def test_the_first_epoch_table_and_paragraph_recompute_from_the_probe_files():
  """RESULTS.md section 7, "Inside the first epoch": each row from the
  label_bounds files in docs/results/blocks/first_epoch, following the
  validation 5s the classifier calls 3 at epoch 1, and the paragraph's ranges."""
  results = _results_text()
  text = " ".join(results.split())
  by_step = _label_bounds("first_epoch")
  files = list(by_step.values())
  assert all(j["samples"] == 20 and j["images_of"] == "validation" for j in files)
  assert all((j["cell"]["true"], j["cell"]["predicted"]) == (5, 3) for j in files)
  block = set(by_step[550]["cell"]["validation_indices"])
  fig = {}
  for step, j in sorted(by_step.items()):
    of = j["cell"]["of_class"]
    idx, c = np.array(of["indices"]), np.array(of["classifier"])
    v, m = np.array(of["bound_vote"]), np.array(of["margin_nats"])
    inside = np.isin(idx, sorted(block))
    fig[step] = dict(called=int((c[inside] == 3).sum()), voted=int((v[inside] == 3).sum()),
                     fives=int((c[inside] == 5).sum()), m_in=float(np.median(m[inside])),
                     m_out=float(np.median(m[~inside])), n=len(idx))
    when = f"step {step}" if step < 550 else f"epoch {step // 550}"
    row = (f"| {when} | {100 * j['classifier_error']:.2f}% | {100 * j['bound_vote_error']:.2f}% "
           f"| {int((c == 3).sum())} | {int((v == 3).sum())} | {fig[step]['called']} / "
           f"{fig[step]['voted']} | {fig[step]['m_in']:+.1f} / {fig[step]['m_out']:+.1f} |")
    assert row in results, row
  steps = sorted(by_step)
  assert steps[:6] == [10, 39, 122, 237, 358, 476] and steps[6] == 550
  late = [s for s in steps if s >= 122]
  epochs = [s for s in steps if s >= 550]
  f10, f39, f122 = fig[10], fig[39], fig[122]
  n = fig[550]["n"]
  assert f39["fives"] > (len(block) - f39["called"]) / 2  # "the rest mostly 5"
  for phrase in (
      f"following the {len(block)} validation 5s that the classifier calls 3 at epoch 1 (of "
      f"the {n} validation 5s)",
      f"the {len(block)} / the other {n - len(block)} (nats)",
      f"near chance ({100 * by_step[10]['bound_vote_error']:.2f}% error; it votes 3 for "
      f"{f10['voted']} of the {len(block)})",
      f"already calls {f10['called']} of the {len(block)} \"3\"",
      f"({f39['called']} called 3, the rest mostly 5); by step 122 both hold them "
      f"({f122['called']} called 3, {f122['voted']} voted 3) while the bound learns the other "
      f"digits ({100 * by_step[122]['bound_vote_error']:.2f}% error)",
      f"votes 3 for {min(fig[s]['voted'] for s in late)}-{max(fig[s]['voted'] for s in late)} "
      f"of them with a margin that grows from {f122['m_in']:+.1f} nats at step 122 to "
      f"{min(fig[s]['m_in'] for s in epochs):+.1f} to {max(fig[s]['m_in'] for s in epochs):+.1f}"
      f" nats from epoch 1 on",
      f"({max(fig[s]['m_out'] for s in late):.1f} to {min(fig[s]['m_out'] for s in late):.1f} "
      f"nats)"):
    assert phrase in text, phrase


def test_the_chosen_recipes_first_epoch_recomputes_from_its_probe_files():
  """RESULTS.md section 7, "The chosen recipe's first epoch": each row from the
  label_bounds files in docs/results/blocks/first_epoch_split_bn (5 -> 3 on
  `long`'s epoch-1 block, 9 -> 7 on this run's own), the paragraph's ranges
  and the confusion counts it compares with."""
  results = _results_text()
  text = " ".join(results.split())
  five = _label_bounds("first_epoch_split_bn", "5to3")
  nine = _label_bounds("first_epoch_split_bn", "9to7")
  long5, long9 = _label_bounds("first_epoch"), _label_bounds("first_epoch_9to7")
  assert sorted(five) == sorted(nine) == [10, 52, 90, 198, 294, 385, 481, 550, 1100, 1650,
                                          2750, 5500]
  assert all(j["samples"] == 20 and j["images_of"] == "validation"
             for j in list(five.values()) + list(nine.values()))
  ref = long5[550]["cell"]["validation_indices"]
  own = nine[550]["cell"]["validation_indices"]
  assert (nine[550]["cell"]["true"], nine[550]["cell"]["predicted"]) == (9, 7)
  f5 = {s: _follow(j, ref, 3) for s, j in five.items()}
  f9 = {s: _follow(j, own, 7) for s, j in nine.items()}
  for step in sorted(five):
    # One checkpoint, one classification: both files agree on the run's errors.
    assert five[step]["classifier_error"] == nine[step]["classifier_error"]
    when = f"step {step}" if step < 550 else f"epoch {step // 550}"
    a, b = f5[step], f9[step]
    row = (f"| {when} | {100 * five[step]['classifier_error']:.2f}% | "
           f"{100 * five[step]['bound_vote_error']:.2f}% | {a['called']} / {a['voted']} | "
           f"{a['m_in']:+.1f} / {a['m_out']:+.1f} | {b['called']} / {b['voted']} | "
           f"{b['m_in']:+.1f} / {b['m_out']:+.1f} |")
    assert row in results, row
  # The same trajectory as the screen run and the 200-epoch run.
  screen = _screen_evaluations("long_split_bn-seed1")
  assert five[2750]["classifier_error"] == screen[5]["validation_error"]
  assert five[5500]["classifier_error"] == screen[10]["validation_error"]
  late = [s for s in five if s >= 198]
  held = [s for s in nine if 198 <= s <= 1650]
  l5 = {s: _follow(j, ref, 3) for s, j in long5.items()}
  confusion = os.path.join(PUBLISHED, "endpoint_screen", "confusion")
  m_long = json.load(open(os.path.join(confusion, "long-seed1.json")))["matrix"]
  m_split = json.load(open(os.path.join(confusion, "long_split_bn-seed1.json")))["matrix"]
  m_100 = json.load(open(os.path.join(PUBLISHED, "long_split_bn_200",
                                      "confusion-epoch100.json")))["matrix"]
  long_late = [s for s in long5 if s >= 122]
  for phrase in (
      f"validation errors at epochs 5 and 10, {100 * five[2750]['classifier_error']:.2f}% and "
      f"{100 * five[5500]['classifier_error']:.2f}%,",
      f"following `long`'s {len(ref)} 5s of the table above",
      f"the {len(own)} 9s called 7 at epoch 1: called 7 / voted 7",
      f"it calls {f5[10]['called']} of the {len(ref)} 5s \"3\" (`long`: {l5[10]['called']}), "
      f"while the bound, near chance ({100 * five[10]['bound_vote_error']:.2f}% error), votes 3 "
      f"for {f5[10]['voted']}",
      f"from step 198 on it votes 3 for {min(f5[s]['voted'] for s in late)}-"
      f"{max(f5[s]['voted'] for s in late)} of the {len(ref)}, at a median margin of "
      f"{min(f5[s]['m_in'] for s in late):+.1f} to {max(f5[s]['m_in'] for s in late):+.1f} nats "
      f"(`long`: {min(l5[s]['voted'] for s in long_late)}-"
      f"{max(l5[s]['voted'] for s in long_late)} votes, "
      f"{min(l5[s]['m_in'] for s in long_late):+.1f} to "
      f"{max(l5[s]['m_in'] for s in long_late):+.1f} nats)",
      f"at epoch 10 the classifier calls {f5[5500]['called']} of them \"3\" (`long`: "
      f"{l5[5500]['called']})",
      f"{len(own)} of the {f9[550]['n']} validation 9s are called 7 at epoch 1 "
      f"({len(set(own) & set(long9[550]['cell']['validation_indices']))} of `long`'s "
      f"{len(long9[550]['cell']['validation_indices'])} among them)",
      f"from step 198 to epoch 3 the bound votes 7 for {min(f9[s]['voted'] for s in held)}-"
      f"{max(f9[s]['voted'] for s in held)} of them at a median margin of "
      f"{min(f9[s]['m_in'] for s in held):+.1f} to {max(f9[s]['m_in'] for s in held):+.1f} nats",
      f"{f9[2750]['called']} called and {f9[2750]['voted']} voted at epoch 5 "
      f"({f9[2750]['m_in']:+.1f} nats), {f9[5500]['called']} and {f9[5500]['voted']} at epoch 10 "
      f"({f9[5500]['m_in']:+.1f})",
      f"the validation 9 → 7 cell holds {m_split[9][7]} images at epoch 50 and {m_100[9][7]} at "
      f"epoch 100",
      f"still had {m_long[9][7]} 9s called 7 and {m_long[5][3]} 5s called 3 at epoch 50"):
    assert phrase in text, phrase


def test_the_switch_to_per_pass_statistics_recomputes_from_its_probe_files():
  """RESULTS.md section 7, "Per-pass statistics let a held block go": `long`
  at epoch 1 trained on with --bn_statistics=split (docs/results/blocks/
  switch_split_from_epoch1), row by row beside `long`'s own probe files."""
  results = _results_text()
  text = " ".join(results.split())
  l5, l9 = _label_bounds("first_epoch"), _label_bounds("first_epoch_9to7")
  s5 = _label_bounds("switch_split_from_epoch1", "5to3")
  s9 = _label_bounds("switch_split_from_epoch1", "9to7")
  assert sorted(s5) == [1100, 1650, 2750, 5500] and sorted(s9) == [2750, 5500]
  b5, b9 = l5[550]["cell"]["validation_indices"], l9[550]["cell"]["validation_indices"]
  run = os.path.join(PUBLISHED, "blocks", "switch_split_from_epoch1", "run")
  flags = open(os.path.join(run, "flags.txt")).read().split()
  screen = open(os.path.join(PUBLISHED, "endpoint_screen", "runs", "long-seed1",
                             "flags.txt")).read().split()
  changed = sorted(set(flags) - set(screen))  # options the screen's older code did not write
  assert "--bn_statistics=split" in changed and "--bn_statistics=joint" in screen
  assert {f.split("=")[0] for f in changed} <= {"--bn_statistics", "--epochs", "--grappler",
                                                "--keep_checkpoints", "--keep_epochs",
                                                "--precision"}
  history = {int(r["epoch"]): r for r in read_history(run) if "validation_error" in r}
  assert history[10]["validation_error"] == s5[5500]["classifier_error"]

  def fig(j, block, pred):  # (called, voted, median margin inside)
    f = _follow(j, block, pred)
    return f["called"], f["voted"], f["m_in"]

  def pair(f):
    return f"{f[0]} / {f[1]}"

  for step in sorted(s5):
    a, b, c = fig(l5[step], b5, 3), fig(s5[step], b5, 3), fig(l9[step], b9, 7)
    d = fig(s9[step], b9, 7) if step in s9 else None  # 9 -> 7 probed at epochs 5 and 10
    row = (f"| epoch {step // 550} | {100 * l5[step]['classifier_error']:.2f}% / "
           f"{100 * s5[step]['classifier_error']:.2f}% | {pair(a)}; {pair(b)} | "
           f"{a[2]:+.1f} / {b[2]:+.1f} | {pair(c)}; {pair(d) if d else '-'} | "
           f"{c[2]:+.1f} / {f'{d[2]:+.1f}' if d else '-'} |")
    assert row in results, row
  e5 = fig(s9[2750], b9, 7)
  f10, lf10, l95 = fig(s5[5500], b5, 3), fig(l5[5500], b5, 3), fig(l9[2750], b9, 7)
  margins = {s: fig(j, b5, 3)[2] for s, j in s5.items()}
  long_margins = [fig(l5[s], b5, 3)[2] for s in (1100, 1650, 2750, 5500)]
  own = [json.load(open(os.path.join(PUBLISHED, "endpoint_screen", "confusion",
                                     f"long_split_bn-seed{i}.json"))) for i in (1, 2, 3)]
  own.append(json.load(open(os.path.join(PUBLISHED, "long_split_bn_200",
                                         "confusion-epoch100.json"))))
  largest = max((np.array(c["matrix"]) * (1 - np.eye(10, dtype=int))
                 / np.array(c["matrix"]).sum(1, keepdims=True)).max() for c in own)
  chosen_10 = _screen_evaluations("long_split_bn-seed1")[10]["validation_error"]
  for phrase in (
      f"its validation error there, {100 * l5[550]['classifier_error']:.2f}%",
      f"({len(b5)} 5s called 3, the bound voting 3 for {fig(l5[550], b5, 3)[1]}; {len(b9)} 9s "
      f"called 7)",
      f"({e5[0]} of the {len(b9)} called 7 at epoch 5, the bound voting 7 for {e5[1]}, at a "
      f"median margin of {e5[2]:+.1f} nats; `long`: {l95[0]} and {l95[1]}, {l95[2]:+.1f})",
      f"({f10[0]} of the {len(b5)} called 3, {f10[1]} voted; `long`: {lf10[0]} and {lf10[1]})",
      f"after a jump at epoch 2 ({margins[1100]:+.1f} nats), from {margins[1650]:+.1f} at epoch 3 "
      f"to {margins[5500]:+.1f} at epoch 10 (`long`: {min(long_margins):+.1f} to "
      f"{max(long_margins):+.1f})",
      f"Validation error at epoch 10: {100 * history[10]['validation_error']:.2f}% against "
      f"`long`'s {100 * l5[5500]['classifier_error']:.2f}% (and {100 * chosen_10:.2f}% for the "
      f"chosen recipe",
      f"holds more than {100 * largest:.2f}% of a class"):
    assert phrase in text, phrase


def test_the_label_set_paragraph_recomputes_from_the_nearest_labelled_files():
  """RESULTS.md section 7, "Which 5s: the label set's part": the nearest-
  labelled classifier's counts on each label set, inside and outside the
  blocks, from docs/results/blocks/nearest_labelled and the blocks' files."""
  text = " ".join(_results_text().split())
  nn = {n: json.load(open(os.path.join(PUBLISHED, "blocks", "nearest_labelled",
                                       f"label-set-{n}.json"))) for n in (1, 2, 3)}
  assert all(j["k"] == 1 and j["labelled"] == 100 for j in nn.values())
  blocks = {1: os.path.join(PUBLISHED, "blocks", "first_epoch", "label-bounds-step00550.json"),
            3: os.path.join(PUBLISHED, "endpoint_screen", "confusion", "long_s5-seed3-5to3.json")}
  share, ratios = {}, []
  for n, path in blocks.items():
    cell = json.load(open(path))["cell"]
    assert (cell["true"], cell["predicted"]) == (5, 3)
    block = cell["validation_indices"]
    p = np.array(nn[n]["predicted"])
    m = nn[n]["matrix"]
    inside = int((p[block] == 3).sum())
    outside, rest = m[5][3] - inside, sum(m[5]) - len(block)
    share[n] = (inside, len(block), outside, rest, sum(m[5]), m[5][3])
    ratios.append((inside / len(block)) / (outside / rest))
  i1, b1, o1, r1, f1, c1 = share[1]
  i3, b3, o3, r3, f3, c3 = share[3]
  matrix2 = nn[2]["matrix"]
  confusion = os.path.join(PUBLISHED, "endpoint_screen", "confusion")
  set_two = [json.load(open(os.path.join(confusion, f + ".json")))["matrix"][5]
             for f in _CONFUSION_RUNS.values() if f.endswith("seed2")]
  assert len(set_two) == 3 and all(row[3] / sum(row) < 0.15 for row in set_two)
  near = np.array(nn[1]["predicted"])

  def taken_up(step):
    of = json.load(open(os.path.join(PUBLISHED, "blocks", "first_epoch",
                                     f"label-bounds-step{step:05d}.json")))["cell"]["of_class"]
    near3 = near[of["indices"]] == 3
    c, v = np.array(of["classifier"]) == 3, np.array(of["bound_vote"]) == 3
    return int(near3.sum()), int((c & near3).sum()), int((c & ~near3).sum()), int((v & near3).sum())

  n10, c10, other10, _ = taken_up(10)
  n550, c550, _, v550 = taken_up(550)
  assert n10 == n550 == c1
  for phrase in (
      f"after ten steps it calls {c10} of the {n10} \"3\" (and {other10} other 5s); at epoch 1, "
      f"{c550} of the {n550} are in the block and the bound votes 3 for {v550} of them.",
      f"With label set 1 it has {100 * nn[1]['error']:.2f}% error and calls {c1} of the {f1} "
      f"validation 5s \"3\": {i1} of them among the block's {b1} ({100 * i1 / b1:.0f}%), {o1} "
      f"among the other {r1} ({100 * o1 / r1:.1f}%).",
      f"With label set 3 it calls {c3} of {f3} 5s \"3\": {i3} of the {b3} in `long_s5` seed 3's "
      f"epoch-50 block ({100 * i3 / b3:.0f}%;",
      f"{o3} of the other {r3} ({100 * o3 / r3:.1f}%)",
      f"{min(ratios):.0f}-{max(ratios):.0f} times as often",
      f"label set 2 has as many ({matrix2[5][3]} of {sum(matrix2[5])})",
      f"calls {nn[1]['matrix'][3][5]} of label set 1's validation 3s \"5\""):
    assert phrase in text, phrase


def test_the_nine_to_seven_sentence_recomputes_from_its_probe_files():
  """RESULTS.md section 7, "Inside the first epoch": the 9 -> 7 block's
  sentence, from docs/results/blocks/first_epoch_9to7."""
  text = " ".join(_results_text().split())
  by_step = _label_bounds("first_epoch_9to7")
  assert all((j["cell"]["true"], j["cell"]["predicted"]) == (9, 7) for j in by_step.values())
  block = by_step[550]["cell"]["validation_indices"]

  def held(step):
    of = by_step[step]["cell"]["of_class"]
    inside = np.isin(of["indices"], block)
    return (int((np.array(of["classifier"])[inside] == 7).sum()),
            int((np.array(of["bound_vote"])[inside] == 7).sum()))

  voted = [held(s)[1] for s in by_step if s >= 237]
  n = len(by_step[550]["cell"]["of_class"]["indices"])
  for phrase in (
      f"The run's 9 → 7 block ({len(block)} of the {n} validation 9s at epoch 1;",
      f"after ten steps the classifier calls {held(10)[0]} of the {len(block)} \"7\" and the "
      f"bound votes 7 for {held(10)[1]}; at step 122, {held(122)[0]} and {held(122)[1]}; from "
      f"step 237 on the bound votes 7 for {min(voted)}-{max(voted)} of them."):
    assert phrase in text, phrase
