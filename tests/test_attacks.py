"""Tests for the seeded poisoned-data generator (poison_expectations.testing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from sklearn.linear_model import LogisticRegression

from poison_expectations.testing import (
    ATTACKS,
    Poisoned,
    backdoor,
    bad_source,
    boundary_points,
    clean_label_collision,
    conflicting_copies,
    make_tabular,
    margin_flips,
    near_duplicate_flood,
    random_flips,
)

N = 1200
IN_PLACE = ("random_flips", "margin_flips", "backdoor", "bad_source")
ADDING = ("boundary_points", "near_duplicate_flood", "conflicting_copies", "clean_label_collision")
NUM = [f"num_{j}" for j in range(8)]


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return make_tabular(N, random_state=11)


@pytest.fixture(scope="module")
def clean3() -> pd.DataFrame:
    return make_tabular(900, n_classes=3, n_sources=8, random_state=5)


def _expected_added(n: int, rate: float) -> int:
    return max(1, round(rate * n / (1 - rate)))


def _clean_lr(frame: pd.DataFrame):
    X = frame[NUM].to_numpy(float)
    mean, std = X.mean(0), X.std(0)
    model = LogisticRegression(max_iter=1000).fit((X - mean) / std, frame["label"])
    return lambda F: model.decision_function((F[NUM].to_numpy(float) - mean) / std)


# ---------------------------------------------------------------- make_tabular


def test_make_tabular_schema(clean):
    assert list(clean.columns) == ["row_id", *NUM, "cat_0", "cat_1", "source", "label"]
    assert len(clean) == N
    assert clean["row_id"].is_unique
    assert clean["row_id"].str.fullmatch(r"r\d{6}").all()
    assert clean["label"].dtype == np.int64
    assert set(clean["label"].unique()) == {0, 1}
    assert clean[NUM].notna().all().all()
    # realistic marginals: integer counts, positive amounts, rounded columns
    assert sum(pd.api.types.is_integer_dtype(clean[c]) for c in NUM) >= 2
    assert (clean["num_1"] > 0).all() and (clean["num_7"] > 0).all()
    assert np.allclose(clean["num_1"], clean["num_1"].round(2))
    assert clean["num_4"].between(0, 1).all()
    for c in ("cat_0", "cat_1", "source"):
        assert pd.api.types.is_string_dtype(clean[c])
        assert 2 <= clean[c].nunique() <= 8
    shares = clean["source"].value_counts(normalize=True)
    assert shares.max() > 0.2 and shares.min() < 0.08  # skewed sizes


def test_make_tabular_informative_and_sized():
    df = make_tabular(3000, random_state=1)
    X = (df[NUM] - df[NUM].mean()) / df[NUM].std()
    model = LogisticRegression(max_iter=1000).fit(X[:2000], df["label"][:2000])
    acc = model.score(X[2000:], df["label"][2000:])
    assert 0.8 < acc < 0.99
    wide = make_tabular(50, n_numeric=3, n_categorical=0, n_classes=4, n_sources=2, with_id=False)
    assert list(wide.columns) == ["num_0", "num_1", "num_2", "source", "label"]
    assert set(wide["label"]) <= {0, 1, 2, 3}


def test_make_tabular_deterministic_and_seeded():
    a = make_tabular(500, random_state=3)
    pdt.assert_frame_equal(a, make_tabular(500, random_state=3))
    assert not a.equals(make_tabular(500, random_state=4))
    # distribution_seed=None means distribution_seed=random_state
    pdt.assert_frame_equal(a, make_tabular(500, random_state=3, distribution_seed=3))


def test_make_tabular_distribution_seed_fixes_distribution():
    a = make_tabular(20000, random_state=1, distribution_seed=9)
    b = make_tabular(20000, random_state=2, distribution_seed=9)
    c = make_tabular(20000, random_state=2, distribution_seed=10)
    assert not a.equals(b)
    diff_same = (a[NUM].mean() - b[NUM].mean()).abs() / a[NUM].std()
    diff_other = (a[NUM].mean() - c[NUM].mean()).abs() / a[NUM].std()
    assert diff_same.max() < 0.05
    assert diff_other.max() > 0.2


def test_make_tabular_label_noise():
    a = make_tabular(4000, random_state=2)
    b = make_tabular(4000, random_state=2, label_noise=0.05)
    pdt.assert_frame_equal(a.drop(columns="label"), b.drop(columns="label"))
    assert (a["label"] != b["label"]).sum() == 200


# ------------------------------------------------------------ shared contract


@pytest.mark.parametrize("name", list(ATTACKS))
def test_contract(clean, name):
    fn = ATTACKS[name]
    p = fn(clean, rate=0.05, random_state=4)
    assert isinstance(p, Poisoned)
    assert isinstance(p.description, str) and "\n" not in p.description and p.description
    assert isinstance(p.details, dict)
    assert list(p.frame.columns) == list(clean.columns)
    pdt.assert_series_equal(p.frame.dtypes, clean.dtypes)
    assert p.frame.index.equals(pd.RangeIndex(len(p.frame)))
    assert p.is_poison.dtype == bool and p.is_poison.shape == (len(p.frame),)
    assert p.frame["row_id"].is_unique
    if name in IN_PLACE:
        assert len(p.frame) == N
        assert p.is_poison.sum() == round(0.05 * N)
        pdt.assert_series_equal(p.frame["row_id"], clean["row_id"])
    else:
        k = _expected_added(N, 0.05)
        assert len(p.frame) == N + k and p.is_poison.sum() == k
        assert abs(p.is_poison.mean() - 0.05) < 1 / N
        # the original rows are untouched and keep their relative order
        pdt.assert_frame_equal(p.frame[~p.is_poison].reset_index(drop=True), clean)
        # new rows are scattered, not appended at the end
        assert p.is_poison[: len(p.frame) // 2].any()
        assert not set(p.frame.loc[p.is_poison, "row_id"]) & set(clean["row_id"])
    # the input is not modified
    pdt.assert_frame_equal(clean, make_tabular(N, random_state=11))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_deterministic(clean, name):
    fn = ATTACKS[name]
    a, b = fn(clean, rate=0.04, random_state=7), fn(clean, rate=0.04, random_state=7)
    pdt.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.is_poison, b.is_poison)
    assert a.description == b.description and a.details == b.details
    c = fn(clean, rate=0.04, random_state=8)
    assert not (a.frame.equals(c.frame) and np.array_equal(a.is_poison, c.is_poison))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_rate_zero_and_invalid(clean, name):
    p = ATTACKS[name](clean, rate=0.0)
    assert not p.is_poison.any()
    pdt.assert_frame_equal(p.frame, clean)
    with pytest.raises(ValueError):
        ATTACKS[name](clean, rate=1.0)
    with pytest.raises(ValueError):
        ATTACKS[name](clean, rate=-0.1)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_multiclass_string_labels_int_ids_odd_index(clean3, name):
    df = clean3.rename(columns={"row_id": "id", "label": "y"})
    df["id"] = np.arange(len(df)) * 3 + 10
    df["y"] = df["y"].map({0: "cat", 1: "dog", 2: "eel"}).astype("str")
    df.index = df.index + 1000
    p = ATTACKS[name](df, label_column="y", rate=0.05, random_state=1)
    assert p.frame.index.equals(pd.RangeIndex(len(p.frame)))
    pdt.assert_series_equal(p.frame.dtypes, df.dtypes)
    assert p.frame["id"].is_unique
    assert set(p.frame["y"]) <= {"cat", "dog", "eel"}
    assert p.is_poison.any()
    # id_column=None on a frame without row_id/id: works, no id handling
    q = ATTACKS[name](df.drop(columns="id"), label_column="y", rate=0.05, random_state=1)
    assert list(q.frame.columns) == [c for c in df.columns if c != "id"]


# ------------------------------------------------------------ label flips


@pytest.mark.parametrize("fn", [random_flips, margin_flips])
def test_flips_change_exactly_the_poison_labels(clean, clean3, fn):
    for frame in (clean, clean3):
        p = fn(frame, rate=0.06, random_state=2)
        pdt.assert_frame_equal(p.frame.drop(columns="label"), frame.drop(columns="label"))
        changed = p.frame["label"].to_numpy() != frame["label"].to_numpy()
        np.testing.assert_array_equal(changed, p.is_poison)
        assert p.is_poison.sum() == round(0.06 * len(frame))


def test_margin_flips_are_near_the_boundary(clean):
    p = margin_flips(clean, rate=0.05, random_state=0)
    score = np.abs(_clean_lr(clean)(clean))
    assert np.median(score[p.is_poison]) < 0.5 * np.median(score[~p.is_poison])
    assert p.details["max_flipped_margin"] >= 0


def test_bad_source(clean):
    p = bad_source(clean, rate=0.03, random_state=3)
    (name,) = p.details["bad_sources"]
    share = (clean["source"] == name).mean()
    assert share <= 0.08
    assert (p.frame.loc[p.is_poison, "source"] == name).all()
    changed = p.frame["label"].to_numpy() != clean["label"].to_numpy()
    np.testing.assert_array_equal(changed, p.is_poison)
    assert p.is_poison.sum() == round(0.03 * N) and not p.details["capped"]
    # a rate larger than the source can supply is capped at the source's rows
    big = bad_source(clean, rate=0.5, random_state=3)
    assert big.details["capped"]
    assert big.is_poison.sum() == big.details["source_rows"] == (clean["source"] == big.details["bad_sources"][0]).sum()
    with pytest.raises(ValueError):
        bad_source(clean, rate=0.03, n_bad_sources=1, max_source_share=0.001)


# ------------------------------------------------------------ backdoor


def test_backdoor_rows_carry_trigger_and_target(clean):
    p = backdoor(clean, rate=0.05, n_trigger_features=3, random_state=5)
    trigger, target = p.details["trigger"], p.details["target"]
    assert len(trigger) == 3 and set(trigger) <= set(NUM)
    poison = p.frame[p.is_poison]
    assert (poison["label"] == target).all()
    for col, value in trigger.items():
        assert (poison[col] == value).all()
        # plausible alone: an observed value at a moderate-high quantile
        assert (clean[col] == value).any()
        q = (clean[col] < value).mean()
        assert 0.7 <= q <= 0.96
    # poison rows came from non-target classes; everything else is unchanged
    assert (clean.loc[p.is_poison, "label"] != target).all()
    pdt.assert_frame_equal(p.frame[~p.is_poison], clean[~p.is_poison])
    other = [c for c in clean.columns if c not in trigger and c != "label"]
    pdt.assert_frame_equal(p.frame[other], clean[other])


def test_backdoor_explicit_target(clean3):
    p = backdoor(clean3, rate=0.05, n_trigger_features=2, target_label=0, random_state=1)
    assert p.details["target"] == 0 and len(p.details["trigger"]) == 2
    assert (p.frame.loc[p.is_poison, "label"] == 0).all()
    with pytest.raises(ValueError):
        backdoor(clean3, target_label=7)


# ------------------------------------------------------------ added rows


def test_flood_copies_within_noise_bound(clean):
    noise = 0.02
    p = near_duplicate_flood(clean, rate=0.04, n_seeds=3, noise=noise, random_state=6)
    seeds = p.details["seeds"]
    assert len(seeds) == 3 and p.details["seed_ids"] == clean["row_id"].iloc[seeds].tolist()
    std = clean[NUM].to_numpy(float).std(0)
    copies = p.frame[p.is_poison]
    seed_rows = clean.iloc[seeds]
    # match each copy to its seed by the non-numeric columns + nearest features
    diff = np.abs(copies[NUM].to_numpy(float)[:, None, :] - seed_rows[NUM].to_numpy(float)[None, :, :])
    worst = (diff / std).max(axis=2)  # copies x seeds
    owner = worst.argmin(axis=1)
    assert (worst[np.arange(len(copies)), owner] <= noise + 1e-9).all()
    assert set(owner) == {0, 1, 2}
    for col in ("label", "cat_0", "cat_1", "source"):
        np.testing.assert_array_equal(copies[col].to_numpy(), seed_rows[col].to_numpy()[owner])
    # values keep the columns' precision and integer columns stay integer
    for col in NUM:
        if pd.api.types.is_float_dtype(clean[col]) and np.allclose(clean[col], clean[col].round(2)):
            assert np.allclose(copies[col], copies[col].round(2))
    # copies are not all exact duplicates
    assert (diff.min(axis=1).sum(axis=1) > 0).any()


def test_conflicting_copies(clean):
    p = conflicting_copies(clean, rate=0.05, random_state=2)
    copies = p.frame[p.is_poison]
    std = clean[NUM].to_numpy(float).std(0)
    d = np.abs(copies[NUM].to_numpy(float)[:, None, :] - clean[NUM].to_numpy(float)[None, :, :]) / std
    nearest = d.max(axis=2).argmin(axis=1)
    assert (d.max(axis=2).min(axis=1) <= 0.05).all()
    assert (copies["label"].to_numpy() != clean["label"].to_numpy()[nearest]).all()
    assert (copies["source"].to_numpy() == clean["source"].to_numpy()[nearest]).all()
    assert p.details["n_exact"] >= 1
    assert (d.max(axis=2).min(axis=1) == 0).sum() >= p.details["n_exact"]


def test_boundary_points_sit_on_the_wrong_side_near_the_boundary(clean):
    p = boundary_points(clean, rate=0.05, random_state=3)
    score = _clean_lr(clean)
    poison = p.frame[p.is_poison]
    s = score(poison)
    predicted = (s > 0).astype(int)
    assert (predicted != poison["label"].to_numpy()).mean() > 0.9  # flipped labels
    assert np.median(np.abs(s)) < 0.6 * np.median(np.abs(score(clean)))  # near the boundary
    assert p.details["mode"] == "toward_boundary_flipped"


def test_clean_label_collision(clean):
    p = clean_label_collision(clean, rate=0.03, target_index=17, random_state=4)
    det = p.details
    assert det["target_index"] == 17 and det["target_id"] == clean["row_id"].iloc[17]
    pos = det["target_position"]
    assert p.frame["row_id"].iloc[pos] == clean["row_id"].iloc[17] and not p.is_poison[pos]
    assert det["target_label"] == clean["label"].iloc[17] != det["poison_label"]
    poison = p.frame[p.is_poison]
    assert (poison["label"] == det["poison_label"]).all()
    std = clean[NUM].to_numpy(float).std(0)
    target = clean[NUM].iloc[17].to_numpy(float)
    dist = np.sqrt((((poison[NUM].to_numpy(float) - target) / std) ** 2).sum(1))
    typical = np.sqrt((((clean[NUM].to_numpy(float) - target) / std) ** 2).sum(1))
    assert np.median(dist) < 0.15 * np.median(typical)
    with pytest.raises(ValueError):
        clean_label_collision(clean, target_index=N)


def test_feature_columns_restrict_changes(clean):
    p = near_duplicate_flood(clean, rate=0.05, feature_columns=["num_0", "num_1"], random_state=1)
    copies = p.frame[p.is_poison]
    seeds = clean.iloc[p.details["seeds"]]
    for col in NUM[2:]:
        assert set(copies[col]) <= set(seeds[col])
    b = backdoor(clean, rate=0.05, feature_columns=["num_2", "num_6"], n_trigger_features=2)
    assert set(b.details["trigger"]) == {"num_2", "num_6"}
    assert all(isinstance(v, int) for v in b.details["trigger"].values())
    with pytest.raises(ValueError):
        backdoor(clean, feature_columns=["cat_0"])
