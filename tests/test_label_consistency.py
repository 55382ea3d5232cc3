import numpy as np
import pytest

from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.errors import InputError
from poison_expectations.core.signals.label_consistency import LabelConsistency, class_thresholds, confident_issues

ROLES = Roles(label_column="label", id_column="row_id")


def _run(frame, method="both", reference=None, k=10):
    analysis = build_analysis(frame, ROLES, Options(k=k), reference)
    return analysis.result(LabelConsistency(method=method, k=k))


@pytest.mark.parametrize("method", ["knn", "model", "both"])
def test_detects_random_flips_on_separable_data(separable, method):
    frame, flipped = separable(n=3000, flip_rate=0.05, seed=4)
    result = _run(frame, method)
    assert result.flags[flipped].mean() >= 0.9
    assert result.flags[~flipped].mean() <= 0.10
    # flipped rows score higher than clean ones
    assert result.scores[flipped].mean() > result.scores[~flipped].mean() + 0.3
    assert all(result.reasons[flipped & result.flags])
    assert not any(result.reasons[~result.flags])


def test_multiclass_string_labels_and_per_class_breakdown(separable):
    frame, flipped = separable(n=3000, flip_rate=0.05, seed=2, n_classes=3)
    frame["label"] = frame["label"].map({0: "cat", 1: "dog", 2: "emu"})
    result = _run(frame)
    assert result.flags[flipped].mean() >= 0.85
    per_class = {c["class"]: c for c in result.summary["per_class"]}
    assert set(per_class) == {"cat", "dog", "emu"}
    assert sum(c["flagged"] for c in per_class.values()) == result.flagged_count


def test_boolean_labels(separable):
    frame, flipped = separable(n=1500, flip_rate=0.05, seed=3)
    frame["label"] = frame["label"].astype(bool)
    result = _run(frame)
    assert result.flags[flipped].mean() >= 0.85


def test_reference_mode_scores_batch_against_trusted_rows(separable):
    frame, _ = separable(n=4000, seed=5)
    reference, batch = frame.iloc[:2000].reset_index(drop=True), frame.iloc[2000:].reset_index(drop=True)
    flipped = np.random.default_rng(0).random(len(batch)) < 0.05
    batch.loc[flipped, "label"] = 1 - batch.loc[flipped, "label"]
    result = _run(batch, reference=reference)
    assert result.summary["reference"]["rows"] == 2000
    assert result.summary["reference"]["flagged"] / 2000 < 0.02
    assert result.flags[flipped].mean() >= 0.9
    assert result.flags[~flipped].mean() <= 0.05


def test_clean_data_is_rarely_flagged(separable):
    frame, _ = separable(n=3000, seed=6)
    assert _run(frame).flagged_rate < 0.02


def test_single_class_is_an_input_error(separable):
    frame, _ = separable(n=200)
    frame["label"] = 1
    with pytest.raises(InputError, match="single class"):
        _run(frame)


def test_confident_learning_prunes_by_noise_rate():
    # 4 rows labelled 0; two are confidently class 1 (above class 1's mean self-confidence, 0.85)
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.12, 0.88], [0.1, 0.9], [0.2, 0.8]])
    y = np.array([0, 0, 0, 0, 1, 1])
    thresholds = class_thresholds(probs, y, 2)
    flags = confident_issues(probs, y, thresholds)
    assert flags.tolist() == [False, False, True, True, False, False]
