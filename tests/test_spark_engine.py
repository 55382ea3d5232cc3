"""The Spark engine on local[2] with small tables: the same row scores as the
pandas engine against the same profile, the same exit code on a clean and a
flipped batch, and the CLI's parquet outputs. The session is conftest's `spark`."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

pytest.importorskip("pyspark")

from conftest import parquet_folder, trusted_and_batches  # noqa: E402

N_REF, N_BATCH = 1500, 600


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A trusted table, its profile, and a clean and a flipped batch (10% flips) as parquet folders."""
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.apps.jobs import job_config

    root = tmp_path_factory.mktemp("spark")
    ref, clean, flipped, mask = trusted_and_batches(N_REF, N_BATCH)
    ref.to_parquet(root / "ref.parquet", index=False)
    fit_job(root / "ref.parquet", job_config(None, label_column="label", id_column="row_id"), root / "ref.profile")
    return {"root": root, "profile": root / "ref.profile", "clean": clean, "flipped": flipped, "mask": mask,
            "clean_path": parquet_folder(clean, root / "clean"),
            "flipped_path": parquet_folder(flipped, root / "flipped")}


@pytest.fixture(scope="module")
def runs(spark, tables):
    """The Spark engine and the pandas engine on both batches, against the profile."""
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.engines.spark.run import flagged_frames, run_spark
    from poison_expectations.gx.runner import run_validation

    config = job_config(None, profile=str(tables["profile"]))
    out = {}
    for name in ("clean", "flipped"):
        outcome = run_spark(spark, str(tables[f"{name}_path"]), config)
        findings = flagged_frames(outcome)["findings"].toPandas()
        outcome.release()
        out[name] = (outcome, findings, run_validation(tables[name], config))
    return out


def test_the_batch_spans_several_partitions(spark, tables):
    assert spark.read.parquet(str(tables["clean_path"])).rdd.getNumPartitions() >= 2


@pytest.mark.parametrize("name", ["clean", "flipped"])
def test_row_scores_agree_with_the_pandas_engine(runs, name):
    outcome, findings, pandas_run = runs[name]
    merged = pandas_run.findings.merge(findings, on="row_id", suffixes=("_pandas", "_spark"))
    assert len(merged) == N_BATCH == outcome.rows
    # label consistency and influence score a batch row with one of their fold models drawn by the
    # row's position in the scored table: in Spark the position in its Arrow chunk, so another fold
    # model may score it (documented in engines/spark/__init__.py); outliers are the same computation
    for signal, floor in (("label_consistency", 0.97), ("influence", 0.99), ("outlier", 0.99)):
        rho = spearmanr(merged[f"{signal}_score_pandas"], merged[f"{signal}_score_spark"]).statistic
        assert rho >= floor, (signal, rho)
    assert np.allclose(merged["outlier_score_pandas"], merged["outlier_score_spark"])


def test_pvalues_are_the_conformal_ranks_of_the_scores(runs, tables):
    """Each row's p-value lies in its conformal interval [above, above + equal + 1] / (n + 1)
    among the trusted rows' reference scores (its class's, for label consistency): only the
    random tie-break U_j, drawn per partition, is left to chance."""
    outcome, findings, _ = runs["flipped"]
    profile = outcome.plan.profile()
    codes = pd.Index(list(profile.classes)).get_indexer(tables["flipped"].set_index("row_id")
                                                        .loc[findings["row_id"], "label"])
    from poison_expectations.engines.spark.scoring import class_conditional, make_signal

    for section, params in outcome.plan.signals:
        signal = make_signal(section, params)
        ref = profile.states[signal.cache_key()]["reference_scores"]
        name, by_class = signal.name, class_conditional(signal, labelled=True)
        for row, (score, p) in enumerate(zip(findings[f"{name}_score"], findings[f"{name}_p"], strict=True)):
            mine = ref[profile.table.y == codes[row]] if by_class else ref
            above, equal = int((mine > score).sum()), int((mine == score).sum())
            assert above / (len(mine) + 1) <= p <= (above + equal + 1) / (len(mine) + 1), (name, row)


def test_same_exit_code_as_the_pandas_engine(runs, tables):
    clean, flipped = runs["clean"][0], runs["flipped"][0]
    assert clean.success and runs["clean"][2].success
    assert not flipped.success and not runs["flipped"][2].success
    assert clean.flagged <= 0.02 * N_BATCH
    flagged = runs["flipped"][1].set_index("row_id")["flagged"]
    truth = pd.Series(tables["mask"], index=tables["flipped"]["row_id"])
    hits = int((flagged & truth.reindex(flagged.index)).sum())
    assert hits >= 0.6 * truth.sum() and hits >= 0.8 * flagged.sum()  # BH at 10%: most flags are flips


def test_a_gx_checkpoint_on_a_spark_dataframe_asset_fails_like_the_pandas_one(spark, tables):
    """The per-row families' expectations on a Spark asset (gx/metrics/spark.py:
    read from one Spark engine run): the same successes, and about the same
    rows flagged (BH over p-values whose tie-breaks are other draws)."""
    import great_expectations as gx

    import poison_expectations.gx.register  # noqa: F401
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES
    from poison_expectations.gx.runner import build_expectations, ephemeral_context, run_checkpoint

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES
           if f.section not in ("label_consistency", "outliers", "influence")}
    config = job_config(None, profile=str(tables["profile"]), overrides=off)
    for name, passes in (("clean", True), ("flipped", False)):
        context = ephemeral_context()
        batch = (context.data_sources.add_spark("spark", persist=False).add_dataframe_asset("batch")
                 .add_batch_definition_whole_dataframe("whole"))
        suite = context.suites.add(gx.ExpectationSuite(name="s", expectations=build_expectations(config)))
        validation = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(name="c", validation_definitions=[validation]))
        on_spark = checkpoint.run(batch_parameters={"dataframe": spark.createDataFrame(tables[name])})
        on_pandas = run_checkpoint(tables[name], build_expectations(config))
        counts = [{r.expectation_config.type: (r.success, r.result.get("unexpected_count"))
                   for r in next(iter(result.run_results.values())).results} for result in (on_spark, on_pandas)]
        assert on_spark.success == on_pandas.success == passes, counts
        assert len(counts[0]) == 3
        for expectation, (success, flagged) in counts[0].items():
            assert success == counts[1][expectation][0]
            assert abs(flagged - counts[1][expectation][1]) <= max(3, 0.1 * counts[1][expectation][1]), counts


