"""Error rates of core/verdicts on simulated data (no signals, no GX).

Scores are drawn directly: reference and clean batch rows from one
distribution (continuous N(0, 1), or Binomial(6, 0.3): 7 values, heavy ties),
contaminated rows shifted up. Measured: the gate's false-alarm rate, the
rate at which the lower bound is positive on clean batches, BH's FDR, and
under 3% contamination the gate's power and the bound's coverage.

    PYTHONPATH=. python3 benchmarks/verdicts_simulation.py [--runs 400]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from poison_expectations.core.verdicts import (  # noqa: E402
    benjamini_hochberg,
    conformal_pvalues,
    exchangeability_gate,
)

SIZES = list(itertools.product((50, 500, 5000), (100, 2000)))


def draw(rng, size, kind):
    return rng.normal(size=size) if kind == "continuous" else rng.binomial(6, 0.3, size=size).astype(float)


def null_rates(kind: str, runs: int, alpha: float) -> list[list]:
    rows = []
    for n_ref, n_batch in SIZES:
        rng = np.random.default_rng([21, n_ref, n_batch, kind == "discrete"])
        hc = gate = bound = bh = 0
        for _ in range(runs):
            p = conformal_pvalues(draw(rng, n_batch, kind), draw(rng, n_ref, kind), seed=rng)
            verdict = exchangeability_gate(p, n_ref=n_ref, alpha=alpha)
            hc += verdict.p_value <= alpha
            gate += verdict.failed
            bound += verdict.lower_bound > 0
            bh += benjamini_hochberg(p, 0.1)[0].any()
        rows.append([kind, n_ref, n_batch, runs, f"{hc / runs:.3f}", f"{gate / runs:.3f}", f"{bound / runs:.3f}",
                     f"{bh / runs:.3f}"])
    return rows


def contaminated(runs: int, alpha: float, shift: float, kind: str = "continuous") -> list[list]:
    rows = []
    for n_ref, n_batch in SIZES:
        rng = np.random.default_rng([22, n_ref, n_batch])
        n_bad = int(round(0.03 * n_batch))
        failed = covered = 0
        bounds, fdp = [], []
        for _ in range(runs):
            s = draw(rng, n_batch, kind)
            s[:n_bad] += shift
            p = conformal_pvalues(s, draw(rng, n_ref, kind), seed=rng)
            verdict = exchangeability_gate(p, n_ref=n_ref, alpha=alpha)
            failed += verdict.failed
            covered += verdict.lower_bound <= n_bad
            bounds.append(verdict.lower_bound)
            flags = benjamini_hochberg(p, 0.1)[0]
            fdp.append(float((flags[n_bad:]).sum() / max(flags.sum(), 1)))
        rows.append([shift, n_ref, n_batch, n_bad, runs, f"{failed / runs:.3f}", f"{covered / runs:.3f}",
                     f"{np.mean(bounds):.1f}", f"{np.mean(fdp):.3f}"])
    return rows


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    null_header = ["scores", "n_ref", "n_batch", "runs", "HC p <= alpha", "gate failed", "bound > 0",
                   "BH flags any (q=0.1)"]
    null = null_rates("continuous", args.runs, args.alpha) + null_rates("discrete", args.runs, args.alpha)
    bad_header = ["shift (sd)", "n_ref", "n_batch", "contaminated", "runs", "gate failed",
                  "bound <= truth", "mean bound", "BH FDP (q=0.1)"]
    bad = contaminated(args.runs // 2, args.alpha, 4.0) + contaminated(args.runs // 2, args.alpha, 2.0)
    text = "\n\n".join([
        f"# core/verdicts on simulated data (alpha = {args.alpha}, 1-minute load {load:.1f} at start)",
        "## Clean batches (nominal: alpha for the first three, 0.1 for BH)", table(null_header, null),
        "## 3% contamination, continuous scores (nominal coverage >= 1 - alpha, FDP <= 0.1)",
        table(bad_header, bad)])
    out = REPO / "benchmarks" / "results" / "verdicts_simulation.md"
    out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
