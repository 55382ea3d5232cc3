"""Messages about columns a table does not have."""

from __future__ import annotations

import difflib
from dataclasses import replace

from poison_expectations.core.errors import InputError

SHOWN = 12


def column_not_found(what: str, role: str, column: str, names: list[str]) -> InputError:
    """`label column 'lable' not found; did you mean 'label'? (13 columns: ...)`: the
    closest names first (a typo is the usual cause), then how many columns
    there are, so a cut list never hides the column the user meant."""
    close = difflib.get_close_matches(column, names, n=3, cutoff=0.6)
    if not close:  # case or spacing only: 'Label', ' label'
        close = [n for n in names if n.strip().casefold() == column.strip().casefold()][:3]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(names[:SHOWN]) + (f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")
    return InputError(f"{what}: {role} column '{column}' not found{hint} ({len(names)} columns: {listed})")


def reference_roles(names: list[str], roles):
    """(roles for the reference, roles it lacks). A trusted table (a curated
    set, a past release) often has no provenance or id column. Signals need
    only its features and label (per-source tests compare the batch's sources
    with each other and with the ledger), so those two roles are dropped for
    the reference when it lacks them; the run reports which."""
    present = set(names)
    lacks = tuple(role for role, column in (("id", roles.id_column), ("source", roles.source_column))
                  if column is not None and column not in present)
    return replace(roles, id_column=None if "id" in lacks else roles.id_column,
                   source_column=None if "source" in lacks else roles.source_column), lacks
