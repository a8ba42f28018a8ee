"""Tests for experiments/endpoint_screen.py: RESULTS.md section 7's rule,
applied to made-up histories whose answer is known by hand."""

import json
import os
import subprocess
import sys

import pytest

from experiments import endpoint_screen as es

from conftest import REPO

FIELDS = ["epoch", "cpu_time", "validation_error", "validation_aux_alive_fraction",
          "validation_aux_swap_error"]


def _run(out, name, seed, rows, samples=1):
  d = out / "runs" / f"{name}-seed{seed}"
  d.mkdir(parents=True)
  lines = [",".join(FIELDS)] + [",".join("" if v is None else str(v) for v in r) for r in rows]
  (d / "history.csv").write_text("\n".join(lines) + "\n")
  (d / "flags.txt").write_text(f"--mc_samples={samples}\n--seed={seed}\n")


def _history(errors, alive=1.0, swap=3.0, cpu=100.0, last=50):
  """One row per epoch to ``last``; evaluations (every 5) get ``errors[epoch]``
  (a fraction) or 0.2; the swap error is the error plus ``swap`` points."""
  rows = []
  for e in range(1, last + 1):
    if e % 5:
      rows.append([e, cpu * e, None, None, None])
    else:
      err = errors.get(e, 0.2)
      rows.append([e, cpu * e, err, alive, err + swap / 100])
  return rows


CONFIG = {"runs": [{"name": n, "flagfile": "mnist100.flags", "seeds": [1]} for n in ("a", "b", "dead", "unused", "s5", "late")]}


@pytest.fixture
def screen_dir(tmp_path):
  out = tmp_path / "screen"
  _run(out, "a", 1, _history({30: 0.060, 40: 0.050, 45: 0.049, 50: 0.048}))  # mean 4.90
  _run(out, "b", 1, _history({30: 0.050, 40: 0.045, 45: 0.044, 50: 0.043}))  # mean 4.40
  _run(out, "dead", 1, _history({40: 0.01, 45: 0.01, 50: 0.01}, alive=0.4))   # best, but a dead
  _run(out, "unused", 1, _history({40: 0.02, 45: 0.02, 50: 0.02}, swap=0.1))  # a ignored
  # S = 5 at 4x the CPU per epoch: equal CPU is epoch 50 x 100/400 = 12.5 -> epoch 10.
  _run(out, "s5", 1, _history({10: 0.11, 40: 0.047, 45: 0.046, 50: 0.045}, cpu=400.0),
       samples=5)                                                             # mean 4.60
  _run(out, "late", 1, _history({}, last=42))                                 # still running
  return out


def test_the_rule_reads_what_it_says(screen_dir):
  result = es.screen(CONFIG, str(screen_dir))
  rows = {r["name"]: r for r in result["rows"]}
  assert rows["a"]["measure"] == pytest.approx(4.90)
  assert rows["a"]["slope"] == pytest.approx(-1.2)          # 4.8 - 6.0 points
  assert rows["a"]["swap"] == pytest.approx(3.0)
  assert rows["a"]["status"] == "passes"
  assert rows["dead"]["status"].startswith("q(a|x) alive 0.4 < 0.5")
  assert rows["unused"]["status"].startswith("swap cost 0.1")
  assert rows["late"]["status"] == "running" and rows["late"]["last_epoch"] == 40
  assert rows["s5"]["cpu_per_epoch"] == 400.0 and result["c1"] == 100.0
  assert rows["s5"]["equal_cpu"] == dict(target_epoch=12.5, epoch=10.0,
                                         error=pytest.approx(11.0))
  assert rows["a"]["equal_cpu"] is None                     # S = 1: nothing to convert
  # Screening goes on while a candidate runs; the leaders exclude a dead or unused a.
  assert result["verdict"] == dict(stage="screening", pending=["late"], leading=["b", "s5"])
  text = es.markdown(result)
  assert "| b | 1 | 1 | 4.50 / 4.40 / 4.30 | 4.40 | 1.00 | +3.00 | passes | -0.70 | 100 | - |" in text
  assert "11.00% at epoch 10 (50 x c1/cS = 12.5)" in text
  assert "| late | 1 | 1 | running (epoch 40) |" in text


def test_the_two_best_go_on_to_three_seeds_and_the_lower_mean_wins(screen_dir):
  config = {"runs": [{"name": "a", "seeds": [1, 2, 3]}, {"name": "b", "seeds": [1, 2, 3]},
                     {"name": "dead", "seeds": [1]}]}
  # Seed 1 done everywhere: the two best that pass go on (their seeds 2, 3 not started).
  assert es.screen(config, str(screen_dir))["verdict"] == dict(stage="seeds 2 and 3",
                                                               chosen_two=["b", "a"])
  for seed, (a, b) in ((2, (0.040, 0.047)), (3, (0.041, 0.048))):
    _run(screen_dir, "a", seed, _history({40: a, 45: a, 50: a}))
    _run(screen_dir, "b", seed, _history({40: b, 45: b, 50: b}))
  v = es.screen(config, str(screen_dir))["verdict"]
  assert v["stage"] == "decided" and v["chosen_two"] == ["b", "a"]
  assert v["means"]["a"] == pytest.approx((4.90 + 4.0 + 4.1) / 3)
  assert v["means"]["b"] == pytest.approx((4.40 + 4.7 + 4.8) / 3)
  assert v["winner"] == "a"   # seed 1 led with b; three seeds decide


