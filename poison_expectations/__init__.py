"""poison_expectations: Great Expectations checks that stop poisoned training data.

`import poison_expectations as pe` registers every expectation, metric and
checkpoint action with GX; then `suite.add_expectation(pe.Expect...(...))`.
"""

import os

# GNU OpenMP (used by scikit-learn and faiss) spin-waits 300,000 rounds at every
# barrier by default: on a busy 2-core worker that turned a 2 s model fit into
# 140 s. Never spinning (OMP_WAIT_POLICY=PASSIVE) doubled the 100k-row check on
# an idle machine (22 s vs 11 s); a short spin is best in both (100k rows: 11 s
# idle; 51 s under 4 competing processes, where the default took 89 s and
# PASSIVE 57 s). Must be set before the OpenMP runtime loads; a value the user
# set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from poison_expectations.gx import expectations as _expectations  # noqa: E402
from poison_expectations.gx.actions import PoisonQuarantineAction  # noqa: E402  (registers the checkpoint action type)
from poison_expectations.stores.references import register_reference  # noqa: E402
from poison_expectations.gx.expectations import *  # noqa: F401,F403,E402  (registers with GX)

from poison_expectations.core.version import VERSION as __version__  # noqa: E402
__all__ = ["register_reference", "PoisonQuarantineAction", "__version__", *_expectations.__all__]
