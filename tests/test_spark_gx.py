"""GX on Spark and the Airflow operator on Spark: a checkpoint runs the
engine once for every family of its suite and fails the expectations the
pandas checkpoint fails (a near-copy flood; a clean batch passes), the
row-level expectation lists the ids the pandas checkpoint lists, a family
not on Spark fails its expectation with one line, and
`PoisonCheckOperator(engine="spark")` passes a clean batch, fails a flipped
one and writes parquet outputs. conftest's local[2] session; small tables."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from conftest import REPO, trusted_and_batches  # noqa: E402

N_REF, N_BATCH = 1500, 600
FEATURES = [f"f{i}" for i in range(10)]


def only_label_consistency() -> dict:
    """Config overrides that leave one family on: the profile is fitted and the batches scored for it only."""
    from poison_expectations.core.params import FAMILIES

    return {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section != "label_consistency"}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A profile fitted on a trusted table, a clean batch and a 10%-flipped one (single parquet files)."""
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.apps.jobs import job_config

    root = tmp_path_factory.mktemp("spark_gx")
    ref, clean, flipped, mask = trusted_and_batches(N_REF, N_BATCH)
    for name, frame in (("ref", ref), ("clean", clean), ("flipped", flipped)):
        frame.to_parquet(root / f"{name}.parquet", index=False)
    fit_job(root / "ref.parquet", job_config(None, label_column="label", id_column="row_id",
                                             overrides=only_label_consistency()), root / "ref.profile")
    return {"root": root, "profile": str(root / "ref.profile"), "clean": clean, "flipped": flipped,
            "flipped_ids": set(flipped.loc[mask, "row_id"])}


def _checkpoint_results(frame, expectations, spark=None) -> dict:
    """{expectation type: result} of a checkpoint on a Spark (spark given) or a pandas dataframe asset."""
    import great_expectations as gx

    from poison_expectations.gx.runner import ephemeral_context

    context = ephemeral_context()
    source = context.data_sources.add_spark("s", persist=False) if spark else context.data_sources.add_pandas("p")
    batch = source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name="s", expectations=expectations))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="c", validation_definitions=[validation],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]}))
    data = spark.createDataFrame(frame) if spark else frame
    run = checkpoint.run(batch_parameters={"dataframe": data})
    return {r.expectation_config.type: r for r in next(iter(run.run_results.values())).results}


def _row_level(profile):
    import poison_expectations as pe

    return pe.ExpectRowLabelsToBeConsistent(column_list=FEATURES + ["label"], label_column="label",
                                            id_column="row_id", profile=profile)


@pytest.mark.parametrize("name", ["flipped", "clean"])
def test_row_level_expectation_on_spark_lists_the_ids_pandas_lists(spark, tables, name):
    """Against a profile a row fails when BH flags it at fdr_q over the batch's conformal
    p-values; only the tie-breaks (drawn per partition on Spark) differ between engines.
    Measured on the flipped batch: 74 ids on Spark, 75 on pandas, 74 in common."""
    frame = tables[name]
    on_spark = _checkpoint_results(frame, [_row_level(tables["profile"])], spark=spark)
    on_pandas = _checkpoint_results(frame, [_row_level(tables["profile"])])
    rows = "expect_row_labels_to_be_consistent"
    ids = [{row["row_id"] for row in results[rows].result["unexpected_index_list"]}
           for results in (on_spark, on_pandas)]
    assert on_spark[rows].success == on_pandas[rows].success == (name == "clean")
    assert on_spark[rows].result["unexpected_count"] == len(ids[0])
    if name == "clean":
        assert len(ids[0]) <= 0.02 * N_BATCH and len(ids[1]) <= 0.02 * N_BATCH
    else:
        assert len(ids[0] & ids[1]) >= 0.95 * max(len(ids[0]), len(ids[1])) > 0.05 * N_BATCH, ids
        assert len(ids[0] & tables["flipped_ids"]) >= 0.8 * len(ids[0])


