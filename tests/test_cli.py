"""Tests for adgm_tf.cli: how every command line reports a failure."""

import io

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
