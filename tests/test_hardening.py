"""Crashes never lose data: corrupt and changing inputs, unwritable folders,
full disks, interrupts and oversized inputs each end in a clear one-line
error (or exit 130/143) with no partial output and the input untouched."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from poison_expectations.stores import io as pio
from poison_expectations.core import memory
from poison_expectations.apps.cli import main
from poison_expectations.core.errors import InputError, OutputError

REPO = Path(__file__).resolve().parents[1]
FAST = "neighbors:\n  k: 5\nexpectations:\n  label_consistency:\n    method: knn\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_table(path: Path, rows: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=list("abcd"))
    frame.insert(0, "row_id", np.arange(rows))
    frame["label"] = (frame["a"] > 0).astype(int)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "fast.yml"
    path.write_text(FAST, encoding="utf-8")
    return path


def validate(data, config, out_dir, *extra, outputs=("findings.csv", "report.json")):
    """Run `validate` in-process; returns (result, {name: path})."""
    paths = {}
    args = ["validate", str(data), "--label", "label", "--id-column", "row_id", "--config", str(config), "--quiet"]
    for name in outputs:
        flag = {"findings": "--findings", "report": "--report"}[name.split(".")[0]]
        paths[name] = Path(out_dir) / name
        args += [flag, str(paths[name])]
    with contextlib.chdir(Path(config).parent):  # whatever a family writes by default stays in tmp
        result = CliRunner().invoke(main, args + list(extra))
    return result, paths


def assert_clean_failure(result, paths, needle, code=2):
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    for path in paths.values():
        assert not path.exists(), path
        assert not list(path.parent.glob(f".{path.name}.*.tmp")), "temporary file left"


# -- corrupt and truncated inputs ----------------------------------------------------

def _cut(path: Path, keep: float) -> Path:
    body = path.read_bytes()
    path.write_bytes(body[:int(len(body) * keep)])
    return path


CORRUPT = {
    "parquet cut in half": (lambda p: _cut(make_table(p / "t.parquet"), 0.5), "cannot read parquet"),
    "parquet without its footer": (lambda p: _cut(make_table(p / "t.parquet"), 0.98), "cannot read parquet"),
    "parquet of random bytes": (lambda p: (p / "r.parquet").write_bytes(os.urandom(4096)) and p / "r.parquet",
                                "cannot read parquet"),
    "csv cut mid-row": (lambda p: (p / "c.csv").write_bytes(make_table(p / "t.csv").read_bytes()[:-20])
                        and p / "c.csv", "looks truncated"),
    "csv with an unterminated quote": (lambda p: (p / "q.csv").write_text(
        "row_id,a,label\n" + "".join(f"{i},{i},0\n" for i in range(30)) + '31,"7,1\n') and p / "q.csv",
        "EOF inside string"),
    "csv of binary garbage": (lambda p: (p / "g.csv").write_bytes(bytes(range(256)) * 40) and p / "g.csv",
                              "cannot read csv"),
    "gzip named .csv": (lambda p: (p / "z.csv").write_bytes(__import__("gzip").compress(
        make_table(p / "t.csv").read_bytes())) and p / "z.csv", "cannot read csv"),
    "empty csv": (lambda p: (p / "e.csv").write_bytes(b"") or p / "e.csv", "cannot read csv"),
    "every row one field too many": (lambda p: (p / "x.csv").write_text(
        "row_id,a,label\n" + "".join(f"{i},{i},0,9\n" for i in range(30))) and p / "x.csv", "more fields"),
    "semicolon-separated": (lambda p: (p / "s.csv").write_text(
        "row_id;a;label\n" + "".join(f"{i};{i};0\n" for i in range(30))) and p / "s.csv", "semicolon"),
    "duplicate csv header": (lambda p: (p / "d.csv").write_text(
        "row_id,a,a,label\n" + "".join(f"{i},{i},1,0\n" for i in range(30))) and p / "d.csv",
        "duplicate column names ['a']"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_or_truncated_input_is_a_clear_error_without_outputs(tmp_path, config, case):
    make, needle = CORRUPT[case]
    data = make(tmp_path)
    before = digest(data)
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, needle)
    assert str(data) in result.stderr
    assert digest(data) == before


def test_a_file_that_changes_while_it_is_read_is_refused(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.csv")
    real = pd.read_csv

    def read_while_appending(*args, **kwargs):
        with open(data, "a") as handle:  # another process appends rows mid-read
            handle.write("999,0,0,0,0,1\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(pio.pd, "read_csv", read_while_appending)
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, "changed while it was being read")


def test_a_parquet_file_replaced_while_it_is_read_is_refused(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.parquet")
    real = pd.read_parquet

    def read_then_replace(*args, **kwargs):
        frame = real(*args, **kwargs)
        make_table(tmp_path / "new.parquet", seed=1).replace(data)  # an atomic writer swaps the file
        return frame

    monkeypatch.setattr(pio.pd, "read_parquet", read_then_replace)
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, "changed while it was being read")


def test_a_stored_checkpoint_whose_metric_errors_is_exit_2_not_a_failed_verdict(tmp_path):
    """GX reports an error inside a metric as a failed expectation; that is not "poisoning found"."""
    data = make_table(tmp_path / "t.csv")  # lacks the stored suite's source column
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(main, ["run-checkpoint", "training_ingest", "--project",
                                           str(REPO / "checkpoints"), "--data", str(data)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "source column 'source' not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "FAILED" not in result.stdout


def test_an_output_never_overwrites_the_reference(tmp_path, config):
    data = make_table(tmp_path / "t.csv")
    reference = make_table(tmp_path / "r.csv", seed=2)
    before = digest(reference)
    result, _ = validate(data, config, tmp_path, "--reference", str(reference), "--findings", str(reference),
                         outputs=())
    assert result.exit_code == 2 and "refusing to overwrite the reference file" in result.stderr
    assert digest(reference) == before


def test_a_python_api_frame_with_integer_column_names_runs(tmp_path):
    from poison_expectations.apps.jobs import job_config
    from poison_expectations.gx.runner import run_validation

    frame = pd.read_csv(make_table(tmp_path / "t.csv")).drop(columns="row_id")
    frame.columns = [0, 1, 2, 3, "label"]
    config = job_config(None, label_column="label", overrides={"expectations.label_consistency.method": "knn"})
    outcome = run_validation(frame, config)
    assert len(outcome.findings) == len(frame)


# -- outputs: unwritable folders and full disks ---------------------------------------

def test_output_folder_that_is_a_file_fails_before_the_run(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.csv")
    ran = []
    monkeypatch.setattr("poison_expectations.gx.runner.read_table", lambda *a, **k: ran.append(1))
    result, _ = validate(data, config, tmp_path, "--findings", str(data) + "/findings.csv", outputs=())
    assert result.exit_code == 2 and "is not a folder" in result.stderr
    assert ran == []  # refused before reading the data, not after a long run


def test_permission_denied_on_the_output_folder_fails_before_the_run(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.csv")
    out = tmp_path / "out"
    out.mkdir()

    def denied(*args, dir=None, **kwargs):
        if Path(dir) == out:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    result, paths = validate(data, config, out)
    assert_clean_failure(result, paths, "Permission denied")


def test_rename_failure_at_commit_leaves_neither_outputs_nor_temporaries(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.csv")
    monkeypatch.setattr(pio.os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, "Permission denied")


def test_disk_full_mid_write_keeps_the_previous_output_and_leaves_no_partial(tmp_path, config, monkeypatch):
    data = make_table(tmp_path / "t.csv")
    old = tmp_path / "findings.csv"
    old.write_text("previous run\n")
    real = pd.DataFrame.to_csv

    def full_disk(self, path, *args, **kwargs):
        Path(path).write_text("row_id,poison_score\n0,0.1\n")  # part of the table got out
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    result, paths = validate(data, config, tmp_path)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real)
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert old.read_text() == "previous run\n"
    assert not (tmp_path / "report.json").exists()  # all outputs or none
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tiny tmpfs (root with CAP_SYS_ADMIN only); unmounted afterwards."""
    mounted = []

    def mount(size: str = "64k", read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_really_full_disk_is_a_clear_error_with_nothing_left(tmp_path, config, tmpfs):
    data = make_table(tmp_path / "t.csv", rows=3000)
    small = tmpfs("64k")  # the findings of 3000 rows are about 150 KB
    result, paths = validate(data, config, small)
    assert_clean_failure(result, paths, "No space left on device")
    assert list(small.iterdir()) == []


def test_a_read_only_file_system_fails_before_the_run(tmp_path, config, tmpfs):
    data = make_table(tmp_path / "t.csv")
    frozen = tmpfs("64k", read_only=True)
    result, paths = validate(data, config, frozen)
    assert_clean_failure(result, paths, "Read-only file system")


# -- all outputs or none, and the after-run hooks (reputation ledger) ------------------

@pytest.fixture
def recording_family(monkeypatch):
    """The label-consistency family with an after_run hook that records what it saw."""
    from dataclasses import replace

    from poison_expectations.core import registry

    seen = []
    family = registry._FAMILIES["label_consistency"]

    def after_run(section, outcome):
        seen.append({"run_id": outcome.run_id,
                     "outputs_visible": sorted(p.name for p in seen_dir[0].iterdir() if not p.name.startswith("."))})

    seen_dir = []
    monkeypatch.setitem(registry._FAMILIES, "label_consistency", replace(family, after_run=after_run))
    return seen, seen_dir


def test_after_run_hooks_run_once_when_outputs_are_complete_but_not_yet_visible(tmp_path, config,
                                                                                 recording_family):
    seen, seen_dir = recording_family
    data = make_table(tmp_path / "t.csv")
    out = tmp_path / "out"
    out.mkdir()
    seen_dir.append(out)
    result, paths = validate(data, config, out)
    assert result.exit_code in (0, 1), result.stderr
    assert len(seen) == 1 and seen[0]["outputs_visible"] == []  # staged, not yet renamed
    assert all(path.exists() for path in paths.values())


def test_a_failed_write_skips_the_after_run_hooks(tmp_path, config, recording_family, monkeypatch):
    seen, seen_dir = recording_family
    seen_dir.append(tmp_path)
    data = make_table(tmp_path / "t.csv")
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, "full")
    assert seen == []  # the ledger never records a run whose outputs were lost


