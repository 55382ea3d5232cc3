"""Start-up: the CLI answers help, usage and input errors without importing
Great Expectations, registration stays automatic for GX users, and a
signal at any moment of start-up ends in exit 130/143 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

# runs the CLI in-process and reports, on exit, whether GX was imported
PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("GX_IMPORTED=%s\\n" % ("great_expectations" in sys.modules)))
from poison_expectations.apps.cli import main
main(sys.argv[1:], prog_name="poison-check")
"""


def probe(*args, cwd) -> tuple[int, list[str], bool]:
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)
    lines = done.stderr.strip().splitlines()
    gx = lines.pop() if lines and lines[-1].startswith("GX_IMPORTED=") else "?"
    return done.returncode, lines, gx == "GX_IMPORTED=True"


@pytest.fixture
def table(tmp_path) -> Path:
    frame = pd.DataFrame({"row_id": range(50), "a": np.arange(50.0), "label": [0, 1] * 25})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def test_help_does_not_import_gx(tmp_path):
    code, _, gx = probe("--help", cwd=tmp_path)
    assert code == 0 and not gx


@pytest.mark.parametrize("args, message", [
    (["validate", "missing.csv", "--label", "label"], "missing.csv: file not found"),
    (["validate", "{table}", "--label", "nope"], "batch: label column 'nope' not found"),
    (["validate", "{table}", "--label", "label", "--features", "a,zz"], "batch: feature column 'zz' not found"),
    (["validate", "{table}", "--label", "label", "--reference", "gone.csv"], "reference gone.csv: file not found"),
    (["validate", "{table}", "--bogus"], "No such option"),
])
def test_usage_and_input_errors_do_not_import_gx(tmp_path, table, args, message):
    code, lines, gx = probe(*[a.format(table=table) for a in args], cwd=tmp_path)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not gx


def test_a_missing_column_named_in_the_config_does_not_import_gx(tmp_path, table):
    config = tmp_path / "c.yml"
    config.write_text("data:\n  label_column: nope\n")
    code, lines, gx = probe("validate", table, "--config", config, cwd=tmp_path)
    assert code == 2 and "label column 'nope' not found" in lines[0]
    assert not gx


def test_importing_the_package_and_the_core_does_not_import_gx():
    code = ("import sys, poison_expectations, poison_expectations.apps.cli, poison_expectations.apps.jobs, "
            "poison_expectations.core.analysis, poison_expectations.stores.io; "
            "print('great_expectations' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("gx_first", [True, False])
def test_registration_is_automatic_for_gx_users(gx_first):
    """GX imported first: our types register at `import poison_expectations`, as before.
    Otherwise on first use of an expectation class, or explicitly via gx.register."""
    steps = (["import great_expectations", "import poison_expectations"] if gx_first else
             ["import poison_expectations", "import great_expectations",
              "assert poison_expectations.ExpectLabelInconsistencyRateToBeAtMost"])
    code = "; ".join([*steps, "from great_expectations.expectations.registry import get_expectation_impl",
                      "get_expectation_impl('expect_label_inconsistency_rate_to_be_at_most')",
                      "import poison_expectations as pe; print(len(pe.__all__) > 10, 'PoisonQuarantineAction' in "
                      "dir(pe))"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True True"


# -- signals during start-up -------------------------------------------------------------

def _start(args, cwd, ignore_sigint=False) -> subprocess.Popen:
    def background():  # what a shell does to a job started with `&`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "poison_expectations", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=background if ignore_sigint else None)


@pytest.mark.parametrize("signum, code, message, ignore_sigint, delay", [
    (signal.SIGINT, 130, "interrupted", False, 1.0),
    (signal.SIGTERM, 143, "terminated", False, 1.0),
    (signal.SIGTERM, 143, "terminated", False, 2.5),
    (signal.SIGINT, 130, "interrupted", True, 1.5),  # a background job: SIGINT ignored at start
])
def test_a_signal_during_start_up_exits_130_or_143_with_one_line(tmp_path, table, signum, code, message,
                                                                 ignore_sigint, delay):
    out = tmp_path / "out"
    out.mkdir()
    process = _start(["validate", table, "--label", "label", "--id-column", "row_id",
                      "--findings", out / "f.csv"], tmp_path, ignore_sigint)
    time.sleep(delay)  # inside start-up: imports, config, reading (the whole run takes several seconds)
    assert process.poll() is None, "the run ended before the signal"
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines() == [f"poison-check: error: {message}"]
    assert list(out.iterdir()) == []
    assert took < 1.0, f"took {took:.1f} s to stop"  # 0.05 s measured at load 8 on 2 cores
