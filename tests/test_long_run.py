"""Tests for the long-run study: experiments/long_run.sh (the run to its end
over many launches) and experiments/long_run.py (its report).

The driver's control flow (relaunch after a chunk, stop on a failed or stalled
launch, the final evaluation written whole or not at all, a second call that
redoes only what is missing) is tested against a stand-in for python that
plays launch.py and adgm_tf.evaluate from a script, in milliseconds; the
large test runs the real programs on tests/tiny.flags.
"""

import json
import os
import subprocess
import sys

import pytest

from adgm_tf import experiments as runner
from adgm_tf.errors import ConfigError
from experiments import long_run

from conftest import REPO, run_env

SCRIPT = os.path.join(REPO, "experiments", "long_run.sh")

# Plays launch.py (one behaviour per launch, read from $FAKE_LAUNCHES: chunk,
# end, fail, guard, stall, ctrl-c or kill) and `-m adgm_tf.evaluate` ($FAKE_EVAL: ok or fail), and
# records every call in $FAKE_CALLS.
FAKE_PYTHON = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_CALLS"
arg() { for a in "${@:2}"; do case "$a" in "--$1="*) echo "${a#--$1=}";; esac; done; }
if [ "$1" = launch.py ]; then
  run="$(arg model_dir "$@")"
  n=$(grep -c '^launch.py' "$FAKE_CALLS")
  mkdir -p "$run/checkpoints"
  case "$(sed -n "${n}p" "$FAKE_LAUNCHES")" in
    chunk) touch "$run/checkpoints/ckpt-$((n * 5)).index"
           echo "chunk over: 150 minutes of this launch used" ;;
    end)   touch "$run/checkpoints/ckpt-$((n * 5)).index"
           ep="$(arg epochs "$@")"; printf '{\n  "epochs": %s.0\n}\n' "${ep:-2}" > "$run/metrics.json"
           echo "final: test error 3.00%" ;;
    stall) echo "chunk over: 150 minutes of this launch used" ;;
    fail)  echo "launch.py: error: --epochs=-1: must be positive" >&2; exit 2 ;;
    guard) echo "stopped: 0.40 of q(a|x)'s units alive < --aux_alive_floor=0.5" >&2; exit 3 ;;
    ctrl-c) touch "$run/checkpoints/ckpt-$((n * 5)).index"
            echo "launch.py: interrupted at step 7; run the same command to resume." >&2; exit 130 ;;
    kill)  kill -9 $$ ;;
  esac
elif [ "$1 $2" = "-m adgm_tf.evaluate" ]; then
  ll="$(arg ll_resume_file "$@")" png="$(arg samples_png "$@")"
  if [ -n "$ll" ]; then echo "ll progress before: $(cat "$ll" 2> /dev/null)"; fi
  if [ -n "$png" ]; then echo png > "$png"; fi  # an evaluation cut after its samples
  if [ -n "$ll" ]; then echo "images 1-50" >> "$ll"; fi
  [ "$(cat "$FAKE_EVAL")" = ok ] || { echo "adgm_tf.evaluate: error: damaged" >&2; exit 2; }
  echo '{"test_error": 0.03}' > "$(arg output "$@")"
  if [ -n "$png" ]; then echo png > "$png"; fi
