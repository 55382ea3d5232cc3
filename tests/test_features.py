import numpy as np
import pandas as pd
import pytest

from poison_expectations.core.errors import InputError
from poison_expectations.core.features import CLIP, FeatureEncoder


def test_numeric_columns_are_robustly_scaled():
    frame = pd.DataFrame({"a": np.arange(1001, dtype=float), "b": np.r_[np.arange(1000.0), 1e300]})
    X = FeatureEncoder(["a", "b"]).fit(frame).transform(frame)
    assert X.dtype == np.float32
    assert abs(np.median(X[:, 0])) < 1e-6
    # an outlier cannot blow up the scale of the others, and stays finite
    assert np.isfinite(X).all() and X[:, 1].max() == pytest.approx(CLIP)


def test_categoricals_one_hot_and_frequency_encoded():
    frame = pd.DataFrame({"small": ["x", "y", "x", "z"] * 25,
                          "large": [f"id{i % 40}" for i in range(100)]})
    enc = FeatureEncoder(["small", "large"], max_onehot_categories=5).fit(frame)
    X = enc.transform(frame)
    assert enc.feature_names()[:3] == ["small=x", "small=y", "small=z"]
    assert X.shape == (100, 4)
    assert X[:, :3].sum(axis=1).tolist() == [1.0] * 100
    assert X[0, 3] == pytest.approx(3 / 100)  # "id0" holds 3 of the 100 rows


def test_unseen_levels_encode_as_zero_with_the_reference_fit():
    reference = pd.DataFrame({"c": ["a", "b"] * 10})
    batch = pd.DataFrame({"c": ["a", "never-seen"]})
    X = FeatureEncoder(["c"]).fit(reference).transform(batch)
    assert X.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_missing_values_imputed_with_indicator():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.inf, 5.0]})
    enc = FeatureEncoder(["a"]).fit(frame)
    X = enc.transform(frame)
    assert enc.feature_names() == ["a", "a__missing"]
    assert X[:, 1].tolist() == [0, 1, 0, 1, 0]
    assert X[1, 0] == X[2, 0]  # the median (3.0) fills the gap


def test_reject_policy_refuses_missing_values():
    frame = pd.DataFrame({"a": [1.0, None, 3.0]})
    with pytest.raises(InputError, match="'a'.*missing"):
        FeatureEncoder(["a"], nan_policy="reject").fit(frame)


def test_an_all_missing_feature_is_dropped_and_named_unless_rejected():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "empty": [np.nan] * 5, "none": [None] * 5,
                          "inf": [np.inf] * 5})
    enc = FeatureEncoder(["a", "empty", "none", "inf"]).fit(frame)
    assert enc.dropped == ["empty", "none", "inf"] and enc.feature_names() == ["a"]
    assert enc.transform(frame).shape == (5, 1)
    with pytest.raises(InputError, match="every feature column is empty"):
        FeatureEncoder(["empty"]).fit(frame)
    with pytest.raises(InputError, match="'empty': every value is missing"):
        FeatureEncoder(["a", "empty"], nan_policy="reject").fit(frame)


def test_text_garbage_in_a_numeric_column_is_named():
    frame = pd.DataFrame({"n": ["1.5", "2.0", "oops", "4", "5"]})
    with pytest.raises(InputError, match="'n'.*'oops'"):
        FeatureEncoder(["n"]).fit(frame)


def test_numeric_strings_booleans_and_embeddings():
    frame = pd.DataFrame({
        "s": ["1", "2", "3", "4"],
        "flag": [True, False, True, True],
        "emb": [[0.1, 0.2], [0.3, 0.4], "[0.5, 0.6]", [0.7, 0.8]],
    })
    enc = FeatureEncoder(["s", "flag", "emb"], embedding_columns=["emb"]).fit(frame)
    X = enc.transform(frame)
    assert enc.feature_names() == ["s", "flag", "emb[0]", "emb[1]"]
    assert X[:, 1].tolist() == [1, 0, 1, 1]
    assert np.all(np.diff(X[:, 2]) > 0)


def test_embedding_dimension_mismatch_is_an_input_error():
    frame = pd.DataFrame({"emb": [[1.0, 2.0], [1.0]]})
    with pytest.raises(InputError, match="'emb'"):
        FeatureEncoder(["emb"], embedding_columns=["emb"]).fit(frame)
