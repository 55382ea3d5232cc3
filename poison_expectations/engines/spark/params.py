"""Which families the Spark engine runs after the per-row scoring, and each
family's signal parameters from the config (a leaf module: the engine and the
batch families both read it)."""

from __future__ import annotations

from poison_expectations.core.params.shared import shared_values

BATCH_SECTIONS = ("near_duplicates", "sources")  # run from aggregates (batch.py)


def family_params(config: dict, family) -> dict:
    """A family's signal parameters: its section's, then the shared ones it reads."""
    shared = shared_values(config)
    section = config["expectations"].get(family.section, {})
    params = {k: section[k] for k in family.signal_keys if section.get(k) is not None}
    params.update({k: shared[k] for k in family.shared if shared.get(k) is not None})
    return params
