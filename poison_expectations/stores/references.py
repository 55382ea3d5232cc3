"""The trusted side of a run: a reference table (a registered frame or a
CSV/Parquet file) or a stored profile. Read once per run by whoever builds
the run's analysis (the runner, or the shared GX metric); nothing is cached
across runs, so a long-lived worker never scores against a stale copy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from poison_expectations.core.errors import InputError
from poison_expectations.core.profile import Profile
from poison_expectations.stores.io import read_table
from poison_expectations.stores.profiles import load_profile

_REGISTERED: dict[str, pd.DataFrame] = {}


def register_reference(name: str, frame: pd.DataFrame) -> None:
    """Make an in-memory trusted table available to expectations as `reference=name`."""
    _REGISTERED[name] = frame


def unregister_reference(name: str) -> None:
    _REGISTERED.pop(name, None)


def load_trusted(reference: str | None, profile: str | None, *, max_rows: int | None = None,
                 max_memory_mb: int | None = None) -> tuple[pd.DataFrame | None, Profile | None]:
    """(reference frame, profile): at most one of them, read within the limits."""
    if reference is not None and profile is not None:
        raise InputError("give a reference table or a profile, not both")
    if profile is not None:
        return None, load_profile(profile)
    if reference is None:
        return None, None
    if reference in _REGISTERED:
        return _REGISTERED[reference], None
    if not Path(reference).exists():
        raise InputError(f"reference {reference}: file not found")
    return read_table(reference, max_rows=max_rows, max_memory_mb=max_memory_mb), None
