"""What a new user hit (issue 18): column messages, a reference without the
batch's source column, calibrate into a new folder, and split CSVs that
keep the input's byte order mark and line endings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poison_expectations.core.analysis import Options, Roles, build_analysis
from poison_expectations.core.errors import InputError
from poison_expectations.stores.quarantine import write_split


def test_column_not_found_suggests_the_closest_names_and_counts_the_columns(separable):
    frame, _ = separable(n=60, n_features=14)  # row_id, f0..f13, label: 16 columns
    with pytest.raises(InputError) as error:
        build_analysis(frame, Roles(label_column="lable", id_column="row_id"), Options())
    message = str(error.value)
    assert "label column 'lable' not found; did you mean 'label'?" in message
    assert "(16 columns: row_id, f0," in message and "... (4 more)" in message
    with pytest.raises(InputError, match=r"feature column 'f_3' not found; did you mean 'f3'"):
        build_analysis(frame, Roles(label_column="label", feature_columns=("f_3",)), Options())
    with pytest.raises(InputError, match=r"id column 'ROW_ID' not found; did you mean 'row_id'\?"):
        build_analysis(frame, Roles(label_column="label", id_column="ROW_ID"), Options())


def test_a_reference_without_source_and_id_columns_is_accepted_and_reported(separable, tmp_path):
    from poison_expectations.apps.console import verdict_text
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.gx.runner import run_validation

    batch, _ = separable(n=800, n_features=6, flip_rate=0.05, seed=3)
    batch["source"] = np.where(np.arange(800) % 3 == 0, "vendor_a", "vendor_b")
    reference, _ = separable(n=800, n_features=6, seed=4)
    reference["source"] = "curated"
    full, bare = tmp_path / "full.csv", tmp_path / "bare.csv"
    reference.to_csv(full, index=False)
    reference.drop(columns=["source", "row_id"]).to_csv(bare, index=False)
    outcomes = {}
    for name, path in (("full", full), ("bare", bare)):
        config = job_config(None, label_column="label", id_column="row_id", source_column="source",
                            reference=str(path), overrides={"expectations.label_consistency.method": "knn"})
        outcomes[name] = run_validation(batch, config, after_run=False)
    assert outcomes["full"].summary()["reference_lacks"] == []
    assert outcomes["bare"].summary()["reference_lacks"] == ["id", "source"]
    assert "the reference has no source column 'source'" in verdict_text(outcomes["bare"])
    # the source and id columns are never features: the verdicts are the same
    assert outcomes["bare"].flagged_count == outcomes["full"].flagged_count
    assert outcomes["bare"].failed_expectations() == outcomes["full"].failed_expectations()


def test_calibrate_creates_the_output_folder(cli, tmp_path, separable):
    frame, _ = separable(n=400, n_features=5)
    trusted = tmp_path / "trusted.csv"
    frame.to_csv(trusted, index=False)
    start = tmp_path / "knn.yml"
    start.write_text("expectations:\n  label_consistency:\n    method: knn\n")
    out = tmp_path / "calib" / "deeper" / "x.yml"
    run = cli("calibrate", trusted, "--label", "label", "--id-column", "row_id", "--config", start, "--out", out)
    assert run.returncode == 0, run.stderr
    assert out.is_file() and "max_rate" in out.read_text()


@pytest.mark.parametrize("long_cell", [False, True], ids=["streamed", "pandas-cells"])
@pytest.mark.parametrize("bom,newline", [(True, "\r\n"), (False, "\r\n"), (True, "\n"), (False, "\n")])
def test_split_csvs_keep_the_byte_order_mark_and_line_endings(tmp_path, bom, newline, long_cell):
    rows = [["row_id", "x", "label"], ["a1", "1.50", "0"], ["a2", "007", "1"], ["a3", "", "0"]]
    if long_cell:  # over the csv module's field limit: the split goes through pandas' text cells
        rows[2][1] = "9" * 200_000
    source = tmp_path / "in.csv"
    source.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(",".join(r) for r in rows).encode()
                       + newline.encode())
    findings = pd.DataFrame({"flagged": [False, True, False], "poison_score": [0.1, 0.9, 0.2],
                             "reasons": ["", "odd", ""]})
    data = pd.read_csv(source, dtype=str, keep_default_na=False)
    accepted, quarantine = tmp_path / "ok.csv", tmp_path / "held.csv"
    write_split(findings, data, source, accepted=accepted, quarantine=quarantine)
    for path, kept in ((accepted, [rows[0], rows[1], rows[3]]), (quarantine, None)):
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == bom
        text = raw.decode("utf-8-sig")
        assert text.count("\r\n") == (text.count("\n") if newline == "\r\n" else 0)
        if kept is not None:
            assert text == newline.join(",".join(r) for r in kept) + newline
    assert quarantine.read_bytes().decode("utf-8-sig").splitlines()[1].startswith("a2,")


def test_cluster_lines_say_largest_first_and_count_a_single_row():
    from poison_expectations.core.signals.near_duplicates_clusters import console_lines

    summary = {"suspicious": True, "conflicting_labels": True, "improbable_size": False, "over_limit": False,
               "size": 1, "sources": {"crowd_07": 1}, "rows_matching_reference": 1, "reference_labels": {1: 1},
               "example_ids": ["r002746"], "cluster_id": 7, "labels": {0: 1}}
    lines = console_lines([summary], 3000)
    assert lines[0].startswith("Suspicious near-duplicate clusters, largest first")
    assert "cluster 7: 1 row (" in lines[1] and "1 of them near-copy of reference rows" in lines[1]


def test_influence_reasons_separate_numbers_and_call_only_negative_values_most_negative():
    from types import SimpleNamespace

    from poison_expectations.core.signals.influence import _reasons

    y = np.array([0, 0, 0])
    cut = {0: {"kind": "robust_z"}}
    influence = SimpleNamespace(flags=np.array([True, False, False]), cuts=cut, z=np.array([4.1, 0.0, 0.0]))
    shapley = SimpleNamespace(flags=np.array([False, True, False]), cuts=cut, z=np.array([0.0, 3.9, 0.0]))
    components = [SimpleNamespace(name="self_influence", values=np.array([4670.0, 1.0, 1.0])),
                  SimpleNamespace(name="knn_shapley", values=np.array([0.3, 0.185, 0.5]))]
    reasons = _reasons(np.array([True, True, False]), [influence, shapley], components,
                       np.array([0.3, 0.185, 0.5]), y, np.array([0]), 0.999)
    assert reasons[0].startswith("self-influence 4.67e+03, 4.1 robust-z above class 0")
    assert "most negative" not in reasons[1] and "the lowest KNN-Shapley value in class 0" in reasons[1]
