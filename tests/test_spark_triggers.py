"""Trigger patterns on the Spark engine (engines/spark/triggers.py): the
core's search on the driver, flags and counts on the executors; a tabular
backdoor fails the gate as on the pandas engine, a clean batch passes, and
the same rows are flagged. local[2] via conftest's `spark`; small tables."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from conftest import parquet_folder  # noqa: E402

RUN = ("outliers", "trigger_patterns")


def _config(**data):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section not in RUN}
    return job_config(None, label_column="label", id_column="row_id", overrides=off, **data)




def test_item_conditions_select_the_items_rows(spark):
    """Each item of the core (exact value, bin, level, 'is missing'; numeric,
    string and boolean columns) as a Spark condition holds on exactly its rows."""
    from pyspark.sql import functions as F

    from poison_expectations.core.signals.trigger_items import item_columns, item_json
    from poison_expectations.engines.spark.triggers import item_condition

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"num": np.where(rng.random(300) < 0.1, np.nan, rng.integers(0, 12, 300) * 0.5),
                          "txt": pd.Series(rng.choice(["a", "b", None], 300), dtype=object),
                          "flag": rng.random(300) < 0.3, "cont": rng.normal(size=300)})
    sdf = spark.createDataFrame(frame)
    types = {f.name: f.dataType for f in sdf.schema.fields}
    checked = 0
    for name in frame.columns:
        for ic in item_columns(frame[name], None, name, 4, 5):
            for code in range(len(ic.labels)):
                cond = item_condition(item_json(ic, code), types[name], F)
                assert sdf.where(cond).count() == int((ic.codes == code).sum()), (name, ic.labels[code])
                checked += 1
    assert checked >= 15


@pytest.fixture(scope="module")
def trigger_runs(spark, one_split_per_file, tmp_path_factory):
    from poison_expectations import testing as attacks
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.engines.spark.run import run_spark
    from poison_expectations.gx.runner import run_validation

    root = tmp_path_factory.mktemp("triggers")
    reference = attacks.make_tabular(2000, n_classes=2, random_state=103, distribution_seed=3)
    clean = attacks.make_tabular(2000, n_classes=2, random_state=3, distribution_seed=3)
    backdoored = attacks.backdoor(clean, rate=0.05, random_state=3, id_column="row_id")
    reference.to_parquet(root / "ref.parquet", index=False)
    fit_job(root / "ref.parquet", _config(), root / "ref.profile")
    config = _config(profile=str(root / "ref.profile"))
    out = {}
    for name, frame in (("backdoor", backdoored.frame), ("clean", clean)):
        outcome = run_spark(spark, str(parquet_folder(frame, root / name)), config)
        rows = outcome.scored.select("row_id", "trigger_flagged", "trigger_score").toPandas()
        outcome.release()
        out[name] = (outcome, rows, run_validation(frame, config))
    out["truth"] = pd.Series(backdoored.is_poison, index=backdoored.frame["row_id"])
    return out


@pytest.mark.parametrize("name", ["backdoor", "clean"])
def test_the_trigger_gate_and_flags_agree_with_the_pandas_engine(trigger_runs, name):
    outcome, rows, pandas_run = trigger_runs[name]
    gate = outcome.gates["trigger"]
    pandas_gate = next(e for e in pandas_run.expectations if e.signal == "trigger")
    assert gate["failed"] == (not pandas_gate.success) == (name == "backdoor"), gate
    assert gate["searched_rows"] == outcome.rows  # a small batch is searched whole: the pandas engine's search
    result = pandas_run.results["trigger"]
    pandas_flags = pd.Series(result.flags, index=pandas_run.findings["row_id"])
    spark_flags = rows.set_index("row_id")["trigger_flagged"].reindex(pandas_flags.index)
    assert (spark_flags == pandas_flags).all()
    if name == "backdoor":
        truth = trigger_runs["truth"].reindex(pandas_flags.index)
        assert spark_flags.sum() >= 0.8 * truth.sum() and (spark_flags & truth).sum() >= 0.9 * spark_flags.sum()
        assert all(p["flagged_rows"] == p["searched_rows"] for p in gate["found"])  # whole batch: same rows
        assert outcome.flagged >= spark_flags.sum()  # trigger rows are flagged besides BH, as in the findings
