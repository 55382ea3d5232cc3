"""Spectral signatures and feature clustering on the Spark engine (split
conformal, engines/spark/structure*.py) against the pandas engine, on an
embedding backdoor (32 dense features, 5% of the rows shifted by a trigger
vector and relabelled) and a clean draw, with a profile. local[2] via
conftest's `spark`; small tables."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

pytest.importorskip("pyspark")

from conftest import parquet_folder  # noqa: E402

FAMILIES_RUN = ("outliers", "spectral_signatures", "feature_clustering")


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    emb = np.vstack(frame["emb"].to_numpy())
    out = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
    out.insert(0, "row_id", frame["row_id"].to_numpy())
    out["label"] = frame["label"].to_numpy()
    return out




def _config(**data):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.core.params import FAMILIES

    off = {f"expectations.{f.section}.enabled": False for f in FAMILIES if f.section not in FAMILIES_RUN}
    return job_config(None, label_column="label", id_column="row_id", overrides=off, **data)


@pytest.fixture(scope="module")
def structure_runs(spark, one_split_per_file, tmp_path_factory):
    """Both engines on a backdoored and a clean batch against one profile."""
    from poison_expectations import testing as attacks
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.engines.spark.run import flagged_frames, run_spark
    from poison_expectations.gx.runner import run_validation

    root = tmp_path_factory.mktemp("structure")
    poisoned, truth = attacks.make_embedding_backdoor()
    clean, _ = attacks.make_embedding_backdoor(poison=False, sample_seed=10)
    reference, _ = attacks.make_embedding_backdoor(poison=False, sample_seed=9, n=3000)
    _flat(reference).to_parquet(root / "ref.parquet", index=False)
    fit_job(root / "ref.parquet", _config(), root / "ref.profile")
    config = _config(profile=str(root / "ref.profile"))
    out = {}
    for name, frame in (("backdoor", _flat(poisoned)), ("clean", _flat(clean))):
        outcome = run_spark(spark, str(parquet_folder(frame, root / name)), config)
        findings = flagged_frames(outcome)["findings"].toPandas()
        halves = outcome.scored.select("row_id", "split_half", "spectral_group").toPandas()
        outcome.release()
        out[name] = (outcome, findings.merge(halves, on="row_id"), run_validation(frame, config), frame)
    out["truth"] = pd.Series(truth, index=_flat(poisoned)["row_id"])
    out["profile"] = root / "ref.profile"
    return out


@pytest.mark.parametrize("name", ["backdoor", "clean"])
def test_the_gates_decide_as_on_the_pandas_engine(structure_runs, name):
    outcome, _, pandas_run, _ = structure_runs[name]
    pandas_gates = {e.signal: e for e in pandas_run.expectations}
    for signal in ("spectral", "feature_clustering"):
        gate = outcome.gates[signal]
        assert gate["method"].endswith("Bonferroni over 2 split halves")
        assert gate["failed"] == (not pandas_gates[signal].success) == (name == "backdoor"), (signal, gate)
        if name == "backdoor":  # 75 poisoned rows: the bounds of both engines are of that size
            assert gate["lower_bound"] >= 40, gate
    assert outcome.success == pandas_run.success == (name == "clean")


def test_spectral_pvalues_rank_the_other_halfs_direction(structure_runs):
    """Each row's p-value lies in its conformal interval among the trusted rows of
    its class scored on the top direction of the OTHER half of its batch class,
    recomputed here in one process with the core's `_direction`: the distributed
    class sums give the core's direction, and no row scores itself."""
    from poison_expectations.core.analysis import build_analysis
    from poison_expectations.core.signals.representation import apply_representation
    from poison_expectations.core.signals.spectral import _direction
    from poison_expectations.engines.spark.scoring import make_signal
    from poison_expectations.stores.profiles import load_profile

    outcome, merged, _, frame = structure_runs["backdoor"]
    profile = load_profile(structure_runs["profile"])
    signal = make_signal("spectral_signatures", _planned("spectral_signatures"))
    rep = profile.states[signal.cache_key()]["representation"]

    analysis = build_analysis(frame, outcome.plan.roles, outcome.plan.options, profile=profile)
    R, y = apply_representation(rep, analysis.batch.X), analysis.batch.y
    R_ref, y_ref = apply_representation(rep, profile.table.X), np.asarray(profile.table.y)
    merged = merged.set_index("row_id").loc[frame["row_id"]]
    half = merged["split_half"].to_numpy()
    checked = 0
    for c in np.unique(y):
        for h in (0, 1):
            rows = np.flatnonzero((y == c) & (half == h))
            mean, v, _ = _direction(R[(y == c) & (half != h)])
            tau, tau_ref = ((R[rows] - mean) @ v) ** 2, ((R_ref[y_ref == c] - mean) @ v) ** 2
            p = merged["spectral_p"].to_numpy()[rows]
            above = (tau_ref[None, :] > tau[:, None] * (1 + 1e-5)).sum(axis=1)  # float32 rounding either way
            within = (tau_ref[None, :] >= tau[:, None] * (1 - 1e-5)).sum(axis=1)
            assert (above / (len(tau_ref) + 1) <= p + 1e-12).all() and (p <= (within + 1) / (len(tau_ref) + 1)).all()
            assert (merged["spectral_group"].to_numpy()[rows] == 2 * c + h).all()
            checked += len(rows)
    assert checked == len(frame) and 0.4 < half.mean() < 0.6


def _planned(section):
    from poison_expectations.engines.spark.engine import plan_signals

    _, _, batch = plan_signals(_config(), labelled=True)
    return dict(batch)[section]


def test_row_scores_agree_with_the_pandas_engine(structure_runs):
    """Spectral: tau on the whole batch class's top direction over the class's largest
    tau, as the pandas engine scores a class whose tail test separates (it scores
    the other classes 0). Feature clustering: the Spark score is the split pull
    that the p-value ranks; the pandas score marks its confirmed small cluster."""
    from sklearn.metrics import roc_auc_score

    _, merged, pandas_run, _ = structure_runs["backdoor"]
    both = pandas_run.findings.merge(merged, on="row_id", suffixes=("_pandas", "_spark"))
    scored = both["spectral_score_pandas"] > 0  # the separated class (the backdoor's target)
    assert scored.sum() >= 400
    rho = spearmanr(both.loc[scored, "spectral_score_pandas"], both.loc[scored, "spectral_score_spark"]).statistic
    assert rho >= 0.999, rho
    assert np.allclose(both.loc[scored, "spectral_score_pandas"], both.loc[scored, "spectral_score_spark"],
                       atol=1e-4)
    truth = structure_runs["truth"].reindex(both["row_id"]).to_numpy()
    for signal in ("spectral", "feature_clustering"):
        auc_spark = roc_auc_score(truth, -both[f"{signal}_p_spark"])
        auc_pandas = roc_auc_score(truth, -both[f"{signal}_p_pandas"])
        assert auc_spark >= auc_pandas - 0.02 and auc_spark >= 0.9, (signal, auc_spark, auc_pandas)
