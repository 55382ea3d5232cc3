"""Detection and false alarms of the influence and outlier signals with the
default config. Writes benchmarks/results_influence_outliers_quality.md.

    python benchmarks/eval_influence_outliers.py [--seeds 5]

1. Biggio-style boundary poisoning (testing.boundary_points, 3% of rows
   moved 60-90% of the way to a logistic boundary, labels flipped), in a
   self-check and against a clean reference from the same distribution:
   row-level AUROC of influence_score, outlier_score and their maximum
   (the runner's poison_score over these two), and the verdicts.
2. Clean data: the four sklearn toy datasets and clean synthetic tables,
   self-check (and against a reference for the synthetic ones): flagged
   share and verdict.
3. Injected feature outliers (2% of rows pushed 8 standard deviations out
   on 3 features): recall, false flags and verdicts of the outlier signal.
Verdicts apply the expectations' rule (rate_gate) with the default limits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn import datasets  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from benchmarks.harness import markdown_table  # noqa: E402
from poison_expectations import testing  # noqa: E402
from poison_expectations.core.analysis import Options, Roles, build_analysis  # noqa: E402
from poison_expectations.core.config import load_config  # noqa: E402
from poison_expectations.core.gates import reference_gate  # noqa: E402
from poison_expectations.core.signals.influence import Influence  # noqa: E402
from poison_expectations.core.signals.outliers import Outliers  # noqa: E402

CONFIG = load_config()["expectations"]


def verdict(result, section: str) -> str:
    limits = CONFIG[section]
    reference = result.summary.get("reference")
    if reference:
        gate = reference_gate(result.flagged_count, result.n_rows, reference["flagged"], reference["rows"],
                              alpha=limits["alpha"], min_excess=limits["max_excess_over_reference"])
        return "pass" if gate.passed else "FAIL"
    return "pass" if result.flagged_rate <= limits["max_rate"] else "FAIL"


def signals(frame, roles, reference=None):
    analysis = build_analysis(frame, roles, Options(), reference=reference)
    return Influence().run(analysis), Outliers().run(analysis)


def separable(n, seed, n_classes=2):
    X, y = make_classification(n_samples=n, n_features=10, n_informative=6, n_redundant=0, n_classes=n_classes,
                               class_sep=2.0, flip_y=0, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
    frame.insert(0, "row_id", np.arange(n))
    frame["label"] = y
    return frame


def generators():
    """name -> (clean table of n rows for seed, roles)."""
    tab_roles = Roles(label_column="label", id_column="row_id", source_column="source")
    sep_roles = Roles(label_column="label", id_column="row_id")
    return {
        "separable (make_classification, class_sep 2)": (lambda n, s: separable(n, s), sep_roles),
        "make_tabular (class_sep 1.5, 8 numeric + 2 categorical)": (
            lambda n, s: testing.make_tabular(n, random_state=s), tab_roles),
        "make_tabular, 3 classes": (lambda n, s: testing.make_tabular(n, n_classes=3, random_state=s), tab_roles),
    }


def boundary(seeds: int, n: int = 3000) -> list[dict]:
    rows = []
    for name, (make, roles) in generators().items():
        for mode in ("self", "reference"):
            auc_i, auc_o, auc_max, flagged_p, flagged_c, fails = [], [], [], [], [], 0
            for seed in range(seeds):
                both = make(2 * n, seed)
                reference = both.iloc[:n].reset_index(drop=True) if mode == "reference" else None
                clean = both.iloc[n:].reset_index(drop=True)
                poisoned = testing.boundary_points(clean, rate=0.03, random_state=seed)
                influence, outlier = signals(poisoned.frame, roles, reference)
                truth = poisoned.is_poison
                auc_i.append(roc_auc_score(truth, influence.scores))
                auc_o.append(roc_auc_score(truth, outlier.scores))
                auc_max.append(roc_auc_score(truth, np.maximum(influence.scores, outlier.scores)))
                flagged_p.append(influence.flags[truth].mean())
                flagged_c.append(influence.flags[~truth].mean())
                fails += verdict(influence, "influence") == "FAIL"
            rows.append({"data": name, "mode": mode,
                         "influence AUROC (min-mean)": f"{min(auc_i):.3f}-{np.mean(auc_i):.3f}",
                         "outlier AUROC": f"{np.mean(auc_o):.3f}", "max AUROC": f"{np.mean(auc_max):.3f}",
                         "poison flagged": f"{np.mean(flagged_p):.2f}", "clean flagged": f"{np.mean(flagged_c):.4f}",
                         "influence expectation failed": f"{fails}/{seeds}"})
            print(rows[-1], flush=True)
    return rows


def clean(seeds: int, n: int = 3000) -> list[dict]:
    rows = []
    for name in ("breast_cancer", "wine", "iris", "digits"):
        data = getattr(datasets, f"load_{name}")()
        frame = pd.DataFrame(data.data, columns=[f"x{i}" for i in range(data.data.shape[1])])
        frame["label"] = data.target
        influence, outlier = signals(frame, Roles(label_column="label"))
        rows.append({"data": f"sklearn {name} ({len(frame)} rows)", "mode": "self",
                     "influence flagged": f"{influence.flagged_rate:.4f}", "influence": verdict(influence, "influence"),
                     "outlier flagged": f"{outlier.flagged_rate:.4f}", "outlier": verdict(outlier, "outliers")})
        print(rows[-1], flush=True)
    for name, (make, roles) in generators().items():
        for mode in ("self", "reference"):
            rates_i, rates_o, fails_i, fails_o = [], [], 0, 0
            for seed in range(seeds):
                both = make(2 * n, seed)
                reference = both.iloc[:n].reset_index(drop=True) if mode == "reference" else None
                influence, outlier = signals(both.iloc[n:].reset_index(drop=True), roles, reference)
                rates_i.append(influence.flagged_rate)
                rates_o.append(outlier.flagged_rate)
                fails_i += verdict(influence, "influence") == "FAIL"
                fails_o += verdict(outlier, "outliers") == "FAIL"
            rows.append({"data": f"{name}, {seeds} seeds", "mode": mode,
                         "influence flagged": f"{np.mean(rates_i):.4f} (max {max(rates_i):.4f})",
                         "influence": f"{fails_i}/{seeds} fail",
                         "outlier flagged": f"{np.mean(rates_o):.4f} (max {max(rates_o):.4f})",
                         "outlier": f"{fails_o}/{seeds} fail"})
            print(rows[-1], flush=True)
    return rows


def feature_outliers(seeds: int, n: int = 3000) -> list[dict]:
    rows = []
    for name, (make, roles) in list(generators().items())[:2]:
        for mode in ("self", "reference"):
            recall, false, fails = [], [], 0
            for seed in range(seeds):
                both = make(2 * n, seed)
                reference = both.iloc[:n].reset_index(drop=True) if mode == "reference" else None
                frame = both.iloc[n:].reset_index(drop=True).copy()
                numeric = [c for c in frame.columns if c.startswith(("f", "num_"))][:3]
                hit = np.random.default_rng(seed).choice(n, size=int(0.02 * n), replace=False)
                frame[numeric] = frame[numeric].astype(float)
                frame.loc[hit, numeric] += 8.0 * frame[numeric].std().to_numpy()
                truth = np.zeros(n, dtype=bool)
                truth[hit] = True
                _, outlier = signals(frame, roles, reference)
                recall.append(outlier.flags[truth].mean())
                false.append(outlier.flags[~truth].mean())
                fails += verdict(outlier, "outliers") == "FAIL"
            rows.append({"data": name, "mode": mode, "outlier recall": f"{np.mean(recall):.3f}",
                         "false flags": f"{np.mean(false):.4f}", "outlier expectation failed": f"{fails}/{seeds}"})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results_influence_outliers_quality.md"))
    args = parser.parse_args()
    parts = [
        "# Influence and outliers: detection and false alarms (default config)\n",
        f"3,000-row batches, {args.seeds} seeds; reference mode: a clean 3,000-row reference from the same "
        "distribution. Verdicts use the expectations' rule with the default limits.\n",
        "## 3% boundary poisoning (testing.boundary_points)\n", markdown_table(boundary(args.seeds)),
        "\n## Clean data\n", markdown_table(clean(args.seeds)),
        "\n## 2% injected feature outliers (8 sd on 3 features)\n", markdown_table(feature_outliers(args.seeds)), "",
    ]
    Path(args.out).write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
