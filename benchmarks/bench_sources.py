"""Benchmark: per-source statistics and the reputation ledger.

For each size (rows x 20 features) a child process builds a table with a
source column, prepares the shared `Analysis`, runs a stand-in signal whose
flags are 5% random rows (the per-source statistics cost does not depend on
which signal flagged), then times:
- `SourceStatistics(signals=["*"])` (counts, Fisher tests, BH, summary);
- recording the run in a SQLite ledger (one transaction, every source);
- reading the ledger history of every source (what the reputation
  expectation does).
Peak RSS is the child's ru_maxrss (it includes the table and the Analysis).

    python benchmarks/bench_sources.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import script_child  # noqa: E402
RESULTS = HERE / "results_sources.md"
N_FEATURES = 20


def default_sources(n: int) -> int:
    """Contributors grow with the batch: ~sqrt(n), 100 at 10k rows, 1000 at 1M."""
    return max(10, int(round(n ** 0.5)))


def child(n: int, n_sources: int) -> dict:
    import numpy as np
    import pandas as pd

    from poison_expectations.core.analysis import Options, Roles, build_analysis
    from poison_expectations.stores.ledger import Ledger, SourceRecord
    from poison_expectations.core.signals.base import Signal, SignalResult
    from poison_expectations.core.signals.sources import SourceStatistics

    class RandomFlags(Signal):
        name = "random_flags"

        def run(self, analysis):
            rng = np.random.default_rng(0)
            flags = rng.random(analysis.batch.n) < 0.05
            return SignalResult(self.name, flags.astype(float), flags, np.where(flags, "random", ""))

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.standard_normal((n, N_FEATURES)).astype(np.float32),
                         columns=[f"f{i}" for i in range(N_FEATURES)])
    weights = rng.dirichlet(np.ones(n_sources))
    frame["source"] = np.asarray([f"src{i:05d}" for i in range(n_sources)], dtype=object)[
        rng.choice(n_sources, size=n, p=weights)]
    frame["label"] = rng.integers(0, 3, n)
    t0 = time.perf_counter()
    analysis = build_analysis(frame, Roles("label", None, "source"), Options())
    prepare = time.perf_counter() - t0
    analysis.result(RandomFlags())
    rss_prepared = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    result = analysis.result(SourceStatistics(signals=["*"]))
    stats_time = time.perf_counter() - t0
    summary = result.summary
    records = [SourceRecord(s["source"], s["rows"], s["flagged_any"], s["verdict"],
                            {k: v["flagged"] for k, v in s["signals"].items()}) for s in summary["sources"]]
    with tempfile.TemporaryDirectory() as folder:
        with Ledger(Path(folder) / "bench.db") as store:
            t0 = time.perf_counter()
            store.record_run("bench", records, success=True)
            record_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            history = store.history([r.source for r in records])
            read_time = time.perf_counter() - t0
    assert len(history) == summary["n_sources"]
    return {
        "rows": n, "sources": summary["n_sources"], "judged": summary["n_judged"],
        "prepare_s": prepare, "source_stats_s": stats_time, "ledger_record_s": record_time,
        "ledger_read_s": read_time, "rss_prepared_mb": rss_prepared,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "suspicious": len(summary["suspicious_sources"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated row counts")
    parser.add_argument("--sources", type=int, default=None, help="sources per batch (default ~sqrt(rows))")
    parser.add_argument("--child", nargs=2, type=int, metavar=("ROWS", "SOURCES"), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        n_sources = args.sources or default_sources(n)
        row = script_child(__file__, n, n_sources)
        rows.append(row)
        print(f"{n:>9} rows, {row['sources']:>6} sources: stats {row['source_stats_s']:.3f}s, "
              f"ledger write {row['ledger_record_s']:.3f}s, read {row['ledger_read_s']:.3f}s, "
              f"peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    lines = [
        "# Benchmark: per-source statistics and reputation ledger",
        "",
        f"`python benchmarks/bench_sources.py --sizes {args.sizes}`; {N_FEATURES} float features, sources "
        "with Dirichlet shares, a stand-in signal flagging 5% of rows at random; one child process per size; "
        "SQLite ledger in a temp folder. `prepare` is the shared Analysis (feature encoding), not this "
        "family's cost.",
        "",
        "| rows | sources | judged | prepare (s) | source statistics (s) | ledger write (s) | ledger read (s) "
        "| RSS after prepare (MB) | peak RSS (MB) | named (null data) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['rows']:,} | {r['sources']:,} | {r['judged']:,} | {r['prepare_s']:.2f} | "
                     f"{r['source_stats_s']:.3f} | {r['ledger_record_s']:.3f} | {r['ledger_read_s']:.3f} | "
                     f"{r['rss_prepared_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['suspicious']} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
