"""One declaration per parameter: every config key's default, type, bounds,
nullability and meaning, in the GX-free core (see `base.py`).

`FAMILIES` lists every expectation family's declaration in run order, so
config validation, the signals and the docs know every family without
importing Great Expectations; the GX layer only adds how a family becomes
expectations (`core/registry.py`).
"""

from __future__ import annotations

from poison_expectations.core.params.base import INHERIT, LIMIT, SIGNAL, SWITCH, FamilyParams, Param, rate
from poison_expectations.core.params.clean_label_collision import CLEAN_LABEL_COLLISION
from poison_expectations.core.params.feature_clustering import FEATURE_CLUSTERING
from poison_expectations.core.params.influence import INFLUENCE
from poison_expectations.core.params.label_consistency import LABEL_CONSISTENCY
from poison_expectations.core.params.near_duplicates import NEAR_DUPLICATES
from poison_expectations.core.params.outliers import OUTLIERS
from poison_expectations.core.params.shared import EXPECTATION_KEYS, SHARED_SPEC, shared_param
from poison_expectations.core.params.sources import SOURCES
from poison_expectations.core.params.spectral_signatures import SPECTRAL_SIGNATURES
from poison_expectations.core.params.trigger_patterns import TRIGGER_PATTERNS

FAMILIES: tuple[FamilyParams, ...] = tuple(sorted(
    (LABEL_CONSISTENCY, NEAR_DUPLICATES, INFLUENCE, SPECTRAL_SIGNATURES, FEATURE_CLUSTERING, TRIGGER_PATTERNS,
     CLEAN_LABEL_COLLISION, OUTLIERS, SOURCES),
    key=lambda f: (f.order, f.section)))


def family(section: str) -> FamilyParams:
    """A family's declaration by its config section name."""
    for declared in FAMILIES:
        if declared.section == section:
            return declared
    raise KeyError(f"no expectation family '{section}' (known: {[f.section for f in FAMILIES]})")


__all__ = ["FAMILIES", "EXPECTATION_KEYS", "SHARED_SPEC", "INHERIT", "LIMIT", "SIGNAL", "SWITCH", "FamilyParams",
           "Param", "family", "rate", "shared_param", "CLEAN_LABEL_COLLISION", "FEATURE_CLUSTERING", "INFLUENCE",
           "LABEL_CONSISTENCY", "NEAR_DUPLICATES", "OUTLIERS", "SOURCES", "SPECTRAL_SIGNATURES", "TRIGGER_PATTERNS"]
