"""Per-source statistics, ledger reputation and allow/deny lists."""

from __future__ import annotations

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch

ALL = "*"
NEW_SOURCE_POLICIES = ("allow", "cap", "fail")

SOURCES = FamilyParams(
    section="sources",
    signal_name="sources",
    order=900,  # last: aggregates the flags of every other signal of the run
    needs_label=False,
    note="runs only when data.source_column is set",
    switches={
        "enabled": switch(True, "Run the source expectations (only when data.source_column is set)."),
        "record": switch(True, "Record every run's per-source numbers in the ledger.",
                         note="write each run's per-source numbers to the ledger"),
    },
    signal={
        # null (the Python API's default) keeps hand-built GX suites deterministic: GX resolves
        # independent metrics in set order, so "every signal of the run" would vary between processes
        "signals": Param(None, list, "Signals whose flags are aggregated per source; '*' = every signal of the run "
                         "(the runner computes every other family first); null: label consistency when the batch "
                         "has a label, else none.", nullable=True, item_kind=str, config_default=[ALL],
                         note='flags aggregated per source; "*" = every signal of the run'),
        "exclude_signals": Param([], list, "Signals left out of the per-source statistics.", item_kind=str),
        "min_rows": Param(25, int, "Sources with fewer rows in the batch are reported but not judged.", low=1,
                          note="sources with fewer rows are reported, not judged"),
        "alpha": Param(0.01, float, "False discovery rate (Benjamini-Hochberg) of naming a source.", low=0.0,
                       low_open=True, high=0.5, note="Benjamini-Hochberg false discovery rate of naming a source"),
        "min_excess": rate(0.10, "Smallest excess of a source's flagged share over the rest's that can name it "
                                 "(absolute, 0-1).", note="a named source's flagged share exceeds the rest's by >= "
                                                          "10 points (tolerates honest shift)"),
    },
    limits={
        "ledger": Param(".poison/reputation.db", str, "SQLite file path or any SQLAlchemy URL of the reputation "
                        "ledger.", note="SQLite path or any SQLAlchemy URL"),
        "min_reputation": rate(0.8, "Least reputation (1 - upper credible bound of the bad-row rate) of a source "
                                    "with enough history (0-1).", note="1 - 95% upper bound of the bad-row rate; "
                                                                       "fail below (bad rate bound > 20%)"),
        "prior_bad": Param(1.0, float, "Beta prior: pseudo-count of bad rows.", low=1e-6,
                           note="Beta(1, 19) prior: 5% mean bad-row rate, worth 20 rows"),
        "prior_good": Param(19.0, float, "Beta prior: pseudo-count of good rows.", low=1e-6),
        "credible_level": Param(0.95, float, "Level of the upper credible bound.", low=0.5, high=0.9999),
        "min_history_rows": Param(100, int, "Sources with fewer rows in the ledger are new.", low=0,
                                  note="sources with less history are new"),
        "new_source_policy": Param("allow", str, "New sources: allow, cap (share limit) or fail.",
                                   choices=NEW_SOURCE_POLICIES, note="allow | cap | fail"),
        "new_source_max_share": rate(0.05, "cap: the largest share of the batch all new sources together may hold "
                                           "(0-1).", note="cap: new sources together hold at most 5% of the batch"),
        "allowlist": Param([], list, "If not empty, only sources matching these patterns are accepted.",
                           item_kind=str, note="if not empty, only matching sources (shell patterns) are accepted"),
        "denylist": Param([], list, "Sources matching these patterns are rejected.", item_kind=str,
                          note="matching sources are rejected"),
    },
)
