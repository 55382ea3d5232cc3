"""Speed and peak memory of the label-consistency check at 10k, 100k and 1M
rows x 20 numeric features (synthetic, 5% random flips), for the default
method (both) and each method alone. Each measurement runs in its own
process. Writes benchmarks/results_label_consistency.md.

    python -m benchmarks.bench_label_consistency [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.harness import machine_line, markdown_table, measure_child, peak_rss_mb, REPO


def synthetic(n: int, d: int = 20, seed: int = 0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n, d, n_informative=10, n_redundant=4, class_sep=1.5, flip_y=0,
                               random_state=seed)
    flipped = np.random.default_rng(seed).random(n) < 0.05
    y[flipped] = 1 - y[flipped]
    return X.astype(np.float32), y, flipped


def child(n: int, method: str) -> dict:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from poison_expectations.core.analysis import Options, Roles, build_analysis
    from poison_expectations.core.signals.label_consistency import LabelConsistency

    X, y, flipped = synthetic(n)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["label"] = y
    start = time.perf_counter()
    analysis = build_analysis(frame, Roles(label_column="label"), Options())
    prepared = time.perf_counter()
    neighbors_s = 0.0
    if method != "model":
        analysis.neighbors("self")
        neighbors_s = time.perf_counter() - prepared
    result = analysis.result(LabelConsistency(method=method))
    total = time.perf_counter() - start
    return {"rows": n, "method": method, "wall_s": round(total, 1), "encode_s": round(prepared - start, 1),
            "neighbors_s": round(neighbors_s, 1), "peak_rss_mb": round(peak_rss_mb()),
            "recall": round(float(result.flags[flipped].mean()), 3),
            "false_flags": round(float(result.flags[~flipped].mean()), 4),
            "auroc": round(float(roc_auc_score(flipped, result.scores)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "METHOD"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--methods", default="both,knn,model")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    rows = []
    for n in map(int, args.sizes.split(",")):
        for method in args.methods.split(","):
            row = measure_child("bench_label_consistency", str(n), method)
            rows.append(row)
            print(row, flush=True)
    text = (f"# Label consistency: speed and memory\n\nMachine: {machine_line()}\n\n"
            "20 numeric features, 2 classes, 5% random flips; wall time includes encoding and the neighbour "
            "search; peak RSS is the child process's.\n\n" + markdown_table(rows) + "\n")
    (REPO / "benchmarks" / "results_label_consistency.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
