"""Reference profiles: fit once, store without pickle, refuse what is not intact."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.errors import InputError
from poison_expectations.core.fitting import fit_profile
from poison_expectations.core.signals.base import Signal, SignalResult
from poison_expectations.stores.profiles import KEY_ENV, load_profile, read_manifest, save_profile
from poison_expectations.stores.state_codec import encode_state, roundtrip


class CentroidDistance(Signal):
    """A toy per-row signal with a model in its state: distance to the fitted
    rows' centroid, and a logistic model's disagreement with the label."""

    name = "centroid_distance"
    fits = 0

    def __init__(self, quantile: float = 0.9):
        super().__init__(quantile=quantile)

    def fit(self, analysis):
        CentroidDistance.fits += 1
        table = analysis.fitted
        centre = table.X.mean(axis=0)
        own = np.linalg.norm(table.X - centre, axis=1)
        model = LogisticRegression(max_iter=200).fit(table.X, table.y)
        return {"centre": centre, "cut": float(np.quantile(own, self.params["quantile"])), "model": model,
                "reference_scores": own, "classes": [str(c) for c in analysis.classes]}

    def _result(self, state, table):
        distance = np.linalg.norm(table.X - state["centre"], axis=1)
        disagree = state["model"].predict(table.X) != table.y
        flags = (distance > state["cut"]) & disagree
        return SignalResult(self.name, distance / (1 + distance), flags, np.where(flags, "far", ""))

    def score(self, state, analysis):
        return self._result(state, analysis.batch)

    def score_fitted(self, state, analysis):
        return self._result(state, analysis.fitted)


def table(n=300, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) + shift
    return pd.DataFrame({"row_id": np.arange(n), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2],
                         "kind": rng.choice(["x", "y"], size=n), "label": (X[:, 0] + X[:, 1] > 0).astype(int)})


ROLES = Roles(label_column="label", id_column="row_id")


@pytest.fixture
def saved(tmp_path):
    profile = fit_profile(table(), ROLES, Options(), [CentroidDistance()], meta={"plugin_version": "0.1.0"})
    path = save_profile(profile, tmp_path / "trusted.profile")
    return profile, path


def test_a_stored_profile_scores_like_the_fitted_one_without_refitting(saved):
    profile, path = saved
    loaded = load_profile(path)
    CentroidDistance.fits = 0
    batch = table(200, seed=1, shift=0.5)
    fresh = build_analysis(batch, ROLES, Options(), profile=profile).result(CentroidDistance())
    stored = build_analysis(batch, ROLES, Options(), profile=loaded).result(CentroidDistance())
    assert CentroidDistance.fits == 0
    np.testing.assert_array_equal(fresh.flags, stored.flags)
    np.testing.assert_allclose(fresh.scores, stored.scores)
    np.testing.assert_array_equal(loaded.table.X, profile.table.X)
    assert loaded.index.exact and loaded.graphs.keys() == profile.graphs.keys()


def test_profile_scores_equal_a_reference_run(saved):
    """A profile fitted on the trusted table gives the same batch result as
    passing that table as the reference (one code path)."""
    profile, _ = saved
    batch = table(200, seed=1, shift=0.5)
    with_profile = build_analysis(batch, ROLES, Options(), profile=profile).result(CentroidDistance())
    with_reference = build_analysis(batch, ROLES, Options(), table()).result(CentroidDistance())
    np.testing.assert_array_equal(with_profile.flags, with_reference.flags)
    np.testing.assert_allclose(with_profile.scores, with_reference.scores, rtol=1e-6)


def test_the_profile_records_what_it_was_made_from(saved):
    _, path = saved
    manifest = read_manifest(path)
    assert manifest["rows"] == 300 and len(manifest["data_sha256"]) == 64
    assert manifest["plugin_version"] == "0.1.0"
    assert dict(manifest["schema"])["kind"] == "text" and dict(manifest["schema"])["a"] == "numeric"
    assert manifest["roles"]["feature_columns"] == ["a", "b", "c", "kind"]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert all(n.endswith((".npy", ".json", ".skops")) or n == "seal" for n in names)


def _rewrite(path, name, change):
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[name] = change(members[name])
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)


def test_a_changed_member_is_refused(saved):
    _, path = saved
    _rewrite(path, "reference/X.npy", lambda b: b[:-4] + b"\x00\x00\x80\x3f")
    with pytest.raises(InputError, match="reference/X.npy was altered"):
        load_profile(path)


def test_a_changed_manifest_is_refused(saved):
    _, path = saved
    _rewrite(path, "manifest.json", lambda b: b.replace(b'"rows": 300', b'"rows": 301'))
    with pytest.raises(InputError, match="manifest was altered"):
        load_profile(path)


def test_a_truncated_profile_is_refused(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a profile, or truncated"):
        load_profile(path)


def test_another_format_version_is_refused(saved, monkeypatch):
    _, path = saved
    monkeypatch.setattr("poison_expectations.stores.profiles.FORMAT_VERSION", 2)
    with pytest.raises(InputError, match="format version 1, this plugin reads version 2"):
        load_profile(path)


def test_a_keyed_profile_needs_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "secret")
    profile = fit_profile(table(), ROLES, Options(), [CentroidDistance()], meta={})
    path = save_profile(profile, tmp_path / "keyed.profile")
    load_profile(path)
    monkeypatch.setenv(KEY_ENV, "another")
    with pytest.raises(InputError, match="altered"):
        load_profile(path)


def test_a_model_needing_other_code_is_never_loaded(tmp_path):
    """skops stores a FunctionTransformer(os.system) fine; loading it must refuse."""
    state = {"model": FunctionTransformer(func=os.system)}
    tree, members = encode_state(state)
    from poison_expectations.stores.state_codec import decode_state

    with pytest.raises(InputError, match="refuses to load type posix.system"):
        decode_state(tree, members)


def test_the_plain_data_checker_names_what_is_not_plain():
    from poison_expectations.stores.state_codec import plain_data_problems

    assert plain_data_problems({"a": [1, 2.0, "x", None, np.zeros(2)], "b": {"c": True}}) == []
    assert plain_data_problems({"a": np.array(["x"], dtype=object)}) == ["state.a: object array"]
    assert plain_data_problems({1: (1, 2)}) == ["state: key 1 is not text", "state.1: tuple"]
    assert plain_data_problems({"a": np.float64(1.0)}) == ["state.a: float64"]


def test_states_must_be_plain_data():
    assert roundtrip({"a": [1, 2.5, None, "x"], "b": {"c": np.arange(3)}, "d": float("inf")})["d"] == float("inf")
    with pytest.raises(TypeError, match=r"state\.f: function is not plain data"):
        encode_state({"f": lambda x: x})
    with pytest.raises(TypeError, match=r"state\.labels: object arrays need pickle"):
        encode_state({"labels": np.array(["a", None], dtype=object)})


def test_a_batch_of_another_schema_is_refused(saved):
    profile, _ = saved
    with pytest.raises(InputError, match="feature column 'c' of the profile not found"):
        build_analysis(table().drop(columns="c"), ROLES, Options(), profile=profile)
    other = table().assign(a=lambda f: f["a"].astype(str) + "cm")
    with pytest.raises(InputError, match="column 'a' holds text values, the profile was fitted on numeric"):
        build_analysis(other, ROLES, Options(), profile=profile)
    with pytest.raises(InputError, match="value 7 is not among the profile's classes"):
        build_analysis(table().assign(label=7), ROLES, Options(), profile=profile)
    with pytest.raises(InputError, match="features.nan_policy"):
        build_analysis(table(), ROLES, Options(nan_policy="reject"), profile=profile)


def test_a_profile_fitted_with_other_parameters_names_them(saved):
    profile, _ = saved
    analysis = build_analysis(table(), ROLES, Options(), profile=profile)
    with pytest.raises(InputError, match=r"fitted with quantile=0\.9 \(config: 0\.5\)"):
        analysis.result(CentroidDistance(quantile=0.5))


def test_manifest_is_json_with_the_config(tmp_path):
    profile = fit_profile(table(), ROLES, Options(), [CentroidDistance()], meta={"config": {"max_rate": 0.1}})
    path = save_profile(profile, tmp_path / "p.profile")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("manifest.json"))["config"] == {"max_rate": 0.1}
