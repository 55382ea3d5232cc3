"""Register every poison expectation, metric and the `poison_quarantine`
checkpoint action with Great Expectations.

    import poison_expectations.gx.register  # noqa: F401

Import it in every process that loads a stored suite or checkpoint: GX
silently drops expectation types it does not know. `import
poison_expectations` alone registers nothing until an expectation class is
first used (so the CLI starts without GX), unless GX was imported before it.
"""

from __future__ import annotations

from poison_expectations.stores.references import register_reference
from poison_expectations.gx import expectations as _expectations
from poison_expectations.gx.actions import PoisonQuarantineAction
from poison_expectations.gx.expectations import *  # noqa: F401,F403  (registers with GX)
from poison_expectations.gx.metrics import spark as _spark_metrics  # noqa: F401,E402  (Spark implementations)

__all__ = ["register_reference", "PoisonQuarantineAction", *_expectations.__all__]
