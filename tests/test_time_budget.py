"""Issue 17, item 6: `limits.max_seconds`. A run estimated over the budget is
refused before the signals start (exit 2, one line, nothing written); the
wall-clock budget is checked again between signals; null means no budget."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_hardening import FAST, assert_clean_failure, make_table, validate

from poison_expectations.core import cost
from poison_expectations.core.errors import InputError
from poison_expectations.gx import runner


def _config(tmp_path: Path, body: str, budget) -> Path:
    path = tmp_path / "budget.yml"
    path.write_text(body + f"limits:\n  max_seconds: {budget}\n", encoding="utf-8")
    return path


def _many_classes(path: Path, rows: int = 3000, classes: int = 40) -> Path:
    """Hostile for the label model: 40 classes make 40 trees per boosting
    round, 20,000 trees over 5 folds (label consistency alone ran 17 s on
    2,000 such rows at load ~2 when measured)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, rows)
    frame = pd.DataFrame(rng.normal(size=(rows, 8)) + rng.normal(size=(classes, 8))[y],
                         columns=[f"f{i}" for i in range(8)])
    frame.insert(0, "row_id", np.arange(rows))
    frame["label"] = y
    frame.to_csv(path, index=False)
    return path


def test_a_run_estimated_over_the_budget_is_refused_before_the_signals_start(tmp_path, monkeypatch):
    data = _many_classes(tmp_path / "classes.csv")
    monkeypatch.setattr(runner, "compute_signals", lambda *a, **k: pytest.fail("the signals started"))
    budget = 10
    started = time.perf_counter()
    result, paths = validate(data, _config(tmp_path, "neighbors:\n  k: 5\n", budget), tmp_path)
    took = time.perf_counter() - started
    assert_clean_failure(result, paths, f"over limits.max_seconds={budget}")
    line = result.stderr.strip()
    assert "estimated at about" in line and "label_consistency" in line and "max_train_rows" in line, line
    assert took < budget / 2, took


def test_without_a_budget_the_run_goes_ahead(tmp_path):
    data = make_table(tmp_path / "t.csv")
    result, paths = validate(data, _config(tmp_path, FAST, "null"), tmp_path)
    assert result.exit_code in (0, 1), result.stderr
    assert all(p.exists() for p in paths.values())


def test_a_budget_the_run_fits_in_lets_it_run(tmp_path):
    data = make_table(tmp_path / "t.csv")
    result, paths = validate(data, _config(tmp_path, FAST, 300), tmp_path)
    assert result.exit_code in (0, 1), result.stderr
    assert all(p.exists() for p in paths.values())


def test_the_budget_is_checked_again_between_signals_and_nothing_is_written(tmp_path, monkeypatch):
    """An estimate that was wrong (here: none at all) is caught by the clock
    before the next signal; the outputs are staged later, so none exists."""
    monkeypatch.setattr(runner, "ensure_time", lambda *a, **k: None)
    data = make_table(tmp_path / "t.csv")
    result, paths = validate(data, _config(tmp_path, FAST, "0.000001"), tmp_path)
    assert_clean_failure(result, paths, "limits.max_seconds=1e-06 exceeded after")


def test_a_budget_must_be_positive(tmp_path):
    result, paths = validate(make_table(tmp_path / "t.csv"), _config(tmp_path, FAST, 0), tmp_path)
    assert_clean_failure(result, paths, "'limits.max_seconds'")


def _shape(rows=10_000, width=20, classes=2, reference=0, profile=False):
    """A batch of `rows`; with `reference` rows, against a reference table or (`profile`) a stored profile."""
    fitted = 0 if profile else reference or rows
    per_class = tuple([(reference or rows) // classes] * classes)
    return cost.Shape(batch_rows=rows, fitted_rows=fitted, reference_rows=reference, width=width,
                      class_counts=per_class, exact_max_rows=50_000, reference_graph=reference > 0 and not profile,
                      scoring_model=reference > 0 and not profile)


class _Signal:
    def __init__(self, name, **params):
        self.name, self.params = name, params


LABEL = _Signal("label_consistency", method="both", model="hgb", n_folds=5, max_train_rows=100_000)


def test_the_estimate_grows_with_rows_width_and_classes_and_shrinks_with_a_profile():
    def total(**shape):
        return sum(cost.estimate(_shape(**shape), [LABEL]).values())

    base = total()
    assert total(rows=40_000) > 3 * base
    assert total(width=200) > 2 * base
    assert total(classes=40) > 10 * base
    assert total(rows=1000, reference=10_000, profile=True) < total(rows=1000, reference=10_000)
    assert cost.label_model_seconds(_shape(rows=1000, reference=10_000, profile=True), LABEL.params) == 0.0
    assert cost.label_model_seconds(_shape(rows=1000, reference=10_000), LABEL.params) > 1.0  # folds + scoring
    knn_only = _Signal("label_consistency", method="knn", model="hgb", n_folds=5, max_train_rows=100_000)
    assert sum(cost.estimate(_shape(classes=40), [knn_only]).values()) < 0.1 * total(classes=40)


def test_the_refusal_names_the_estimate_the_budget_and_the_largest_step():
    with pytest.raises(InputError) as caught:
        cost.ensure_time({"neighbours": 1.0, "label_consistency": 50.0}, 2.0, 30)
    message = str(caught.value)
    assert "about 53 s" in message and "label_consistency 50 s" in message and "limits.max_seconds=30" in message
    cost.ensure_time({"label_consistency": 50.0}, 2.0, None)  # no budget: never refused
    cost.ensure_time({"label_consistency": 20.0}, 2.0, 30)


def test_the_deadline_counts_from_the_start_of_the_run():
    deadline = cost.Deadline(5.0, start=time.perf_counter() - 6.0)
    with pytest.raises(InputError, match="exceeded after 6 s"):
        deadline.check("outlier")
    cost.Deadline(None, start=0.0).check("outlier")
    cost.Deadline(5.0).check("outlier")


def test_fitting_a_profile_over_the_budget_is_refused_and_writes_no_profile(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from poison_expectations.apps.cli import main
    from poison_expectations.core import fitting

    data = _many_classes(tmp_path / "classes.csv")
    monkeypatch.setattr(fitting, "ordered_by_inputs", lambda *a: pytest.fail("the fits started"))
    out = tmp_path / "p.zip"
    result = CliRunner().invoke(main, ["fit", str(data), "--label", "label", "--id-column", "row_id", "--config",
                                       str(_config(tmp_path, "", 10)), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert "over limits.max_seconds=10" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget.yml", "classes.csv"]
