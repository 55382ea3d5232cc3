"""What the user sees: accepted/quarantine files (input format, cells unchanged),
the GX checkpoint action, the progress bar, JSON stdout and the HTML report."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poison_expectations as pe
from poison_expectations.core.errors import InputError, OutputError
from poison_expectations.apps.jobs import job_config, run_job

REPO = Path(__file__).resolve().parents[1]

# I/O is under test, not the model; a self-check gates on the label rate only with a max_rate set
FAST = "expectations:\n  label_consistency:\n    method: knn\n    max_rate: 0.1\n"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fast_config(tmp_path):
    path = tmp_path / "fast.yml"
    path.write_text(FAST)
    return path


def _poisoned(separable, n=500, seed=4):
    frame, flipped = separable(n=n, flip_rate=0.12, seed=seed, n_features=6)
    frame["row_id"] = [f"{i:05d}" for i in range(n)]  # leading zeros must survive
    frame["f0"] = frame["f0"].round(2)
    frame["note"] = ["a, quoted \"note\"" if i % 7 == 0 else "" for i in range(n)]
    return frame, flipped


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_csv_split_keeps_every_cell_as_written(cli, tmp_path, separable):
    frame, flipped = _poisoned(separable)
    data = tmp_path / "batch.csv"
    frame.to_csv(data, index=False, float_format="%.2f")  # "1.50", not 1.5
    before = _digest(data)
    accepted, quarantine = tmp_path / "ok.csv", tmp_path / "q.csv"
    run = cli("validate", data, "--label", "label", "--id-column", "row_id", "--features",
              ",".join(f"f{i}" for i in range(6)), "--config", _fast_config(tmp_path),
              "--accepted", accepted, "--quarantine", quarantine, "--format", "json")
    assert run.returncode == 1, run.stderr
    assert run.stderr == ""  # stderr is a pipe here: no progress bar
    assert json.loads(run.stdout)["flagged_rows"] == len(_csv_rows(quarantine)) - 1  # stdout stays pure JSON
    assert _digest(data) == before
    original = _csv_rows(data)
    header, body = original[0], {row[0]: row for row in original[1:]}
    kept, held = _csv_rows(accepted), _csv_rows(quarantine)
    assert kept[0] == header and held[0] == header + ["poison_score", "reasons"]
    for row in kept[1:]:
        assert row == body[row[0]]  # byte-identical cells: "00042", "1.50", quoted commas, empty
    for row in held[1:]:
        assert row[:-2] == body[row[0]] and 0 < float(row[-2]) <= 1 and row[-1]
    ids = [r[0] for r in kept[1:]] + [r[0] for r in held[1:]]
    assert sorted(ids) == sorted(body) and len(ids) == len(body)
    caught = {r[0] for r in held[1:]} & set(frame.loc[flipped, "row_id"])
    assert len(caught) >= 0.8 * flipped.sum()
    cells = [c for row in body.values() for c in row]
    assert any(re.fullmatch(r"-?\d+\.\d0", c) for c in cells) and "00042" in body  # the data exercises both
    assert not list(tmp_path.glob(".*.tmp"))


def test_parquet_split_keeps_the_schema_and_format_mismatch_is_refused(tmp_path, separable):
    frame, _ = _poisoned(separable, n=400, seed=5)
    frame["small"] = np.arange(len(frame), dtype=np.int16)
    data = tmp_path / "batch.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata({b"owner": b"team-a"})
    pq.write_table(table, data)
    config = job_config(_fast_config(tmp_path), label_column="label", id_column="row_id",
                        feature_columns=[f"f{i}" for i in range(6)])
    with pytest.raises(OutputError, match=r"keep the input's format \(parquet\)"):
        run_job(data, config, {"quarantine": tmp_path / "q.csv"})
    outcome, written = run_job(data, config, {"accepted": tmp_path / "ok.parquet",
                                              "quarantine": tmp_path / "q.parquet"})
    assert not outcome.success and written["quarantine"] == str(tmp_path / "q.parquet")
    kept, held = pq.read_table(tmp_path / "ok.parquet"), pq.read_table(tmp_path / "q.parquet")
    assert kept.schema.equals(table.schema, check_metadata=True)
    assert held.schema.field("small").type == pa.int16()
    assert held.column_names == table.column_names + ["poison_score", "reasons"]
    assert kept.num_rows + held.num_rows == len(frame) and held.num_rows == outcome.flagged_count > 0
    merged = pa.concat_tables([kept, held.select(table.column_names)]).to_pandas()
    pd.testing.assert_frame_equal(merged.sort_values("row_id").reset_index(drop=True),
                                  frame.sort_values("row_id").reset_index(drop=True), check_dtype=False)


def _gx_checkpoint(frame, action):
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    suite = context.suites.add(gx.ExpectationSuite(name="s"))
    suite.add_expectation(pe.ExpectLabelInconsistencyRateToBeAtMost(
        label_column="label", id_column="row_id", method="knn", max_rate=0.05))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
    return context.checkpoints.add(gx.Checkpoint(
        name="c", validation_definitions=[validation], actions=[action],
        result_format={"result_format": "COMPLETE"}))


def test_checkpoint_action_writes_the_same_split(tmp_path, separable):
    frame, flipped = separable(n=600, flip_rate=0.1, seed=6)
    action = pe.PoisonQuarantineAction(name="q", accepted_path=str(tmp_path / "{run_name}" / "ok.csv"),
                                       quarantine_path=str(tmp_path / "{run_name}" / "q.csv"))
    from great_expectations.core.run_identifier import RunIdentifier

    result = _gx_checkpoint(frame, action).run(batch_parameters={"dataframe": frame},
                                                run_id=RunIdentifier(run_name="nightly"))
    assert not result.success
    (validation,) = result.run_results.values()
    flagged_ids = set(validation.results[0].result["unexpected_index_list"])
    kept, held = pd.read_csv(tmp_path / "nightly" / "ok.csv"), pd.read_csv(tmp_path / "nightly" / "q.csv")
    assert set(held["row_id"]) == flagged_ids and not flagged_ids & set(kept["row_id"])
    assert list(held.columns) == list(frame.columns) + ["poison_score", "reasons"]
    assert len(kept) + len(held) == len(frame)
    assert len(flagged_ids & set(frame.loc[flipped, "row_id"])) >= 0.8 * flipped.sum()


def test_checkpoint_action_refuses_a_data_path_that_is_not_the_batch(tmp_path, separable):
    frame, _ = separable(n=300, flip_rate=0.1, seed=7)
    other = tmp_path / "other.csv"
    frame.iloc[:-1].to_csv(other, index=False)
    action = pe.PoisonQuarantineAction(name="q", quarantine_path=str(tmp_path / "q.csv"), data_path=str(other))
    with pytest.raises(InputError, match="not the batch this checkpoint validated"):
        _gx_checkpoint(frame, action).run(batch_parameters={"dataframe": frame})
    assert not (tmp_path / "q.csv").exists()


def _run_with_tty_stderr(args, cwd):
    """Run the CLI with stderr on a pseudo-terminal, stdout on a pipe."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "poison_expectations", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = proc.stdout.read()
    proc.wait(timeout=300)
    os.close(primary)
    return proc.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_progress_only_on_a_tty_and_quiet_silences_it(tmp_path):
    args = ["validate", "sample_data/train_clean.csv", "--label", "label", "--id-column", "row_id",
            "--config", _fast_config(tmp_path)]
    code, stdout, stderr = _run_with_tty_stderr(args, REPO)
    assert code == 0, stderr
    assert re.search(r"poison-check \[#+\.*\] \d+/\d+ done label_consistency  \d+\.\d s", stderr), stderr
    assert re.search(r"(\d+)/\1 done gx_checkpoint", stderr) and "[#" not in stdout
    assert stdout.startswith("poison-check PASSED")
    quiet_code, _, quiet_stderr = _run_with_tty_stderr(args + ["--quiet"], REPO)
    assert quiet_code == 0 and "poison-check [" not in quiet_stderr


