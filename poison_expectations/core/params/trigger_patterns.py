"""Trigger patterns: rare feature values that predict one label (a tabular
Neural Cleanse)."""

from __future__ import annotations

from dataclasses import replace

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.common import MAX_TRAIN_ROWS, TEST_ALPHA
from poison_expectations.core.params.shared import signal_shared

TRIGGER_PATTERNS = FamilyParams(
    section="trigger_patterns",
    signal_name="trigger",
    order=42,
    note="tabular Neural Cleanse analogue",
    shared=signal_shared("random_state"),
    switches={"enabled": switch(True, "Run the trigger-pattern expectation.")},
    signal={
        "n_bins": Param(20, int, "Quantile bins per numeric column (exact repeated values are items too).", low=2,
                        high=1000, note="quantile bins per numeric column"),
        "min_support": Param(20, int, "Rows a pattern must hold at least.", low=2, note="rows a pattern needs"),
        "max_support_share": rate(0.2, "Rarity: largest share of rows a trigger may hold.",
                                  note="rare: at most 20% of rows (a 10% poison rate plus the rows that carry the "
                                       "pattern naturally)"),
        "min_confidence": rate(0.95, "Smallest P(label | pattern) of a trigger.", note="P(label | pattern) near 1"),
        "min_lift": Param(1.25, float, "Smallest confidence / P(label) of a trigger.", low=1.0,
                          note="confidence / class share"),
        "alpha": replace(TEST_ALPHA, note="Benjamini-Hochberg over every (pattern, label) tested"),
        "max_pair_items": Param(40, int, "Enriched single items that seed pairs (bounds the pair search).", low=0,
                                high=500, note="enriched single items that seed pairs (bounds the search)"),
        "max_triggers": Param(5, int, "Distinct candidate triggers checked by reclassification.", low=1, high=100,
                              note="candidate triggers checked by reclassification"),
        "min_unlike_share": rate(0.5, "Share of a trigger's rows that must look like another class without the "
                                      "pattern's columns.",
                                 note="rows must mostly look like another class without the pattern's columns"),
        "max_train_rows": MAX_TRAIN_ROWS,
    },
    limits={
        "max_patterns": Param(0, int, "Limit: trigger patterns allowed.", low=0, note="limit: trigger patterns"),
    },
)
