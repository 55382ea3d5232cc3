"""The active run context: the `Analysis` the runner prepared for the batch
it is validating. GX calls our metrics itself, so they cannot be handed the
run's context as an argument; the runner makes it active for the duration
of the checkpoint run (a context variable: per thread and per task, never
process-wide), and the shared analysis metric picks it up when it is the
batch GX hands over. Outside a runner (a user's own GX checkpoint) there is
no active context and the metric builds one analysis per validation run.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Iterator

import pandas as pd

if TYPE_CHECKING:
    from poison_expectations.core.analysis import Analysis, Options, Roles

_ACTIVE: ContextVar["tuple[Analysis, str | None] | None"] = ContextVar("poison_active_analysis", default=None)
# the analysis the shared GX metric built last in this context, when no runner made one active: a
# checkpoint action that runs after the validation (quarantine output) finds its batch there
_LATEST: ContextVar["tuple[Analysis, str | None] | None"] = ContextVar("poison_latest_analysis", default=None)


@contextmanager
def active(analysis: "Analysis", trusted: str | None) -> Iterator["Analysis"]:
    """Make `analysis` (prepared against the reference or profile named
    `trusted`) the run context inside the block."""
    token = _ACTIVE.set((analysis, trusted))
    try:
        yield analysis
    finally:
        _ACTIVE.reset(token)


def current() -> "Analysis | None":
    entry = _ACTIVE.get()
    return entry[0] if entry else None


def remember(analysis: "Analysis", trusted: str | None) -> None:
    """Keep the analysis a GX metric built (outside a runner) for this context's actions."""
    _LATEST.set((analysis, trusted))


def latest() -> "Analysis | None":
    """The active analysis, else the one built last in this context."""
    entry = _ACTIVE.get() or _LATEST.get()
    return entry[0] if entry else None


def matching(frame: pd.DataFrame, roles: "Roles", options: "Options", trusted: str | None) -> "Analysis | None":
    """The active analysis (else the one built last in this context) if it was
    prepared for this batch, roles, options and trusted table; else None. GX
    may hand the metric a copy of the frame the runner passed in, so the
    check is on content, not identity."""
    entry = _ACTIVE.get() or _LATEST.get()
    if entry is None:
        return None
    analysis, active_trusted = entry
    if (analysis.roles, analysis.options, active_trusted) != (roles, options, trusted):
        return None
    batch = analysis.batch.frame
    if batch is frame:
        return analysis
    if batch is None or batch.shape != frame.shape or list(batch.columns) != list(frame.columns):
        return None
    return analysis if batch.equals(frame) else None
