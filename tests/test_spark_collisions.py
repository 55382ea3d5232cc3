"""Clean-label collisions on the Spark engine (engines/spark/collisions.py):
groups from a grid join of distinct rows, judged by the core's
`judge_groups`, against a profile; beside the pandas engine on the same
tables. A planted collision flags the same group rows on both engines, a
clean batch and titanic-like repeated rows flag none. conftest's `spark`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from conftest import parquet_folder  # noqa: E402
from test_backdoor import confident_collision, repeated_rows  # noqa: E402

RUN = ("clean_label_collision",)  # its per-row part is the per-row pass: no other family needed


def _config(**data):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section not in RUN}
    return job_config(None, label_column="label", id_column="row_id", overrides=off, **data)


def _profile(root, name, reference):
    from poison_expectations.apps.fit import fit_job

    reference.to_parquet(root / f"{name}.parquet", index=False)
    fit_job(root / f"{name}.parquet", _config(), root / f"{name}.profile")
    return root / f"{name}.profile"


def _both(spark, root, name, profile, batch):
    """(Spark outcome, its collision columns by row_id, the pandas run) of one batch against a profile."""
    from poison_expectations.engines.spark.run import run_spark
    from poison_expectations.gx.runner import run_validation

    config = _config(profile=str(profile))
    outcome = run_spark(spark, str(parquet_folder(batch, root / name)), config)
    rows = outcome.scored.select("row_id", "collision_member_flagged", "collision_member_reason",
                                 "collision_member_score", "collision_score").toPandas().set_index("row_id")
    outcome.release()
    return outcome, rows, run_validation(batch, config, after_run=False)


def _batch_scores(batch, profile_path):
    """The pandas engine's `batch_scores` of the collision signal against the profile, by row_id."""
    from poison_expectations.core.analysis import build_analysis
    from poison_expectations.core.params import CLEAN_LABEL_COLLISION
    from poison_expectations.core.signals.collision import CleanLabelCollision
    from poison_expectations.engines.spark.engine import roles_options
    from poison_expectations.engines.spark.params import family_params
    from poison_expectations.stores.profiles import load_profile

    roles, options = roles_options(_config())
    analysis = build_analysis(batch, roles, options, profile=load_profile(profile_path))
    signal = CleanLabelCollision(**family_params(_config(), CLEAN_LABEL_COLLISION))
    return pd.Series(signal.batch_scores(analysis.state_for(signal), analysis), index=batch["row_id"])


@pytest.fixture(scope="module")
def runs(spark, one_split_per_file, tmp_path_factory):
    from poison_expectations import testing

    root = tmp_path_factory.mktemp("collisions")
    clean, poisoned = confident_collision()
    reference = testing.make_tabular(2000, n_classes=2, random_state=106, distribution_seed=6)
    out = {"truth": pd.Series(poisoned.is_poison, index=poisoned.frame["row_id"]), "details": poisoned.details}
    profile, titanic = _profile(root, "reference", reference), _profile(root, "titanic", repeated_rows(1500, 2))
    out["profiles"] = {"collided": profile, "clean": profile, "repeated": titanic}
    for name, batch in (("collided", poisoned.frame), ("clean", clean), ("repeated", repeated_rows(1500, 1))):
        out[name] = _both(spark, root, name, out["profiles"][name], batch)
    return out


def test_a_planted_collision_flags_the_pandas_engines_group_rows(runs):
    outcome, rows, pandas_run = runs["collided"]
    result = pandas_run.results["collision"]
    pandas_flags = pd.Series(result.flags, index=pandas_run.findings["row_id"])
    spark_flags = rows["collision_member_flagged"].reindex(pandas_flags.index)
    assert pandas_flags.sum() >= 5 and runs["truth"].reindex(pandas_flags.index)[pandas_flags].all()
    assert (spark_flags == pandas_flags).all(), (spark_flags.sum(), pandas_flags.sum())
    pandas_scores = pd.Series(result.scores, index=pandas_flags.index)  # the groups' unlike shares
    assert np.allclose(rows["collision_member_score"].reindex(pandas_scores.index), pandas_scores)
    gate = outcome.gates["collision"]
    found = gate["collision_groups"]
    assert [(g["label"], g["looks_like"], g["rows"]) for g in found] == [
        (g["label"], g["looks_like"], g["rows"]) for g in result.summary["groups"]]
    assert {g["label"] for g in found} == {runs["details"]["poison_label"]}
    assert "collision group" in gate["line"] and rows.loc[spark_flags.index[spark_flags], "collision_member_reason"
                                                          ].str.startswith("clean-label collision").all()
    assert outcome.flagged >= spark_flags.sum()  # group rows join the flagged set besides BH


