"""poison_expectations: Great Expectations checks that stop poisoned training data.

`import poison_expectations as pe` registers every expectation, metric and
checkpoint action with GX; then `suite.add_expectation(pe.Expect...(...))`.
"""

from . import expectations as _expectations
from .analysis import register_reference
from .expectations import *  # noqa: F401,F403  (registers with GX)

__version__ = "0.1.0"
__all__ = ["register_reference", "__version__", *_expectations.__all__]
