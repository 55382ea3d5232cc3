"""Clean-label collision: tight groups of one label that look like another class."""

from __future__ import annotations

from dataclasses import replace

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.common import TEST_ALPHA
from poison_expectations.core.params.shared import signal_shared

CLEAN_LABEL_COLLISION = FamilyParams(
    section="clean_label_collision",
    signal_name="collision",
    order=43,
    note="Shafahi-style feature collision",
    shared=signal_shared("k", "random_state"),
    switches={"enabled": switch(True, "Run the clean-label collision expectation.")},
    signal={
        "radius_factor": Param(0.5, float, "Tight-group radius, in multiples of the median 1st-neighbour distance.",
                               low=0.0, high=10.0,
                               note="tight group: edges within 0.5 x median 1st-neighbour distance"),
        "min_group_size": Param(5, int, "Rows a tight group needs to be tested.", low=2,
                                note="rows a group needs to be tested"),
        "min_other_share": rate(0.5, "Share of a group that must look like another class.",
                                note="majority of the group must look like another class"),
        "alpha": replace(TEST_ALPHA, note="local excess test of the group's label, Bonferroni over groups"),
        "max_train_rows": Param(50_000, int, "Rows the self-check model trains on at most.", low=100),
    },
    limits={
        "max_groups": Param(0, int, "Limit: collision groups allowed.", low=0, note="limit: collision groups"),
    },
)
