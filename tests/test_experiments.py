"""Tests for adgm_tf.experiments: the runner, its summary, its figures, resume."""

import json
import os
import signal
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from adgm_tf import experiments

from conftest import REPO, run_env


def tiny_experiment(tmp_path, mnist_data_dir):
  config = dict(
      title="tiny",
      common_flags=[f"--data_dir={mnist_data_dir}", "--ll_examples=100"],
      runs=[dict(name="tiny_adgm", flagfile="tests/tiny.flags", seeds=[1, 2],
                 flags=["--epochs=1"])])
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  return str(path)


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_runner_summarizes_two_seeds_and_draws_the_figures(tmp_path, mnist_idx_dir,
                                                           mnist_data_dir):
  from PIL import Image
  config = tiny_experiment(tmp_path, mnist_data_dir)
  out = tmp_path / "out"
  proc = subprocess.run([sys.executable, "-m", "adgm_tf.experiments", f"--config={config}",
                         f"--out={out}"], cwd=REPO, env=run_env(mnist_idx_dir),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
  errors = [json.load(open(out / "runs" / f"tiny_adgm-seed{s}" / "metrics.json"))["test_error"]
            for s in (1, 2)]
  assert errors[0] != errors[1]  # two different runs
  summary = json.load(open(out / "summary.json"))
  row, = summary["rows"]
  assert row["seeds"] == 2
  assert row["test_error_percent"] == pytest.approx(100 * np.mean(errors))
  assert row["test_error_std"] == pytest.approx(100 * np.std(errors, ddof=1))
  md = (out / "summary.md").read_text()
  assert "tiny_adgm" in md and "0.96 ± 0.02" in md and "published figures" in md
  assert "| SDGM: ICML 2016, Table 1 | 1.32 ± 0.07 |" in md
  for name, size in (("convergence.png", (1600, 480)), ("auxiliary.png", (1800, 450)),
                     ("active_units.png", (1200, 450)), ("samples.png", (500, 500))):
    image = Image.open(out / name)
    assert image.size == size, name
    pixels = np.asarray(image.convert("L"), np.float32)
    assert pixels.std() > 5, name  # not a blank image


@pytest.mark.large  # minutes on a 2-core machine: run with --run_large
def test_interrupted_runner_skips_finished_runs_and_resumes_the_other(
    tmp_path, mnist_idx_dir, mnist_data_dir):
  config = dict(
      title="resume",
      common_flags=[f"--data_dir={mnist_data_dir}", "--ll_examples=0",
                    "--max_unlabeled=3000", "--unlabeled_batch_size=30"],
      runs=[dict(name="a", flagfile="tests/tiny.flags", seeds=[0], flags=["--epochs=1"]),
            dict(name="b", flagfile="tests/tiny.flags", seeds=[0], flags=["--epochs=2"])])
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  out = tmp_path / "out"
  args = [sys.executable, "-m", "adgm_tf.experiments", f"--config={path}", f"--out={out}"]
  env = run_env(mnist_idx_dir)
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
  first_ckpt = out / "runs" / "b-seed0" / "checkpoints" / "checkpoint"
  deadline = time.time() + 400
  while not first_ckpt.exists() and time.time() < deadline:
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    time.sleep(0.3)
  assert first_ckpt.exists()
  os.killpg(proc.pid, signal.SIGKILL)  # the runner and its launch.py child
  proc.wait(timeout=30)
  a_metrics = (out / "runs" / "a-seed0" / "metrics.json").read_bytes()
  assert not (out / "runs" / "b-seed0" / "metrics.json").exists()
  again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:] + again.stdout[-3000:]
  assert "a seed 0: finished, skipped" in again.stdout
  assert "b seed 0: resuming" in again.stdout
  assert (out / "runs" / "a-seed0" / "metrics.json").read_bytes() == a_metrics
  log = (out / "runs" / "b-seed0" / "launch.log").read_text()
  assert "resumed from" in log
  assert json.load(open(out / "runs" / "b-seed0" / "metrics.json"))["epochs"] == 2