def test_row_level_expectation_on_spark_names_what_it_needs(spark, tables):
    import poison_expectations as pe

    no_id = pe.ExpectRowLabelsToBeConsistent(column_list=FEATURES + ["label"], label_column="label",
                                             profile=tables["profile"])
    results = _checkpoint_results(tables["clean"].head(50), [no_id], spark=spark)
    (result,) = results.values()
    assert not result.success and "on Spark set id_column" in result.exception_info["exception_message"]
    no_trusted = pe.ExpectRowLabelsToBeConsistent(column_list=FEATURES + ["label"], label_column="label",
                                                  id_column="row_id")
    (result,) = _checkpoint_results(tables["clean"].head(50), [no_trusted], spark=spark).values()
    (info,) = result.exception_info.values()
    assert not result.success and "needs a trusted side" in info["exception_message"]


SHARE = "expect_near_duplicate_cluster_share_to_be_at_most"
SOURCES = "expect_source_flagged_rates_to_not_exceed_rest"
COLLISION = "expect_clean_label_collision_group_count_to_be_at_most"


@pytest.fixture(scope="module")
def flood(tables):
    """A profile fitted with every family but influence (two per-row families test their reading)
    on the trusted table with six sources, and the clean batch with them, without and
    with a 5% flood of near copies (copies of a few rows: their source's flagged rate stands out)."""
    import pandas as pd

    from poison_expectations.apps.fit import fit_job
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.testing.floods import near_duplicate_flood

    root = tables["root"]
    ref = pd.read_parquet(root / "ref.parquet")
    ref.assign(source=[f"s{i % 6}" for i in range(len(ref))]).to_parquet(root / "ref_sources.parquet", index=False)
    fit_job(root / "ref_sources.parquet",
            job_config(None, label_column="label", id_column="row_id", source_column="source",
                       overrides={"expectations.influence.enabled": False}),
            root / "families.profile")
    clean = tables["clean"].assign(source=[f"s{i % 6}" for i in range(N_BATCH)])
    flooded = near_duplicate_flood(clean, rate=0.05, id_column="row_id", random_state=1).frame
    return {"profile": str(root / "families.profile"), "clean": clean, "flooded": flooded}


def _suite(profile: str) -> list:
    """A batch expectation of each family of the profile, the near-duplicate reports, and collisions."""
    import poison_expectations as pe

    common = {"label_column": "label", "id_column": "row_id", "source_column": "source", "profile": profile}
    return [pe.ExpectLabelInconsistencyRateToBeAtMost(**common), pe.ExpectClassOutlierRateToBeAtMost(**common),
            pe.ExpectNearDuplicateClusterShareToBeAtMost(**common),
            pe.ExpectLargestNearDuplicateClusterToBeAtMost(**common),
            pe.ExpectConflictingNearDuplicateClustersToBeAtMost(**common),
            pe.ExpectSpectralSignatureClassCountToBeAtMost(**common),
            pe.ExpectFeatureClusteringClassCountToBeAtMost(**common), pe.ExpectTriggerPatternCountToBeAtMost(**common),
            pe.ExpectSourceFlaggedRatesToNotExceedRest(**common, signals=["*"]),  # as the profile's config
            pe.ExpectCleanLabelCollisionGroupCountToBeAtMost(**common)]


