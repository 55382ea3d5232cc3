"""Speed and peak memory of the influence and outlier signals at 10k, 100k and
1M rows x 20 numeric features (make_tabular, 2 classes, 3% Biggio-style
boundary poison from testing.boundary_points). Each (size, mode, signal)
runs in its own process, so its peak RSS (ru_maxrss of the child) is its
own: the table, the encoded matrix, the shared neighbour graph (influence
only) and the signal. Writes benchmarks/results_influence_outliers.md.

    python benchmarks/bench_influence_outliers.py [--sizes 10000,100000,1000000] [--modes self,reference]

signal_s is the signal alone; graph_s is the shared k-NN graph (k=10) the
KNN-Shapley part reads, built once per batch for every neighbour-based
signal, reported apart; encode_s is the feature encoding.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import machine_line, markdown_table, peak_rss_mb, script_child  # noqa: E402

SIGNALS = ("influence", "outlier")


def _tables(n: int, mode: str):
    from poison_expectations import testing

    clean = testing.make_tabular(n, n_numeric=20, n_categorical=0, class_sep=1.5, random_state=0)
    poisoned = testing.boundary_points(clean, rate=0.03, random_state=0)
    reference = None
    if mode == "reference":
        reference = testing.make_tabular(n, n_numeric=20, n_categorical=0, class_sep=1.5, random_state=1,
                                         distribution_seed=0)
    return poisoned, reference


def child(n: int, mode: str, signal: str) -> dict:
    from sklearn.metrics import roc_auc_score

    from poison_expectations.core.analysis import Options, Roles, build_analysis
    from poison_expectations.core.signals.influence import Influence
    from poison_expectations.core.signals.outliers import Outliers

    poisoned, reference = _tables(n, mode)
    roles = Roles(label_column="label", id_column="row_id", source_column="source")
    start = time.perf_counter()
    analysis = build_analysis(poisoned.frame, roles, Options(), reference=reference)
    encoded = time.perf_counter()
    graph_s = 0.0
    if signal == "influence":
        if mode == "self":
            analysis.neighbors("self")
        else:
            analysis.neighbors("reference")
            analysis.reference_neighbors()
        graph_s = time.perf_counter() - encoded
    began = time.perf_counter()
    result = (Influence() if signal == "influence" else Outliers()).run(analysis)
    signal_s = time.perf_counter() - began
    truth = poisoned.is_poison
    return {"rows": n, "mode": mode, "signal": signal, "signal_s": round(signal_s, 1),
            "graph_s": round(graph_s, 1), "encode_s": round(encoded - start, 1),
            "peak_rss_mb": round(peak_rss_mb()), "auroc": round(float(roc_auc_score(truth, result.scores)), 3),
            "poison_flagged": round(float(result.flags[truth].mean()), 3),
            "clean_flagged": round(float(result.flags[~truth].mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, metavar=("ROWS", "MODE", "SIGNAL"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--modes", default="self")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results_influence_outliers.md"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.child[2])))
        return
    rows = []
    for n in map(int, args.sizes.split(",")):
        for mode in args.modes.split(","):
            for signal in SIGNALS:
                row = script_child(__file__, n, mode, signal)
                rows.append(row)
                print(row, flush=True)
    machine = machine_line()
    text = (f"# Influence and outliers: speed and memory\n\nMachine: {machine}\n\n"
            "make_tabular, 20 numeric features, 2 classes, 3% boundary poison (testing.boundary_points); "
            "reference mode: a clean reference of the same size. signal_s: the signal alone; graph_s: the "
            "shared k-NN graph(s) (k=10) that KNN-Shapley reads, built once per batch for every "
            "neighbour-based signal; peak RSS of the child process.\n\n" + markdown_table(rows) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
