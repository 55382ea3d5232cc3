"""Benchmark of the backdoor / clean-label signals: wall time and peak RSS.

Each size runs in a child process (so ru_maxrss is that size's peak): a
make_tabular table of n rows x 20 feature columns (18 numeric, 2
categorical) with a 3-feature tabular backdoor on 5% of the rows. The
shared neighbour search (k=10; exact up to 50k rows, HNSW above), which the
trigger ranking and the collision signal reuse from the label-consistency
run, is timed apart. Also reported: whether the trigger was named and the
share of backdoored rows flagged by the trigger signal.

    python benchmarks/bench_backdoor.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import peak_rss_mb, size_sweep  # noqa: E402
RESULTS = ROOT / "benchmarks" / "results_backdoor.md"
SIGNAL_NAMES = ("spectral", "clustering", "trigger", "collision")


def child(n: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from poison_expectations import testing
    from poison_expectations.core.analysis import Options, Roles, build_analysis
    from poison_expectations.core.signals.feature_clustering import FeatureClustering
    from poison_expectations.core.signals.collision import CleanLabelCollision
    from poison_expectations.core.signals.spectral import SpectralSignatures
    from poison_expectations.core.signals.triggers import TriggerPatterns

    t0 = time.perf_counter()
    clean = testing.make_tabular(n, n_numeric=18, n_categorical=2, random_state=0)
    poisoned = testing.backdoor(clean, rate=0.05, random_state=1)
    t_generate = time.perf_counter() - t0
    t0 = time.perf_counter()
    roles = Roles(label_column="label", id_column="row_id", source_column="source")
    analysis = build_analysis(poisoned.frame, roles, Options())
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    neighbors = analysis.neighbors("self", 10)
    t_neighbors = time.perf_counter() - t0
    out = {"rows": n, "generate_s": t_generate, "prepare_s": t_prepare, "neighbors_s": t_neighbors,
           "exact_search": neighbors.exact}
    for name, cls in zip(SIGNAL_NAMES, (SpectralSignatures, FeatureClustering, TriggerPatterns,
                                        CleanLabelCollision), strict=True):
        t0 = time.perf_counter()
        result = analysis.result(cls())
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_flagged"] = result.flagged_count
        if name == "trigger":
            patterns = result.summary["patterns"]
            columns = {item["column"] for p in patterns for item in p["pattern"]}
            out["trigger_named"] = bool(patterns) and set(poisoned.details["trigger"]) <= columns
            out["trigger_recall"] = float(result.flags[poisoned.is_poison].mean())
            out["trigger_false"] = int((result.flags & ~poisoned.is_poison).sum())
            out["trigger_text"] = patterns[0]["text"] if patterns else ""
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    args, rows = size_sweep(__file__, child, __doc__.splitlines()[0])
    if rows is None:
        return
    lines = [
        "# Backdoor / clean-label signals: time and memory",
        "",
        f"`python benchmarks/bench_backdoor.py --sizes {args.sizes}` on {platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other jobs; OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), Python {platform.python_version()}.",
        "Data: make_tabular, 20 feature columns (18 numeric, 2 categorical), 2 classes, a 3-feature "
        "backdoor on 5% of rows. Times in seconds; the neighbour search (k=10) is shared with the other "
        "neighbour-based signals of a run and timed apart.",
        "",
        "| rows | prepare | neighbours (shared) | spectral | clustering | trigger | collision | peak RSS (MB) | "
        "trigger named | trigger recall | trigger false flags |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        search = "exact" if r["exact_search"] else "HNSW"
        lines.append(
            f"| {r['rows']:,} | {r['prepare_s']:.1f} | {r['neighbors_s']:.1f} ({search}) | {r['spectral_s']:.1f} | "
            f"{r['clustering_s']:.1f} | {r['trigger_s']:.1f} | {r['collision_s']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{'yes' if r['trigger_named'] else 'no'} | {r['trigger_recall']:.1%} | {r['trigger_false']} |")
    lines += ["", "Trigger reported at each size:", ""]
    lines += [f"- {r['rows']:,} rows: `{r['trigger_text']}`" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