def test_the_means_over_finished_seeds_are_reported_as_they_come(screen_dir):
  """Before rule 3 can decide, the table says where each multi-seed candidate
  stands: the mean of (1) over its finished seeds, and which fail rule 2."""
  config = {"runs": [{"name": "a", "seeds": [1, 2, 3]}, {"name": "b", "seeds": [1, 2, 3]},
                     {"name": "dead", "seeds": [1]}, {"name": "late", "seeds": [1, 2]}]}
  _run(screen_dir, "a", 2, _history({40: 0.040, 45: 0.040, 50: 0.040}))            # 4.00
  _run(screen_dir, "a", 3, _history({40: 0.030, 45: 0.030, 50: 0.030}, swap=0.1))  # unused a
  result = es.screen(config, str(screen_dir))
  m = result["seed_means"]
  assert set(m) == {"a", "b"}            # dead: one seed asked; late: none finished
  assert m["a"]["seeds"] == [1, 2, 3] and m["a"]["failing"] == [3]
  mean = (4.90 + 4.0 + 3.0) / 3
  assert m["a"]["mean"] == pytest.approx(mean)
  assert m["a"]["sd"] == pytest.approx((sum((x - mean) ** 2 for x in (4.9, 4.0, 3.0)) / 2) ** 0.5)
  assert (m["b"]["seeds"], m["b"]["mean"], m["b"]["sd"]) == ([1], pytest.approx(4.40), None)
  assert ("Means of (1) over the finished seeds (rule 3 reads seeds 1-3 of the two it picks): "
          "a 3.97% (seeds 1, 2, 3 of 1, 2, 3, sd 0.95; seed 3 fails rule 2); "
          "b 4.40% (seed 1 of 1, 2, 3).") in es.markdown(result)
  # Rule 3 itself still reads only seeds that pass: a's seed 3 keeps a undecided.
  assert result["verdict"]["stage"] == "screening"


def test_rule_4_takes_c1_from_the_named_runs_and_cs_from_its_sample_count(tmp_path):
  """c1: the median over the 1-sample candidates the config names (the others
  ran with two threads); cS: the median over every seed-1 candidate with S
  samples, not the row's own cost (RESULTS.md section 7, rule 4)."""
  out = tmp_path / "screen"
  _run(out, "two_threads", 1, _history({}, cpu=180.0))
  _run(out, "one_thread", 1, _history({}, cpu=120.0))
  _run(out, "one_thread", 2, _history({}, cpu=60.0))   # seed 2: not a candidate's cost
  errors = {e: e / 1000 for e in range(5, 51, 5)}       # epoch 10: 1.0%, 15: 1.5%, ...
  _run(out, "s5_cheap", 1, _history(errors, cpu=400.0), samples=5)
  _run(out, "s5_dear", 1, _history(errors, cpu=560.0), samples=5)
  config = {"runs": [{"name": "two_threads", "seeds": [1]},
                     {"name": "one_thread", "seeds": [1, 2]},
                     {"name": "s5_cheap", "seeds": [1]}, {"name": "s5_dear", "seeds": [1]}],
            "rule4_c1_runs": ["one_thread"]}
  result = es.screen(config, str(out))
  assert result["c1"] == 120.0 and result["costs"] == {1: 120.0, 5: 480.0}
  rows = {r["name"]: r for r in result["rows"]}
  for name in ("s5_cheap", "s5_dear"):       # both: 50 x 120 / 480 = 12.5 -> epoch 10
    assert rows[name]["equal_cpu"] == dict(target_epoch=12.5, epoch=10.0,
                                           error=pytest.approx(1.0))
  assert "S = 1: 120 (from one_thread), S = 5: 480." in es.markdown(result)
  del config["rule4_c1_runs"]                 # without it: every seed-1 1-sample candidate
  assert es.screen(config, str(out))["c1"] == 150.0
  with pytest.raises(es.ConfigError, match=r"rule4_c1_runs \['one_thred'\] must name runs "
                                           r"of the config \(its runs: two_threads, one_thread, "):
    es.screen(dict(config, rule4_c1_runs=["one_thred"]), str(out))


def test_cpu_seconds_per_epoch_skips_the_restart_of_a_launch():
  history = [dict(epoch=1, cpu_time=100), dict(epoch=2, cpu_time=205),
             dict(epoch=3, cpu_time=30),    # a new launch: cpu_time restarted
             dict(epoch=4, cpu_time=131), dict(epoch=5, cpu_time=229)]
  assert es.cpu_seconds_per_epoch(history) == 101  # median of 105, 101 and 98


