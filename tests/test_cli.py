"""Tests for adgm_tf.cli: how every command line reports a failure."""

import io
import subprocess
import sys

import pytest

from adgm_tf import cli
from adgm_tf import errors


def test_a_known_failure_is_one_line_and_its_exit_code():
  out = io.StringIO()
  code = cli.report("prog", errors.DataError("f.npz: y_train has shape (3,)"), stream=out)
  assert code == 2 and out.getvalue() == "prog: error: f.npz: y_train has shape (3,)\n"


def test_an_unexpected_failure_says_how_to_see_the_traceback():
  out = io.StringIO()
  code = cli.report("prog", RuntimeError("boom\nsecond line"), stream=out)
  lines = out.getvalue().splitlines()
  assert code == 1 and len(lines) == 1
  assert lines[0].startswith("prog: error: unexpected RuntimeError: boom (run again with "
                             "--verbose_errors")


def test_verbose_prints_the_traceback_then_the_line():
  out = io.StringIO()
  try:
    raise errors.ConfigError("--x=1: bad")
  except errors.ConfigError as e:
    cli.report("prog", e, verbose=True, stream=out)
  text = out.getvalue()
  assert "Traceback" in text and text.rstrip().endswith("prog: error: --x=1: bad")


def test_an_interruption_is_not_called_an_error():
  out = io.StringIO()
  assert cli.report("prog", KeyboardInterrupt(), stream=out) == 130
  assert out.getvalue() == "prog: interrupted.\n"


def test_run_main_exits_with_the_code(capsys):
  with pytest.raises(SystemExit) as stop:
    cli.run_main("prog", lambda: (_ for _ in ()).throw(errors.AuxDied("dead a")),
                 verbose=False)
  assert stop.value.code == 3
  assert capsys.readouterr().err == "prog: error: dead a\n"


def _program(tmp_path, body):
  """A throwaway command built on cli.run_absl, run as a user would."""
  script = tmp_path / "prog.py"
  script.write_text(
      "from absl import flags\n"
      "from adgm_tf import cli, errors\n"
      "def define_flags():\n"
      "  flags.DEFINE_integer('n', 1, 'a number')\n"
      f"def main(argv):\n{body}\n"
      "cli.run_absl('prog', main, define_flags)\n")
  return lambda *args: subprocess.run([sys.executable, str(script), *args],
                                      capture_output=True, text=True, timeout=60)


def test_run_absl_gives_every_command_the_same_failures(tmp_path):
  """Flag errors exit 2 in one line; a known failure in main its one line and
  code; an unexpected one its type and the way to the traceback; --verbose_errors
  (added by run_absl) shows it."""
  run = _program(tmp_path, "  if flags.FLAGS.n < 0:\n"
                           "    raise errors.ConfigError(f'--n={flags.FLAGS.n}: not below 0.')\n"
                           "  if flags.FLAGS.n == 7:\n"
                           "    raise KeyError('seven')\n"
                           "  print('ok', flags.FLAGS.n, argv[1:])")
  ok = run("--n=3", "pos")
  assert (ok.returncode, ok.stdout, ok.stderr) == (0, "ok 3 ['pos']\n", "")
  for args, code, line in (
      (["--n=x"], 2, "prog: error: flag --n=x: invalid literal for int() with base 10: "
                     "'x' (--helpshort lists the flags)"),
      (["--m=1"], 2, "prog: error: Unknown command line flag 'm' (--helpshort lists the "
                     "flags)"),
      (["--n=-1"], 2, "prog: error: --n=-1: not below 0."),
      (["--n=7"], 1, "prog: error: unexpected KeyError: 'seven' (run again with "
                     "--verbose_errors or ADGM_VERBOSE_ERRORS=1 for the traceback)")):
    out = run(*args)
    assert (out.returncode, out.stderr.strip()) == (code, line), args
  verbose = run("--n=7", "--verbose_errors")
  assert verbose.returncode == 1 and "Traceback" in verbose.stderr
