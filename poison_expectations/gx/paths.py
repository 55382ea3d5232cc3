"""Paths stored in a GX project resolve against the project's folder.

A stored suite's `reference=` and `ledger=`, and a stored quarantine action's
paths, are written once and run from anywhere (a shell, a scheduler's
temporary folder). `poison-check run-checkpoint` sets the project root for
the run (`project_root`); relative paths then mean "inside the project", not
"inside whatever folder the process started in". Outside such a run (plain
GX in your own process) relative paths are relative to the working folder.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

PROJECT_LEDGER = Path("gx") / "uncommitted" / "poison_reputation.db"
_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("poison_check_project_root", default=None)


@contextlib.contextmanager
def project_root(folder: str | Path) -> Iterator[Path]:
    """Within this block, relative stored paths resolve against `folder`."""
    root = Path(folder).resolve()
    token = _ROOT.set(root)
    try:
        yield root
    finally:
        _ROOT.reset(token)


def project_path(value: str | None) -> str | None:
    """`value` against the current project's folder when it is a relative file path."""
    root = _ROOT.get()
    if value is None or root is None or "://" in str(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else root / path)


def project_ledger(value: str | None) -> str | None:
    """The ledger of a stored suite: its own value (relative to the project);
    when it names none, $POISON_EXPECTATIONS_LEDGER, else the project's
    gx/uncommitted/poison_reputation.db; outside a project run, None (the
    per-user default)."""
    from poison_expectations.stores.ledger import LEDGER_ENV

    root = _ROOT.get()
    if value is not None or root is None:
        return project_path(value)
    if os.environ.get(LEDGER_ENV, "").strip():
        return None
    return str(root / PROJECT_LEDGER)
