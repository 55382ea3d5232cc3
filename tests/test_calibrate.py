"""`poison-check calibrate`: limits from trusted data keep false alarms on fresh
clean batches at or below 1%, and make the check sharper on clean data."""

from __future__ import annotations

import re
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from poison_expectations.apps.calibrate import calibrate
from poison_expectations.core.config import full_spec, load_config
from poison_expectations.core.gates import calibrated_rate_limit, dispersion_index
from poison_expectations.apps.jobs import job_config, run_job
from poison_expectations.core.registry import families
from poison_expectations.gx.runner import prepare_analysis, build_expectations

BATCHES = 100


def _population(rows: int, flip_y: float, class_sep: float, seed: int = 0) -> pd.DataFrame:
    """One fixed distribution; disjoint slices are fresh samples from it."""
    X, y = make_classification(n_samples=rows, n_features=8, n_informative=5, n_redundant=0, flip_y=flip_y,
                               class_sep=class_sep, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    frame["label"] = y
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _config():
    """Label consistency only (kNN: fast); other families calibrate in their own tests."""
    overrides = {f"expectations.{f.section}.enabled": False for f in families() if f.section != "label_consistency"}
    overrides["expectations.label_consistency.method"] = "knn"
    return job_config(None, label_column="label", overrides=overrides)


def _failures(config: dict, batches, flip: float = 0.0) -> int:
    """Batches the expectations fail, through the same `_validate` GX calls."""
    failed = 0
    for number, batch in enumerate(batches):
        frame = batch.reset_index(drop=True).copy()
        if flip:
            hit = np.random.default_rng(number).random(len(frame)) < flip
            frame.loc[hit, "label"] = 1 - frame.loc[hit, "label"]
        analysis = prepare_analysis(frame, config)
        ok = all(e._validate({e.metric_class.metric_name: analysis.result(e.signal())}, runtime_configuration={})
                 ["success"] for e in build_expectations(config))
        failed += not ok
    return failed


@pytest.mark.parametrize("trusted_rows, batch_rows", [(1000, None), (4000, 500)])
def test_fresh_clean_batches_false_alarm_at_most_1_percent(tmp_path, trusted_rows, batch_rows):
    size = batch_rows or trusted_rows
    population = _population(trusted_rows + BATCHES * size, flip_y=0.08, class_sep=1.0)
    trusted = tmp_path / "trusted.csv"
    population.iloc[:trusted_rows].to_csv(trusted, index=False)
    calibration = calibrate(trusted, _config(), batch_rows=batch_rows)
    (change,) = calibration.changes
    assert change[0] == "expectations.label_consistency.max_rate" and change[2] != change[1]
    batches = [population.iloc[trusted_rows + i * size: trusted_rows + (i + 1) * size] for i in range(BATCHES)]
    assert _failures(calibration.config, batches) <= BATCHES // 100


def test_calibration_sharpens_the_check_on_clean_data(tmp_path):
    population = _population(1000 + 20 * 1000, flip_y=0.0, class_sep=2.0, seed=3)
    trusted = tmp_path / "trusted.csv"
    population.iloc[:1000].to_csv(trusted, index=False)
    calibration = calibrate(trusted, _config())
    assert calibration.config["expectations"]["label_consistency"]["max_rate"] < 0.03
    batches = [population.iloc[1000 + i * 1000: 2000 + i * 1000] for i in range(20)]
    assert _failures(calibration.config, batches) == 0
    assert _failures(calibration.config, batches, flip=0.03) >= 18  # 3% flipped labels caught...
    assert _failures(_config(), batches, flip=0.03) == 0  # ...which the 10% default lets through


def test_rate_limit_margins():
    # both margins at 99.9%: Clopper-Pearson bound of 30/1000, then the binomial quantile of 1000 rows
    limit = calibrated_rate_limit(30, 1000, 1000)
    assert 0.03 + 2 * 3.09 * np.sqrt(0.03 * 0.97 / 1000) * 0.8 < limit < 0.075
    assert calibrated_rate_limit(30, 1000, 250) > limit  # smaller batches vary more
    assert calibrated_rate_limit(30, 1000, 1000, dispersion=3.0) > limit
    assert dispersion_index([10, 10, 10, 10], [500] * 4) == 1.0
    assert dispersion_index([2, 18, 3, 17], [500] * 4) > 4


def test_cli_writes_every_key_and_the_config_catches_what_the_default_misses(cli, tmp_path):
    start = tmp_path / "start.yml"
    start.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    out = tmp_path / "calibrated.yml"
    run = cli("calibrate", "sample_data/reference.csv", "--label", "label", "--id-column", "row_id",
              "--source-column", "source", "--config", start, "--out", out)
    assert run.returncode == 0, run.stderr
    assert re.search(r"expectations\.label_consistency\.max_rate: \S+ ->", run.stdout)  # the default: null
    text = out.read_text()
    assert text.startswith("# Calibrated by `poison-check calibrate`") and "label_consistency:" in text

    def keys(node, prefix=""):
        return {f"{prefix}{k}" for k, v in node.items()} | {
            key for k, v in node.items() if isinstance(v, dict) for key in keys(v, f"{prefix}{k}.")}

    assert keys(yaml.safe_load(text)) == keys(full_spec())  # every key written out
    calibrated = load_config(out)
    assert calibrated["data"]["label_column"] == "label" and calibrated["data"]["reference"] is None
    assert calibrated["expectations"]["label_consistency"]["max_rate"] < 0.06
    # self-check of the flipped sample: the default (no limit: report only) passes it, the calibrated limit does not
    poisoned = "sample_data/train_poisoned_flips.csv"
    default, _ = run_job(poisoned, job_config(start, label_column="label", id_column="row_id"))
    sharpened, _ = run_job(poisoned, calibrated)
    clean, _ = run_job("sample_data/train_clean.csv", calibrated)
    assert default.success and not sharpened.success and clean.success
