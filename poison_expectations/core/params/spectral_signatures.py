"""Spectral signatures (Tran et al. 2018): a separated tail along a class's top
singular direction."""

from __future__ import annotations

from dataclasses import replace

from poison_expectations.core.params.base import FamilyParams, Param, rate, switch
from poison_expectations.core.params.common import REPRESENTATION, TEST_ALPHA
from poison_expectations.core.params.shared import signal_shared

SPECTRAL_SIGNATURES = FamilyParams(
    section="spectral_signatures",
    signal_name="spectral",
    order=40,
    note="Tran et al. 2018, per class; docs/backdoor.md",
    shared=signal_shared("random_state"),
    switches={"enabled": switch(True, "Run the spectral-signature expectation.")},
    signal={
        "eps": rate(0.1, "Upper bound of the poisoned share of a class; 1.5 x eps x class rows are flagged in a "
                         "class with a separated tail (Tran et al.).",
                    note="upper bound of the poisoned share of a class; flags 1.5*eps*n_y rows"),
        "min_delta_bic": Param(10.0, float, "Self-check: BIC points a 2-component mixture of the projection must "
                               "gain over one Gaussian (10 = very strong evidence).", low=0.0,
                               note='self-check: 2-component mixture must win by 10 BIC points ("very strong")'),
        "min_separation": Param(2.0, float, "Self-check: Ashman's D between the two components (D > 2: separated).",
                                low=0.0, note="self-check: Ashman's D > 2 between mixture components"),
        "tail_quantile": Param(0.05, float, "With a reference: the tail starts at the reference's (1 - this) "
                               "quantile of the score.", low=1e-4, high=0.5,
                               note="reference: tail starts at the reference's 95th percentile of the score"),
        "alpha": replace(TEST_ALPHA, note="reference: binomial test, Bonferroni over classes"),
        "representation": REPRESENTATION,
        "max_fit_rows": Param(100_000, int, "Rows the mixture is fitted on at most (sampled).", low=100),
    },
    limits={
        "max_classes": Param(0, int, "Limit: classes with a spectral signature allowed.", low=0,
                             note="limit: classes with a separated tail"),
    },
)
