"""Hostile tables through `poison-check validate`: a verdict or a one-line
error, never a traceback, never a changed input, never a partial output.

Tables are generated with hypothesis (NaN/inf, mixed types, huge and tiny
magnitudes, constant columns, one row, one class, one row per class, unicode
and whitespace in names and labels, duplicate names, numeric- and
boolean-looking labels, empty strings) and written as CSV or Parquet. The CLI
runs in-process (click's CliRunner) with a fast config (knn only, k=3).

`python tests/test_hostile_inputs.py --count 300` draws that many tables with
a fixed seed and prints how many broke the contract (the issue's fuzz count).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import math
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

if __name__ == "__main__":  # count mode: import this checkout (or POISON_CHECK_ROOT), not an installed copy
    sys.path.insert(0, os.environ.get("POISON_CHECK_ROOT") or str(Path(__file__).resolve().parents[1]))

from poison_expectations.apps.cli import main  # noqa: E402

FAST_CONFIG = """\
version: 1
neighbors:
  k: 3
expectations:
  label_consistency:
    method: knn
"""

# -- hostile values -------------------------------------------------------------

WILD_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=0, max_size=6)
ODD_NAMES = ["label", " label", "label ", "ä b", "名前", "😀", "col 1", "1", "0.5", "True", "nan", "None",
             "a,b", 'q"q', "row_index", "poison_score", "reasons", "flagged", "-x", "\u00a0nbsp", "tab\there",
             "LABEL", "x\ny", "", " "]
MAGNITUDES = [1e308, -1e308, 1e-308, -1e-308, 5e-324, 0.0, -0.0, 1e300, 1e-300, 3.4e38, 1.7e308, 2 ** 63,
              -(2 ** 63), 2 ** 64 + 1]
MISSING_TOKENS = ["", " ", "NaN", "nan", "NA", "N/A", "NULL", "null", "None", "#N/A", "-", "?"]
ODD_LABELS = ["cat", " cat", "cat ", "Cat", "kätze", "猫", "🐈", "a,b", 'q"q', "x\ny", "\u00a0", "0"]
NUMERIC_LABELS = ["1", "1.0", "01", "1e0", "2", " 2", "2.0", "-0", "+3"]
BOOL_LABELS = ["True", "False", "true", "FALSE", "yes", "no", "1", "0"]

# Each table is ordinary (numeric features, a 2-3 class label) except for a
# few hostile aspects drawn from this list, so most tables reach the signals.
CONTROL_NAMES = ["a\nb", "a\rb", "x\x85y", "p\u2028q", "t\tt", "nul\x00", "\x1b[31mred", "\u202eevil"]
RESERVED_NAMES = ["poison_score", "flagged", "reasons", "label_consistency_score", "row_index"]
UTC = dt.timezone.utc
ARROW_CELLS = {  # Parquet types a CSV never has (CSV writes their str)
    "timestamps": lambda i: dt.datetime(1500 + 37 * i % 1100, 1 + i % 12, 1),
    "tz_timestamps": lambda i: dt.datetime(2024, 1, 1 + i % 28, tzinfo=UTC),
    "durations": lambda i: dt.timedelta(seconds=i * 7),
    "bytes": lambda i: bytes([0xFF, i % 256, 0x00]),
    "lists": lambda i: [i, i + 1],
    "dicts": lambda i: {"x": i},
    "decimals": lambda i: Decimal(i) / 7,
}

# Each table is ordinary (numeric features, a 2-3 class label) except for a
# few hostile aspects drawn from this list, so most tables reach the signals.
ASPECTS = ["nan_inf", "mixed_types", "magnitudes", "constant", "tiny", "single_class", "one_row_per_class",
           "many_classes", "unicode_names", "wild_names", "control_names", "duplicate_names", "unicode_labels",
           "numeric_labels", "bool_labels", "empty_strings", "high_cardinality", "numeric_text", "dates",
           "missing_tokens", "odd_ids", "source", "no_features", "float_labels", "reference", "huge_k",
           "arrow_types", "list_labels", "role_clash", "cut_short"]


@st.composite
def hostile_tables(draw):
    """A table spec: {columns: [(name, cells)], label, id, source, reference: [(name, cells)] | None}."""
    aspects = set(draw(st.lists(st.sampled_from(ASPECTS), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    n = draw(st.integers(1, 5)) if "tiny" in aspects else draw(st.integers(12, 90))
    name_pool = (st.sampled_from(ODD_NAMES) if "unicode_names" in aspects
                 else st.sampled_from(CONTROL_NAMES) if "control_names" in aspects
                 else WILD_TEXT if "wild_names" in aspects else None)

    def name(default):
        return default if name_pool is None else draw(name_pool)

    def column(kind, rows):
        base = rng.normal(size=rows) * draw(st.sampled_from([1.0, 1e-3, 1e6]))
        if kind == "nan_inf":
            share = draw(st.sampled_from([0.05, 0.5, 0.95]))
            cells = [v if rng.random() > share else [math.nan, math.inf, -math.inf, None][rng.integers(4)]
                     for v in base.tolist()]
            return cells
        if kind == "mixed_types":
            pool = [1, 2.5, "two", True, None, "3", -7, "x y", False]
            return [pool[i] for i in rng.integers(len(pool), size=rows)]
        if kind == "magnitudes":
            values = base.tolist()
            for i in rng.integers(rows, size=max(1, rows // 4)):
                values[i] = MAGNITUDES[rng.integers(len(MAGNITUDES))]
            return values if draw(st.booleans()) else (base * 1e300).tolist() if draw(st.booleans()) \
                else (base * 1e-310).tolist()
        if kind == "constant":
            return [draw(st.sampled_from([0.0, 1e308, "same", "", True, 7]))] * rows
        if kind == "empty_strings":
            return [["", "a", " ", "b"][i] for i in rng.integers(4, size=rows)]
        if kind == "high_cardinality":
            return [f"level {i}" for i in rng.permutation(rows)]
        if kind == "numeric_text":
            return [["01", "1", "1.0", "1e3", " 2 ", "-0", "+3", "1_000"][i] for i in rng.integers(8, size=rows)]
        if kind == "dates":
            return [["2024-01-01", "2024-02-29", "1970-01-01T00:00:00", "2024-13-45", ""][i]
                    for i in rng.integers(5 if draw(st.booleans()) else 3, size=rows)]
        if kind == "arrow_types":
            make = ARROW_CELLS[draw(st.sampled_from(sorted(ARROW_CELLS)))]
            return [make(int(i)) for i in rng.integers(0, 1000, size=rows)]
        if kind == "missing_tokens":
            return [MISSING_TOKENS[rng.integers(len(MISSING_TOKENS))] if rng.random() < 0.3 else v
                    for v in base.tolist()]
        return base.tolist()

    def labels(rows):
        if "single_class" in aspects:
            return [draw(st.sampled_from([0, "x", "True", " "]))] * rows
        if "one_row_per_class" in aspects:
            return list(range(rows))
        if "list_labels" in aspects:
            return [[int(v)] for v in rng.integers(0, 2, size=rows)]
        if "many_classes" in aspects:
            return rng.integers(0, max(2, rows // 3), size=rows).tolist()
        pool = ([0, 1, 2] if draw(st.booleans()) else [0, 1])
        for aspect, values in (("unicode_labels", ODD_LABELS), ("numeric_labels", NUMERIC_LABELS),
                               ("bool_labels", BOOL_LABELS)):
            if aspect in aspects:
                pool = draw(st.lists(st.sampled_from(values), min_size=2, max_size=4, unique=True))
        if "empty_strings" in aspects and draw(st.booleans()):
            pool = pool + [""]
        if "float_labels" in aspects:
            return (rng.normal(size=rows) if draw(st.booleans()) else rng.integers(0, 2, rows) + 0.0).tolist()
        return [pool[i] for i in rng.integers(len(pool), size=rows)]

    kinds = [k for k in ("nan_inf", "mixed_types", "magnitudes", "constant", "empty_strings", "high_cardinality",
                         "numeric_text", "dates", "missing_tokens", "arrow_types") if k in aspects]
    n_features = 0 if "no_features" in aspects else draw(st.integers(1, 4))

    def table(rows):
        cols = [(name(f"f{i}"), column(kinds[i % len(kinds)] if kinds and i < len(kinds) + 1 else "normal", rows))
                for i in range(n_features)]
        return cols

    columns = table(n)
    if "duplicate_names" in aspects and columns:
        columns.append((columns[0][0], column("normal", n)))
    label_name = name("label")
    columns.insert(draw(st.integers(0, len(columns))), (label_name, labels(n)))
    id_name = source_name = None
    if "odd_ids" in aspects:
        id_name = name("row_id")
        style = draw(st.sampled_from(["text", "floats", "big", "dupes", "missing"]))
        ids = {"text": [f" r{i}\u00e9 " for i in range(n)], "floats": [i + 0.5 for i in range(n)],
               "big": [2 ** 63 - 1 - i for i in range(n)], "dupes": [i // 2 for i in range(n)],
               "missing": [None] + list(range(1, n))}[style]
        columns.append((id_name, ids))
    if "source" in aspects:
        source_name = name("source")
        columns.append((source_name, [["s1", "s2", "", "ü", " s1"][i] for i in rng.integers(5, size=n)]))
    if "role_clash" in aspects:
        clash = draw(st.sampled_from(["id=label", "source=label", "reserved id"]))
        if clash == "id=label":
            id_name = label_name
        elif clash == "source=label":
            source_name = label_name
        else:
            id_name = draw(st.sampled_from(RESERVED_NAMES))
            columns.append((id_name, list(range(n))))
    reference = None
    if "reference" in aspects:
        m = draw(st.integers(1, 5)) if "tiny" in aspects else draw(st.integers(12, 90))
        reference = [(col_name, (cells * (m // max(1, n) + 1))[:m]) for col_name, cells in columns]
        if draw(st.booleans()):  # the reference sees other values than the batch
            reference = [(col_name, column("normal", m) if i % 2 else cells)
                         for i, (col_name, cells) in enumerate(reference)]
    k = draw(st.sampled_from([50, 200])) if "huge_k" in aspects else 3
    cut = draw(st.floats(0.05, 0.999)) if "cut_short" in aspects else None
    return {"columns": columns, "label": label_name, "id": id_name, "source": source_name,
            "reference": reference, "k": k, "cut": cut}


# -- writing tables ---------------------------------------------------------------

def write_csv(columns, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in columns])
        n = len(columns[0][1]) if columns else 0
        for i in range(n):
            writer.writerow(["" if cells[i] is None else cells[i] for _, cells in columns])


def _arrow_array(cells):
    try:
        return pa.array(cells, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if c is None else str(c) for c in cells], type=pa.string())


def write_parquet(columns, path: Path) -> None:
    """Parquet allows duplicate and arbitrary field names; mixed cells become text."""
    table = pa.Table.from_arrays([_arrow_array(cells) for _, cells in columns],
                                 names=[name for name, _ in columns])
    pq.write_table(table, path)


# -- running the CLI in-process ----------------------------------------------------

def invoke(args, cwd: Path):
    """The CLI in-process, in `cwd` (so nothing a family writes by default, such as
    a ledger under the working directory, lands in the checkout)."""
    with contextlib.chdir(cwd):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def contract_problems(result, data: Path, before: str | None, outputs: dict[str, Path], rows: int | None,
                      json_stdout: bool) -> list[str]:
    """Every way this run broke the CLI contract (empty when it kept it)."""
    problems = []
    code = result.exit_code
    stderr, stdout = result.stderr, result.stdout
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"uncaught {type(result.exception).__name__}: {result.exception}")
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("traceback printed")
    if code not in (0, 1, 2):
        problems.append(f"exit {code}: {stderr.strip()[:300]}")
    if digest(data) != before:
        problems.append("input file changed")
    leftovers = [p.name for p in data.parent.rglob("*.tmp")]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    if code == 2:
        lines = stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("poison-check: error:"):
            problems.append(f"exit 2 without a one-line error: {stderr!r}")
        if any(path.exists() for path in outputs.values()):
            problems.append("output written although the run failed")
    if code in (0, 1):
        if stderr.strip():
            problems.append(f"stderr not empty with --quiet: {stderr.strip()[:200]!r}")
        if json_stdout:
            try:
                summary = json.loads(stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
                if summary["success"] != (code == 0):
                    problems.append("JSON success disagrees with the exit code")
            except ValueError as exc:
                problems.append(f"stdout is not strict JSON: {exc}")
        elif not stdout.startswith("poison-check PASSED" if code == 0 else "poison-check FAILED"):
            problems.append(f"no verdict line: {stdout[:200]!r}")
        for name, path in outputs.items():
            if not path.exists():
                problems.append(f"{name} output missing")
        findings = outputs.get("findings")
        if findings is not None and findings.exists() and rows is not None:
            table = pd.read_parquet(findings) if findings.suffix == ".parquet" else pd.read_csv(findings)
            if len(table) != rows:
                problems.append(f"findings have {len(table)} rows, input {rows}")
    return problems


def check_table(table, fmt: str, findings_fmt: str, json_stdout: bool) -> list[str]:
    columns = table["columns"]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write = write_csv if fmt == "csv" else write_parquet
        data = folder / f"data.{fmt}"
        write(columns, data)
        if table["cut"] is not None:  # a copy interrupted mid-transfer
            body = data.read_bytes()
            data.write_bytes(body[:max(1, int(len(body) * table["cut"]))])
        config = folder / "config.yml"
        config.write_text(table.get("config") or FAST_CONFIG.replace("k: 3", f"k: {table['k']}"), encoding="utf-8")
        out = folder / "out"
        out.mkdir()
        outputs = {"findings": out / f"findings.{findings_fmt}", "report": out / "report.json"}
        args = ["validate", data, "--label", table["label"], "--config", config, "--quiet",
                "--findings", outputs["findings"], "--report", outputs["report"]]
        for flag, key in (("--id-column", "id"), ("--source-column", "source")):
            if table[key] is not None:
                args += [flag, table[key]]
        reference = None
        if table["reference"] is not None:
            reference = folder / f"reference.{fmt}"
            write(table["reference"], reference)
            args += ["--reference", reference]
        if json_stdout:
            args += ["--format", "json"]
        before = digest(data), digest(reference) if reference else None
        result = invoke(args, out)
        rows = None if table["cut"] is not None else len(columns[0][1])  # a cut at a line end loses rows unseen
        problems = contract_problems(result, data, before[0], outputs, rows, json_stdout)
        if reference is not None and digest(reference) != before[1]:
            problems.append("reference file changed")
        return problems


RUN_FORMATS = st.tuples(st.sampled_from(["csv", "csv", "parquet"]), st.sampled_from(["csv", "parquet"]),
                        st.booleans())

HOSTILE_SETTINGS = settings(max_examples=45, deadline=None, database=None,
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture])


@HOSTILE_SETTINGS
@given(table=hostile_tables(), formats=RUN_FORMATS)
def test_hostile_tables_get_a_verdict_or_a_one_line_error(table, formats):
    assert check_table(table, *formats) == []


# -- the crashes the fuzzing found, pinned ---------------------------------------------

def spec(columns, label="label", **extra):
    return {"columns": columns, "label": label, "id": None, "source": None, "reference": None, "k": 3,
            "cut": None, **extra}


def features(n, seed=0):
    rng = np.random.default_rng(seed)
    return [("a", rng.normal(size=n).tolist()), ("b", rng.normal(size=n).tolist())]


def binary(n, seed=1):
    return np.random.default_rng(seed).integers(0, 2, n).tolist()


N = 40
REGRESSIONS = {
    # each of these exited 3 (internal error) or printed a broken line before the hardening
    "timestamps outside the nanosecond range": (
        "parquet", spec(features(N) + [("when", [ARROW_CELLS["timestamps"](i) for i in range(N)]),
                                       ("label", binary(N))])),
    "time-zone aware timestamps": (
        "parquet", spec(features(N) + [("when", [ARROW_CELLS["tz_timestamps"](i) for i in range(N)]),
                                       ("label", binary(N))])),
    "bytes that are not UTF-8": (
        "parquet", spec(features(N) + [("blob", [ARROW_CELLS["bytes"](i) for i in range(N)]),
                                       ("label", binary(N))])),
    "list-valued labels": ("parquet", spec(features(N) + [("label", [[v] for v in binary(N)])])),
    "an id column named like a findings column": (
        "csv", spec(features(N) + [("flagged", list(range(N))), ("label", binary(N))], id="flagged")),
    "a line break in the label's name": ("csv", spec(features(N) + [("a\nb", [1] * N)], label="a\nb")),
    "a NEL character in a column name": (
        "csv", spec([("x\x85y", ["1_000"] * 30 + ["2"] * (N - 30)), ("label", binary(N))])),
    "more folds than rows": ("csv", spec(features(6) + [("label", [0, 1] * 3)], config=(
        "neighbors:\n  k: 2\nexpectations:\n  label_consistency:\n    method: both\n    n_folds: 20\n"))),
    "a reference smaller than k": ("csv", spec(features(N) + [("label", binary(N))],
                                               reference=features(2) + [("label", [0, 1])])),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_inputs_that_once_crashed(case):
    fmt, table = REGRESSIONS[case]
    assert check_table(table, fmt, "csv", False) == []


def test_ten_thousand_categories_get_a_verdict_with_one_findings_row_each(tmp_path):
    rows = 10_000
    rng = np.random.default_rng(3)
    table = spec([("a", rng.normal(size=rows).tolist()), ("city", [f"city {i} é" for i in rng.permutation(rows)]),
                  ("label", rng.integers(0, 3, rows).tolist())])
    assert check_table(table, "csv", "parquet", False) == []
    assert check_table(table, "parquet", "csv", True) == []


# -- count mode --------------------------------------------------------------------

def fuzz_count(examples: int, random_seed: int = 20240610) -> tuple[int, int, dict[str, int]]:
    """(tried, broke the contract, {problem kind: count}) for a fixed seed."""
    tally = {"tried": 0, "crashed": 0}
    kinds: dict[str, int] = {}

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(table=hostile_tables(), formats=RUN_FORMATS)
    def run(table, formats):
        tally["tried"] += 1
        problems = check_table(table, *formats)
        if problems:
            tally["crashed"] += 1
            for problem in problems:
                kind = problem.split(":")[0][:60]
                kinds[kind] = kinds.get(kind, 0) + 1
            print(f"--- {formats}: {problems[0][:300]}", flush=True)

    run()
    return tally["tried"], tally["crashed"], kinds


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20240610)
    options = parser.parse_args()
    tried, crashed, kinds = fuzz_count(options.count, options.seed)
    print(f"hostile inputs tried: {tried}; broke the contract: {crashed}")
    for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d}  {kind}")
    sys.exit(0)
