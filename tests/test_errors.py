"""Tests for adgm_tf.errors: known failures, their one line and exit code."""

import errno

import pytest

from adgm_tf import errors


@pytest.mark.parametrize("error,code", [
    (errors.ConfigError("--x=1: bad"), 2), (errors.DataError("f: bad"), 2),
    (errors.CheckpointError("c"), 2), (errors.RunLockedError("l"), 2),
    (errors.Diverged("nan"), 3), (errors.AuxDied("dead"), 3),
    (errors.DiskFull("full"), 4), (errors.Interrupted("stop"), 130),
    (KeyboardInterrupt(), 130), (FileExistsError("exists"), 2),
    (FloatingPointError("inf"), 3),
])
def test_every_known_failure_has_its_exit_code(error, code):
  message, got = errors.describe(error)
  assert got == code and message


@pytest.mark.parametrize("err,expected,code", [
    (errno.EACCES, "cannot write /x/y: Permission denied. Choose a directory you can write to", 2),
    (errno.ENOSPC, "cannot write /x/y: No space left on device. Free some space", 4),
    (errno.ENOENT, "/x/y does not exist (No such file or directory). Check the path.", 2),
    (errno.ENOTDIR, "/x/y: a part of this path is a file, not a directory.", 2),
])
def test_os_errors_name_the_path_and_the_fix(err, expected, code):
  import os
  message, got = errors.describe(OSError(err, os.strerror(err), "/x/y"))
  assert expected in message and got == code


def test_an_unexpected_error_is_not_described():
  assert errors.describe(RuntimeError("boom")) is None
  assert issubclass(errors.ConfigError, ValueError)  # callers may catch ValueError
