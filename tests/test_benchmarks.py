"""The benchmark suite's own machinery: metrics, a tiny end-to-end quality
run (resumable), the speed child and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import report
from benchmarks.cases import DATASETS, poison
from benchmarks.quality import load, row_metrics, run_quality
from benchmarks.speed import child


def test_row_metrics_exact_values():
    truth = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.0, 0.05])
    flags = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    m = row_metrics(truth, scores, flags)
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["false_flag_rate"] == 0.25
    assert m["auroc"] == pytest.approx(0.875)  # 7 of 8 (poison, clean) pairs ordered right (0.2 < 0.8)
    clean = row_metrics(np.zeros(4, dtype=bool), np.zeros(4), np.zeros(4, dtype=bool))
    assert clean["auroc"] is None and clean["precision"] is None and clean["recall"] is None


def test_splits_keep_reference_apart_and_sources_skewed():
    split = DATASETS["breast_cancer"](0)
    assert len(split.batch) + len(split.reference) == 569
    assert not set(split.batch.row_id) & set(split.reference.row_id)
    shares = split.batch.source.value_counts(normalize=True)
    assert (shares <= 0.08).sum() >= 1  # the bad-source attack needs a small source
    poisoned = poison(split, "bad_source", 0.03)
    assert poisoned.n_poison == round(0.03 * len(split.batch))


def test_quality_run_detects_flips_and_resumes(tmp_path):
    path = tmp_path / "quality.json"
    modes = ["ours_self", "ours_ref"]
    records = run_quality(path, ["breast_cancer"], attacks=["random_flips"], rates=[0.10], clean_seeds=1,
                          modes=modes, log=lambda s: None)
    assert len(records) == 4  # (clean, flips) x 2 modes
    flips = [r for r in records if r["attack"] == "random_flips"]
    for r in flips:
        assert r["n_poison"] == 28
        assert r["signal_auroc"]["label_consistency"] > 0.95
        assert r["auroc"] > 0.85  # poison_score combines every signal the checkpoint runs
        if r["mode"] == "ours_self":  # against a 114-row reference BH at q = 0.1 may name no row
            assert r["recall"] > 0.7
    clean = [r for r in records if r["attack"] == "clean"]
    assert all(r["verdict"] == "pass" for r in clean)
    again = run_quality(path, ["breast_cancer"], attacks=["random_flips"], rates=[0.10], clean_seeds=1,
                        modes=modes, log=lambda s: None)
    assert len(again) == 4 and len(load(path)) == 4  # nothing re-run


def test_cleanlab_baseline_scores_flips():
    pytest.importorskip("cleanlab")
    from benchmarks.cleanlab_baseline import run_cleanlab

    split = DATASETS["wine"](0)
    poisoned = poison(split, "random_flips", 0.10)
    out = run_cleanlab(poisoned.frame)
    assert out["scores"].shape == (len(poisoned.frame),)
    assert set(out["issue_scores"]) == {"label", "near_duplicate", "outlier"}
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(poisoned.is_poison, out["scores"]) > 0.8


def test_speed_child_reports_time_memory_and_breakdown():
    record = child("ours", 1500, "tabular")
    assert record["rows"] == 1500 and record["features"] == 20
    assert record["peak_rss_mb"] >= record["rss_before_mb"] > 0
    assert "label_consistency" in record["timings"] and record["wall_s"] > 0
    assert record["auroc"] > 0.8


def test_report_marks_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(report, "PLOTS_DIR", tmp_path / "plots")
    base = {"dataset": "d", "rate": 0.03, "seed": 0, "n_rows": 100, "n_poison": 3, "precision": 1.0,
            "recall": 1.0, "false_flag_rate": 0.0, "auprc": 0.9, "wall_s": 1.0, "timings": {}, "verdict": "FAIL",
            "signal_auroc": {"label_consistency": 0.99}}
    records = [dict(base, attack="random_flips", mode="ours_self", auroc=0.99),
               dict(base, attack="random_flips", mode="cleanlab", auroc=0.97, verdict=None),
               dict(base, attack="backdoor", mode="ours_self", auroc=0.90),
               dict(base, attack="backdoor", mode="cleanlab", auroc=0.93, verdict=None)]
    (tmp_path / "quality.json").write_text(json.dumps(records))
    load_avg = {"load_before": [1.0, 1.0, 1.0], "load_after": [1.2, 1.0, 1.0]}
    speed = [dict(load_avg, tool="ours", rows=1_000_000, kind="tabular", features=20, wall_s=200.0,
                  peak_rss_mb=3000, timings={"label_consistency": 150.0, "total": 200.0}),
             dict(load_avg, tool="ours", rows=100_000, kind="tabular", features=20, wall_s=10.0, peak_rss_mb=500,
                  timings={}),
             dict(load_avg, tool="cleanlab", rows=100_000, kind="tabular", features=20, wall_s=60.0,
                  peak_rss_mb=900, timings={})]
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    text = report.render()
    targets = text.split("## Targets")[1].split("##")[0]
    assert "200 s, 2.93 GB" in targets and "MISSED" in targets.splitlines()[4]  # 200 s > 180 s
    assert "6.0x" in targets and "| met" in [line for line in targets.splitlines() if "5x faster" in line][0]
    backdoor_line = [line for line in targets.splitlines() if line.startswith("| backdoor")][0]
    assert "MISSED" in backdoor_line  # 0.90 < cleanlab's 0.93 and < 0.95
    flips_line = [line for line in targets.splitlines() if line.startswith("| random_flips")][0]
    assert "met" in flips_line
    assert (tmp_path / "plots" / "auroc_by_attack.png").exists()
    assert (tmp_path / "plots" / "speed_memory.png").exists()
