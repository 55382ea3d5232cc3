"""Reading tables and writing outputs atomically.

Inputs are read-only to us, and read defensively: duplicate column names,
rows with more fields than the header, a truncated last line, a file that
changes while it is read, and tables over `limits.max_rows` or the memory
budget are input errors naming the file (the row and memory limits are
checked before the whole table is loaded: Parquet from its footer, CSV by
reading at most max_rows + 1 rows).

Every output goes to a temporary file in its target folder; all outputs of
a run are renamed into place together at the end, with SIGINT/SIGTERM held
back during the renames, so a crash, an interrupt or a full disk never
leaves a partial file under a requested name.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from poison_expectations.core.errors import InputError, OutputError, PoisonCheckError
from poison_expectations.core.memory import ensure_fits

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CSV_MEMORY_FACTOR = 3.0  # peak bytes while parsing and holding a CSV, per byte of text
PARQUET_MEMORY_FACTOR = 2.0  # Arrow table plus pandas frame, per uncompressed byte
TAIL_BYTES = 1 << 16


def table_format(path: str | os.PathLike) -> str:
    """'csv' or 'parquet', chosen by extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise InputError(
            f"{path}: unknown file extension {suffix!r}; use .csv or .parquet"
        )
    return READERS[suffix]


# -- reading --------------------------------------------------------------------

def read_table(path: str | os.PathLike, *, max_rows: int | None = None,
               max_memory_mb: int | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, raising InputError with the file named."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
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
    if max_rows is not None and len(frame) > max_rows:
        raise _too_many_rows(path, f"more than {max_rows}", max_rows)
    if header and len(frame.columns) == 1:
        _delimiter_hint(path, header[0])
    if header:
        _check_last_record(path, len(header))
    return frame


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


# -- writing --------------------------------------------------------------------

def check_writable(target: str | os.PathLike) -> None:
    """Fail before a long run when `target` could not be written at its end."""
    target = Path(target)
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"{target}: output folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{target}: {folder} is not a folder")
    if target.is_dir():
        raise OutputError(f"{target}: is a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write to {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


class OutputStage:
    """Temporary files beside their targets, renamed onto them together."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []  # (temporary, target)
        self.current: Path | None = None  # the target being written, for messages

    def path(self, target: str | os.PathLike) -> Path:
        """A new temporary file for `target` (same folder, so the rename is atomic)."""
        target = Path(target)
        self.current = target
        folder = target.parent
        if not folder.is_dir():
            raise OutputError(f"{target}: output folder {folder} does not exist or is not a folder")
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        tmp = Path(name)
        self.staged.append((tmp, target))
        _apply_umask(tmp)
        return tmp

    def commit(self) -> None:
        """Rename every staged file onto its target, with interrupts held back."""
        with signals_deferred():
            while self.staged:
                tmp, target = self.staged[0]
                self.current = target
                os.replace(tmp, target)
                self.staged.pop(0)

    def drop(self, tmp: Path) -> None:
        """Remove one staged file (its target is written another way)."""
        _remove_quietly(tmp)
        self.staged = [(t, target) for t, target in self.staged if t != tmp]

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _remove_quietly(tmp)
        self.staged.clear()


@contextlib.contextmanager
def staged_outputs() -> Iterator[OutputStage]:
    """Stage outputs in the block; on success rename them all, else remove them.

    OSError (no space, permission, read-only file system) and Arrow write
    errors become OutputError naming the file; nothing partial remains.
    """
    stage = OutputStage()
    try:
        yield stage
        stage.commit()
    except OSError as exc:
        stage.discard()
        raise OutputError(f"{stage.current}: cannot write ({exc.strerror or _first_line(exc)})") from exc
    except BaseException as exc:
        stage.discard()
        if _is_arrow_error(exc):
            raise OutputError(f"{stage.current}: cannot write ({_first_line(exc)})") from exc
        raise


def _is_arrow_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("pyarrow")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success."""
    with staged_outputs() as stage:
        yield stage.path(target)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for a short critical section, then deliver them.

    Python runs signal handlers in the main thread only, so swapping them
    there covers signals delivered to any thread (e.g. OpenMP workers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda s, _f: received.append(s)) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received[0])


def _apply_umask(path: Path) -> None:
    """mkstemp creates 0600 files; outputs get the usual 0666 & ~umask."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def text_writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return write


def table_writer(frame: pd.DataFrame, fmt: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    return write


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with staged_outputs() as stage:
        text_writer(text)(stage.path(target))


def write_table_atomic(target: str | os.PathLike, frame: pd.DataFrame, fmt: str | None = None) -> None:
    """Write `frame` as CSV or Parquet (by extension unless `fmt` is given)."""
    fmt = fmt or table_format(target)
    with staged_outputs() as stage:
        table_writer(frame, fmt)(stage.path(target))


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with staged_outputs() as stage:
        stage.path(target).write_bytes(data)
