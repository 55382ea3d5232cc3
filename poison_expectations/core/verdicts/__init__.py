"""Verdicts with stated error rates (GX-free; numpy and scipy only).

Row p-values (conformal), their combination over signals (Cauchy or
Bonferroni), row flags at a false discovery rate (Benjamini-Hochberg), and a
batch gate (Higher Criticism with an exact Monte Carlo null, plus a
closed-testing lower bound on the contaminated share, exact under the
conformal null). Each module states
what it promises and under which assumptions.
"""

from .bounds import hommel_h, true_discoveries
from .combine import combine_pvalues, poison_score
from .counting import conformal_true_discoveries, grouped_true_discoveries
from .conformal import ClassConditional, class_conditional_pvalues, conformal_pvalues
from .fdr import benjamini_hochberg
from .gate import BatchVerdict, exchangeability_gate
from .higher_criticism import hc_test, higher_criticism, null_distribution

__all__ = [
    "BatchVerdict", "ClassConditional", "benjamini_hochberg", "class_conditional_pvalues", "combine_pvalues",
    "conformal_pvalues", "conformal_true_discoveries", "exchangeability_gate", "grouped_true_discoveries",
    "hc_test", "higher_criticism", "hommel_h", "null_distribution", "poison_score", "true_discoveries",
]
