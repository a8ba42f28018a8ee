"""What every command line of the package does at start-up and at a failure.

* **A quiet start.** :func:`import_tensorflow` imports TensorFlow (and Keras,
  TFP, tfds) with file descriptor 2 captured, so the C++ start-up lines that
  no environment variable silences in TF 2.21 (absl's "All log messages
  before absl::InitializeLog()...", "Could not find cuda drivers", the cuInit
  error and the CPU-feature notice on every CPU machine) are dropped; any other
  line written during the import is passed on. ``TF_CPP_MIN_LOG_LEVEL=3`` is
  set unless the user set it, and TensorFlow's and absl's Python loggers are
  set to warnings. ``--show_tf_logs`` (or ``ADGM_SHOW_TF_LOGS=1``) keeps all
  of it.
* **One line per known failure** (:func:`run_main`): ``<prog>: error: <what is
  wrong and what to do>`` and a non-zero exit; the traceback only with
  ``--verbose_errors`` or ``ADGM_VERBOSE_ERRORS=1``. ``errors.py`` lists the
  known failures and the exit codes.

Importing this module imports neither TensorFlow nor absl.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import traceback
from typing import Callable, Optional, Sequence

from adgm_tf import errors

VERBOSE_ENV = "ADGM_VERBOSE_ERRORS"
SHOW_TF_LOGS_ENV = "ADGM_SHOW_TF_LOGS"

# Start-up lines of TensorFlow 2.21 on a machine without a GPU.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc"
    r"|cuInit|cuda_dnn|cuda_fft|cuda_blas|computation placer already registered"
    r"|cpu_feature_guard|To enable the following instructions|This TensorFlow binary "
    r"is optimized|rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations are on|TF_ENABLE_ONEDNN_OPTS|Unable to register cu")


def _flag_set(name: str, env: str, argv: Optional[Sequence[str]] = None) -> bool:
  argv = sys.argv if argv is None else argv
  flag = any(a in (f"--{name}", f"--{name}=true", f"--{name}=1") for a in argv)
  return flag or os.environ.get(env, "") not in ("", "0", "false")


def verbose_requested(argv: Optional[Sequence[str]] = None) -> bool:
  return _flag_set("verbose_errors", VERBOSE_ENV, argv)


def show_tf_logs(argv: Optional[Sequence[str]] = None) -> bool:
  return _flag_set("show_tf_logs", SHOW_TF_LOGS_ENV, argv)


@contextlib.contextmanager
def _capture_fd2():
  """Captures what C++ writes to fd 2; yields a function returning the text."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as sink:
    os.dup2(sink.fileno(), 2)
    captured = {"text": ""}
    try:
      yield captured
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      sink.seek(0)
      captured["text"] = sink.read().decode(errors="replace")


def import_tensorflow(show: Optional[bool] = None):
  """Imports TensorFlow quietly (module docstring); returns the module."""
  show = show_tf_logs() if show is None else show
  if show:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    with _capture_fd2() as captured:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      import keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import tensorflow_probability  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      tf.config.list_physical_devices("GPU")  # the cuInit probe happens here
  finally:
    kept = [line for line in captured["text"].splitlines()
            if line.strip() and not _NOISE.search(line)]
    if kept:
      print("\n".join(kept), file=sys.stderr, flush=True)
  import logging  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel(logging.ERROR)
  with contextlib.suppress(ImportError):
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.set_verbosity(absl_logging.WARNING)
  return tf


def report(prog: str, e: BaseException, verbose: bool = False, stream=None) -> int:
  """Prints the one-line message (and the traceback when ``verbose``); returns the exit code."""
  stream = stream or sys.stderr
  known = errors.describe(e)
  if verbose:
    traceback.print_exception(type(e), e, e.__traceback__, file=stream)
  if known is None:
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    message, code = (f"unexpected {type(e).__name__}: {first[:300]}"
                     + ("" if verbose else f" (run again with --verbose_errors or "
                        f"{VERBOSE_ENV}=1 for the traceback)")), 1
  else:
    message, code = known
  word = "" if code == 130 else "error: "
  print(f"{prog}: {word}{message}", file=stream, flush=True)
  return code