def test_the_command_writes_the_table_and_fails_in_one_line(screen_dir, tmp_path):
  config = tmp_path / "c.json"
  config.write_text(json.dumps(CONFIG))
  md = tmp_path / "screen.md"
  out = subprocess.run([sys.executable, "-m", "experiments.endpoint_screen",
                        f"--out={screen_dir}", f"--config={config}", f"--write={md}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout == md.read_text()
  assert json.loads((tmp_path / "screen.json").read_text())["c1"] == 100.0
  bad = subprocess.run([sys.executable, "-m", "experiments.endpoint_screen",
                        f"--out={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert (bad.returncode, bad.stderr.strip()) == (
      2, f"experiments.endpoint_screen: error: --out={tmp_path} has no runs/ directory: "
         f"not the screen's output.")


def test_the_screen_config_is_the_one_section_7_names():
  config = json.load(open(os.path.join(REPO, "experiments", "endpoint_screen.json")))
  assert [r["name"] for r in config["runs"]] == [
      "long_lr_authors", "long", "long_split_bn", "long_authors_init", "authors",
      "long_s5", "adgm_authors"]
  assert config["rule4_c1_runs"] == ["long_authors_init"]   # the single-thread S = 1 run
  assert es.MEASURE_EPOCHS == (40, 45, 50) and es.SWAP_FLOOR == 0.2


@pytest.mark.parametrize("args, env, message", [
    (["0", "OUT", "long:nosuch"], {}, "no candidate 'nosuch'"),
    (["0", "OUT", "justname"], {}, "justname: give NAME:SEED, long:NAME or long:NAME:SEED"),
    (["0", "OUT", "long:long_split_bn:0"], {}, "give the seed as a whole number from 1"),
    (["0", "OUT", "long:long_split_bn:x"], {}, "give the seed as a whole number from 1"),
    (["x", "OUT", "long_s5:2"], {}, "CORE=x: give a CPU number"),
    (["0", "OUT"], {}, "usage: bash experiments/endpoint_jobs.sh"),
    (["0", "OUT", "long_s5:2"], {"PYTHON": "/nonexistent/python"}, "PYTHON=/nonexistent/python"),
    (["0", "OUT", "long_s5:2"], {"ADGM_MNIST_DIR": "/nonexistent"}, "no MNIST IDX directory"),
])
def test_the_job_queue_refuses_bad_jobs_in_one_line(tmp_path, args, env, message):
  """experiments/endpoint_jobs.sh: each mistake is one line and exit 2, before
  anything runs."""
  args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
  run_env = dict(os.environ, PYTHON=sys.executable, ADGM_MNIST_DIR=str(tmp_path))
  run_env.update(env)
  out = subprocess.run(["bash", "experiments/endpoint_jobs.sh", *args], cwd=REPO,
                       env=run_env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2, out
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], out.stderr
  assert not os.path.exists(tmp_path / "out" / "endpoint_long" / "nosuch")


@pytest.mark.parametrize("job, run, seed", [
    ("long:long_split_bn", "long_split_bn", 1),
    ("long:long_split_bn:1", "long_split_bn", 1),
    ("long:long_split_bn:2", "long_split_bn-seed2", 2)])
def test_a_long_job_gives_long_run_its_seed_and_run_directory(tmp_path, job, run, seed):
  """long:NAME[:SEED] reaches launch.py (through experiments/long_run.sh) with
  the candidate's flagfile and flags, that seed and label seed, the 200-epoch
  settings, and its own run directory; a stand-in python records the call and
  fails it, and the queue stops in one line."""
  calls = tmp_path / "calls"
  fake = tmp_path / "python"
  fake.write_text(f"#!/bin/bash\nif [ \"$1\" = - ]; then exec {sys.executable} \"$@\"; fi\n"
                  f"echo \"$@\" >> {calls}\nexit 1\n")
  fake.chmod(0o755)
  out = subprocess.run(["bash", "experiments/endpoint_jobs.sh", "0", str(tmp_path / "out"), job],
                       cwd=REPO, env=dict(os.environ, PYTHON=str(fake),
                                          ADGM_MNIST_DIR=str(tmp_path)),
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 2 and out.stderr.strip().splitlines() == [
      f"endpoint_jobs.sh: error: {job} failed; see {tmp_path}/out/jobs-core0.log and "
      f"{tmp_path}/out/endpoint_long/{run}.log"], out.stderr
  call = calls.read_text().split()
  config = {r["name"]: r for r in json.load(open(os.path.join(
      REPO, "experiments", "endpoint_screen.json")))["runs"]}["long_split_bn"]
  assert call[:2] == ["launch.py", f"--flagfile={config['flagfile']}"]
  assert f"--model_dir={tmp_path}/out/endpoint_long/{run}" in call
  assert all(flag in call for flag in config["flags"])
  for flag in (f"--seed={seed}", f"--label_seed={seed}", "--epochs=200",
               "--test_evaluation=never", "--keep_epochs=50,100,150,200"):
    assert call.count(flag) == 1, (flag, call)

