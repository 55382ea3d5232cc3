"""Near duplicates and per-source tests on the Spark engine (engines/spark/
near_duplicates.py, sources.py), against a profile, beside the pandas engine
on the same tables: a flood of exact and near copies fails near duplicates
on both, a clean batch passes, the near-duplicate row flags agree, and a
source whose labels were flipped is named by both. conftest's `spark`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from conftest import make_separable  # noqa: E402

N_REF, N_BATCH, N_SOURCES = 1500, 600, 15
OFF = ("spectral_signatures", "feature_clustering", "trigger_patterns", "clean_label_collision", "influence")


def _config(**kwargs) -> dict:
    from poison_expectations.apps.jobs import job_config

    config = job_config(None, **kwargs)
    for section in OFF:  # families neither engine needs here (the Spark engine skips them anyway)
        config["expectations"][section]["enabled"] = False
    return config


def _poisoned(clean: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A near-copy flood (5%), 3 x 8 exact copies with new ids, and one source's labels flipped."""
    from poison_expectations.testing.floods import near_duplicate_flood
    from poison_expectations.testing.sources import bad_source

    bad = bad_source(clean, rate=0.05, id_column="row_id", random_state=3)
    frame = near_duplicate_flood(bad.frame, rate=0.05, id_column="row_id", random_state=1).frame
    seeds = frame.iloc[[5, 50, 500]]
    copies = pd.concat([seeds.assign(row_id=seeds["row_id"] + 100_000 * (j + 1)) for j in range(8)])
    return pd.concat([frame, copies], ignore_index=True), str(bad.details["bad_sources"][0])


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    from poison_expectations.apps.fit import fit_job
    from poison_expectations.engines.spark.run import flagged_frames, run_spark
    from poison_expectations.gx.runner import run_validation

    root = tmp_path_factory.mktemp("spark_batch")
    full, _ = make_separable(n=N_REF + N_BATCH, seed=0)
    full["source"] = np.array([f"s{i % N_SOURCES:02d}" for i in range(len(full))])
    ref, clean = full.iloc[:N_REF].reset_index(drop=True), full.iloc[N_REF:].reset_index(drop=True)
    ref.to_parquet(root / "ref.parquet", index=False)
    fit_job(root / "ref.parquet", _config(label_column="label", id_column="row_id", source_column="source"),
            root / "ref.profile")
    config = _config(profile=str(root / "ref.profile"))
    poisoned, bad = _poisoned(clean)
    out = {"bad": bad}
    for name, frame in (("clean", clean), ("poisoned", poisoned)):
        frame.to_parquet(root / f"{name}.parquet", index=False)
        outcome = run_spark(spark, str(root / f"{name}.parquet"), config)
        findings = flagged_frames(outcome)["findings"].toPandas()
        outcome.release()
        out[name] = (outcome, findings, run_validation(frame, config, after_run=False))
    return out


def _near_gate_failed(pandas_run) -> bool:
    return any("near_duplicate" in name for name in pandas_run.failed_expectations())


def test_flood_fails_near_duplicates_on_spark_as_on_pandas(runs):
    outcome, _, pandas_run = runs["poisoned"]
    gate = outcome.gates["near_duplicate"]
    assert gate["failed"] and gate["p_value"] <= gate["alpha"], gate
    assert _near_gate_failed(pandas_run)
    assert not outcome.success and "near_duplicates" not in " ".join(outcome.skipped)


def test_clean_batch_passes_near_duplicates_and_sources(runs):
    outcome, findings, pandas_run = runs["clean"]
    assert not outcome.gates["near_duplicate"]["failed"], outcome.gates["near_duplicate"]
    assert not outcome.gates["sources"]["failed"]
    assert not _near_gate_failed(pandas_run)
    assert findings["near_duplicate_p"].between(0, 1).all()


def test_near_duplicate_row_flags_agree_with_pandas(runs):
    """BH at q over the near-duplicate p-values alone, on each engine: the
    flood's copies are flagged by both (the grid misses some pairs, the
    tie-breaks differ)."""
    from poison_expectations.core.verdicts.fdr import benjamini_hochberg

    _, findings, pandas_run = runs["poisoned"]
    merged = pandas_run.findings.merge(findings, on="row_id", suffixes=("_pandas", "_spark"))
    assert len(merged) == len(findings)
    flags = {side: benjamini_hochberg(merged[f"near_duplicate_p_{side}"].to_numpy(), 0.1)[0]
             for side in ("pandas", "spark")}
    both, either = (flags["pandas"] & flags["spark"]).sum(), (flags["pandas"] | flags["spark"]).sum()
    assert flags["pandas"].sum() >= 30 and both / either >= 0.8, (both, either, flags["spark"].sum())


