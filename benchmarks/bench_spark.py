"""The Spark engine on local[2] beside the pandas engine: wall time, driver
peak memory and the load, at 100k and 1M rows x 20 features, with a profile.

The trusted table (100k rows) and the batch are two samples of one
distribution (``make_tabular``, 20 numeric features, distribution_seed 7);
the batch has 3% random label flips. The profile is fitted once on the
trusted table with the run's families (`--families per-row`: label
consistency, outliers, influence; `all`: every family; the 5M row was
measured before collisions ran on Spark), and both engines run exactly those.
Each measurement is its own process: `driver_rss_mb` is the Python driver's
peak RSS; `jvm_rss_mb` and `workers_rss_mb` are the peaks of the Spark JVM
(driver and local executors) and of the sum of its Python workers, sampled
every 0.5 s. The Spark run writes the findings as a parquet dataset.

    python benchmarks/bench_spark.py --sizes 100000,1000000
    python benchmarks/bench_spark.py --sizes 5000000,10000000 --engines spark
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine_line, markdown_table, peak_rss_mb, script_child  # noqa: E402

TRUSTED_ROWS = 100_000
ENGINES = ("spark", "pandas")
PER_ROW = ("label_consistency", "outliers", "influence")
# --families all: every family the Spark engine runs against a profile
ALL = PER_ROW + ("near_duplicates", "spectral_signatures", "feature_clustering", "trigger_patterns",
                 "clean_label_collision", "sources")
FAMILY_SETS = {"per-row": PER_ROW, "all": ALL}
RESULTS = Path(__file__).with_name("results") / "spark.md"
RECORDS = Path(__file__).with_name("results") / "spark.json"


def config(families: str = "per-row", **data):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section not in FAMILY_SETS[families]}
    return job_config(None, label_column="label", id_column="row_id", source_column="source", overrides=off, **data)


CHUNK_ROWS = 1_000_000  # the batch is written as parquet files of at most this many rows (bounded memory)


def prepare(rows: int, folder: Path, families: str = "per-row") -> tuple[Path, Path]:
    """The profile (fitted once) and the batch: a parquet folder of CHUNK_ROWS-row files, each a
    fresh sample of the same distribution with 3% random flips, ids unique across the files."""
    import pandas as pd

    from poison_expectations.apps.fit import fit_job
    from poison_expectations.testing import make_tabular, random_flips

    profile, batch_path = folder / f"trusted_{families}.profile", folder / f"batch_{rows}"
    if not profile.exists():
        trusted = make_tabular(TRUSTED_ROWS, n_numeric=20, n_categorical=0, random_state=11, distribution_seed=7)
        trusted.to_parquet(folder / "trusted.parquet", index=False)
        fit_job(folder / "trusted.parquet", config(families), profile)
    if not batch_path.exists():
        staging = folder / f"staging_{rows}"
        staging.mkdir(exist_ok=True)
        truths = []
        for number, start in enumerate(range(0, rows, CHUNK_ROWS)):
            size = min(CHUNK_ROWS, rows - start)
            batch = make_tabular(size, n_numeric=20, n_categorical=0, random_state=12 + number, distribution_seed=7)
            batch["row_id"] = [f"b{start + i}" for i in range(size)]
            poisoned = random_flips(batch, label_column="label", rate=0.03, random_state=5 + number,
                                    id_column="row_id", feature_columns=[])
            poisoned.frame.to_parquet(staging / f"part-{number:04d}.parquet", index=False)
            truths.append(poisoned.frame[["row_id"]].assign(truth=poisoned.is_poison))
        pd.concat(truths).to_parquet(folder / f"truth_{rows}.parquet")
        staging.rename(batch_path)
    return profile, batch_path


class TreeSampler(threading.Thread):
    """Peak RSS of the JVM children and of the Python workers under them."""

    def __init__(self):
        super().__init__(daemon=True)
        self.jvm = self.workers = 0.0
        self.stop = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self.stop.wait(0.5):
            jvm = workers = 0.0
            for child in me.children(recursive=True):
                try:
                    rss = child.memory_info().rss / 2**20
                    name = child.name()
                except psutil.Error:
                    continue
                if name == "java":
                    jvm += rss
                elif name.startswith("python"):
                    workers += rss
            self.jvm, self.workers = max(self.jvm, jvm), max(self.workers, workers)


def child(engine: str, rows: int, workdir: str, families: str = "per-row") -> dict:
    folder = Path(workdir)
    if engine == "prepare":  # its own process, so the measured driver's peak RSS is the run's alone
        prepare(rows, folder, families)
        return {}
    profile, batch_path = folder / f"trusted_{families}.profile", folder / f"batch_{rows}"
    record = {"engine": engine, "families": families, "rows": rows, "trusted_rows": TRUSTED_ROWS,
              "load_1min_before": round(os.getloadavg()[0], 2)}
    sampler = TreeSampler()
    sampler.start()
    start = time.perf_counter()
    if engine == "spark":
        from poison_expectations.apps.spark_validate import run_spark_job

        outcome, _ = run_spark_job(str(batch_path), config(families, profile=str(profile)),
                                   {"findings": str(folder / f"findings_{rows}")}, master="local[2]",
                                   conf={"spark.driver.memory": "4g", "spark.ui.enabled": "false"})
        record.update(verdict="pass" if outcome.success else "FAIL", flagged=outcome.flagged,
                      steps=", ".join(f"{k} {v:.0f}s" for k, v in outcome.timings.items()))
    else:
        from poison_expectations.apps.jobs import run_job

        parts = sorted(batch_path.glob("*.parquet"))
        if len(parts) != 1:
            raise SystemExit("the pandas engine reads one file: measured up to CHUNK_ROWS rows")
        outcome, _ = run_job(str(parts[0]), config(families, profile=str(profile)),
                             {"findings": str(folder / "f.parquet")})
        record.update(verdict="pass" if outcome.success else "FAIL", flagged=outcome.flagged_count)
    record["wall_s"] = round(time.perf_counter() - start, 1)
    sampler.stop.set()
    record.update(driver_rss_mb=round(peak_rss_mb()), jvm_rss_mb=round(sampler.jvm),
                  workers_rss_mb=round(sampler.workers), load_1min_after=round(os.getloadavg()[0], 2),
                  auroc=_auroc(engine, folder, rows))
    return record


def _auroc(engine: str, folder: Path, rows: int) -> float:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    path = folder / (f"findings_{rows}" if engine == "spark" else "f.parquet")
    scores = pd.read_parquet(path, columns=["row_id", "poison_score"])
    truth = pd.read_parquet(folder / f"truth_{rows}.parquet").merge(scores, on="row_id")
    return round(float(roc_auc_score(truth["truth"], truth["poison_score"])), 4)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--families", choices=sorted(FAMILY_SETS), default="per-row",
                        help="per-row: label consistency, outliers, influence; all: every family Spark runs")
    parser.add_argument("--workdir", help="keep the prepared tables here (default: a temporary folder)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, rows, workdir, families = args.child
        print(json.dumps(child(engine, int(rows), workdir, families)))
        return
    records = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or scratch
        Path(workdir).mkdir(parents=True, exist_ok=True)
        for rows in (int(s) for s in args.sizes.split(",")):
            script_child(__file__, "prepare", rows, workdir, args.families)
            for engine in args.engines.split(","):
                record = script_child(__file__, engine, rows, workdir, args.families)
                record["measured_at"] = time.strftime("%Y-%m-%d %H:%M")
                key = (engine, rows, args.families)
                records = [r for r in records if (r["engine"], r["rows"], r.get("families", "per-row")) != key]
                records.append(record)
                RECORDS.parent.mkdir(exist_ok=True)
                RECORDS.write_text(json.dumps(records, indent=1))
                print(json.dumps(record), flush=True)
    records.sort(key=lambda r: (r.get("families", "per-row"), r["rows"], ENGINES.index(r["engine"])))
    lines = ["# Spark engine benchmark (local[2]) beside the pandas engine", "", machine_line(), "",
             __doc__.split("\n\n")[1].replace("\n", " "), "", markdown_table(records)]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