def run_main(prog: str, fn: Callable[[], object],
             verbose: Optional[bool] = None) -> object:
  """Runs ``fn()``; a failure is reported by :func:`report` and exits."""
  verbose = verbose_requested() if verbose is None else verbose
  try:
    return fn()
  except SystemExit:
    raise
  except BaseException as e:  # pylint: disable=broad-except
    sys.exit(report(prog, e, verbose))


def absl_flags_parser(prog: str) -> Callable[[Sequence[str]], list]:
  """``app.run(main, flags_parser=...)``: absl's flag errors as one line, exit 2.

  absl prints "FATAL Flags parsing error: ..." and a second line of advice;
  here an unknown flag, a value of the wrong type, a missing required flag or
  an unreadable --flagfile reads ``<prog>: error: <absl's message> (--helpshort
  lists the flags)``. --help and --helpshort work as before.
  """
  def parse(argv: Sequence[str]) -> list:
    from absl import flags  # pylint: disable=g-import-not-at-top
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      text = " ".join(str(e).split())
      text = re.sub(r"^ERROR:: ", "", text)
      hint = _nested_flagfile_hint(text, argv)
      print(f"{prog}: error: {text} ({hint or '--helpshort lists the flags'})",
            file=sys.stderr, flush=True)
      sys.exit(2)
  return parse


def run_absl(prog: str, main: Callable[[list], object],
             define_flags: Optional[Callable[[], None]] = None) -> None:
  """Runs ``main(argv)`` as every command of the package runs: an absl app.

  ``define_flags()`` declares the command's flags; ``--verbose_errors`` and
  ``--show_tf_logs`` are added unless it declared them. A flag error is one
  line and exit 2 (:func:`absl_flags_parser`); a failure in ``main`` is one
  line and its exit code (:func:`run_main`). ``argv`` holds the program name
  and any positional arguments.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  if define_flags is not None:
    define_flags()
  for name, text in (("verbose_errors", "Show the traceback of a failure."),
                     ("show_tf_logs", "Keep TensorFlow's C++ start-up lines.")):
    if name not in flags.FLAGS:  # listed by --helpshort with the program's own flags
      flags.DEFINE_bool(name, False, text, module_name=sys.argv[0])

  def wrapped(argv):
    run_main(prog, lambda: main(argv),
             verbose=flags.FLAGS.verbose_errors or verbose_requested([]))

  app.run(wrapped, flags_parser=absl_flags_parser(prog))


def _nested_flagfile_hint(text: str, argv: Sequence[str]) -> Optional[str]:
  """Advice when a flagfile named inside a flagfile is not found.

  absl reads ``--flagfile=mnist100_cpu.flags`` inside mnist100_long.flags
  relative to the current directory, not to the file that names it, so
  ``python ~/adgm_tf/launch.py --flagfile=~/adgm_tf/mnist100_long.flags`` fails
  outside the repository. If the missing file sits beside a flagfile of the
  command line, say so.
  """
  m = re.search(r"Unable to open flagfile: .*No such file or directory: '([^']+)'", text)
  if not m or os.path.isabs(m.group(1)):
    return None
  name = m.group(1)
  args = list(argv[1:])
  for i, arg in enumerate(args):
    given = re.fullmatch(r"--?flagfile=(.+)", arg)
    path = given.group(1) if given else None
    if arg in ("--flagfile", "-flagfile") and i + 1 < len(args):
      path = args[i + 1]  # absl also reads the form `--flagfile FILE`
    if path:
      where = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
      if os.path.isfile(os.path.join(where, name)):
        return (f"{name} is named inside a flagfile and read relative to the current "
                f"directory, {os.getcwd()}; it is in {where}: run the command from there")
  return None
