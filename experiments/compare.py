r"""Compare finished runs of different experiments, per epoch, over seeds.

    python -m experiments.compare [--plot=PNG [--budget=TEXT]] LABEL=DIR_GLOB [LABEL=DIR_GLOB ...]

Each ``LABEL=DIR_GLOB`` names one model: the run directories matching the
glob (its seeds; a run directory or a published copy, anything with a
``history.csv``). Prints, per label and epoch, the validation error and the
validation swap cost (mean over seeds, and the range), and, with ``--plot``,
draws ``experiments.plot_convergence`` for them all, with ``--budget`` (what
each run was given, e.g. "10 epochs each") in its title. Only epochs that every
seed of a label reached are shown. Example (the SDGM without the warm-up
against Fig. 4's M2, from the published files):

    python -m experiments.compare "M2=docs/results/fig4/runs/m2-seed*" \
        "SDGM, no warm-up=docs/results/sdgm_nowarmup/runs/sdgm_nowarmup-seed*"
"""
import glob
import os

from adgm_tf import cli
from adgm_tf import experiments
from adgm_tf.errors import ConfigError

PROG = "experiments.compare"


def records_of(specs):
  """``[{name, seed, model_dir, history, metrics}]`` for ``LABEL=GLOB`` specs."""
  records = []
  for spec in specs:
    label, sep, pattern = spec.partition("=")
    if not sep or not label or not pattern:
      raise ConfigError(f"{spec!r}: expected LABEL=DIR_GLOB, e.g. "
                        f"\"M2=docs/results/fig4/runs/m2-seed*\".")
    dirs = sorted(d for d in glob.glob(os.path.expanduser(pattern))
                  if os.path.exists(os.path.join(d, "history.csv")))
    if not dirs:
      raise ConfigError(f"{label}: no run directory with a history.csv matches {pattern}.")
    for i, d in enumerate(dirs):
      records.append(dict(name=label, seed=i, model_dir=d, metrics={},
                          history=experiments.read_history(d)))
  return records


def swap_cost_history(records):
  """The records with ``validation_aux_swap_cost`` in every history row
  (``experiments.with_swap_cost``, as the figures of the runner add it)."""
  return [dict(r, history=[experiments.with_swap_cost(h) for h in r["history"]])
          for r in records]


def table(records) -> str:
  lines = []
  for key, title, fmt in (("validation_error", "validation error (%)", "5.2f"),
                          ("validation_aux_swap_cost", "swap cost, validation (points)",
                           "+5.2f")):
    curves = experiments.per_epoch(records, key, 100.0)
    if not curves:
      continue
    lines.append(f"{title}: mean over seeds [min, max]")
    for name, (epochs, mean, lo, hi, n) in curves.items():
      cells = "  ".join(f"{e:g}: {m:{fmt}} [{a:.2f}, {b:.2f}]"
                        for e, m, a, b in zip(epochs, mean, lo, hi))
      lines.append(f"  {name} ({n} seed{'s' if n > 1 else ''})  {cells}")
  return "\n".join(lines)


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  specs = argv[1:]
  if not specs:
    raise ConfigError("give one LABEL=DIR_GLOB or more, e.g. "
                      "\"M2=docs/results/fig4/runs/m2-seed*\".")
  records = swap_cost_history(records_of(specs))
  print(table(records))
  if flags.FLAGS.plot:
    experiments.plot_convergence(records, flags.FLAGS.plot, flags.FLAGS.budget)
    print(f"written: {flags.FLAGS.plot}")


def define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("plot", None, "also draw the convergence figure into this PNG")
  flags.DEFINE_string("budget", "", "what each run was given (e.g. \"10 epochs each\"), "
                      "for the figure's title")


if __name__ == "__main__":
  cli.run_absl(PROG, main, define_flags)
