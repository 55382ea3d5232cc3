"""False alarms and detection of the default label-consistency check.

For each clean dataset: the self-check verdict and flagged share; with 3%
and 10% random flips: recall of flipped rows, false-flag share of clean
rows, and the verdict in self-check mode and against a trusted reference
(a disjoint half of the same dataset). Writes benchmarks/results_label_defaults.md.

    python benchmarks/label_defaults.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poison_expectations.testing import make_tabular, random_flips  # noqa: E402
from poison_expectations.core.config import load_config  # noqa: E402
from poison_expectations.gx.runner import run_validation  # noqa: E402


def sklearn_frame(loader) -> pd.DataFrame:
    bunch = loader()
    frame = pd.DataFrame(bunch.data, columns=[f"x{i}" for i in range(bunch.data.shape[1])])
    frame["label"] = bunch.target
    return frame


def synthetic_hard(n=4000, seed=3) -> pd.DataFrame:
    X, y = datasets.make_classification(n, 12, n_informative=6, n_classes=3, class_sep=1.0, flip_y=0.01,
                                        random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    frame["label"] = y
    return frame


DATASETS = {
    "breast_cancer": lambda: sklearn_frame(datasets.load_breast_cancer),
    "wine": lambda: sklearn_frame(datasets.load_wine),
    "iris": lambda: sklearn_frame(datasets.load_iris),
    "digits": lambda: sklearn_frame(datasets.load_digits),
    "tabular_mixed_5k": lambda: make_tabular(5000, n_classes=2, random_state=11).drop(columns=["row_id", "source"]),
    "synthetic_3class_overlap": synthetic_hard,
}


def verdict(frame, reference=None):
    config = load_config(None, {"data.label_column": "label"})
    outcome = run_validation(frame, config, reference=reference)
    result = outcome.results["label_consistency"]
    return outcome.success, result


def main() -> None:
    rows = []
    for name, make in DATASETS.items():
        frame = make().reset_index(drop=True)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(frame))
        half = len(frame) // 2
        reference = frame.iloc[order[:half]].reset_index(drop=True)
        batch = frame.iloc[order[half:]].reset_index(drop=True)
        passed, result = verdict(frame)
        ref_passed, _ = verdict(batch, reference)
        row = {"dataset": name, "rows": len(frame), "clean: self-check": "pass" if passed else "FAIL",
               "clean flagged": f"{result.flagged_rate:.3f}", "clean vs ref": "pass" if ref_passed else "FAIL"}
        for rate in (0.03, 0.10):
            poisoned = random_flips(batch, label_column="label", rate=rate, random_state=1)
            ok_self, res = verdict(poisoned.frame)
            ok_ref, res_ref = verdict(poisoned.frame, reference)
            truth = poisoned.is_poison
            row[f"{rate:.0%} recall"] = f"{res_ref.flags[truth].mean():.2f}"
            row[f"{rate:.0%} false flags"] = f"{res_ref.flags[~truth].mean():.3f}"
            row[f"{rate:.0%} AUROC"] = f"{roc_auc_score(truth, res_ref.scores):.3f}"
            row[f"{rate:.0%} self"] = "FAIL" if not ok_self else "pass"
            row[f"{rate:.0%} vs ref"] = "FAIL" if not ok_ref else "pass"
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    out = Path(__file__).with_name("results_label_defaults.md")
    header = ("# Default label-consistency check: false alarms and detection\n\n"
              "Flips are random (`testing.random_flips`) on the batch half; the reference is the other, clean "
              "half. Recall, false flags and AUROC are measured in reference mode. A FAIL on a poisoned batch is "
              "a detection; a FAIL on a clean one is a false alarm.\n\n")
    out.write_text(header + table.to_markdown(index=False) + "\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
