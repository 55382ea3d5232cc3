"""Speed and peak memory: the full default checkpoint (self-check) and
cleanlab Datalab, one child process per measurement (benchmarks/harness.py),
so each peak RSS belongs to that measurement alone.

Data: ``make_tabular(n, n_numeric=20, n_categorical=0)`` (20 numeric feature
columns, plus row_id, source and label), or 128-d embeddings (one column of
vectors, Gaussian classes from ``make_classification``), each with 3% random
label flips. Generating the data is not timed; peak RSS includes it (the
table has to be in memory anyway), and ``rss_before_mb`` says how much of
it was there before the run started.

    python -m benchmarks.speed --child ours 10000 tabular
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from .harness import measure_child, peak_rss_mb

CLEANLAB_TIMEOUT_S = 1800  # the issue: run Datalab at 1M only if it finishes within 30 minutes
OURS_TIMEOUT_S = 3600


def make_data(rows: int, kind: str) -> tuple[pd.DataFrame, np.ndarray, tuple[str, ...]]:
    from poison_expectations.testing import make_tabular, random_flips

    if kind == "tabular":
        frame = make_tabular(rows, n_numeric=20, n_categorical=0, random_state=5)
        embedding: tuple[str, ...] = ()
    elif kind == "embedding":
        from sklearn.datasets import make_classification

        X, y = make_classification(rows, 128, n_informative=32, n_redundant=16, n_classes=4, class_sep=1.5,
                                   flip_y=0, random_state=5)
        X = X.astype(np.float32)
        frame = pd.DataFrame({"row_id": np.arange(rows), "emb": list(X), "label": y.astype(np.int64)})
        embedding = ("emb",)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    poisoned = random_flips(frame, label_column="label", rate=0.03, random_state=5,
                            id_column="row_id", feature_columns=[])
    return poisoned.frame, poisoned.is_poison, embedding


def _current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(tool: str, rows: int, kind: str) -> dict:
    from sklearn.metrics import roc_auc_score

    frame, truth, embedding = make_data(rows, kind)
    rss_before = _current_rss_mb()
    if tool == "ours":
        from .ours import run_ours

        out = run_ours(frame, embedding_columns=list(embedding))
    else:
        from .cleanlab_baseline import run_cleanlab

        out = run_cleanlab(frame, embedding)
    return {"tool": tool, "rows": rows, "kind": kind, "features": 128 if kind == "embedding" else 20,
            "wall_s": round(out["wall_s"], 2), "peak_rss_mb": round(peak_rss_mb()),
            "rss_before_mb": round(rss_before), "timings": out["timings"],
            "auroc": round(float(roc_auc_score(truth, out["scores"])), 4),
            "verdict": ("pass" if out["success"] else "FAIL") if "success" in out else None}


def measure(tool: str, rows: int, kind: str, log=print) -> dict:
    """One measurement in a child process, with the load average around it."""
    load_before = os.getloadavg()
    timeout = CLEANLAB_TIMEOUT_S if tool == "cleanlab" else OURS_TIMEOUT_S
    try:
        record = measure_child("speed", tool, str(rows), kind, timeout=timeout)
    except subprocess.TimeoutExpired:
        record = {"tool": tool, "rows": rows, "kind": kind, "features": 128 if kind == "embedding" else 20,
                  "error": f"did not finish within {timeout // 60} min"}
    except RuntimeError as exc:
        record = {"tool": tool, "rows": rows, "kind": kind, "error": str(exc)[-300:]}
    record["load_before"] = [round(x, 2) for x in load_before]
    record["load_after"] = [round(x, 2) for x in os.getloadavg()]
    record["cores"] = os.cpu_count()
    record["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    log(json.dumps(record))
    return record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "ROWS", "KIND"))
    args = parser.parse_args()
    if args.child:
        tool, rows, kind = args.child
        print(json.dumps(child(tool, int(rows), kind)))
        return
    parser.error("use benchmarks.run_all, or --child TOOL ROWS KIND")


if __name__ == "__main__":
    sys.exit(main())