def test_summary_statistics_by_hand():
  records = [dict(name="m", metrics=dict(test_error=e, test_log_likelihood=ll, epochs=3,
                                         wall_time=120, model="adgm",
                                         validation_error=v, validation_aux_swap_error=v + c,
                                         aux_swap_error=e + c, aux_mean_spread=0.1))
             for e, ll, v, c in ((0.10, -100.0, 0.12, 0.01), (0.20, -110.0, 0.18, 0.02),
                                 (0.30, -90.0, 0.30, 0.03))]
  row, = experiments.summarize(records)["rows"]
  assert row["test_error_percent"] == pytest.approx(20.0)
  assert row["test_error_std"] == pytest.approx(10.0)
  assert row["validation_error"] == pytest.approx(20.0)
  assert row["validation_error_std"] == pytest.approx(np.std([12, 18, 30], ddof=1))
  # Swap cost: error with another image's a minus the error, in points.
  assert row["validation_aux_swap_cost"] == pytest.approx(2.0)
  assert row["aux_swap_cost"] == pytest.approx(2.0)
  assert row["validation_aux_swap_cost_std"] == pytest.approx(1.0)
  assert row["aux_mean_spread"] == pytest.approx(0.1)
  assert row["aux_mean_spread_std"] == pytest.approx(0.0, abs=1e-12)
  assert row["aux_alive_fraction"] is None  # not in these metrics
  assert row["test_log_likelihood"] == pytest.approx(-100.0)
  assert row["wall_time_minutes"] == pytest.approx(2.0)
  assert row["seeds"] == 3


def test_a_validation_only_run_shows_its_validation_diagnostics():
  """Runs that never read the test set: the table falls back to the validation split."""
  records = [dict(name="v", metrics=dict(model="adgm", validation_error=0.2,
                                         validation_aux_swap_error=0.2 + c,
                                         validation_aux_alive_fraction=a,
                                         validation_aux_mean_spread=0.1,
                                         validation_aux_information=0.02))
             for c, a in ((0.004, 0.6), (0.008, 0.7))]
  summary = experiments.summarize(records)
  row, = summary["rows"]
  assert row["aux_alive_fraction"] is None
  assert row["validation_aux_alive_fraction"] == pytest.approx(0.65)
  line = [x for x in experiments.summary_markdown(summary, "t").splitlines()
          if x.startswith("| v |")][0]
  cells = [c.strip() for c in line.strip("|").split("|")]
  # run, model, seeds, epochs, validation, test, alive, spread, swap val, swap test, I
  assert cells[5] == "-"
  assert cells[6] == f"0.65 ± {np.std([0.6, 0.7], ddof=1):.2f} (val.)"
  assert cells[7] == "0.100 ± 0.000 (val.)"
  assert cells[8] == "0.60 ± 0.28"
  assert cells[9] == "-"  # the test swap cost has no stand-in: validation has its column
  assert cells[10] == "0.020 ± 0.000 (val.)"
  # One seed: the value alone, no "± 0.00" that would pass for a measured spread.
  one = experiments.summarize(records[:1])
  line = [x for x in experiments.summary_markdown(one, "t").splitlines()
          if x.startswith("| v |")][0]
  cells = [c.strip() for c in line.strip("|").split("|")]
  assert cells[2] == "1" and cells[4] == "20.00" and cells[6] == "0.60 (val.)"
  # ... and summary.json stores no spread for it (null, not a measured 0.0).
  row, = one["rows"]
  assert row["validation_error"] == pytest.approx(20.0) and row["validation_error_std"] is None