fi
"""


@pytest.fixture
def fake(tmp_path):
  """``fake(launches, ...)`` runs the driver against the stand-in for python."""
  def run(launches, evaluation="ok", args=(), run_dir=None, script=SCRIPT,
          python_text=FAKE_PYTHON, **env):
    python = tmp_path / "python"
    python.write_text(python_text)
    python.chmod(0o755)
    (tmp_path / "launches").write_text("\n".join(launches) + "\n")
    (tmp_path / "calls").write_text("")
    (tmp_path / "eval").write_text(evaluation)
    env = dict(os.environ, PYTHON=str(python), FAKE_CALLS=str(tmp_path / "calls"),
               FAKE_LAUNCHES=str(tmp_path / "launches"), FAKE_EVAL=str(tmp_path / "eval"),
               **env)
    out = subprocess.run(["bash", str(script), run_dir or str(tmp_path / "run"), *args],
                         env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    calls = (tmp_path / "calls").read_text().splitlines()
    return out, calls

  run.dir = tmp_path / "run"
  return run


def test_chunks_are_relaunched_until_the_run_ends_then_best_is_evaluated_once(fake):
  out, calls = fake(["chunk", "chunk", "end"], args=["--idx_dir=/data/mnist"])
  assert out.returncode == 0, out.stderr
  launches = [c for c in calls if c.startswith("launch.py")]
  assert len(launches) == 3
  assert all(f"--model_dir={fake.dir}" in c and "--chunk_minutes=150" in c
             and "--flagfile=mnist100_long.flags" in c and c.endswith("--idx_dir=/data/mnist")
             for c in launches)
  (evaluation,) = [c for c in calls if c.startswith("-m adgm_tf.evaluate")]
  for flag in ("--checkpoint=best", "--samples=100", "--ll_examples=10000",
               "--ll_samples=1000", "--idx_dir=/data/mnist"):
    assert flag in evaluation.split(), flag
  final = fake.dir / "final"
  assert json.loads((final / "best_eval.json").read_text()) == {"test_error": 0.03}
  assert (final / "samples.png").exists() and not (fake.dir / "final.partial").exists()
  log = (fake.dir.parent / "run.log").read_text()
  assert log.count("long_run.sh: launch from") == 3
  # ckpt-10 is newer than ckpt-5: the second launch is resumed from it.
  assert "launch from ckpt-10" in log and "launch from the start" in log
  # Again: nothing to do, nothing called, nothing changed.
  before = (final / "best_eval.json").stat().st_mtime_ns
  out, calls = fake(["fail"])
  assert out.returncode == 0 and calls == []
  assert "the run is done" in out.stdout
  assert (final / "best_eval.json").stat().st_mtime_ns == before


def test_kept_epochs_are_evaluated_after_best_and_only_once(fake):
  """--keep_epochs's kept/epoch-<E>/best, each evaluated like best/ but without
  the log-likelihood, into final/kept-epoch-<E>.json, after best/'s own."""
  run = fake.dir
  for epoch in (10, 2):
    (run / "kept" / f"epoch-{epoch}" / "best").mkdir(parents=True)
  (run / "kept" / "epoch-5").mkdir()            # kept before any evaluation
  (run / "kept" / "epoch-7.partial" / "best").mkdir(parents=True)  # a cut copy
  out, calls = fake(["end"], args=["--idx_dir=/data"])
  assert out.returncode == 0, out.stderr
  evaluations = [c for c in calls if c.startswith("-m adgm_tf.evaluate")]
  assert len(evaluations) == 3 and "--checkpoint=best" in evaluations[0]
  for call, epoch in zip(evaluations[1:], (2, 10)):  # in epoch order
    assert f"--checkpoint={run}/kept/epoch-{epoch}/best" in call
    assert "--ll_examples=0" in call and "--samples=100" in call and "--idx_dir=/data" in call
    assert f"--output={run}/final/kept-epoch-{epoch}.json" in call
  assert sorted(os.listdir(run / "final")) == [
      "best_eval.json", "kept-epoch-10.json", "kept-epoch-2.json", "ll_per_image.npz", "log",
      "samples.png"]
  assert "epoch-5 has no best/ (no evaluation before epoch 5): skipped" in out.stdout
  assert "the kept epochs 2,10" in out.stdout.splitlines()[-1]
  # Run again: nothing to do. A lost one is redone alone; a failure is one line.
  out, calls = fake([])
  assert out.returncode == 0 and calls == []
  os.remove(run / "final" / "kept-epoch-2.json")
  out, calls = fake([], evaluation="fail")
  assert out.returncode == 2 and len(calls) == 1 and "epoch-2/best" in calls[0]
  assert out.stderr.splitlines()[-1].startswith(
      f"long_run.sh: error: the evaluation of {run}/kept/epoch-2/best failed (exit 2")
  assert not (run / "final" / "kept-epoch-2.json").exists()
  assert (run / "final" / "best_eval.json").exists()
  out, calls = fake([])
  assert out.returncode == 0 and len(calls) == 1 and "epoch-2/best" in calls[0]