def test_a_poisoned_source_is_named_on_spark_as_on_pandas(runs):
    """The flipped source, and the source whose rows were copied 24 times
    (its near-duplicate p-values), on both engines."""
    outcome, findings, pandas_run = runs["poisoned"]
    gate = outcome.gates["sources"]
    assert sorted(gate["suspicious_sources"]) == sorted(pandas_run.results["sources"].summary["suspicious_sources"])
    assert runs["bad"] in gate["offending_sources"] and gate["failed"]
    named = findings["reasons"].str.contains(f"source '{runs['bad']}'")
    assert named.sum() == int(pandas_run.data["source"].eq(runs["bad"]).sum())


def test_an_empty_cell_partition_yields_no_pairs():
    """Hashing a table with few distinct rows by grid cell leaves partitions empty: no pairs, no error."""
    from poison_expectations.engines.spark.near_duplicates import _partition_pairs

    assert list(_partition_pairs(1.0, "c0", iter([]))) == []


def _per_cell_pairs(frame: pd.DataFrame, grid: str, radius: float) -> set[tuple[int, int]]:
    """The former per-cell body, the reference: one full distance matrix per shared cell."""
    from poison_expectations.engines.spark.cells import within
    from poison_expectations.engines.spark.near_duplicates import KEY, VEC

    found = set()
    for _, cell in frame[frame[grid].duplicated(keep=False)].groupby(grid, sort=False):
        X = np.stack(cell[VEC].to_numpy()).astype(np.float64)
        keys, first = cell[KEY].to_numpy(np.int64), cell["c0"].to_numpy(np.int64)
        iu, iv = np.nonzero(np.triu(within(X, X, radius), k=1))
        keep = first[iu] != first[iv] if grid == "c1" else np.ones(len(iu), dtype=bool)
        found |= set(zip(keys[iu[keep]].tolist(), keys[iv[keep]].tolist(), strict=True))
    return found


def test_partition_pairs_are_the_per_cell_pairs():
    """The vectorised cell body finds exactly the pairs one distance matrix per
    cell finds, on both grids: thousands of small cells, a cell above
    SMALL_CELL, a c0 cell and a c1 cell above BLOCK, exact copies under distinct keys."""
    from poison_expectations.engines.spark.cells import BLOCK, SMALL_CELL
    from poison_expectations.engines.spark.near_duplicates import KEY, VEC, _partition_pairs, grid_cells

    rng = np.random.default_rng(0)
    radius, width = 0.5, 1.0
    X = np.concatenate([rng.uniform(0, 12, (6000, 3)),  # ~3.5 rows a cell
                        rng.uniform(0.05, 0.95, (1500, 3)) + 20,  # one c0 cell (8 c1 cells)
                        rng.uniform(0.55, 1.45, (1400, 3)) + 30,  # one c1 cell (8 c0 cells)
                        rng.uniform(0.05, 0.95, (300, 3)) + 40]).astype(np.float32)
    X = np.concatenate([X, X[rng.choice(len(X), 200, replace=False)]])  # exact copies (another key each)
    keys = rng.integers(-2 ** 62, 2 ** 62, len(X))
    assert len(np.unique(keys)) == len(X)
    frame = pd.DataFrame({KEY: keys, VEC: list(X), "c0": grid_cells(X, width, 0.0), "c1": grid_cells(X, width, 0.5)})
    for grid in ("c0", "c1"):
        counts = frame[grid].value_counts()
        assert counts.max() > BLOCK and counts.between(2, 5).sum() > 500
        assert grid == "c1" or counts.between(SMALL_CELL + 1, BLOCK).any()
        shuffled = frame.sample(frac=1.0, random_state=1)
        parts = [shuffled.iloc[i::3] for i in range(3)]  # the rows of a cell in several chunks
        found = pd.concat(list(_partition_pairs(radius, grid, iter(parts))), ignore_index=True)
        expected = _per_cell_pairs(pd.concat(parts, ignore_index=True), grid, radius)
        pairs = list(zip(found["u"].tolist(), found["v"].tolist(), strict=True))
        assert len(pairs) == len(set(pairs)) and set(pairs) == expected and len(expected) > 100_000
    assert list(_partition_pairs(radius, "c0", iter([frame.iloc[:1]]))) == []
