"""Table files before pandas: the format, the path checks and the header.

Nothing here imports pandas (pyarrow only for a Parquet schema), so the CLI
can refuse a missing file, a symlink loop, a FIFO or a missing column in a
fraction of a second. `stores.io` reads the tables and re-exports these.
"""

from __future__ import annotations

import csv
import errno
import os
import stat
from pathlib import Path

from poison_expectations.core.errors import InputError, PoisonCheckError

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | os.PathLike) -> str:
    """'csv' or 'parquet', chosen by extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise InputError(
            f"{path}: unknown file extension {suffix!r}; use .csv or .parquet"
        )
    return READERS[suffix]


def check_table_file(path: str | os.PathLike, what: str = "") -> Path:
    """A readable table path: known extension, exists, a regular file (not a
    folder, FIFO or device), no symlink loop. Cheap: no pandas, no reading."""
    path = Path(path)
    table_format(path)
    prefix = f"{what} {path}" if what else str(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{prefix}: file not found") from None
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise InputError(f"{prefix}: cannot open ({reason})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{prefix}: not a regular file")
    return path


def resolved_path(path: str | os.PathLike, error: type[PoisonCheckError] = InputError) -> Path:
    """`Path.resolve()`, with a symlink loop as a one-line error (not RuntimeError)."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:
        raise error(f"{path}: cannot resolve the path ({_first_line(exc)})") from None


def table_columns(path: str | os.PathLike, what: str = "") -> list[str]:
    """The column names of a table file, from the CSV header or the Parquet
    schema only (no rows read), as `read_table` will name them."""
    path = check_table_file(path, what)
    try:
        if table_format(path) == "parquet":
            import pyarrow.parquet as pq

            return [str(name) for name in pq.read_schema(path).names]
        header = _csv_header(path) or []
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad footer; read_table reports it
        raise InputError(f"{path}: cannot read {table_format(path)} file ({_first_line(exc)})") from None
    if not header:
        raise InputError(f"{path}: cannot read csv file (No columns to parse from file)")  # as pandas says
    if len(header) == 1:
        _delimiter_hint(path, header[0])
    return header[:len(header) - _trailing_empty(header)]


def _trailing_empty(header: list[str]) -> int:
    """How many empty names end the header: a trailing comma on every line."""
    count = 0
    while count < len(header) - 1 and not header[-1 - count].strip():
        count += 1
    return count


def csv_records_over(path: Path, max_rows: int) -> bool:
    """Whether the CSV holds more than `max_rows` data records, decided in
    constant memory: a line count is an upper bound (a quoted field may span
    lines, blank lines are skipped), so only a file whose line count is over
    the limit has its records counted exactly, stopping at max_rows + 1: by
    non-empty lines when the file has no quote character, else by parsing."""
    size = path.stat().st_size
    if size // 2 <= max_rows:  # every record but the last takes at least 2 bytes
        return False
    lines, quoted = 0, False
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            quoted = quoted or b'"' in chunk
    if lines <= max_rows:  # header + max_rows records have at least max_rows line breaks
        return False
    records = -1  # the header
    if not quoted:  # one record per non-empty line
        with open(path, "rb") as handle:
            for line in handle:
                records += bool(line.strip(b"\r\n"))
                if records > max_rows:
                    return True
        return False
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        for record in csv.reader(handle):
            records += bool(record)
            if records > max_rows:
                return True
    return False


def _csv_header(path: Path) -> list[str] | None:
    """The raw header record (pandas skips leading blank lines; so do we)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for record in csv.reader(handle):
                if record:
                    return record
    except csv.Error:
        return None  # e.g. a header cell over the csv module's size limit; pandas decides
    return []


def _delimiter_hint(path: Path, name: str) -> None:
    for delimiter, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if delimiter in name:
            raise InputError(f"{path}: found one column named {name[:60]!r}; the file looks {label}-separated, "
                             "but poison-check reads comma-separated CSV")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