def synthetic_records(tmp_path):
  """Two runs x two seeds with per-epoch histories (no training needed)."""
  records = []
  for name, base in (("adgm", 0.20), ("m2", 0.25)):
    for seed in (1, 2):
      d = tmp_path / "runs" / f"{name}-seed{seed}"
      d.mkdir(parents=True)
      (d / "flags.txt").write_text(
          f"# Written by launch.py; replay with --flagfile=<this file>.\n--model_dir={d}\n"
          f"--idx_dir={os.path.expanduser('~')}/x\n--mc_samples=1\n--eval_samples_periodic=10\n"
          f"--checkpoint={d}/best/ckpt-7\n--probe={os.path.expanduser('~')}/adgm-results/y\n")
      history = [dict(epoch=float(e), wall_time=60.0 * e, validation_error=base / e + 0.01 * seed,
                      test_error=base / e, validation_aux_swap_error=base / e + 0.02,
                      validation_aux_alive_fraction=0.9, validation_aux_mean_spread=0.1 / e,
                      validation_aux_information=0.05) for e in (1, 2, 3)]
      metrics = dict(model=name, test_error=base / 3, validation_error=base / 3,
                     kl_per_unit_z=list(np.linspace(0, 1, 10)), kl_per_unit_a=[0.001] * 10)
      (d / "metrics.json").write_text(json.dumps(metrics))
      records.append(dict(name=name, seed=seed, model_dir=str(d), metrics=metrics,
                          history=history))
  return records


def test_figures_and_publish_from_finished_runs(tmp_path):
  from PIL import Image
  records = synthetic_records(tmp_path)
  curves = experiments.per_epoch(records, "validation_error", 100.0)
  epochs, mean, lo, hi, n = curves["adgm"]
  assert list(epochs) == [1, 2, 3] and n == 2
  np.testing.assert_allclose(mean, [21.5, 11.5, 100 * 0.2 / 3 + 1.5])
  np.testing.assert_allclose(hi - lo, 1.0)  # the seeds differ by 0.01
  out = tmp_path / "out"
  out.mkdir()
  for name, plot, size in (("convergence.png", experiments.plot_convergence, (1620, 480)),
                           ("auxiliary.png", experiments.plot_auxiliary, (1800, 450)),
                           ("active_units.png", experiments.plot_active_units, (1200, 450))):
    args = (records, str(out / name)) + (("3 epochs",) if name != "active_units.png" else ())
    plot(*args)
    image = Image.open(out / name)
    assert image.size == size, name
    assert np.asarray(image.convert("L"), np.float32).std() > 5, name
  dest = tmp_path / "published"
  experiments.publish(records, str(out), str(dest))
  assert (dest / "convergence.png").exists()
  text = (dest / "runs" / "adgm-seed1" / "flags.txt").read_text()
  # No path of this machine: the run's own paths relative to it, results
  # elsewhere as <results>, the rest of home as <home>; machine flags dropped.
  assert os.path.expanduser("~") not in text and "~/" not in text
  assert not any(ln.startswith(("--model_dir", "--idx_dir")) for ln in text.splitlines())
  assert "--checkpoint=best/ckpt-7\n" in text and "--probe=<results>/y\n" in text
  assert text.splitlines()[1].startswith("# Published copy: --model_dir and data/export")
  # Validation-only runs: no empty test panel, so the figure is two panels wide.
  val_only = [dict(r, history=[{k: v for k, v in h.items() if k != "test_error"}
                               for h in r["history"]]) for r in records]
  experiments.plot_convergence(val_only, str(out / "val_only.png"), "3 epochs")
  assert Image.open(out / "val_only.png").size == (1080, 480)


