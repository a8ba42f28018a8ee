"""The model variants, in one table.

Read by the config (``--model``'s choices and the launch's first line), by
``models.build_model`` (which class, with which arguments) and by the
benchmark (each variant's wiring, through ``models.wiring_of``). A new variant
is a row here and, if it needs one, a ``Wiring`` in ``models/`` (STYLE.md:
"a model is its factorization"). Imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple


class Variant(NamedTuple):
  cls: str                  # the class in adgm_tf.models
  kwargs: Dict[str, Any]    # its arguments that make this variant
  description: str          # what it is, for the launch's first line


VARIANTS = {
    "adgm": Variant("ADGM", dict(form="icml", auxiliary="stochastic"),
                    "the ADGM (Maaløe et al., ICML 2016): q(a|x) q(y|a,x) q(z|a,x,y), "
                    "p(a|x,y,z)"),
    "adgm_workshop": Variant("ADGM", dict(form="workshop", auxiliary="stochastic"),
                             "the ADGM in its NIPS 2015 workshop form: p(a) = N(0, I), "
                             "q(z|x,y)"),
    "sdgm": Variant("SDGM", {}, "the SDGM (Maaløe et al., ICML 2016): p(a|y,z) p(x|a,y,z)"),
    "m2": Variant("M2", {}, "M2 (Kingma et al., NIPS 2014): q(y|x) q(z|x,y), no "
                            "auxiliary variable"),
    "adgm_det": Variant("ADGM", dict(form="icml", auxiliary="deterministic"),
                        "the ADGM with a deterministic auxiliary unit a = mu(x) (the "
                        "ablation)"),
}
MODELS = tuple(VARIANTS)


def variant(name: str) -> Variant:
  if name not in VARIANTS:
    raise ValueError(f"Unknown model {name!r}; choose one of {list(MODELS)}.")
  return VARIANTS[name]
