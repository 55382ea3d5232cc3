"""Shared fixtures: small synthetic tables and a CLI runner in a subprocess."""

from __future__ import annotations

import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # as the package does; before sklearn loads OpenMP

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

REPO = Path(__file__).resolve().parents[1]


def make_separable(n=2000, n_features=10, flip_rate=0.0, seed=0, n_classes=2):
    """A separable synthetic table with an id column; returns (frame, flipped mask)."""
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=min(6, n_features),
                               n_redundant=0, n_classes=n_classes, class_sep=2.0, flip_y=0,
                               random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(n_features)])
    frame.insert(0, "row_id", np.arange(n) + 10_000)
    frame["label"] = y
    rng = np.random.default_rng(seed + 1)
    flipped = rng.random(n) < flip_rate
    if flipped.any():
        shift = rng.integers(1, n_classes, size=int(flipped.sum()))
        frame.loc[flipped, "label"] = (frame.loc[flipped, "label"] + shift) % n_classes
    return frame, flipped


SAMPLE_DATA = REPO / "sample_data"
CHECKPOINTS = REPO / "checkpoints"


def _scratch_folder() -> str:
    folder = Path(tempfile.mkdtemp(prefix="poison-cli-"))
    for name in ("sample_data", "checkpoints"):
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    return str(folder)


def run_cli(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`poison-check ARGS` in a fresh process, importing this checkout.

    By default it runs in a new folder holding only links to sample_data/ and
    checkpoints/, so relative sample paths work while nothing a run writes
    beside itself (e.g. the reputation ledger under .poison/) leaks into the
    checkout or into another test. The reputation ledger goes there too
    (.poison/reputation.db), never to the per-user default.
    """
    cwd = cwd or _scratch_folder()
    env = dict(os.environ)
    env["POISON_EXPECTATIONS_LEDGER"] = str(Path(cwd) / ".poison" / "reputation.db")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "poison_expectations", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def separable():
    return make_separable


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path, monkeypatch):
    """In-process runs record to a ledger of this test, not the per-user default."""
    monkeypatch.setenv("POISON_EXPECTATIONS_LEDGER", str(tmp_path / ".poison" / "reputation.db"))


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for every Spark test (a JVM takes seconds to start and ~1 GB)."""
    pytest.importorskip("pyspark")
    from poison_expectations.engines.spark.session import get_session

    conf = {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
            # one partition per small file, so a batch spans several partitions
            "spark.sql.files.openCostInBytes": "1", "spark.sql.files.maxPartitionBytes": "4096"}
    session = get_session("local[2]", conf)
    yield session
    session.stop()


def parquet_folder(frame: pd.DataFrame, folder: Path, parts: int = 3) -> Path:
    """`frame` as a folder of `parts` parquet files (a batch that spans several Spark partitions)."""
    folder.mkdir()
    for number, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_parquet(folder / f"part-{number}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def one_split_per_file(spark):
    """The `spark` fixture splits files into 4 kB partitions (most of them empty): with 34 float columns
    that is ~75 tasks of fixed overhead per pass. A module using this reads one partition per file;
    the session's setting is given back after it."""
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 2**20))
    yield
    spark.conf.set("spark.sql.files.maxPartitionBytes", before)


def trusted_and_batches(n_ref: int = 1500, n_batch: int = 600, flip_rate: float = 0.1):
    """(trusted table, clean batch, batch with `flip_rate` of its labels flipped, the flip mask): one
    separable draw split in two, for the tests that fit a profile and score batches against it."""
    full, _ = make_separable(n=n_ref + n_batch, seed=0)
    ref = full.iloc[:n_ref].reset_index(drop=True)
    clean = full.iloc[n_ref:].reset_index(drop=True)
    flipped = clean.copy()
    mask = np.random.default_rng(5).random(n_batch) < flip_rate
    flipped.loc[mask, "label"] = 1 - flipped.loc[mask, "label"]
    return ref, clean, flipped, mask
