"""Expectation families: how a config section becomes GX expectations.

Each family (label consistency, near duplicates, ...) registers its config
section spec and a builder when its module is imported. Config validation,
the runner and `calibrate` walk this registry, so adding a signal never
edits them. No GX import here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from poison_expectations.core.config import Param


@dataclass(frozen=True)
class ExpectationFamily:
    section: str  # key under `expectations:` in the config
    params: dict[str, Param]
    # (section config, shared kwargs) -> list of GX expectation instances
    build: Callable[[dict[str, Any], dict[str, Any]], list]
    needs_label: bool = True
    order: int = 100  # build/run order; families that aggregate others run last
    # `poison-check calibrate`: (section config, the signal results of a run on
    # trusted data, by signal name) -> section keys to overwrite with limits
    # derived from the trusted baseline (with a documented statistical margin)
    calibrate: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    # called after every validation run, e.g. to record a reputation ledger:
    # (section config, RunOutcome) -> None
    after_run: Callable[[dict[str, Any], Any], None] | None = None


_FAMILIES: dict[str, ExpectationFamily] = {}


def register_family(family: ExpectationFamily) -> ExpectationFamily:
    _FAMILIES[family.section] = family
    return family


def families() -> list[ExpectationFamily]:
    from poison_expectations.gx import expectations  # noqa: F401  (importing registers every family)

    return sorted(_FAMILIES.values(), key=lambda f: (f.order, f.section))