def _cli(*args):
    from click.testing import CliRunner

    from poison_expectations.apps.cli import main

    return CliRunner().invoke(main, ["validate", *map(str, args), "--engine", "spark"])


def test_cli_writes_parquet_datasets_at_one_commit_point(spark, tables, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings").mkdir()  # an earlier run's dataset is replaced
    (out / "findings" / "stale.parquet").write_bytes(b"old")
    result = _cli(tables["flipped_path"], "--profile", tables["profile"], "--findings", out / "findings",
                  "--accepted", out / "accepted", "--quarantine", out / "quarantine", "--report", out / "r.json")
    assert result.exit_code == 1, result.output
    assert "FAILED (spark)" in result.output and "collision: Higher Criticism" in result.output
    assert "near_duplicate: " in result.output  # a batch family (engines/spark/batch.py)
    findings = pd.read_parquet(out / "findings")
    accepted, quarantine = pd.read_parquet(out / "accepted"), pd.read_parquet(out / "quarantine")
    assert not (out / "findings" / "stale.parquet").exists()
    assert len(findings) == N_BATCH and set(findings["row_id"]) == set(tables["flipped"]["row_id"])
    assert len(quarantine) == findings["flagged"].sum() > 0 and len(accepted) + len(quarantine) == N_BATCH
    assert list(accepted.columns) == list(tables["flipped"].columns)
    assert {"poison_score", "reasons"} <= set(quarantine.columns) and quarantine["reasons"].str.len().min() > 0
    assert sorted(p.name for p in out.iterdir()) == ["accepted", "findings", "quarantine", "r.json"]  # no staging


def test_cli_input_errors_exit_2_before_scoring(spark, tables, tmp_path):
    missing = _cli(tables["clean_path"], "--label", "nope", "--id-column", "row_id")
    assert missing.exit_code == 2 and "label column 'nope' not found" in missing.output
    assert _cli(tmp_path / "absent.parquet", "--label", "label").exit_code == 2
    (tmp_path / "taken").write_text("x")
    taken = _cli(tables["clean_path"], "--profile", tables["profile"], "--findings", tmp_path / "taken")
    assert taken.exit_code == 2 and "is a file" in taken.output


def test_an_input_error_inside_a_task_is_one_line_on_the_driver(spark, runs, tables):
    """A row only a later partition holds (an unseen label) fails in a task; the
    driver reports it as the task's InputError (exit 2), not a Java stack trace."""
    from poison_expectations.core.errors import InputError
    from poison_expectations.engines.spark.engine import score
    from poison_expectations.engines.spark.run import executor_error

    bad = tables["clean"].copy()
    bad.loc[N_BATCH - 1, "label"] = 7
    with pytest.raises(Exception) as info:
        score(spark.createDataFrame(bad), runs["clean"][0].plan).count()
    error = executor_error(info.value)
    assert isinstance(error, InputError) and "value 7 is not among the profile's classes" in str(error)
    assert "\n" not in str(error)


def test_self_check_without_an_id_column_numbers_the_rows_in_file_order(spark, tables):
    """row_index is the position in Spark's reading order: the file's order for one file
    (for a folder Spark orders the files by size: a numbering, not the names' order)."""
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.engines.spark.run import run_spark

    one_file = tables["root"] / "clean.parquet"
    tables["clean"].to_parquet(one_file, index=False)
    config = job_config(None, label_column="label", feature_columns=[f"f{i}" for i in range(10)])
    outcome = run_spark(spark, str(one_file), config, sample_rows=400)
    scored = outcome.scored.select("row_index", "row_id").toPandas().sort_values("row_index")
    outcome.release()
    assert outcome.mode.startswith("self-check") and "400 of 600" in outcome.mode
    assert scored["row_index"].tolist() == list(range(N_BATCH))
    assert scored["row_id"].tolist() == tables["clean"]["row_id"].tolist()


def test_intermediate_tables_persist_at_the_configured_level(spark):
    """Local disk unless `spark.poison.persist` says otherwise; a level Spark
    does not know is a one-line input error."""
    from pyspark import StorageLevel

    from poison_expectations.core.errors import InputError
    from poison_expectations.engines.spark.storage import CONF_KEY, persisted

    frame = spark.range(10)
    try:
        assert persisted(frame).storageLevel == StorageLevel.DISK_ONLY
        frame.unpersist()
        spark.conf.set(CONF_KEY, "memory_and_disk")
        assert persisted(frame).storageLevel == StorageLevel.MEMORY_AND_DISK
        frame.unpersist()
        spark.conf.set(CONF_KEY, "IN_THE_CLOUD")
        with pytest.raises(InputError, match="spark.poison.persist=IN_THE_CLOUD: not a Spark storage level"):
            persisted(frame)
    finally:
        spark.conf.unset(CONF_KEY)
        frame.unpersist()