def test_published_run_files_are_not_ignored_by_git():
  """--publish writes dest/runs/<run>/{history.csv,metrics.json,flags.txt}:
  .gitignore keeps run directories out of the repository but not these."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if shutil.which("git") is None or not os.path.isdir(os.path.join(root, ".git")):
    pytest.skip("not a git checkout")
  for name in ("history.csv", "metrics.json", "flags.txt"):
    path = f"docs/results/some_experiment/runs/adgm-seed1/{name}"
    out = subprocess.run(["git", "check-ignore", "-q", path], cwd=root)
    assert out.returncode == 1, f"{path} is ignored by .gitignore"
  for path in ("runs/adgm-seed1/history.csv", "docs/results/x/runs/a/checkpoints/ckpt-1.index"):
    out = subprocess.run(["git", "check-ignore", "-q", path], cwd=root)
    assert out.returncode == 0, f"{path} is not ignored by .gitignore"


def test_compare_script_tables_runs_of_different_experiments(tmp_path):
  """python -m experiments.compare: per label, the mean and range over the matching
  run directories, only at epochs every seed reached; one-line errors."""
  for name, seeds in (("m2", ((0.20, 0.10, None), (0.30, 0.20, None))),
                      ("sdgm", ((0.10, 0.05, 0.16), (0.14, 0.07, 0.18)))):
    for i, (e1, e2, swap1) in enumerate(seeds):
      d = tmp_path / "x" / f"{name}-seed{i}"
      d.mkdir(parents=True)
      rows = ["epoch,wall_time,validation_error,validation_aux_swap_error",
              f"1.0,60.0,{e1},{'' if swap1 is None else swap1}"]
      if i == 0:  # the second seed never reached epoch 2
        rows.append(f"2.0,120.0,{e2},")
      (d / "history.csv").write_text("\n".join(rows) + "\n")
  script = ["-m", "experiments.compare"]
  out = subprocess.run([sys.executable, *script, f"M2={tmp_path}/x/m2-seed*",
                        f"SDGM={tmp_path}/x/sdgm-seed*", f"--plot={tmp_path}/c.png"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.splitlines()
  assert "  M2 (2 seeds)  1: 25.00 [20.00, 30.00]" in lines
  assert "  SDGM (2 seeds)  1: 12.00 [10.00, 14.00]" in lines
  assert "  SDGM (2 seeds)  1: +5.00 [4.00, 6.00]" in lines   # swap cost, points
  assert not any(" 2: " in x for x in lines)                # epoch 2: one seed only
  assert (tmp_path / "c.png").stat().st_size > 10_000
  bad = subprocess.run([sys.executable, *script, f"M2={tmp_path}/nothing*"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert bad.stderr.strip() == (f"experiments.compare: error: M2: no run directory "
                                f"with a history.csv matches {tmp_path}/nothing*.")


@pytest.mark.large  # about 25 s: two more TensorFlow processes and a restore
def test_replay_probe_replays_a_finished_run_from_its_newest_checkpoint(
    tiny_run, mnist_idx_dir, tmp_path):
  """python -m experiments.probes.replay: restores the newest checkpoint (step 20 of
  the tiny run), trains on with the run's own data order to STEP, printing
  the Gaussian parameter ranges of the last four steps; it saves nothing; a
  wrong directory gives one line."""
  run = tmp_path / "run"
  shutil.copytree(tiny_run["model_dir"], run)
  before = sorted(os.listdir(run / "checkpoints"))
  script = ["-m", "experiments.probes.replay"]
  out = subprocess.run([sys.executable, *script, f"--model_dir={run}", "--step=22"], cwd=REPO,
                       env=run_env(mnist_idx_dir), capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert lines[0] == "restored step 20; replaying to step 22"
  assert [x.split(":")[0] for x in lines[1:]] == ["step 20", "step 21", "step 22"]
  for x in lines[1:]:
    for name in ("q_a", "q_z", "p_a"):   # the ADGM has all three
      lo, hi = map(float, x.split(f"{name} log-var [")[1].split("]")[0].split(", "))
      assert -20.0 <= lo <= hi <= 20.0
  assert sorted(os.listdir(run / "checkpoints")) == before   # nothing saved
  bad = subprocess.run([sys.executable, *script, f"--model_dir={tmp_path / 'none'}",
                        "--step=5"], cwd=REPO,
                       env=run_env(mnist_idx_dir), capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert bad.stderr.strip() == (f"experiments.probes.replay: error: {tmp_path / 'none'}: "
                                f"not a run directory (no config.json).")


@pytest.mark.parametrize("args, message", [
    (["--config"], "Missing value for flag --config (--helpshort lists the flags)"),
    ([], "give --config=FILE.json (the runs) and --out=DIR (where they run); a long "
         "run's report is python -m experiments.long_run."),
    (["--config=nothing.json", "--out=x"], "--config=nothing.json: No such file or "
                                           "directory."),
    ([f"--config={os.path.join(REPO, 'experiments', 'endpoint_screen.json')}", "--out=x",
      "--runs=lnog"],
     f"--runs=lnog: {os.path.join(REPO, 'experiments', 'endpoint_screen.json')} has no run "
     f"named lnog (its runs: long_lr_authors, long, long_split_bn, long_authors_init, "
     f"authors, long_s5, adgm_authors)."),
    ([f"--config={os.path.join(REPO, 'experiments', 'fig4.json')}", "--out=x", "--runs="],
     f"--runs=: {os.path.join(REPO, 'experiments', 'fig4.json')} has no run named "
     f"(none given) (its runs: adgm, adgm_workshop, adgm_det, m2, sdgm)."),
    (["--long_run=x"], "Unknown command line flag 'long_run' (--helpshort lists the "
                       "flags)")])
def test_usage_errors_are_one_line(args, message, tmp_path):
  out = subprocess.run([sys.executable, "-m", "adgm_tf.experiments", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
  assert (out.returncode, out.stderr.strip()) == (2, f"adgm_tf.experiments: error: {message}")
  assert os.listdir(tmp_path) == []  # nothing written


def test_seeds_option_keeps_only_the_listed_seeds():
  config = experiments.read_config(os.path.join(REPO, "experiments", "fig4_20.json"))
  cut = experiments.only_seeds(config, "3")
  assert [(r["name"], r["seeds"]) for r in cut["runs"]] == [
      ("adgm", [3]), ("m2", [3]), ("sdgm", [3])]
  assert cut["common_flags"] == config["common_flags"]
  assert [r["seeds"] for r in experiments.only_seeds(config, "2,3")["runs"]] == [[2, 3]] * 3
  with pytest.raises(experiments.ConfigError,
                     match=r"--seeds=7: x.json has no run with these seeds \(its seeds: 1, 2, 3\)"):
    experiments.only_seeds(config, "7", "x.json")
  with pytest.raises(experiments.ConfigError, match="give seeds as integers"):
    experiments.only_seeds(config, "three")


def test_runs_option_keeps_only_the_named_runs_in_config_order():
  config = experiments.read_config(os.path.join(REPO, "experiments", "endpoint_screen.json"))
  cut = experiments.only_runs(config, "adgm_authors, long")
  assert [r["name"] for r in cut["runs"]] == ["long", "adgm_authors"]
  assert cut["common_flags"] == config["common_flags"]
  assert cut["runs"][1]["flags"] == ["--model=adgm"]
  with pytest.raises(experiments.ConfigError,
                     match=r"--runs=long,lnog: x.json has no run named lnog \(its runs: "
                           r"long_lr_authors, long, "):
    experiments.only_runs(config, "long,lnog", "x.json")
  with pytest.raises(experiments.ConfigError, match=r"no run named \(none given\)"):
    experiments.only_runs(config, ",")


def test_figure_titles_name_the_data_set_and_wrap(tmp_path):
  """The convergence and auxiliary figures name the runs' data set (they said
  MNIST for Fashion-MNIST runs) and wrap a long title instead of cutting it."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  run = tmp_path / "r"
  run.mkdir()
  (run / "flags.txt").write_text("--dataset=fashion_mnist\n--num_labels=100\n")
  records = [dict(model_dir=str(run))]
  assert experiments._data_text(records) == "Fashion-MNIST, 100 labels"
  assert experiments._data_text([dict(model_dir=str(tmp_path / "none"))]) == "MNIST, 100 labels"
  fig = plt.figure(figsize=(6, 3))
  experiments._suptitle(fig, "word " * 40)
  lines = fig._suptitle.get_text().splitlines()
  assert len(lines) > 1 and all(len(line) <= 60 for line in lines)
  plt.close(fig)
