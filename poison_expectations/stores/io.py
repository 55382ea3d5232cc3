"""Reading tables and writing outputs atomically.

Inputs are read-only to us, and read defensively: duplicate column names,
rows with more fields than the header, a truncated last line, a file that
changes while it is read, and tables over `limits.max_rows` or the memory
budget are input errors naming the file (the row and memory limits are
checked before the whole table is loaded: Parquet from its footer, CSV by
counting its records first, in constant memory). A trailing comma on every
line (an empty, unnamed last field) is dropped.

Writing (staging, the one publishing point) lives in `stores/staging.py`;
its names are re-exported here.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import pandas as pd

from poison_expectations.core.errors import InputError, PoisonCheckError
from poison_expectations.core.memory import ensure_fits
from poison_expectations.stores.files import (  # noqa: F401  (re-exported)
    READERS, _csv_header, _delimiter_hint, _trailing_empty, check_table_file, csv_records_over, resolved_path,
    table_columns, table_format,
)

CSV_MEMORY_FACTOR = 3.0  # peak bytes while parsing and holding a CSV, per byte of text
PARQUET_MEMORY_FACTOR = 2.0  # Arrow table plus pandas frame, per uncompressed byte
TAIL_BYTES = 1 << 16


# -- reading --------------------------------------------------------------------

def read_table(path: str | os.PathLike, *, max_rows: int | None = None,
               max_memory_mb: int | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, raising InputError with the file named."""
    path = check_table_file(path)
    fmt = table_format(path)
    before = _snapshot(path)
    try:
        frame = (_read_csv if fmt == "csv" else _read_parquet)(path, max_rows, max_memory_mb)
    except PoisonCheckError:
        _check_unchanged(path, before)
        raise
    except MemoryError:
        raise InputError(f"{path}: out of memory while reading; split the batch or lower "
                         "limits.max_rows") from None
    except Exception as exc:  # pandas, pyarrow and the csv module raise many types for bad files
        _check_unchanged(path, before)
        raise InputError(f"{path}: cannot read {fmt} file ({_first_line(exc)})") from exc
    _check_unchanged(path, before)
    _check_names(path, [str(c) for c in frame.columns])
    return frame


def _snapshot(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _check_unchanged(path: Path, before: tuple[int, int, int]) -> None:
    """A writer still at work would hand us a mix of old and new rows."""
    try:
        now = _snapshot(path)
    except OSError:
        now = None
    if now != before:
        raise InputError(f"{path}: the file changed while it was being read; run again once the writer "
                         "has finished")


def _check_names(path: Path, names: list[str]) -> None:
    seen, dupes = set(), []
    for name in names:
        if name in seen and name not in dupes and name != "":
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise InputError(f"{path}: duplicate column names {dupes}")


def _read_csv(path: Path, max_rows: int | None, max_memory_mb: int | None) -> pd.DataFrame:
    ensure_fits(path.stat().st_size * CSV_MEMORY_FACTOR, f"{path}: loading this CSV", max_memory_mb)
    header = _csv_header(path)
    if header is not None:
        _check_names(path, header)  # pandas would silently rename a second 'x' to 'x.1'
    if max_rows is not None and csv_records_over(path, max_rows):
        raise _too_many_rows(path, f"more than {max_rows}", max_rows)
    with warnings.catch_warnings():
        # with index_col=False pandas warns (and drops the extra fields) where it would
        # otherwise silently take the first field of every row as an index
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(path, low_memory=False, index_col=False,
                                nrows=None if max_rows is None else max_rows + 1)
        except pd.errors.ParserWarning:
            raise InputError(f"{path}: rows have more fields than the header has names; check the delimiter "
                             "and quoting") from None
    if max_rows is not None and len(frame) > max_rows:  # belt and braces; the count above decides
        raise _too_many_rows(path, f"more than {max_rows}", max_rows)
    if header and len(frame.columns) == 1:
        _delimiter_hint(path, header[0])
    if header:
        frame = _drop_trailing_empty(frame, header)
        _check_last_record(path, len(header) - _trailing_empty(header))
    return frame


def _drop_trailing_empty(frame: pd.DataFrame, header: list[str]) -> pd.DataFrame:
    """Drop the columns of a trailing comma (empty name, no value in any row):
    pandas would call them 'Unnamed: 13', a column the file does not have."""
    empty = _trailing_empty(header)
    if not empty or len(frame.columns) != len(header):
        return frame
    tail = frame.iloc[:, len(header) - empty:]
    if not tail.isna().all().all():
        return frame  # an unnamed column that holds data: keep it under pandas' name
    return frame.iloc[:, :len(header) - empty]


def _check_last_record(path: Path, n_fields: int) -> None:
    """A last line with fewer fields than the header: the file was cut short."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - TAIL_BYTES))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if len(lines) < 2:
        return
    last = lines[-1].decode("utf-8", errors="replace")
    if last.count('"') % 2:
        return  # the end of a multi-line quoted field: cannot be judged from one line
    fields = next(csv.reader([last]), [])
    if 0 < len(fields) < n_fields:
        raise InputError(f"{path}: the last line has {len(fields)} of {n_fields} fields; the file looks "
                         "truncated")


def _read_parquet(path: Path, max_rows: int | None, max_memory_mb: int | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:  # the footer only
        names = list(parquet.schema_arrow.names)
        meta = parquet.metadata
    _check_names(path, names)
    if max_rows is not None and meta.num_rows > max_rows:
        raise _too_many_rows(path, str(meta.num_rows), max_rows)
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    ensure_fits(uncompressed * PARQUET_MEMORY_FACTOR, f"{path}: loading this Parquet file", max_memory_mb)
    return pd.read_parquet(path)


def _too_many_rows(path: Path, count: str, max_rows: int) -> InputError:
    return InputError(f"{path}: {count} rows exceed limits.max_rows={max_rows}; split the batch or raise the "
                      "limit in the config")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# -- writing (stores/staging.py; re-exported: callers import them from here) ------

from poison_expectations.stores.staging import (  # noqa: E402,F401
    OutputStage, atomic_path, check_writable, check_writable_folder, signals_deferred, staged_outputs,
    table_writer, text_writer, write_text_atomic,
)


def write_table_atomic(target: str | os.PathLike, frame: pd.DataFrame, fmt: str | None = None) -> None:
    """Write `frame` as CSV or Parquet (by extension unless `fmt` is given)."""
    fmt = fmt or table_format(target)
    with staged_outputs() as stage:
        table_writer(frame, fmt)(stage.path(target))


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with staged_outputs() as stage:
        stage.path(target).write_bytes(data)