@pytest.mark.parametrize("name", ["flooded", "clean"])
def test_a_spark_checkpoint_runs_the_engine_once_and_fails_like_pandas(spark, flood, name, monkeypatch):
    """Every family of the suite from ONE engine run; the same expectations fail on both engines (the
    flood: near duplicates' density test, and the flood's source), a clean batch passes on both
    (collisions included: the flood's copies keep their labels)."""
    from poison_expectations.engines.spark import run as spark_run

    calls = []
    real = spark_run.run_spark
    monkeypatch.setattr(spark_run, "run_spark", lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = flood[name]
    cached = spark.sparkContext._jsc.getPersistentRDDs().size()
    on_spark = _checkpoint_results(frame, _suite(flood["profile"]), spark=spark)
    on_pandas = _checkpoint_results(frame, _suite(flood["profile"]))
    assert len(calls) == 1
    assert spark.sparkContext._jsc.getPersistentRDDs().size() == cached  # the engine's tables released
    assert not any(r.exception_info and r.exception_info.get("raised_exception") for r in on_spark.values()), \
        {t: r.exception_info for t, r in on_spark.items()}
    failed = [{t for t, r in results.items() if not r.success} for results in (on_spark, on_pandas)]
    assert failed[0] == failed[1] == ({SHARE, SOURCES} if name == "flooded" else set())
    assert len(on_spark) == 10 and COLLISION in on_spark  # evaluated on Spark (no exception, above)
    assert on_spark[SOURCES].result["observed_value"] == on_pandas[SOURCES].result["observed_value"]
    if name == "flooded":  # the rows each engine flags as near duplicates (BH over their p-values)
        ids = [set(results[SHARE].result["unexpected_index_list"]) for results in (on_spark, on_pandas)]
        print("near-duplicate ids: spark", len(ids[0]), "pandas", len(ids[1]), "both", len(ids[0] & ids[1]))
        assert len(ids[0] & ids[1]) >= 0.8 * max(len(ids[0]), len(ids[1])) > 0, ids
        assert on_spark[SHARE].result["element_count"] == len(frame)


@pytest.mark.parametrize("share", [0.0, 0.03])
def test_the_engine_gate_read_as_batch_test_decides_as_the_pandas_gate(share):
    """The engine's per-signal gate (decide.signal_gate over padded small p-values), handed to the
    expectation as `batch_test`, gives the decision, p-value and bound the pandas expectation computes
    from every row p-value (family_verdict) at the same level. No Spark here."""
    import numpy as np

    from poison_expectations.core.signals.base import SignalResult
    from poison_expectations.core.verdicts.gate import family_verdict
    from poison_expectations.engines.spark import decide
    from poison_expectations.gx.metrics.spark_results import SparkSignalResult, batch_test

    rng = np.random.default_rng(3)
    n, n_ref, alpha = 2000, 1000, 0.01
    p = (rng.integers(1, n_ref + 2, n) / (n_ref + 1)).astype(float)  # conformal p-values of clean rows
    p[: int(share * n)] = 1.0 / (n_ref + 1)  # a contaminated share ranks above every trusted row
    small = p <= decide.ALPHA0
    gate = decide.signal_gate(p[small], np.zeros(small.sum(), dtype=np.int64), {0: n}, {0: n_ref}, alpha=alpha)
    pandas = SignalResult("s", np.zeros(n), np.zeros(n, dtype=bool), np.full(n, "", dtype=object))
    pandas.pvalues, pandas.pvalue_groups = p, (((n_ref, n),), np.zeros(n, dtype=np.int64))
    spark = SparkSignalResult("s", np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=object), total_rows=n)
    spark.batch_test = batch_test(gate, n)
    on = [family_verdict(r, alpha=alpha, min_effect=0.005) for r in (spark, pandas)]
    assert [v["failed"] for v in on] == [share > 0] * 2
    assert on[0]["p_value"] == on[1]["p_value"] and on[0]["lower_bound"] == on[1]["lower_bound"]
    assert on[0]["lower_share"] == on[1]["lower_share"] and spark.n_rows == n


OPERATOR_RUN = """
import json, sys
from poison_expectations.apps.airflow import PoisonCheckInputError, PoisonCheckOperator, PoisonDetected

class TI:
    def __init__(self):
        self.xcom = {}
    def xcom_push(self, key, value):
        self.xcom[key] = value

root, profile, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
# the first run builds the session from the connection (AIRFLOW_CONN_POISON_SPARK: host, extras); the second
# names its master and conf (the same master: one SparkContext per process)
session = {"clean": {"spark_conn_id": "poison_spark"},
           "flipped": {"spark_master": "local[2]", "spark_conf": {"spark.ui.enabled": "false"}}}
for name in ("clean", "flipped"):
    out = f"{root}/out_{name}"
    outputs = {} if name == "clean" else {  # the flipped run writes every output
        "findings_path": f"{out}/findings", "accepted_path": f"{out}/accepted", "quarantine_path": f"{out}/quarantine",
        "report_path": f"{out}/report.json"}
    operator = PoisonCheckOperator(
        task_id="validate", data_path=f"{root}/{name}.parquet", profile=profile, label="label", id_column="row_id",
        overrides=overrides, engine="spark", **outputs, **session[name])
    ti = TI()
    try:
        operator.execute({"ti": ti})
        raised = None
    except PoisonDetected as exc:
        raised = str(exc)
    from pyspark.sql import SparkSession
    spark = SparkSession.getActiveSession()  # built by the first run
    print("RESULT:" + json.dumps({"name": name, "raised": raised, "xcom": ti.xcom, "master": spark.sparkContext.master,
                                  "partitions": spark.conf.get("spark.sql.shuffle.partitions")}, default=str))
missing = PoisonCheckOperator(task_id="validate", data_path=f"{root}/absent.parquet", profile=profile, engine="spark")
ti = TI()
try:
    missing.execute({"ti": ti})
except PoisonCheckInputError as exc:
    print("RESULT:" + json.dumps({"name": "missing", "raised": str(exc), "xcom": ti.xcom}, default=str))
"""


