"""Reading tables and writing outputs atomically.

Inputs are read-only to us. Every output goes to a temporary file in the
target folder and is renamed into place, so a crash or a full disk never
leaves a partial file under the requested name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from .errors import InputError, OutputError

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | os.PathLike) -> str:
    """'csv' or 'parquet', chosen by extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in READERS:
        raise InputError(
            f"{path}: unknown file extension {suffix!r}; use .csv or .parquet"
        )
    return READERS[suffix]


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet file, raising InputError with the file named."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, low_memory=False)
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {fmt} file ({_first_line(exc)})") from exc
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise InputError(f"{path}: cannot read {fmt} file ({_first_line(exc)})") from exc
    if len(frame.columns) != len(set(map(str, frame.columns))):
        dupes = sorted({str(c) for c in frame.columns if list(map(str, frame.columns)).count(str(c)) > 1})
        raise InputError(f"{path}: duplicate column names {dupes}")
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success.

    On any error the temporary file is removed and the target is untouched.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{target}: output folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write to {folder} ({exc.strerror or exc})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    _apply_umask(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def _apply_umask(path: Path) -> None:
    """mkstemp creates 0600 files; outputs get the usual 0666 & ~umask."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def write_table_atomic(target: str | os.PathLike, frame: pd.DataFrame, fmt: str | None = None) -> None:
    """Write `frame` as CSV or Parquet (by extension unless `fmt` is given)."""
    fmt = fmt or table_format(target)
    writer: Callable[[Path], None]
    if fmt == "csv":
        writer = lambda p: frame.to_csv(p, index=False)  # noqa: E731
    else:
        writer = lambda p: frame.to_parquet(p, index=False)  # noqa: E731
    with atomic_path(target) as tmp:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
