"""Probes of a trained run's auxiliary variable and training (BUILD.md,
"Probes"): each is ``python -m experiments.probes.NAME --model_dir=MODEL_DIR``."""
