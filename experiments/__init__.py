"""The studies of this repository (RESULTS.md): their configs, scripts, probes
and reports. Not part of the installed package; run from the repository's root,
e.g. ``python -m experiments.long_run`` or ``python -m experiments.compare``."""
