"""Fit once, score many: speed and peak memory of `fit`, `validate --profile`,
`validate --reference` and the self-check, at 10k, 100k and 1M rows x 20
features, each in its own process (benchmarks/harness.py), with the load.

The trusted table and the batch are two samples of one distribution
(``make_tabular``, 20 numeric features, distribution_seed 7); the batch has
3% random label flips, so every run also reports the AUROC of poison_score.

    python benchmarks/bench_profile.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine_line, markdown_table, peak_rss_mb, script_child  # noqa: E402

MODES = ("fit", "profile", "reference", "self")
RESULTS = Path(__file__).with_name("results_profile.md")
RECORDS = Path(__file__).with_name("results") / "profile.json"  # every measurement; a rerun replaces its own


def tables(rows: int):
    from poison_expectations.testing import make_tabular, random_flips

    trusted = make_tabular(rows, n_numeric=20, n_categorical=0, random_state=11, distribution_seed=7)
    batch = make_tabular(rows, n_numeric=20, n_categorical=0, random_state=12, distribution_seed=7)
    poisoned = random_flips(batch, label_column="label", rate=0.03, random_state=5, id_column="row_id",
                            feature_columns=[])
    return trusted, poisoned.frame, poisoned.is_poison


def child(mode: str, rows: int, workdir: str) -> dict:
    from sklearn.metrics import roc_auc_score

    from poison_expectations.apps.fit import fit_job
    from poison_expectations.apps.jobs import job_config, run_job

    trusted, batch, truth = tables(rows)
    folder = Path(workdir)
    trusted_path, batch_path, profile_path = folder / f"trusted_{rows}.parquet", folder / f"batch_{rows}.parquet", \
        folder / f"trusted_{rows}.profile"
    if not trusted_path.exists():
        trusted.to_parquet(trusted_path)
        batch.to_parquet(batch_path)
    del trusted, batch
    roles = {"label_column": "label", "id_column": "row_id", "source_column": "source"}
    start = time.perf_counter()
    record = {"mode": mode, "rows": rows}
    if mode == "fit":
        fit_job(trusted_path, job_config(None, **roles), profile_path)
        record["profile_mb"] = round(profile_path.stat().st_size / 2**20, 1)
    else:
        trusted_side = {"profile": str(profile_path)} if mode == "profile" else (
            {"reference": str(trusted_path)} if mode == "reference" else {})
        outcome, _ = run_job(str(batch_path), job_config(None, **roles, **trusted_side), {})
        record["verdict"] = "pass" if outcome.success else "FAIL"
        record["auroc"] = round(float(roc_auc_score(truth, outcome.findings["poison_score"])), 4)
        slowest = sorted(outcome.timings.items(), key=lambda kv: -kv[1])[1:5]  # [0] is the total
        record["slowest_steps"] = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in slowest)
    record["wall_s"] = round(time.perf_counter() - start, 2)
    record["peak_rss_mb"] = round(peak_rss_mb())
    return record


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the stored records")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, rows, workdir = args.child
        print(json.dumps(child(mode, int(rows), workdir)))
        return
    rows_out = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    sizes = [] if args.report_only else [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        for rows in sizes:
            for mode in args.modes.split(","):
                load = os.getloadavg()[0]
                record = script_child(__file__, mode, rows, workdir)
                record["load_1min_before"] = round(load, 2)
                record["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
                rows_out = [r for r in rows_out if (r["mode"], r["rows"]) != (mode, rows)] + [record]
                RECORDS.parent.mkdir(exist_ok=True)
                RECORDS.write_text(json.dumps(rows_out, indent=1))
                print(json.dumps(record), flush=True)
    rows_out.sort(key=lambda r: (r["rows"], MODES.index(r["mode"])))
    lines = ["# Profile benchmark: fit once, score many", "", machine_line(), "",
             "Modes: `fit` writes a profile of the trusted table; `profile` validates the batch against it "
             "(no refit); `reference` validates against the trusted table (fit in the run); `self` is the "
             "self-check of the batch alone. Each is a fresh process: wall time includes reading the files.", "",
             markdown_table(rows_out)]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
