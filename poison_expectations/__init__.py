"""poison_expectations: Great Expectations checks that stop poisoned training data.

`pe.Expect...` (any expectation class, `PoisonQuarantineAction`,
`register_reference`) imports and registers everything with GX on first use:
`suite.add_expectation(pe.Expect...(...))` just works. Importing the package
does not import GX by itself (the CLI must start, and answer input errors,
in well under a second), except when GX is already imported: then our types
are registered at once, as a GX user expects. A process that loads a stored
suite without touching `pe.` first imports `poison_expectations.gx.register`.
"""

import os
import sys

# GNU OpenMP (used by scikit-learn and faiss) spin-waits 300,000 rounds at every
# barrier by default: on a busy 2-core worker that turned a 2 s model fit into
# 140 s. Never spinning (OMP_WAIT_POLICY=PASSIVE) doubled the 100k-row check on
# an idle machine (22 s vs 11 s); a short spin is best in both (100k rows: 11 s
# idle; 51 s under 4 competing processes, where the default took 89 s and
# PASSIVE 57 s). Must be set before the OpenMP runtime loads; a value the user
# set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import logging  # noqa: E402

# Import-time INFO chatter, two thirds of an Airflow task log: GX's public-API
# registry ("Skipping registering function ...") and faiss probing CPU builds
# ("Could not load library with AVX512 support due to: ModuleNotFoundError").
# Only these two loggers are lowered, and only below WARNING.
for _noisy in ("great_expectations._docs_decorators", "faiss.loader"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

from poison_expectations.core.version import VERSION as __version__  # noqa: E402,F401


def _registered():
    """The registration module (importing it imports GX and registers our types)."""
    import importlib

    return importlib.import_module("poison_expectations.gx.register")


def __getattr__(name: str):
    """PEP 562: expectation classes, the action and `__all__` on first use."""
    if name == "__all__":
        return ["__version__", *_registered().__all__]
    if name.startswith("Expect") or name in ("PoisonQuarantineAction", "register_reference"):
        value = getattr(_registered(), name, None)
        if value is not None:
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))


if "great_expectations" in sys.modules:  # a GX user who imported GX first: register as before
    _registered()