def test_html_report_is_self_contained_with_a_section_per_signal(cli, tmp_path):
    report = tmp_path / "report.html"
    run = cli("validate", "sample_data/train_poisoned_flips.csv", "--label", "label", "--id-column", "row_id",
              "--source-column", "source", "--reference", "sample_data/reference.csv",
              "--config", _fast_config(tmp_path), "--quiet", "--html", report, "--findings", tmp_path / "f.csv")
    assert run.returncode == 1, run.stderr
    page = report.read_text(encoding="utf-8")
    findings = pd.read_csv(tmp_path / "f.csv")
    assert re.search(r"FAILED: \d+ poisoning expectations? over the limit", page)
    assert 'id=\'signal-label_consistency\'' in page
    assert page.count("<svg") >= 3  # histogram, per-source bars of the signal, and of all signals
    assert "flag limit" in page and "flagged share per source" in page and "crowd_07" in page
    top = findings[findings.flagged].sort_values("poison_score", ascending=False, kind="stable")
    assert all(str(i) in page for i in top["row_id"].head(10))
    assert "reference gate" in page and "per class" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loaded from elsewhere


def _split_of(tmp_path, text: str, flagged: list[bool]):
    """write_split on a hand-written CSV with given flags; (accepted, quarantine) rows."""
    from poison_expectations.stores.io import read_table
    from poison_expectations.stores.quarantine import write_split

    source = tmp_path / "in.csv"
    source.write_text(text, encoding="utf-8")
    data = read_table(source)
    findings = pd.DataFrame({"flagged": flagged, "poison_score": [0.75 if f else 0.1 for f in flagged],
                             "reasons": ["why" if f else "" for f in flagged]})
    accepted, quarantine = tmp_path / "ok.csv", tmp_path / "q.csv"
    write_split(findings, data, source, accepted=accepted, quarantine=quarantine)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 10 * source.stat().st_size))  # the test's own reader, for huge cells
    return _csv_rows(accepted), _csv_rows(quarantine)


def test_csv_split_streams_blank_lines_and_short_records_like_pandas_reads_them(tmp_path):
    kept, held = _split_of(tmp_path, "id,a,b\n\n1,007,x\n2,1.50\n\n3,,z\n", [False, True, False])
    assert kept == [["id", "a", "b"], ["1", "007", "x"], ["3", "", "z"]]
    assert held == [["id", "a", "b", "poison_score", "reasons"], ["2", "1.50", "", "0.75", "why"]]


def test_csv_split_with_a_cell_over_the_csv_module_limit_still_splits_exactly(tmp_path):
    import csv

    limit = csv.field_size_limit()
    big = "y" * (limit + 10)
    try:
        kept, held = _split_of(tmp_path, f"id,a\n1,{big}\n2,short\n", [True, False])
    finally:
        csv.field_size_limit(limit)
    assert kept == [["id", "a"], ["2", "short"]]
    assert held[1][:2] == ["1", big] and held[1][2:] == ["0.75", "why"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "ok.csv", "q.csv"]  # no temporary left