def test_a_larger_epochs_goes_on_past_a_finished_run_and_keeps_what_it_had(fake):
  """A run finished at 2 epochs, given --epochs=6: its metrics.json and final/
  are kept under their epoch, the run goes on (--epochs forwarded), and best/
  is evaluated again; then the same command says the run is done."""
  out, _ = fake(["end"])
  assert out.returncode == 0, out.stderr
  first = (fake.dir / "final" / "best_eval.json").read_text()
  # The stand-in numbers checkpoints by its launches in one call: make room.
  (fake.dir / "checkpoints" / "ckpt-5.index").rename(fake.dir / "checkpoints" / "ckpt-1.index")
  out, calls = fake(["chunk", "end"], args=["--epochs=6"])
  assert out.returncode == 0, out.stderr
  assert json.loads((fake.dir / "metrics-epochs2.json").read_text()) == {"epochs": 2.0}
  assert (fake.dir / "final-epochs2" / "best_eval.json").read_text() == first
  assert json.loads((fake.dir / "metrics.json").read_text()) == {"epochs": 6.0}
  assert (fake.dir / "final" / "best_eval.json").exists()
  launches = [c for c in calls if c.startswith("launch.py")]
  assert len(launches) == 2 and all(c.endswith("--epochs=6") for c in launches)
  assert sum(c.startswith("-m adgm_tf.evaluate") for c in calls) == 1
  log = (fake.dir.parent / "run.log").read_text()
  assert "the run ended at epoch 2; going on to --epochs=6 (kept: metrics-epochs2.json, " \
         "final-epochs2/)" in log
  # Done at 6: the same command, or a smaller --epochs, changes nothing.
  for args in (["--epochs=6"], ["--epochs=3"], []):
    out, calls = fake(["fail"], args=args)
    assert out.returncode == 0 and calls == [] and "the run is done" in out.stdout, args


@pytest.mark.parametrize("metrics, kept, message", [
    ('{\n  "epochs": 2.0\n}\n', "metrics-epochs2.json",
     "metrics-epochs2.json exists already; move it away"),
    ("{}", None, 'metrics.json gives no whole number of epochs ("")'),
    ('{\n  "epochs": 2.5,\n  "stopped_by_time_budget": false\n}\n', None,
     'metrics.json gives no whole number of epochs ("2.5")'),
])
def test_going_on_refuses_what_would_overwrite_or_guess(fake, metrics, kept, message):
  fake.dir.mkdir()
  (fake.dir / "metrics.json").write_text(metrics)
  if kept:
    (fake.dir / kept).write_text("earlier")
  out, calls = fake(["end"], args=["--epochs=6"])
  assert out.returncode == 2 and calls == []
  assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
  assert (fake.dir / "metrics.json").read_text() == metrics
  if kept:
    assert (fake.dir / kept).read_text() == "earlier"


def test_a_run_ended_by_its_time_budget_is_not_extended(fake):
  fake.dir.mkdir()
  (fake.dir / "metrics.json").write_text(
      '{\n  "epochs": 82.06,\n  "stopped_by_time_budget": true\n}\n')
  (fake.dir / "final").mkdir()
  (fake.dir / "final" / "best_eval.json").write_text("{}")
  out, calls = fake(["end"], args=["--epochs=200"])
  assert out.returncode == 0 and calls == [], out.stderr
  assert out.stdout.splitlines() == [
      "long_run.sh: the run ended at epoch 82.06, at its time budget, not at its --epochs; "
      "it is not extended.",
      f"long_run.sh: the run is done: {fake.dir}/metrics.json, and best/'s final evaluation "
      f"in {fake.dir}/final/"]
  assert sorted(os.listdir(fake.dir)) == ["final", "metrics.json"]


def test_a_relative_run_dir_is_taken_from_where_the_command_runs(fake):
  out, calls = fake(["end"], run_dir="run/")  # the script itself runs in the repository
  assert out.returncode == 0, out.stderr
  assert calls[0].split()[2] == f"--model_dir={fake.dir}"
  assert (fake.dir / "final" / "best_eval.json").exists()


def test_a_checkout_that_rewrites_the_script_mid_run_does_not_change_the_driver(fake,
                                                                                  tmp_path):
  """bash reads a script as it runs it; the body's braces make it read it whole."""
  repo = tmp_path / "repo"
  (repo / "experiments").mkdir(parents=True)
  script = repo / "experiments" / "long_run.sh"
  script.write_text(open(SCRIPT).read())
  (repo / "mnist100_long.flags").write_text("")
  # A launch that, like `git checkout` during a run, rewrites the script first.
  rewriting = FAKE_PYTHON.replace(
      'echo "$*" >> "$FAKE_CALLS"',
      'echo "$*" >> "$FAKE_CALLS"; printf "echo REWRITTEN; exit 9\\n" > "$SCRIPT_COPY"')
  out, calls = fake(["chunk", "end"], script=script, python_text=rewriting,
                    SCRIPT_COPY=str(script))
  assert out.returncode == 0, out.stdout + out.stderr
  assert "REWRITTEN" not in out.stdout and "the run is done" in out.stdout
  assert (fake.dir / "final" / "best_eval.json").exists()