@pytest.mark.parametrize("raised, code, message", [(KeyboardInterrupt, 130, "interrupted"),
                                                    (None, 143, "terminated")])
def test_interrupt_while_writing_removes_the_temporaries(tmp_path, config, monkeypatch, raised, code, message):
    from poison_expectations.apps.cli import Interrupted

    data = make_table(tmp_path / "t.csv")
    error = raised() if raised else Interrupted(143)

    def interrupted_write(self, path, *args, **kwargs):
        Path(path).write_text("half a table")
        raise error

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted_write)
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, message, code=code)


def test_signals_are_held_during_the_renames_and_delivered_after():
    # pytest may run with SIGINT ignored (a background CI job): use Python's default
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    caught = []
    with pytest.raises(KeyboardInterrupt):
        with pio.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            caught.append("still running")
    assert caught == ["still running"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


# -- real signals, real process ------------------------------------------------------

def _interrupt_mid_run(tmp_path, signum, make_separable):
    frame, _ = make_separable(n=20000, n_features=12, flip_rate=0.05, seed=4)
    data = tmp_path / "big.csv"
    frame.to_csv(data, index=False)
    before = digest(data)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    master, slave = pty.openpty()  # stderr on a terminal: the CLI draws its progress bar
    process = subprocess.Popen(
        [sys.executable, "-m", "poison_expectations", "validate", str(data), "--label", "label", "--id-column",
         "row_id", "--findings", str(out / "findings.csv"), "--report", str(out / "report.json")],
        stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 180
    while b"poison-check [" not in seen and time.monotonic() < deadline and process.poll() is None:
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 4096)
    assert b"poison-check [" in seen, seen
    time.sleep(0.5)  # well inside the signal's computation
    process.send_signal(signum)
    process.communicate(timeout=120)
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert digest(data) == before
    return process.returncode, seen.decode(errors="replace"), out


@pytest.mark.parametrize("signum, code, message", [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")])
def test_a_signal_mid_run_exits_130_or_143_with_no_outputs(tmp_path, separable, signum, code, message):
    returncode, stderr, out = _interrupt_mid_run(tmp_path, signum, separable)
    assert returncode == code, stderr
    assert f"poison-check: error: {message}" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []  # no findings, no report, no temporary file


# -- memory guard ------------------------------------------------------------------------

def _limits(tmp_path, **limits):
    body = FAST + "limits:\n" + "".join(f"  {k}: {v}\n" for k, v in limits.items())
    path = tmp_path / "limits.yml"
    path.write_text(body, encoding="utf-8")
    return path


def test_parquet_over_max_rows_is_refused_from_its_footer_without_loading(tmp_path, monkeypatch):
    data = make_table(tmp_path / "t.parquet", rows=500)
    monkeypatch.setattr(pio.pd, "read_parquet", lambda *a, **k: pytest.fail("the table was loaded"))
    result, paths = validate(data, _limits(tmp_path, max_rows=100), tmp_path)
    assert_clean_failure(result, paths, "500 rows exceed limits.max_rows=100")


def test_csv_over_max_rows_is_refused_before_pandas_reads_a_row(tmp_path, monkeypatch):
    data = make_table(tmp_path / "t.csv", rows=500)
    monkeypatch.setattr(pio.pd, "read_csv", lambda *a, **k: pytest.fail("the table was loaded"))
    result, paths = validate(data, _limits(tmp_path, max_rows=100), tmp_path)
    assert_clean_failure(result, paths, "more than 100 rows exceed limits.max_rows=100")


def test_a_reference_over_max_rows_is_refused(tmp_path):
    data = make_table(tmp_path / "t.csv", rows=80)
    reference = make_table(tmp_path / "r.parquet", rows=500)
    result, paths = validate(data, _limits(tmp_path, max_rows=200), tmp_path, "--reference", str(reference))
    assert_clean_failure(result, paths, "r.parquet: 500 rows exceed limits.max_rows=200")


def test_loading_a_table_larger_than_the_memory_budget_is_refused(tmp_path):
    data = make_table(tmp_path / "t.csv", rows=20000)  # about 1.7 MB of CSV
    result, paths = validate(data, _limits(tmp_path, max_memory_mb=1), tmp_path)
    assert_clean_failure(result, paths, "loading this CSV needs about")
    assert "limits.max_memory_mb" in result.stderr


def test_an_encoded_matrix_over_the_budget_is_refused_before_it_is_built(tmp_path):
    """10k categories one-hot encoded would need 10k x 10k floats (~1.2 GB with working copies)."""
    rows = 10_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row_id": np.arange(rows), "a": rng.normal(size=rows),
                          "city": [f"city {i}" for i in rng.permutation(rows)], "label": rng.integers(0, 2, rows)})
    data = tmp_path / "cats.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "onehot.yml"
    config.write_text(FAST + "features:\n  max_onehot_categories: 10000\nlimits:\n  max_memory_mb: 300\n")
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, f"encoded feature matrix ({rows} rows x 10001 encoded features)")


def test_the_automatic_budget_follows_the_free_memory(tmp_path, config, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * 2 ** 20)  # a nearly full machine
    data = make_table(tmp_path / "t.csv", rows=20000)
    result, paths = validate(data, config, tmp_path)
    assert_clean_failure(result, paths, "75% of the free memory")


def test_memory_estimates_and_budget_units():
    assert memory.budget(100) == 100 * 2 ** 20
    with pytest.raises(InputError, match="more than the 1.0 MB allowed"):
        memory.ensure_fits(2 * 2 ** 20, "a thing", max_memory_mb=1)
    memory.ensure_fits(2 ** 19, "a thing", max_memory_mb=1)
    free = memory.available_memory()
    assert free is None or free > 0


def test_write_helpers_raise_output_error_and_leave_nothing(tmp_path):
    target = tmp_path / "missing" / "x.json"
    with pytest.raises(OutputError, match="does not exist"):
        pio.write_text_atomic(target, "{}")
    mixed = pd.DataFrame({"id": [1, "two", 3.0]})  # Arrow cannot store mixed objects
    with pytest.raises(OutputError, match="x.parquet: cannot write"):
        pio.write_table_atomic(tmp_path / "x.parquet", mixed)
    assert list(tmp_path.iterdir()) == []