@pytest.mark.parametrize("name", ["collided", "clean", "repeated"])
def test_the_collision_gate_decides_as_on_the_pandas_engine(runs, name):
    """The gate is Higher Criticism over the rows' class-conditional conformal
    p-values of `batch_scores` on both engines (not the group test); the
    scores are equal (the p-values' tie-breaks differ: the shares of k
    neighbours tie a lot)."""
    outcome, rows, pandas_run = runs[name]
    pandas_gate = next(e for e in pandas_run.expectations if e.signal == "collision")
    assert outcome.gates["collision"]["failed"] == (not pandas_gate.success)
    scores = _batch_scores(pandas_run.data, runs["profiles"][name])
    assert np.allclose(rows["collision_score"].reindex(scores.index), scores)


@pytest.mark.parametrize("name", ["clean", "repeated"])
def test_no_collision_in_a_clean_batch_or_repeated_rows(runs, name):
    outcome, rows, pandas_run = runs[name]
    assert not rows["collision_member_flagged"].any()
    assert outcome.gates["collision"]["collision_groups"] == []
    assert pandas_run.results["collision"].summary["groups"] == []
    if name == "repeated":  # identical rows of one label are tight groups: judged, not found
        assert outcome.gates["collision"]["candidate_groups"] > 0


def test_a_partition_forest_keeps_the_components_of_the_close_pairs():
    """A chain of 2,500 nodes in one cell (distance blocks) stays one tree, a far node of
    that cell stays alone; of two small cells one holds a close pair, the other none."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from poison_expectations.engines.spark import collisions

    chain = np.concatenate([np.cumsum(np.full((2500, 2), 0.3), axis=0), [[1e4, 1e4]]])
    X = np.concatenate([chain, [[0, 50], [0, 50.4], [9, 50], [9, 51]]])
    order = np.random.default_rng(0).permutation(len(X))
    frame = pd.DataFrame({"nd_key": order * 7, "nd_vec": list(X[order].astype(np.float32)),
                          "c0": np.r_[np.zeros(2501), 1, 1, 2, 2].astype(np.int64)[order],
                          "cl_rows": order + 1})
    forest = pd.concat(collisions._partition_forest(0.5, "c0", iter([frame[:1000], frame[1000:]])))
    assert len(forest) == 2499 + 1  # one edge a linked node: the chain's tree and the close small pair
    assert (forest["nu"] == forest["u"] // 7 + 1).all() and (forest["nv"] == forest["v"] // 7 + 1).all()
    graph = coo_matrix((np.ones(len(forest)), (forest["u"] // 7, forest["v"] // 7)), shape=(len(X), len(X)))
    _, component = connected_components(graph, directed=False)
    assert len(set(component[:2500])) == 1 and component[2501] == component[2502]
    assert len(set(component)) == 1 + 1 + 1 + 2  # the chain, the far node, the close pair, two apart


def test_collisions_run_with_a_trusted_side_and_are_skipped_in_a_self_check():
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.engines.spark.engine import plan_signals

    config = job_config(None, label_column="label")
    run, skipped, _ = plan_signals(config, labelled=True)
    assert "clean_label_collision" not in dict(run)
    assert [s for s in skipped if s.startswith("clean_label_collision (") and "--profile" in s]
    config["data"]["profile"] = "trusted.profile"
    run, skipped, _ = plan_signals(config, labelled=True)
    assert "clean_label_collision" in dict(run) and not skipped