def test_a_failed_launch_stops_the_driver_with_one_line_and_no_final_evaluation(fake):
  out, calls = fake(["chunk", "fail", "end"])
  assert out.returncode == 2
  assert [c.split()[0] for c in calls] == ["launch.py", "launch.py"]
  # launch.py's own message is passed on (to stdout and the log), then one line.
  assert "launch.py: error: --epochs=-1: must be positive" in out.stdout
  assert out.stderr.count("\n") == 1
  assert out.stderr.startswith("long_run.sh: error: launch.py failed (exit 2")
  assert "run the same command again: the run resumes" in out.stderr
  assert not (fake.dir / "final").exists() and not (fake.dir / "final.partial").exists()
  # Fixed, the same command resumes and finishes.
  out, calls = fake(["end"])
  assert out.returncode == 0, out.stderr
  assert (fake.dir / "final" / "best_eval.json").exists()


@pytest.mark.parametrize("how, newest", [("ctrl-c", "ckpt-10"), ("kill", "ckpt-5")])
def test_an_interrupted_or_killed_launch_says_so_and_the_same_command_resumes(fake, how,
                                                                                newest):
  out, calls = fake(["chunk", how, "end"])
  assert out.returncode == 2 and len(calls) == 2
  assert out.stderr.count("\n") == 1, out.stderr   # not bash's "Killed" report too
  last = out.stderr.strip()
  assert last.startswith("long_run.sh: error: launch.py was interrupted or killed (exit "
                         + ("130: signal 2" if how == "ctrl-c" else "137: signal 9"))
  assert f"newest checkpoint ({newest})" in last and "run the same command" in last
  assert not (fake.dir / "final.partial").exists()
  out, calls = fake(["end"])
  assert out.returncode == 0, out.stderr
  assert (fake.dir / "final" / "best_eval.json").exists()


def test_a_run_stopped_by_the_a_guard_is_not_relaunched(fake):
  out, calls = fake(["chunk", "guard", "end"])
  assert out.returncode == 2 and len(calls) == 2
  assert out.stderr.count("\n") == 1 and "auxiliary variable fell below" in out.stderr
  assert not (fake.dir / "final.partial").exists()


def test_a_launch_without_a_new_checkpoint_stops_the_loop(fake):
  out, calls = fake(["chunk", "stall", "chunk", "end"])
  assert out.returncode == 2 and len(calls) == 2
  assert "ended without a new checkpoint (newest: ckpt-5)" in out.stderr


def test_a_failed_final_evaluation_leaves_no_final_dir_and_is_redone_alone(fake):
  """Redone alone, from the log-likelihoods the failed attempt had computed."""
  out, calls = fake(["end"], evaluation="fail")
  assert out.returncode == 2
  assert "the final evaluation failed (exit 2" in out.stderr.strip().splitlines()[-1]
  assert not (fake.dir / "final").exists()
  assert (fake.dir / "final.partial" / "log").exists()
  partial = fake.dir / "final.partial"
  assert sorted(os.listdir(partial)) == ["ll_per_image.npz", "log", "samples.png"]
  out, calls = fake(["fail"])  # a launch would fail: none must happen
  assert out.returncode == 0, out.stderr
  assert [c.split()[:2] for c in calls] == [["-m", "adgm_tf.evaluate"]]
  assert f"--ll_resume_file={partial}/ll_per_image.npz" in calls[0].split()
  # The second attempt found the first one's log-likelihoods (and nothing else:
  # samples.png is a new file again), and added its own.
  assert "ll progress before: images 1-50" in out.stdout
  final = fake.dir / "final"
  assert (final / "ll_per_image.npz").read_text() == "images 1-50\nimages 1-50\n"
  assert (final / "best_eval.json").exists() and "damaged" not in (final / "log").read_text()
  assert not partial.exists()


