"""Seeded poisoned-data generators for tests, benchmarks and sample data
(never imported at run time; the runtime package must not import this).

Pure numpy / pandas / scikit-learn: nothing here imports Great Expectations.
One module per attack family; every public name is re-exported here, so
callers write ``from poison_expectations import testing`` and
``testing.make_tabular(...)``, ``testing.ATTACKS["backdoor"](...)``:

* :mod:`.tables`: :func:`make_tabular`, the realistic clean table.
* :mod:`.embeddings`: :func:`make_embedding_backdoor`, an embedding column
  with a planted backdoor.
* Attacks take a clean frame and return a :class:`Poisoned` bundle (the
  poisoned frame, a boolean ground-truth mask ``is_poison`` aligned with its
  rows, a one-line description, a ``details`` dict); their shared
  conventions are in :mod:`.base`.  In place: :mod:`.label_flips`
  (random, margin), :mod:`.sources` (bad source), :mod:`.backdoor`.  Adding
  rows: :mod:`.boundary` (boundary points), :mod:`.floods` (near-duplicate
  flood, conflicting copies), :mod:`.collisions` (clean-label collision).
"""

from __future__ import annotations

from typing import Callable

from poison_expectations.testing.backdoor import backdoor
from poison_expectations.testing.base import Poisoned
from poison_expectations.testing.boundary import boundary_points
from poison_expectations.testing.collisions import clean_label_collision
from poison_expectations.testing.embeddings import make_embedding_backdoor
from poison_expectations.testing.floods import conflicting_copies, near_duplicate_flood
from poison_expectations.testing.label_flips import margin_flips, random_flips
from poison_expectations.testing.sources import bad_source
from poison_expectations.testing.tables import make_tabular

ATTACKS: dict[str, Callable[..., Poisoned]] = {
    "random_flips": random_flips,
    "margin_flips": margin_flips,
    "boundary_points": boundary_points,
    "backdoor": backdoor,
    "near_duplicate_flood": near_duplicate_flood,
    "conflicting_copies": conflicting_copies,
    "bad_source": bad_source,
    "clean_label_collision": clean_label_collision,
}

__all__ = [
    "Poisoned",
    "make_tabular",
    "make_embedding_backdoor",
    "random_flips",
    "margin_flips",
    "boundary_points",
    "backdoor",
    "near_duplicate_flood",
    "conflicting_copies",
    "bad_source",
    "clean_label_collision",
    "ATTACKS",
]
