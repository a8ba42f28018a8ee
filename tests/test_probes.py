"""Tests for experiments/probes: each probe runs on the tiny run's newest
checkpoint through the model's public methods, and prints its numbers; a
model without what a probe reads gets one line."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_env


def _probe(name, *args, env=None):
  return subprocess.run([sys.executable, "-m", f"experiments.probes.{name}", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300)


def _numbers(text):
  return [float(v) for v in re.findall(r"[-+]?\d+\.\d+", text)]


def test_the_a_probes_read_a_trained_adgm(tiny_run, tmp_path, capsys):
  """a_pull, a_reward and a_gradients on the tiny ICML ADGM (q(a|x) and
  p(a|x,y,z) both present): each names the checkpoint and prints finite numbers;
  a_reward's --write saves what it prints. In-process (their command line is
  common.run, tested below through a_reward)."""
  from experiments.probes import a_gradients, a_pull, a_reward
  newest = os.path.join(tiny_run["model_dir"], "checkpoints")
  saved = tmp_path / "reward.json"
  printed = {}
  for name, main, expect, extra in (
      ("a_pull", a_pull.main, ["q(a|x): spread", "R^2 of mu_p for mu_q"], {}),
      ("a_reward", a_reward.main, ["C_a", "C_z", "wC_a+C_z-I"], dict(write=str(saved))),
      ("a_gradients", a_gradients.main, ["q_a mean head", "a-terms", "alpha*cls"], {})):
    main(tiny_run["model_dir"], **extra)
    out = capsys.readouterr().out
    printed[name] = out
    assert out.startswith(newest), out
    for text in expect:
      assert text in out, (name, out)
    values = _numbers(out)
    assert values and all(abs(v) < 1e6 for v in values), (name, out)
  reward = json.load(open(saved))
  m, se = reward["mean"], reward["standard_error"]
  assert reward["samples"] == 32 and reward["batches"] == 8
  assert m["C-I"] == pytest.approx(m["C_a"] + m["C_z"] - m["I"], abs=1e-5)
  assert m["wC_a+C_z-I"] == pytest.approx(
      reward["warmup_weight"] * m["C_a"] + m["C_z"] - m["I"], abs=1e-5)
  line = "  " + "  ".join(f"{n} {m[n]:+.4f} ({se[n]:.4f})" for n in m)
  assert line in printed["a_reward"].splitlines(), printed["a_reward"]


@pytest.mark.parametrize("args, message", [
    ([], "flag --model_dir=None: Flag --model_dir must have a value other than None. "
         "(--helpshort lists the flags)"),
    (["--model_dir=/nonexistent/run"], "--model_dir=/nonexistent/run does not exist. Check "
     "the path: it is the directory a training run wrote (it holds config.json and "
     "checkpoints/)."),
    (["--model_dir=x", "extra"], "unexpected arguments extra: give --model_dir (and "
     "--checkpoint).")])
def test_a_probe_with_bad_arguments_says_so_in_one_line(args, message):
  out = _probe("a_reward", *args)
  assert (out.returncode, out.stderr.strip()) == (
      2, f"experiments.probes.a_reward: error: {message}")


def test_same_history_compares_two_histories(tmp_path):
  src = os.path.join(REPO, "docs", "results", "long_sdgm3", "history.csv")
  same = _probe("same_history", f"--first={src}", f"--second={src}")
  assert same.returncode == 0, same.stderr
  assert same.stdout.splitlines()[0] == ("202 shared epoch rows, 2984 values compared, "
                                         "0 column(s) differ")
  lines = open(src).read().splitlines()
  changed = lines[:3] + [lines[3].replace(lines[3].split(",")[5], "1.5", 1)] + lines[4:]
  (tmp_path / "h.csv").write_text("\n".join(changed) + "\n")
  other = _probe("same_history", f"--first={src}", f"--second={tmp_path / 'h.csv'}")
  assert other.returncode == 1
  assert "1 column(s) differ" in other.stdout
  missing = _probe("same_history", f"--first={src}", "--second=nothing.csv")
  assert missing.returncode == 2 and "Traceback" not in missing.stderr
  assert missing.stderr.startswith("experiments.probes.same_history: error: cannot compare")


@pytest.fixture(scope="module")
def validation_run(mnist_data_dir, tmp_path_factory):
  """A one-epoch tiny run with batch norm and 500 validation images."""
  from adgm_tf import train
  from test_train import tiny_config
  cfg = tiny_config(mnist_data_dir, data=dict(validation_size=500),
                    train_=dict(epochs=1, ll_examples=0))
  d = str(tmp_path_factory.mktemp("validation_run") / "run")
  train.train_and_evaluate(cfg, d)
  return d


def _validation_error(d):
  return json.load(open(os.path.join(d, "metrics.json")))["validation_error"]


def test_bn_stats_evaluates_as_the_run_did_and_changes_nothing(validation_run, mnist_idx_dir):
  """On a one-epoch run with batch norm and a validation split: the error with
  the checkpoint's own averages is the run's own final validation error, the
  refreshes and the population statistics print one error each, and the run
  directory is byte-for-byte what it was."""
  from test_train import dir_digest
  d = validation_run
  before = dir_digest(d)
  out = _probe("bn_stats", f"--model_dir={d}", "--refreshes=3", "--population_batches=4",
               env=run_env(mnist_idx_dir))
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.splitlines()
  assert lines[1] == f"  own moving averages: {100 * _validation_error(d):.2f}%", out.stdout
  refreshed = _numbers(lines[2].split(":", 1)[1])
  assert len(refreshed) == 3 and all(0 <= e <= 100 for e in refreshed), out.stdout
  assert lines[-1].startswith("  population statistics (4 batches): "), out.stdout
  assert dir_digest(d) == before


@pytest.mark.parametrize("refreshes, population_batches", [(-1, 4), (3, -1)])
def test_bn_stats_checks_its_flags_before_reading_the_run(refreshes, population_batches):
  """In-process, as the other probes' checks (the command line turns a
  ConfigError into one line and exit 2: test_a_probe_with_bad_arguments_...)."""
  from experiments.probes import bn_stats
  from adgm_tf.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    bn_stats.main("x", None, refreshes=refreshes, population_batches=population_batches)
  assert str(e.value) == "--refreshes and --population_batches must be >= 0."


def test_confusion_summary_of_a_hand_made_matrix():
  from experiments.probes import confusion
  labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
  predicted = [0, 1, 2, 1, 1, 1, 1, 2, 0]
  c = confusion.confusion_matrix(labels, predicted, 3)
  assert c.tolist() == [[1, 1, 1], [0, 2, 0], [1, 2, 1]]
  s = confusion.summarise(c, top=2)
  assert (s["images"], s["errors"]) == (9, 5) and s["error"] == pytest.approx(5 / 9)
  assert s["per_class_error"] == pytest.approx([2 / 3, 0.0, 3 / 4])
  # 2 -> 1 (2 images) first; of the three cells with one image, the lowest (true, predicted).
  assert [(k["true"], k["predicted"], k["images"]) for k in s["confusions"]] == [(2, 1, 2),
                                                                                 (0, 1, 1)]
  assert s["confusions"][0]["of_class"] == pytest.approx(0.5)
  assert s["confusions"][0]["of_errors"] == pytest.approx(0.4)


def test_confusion_reads_the_runs_own_validation_error(validation_run, mnist_idx_dir, tmp_path):
  """The probe's error is the run's own final validation error, its matrix
  covers the 500 validation images, the figures it prints are the matrix's,
  and the run directory is unchanged; --write makes a new file only."""
  from test_train import dir_digest
  d = validation_run
  before = dir_digest(d)
  target = tmp_path / "confusion.json"
  out = _probe("confusion", f"--model_dir={d}", "--top=3", f"--write={target}",
               env=run_env(mnist_idx_dir))
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.splitlines()
  saved = json.load(open(target))
  assert "cell" not in saved and "against" not in saved and " cell " not in out.stdout
  c = saved["matrix"]
  assert sum(map(sum, c)) == saved["images"] == 500
  errors = 500 - sum(c[k][k] for k in range(10))
  assert saved["errors"] == errors and saved["error"] == _validation_error(d)
  assert f"validation error {100 * _validation_error(d):.2f}% ({errors} of 500 images" in lines[0]
  off = sorted((c[i][j] for i in range(10) for j in range(10) if i != j), reverse=True)[:3]
  assert [k["images"] for k in saved["confusions"]] == [v for v in off if v]
  for line, k in zip(lines[3:], saved["confusions"]):
    assert line.startswith(f"    {k['true']} -> {k['predicted']}: {k['images']} "), out.stdout
  assert dir_digest(d) == before
  # One cell's images, drawn, and the checkpoint against itself: every error shared.
  t, p = saved["confusions"][0]["true"], saved["confusions"][0]["predicted"]
  newest = lines[0].split(": validation error")[0]
  cell = _probe("confusion", f"--model_dir={d}", f"--cell={t},{p}",
                f"--png={tmp_path / 'cell.png'}", f"--against={newest}",
                f"--write={tmp_path / 'cell.json'}", env=run_env(mnist_idx_dir))
  assert cell.returncode == 0, cell.stderr[-2000:]
  with_cell = json.load(open(tmp_path / "cell.json"))
  assert with_cell["matrix"] == c
  indices = with_cell["cell"]["validation_indices"]
  assert len(indices) == c[t][p] == len(set(indices))
  # qbar(y=p|x) of each: p is its argmax over 10 classes, so at least 1/10.
  probabilities = with_cell["cell"]["probability_of_predicted"]
  assert len(probabilities) == len(indices)
  assert all(0.1 - 1e-6 <= v <= 1 + 1e-6 for v in probabilities), probabilities
  assert with_cell["against"] == dict(checkpoint=os.path.basename(newest), errors=errors,
                                      both=errors, first_only=0, second_only=0,
                                      cell=dict(right=0, same=c[t][p]))
  assert open(tmp_path / "cell.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  assert f"cell {t} -> {p}: {c[t][p]} images" in cell.stdout
  # Two refusals, in-process (the command line turns a ConfigError into
  # one line and exit 2: test_a_probe_with_bad_arguments_says_so_in_one_line).
  from experiments.probes import confusion
  from adgm_tf.errors import ConfigError
  args = dict(top=6, write="", cell="", png="", against="")
  missing = os.path.join(d, "checkpoints", "ckpt-999999")
  with pytest.raises(ConfigError) as e:
    confusion.main(d, None, **{**args, "against": missing})
  assert str(e.value) == (
      f"--against={missing}: no such checkpoint ({missing}.index does not exist). Give "
      f"a prefix such as {d}/checkpoints/ckpt-<step> (or ckpt-<step> alone), or leave it "
      f"out for the newest.")
  assert dir_digest(d) == before
  with pytest.raises(ConfigError) as e:
    confusion.main(d, None, **{**args, "write": str(target)})
  assert str(e.value) == (f"--write={target} exists; it is not overwritten: give a new "
                          f"file name.")
  assert json.load(open(target)) == saved


@pytest.mark.parametrize("flags, message", [
    (dict(top=0), "--top=0: give how many confusions to list, at least 1."),
    (dict(cell="7"), "--cell=7: give the true and the predicted class, e.g. --cell=7,9."),
    (dict(cell="7,x"), "--cell=7,x: give the true and the predicted class, e.g. --cell=7,9."),
    (dict(cell="-1,3"), "--cell=-1,3: give two different classes, e.g. --cell=7,9."),
    (dict(cell="7,7"), "--cell=7,7: give two different classes, e.g. --cell=7,9."),
    (dict(png="x.png"), "--png=x.png: say which images to draw with --cell=T,P."),
    (dict(cell="7,9", png="/nonexistent/x.png"),
     "--png=/nonexistent/x.png: its directory does not exist; create it first.")])
def test_confusion_checks_its_flags_before_reading_the_run(flags, message):
  """The same checks in-process (the line above shows how they reach the
  user): each fails before the run directory ("x", absent) is read."""
  from experiments.probes import confusion
  from adgm_tf.errors import ConfigError
  args = {**dict(top=6, write="", cell="", png="", against=""), **flags}
  with pytest.raises(ConfigError) as e:
    confusion.main("x", None, **args)
  assert str(e.value) == message


def test_confusion_cell_out_of_range_and_shared_errors():
  from experiments.probes import confusion
  from adgm_tf.errors import ConfigError
  assert confusion.parse_cell("7,9", 10) == (7, 9)
  with pytest.raises(ConfigError, match=re.escape("--cell=3,10: give two different classes "
                                                  "below 10, e.g. --cell=7,9.")):
    confusion.parse_cell("3,10", 10)
  labels = [0, 1, 2, 3, 4]
  assert confusion.shared_errors(labels, [0, 2, 1, 3, 0], [1, 2, 2, 3, 0]) == dict(
      both=2, first_only=1, second_only=1)


def test_label_bounds_votes_of_a_hand_made_bound():
  import numpy as np
  from experiments.probes import label_bounds
  l_xy = np.array([[-10.0, -12.0, -30.0], [-20.0, -11.0, -30.0], [-40.0, -50.0, -5.0]])
  assert label_bounds.votes_in(l_xy, np.array([0, 1, 2]), true=0, pred=1) == dict(
      images=3, bound_votes_true=1, bound_votes_predicted=1, bound_votes_other=1,
      median_margin_nats=-2.0)
  assert label_bounds.votes_in(l_xy, np.array([], int), 0, 1)["median_margin_nats"] is None


def test_label_bounds_reads_the_runs_own_validation_error(validation_run, mnist_idx_dir,
                                                          tmp_path):
  """The classifier's error is the run's own validation error; the bound's
  vote covers the 500 validation images; a cell splits the images of its true
  class by the classifier's answer, and every one of them gets one vote; the
  run directory is unchanged and --write makes a new file only."""
  from test_train import dir_digest
  from experiments.probes import label_bounds
  from adgm_tf.errors import ConfigError
  d = validation_run
  before = dir_digest(d)
  target = tmp_path / "bounds.json"
  label_bounds.main(d, None, samples=2, cell="", write=str(tmp_path / "a.json"),
                    images="validation")
  c = json.load(open(tmp_path / "a.json"))["classifier"]
  t, p = c["confusions"][0]["true"], c["confusions"][0]["predicted"]
  out = _probe("label_bounds", f"--model_dir={d}", "--samples=2", f"--cell={t},{p}",
               f"--write={target}", env=run_env(mnist_idx_dir))
  assert out.returncode == 0, out.stderr[-2000:]
  saved = json.load(open(target))
  assert saved["classifier_error"] == _validation_error(d)
  assert saved["classifier"]["matrix"] == c["matrix"]
  v = saved["bound_vote"]["matrix"]
  assert sum(map(sum, v)) == saved["images"] == 500
  assert saved["bound_vote_error"] == pytest.approx(1 - sum(v[k][k] for k in range(10)) / 500)
  assert 0 <= saved["agreement"] <= 1
  assert (f"validation error {100 * _validation_error(d):.2f}% (classifier), "
          f"{100 * saved['bound_vote_error']:.2f}% (argmax_y L(x,y), 2 samples)") in out.stdout
  wrong, right = saved["cell"]["wrong"], saved["cell"]["right"]
  assert wrong["images"] == c["matrix"][t][p] == len(saved["cell"]["validation_indices"]) > 0
  assert right["images"] == c["matrix"][t][t]
  for group in (wrong, right):
    assert (group["bound_votes_true"] + group["bound_votes_predicted"]
            + group["bound_votes_other"]) == group["images"]
  # cell.of_class: every image of class T with its classifier label, the
  # bound's vote and margin, agreeing with the matrices and the groups above.
  of = saved["cell"]["of_class"]
  assert len(of["indices"]) == sum(c["matrix"][t]) == len(of["bound_vote"]) == len(
      of["margin_nats"])
  assert [of["classifier"].count(k) for k in range(10)] == c["matrix"][t]
  assert [of["bound_vote"].count(k) for k in range(10)] == v[t]
  in_cell = [i for i, k in enumerate(of["classifier"]) if k == p]
  assert [of["indices"][i] for i in in_cell] == saved["cell"]["validation_indices"]
  assert sum(of["bound_vote"][i] == p for i in in_cell) == wrong["bound_votes_predicted"]
  assert float(np.median([of["margin_nats"][i] for i in in_cell])) == pytest.approx(
      wrong["median_margin_nats"])
  # The same samples give the same votes: the two launches agree exactly.
  assert json.load(open(tmp_path / "a.json"))["bound_vote"] == saved["bound_vote"]
  assert dir_digest(d) == before
  with pytest.raises(ConfigError) as e:
    label_bounds.main(d, None, samples=2, cell="", write=str(target), images="validation")
  assert str(e.value) == (f"--write={target} exists; it is not overwritten: give a new "
                          f"file name.")
  assert json.load(open(target)) == saved
  # The labelled training images: one margin for each labelled image of the
  # cell's true class, and the cell's groups cover exactly those images.
  label_bounds.main(d, None, samples=2, cell=f"{t},{p}", write=str(tmp_path / "l.json"),
                    images="labeled")
  lab = json.load(open(tmp_path / "l.json"))
  from adgm_tf import rundir, pipeline
  split = pipeline.build_data(rundir.load_run(d)[0]).split
  labels = split.arrays.train_labels[split.labeled]
  assert lab["images_of"] == "labeled" and lab["images"] == len(labels)
  assert len(lab["cell"]["margins_of_class"]) == int((labels == t).sum()) > 0
  assert lab["cell"]["of_class"]["margin_nats"] == lab["cell"]["margins_of_class"]
  assert lab["cell"]["wrong"]["images"] + lab["cell"]["right"]["images"] <= int((labels == t).sum())
  assert "validation_indices" not in lab["cell"] and "labeled_indices" in lab["cell"]


@pytest.mark.parametrize("flags, message", [
    (dict(samples=0), "--samples=0: give how many samples of a and z to average L(x,y) "
                      "over, at least 1."),
    (dict(cell="7"), "--cell=7: give the true and the predicted class, e.g. --cell=7,9."),
    (dict(write="/nonexistent/x.json"), "--write=/nonexistent/x.json: its directory does not "
                                        "exist; create it first.")])
def test_label_bounds_checks_its_flags_before_reading_the_run(flags, message):
  from experiments.probes import label_bounds
  from adgm_tf.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    label_bounds.main("x", None, **{**dict(samples=2, cell="", write="", images="validation"),
                                    **flags})
  assert str(e.value) == message


def test_more_labels_pick_and_split_by_hand():
  """The images drawn are candidates, distinct, sorted, the same for a seed;
  the split gains exactly them as labelled and keeps everything else."""
  import numpy as np
  from experiments.probes import more_labels
  from adgm_tf import data as data_lib
  candidates = np.array([40, 7, 13, 99, 61])
  a = more_labels.pick(candidates, 3, 0)
  assert len(set(a.tolist())) == 3 and set(a.tolist()) <= set(candidates.tolist())
  assert a.tolist() == sorted(a.tolist()) and more_labels.pick(candidates, 3, 0).tolist() == a.tolist()
  assert more_labels.pick(candidates, 0, 0).tolist() == []
  split = data_lib.SemiSupervisedSplit(arrays=None, labeled=np.array([1, 5]),
                                       unlabeled=np.array([1, 2, 5, 8, 9]),
                                       validation=np.array([0, 3]))
  more = more_labels.more_labels(split, np.array([9, 2]))
  assert more.labeled.tolist() == [1, 2, 5, 9]
  assert more.unlabeled.tolist() == [1, 2, 5, 8, 9] and more.validation.tolist() == [0, 3]
  for bad in ([5], [3], [4]):  # labelled already, validation, not in the split
    with pytest.raises(ValueError):
      more_labels.more_labels(split, np.array(bad))


def test_more_labels_continues_the_run_with_more_labelled_images(validation_run, tmp_path):
  """From the one-epoch run's checkpoint: the start row is the run's own
  validation error and confusion cell; --add labels that many training images
  of the cell's class the checkpoint calls P (none of them validation or
  labelled images), one more epoch is trained into --out with the run's α,
  and the run directory is unchanged; an existing --out and too large an
  --add are refused, with nothing written."""
  from test_train import dir_digest
  from experiments.probes import more_labels
  from adgm_tf import rundir, pipeline
  from adgm_tf.errors import ConfigError
  d = validation_run
  before = dir_digest(d)
  from experiments.probes import confusion
  confusion.main(d, None, top=1, write=str(tmp_path / "c.json"), cell="", png="", against="")
  c = json.load(open(tmp_path / "c.json"))
  t, p = c["confusions"][0]["true"], c["confusions"][0]["predicted"]
  more_labels.main(d, None, cell=f"{t},{p}", add=2, epochs=2, out=str(tmp_path / "more"),
                   pick_seed=0, write=str(tmp_path / "more.json"))
  s = json.load(open(tmp_path / "more.json"))
  first = s["rows"][0]
  assert first["validation_error"] == _validation_error(d)
  assert first["cell"] == c["matrix"][t][p] == first["start_cell_still_in_cell"] > 0
  assert [r["epoch"] for r in s["rows"]] == [1.0, 2.0, 3.0]
  config = rundir.load_run(d)[0]
  split = pipeline.build_data(config).split
  added = s["added_train_indices"]
  assert len(added) == 2 and s["labeled"] == split.num_labeled + 2
  assert all(split.arrays.train_labels[i] == t for i in added)
  assert not set(added) & (set(split.labeled.tolist()) | set(split.validation.tolist()))
  assert set(added) <= set(split.unlabeled.tolist())
  assert s["alpha"] == json.load(open(os.path.join(d, "config.json")))["derived"]["alpha"]
  assert len(s["rows"][1]["added_q_true"]) == 2
  assert json.load(open(tmp_path / "more" / "config.json"))["derived"]["num_labeled"] == (
      split.num_labeled + 2)
  assert dir_digest(d) == before
  # cell_history on the continued training's two checkpoints: the same figures.
  from experiments.probes import cell_history
  cell_history.main(str(tmp_path / "more"), None, cell=f"{t},{p}", every=1,
                    write=str(tmp_path / "history.json"))
  h = json.load(open(tmp_path / "history.json"))
  assert [r["checkpoint"] for r in h["rows"]] == ["ckpt-20", "ckpt-30"]
  assert h["last_checkpoint"] == "ckpt-30"
  assert h["rows"][-1]["cell_validation_indices"] == h["last_cell_validation_indices"]
  assert h["rows"][-1]["cell"] == h["rows"][-1]["last_cell_in_cell"] == len(
      h["last_cell_validation_indices"])
  for mine, theirs in zip(h["rows"], s["rows"][1:]):
    assert mine["epoch"] == theirs["epoch"]
    assert (mine["validation_error"], mine["cell"]) == (theirs["validation_error"],
                                                        theirs["cell"])
  cell_history.main(str(tmp_path / "more"), None, cell=f"{t},{p}", every=2,
                    write=str(tmp_path / "every2.json"))
  assert [r["checkpoint"] for r in json.load(open(tmp_path / "every2.json"))["rows"]] == [
      "ckpt-30"]
  with pytest.raises(ConfigError) as e:
    more_labels.main(d, None, cell=f"{t},{p}", add=1, epochs=1, out=str(tmp_path / "more"),
                     pick_seed=0, write="")
  assert str(e.value) == (f"--out={tmp_path / 'more'} exists; nothing in it is "
                          f"overwritten: give a new directory.")
  with pytest.raises(ConfigError) as e:
    more_labels.main(d, None, cell=f"{t},{p}", add=10**6, epochs=1,
                     out=str(tmp_path / "many"), pick_seed=0, write="")
  assert str(e.value).startswith("--add=1000000: the checkpoint calls only ")
  assert not os.path.exists(tmp_path / "many")


@pytest.mark.large
def test_more_labels_control_is_the_runs_own_continuation(validation_run, tmp_path):
  """--add=0 trains on exactly as the run would: its epoch-2 weights are,
  bit for bit, those of the run relaunched for a second epoch."""
  import shutil
  from test_train import checkpoint_weights, assert_same_weights
  from experiments.probes import more_labels
  from adgm_tf import rundir, train
  d = validation_run
  config = rundir.load_run(d)[0]
  more_labels.main(d, None, cell="6,3", add=0, epochs=1, out=str(tmp_path / "control"),
                   pick_seed=0, write="")
  resumed = str(tmp_path / "resumed")
  shutil.copytree(d, resumed)
  train.train_and_evaluate(config.replace(train=dataclasses.replace(config.train, epochs=2)),
                           resumed)
  ours = checkpoint_weights(str(tmp_path / "control"))
  theirs = checkpoint_weights(resumed)
  assert ours[0].endswith("ckpt-20") and theirs[0].endswith("ckpt-20")
  assert_same_weights(ours[1], theirs[1], atol=0)


@pytest.mark.parametrize("flags, message", [
    (dict(cell=""), "--cell: give the block's true and predicted class, e.g. --cell=7,9."),
    (dict(add=-1), "--add=-1: give how many training images of the cell to label, 0 for "
                   "the control."),
    (dict(epochs=0), "--epochs=0: give how many more epochs to train, at least 1."),
    (dict(out=""), "--out: give a new directory for the continued training's checkpoints "
                   "and history."),
    (dict(out="/nonexistent/x"), "--out=/nonexistent/x: its parent directory does not "
                                 "exist; create it first.")])
def test_more_labels_checks_its_flags_before_reading_the_run(flags, message):
  from experiments.probes import more_labels
  from adgm_tf.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    more_labels.main("x", None, **{**dict(cell="7,9", add=3, epochs=1, out="/tmp/new-dir-x",
                                          pick_seed=0, write=""), **flags})
  assert str(e.value) == message


@pytest.mark.parametrize("flags, message", [
    (dict(checkpoint="x"), "--checkpoint: this probe reads every checkpoint of the run; "
                           "leave it out."),
    (dict(cell=""), "--cell: give the cell's true and predicted class, e.g. --cell=7,9."),
    (dict(every=0), "--every=0: give 1 for every checkpoint, or N for every N-th.")])
def test_cell_history_checks_its_flags_before_reading_the_run(flags, message):
  from experiments.probes import cell_history
  from adgm_tf.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    cell_history.main("x", **{**dict(checkpoint=None, cell="7,9", every=1, write=""),
                              **flags})
  assert str(e.value) == message


def test_the_probes_that_read_validation_images_refuse_a_run_without_them(tiny_run, tmp_path):
  """tests/tiny.flags holds out no validation images: each probe that reads
  them (common.require_validation) says so in one error before it writes
  anything."""
  from experiments.probes import bn_stats, cell_history, common, confusion, label_bounds
  from experiments.probes import more_labels, nearest_labelled
  d = tiny_run["model_dir"]
  write = str(tmp_path / "w.json")
  calls = {
      "bn_stats": lambda: bn_stats.main(d, refreshes=1, population_batches=1),
      "confusion": lambda: confusion.main(d, top=1, write=write, cell="", png="", against=""),
      "label_bounds": lambda: label_bounds.main(d, samples=2, cell="", write=write,
                                                images="validation"),
      "more_labels": lambda: more_labels.main(d, cell="7,9", add=1, epochs=1,
                                              out=str(tmp_path / "out"), pick_seed=1,
                                              write=write),
      "cell_history": lambda: cell_history.main(d, cell="7,9", every=1, write=write),
      "nearest_labelled": lambda: nearest_labelled.main(d, k=1, cell="", write=write),
  }
  for name, call in calls.items():
    with pytest.raises(common.ConfigError) as e:
      call()
    assert str(e.value) == f"{d}: the run has no validation images (--validation_size=0).", name
  assert sorted(os.listdir(tmp_path)) == []


def test_nearest_labels_by_hand():
  """Three labelled points on a line: each query takes the majority of its k
  nearest, a tie the label of the nearest among the tied."""
  from experiments.probes.nearest_labelled import nearest_labels
  xl = np.array([[0.0], [1.0], [3.0]])
  yl = np.array([2, 0, 0])
  x = np.array([[0.1], [0.9], [2.0], [-5.0]])
  assert nearest_labels(x, xl, yl, 1, 3).tolist() == [2, 0, 0, 2]
  assert nearest_labels(x, xl, yl, 3, 3).tolist() == [0, 0, 0, 0]
  # k = 2: [0.1] has one vote each for 2 (nearer) and 0: the tie goes to 2.
  assert nearest_labels(x, xl, yl, 2, 3).tolist() == [2, 0, 0, 2]


def test_nearest_labelled_classifies_the_validation_images(validation_run, tmp_path):
  """On the one-epoch run: one prediction per validation image, the matrix
  and error agree with them and with the labels, each image's label is that
  of its nearest labelled image (checked directly), and bad flags get one
  error each with nothing written."""
  from adgm_tf import evaluation, pipeline, rundir
  from experiments.probes import common, nearest_labelled
  d = validation_run
  out = tmp_path / "nn.json"
  nearest_labelled.main(d, k=1, cell="5,3", write=str(out))
  s = json.load(open(out))
  split = pipeline.build_data(rundir.load_run(d)[0]).split
  raw, labels = evaluation.split_images(split, "validation")
  x = raw.reshape(len(raw), -1) / 255.0
  xl = split.arrays.train_images[split.labeled].reshape(len(split.labeled), -1) / 255.0
  near = [int(np.argmin(((xl - row) ** 2).sum(1))) for row in x]
  assert s["predicted"] == split.arrays.train_labels[split.labeled][near].tolist()
  m = np.array(s["matrix"])
  assert m.sum() == len(s["predicted"]) == 500 and s["labelled"] == 100 and s["k"] == 1
  assert m.tolist() == [[sum(1 for t, p in zip(labels, s["predicted"]) if (t, p) == (i, j))
                         for j in range(10)] for i in range(10)]
  assert s["error"] == pytest.approx(1 - np.trace(m) / 500)
  for kwargs, message in (
      (dict(checkpoint="x"), "--checkpoint: this probe reads no checkpoint"),
      (dict(k=0), "--k=0: give how many nearest labelled images vote"),
      (dict(k=101), "--k=101: the run has only 100 labelled images."),
      (dict(cell="5,5"), "--cell=5,5: give two different classes"),
      (dict(write=str(out)), f"--write={out} exists")):
    args = {**dict(k=1, cell="", write=""), **kwargs}
    checkpoint = args.pop("checkpoint", None)
    with pytest.raises(common.ConfigError, match=re.escape(message)):
      nearest_labelled.main(d, checkpoint, **args)
  assert sorted(os.listdir(tmp_path)) == ["nn.json"]