@pytest.mark.skipif(importlib.util.find_spec("airflow") is None, reason="Apache Airflow is not installed")
def test_airflow_operator_on_spark_fails_a_flipped_batch_and_writes_parquet(tables, tmp_path):
    """The operator's execute in a fresh process (Airflow configures logging on import; its own JVM):
    the same record keys and failure semantics as the pandas path, parquet datasets as outputs."""
    import pandas as pd

    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow_home"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               AIRFLOW_CONN_POISON_SPARK=json.dumps({"conn_type": "spark", "host": "local[2]", "extra": {
                   "spark.sql.shuffle.partitions": "3", "spark.ui.enabled": "false", "deploy-mode": "client"}}))
    proc = subprocess.run([sys.executable, "-c", OPERATOR_RUN, str(tables["root"]), tables["profile"],
                           json.dumps(only_label_consistency())],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    runs = {r["name"]: r for r in (json.loads(line[len("RESULT:"):]) for line in proc.stdout.splitlines()
                                   if line.startswith("RESULT:"))}
    flipped, clean = runs["flipped"], runs["clean"]
    assert flipped["raised"].startswith("POISONING DETECTED in") and clean["raised"] is None
    assert flipped["xcom"]["verdict"] == "poisoned" and clean["xcom"]["verdict"] == "passed"
    assert "expect_label_inconsistency_rate_to_be_at_most" in flipped["xcom"]["failed_expectations"]
    assert set(flipped["xcom"]) == {"poison_check", "verdict", "failed_expectations", "flagged_rows", "rows",
                                    "outputs", "error", "summary"}
    assert flipped["xcom"]["summary"]["engine"] == "spark" and flipped["xcom"]["rows"] == N_BATCH
    assert clean["master"] == "local[2]" and clean["partitions"] == "3"  # the connection's host and extras
    record = flipped["xcom"]["poison_check"]
    findings, quarantine = (pd.read_parquet(record["outputs"][name]) for name in ("findings", "quarantine"))
    accepted = pd.read_parquet(record["outputs"]["accepted"])
    assert len(findings) == N_BATCH and len(quarantine) == record["flagged_rows"] > 0
    assert len(accepted) + len(quarantine) == N_BATCH
    assert json.loads(Path(record["outputs"]["report"]).read_text())["summary"]["success"] is False
    assert clean["xcom"]["flagged_rows"] <= 0.02 * N_BATCH and not any(clean["xcom"]["outputs"].values())
    missing = runs["missing"]  # an input error: not retried, the record says so
    assert missing["xcom"]["verdict"] == "input_error" and "absent.parquet: not found" in missing["raised"]


def test_a_connection_names_the_master_and_explicit_settings_win():
    from poison_expectations.apps.airflow_spark import master_url, session_settings

    assert master_url("spark", "spark://head", 7077) == "spark://head:7077"
    assert master_url("spark", "head", 7077) == "spark://head:7077"  # a bare host of a spark connection
    assert master_url("spark", "yarn", None) == "yarn" and master_url("spark", "local[4]", None) == "local[4]"
    assert master_url("spark", None, None) is None
    assert session_settings("local[2]", {"spark.a": 1}, None) == ("local[2]", {"spark.a": "1"})
