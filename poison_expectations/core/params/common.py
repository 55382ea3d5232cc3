"""Declarations several families share (each family lists them as its own
keys; a change here changes all of them, on purpose: same rule, same meaning)."""

from __future__ import annotations

from poison_expectations.core.params.base import Param, rate

REPRESENTATIONS = ("auto", "features", "embedding")

TEST_ALPHA = rate(0.001, "Significance level of the signal's test (after its multiple-testing correction).")
REPRESENTATION = Param("auto", str, "auto: the embedding columns when data.embedding_columns names some, else "
                                    "every encoded feature; features; embedding.", choices=REPRESENTATIONS,
                       note="auto | features | embedding")
MAX_TRAIN_ROWS = Param(50_000, int, "Rows the reclassification model trains on at most.", low=100)

# the rate gate of the influence and outlier expectations (gx/expectations/rate_gate.py)
Z_LIMIT = Param(3.5, float, "Self-check cut: robust z (Iglewicz-Hoaglin modified z) within the class.", low=0.5,
                high=100.0, note="self-check cut: Iglewicz-Hoaglin modified z above the row's class")
REFERENCE_QUANTILE = Param(0.999, float, "With a reference: cut at this per-class quantile of the reference's own "
                           "values.", low=0.5, high=1.0, high_open=True,
                           note="with a reference: cut at the reference's per-class 99.9th percentile")
EXCESS = rate(0.002, "With a reference: the largest tolerated excess of the batch's share over the reference's "
                     "(absolute, 0-1); default twice the nominal tail share 1 - 0.999.",
              note="with a reference: at most 0.2 points above the reference's share (2 x (1 - 0.999))")
BINOMIAL_ALPHA = rate(0.001, "With a reference: significance level of the one-sided binomial test.",
                      note="with a reference: one-sided binomial test level")