@pytest.mark.parametrize("args,env,message", [
    ([], {}, "give the run directory first"),
    (["--idx_dir=x"], {}, "give the run directory first"),
    (["RUN"], {"PYTHON": "no-such-python"}, "PYTHON=no-such-python is not a command"),
    (["RUN"], {"FLAGFILE": "nope.flags"}, "FLAGFILE=nope.flags not found"),
    (["missing/RUN"], {}, "the parent of"),
    (["RUN", "--epochs=1e3"], {}, "--epochs=1e3: give a whole number of epochs"),
])
def test_bad_usage_is_one_line(tmp_path, args, env, message):
  args = [str(tmp_path / a) if a.endswith("RUN") else a for a in args]
  out = subprocess.run(["bash", SCRIPT, *args], env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
  assert out.returncode == 2
  assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
  assert os.listdir(tmp_path) == []


@pytest.mark.large
def test_the_real_programs_on_the_tiny_recipe(mnist_idx_dir, mnist_data_dir, tmp_path):
  """A run cut after its first chunk is finished by the driver, then best/ evaluated."""
  env = run_env(mnist_idx_dir, PYTHON=sys.executable, FLAGFILE="tests/tiny.flags",
                FINAL_SAMPLES="5", FINAL_LL_EXAMPLES="100", FINAL_LL_SAMPLES="10")
  run = tmp_path / "run"
  flags = [f"--data_dir={mnist_data_dir}", "--validation_size=500", "--export_dir=",
           "--ll_examples=0"]
  first = subprocess.run([sys.executable, "launch.py", "--flagfile=tests/tiny.flags",
                          f"--model_dir={run}", "--chunk_minutes=0.01", *flags],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert first.returncode == 0 and "chunk over:" in first.stdout, first.stderr[-2000:]
  (cut,) = [p[:-len(".index")] for p in os.listdir(run / "checkpoints") if p.endswith(".index")]
  out = subprocess.run(["bash", SCRIPT, str(run), *flags], env=env, capture_output=True,
                       text=True, timeout=1800)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  log = (tmp_path / "run.log").read_text()
  assert log.count("long_run.sh: launch from") == 1 and f"launch from {cut}" in log
  assert "resumed from" in log
  metrics = json.loads((run / "metrics.json").read_text())
  best = json.loads((run / "final" / "best_eval.json").read_text())
  assert best["checkpoint"].startswith(str(run / "best"))
  assert best["eval_samples"] == 5 and best["ll_examples"] == 100
  assert best["test_log_likelihood"] < 0 and 0 <= best["test_error"] < 0.9
  # best/ is the checkpoint chosen by validation error, at one of the evaluated epochs.
  assert best["epoch"] in (1.0, 2.0) and metrics["epochs"] == 2
  assert (run / "final" / "samples.png").stat().st_size > 1000
  import numpy as np  # pylint: disable=g-import-not-at-top
  with np.load(run / "final" / "ll_per_image.npz") as kept:   # what a cut would resume
    assert kept["log_likelihood"].shape == (100,)
    assert np.mean(kept["log_likelihood"]) == pytest.approx(best["test_log_likelihood"])
  assert "the run is done" in out.stdout
  # Going on to 3 epochs: launch.py resumes the finished run, the epoch-2
  # results are kept, and best/ is evaluated again over all three epochs.
  # --keep_epochs=2,3: epoch 2 is kept at the resume (the run is at its end),
  # epoch 3 at its end, and each kept best/ is evaluated like best/.
  before = (run / "final" / "best_eval.json").read_text()
  out = subprocess.run(["bash", SCRIPT, str(run), *flags, "--epochs=3", "--keep_epochs=2,3"],
                       env=env,
                       capture_output=True, text=True, timeout=1800)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
  assert json.loads((run / "metrics-epochs2.json").read_text()) == metrics
  assert (run / "final-epochs2" / "best_eval.json").read_text() == before
  again = json.loads((run / "final" / "best_eval.json").read_text())
  assert again["epoch"] in (1.0, 2.0, 3.0) and again["eval_samples"] == 5
  # What a run stopped at epoch 2 chose, and at 3: the same numbers as best/ then.
  at2 = json.loads((run / "final" / "kept-epoch-2.json").read_text())
  at3 = json.loads((run / "final" / "kept-epoch-3.json").read_text())
  for kept, final in ((at2, json.loads(before)), (at3, again)):
    assert kept["step"] == final["step"] and kept["eval_samples"] == 5
    assert kept["test_error"] == final["test_error"]
    assert kept["validation_error"] == final["validation_error"]
  assert "the kept epochs 2,3" in out.stdout
  with open(run / "history.csv") as f:
    epochs = [float(r.split(",")[0]) for r in f.read().splitlines()[1:]]
  assert epochs == sorted(set(epochs)) and epochs[-3:] == [1.0, 2.0, 3.0]   # (and the cut's row)


# -- experiments/long_run.py: the report --------------------------------------

def test_long_run_report_marks_the_best_validation_row_and_copies_small_files(tmp_path):
  run = tmp_path / "long"
  (run / "checkpoints").mkdir(parents=True)
  (run / "checkpoints" / "ckpt-1.index").write_text("not to be copied")
  (run / "flags.txt").write_text(f"--model_dir={run}\n--idx_dir={os.path.expanduser('~')}/x\n")
  fields = ["epoch", "wall_time", "validation_error", "test_error", "aux_swap_error",
            "validation_aux_swap_error", "validation_aux_alive_fraction",
            "validation_aux_mean_spread", "validation_aux_information", "cpu_time"]
  rows = [[1, 60, "", "", "", "", "", "", "", 100],                # not evaluated
          [5, 300, 0.20, 0.10, 0.13, 0.21, 0.7, 0.1, 0.02, 500],
          [10, 600, 0.15, 0.12, 0.12, 0.155, 0.6, 0.05, 0.01, 90],  # best on validation
          [15, 900, 0.16, 0.05, 0.05, 0.16, 0.4, 0.01, 0.0, 700]]   # best on test: ignored
  with open(run / "history.csv", "w") as f:
    f.write(",".join(fields) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
  dest = tmp_path / "published"
  long_run.report_long_run(str(run), str(dest), "long: every evaluation")
  table = [line for line in (dest / "summary.md").read_text().splitlines()
           if line.startswith("| ") and not line.startswith("| epoch")]
  assert [line.split("|")[1].strip() for line in table] == ["5", "10 *", "15"]
  cells = [c.strip() for c in table[0].strip("|").split("|")]
  # epoch, minutes, validation, test, alive, spread, swap val., swap test, I
  assert cells[1:] == ["5", "20.00", "10.00", "0.70", "0.100", "+1.00", "+3.00", "0.020"]
  assert ("Time at epoch 15: **0.25 h of wall time** on the run's clock (training and "
          "evaluations, over 2 launch(es)") in (dest / "summary.md").read_text()
  assert "**0.33 h of CPU time**" in (dest / "summary.md").read_text()  # (500 + 700) s
  assert sorted(os.listdir(dest)) == ["flags.txt", "history.csv", "long.png", "summary.md"]
  assert os.path.expanduser("~") not in (dest / "flags.txt").read_text()
  assert "chosen by validation error" not in (dest / "summary.md").read_text()
  # Once experiments/long_run.sh has evaluated best/, the report leads with it.
  (run / "final").mkdir()
  (run / "final" / "best_eval.json").write_text(json.dumps(dict(
      checkpoint=str(run / "best" / "ckpt-5500"), epoch=10.0, eval_samples=100,
      validation_error=0.0332, test_error=0.0316, validation_aux_swap_error=0.0600,
      aux_swap_error=0.0571, validation_aux_alive_fraction=0.986,
      test_log_likelihood=-86.123, ll_samples=1000, ll_examples=10000)))
  (run / "final" / "samples.png").write_bytes(b"png")
  long_run.report_long_run(str(run), str(dest), "long: every evaluation")
  text = (dest / "summary.md").read_text()
  assert "(best/, epoch 10), evaluated at the end with 100 samples of a" in text
  assert ("| 3.32% | 3.16% | +2.68 points | +2.55 points | 0.99 | -86.12 nats "
          "(K = 1000, 10000 images) |") in text
  assert sorted(os.listdir(dest)) == ["best_eval.json", "flags.txt", "history.csv",
                                      "long.png", "samples.png", "summary.md"]
  published = json.loads((dest / "best_eval.json").read_text())
  assert published["test_error"] == 0.0316
  assert published["checkpoint"] == "best/ckpt-5500"  # relative to the run
  # With --keep_epochs, the run at each kept length, in epoch order.
  for epoch, chosen, val, test in ((15, 10.0, 0.0332, 0.0316), (5, 5.0, 0.2, 0.1)):
    (run / "final" / f"kept-epoch-{epoch}.json").write_text(json.dumps(dict(
        checkpoint=str(run / "kept" / f"epoch-{epoch}" / "best" / "ckpt-1"), epoch=chosen,
        eval_samples=100, validation_error=val, test_error=test,
        validation_aux_swap_error=val + 0.01, aux_swap_error=test + 0.02,
        validation_aux_alive_fraction=0.9)))
  long_run.report_long_run(str(run), str(dest), "long: every evaluation")
  text = (dest / "summary.md").read_text()
  assert ("| 5 | 5 | 100 | 20.00% | 10.00% | +1.00 | +2.00 | 0.90 |\n"
          "| 15 | 10 | 100 | 3.32% | 3.16% | +1.00 | +2.00 | 0.90 |") in text
  assert json.loads((dest / "kept-epoch-5.json").read_text())["checkpoint"] == (
      "kept/epoch-5/best/ckpt-1")
  again = tmp_path / "again"   # the published copy reports the same
  long_run.report_long_run(str(dest), str(again), "long: every evaluation")
  assert (again / "summary.md").read_text() == text
  (run / "final" / "kept-epoch-5.json").write_text("{cut")
  with pytest.raises(ConfigError, match=r"kept-epoch-5.json is not JSON .*redoes only that"):
    long_run.report_long_run(str(run), str(dest), "long: every evaluation")
  os.remove(run / "final" / "kept-epoch-5.json")
  (run / "final" / "best_eval.json").write_text("{cut")
  with pytest.raises(ConfigError, match="best_eval.json is not JSON"):
    long_run.report_long_run(str(run), str(dest), "long: every evaluation")


def test_run_clock_sums_the_cpu_time_of_each_launch():
  """cpu_time restarts with each launch; wall_time is the run's own clock."""
  history = [dict(epoch=1, wall_time=100, cpu_time=180),
             dict(epoch=2, wall_time=200, cpu_time=370),
             dict(epoch=2.5, wall_time=260, cpu_time=480),   # launch 1 ends here
             dict(epoch=3, wall_time=330, cpu_time=150),     # launch 2
             dict(epoch=4, wall_time=430, cpu_time=340),
             dict(epoch=5, wall_time=530, cpu_time=120),     # launch 3, cut after a row
             # launch 4: its first row shows more CPU seconds than launch 3's
             # last (start-up), but far fewer than the wall time since then
             dict(epoch=6, wall_time=630, cpu_time=135),
             dict(epoch=16, wall_time=1630, cpu_time=1635),
             # launch 4's closing row: little CPU in 40 s, but all of the launch's
             dict(epoch=16.01, wall_time=1670, cpu_time=1636),
             dict(epoch=16.5)]                               # no clock: skipped
  clock = long_run.run_clock(history)
  assert clock["launches"] == 4
  assert clock["epoch"] == 16.01
  assert clock["wall_hours"] == pytest.approx(1670 / 3600)
  assert clock["cpu_hours"] == pytest.approx((480 + 340 + 120 + 1636) / 3600)
  assert clock["cores_busy"] == pytest.approx(2576 / 1670)
  assert long_run.run_clock([dict(epoch=1)]) is None


def test_run_clock_of_a_run_that_shares_its_core():
  """A launch that gets a fifth of a core (80 CPU seconds an epoch in 400 s
  of the clock) is one launch; a relaunch after it is found all the same."""
  history = [dict(epoch=e, wall_time=400 * e, cpu_time=10 + 80 * e) for e in range(1, 6)]
  history += [dict(epoch=e, wall_time=400 * e, cpu_time=10 + 80 * (e - 5)) for e in range(6, 9)]
  clock = long_run.run_clock(history)
  assert clock["launches"] == 2
  assert clock["cpu_hours"] == pytest.approx((410 + 250) / 3600)
  assert clock["cores_busy"] == pytest.approx(660 / 3200)


def _evaluations(errors, alive=0.99, swap=2.5):
  return [dict(epoch=float(e), minutes=e, validation_error=v, test_error=None,
               aux_alive_fraction=alive, aux_mean_spread=0.3, validation_swap_cost=swap,
               test_swap_cost=None, aux_information=0.005) for e, v in errors.items()]


def test_continue_verdict_applies_the_rule_fixed_in_advance():
  """Means of epochs 155..200 against 105..150; falls at a drop of >= 0.15 points."""
  earlier = {e: 3.5 + (0.2 if e % 10 else -0.2) for e in range(105, 151, 5)}  # mean 3.5
  later = {e: 3.35 + (0.1 if e % 10 else -0.1) for e in range(155, 201, 5)}   # mean 3.35
  noise = {e: 9.0 for e in range(5, 101, 5)}  # other epochs do not count
  verdict = long_run.continue_verdict(_evaluations({**noise, **earlier, **later}))
  assert verdict["earlier_mean"] == pytest.approx(3.5)
  assert verdict["later_mean"] == pytest.approx(3.35)
  assert verdict["drop"] == pytest.approx(0.15)
  assert verdict["falls"] and verdict["go_on"]
  text = " ".join(long_run.verdict_markdown(verdict))
  assert "3.50% at epochs 105-150 and 3.35% at epochs 155-200" in text
  assert "still falls" in text and "goes on toward 1,000 epochs" in text
  assert text.strip() in long_run.long_run_markdown(
      _evaluations({**earlier, **later}), "t")   # summary.md states it
  # 0.14 points is not enough.
  later_less = {e: v + 0.01 for e, v in later.items()}
  verdict = long_run.continue_verdict(_evaluations({**earlier, **later_less}))
  assert verdict["drop"] == pytest.approx(0.14)
  assert not verdict["falls"] and not verdict["go_on"]
  assert "no longer falls" in " ".join(long_run.verdict_markdown(verdict))
  # Falling, but a unused (swap cost <= 0) or dead at epoch 200: the run ends.
  for alive, swap in ((0.99, 0.0), (0.4, 2.0)):
    rows = _evaluations({**earlier, **later})
    rows[-1].update(aux_alive_fraction=alive, validation_swap_cost=swap)
    verdict = long_run.continue_verdict(rows)
    assert verdict["falls"] and not verdict["go_on"]
    assert "ends at 200 epochs" in " ".join(long_run.verdict_markdown(verdict))
  # Any of the 20 evaluations missing (a run short of 200, an epoch cut mid-way): no verdict.
  full = {**earlier, **later}
  del full[180]
  assert long_run.continue_verdict(_evaluations(full)) is None
  lost = long_run.long_run_rows(runner.read_history(
      os.path.join(REPO, "docs", "results", "long_sdgm")))   # stopped at epoch 146
  assert lost and long_run.continue_verdict(lost) is None


def _report_command(*args):
  return subprocess.run([sys.executable, "-m", "experiments.long_run", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_long_run_report_says_what_is_missing_in_one_line(tmp_path):
  """python -m experiments.long_run: each missing piece is one line, exit 2."""
  cases = [((f"--model_dir={tmp_path}",), "give --model_dir=MODEL_DIR (the run) and "
            "--publish=DIR (e.g. docs/results/long)."),
           ((f"--model_dir={tmp_path}", f"--publish={tmp_path / 'd'}"),
            f"{tmp_path} has no history.csv: not a run directory, or the run has not "
            f"finished its first epoch."),
           (("--bogus=x",), "Unknown command line flag 'bogus' (--helpshort lists the flags)")]
  for args, message in cases:
    out = _report_command(*args)
    assert (out.returncode, out.stderr.strip()) == (
        2, f"experiments.long_run: error: {message}"), args
  (tmp_path / "history.csv").write_text("epoch,validation_error\n1,\n")
  with pytest.raises(ConfigError, match="no evaluation yet"):
    long_run.report_long_run(str(tmp_path), str(tmp_path / "d"), "t")
  assert not (tmp_path / "d").exists()


def test_long_run_command_reports_the_published_200_epoch_run(tmp_path):
  """The command rebuilds docs/results/long_sdgm3/summary.md from its own files."""
  src = os.path.join(REPO, "docs", "results", "long_sdgm3")
  out = _report_command(f"--model_dir={src}", f"--publish={tmp_path}")
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == (f"40 evaluations, last at epoch 200: validation error "
                                f"3.50 %; written to {tmp_path}")
  with open(os.path.join(src, "summary.md")) as f:
    assert (tmp_path / "summary.md").read_text() == f.read()
