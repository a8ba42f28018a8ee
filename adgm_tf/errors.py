"""Known failures: the errors the package raises for them, and their exit codes.

A known failure is an :class:`AdgmError` (or one of the few standard errors
listed in :func:`describe`): the command lines print one line, ``<prog>:
error: <what is wrong and what to do>``, and exit non-zero (``cli.py``).

Exit codes: 2 bad input (flags, files, run directory), 3 a run gone wrong
(a non-finite loss, or an auxiliary variable that died under the guard),
4 out of disk space, 1 an unexpected error, 130 interrupted (Ctrl-C).

This module imports neither TensorFlow nor absl, so flags can be checked and
errors reported before TensorFlow loads.
"""

from __future__ import annotations

import errno
from typing import Optional


class AdgmError(Exception):
  """A failure the user can fix: its message says what is wrong and what to do."""
  exit_code = 2


class ConfigError(AdgmError, ValueError):
  """An invalid or inconsistent setting, or a run directory that does not fit it."""


class DataError(AdgmError, ValueError):
  """A data file or data source is missing or not what it should be."""


class CheckpointError(ConfigError):
  """No usable checkpoint where one is needed, or one written by another model."""


class RunLockedError(ConfigError):
  """Another process is using the run directory."""


class Diverged(AdgmError, FloatingPointError):
  """The loss became non-finite; the message says where the run can resume."""
  exit_code = 3


class AuxDied(AdgmError):
  """The guard (--aux_alive_floor, --aux_swap_floor) found a dead or unused a."""
  exit_code = 3


class DiskFull(AdgmError, OSError):
  """A write failed for lack of space; the message says what is still intact."""
  exit_code = 4


class Interrupted(AdgmError, KeyboardInterrupt):
  """Ctrl-C: the message says where the last checkpoint is."""
  exit_code = 130


def describe_os_error(e: OSError) -> str:
  """One line for an OSError: the path, the reason and what to do."""
  path = e.filename or "a file"
  reason = e.strerror or str(e)
  if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
    return (f"cannot write {path}: {reason}. Choose a directory you can write "
            f"to, or fix its permissions.")
  if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
    return f"cannot write {path}: {reason}. Free some space and run again."
  if e.errno == errno.ENOENT:
    return f"{path} does not exist ({reason}). Check the path."
  if e.errno == errno.ENOTDIR:
    return f"{path}: a part of this path is a file, not a directory. Check the path."
  return f"{path}: {reason}."


def describe(e: BaseException) -> Optional[tuple]:
  """``(message, exit code)`` for a known failure; None for an unexpected one."""
  if isinstance(e, AdgmError):
    return str(e), e.exit_code
  if isinstance(e, KeyboardInterrupt):
    return "interrupted.", 130
  if isinstance(e, FileExistsError):
    return str(e), 2
  if isinstance(e, OSError) and e.errno is not None:
    code = 4 if e.errno in (errno.ENOSPC, errno.EDQUOT) else 2
    return describe_os_error(e), code
  if isinstance(e, FloatingPointError):
    return str(e), 3
  return None
