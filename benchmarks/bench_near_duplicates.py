"""Benchmark of the near-duplicate clusters signal: wall time and peak RSS.

Each size runs in a child process (so ru_maxrss is that size's peak): a
make_tabular table of n rows x 20 numeric features with a 2% flood of
near-copies of 3 rows. The shared neighbour search (k=10; exact up to 50k
rows, HNSW above) is timed apart from the signal on top of it. Also
reported: flood recall and rows flagged outside the flood.

    python benchmarks/bench_near_duplicates.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import peak_rss_mb, size_sweep  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results_near_duplicates.md"


def child(n: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from poison_expectations import testing
    from poison_expectations.core.analysis import Options, Roles, build_analysis
    from poison_expectations.core.signals.near_duplicates import NearDuplicates

    t0 = time.perf_counter()
    clean = testing.make_tabular(n, n_numeric=20, n_categorical=0, random_state=0)
    poisoned = testing.near_duplicate_flood(clean, rate=0.02, n_seeds=3, random_state=1)
    frame = poisoned.frame
    roles = Roles(label_column="label", id_column="row_id", source_column="source")
    analysis = build_analysis(frame, roles, Options())
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    neighbors = analysis.neighbors("self", 10)
    t_neighbors = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = analysis.result(NearDuplicates())
    t_signal = time.perf_counter() - t0
    s = result.summary
    poison = poisoned.is_poison
    cid = result.columns["cluster_id"]
    flood_clusters = set(cid[poison & (cid >= 0)].tolist())
    improbable = [c for c in range(len(result.cluster_sizes))
                  if result.cluster_suspicious[c] and not result.cluster_conflicting[c]]
    clean_improbable = [c for c in improbable if c not in flood_clusters]
    return {
        "rows": len(frame), "prepare_s": t_prepare, "neighbors_s": t_neighbors, "signal_s": t_signal,
        "exact_search": neighbors.exact, "recall_estimate": neighbors.recall_estimate,
        "peak_rss_mb": peak_rss_mb(),
        "flood_recall": float(result.flags[poison].mean()),
        "flagged_outside_flood": int(result.flags[~poison].sum()),
        "radius": s["radius"], "clusters": s["clusters"], "largest": s["largest_cluster"],
        "improbable_clusters": s["improbable_clusters"], "flood_clusters": len(flood_clusters),
        "improbable_clusters_outside_flood": len(clean_improbable),
        "conflicting_clusters": s["conflicting_clusters"],
        "expected_conflicting_clusters": s["expected_conflicting_clusters"],
        "min_improbable_size": s["size_model"]["min_improbable_size"],
    }


def main() -> None:
    args, rows = size_sweep(__file__, child, __doc__.splitlines()[0])
    if rows is None:
        return
    table = [
        "| rows | neighbour search (s) | search | near-duplicate signal (s) | peak RSS (MB) | flood recall | "
        "flagged outside flood | radius | largest cluster | min improbable size | flood clusters | "
        "improbable clusters outside flood | conflicting clusters (expected by chance) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        search = "exact" if r["exact_search"] else f"HNSW (recall {r['recall_estimate']:.3f})"
        table.append(f"| {r['rows']:,} | {r['neighbors_s']:.1f} | {search} | {r['signal_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['flood_recall']:.3f} | {r['flagged_outside_flood']} | "
                     f"{r['radius']:.3g} | {r['largest']} | {r['min_improbable_size']} | {r['flood_clusters']} | "
                     f"{r['improbable_clusters_outside_flood']} | {r['conflicting_clusters']} "
                     f"({r['expected_conflicting_clusters']:.1f}) |")
    text = "\n".join([
        "# Near-duplicate clusters benchmark", "",
        f"make_tabular, 20 numeric features, plus a 2% flood of near-copies of 3 rows; k=10; "
        f"{platform.machine()}, Python {platform.python_version()}, 2 cores.",
        "Signal time is on top of the shared neighbour search (timed apart); peak RSS is the child process's.",
        "", *table, ""])
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
