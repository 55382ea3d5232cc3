"""A source's reputation from its ledger totals.

The prior on a source's bad-row rate is Beta(a, b) (default Beta(1, 19):
prior mean 5%, worth 20 rows). After d bad rows of n the posterior is
Beta(a + d, b + n - d); the reputation is 1 minus its upper credible bound at
`level` (default 95%), i.e. a lower credible bound of the source's good-row
rate. A "bad row" is a row flagged by any poisoning signal (the union), as
recorded by each run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poison_expectations.core.params import SOURCES

# declared once, in core/params/sources.py
PRIOR_BAD, PRIOR_GOOD, CREDIBLE_LEVEL = (SOURCES[key].default for key in ("prior_bad", "prior_good", "credible_level"))


@dataclass(frozen=True)
class Reputation:
    """Beta posterior of a source's bad-row rate."""

    rows: int
    bad_rows: int
    prior_bad: float
    prior_good: float
    level: float
    mean: float  # posterior mean bad-row rate
    upper: float  # upper credible bound of the bad-row rate
    reputation: float  # 1 - upper: lower credible bound of the good-row rate

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reputation(rows: int, bad_rows: int, prior_bad: float = PRIOR_BAD, prior_good: float = PRIOR_GOOD,
               level: float = CREDIBLE_LEVEL) -> Reputation:
    """Posterior Beta(a + d, b + n - d) of the bad-row rate and its upper bound at `level`."""
    from scipy import stats  # late: writers (8 at once) need not pay for importing scipy

    good = max(rows - bad_rows, 0)
    a, b = prior_bad + bad_rows, prior_good + good
    upper = float(stats.beta.ppf(level, a, b))
    return Reputation(int(rows), int(bad_rows), prior_bad, prior_good, level, a / (a + b), upper, 1.0 - upper)
