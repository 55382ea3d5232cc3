"""The whole benchmark suite in one command.

    python -m benchmarks.run_all --quick     # 4 small datasets, speed at 10k: ~10 min on a quiet 2-core box
    python -m benchmarks.run_all             # full: + 100k dataset, speed at 10k/100k/1M and 100k x 128: ~40 min
    python -m benchmarks.run_all --only report          # re-render RESULTS.md and plots from saved JSON

Raw results go to benchmarks/results/{quality,speed}.json (quality resumes
where an interrupted run stopped; --fresh starts over), the report to
benchmarks/RESULTS.md and benchmarks/plots/. --wait-quiet polls the load
average before the speed measurements (they are distorted on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import report
from .cases import ATTACK_NAMES, FULL_DATASETS, QUICK_DATASETS, RATES
from .quality import MODES, run_quality

QUICK_SPEED = [("ours", 10_000, "tabular"), ("cleanlab", 10_000, "tabular")]
FULL_SPEED = [
    ("ours", 10_000, "tabular"), ("cleanlab", 10_000, "tabular"),
    ("ours", 100_000, "tabular"), ("cleanlab", 100_000, "tabular"),
    ("ours", 1_000_000, "tabular"),
    ("ours", 100_000, "embedding"),
]
# Datalab builds an exact kNN graph (brute force, O(n^2)); at 1M rows that is 1e12 distances,
# far beyond the 30-minute allowance on 2 cores, so it runs only with --cleanlab-1m.
CLEANLAB_1M = ("cleanlab", 1_000_000, "tabular")
# The 100k synthetic table costs ~20x the others per case (cleanlab's O(n^2) kNN most of all): it runs
# at 3% poison with one clean batch, so the full suite stays near an hour on a shared 2-core machine.
BIG_DATASETS = {"tabular_100k": {"rates": (0.03,), "clean_seeds": 1}}


def wait_until_quiet(threshold: float, max_minutes: float, poll_s: float = 120.0) -> str:
    deadline = time.time() + max_minutes * 60
    while True:
        load = os.getloadavg()[0]
        if load < threshold:
            return f"machine quiet (1-min load {load:.2f} < {threshold})"
        if time.time() >= deadline:
            return f"machine never quiet within {max_minutes:.0f} min (1-min load {load:.2f}); measured anyway"
        print(f"waiting for a quiet machine: 1-min load {load:.2f} >= {threshold}", flush=True)
        time.sleep(poll_s)


def run_speed(plan, path, repeats: int = 1, log=print) -> list[dict]:
    """Measure each (tool, rows, kind) `repeats` times; replaces earlier records of that key."""
    from .speed import measure

    records = json.loads(path.read_text()) if path.exists() else []
    for tool, rows, kind in plan:
        fresh = []
        for rep in range(repeats):
            record = measure(tool, rows, kind, log=log)
            record["rep"] = rep + 1
            fresh.append(record)
        records = [r for r in records if (r["tool"], r["rows"], r.get("kind")) != (tool, rows, kind)] + fresh
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1))
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small datasets, speed at 10k only")
    parser.add_argument("--only", choices=("quality", "speed", "report"), help="run one part (then the report)")
    parser.add_argument("--datasets", help="comma-separated dataset names (default: by mode)")
    parser.add_argument("--attacks", default=",".join(ATTACK_NAMES))
    parser.add_argument("--modes", default=",".join(MODES), help="ours_self,ours_ref,cleanlab")
    parser.add_argument("--clean-seeds", type=int, help="clean batches per dataset (quick 2, full 5)")
    parser.add_argument("--speed", help="speed plan as tool:rows:kind,... e.g. ours:100000:tabular")
    parser.add_argument("--repeats", type=int, default=1, help="speed: measurements per point (median reported)")
    parser.add_argument("--cleanlab-1m", action="store_true", help="also time Datalab at 1M rows (30 min cap)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="MINUTES",
                        help="before speed: wait up to MINUTES for 1-min load < --quiet-load")
    parser.add_argument("--quiet-load", type=float, default=2.5)
    parser.add_argument("--fresh", action="store_true", help="discard saved results first")
    args = parser.parse_args(argv)

    quality_path, speed_path = report.RESULTS_DIR / "quality.json", report.RESULTS_DIR / "speed.json"
    if args.fresh:
        for path in (quality_path, speed_path):
            path.unlink(missing_ok=True)
    mode_note = "--quick" if args.quick else ("" if args.only == "report" else "(full)")
    if args.only in (None, "quality"):
        datasets = args.datasets.split(",") if args.datasets else list(QUICK_DATASETS if args.quick else FULL_DATASETS)
        clean_seeds = args.clean_seeds or (2 if args.quick else 5)
        for name in datasets:
            big = BIG_DATASETS.get(name, {})
            run_quality(quality_path, [name], attacks=args.attacks.split(","),
                        rates=big.get("rates", RATES),
                        clean_seeds=min(clean_seeds, big.get("clean_seeds", clean_seeds)),
                        modes=args.modes.split(","), log=lambda s: print(s, flush=True))
    if args.only in (None, "speed"):
        if args.speed:
            plan = [(t, int(n), k) for t, n, k in (item.split(":") for item in args.speed.split(","))]
        else:
            plan = list(QUICK_SPEED if args.quick else FULL_SPEED) + ([CLEANLAB_1M] if args.cleanlab_1m else [])
        if args.wait_quiet:
            print(wait_until_quiet(args.quiet_load, args.wait_quiet), flush=True)
        run_speed(plan, speed_path, args.repeats, log=lambda s: print(s, flush=True))
    path = report.write(mode_note)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
