"""Detection and false-alarm rates of the backdoor / clean-label signals.

Runs the four signals with their default parameters (the defaults of
poison_expectations/defaults/training_ingest.yml) on:

- clean data, to measure false alarms: the sklearn datasets breast_cancer,
  wine, digits and iris, and eight synthetic tables (make_tabular with 2-4
  classes, make_classification with two clusters per class, make_moons,
  make_blobs, make_gaussian_quantiles, make_hastie_10_2), each in self-check
  mode and against a reference (a disjoint clean half or sample);
- poisoned data: tabular backdoors (testing.backdoor, 3 trigger features,
  5% of rows), a backdoor in an embedding column (rows of other classes
  shifted by a fixed trigger vector in a 32-d embedding and relabelled),
  clean-label feature collisions (testing.clean_label_collision aimed at a
  confidently classified target) and 5% random label flips.

A signal "fails" a table when its finding count exceeds the default limit
(0). Writes benchmarks/results_backdoor_quality.md.

    python benchmarks/eval_backdoor.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn import datasets  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402

from poison_expectations import testing  # noqa: E402
from poison_expectations.core.analysis import Options, Roles, build_analysis  # noqa: E402
from poison_expectations.core.signals.feature_clustering import FeatureClustering  # noqa: E402
from poison_expectations.core.signals.collision import CleanLabelCollision  # noqa: E402
from poison_expectations.core.signals.spectral import SpectralSignatures  # noqa: E402
from poison_expectations.core.signals.triggers import TriggerPatterns  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results_backdoor_quality.md"
SIGNALS = {"spectral": SpectralSignatures, "feature_clustering": FeatureClustering, "trigger": TriggerPatterns,
           "collision": CleanLabelCollision}


def findings(result) -> int:
    s = result.summary
    if result.signal in ("spectral", "feature_clustering"):
        return len(s["suspicious_classes"])
    if result.signal == "trigger":
        return len(s["patterns"])
    return len(s["groups"])


# -- data ---------------------------------------------------------------------------

def _frame(X, y, prefix="x") -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(X, dtype=float), columns=[f"{prefix}{i}" for i in range(X.shape[1])])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["label"] = np.asarray(y)
    return frame


def clean_tables() -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("breast_cancer", "wine", "digits", "iris"):
        d = getattr(datasets, f"load_{name}")()
        out[name] = _frame(d.data, d.target)
    out["make_tabular_2c"] = testing.make_tabular(3000, n_classes=2, random_state=11)
    out["make_tabular_3c"] = testing.make_tabular(3000, n_classes=3, random_state=12)
    out["make_tabular_4c_4cat"] = testing.make_tabular(3000, n_classes=4, n_categorical=4, random_state=13)
    X, y = datasets.make_classification(3000, 20, n_informative=8, n_clusters_per_class=2, n_classes=3,
                                        random_state=0)
    out["make_classification"] = _frame(X, y)
    X, y = datasets.make_moons(3000, noise=0.3, random_state=0)
    out["make_moons"] = _frame(X, y)
    X, y = datasets.make_blobs(3000, n_features=8, centers=4, cluster_std=2.0, random_state=0)
    out["make_blobs"] = _frame(X, y)
    X, y = datasets.make_gaussian_quantiles(n_samples=3000, n_features=6, n_classes=3, random_state=0)
    out["make_gaussian_quantiles"] = _frame(X, y)
    X, y = datasets.make_hastie_10_2(3000, random_state=0)
    out["make_hastie_10_2"] = _frame(X, y)
    return out


def split_halves(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    half = np.random.default_rng(seed).random(len(frame)) < 0.5
    return frame[half].reset_index(drop=True), frame[~half].reset_index(drop=True)


def embedding_table(**kwargs):
    """3,000 rows, 3 classes, 32-d embeddings, plus a label-informative plain column."""
    return testing.make_embedding_backdoor(**{"n": 3000, "informative_column": True, **kwargs})


def confident_target(frame: pd.DataFrame, seed: int) -> int:
    """A row an out-of-fold model puts in its own class with p > 0.97."""
    X = frame[[c for c in frame.columns if c.startswith("num_")]].to_numpy(dtype=float)
    y = frame["label"].to_numpy()
    proba = cross_val_predict(HistGradientBoostingClassifier(max_iter=50, random_state=0), X, y, cv=3,
                              method="predict_proba")
    own = proba[np.arange(len(y)), y]
    return int(np.random.default_rng(seed).choice(np.flatnonzero(own > 0.97)))


def analysis_of(frame, reference=None, embedding=False):
    roles = Roles(label_column="label", id_column="row_id",
                  source_column="source" if "source" in frame.columns else None,
                  embedding_columns=("emb",) if embedding else ())
    return build_analysis(frame, roles, Options(), reference=reference)


# -- runs ---------------------------------------------------------------------------

def run_all(analysis) -> dict:
    out = {}
    for name, cls in SIGNALS.items():
        t0 = time.perf_counter()
        result = analysis.result(cls())
        out[name] = (result, time.perf_counter() - t0)
    return out


def clean_section(quick: bool) -> tuple[list[str], dict]:
    rows, fails, total = [], {k: 0 for k in SIGNALS}, 0
    tables = clean_tables()
    if quick:
        tables = {k: tables[k] for k in list(tables)[:5]}
    any_fail = 0
    for name, frame in tables.items():
        for mode in ("self", "reference"):
            if mode == "self":
                analysis = analysis_of(frame)
            else:
                batch, ref = split_halves(frame)
                analysis = analysis_of(batch, ref)
            results = run_all(analysis)
            total += 1
            cells, failed = [], False
            for sig, (result, _seconds) in results.items():
                count = findings(result)
                fails[sig] += count > 0
                failed |= count > 0
                cells.append(f"{count} ({result.flagged_count})")
            any_fail += failed
            rows.append(f"| {name} | {mode} | {analysis.batch.n} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    return rows, {"tables": total, "per_signal": fails, "any": any_fail}


def detection_section(quick: bool) -> list[str]:
    rows = []
    seeds = (1, 2) if quick else (1, 2, 3, 4, 5)
    for s in seeds:
        kw = dict(n_classes=2 + (s % 2), distribution_seed=s)
        clean = testing.make_tabular(3000, random_state=s, **kw)
        ref = testing.make_tabular(3000, random_state=s + 100, **kw)
        cases = [
            ("backdoor 5%", testing.backdoor(clean, rate=0.05, random_state=s)),
            ("collision 3%", testing.clean_label_collision(clean, rate=0.03, random_state=s,
                                                           target_index=confident_target(clean, s))),
            ("random flips 5%", testing.random_flips(clean, rate=0.05, random_state=s)),
        ]
        for label, poisoned in cases:
            for mode in ("self", "reference"):
                analysis = analysis_of(poisoned.frame, ref if mode == "reference" else None)
                rows.append(_detection_row(f"{label} (seed {s}, {2 + s % 2} classes)", mode, analysis,
                                           poisoned.is_poison, poisoned.details))
                print(rows[-1], flush=True)
        frame, truth = embedding_table(seed=s)
        ref_frame, _ = embedding_table(seed=s, sample_seed=s + 100, poison=False)
        for mode in ("self", "reference"):
            analysis = analysis_of(frame, ref_frame if mode == "reference" else None, embedding=True)
            rows.append(_detection_row(f"embedding backdoor 5% (seed {s})", mode, analysis, truth, {}))
            print(rows[-1], flush=True)
    return rows


def _detection_row(label, mode, analysis, truth, details) -> str:
    results = run_all(analysis)
    cells = []
    union = np.zeros(len(truth), dtype=bool)
    for result, _seconds in results.values():
        count = findings(result)
        recall = result.flags[truth].mean() if truth.any() else 0.0
        cells.append(f"{count} / {recall:.0%} / {int((result.flags & ~truth).sum())}")
        union |= result.flags
    named = ""
    trigger = details.get("trigger")
    if trigger:
        found = results["trigger"][0].summary["patterns"]
        columns = {item["column"] for p in found for item in p["pattern"]}
        named = "yes" if found and set(trigger) <= columns else "no"
    return (f"| {label} | {mode} | " + " | ".join(cells) +
            f" | {union[truth].mean():.0%} | {int((union & ~truth).sum())} | {named} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tables and seeds")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    t0 = time.perf_counter()
    clean_rows, rates = clean_section(args.quick)
    detect_rows = detection_section(args.quick)
    per = ", ".join(f"{k} {v}/{rates['tables']}" for k, v in rates["per_signal"].items())
    text = "\n".join([
        "# Backdoor / clean-label signals: detection and false alarms",
        "",
        f"Generated by `python benchmarks/eval_backdoor.py` in {time.perf_counter() - t0:.0f} s; default "
        "parameters; every table 3000 rows unless the dataset is smaller (reference mode: a disjoint half).",
        "",
        "## Clean data (false alarms)",
        "",
        "Cells: findings (flagged rows). A finding fails the expectation (limit 0).",
        "",
        "| dataset | mode | rows | spectral | clustering | trigger | collision |",
        "|---|---|---|---|---|---|---|",
        *clean_rows,
        "",
        f"False alarms: {rates['any']} of {rates['tables']} clean tables fail any of the four expectations; "
        f"per signal: {per}.",
        "",
        "## Poisoned data (detection)",
        "",
        "Cells per signal: findings / share of poisoned rows flagged / clean rows flagged. `union`: poisoned "
        "rows flagged by any of the four; `named`: the trigger report names every trigger column.",
        "",
        "| attack | mode | spectral | clustering | trigger | collision | union recall | union false | named |",
        "|---|---|---|---|---|---|---|---|---|",
        *detect_rows,
        "",
    ])
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
