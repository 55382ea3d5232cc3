"""Measure the constants of the time guard's cost model (core/cost.py).

    python -m benchmarks.cost_model run 2000x8x2x0 8000x64x10x0 ... >> grid.jsonl
    python -m benchmarks.cost_model fit grid.jsonl

`run` times one default-config run per shape ROWSxFEATURESxCLASSESxREFERENCE_ROWS
(Gaussian classes, all families enabled; REFERENCE_ROWS=0: a self-check):
the k-NN graphs apart (computed first, then shared by the signals), then
each signal. `fit` fits the model's constants by non-negative least squares
on the seconds (so the long runs, which a time budget is about, weigh
most; a short run is overestimated by the fitted fixed costs) and prints
each run's estimate against its measured time. Note the load:
the constants are as slow as the machine was.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from poison_expectations.core import cost


def _table(n: int, d: int, c: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    frame = pd.DataFrame(rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(c, d))[y],
                         columns=[f"f{i}" for i in range(d)])
    frame["label"] = y
    return frame


def measure(n: int, d: int, c: int, ref_rows: int = 0) -> dict:
    from poison_expectations.core.config import load_config
    from poison_expectations.core.context import active
    from poison_expectations.gx.metrics.base import trusted_name
    from poison_expectations.gx.runner import (build_expectations, compute_signals, distinct_signals,
                                               prepare_analysis, shared_kwargs)
    from poison_expectations.stores.references import register_reference, unregister_reference

    model = os.environ.get("COST_LABEL_MODEL", "hgb")  # logistic: measures LOGISTIC_CELL
    config = load_config(None, {"data.label_column": "label", "expectations.label_consistency.model": model})
    if ref_rows:
        register_reference("REF", _table(ref_rows, d, c, 2))
        config["data"]["reference"] = "REF"
    try:
        expectations = build_expectations(config, [])
        analysis = prepare_analysis(_table(n, d, c, 1), config, expectations)
        shape = cost.shape_of(analysis)
        t0 = time.perf_counter()
        analysis.neighbors("self")
        if ref_rows:
            analysis.reference_neighbors()
            analysis.neighbors("reference")
        timings = {"neighbours": time.perf_counter() - t0}
        with active(analysis, trusted_name(shared_kwargs(config))):
            compute_signals(analysis, expectations, None, timings)
        estimate = cost.estimate(shape, distinct_signals(expectations))
    finally:
        if ref_rows:
            unregister_reference("REF")
    load = float(open("/proc/loadavg").read().split()[0])
    return {"shape": shape.__dict__, "load": load, "seconds": timings, "estimate": estimate,
            "params": {s.name: s.params for s in distinct_signals(expectations)}}


def _columns(step: str, shape: cost.Shape, params: dict) -> list[float]:
    rows = shape.fitted_rows + (shape.batch_rows if shape.reference_rows else 0)
    cells = rows * shape.width
    if step == "neighbours":
        saved = cost.EXACT, cost.HNSW
        cost.EXACT, cost.HNSW = 1.0, 0.0
        exact = cost.neighbour_seconds(shape)
        cost.EXACT, cost.HNSW = 0.0, 1.0
        hnsw = cost.neighbour_seconds(shape)
        cost.EXACT, cost.HNSW = saved
        return [exact, hnsw]
    if step == "label_consistency":
        names = ("TREE", "TREE_WIDTH", "TREE_CELL", "LOGISTIC_CELL")
        saved = [getattr(cost, name) for name in names]
        terms = []
        for unit in np.eye(len(names)):
            for name, value in zip(names, unit, strict=True):
                setattr(cost, name, float(value))
            terms.append(cost.label_model_seconds(shape, params))
        for name, value in zip(names, saved, strict=True):
            setattr(cost, name, value)
        return [1.0, cells, *terms]
    saved_cost = cost.SIGNAL_COST.get(step)
    cost.SIGNAL_COST[step] = (0.0, 0.0, 1.0, 0.0, 0.0)
    cells = cost.signal_seconds(step, shape, params)  # rows within the signal's caps x width
    if saved_cost is None:
        del cost.SIGNAL_COST[step]
    else:
        cost.SIGNAL_COST[step] = saved_cost
    fits = 1.0 if shape.fitted_rows else 0.0  # as in cost.signal_seconds: no set-up without fits
    return [fits, fits * shape.classes, cells, cells * shape.classes, cells * shape.width]


def fit(path: str) -> None:
    runs = [json.loads(line) for line in open(path) if line.startswith("{")]
    for run in runs:
        run["shape"]["class_counts"] = tuple(run["shape"]["class_counts"])
    steps = sorted({step for run in runs for step in run["seconds"]})
    fitted = {}
    for step in steps:
        rows = [(_columns(step, cost.Shape(**r["shape"]), r["params"].get(step, {})), r["seconds"][step])
                for r in runs if step in r["seconds"]]
        A, b = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        scale = np.where(A.max(axis=0) > 0, A.max(axis=0), 1.0)
        x, _ = nnls(A / scale, b)
        fitted[step] = x / scale
    _print_constants(fitted)
    print("\nrows width classes ref  load  measured  estimated  ratio")
    for run in runs:
        shape = cost.Shape(**run["shape"])
        est = sum(float(np.dot(_columns(s, shape, run["params"].get(s, {})), fitted[s])) for s in run["seconds"])
        got = sum(run["seconds"].values())
        print(f"{shape.batch_rows:6d} {shape.width:5d} {shape.classes:4d} {shape.reference_rows:6d} "
              f"{run['load']:5.1f} {got:9.1f} {est:9.1f} {est / got:6.2f}")


def _print_constants(fitted: dict) -> None:
    """The fitted constants, as core/cost.py spells them."""
    print("EXACT, HNSW =", ", ".join(f"{v:.3g}" for v in fitted["neighbours"]))
    label = fitted["label_consistency"]
    print("TREE, TREE_WIDTH, TREE_CELL, LOGISTIC_CELL =", ", ".join(f"{v:.3g}" for v in label[2:]))
    print("SIGNAL_COST = {")
    for step, x in fitted.items():
        if step == "label_consistency":
            x = [label[0], 0.0, label[1], 0.0, 0.0]
        if step != "neighbours":
            print(f'    "{step}": ({", ".join(f"{v:.3g}" for v in x)}),')
    print("}")


def estimate(spec: str) -> None:
    """The model's estimate for a shape that was not (or could not be) measured."""
    n, d, c, r = (int(x) for x in spec.split("x"))
    shape = cost.Shape(n, r or n, r, d, tuple([(r or n) // c] * c), 50_000, r > 0, r > 0)
    label = type("S", (), {"name": "label_consistency", "params": {
        "method": "both", "model": "hgb", "n_folds": 5, "max_train_rows": 100_000}})
    others = [type("S", (), {"name": name, "params": {}}) for name in SIGNALS]
    parts = cost.estimate(shape, [label, *others])
    print(spec, f"{sum(parts.values()):.0f} s", {k: round(v, 1) for k, v in parts.items()})


# the default config's signals besides label consistency
SIGNALS = ("near_duplicate", "influence", "spectral", "feature_clustering", "trigger", "collision", "outlier")

if __name__ == "__main__":
    if sys.argv[1] == "fit":
        fit(sys.argv[2])
    elif sys.argv[1] == "estimate":
        for spec in sys.argv[2:]:
            estimate(spec)
    else:
        measure(300, 4, 2)  # warm-up: imports, GX
        for spec in sys.argv[2:]:
            n, d, c, r = (int(x) for x in spec.split("x"))
            print(json.dumps(measure(n, d, c, r), default=float), flush=True)
