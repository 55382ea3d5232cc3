"""Expectation families: how a config section becomes GX expectations.

A family's parameters are declared in the core (`core/params`: every key's
default, type, bounds and meaning; config validation reads only that). The
GX layer adds the rest when its modules are imported: a builder of
expectation instances and optional `calibrate` and `after_run` hooks
(`gx/expectations/*.py` call `register_family`). The runner and
`calibrate` walk `families()`, so adding a signal never edits them. No GX
import here: the caller imports `poison_expectations.gx.expectations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from poison_expectations.core.params import FAMILIES, FamilyParams, Param


@dataclass(frozen=True)
class ExpectationFamily:
    declaration: FamilyParams
    # (section config, shared kwargs) -> list of GX expectation instances
    build: Callable[[dict[str, Any], dict[str, Any]], list]
    # `poison-check calibrate`: (section config, the signal results of a run on
    # trusted data, by signal name) -> section keys to overwrite with limits
    # derived from the trusted baseline (with a documented statistical margin)
    calibrate: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    # called after every validation run, e.g. to record a reputation ledger:
    # (section config, RunOutcome) -> None
    after_run: Callable[[dict[str, Any], Any], None] | None = None

    @property
    def section(self) -> str:  # key under `expectations:` in the config
        return self.declaration.section

    @property
    def params(self) -> Mapping[str, Param]:
        return self.declaration.params

    @property
    def needs_label(self) -> bool:
        return self.declaration.needs_label

    @property
    def order(self) -> int:  # build/run order; families that aggregate others run last
        return self.declaration.order


_FAMILIES: dict[str, ExpectationFamily] = {}


def register_family(family: ExpectationFamily) -> ExpectationFamily:
    if family.declaration not in FAMILIES:
        raise ValueError(f"family '{family.section}' is not declared in core/params")
    _FAMILIES[family.section] = family
    return family


def families() -> list[ExpectationFamily]:
    """Every declared family's GX binding, in run order."""
    missing = [declared.section for declared in FAMILIES if declared.section not in _FAMILIES]
    if missing:
        raise RuntimeError(f"no GX binding registered for {missing}: import poison_expectations.gx.expectations "
                           "before building or calibrating expectations")
    return [_FAMILIES[declared.section] for declared in FAMILIES]
