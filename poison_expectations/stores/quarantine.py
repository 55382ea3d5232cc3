"""Accepted and quarantined rows, written apart in the input's own format.

Both files hold the input rows unchanged: a CSV input is streamed record by
record (csv module, constant memory), so "007", "1.50" or an empty cell come
out exactly as they went in (only CSV quoting may be normalised; a record
the csv module cannot read sends the file through pandas as text cells
instead). A UTF-8 byte order mark and CRLF line endings are kept too: the
outputs feed the same downstream readers as the input. A Parquet input is split with pyarrow,
so the schema, types and metadata are the input's. The quarantine file
adds `poison_score` and `reasons` (prefixed `poison_check_` if the input
already has such a column). Every file is written atomically.

Used by `jobs.write_outputs` (CLI, Airflow) and by the GX checkpoint action.
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from poison_expectations.core.errors import OutputError
from poison_expectations.stores.io import atomic_path, staged_outputs, table_format, table_writer, write_table_atomic

if TYPE_CHECKING:
    import pyarrow as pa

QUARANTINE_COLUMNS = ("poison_score", "reasons")
SPLIT_OUTPUTS = ("accepted", "quarantine")


def split_format(source: str | os.PathLike | None, target: str | os.PathLike, name: str) -> str:
    """The format to write `target` in: the input's; the target's extension must agree."""
    wanted = table_format(target)
    if source is None:
        return wanted
    have = table_format(source)
    if have != wanted:
        raise OutputError(f"{target}: the {name} rows keep the input's format ({have}); "
                          f"give the {name} output a .{have} name")
    return have


def quarantine_names(columns) -> dict[str, str]:
    """Our added column names, renamed away from any input column."""
    existing = {str(c) for c in columns}
    return {c: (c if c not in existing else f"poison_check_{c}") for c in QUARANTINE_COLUMNS}


def split_frames(data: pd.DataFrame, findings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, quarantined) from the in-memory input (typed as read)."""
    flagged = findings["flagged"].to_numpy(dtype=bool)
    accepted = data.loc[~flagged]
    quarantined = data.loc[flagged].copy()
    for column, name in quarantine_names(data.columns).items():
        quarantined[name] = findings[column].to_numpy()[flagged]
    return accepted, quarantined


def write_split(findings: pd.DataFrame, data: pd.DataFrame, source: str | os.PathLike | None = None,
                accepted: str | os.PathLike | None = None,
                quarantine: str | os.PathLike | None = None, stage=None) -> dict[str, str | None]:
    """Write the accepted and/or quarantined rows; `source` is the input file
    (its format and exact cells are kept), None for an in-memory batch. With
    an `io.OutputStage`, the files are staged with the run's other outputs
    (renamed together); without one, each is written atomically."""
    targets = {"accepted": accepted, "quarantine": quarantine}
    written: dict[str, str | None] = {name: None for name in SPLIT_OUTPUTS}
    if not any(targets.values()):
        return written
    flagged = findings["flagged"].to_numpy(dtype=bool)
    extra = {column: findings[column].to_numpy() for column in QUARANTINE_COLUMNS}
    fmt = table_format(source) if source is not None else None
    for name, target in targets.items():
        if target is not None:
            split_format(source, target, name)
    if fmt == "csv" and _stream_csv_split(Path(source), flagged, extra, targets, stage):
        return {name: (str(target) if target is not None else None) for name, target in targets.items()}
    if fmt == "parquet":
        writer = _parquet_writer(Path(source), len(data), stage)
    else:
        rows = _csv_cells(Path(source), len(data)) if fmt == "csv" else data
        writer = _frame_writer(rows, stage, csv_marks(Path(source)) if fmt == "csv" else None)
    for name, target in targets.items():
        if target is None:
            continue
        keep = flagged if name == "quarantine" else ~flagged
        writer(target, keep, extra if name == "quarantine" else None)
        written[name] = str(target)
    return written


def _stream_csv_split(source: Path, flagged: np.ndarray, extra: dict, targets: dict, stage) -> bool:
    """Stream the input's records into the targets (staged with the run's
    other outputs, else renamed together on success). Blank lines are skipped
    and short records padded, as pandas reads them, so record i is validated
    row i. False when the csv module cannot read the file (e.g. a cell over
    its size limit): the caller then splits pandas' text cells instead."""
    if stage is None:
        with staged_outputs() as own:
            return _stream_csv_split(source, flagged, extra, targets, own)
    paths = {name: stage.path(target) for name, target in targets.items() if target is not None}
    try:
        _split_csv_records(source, flagged, extra, paths)
    except csv.Error:
        for path in paths.values():
            stage.drop(path)
        return False
    return True


def _split_csv_records(source: Path, flagged: np.ndarray, extra: dict, paths: dict) -> None:
    expected = len(flagged)
    scores, reasons = extra["poison_score"], extra["reasons"]
    encoding, terminator = csv_marks(source)
    with contextlib.ExitStack() as stack:
        handles = {name: stack.enter_context(open(path, "w", newline="", encoding=encoding))
                   for name, path in paths.items()}
        writers = {name: csv.writer(handle, lineterminator=terminator) for name, handle in handles.items()}
        accepted, quarantine = writers.get("accepted"), writers.get("quarantine")
        row, extra_records = 0, False
        with open(source, newline="", encoding="utf-8-sig") as handle:
            records = (record for record in csv.reader(handle) if record)
            header = next(records, [])
            width = len(header)
            if accepted:
                accepted.writerow(header)
            if quarantine:
                names = quarantine_names(header)
                quarantine.writerow(header + [names[c] for c in QUARANTINE_COLUMNS])
            for record in records:
                if row >= expected:
                    extra_records = True
                    break
                if len(record) < width:
                    record = record + [""] * (width - len(record))
                if not flagged[row]:
                    if accepted:
                        accepted.writerow(record)
                elif quarantine:
                    quarantine.writerow(record + [repr(float(scores[row])), str(reasons[row])])
                row += 1
        if extra_records or row != expected:
            raise OutputError(f"{source}: changed while it was being checked ({expected} rows validated, "
                              "a different number now); accepted/quarantine not written")
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())


def csv_marks(source: Path) -> tuple[str, str]:
    """(encoding, line terminator) that reproduce the input's byte order mark
    and line endings: 'utf-8-sig' when it starts with a UTF-8 BOM, and CRLF
    when its first line ends with CRLF."""
    with open(source, "rb") as handle:
        head = handle.read(1 << 16)
    encoding = "utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8"
    end = head.find(b"\n")
    terminator = "\r\n" if end > 0 and head[end - 1:end] == b"\r" else "\n"
    return encoding, terminator


def _csv_cells(source: Path, expected_rows: int) -> pd.DataFrame:
    """The input CSV as text cells (the exact strings of every column)."""
    cells = pd.read_csv(source, dtype=str, keep_default_na=False, low_memory=False)
    if len(cells) != expected_rows:
        raise OutputError(f"{source}: changed while it was being checked ({len(cells)} rows now, "
                          f"{expected_rows} validated); accepted/quarantine not written")
    return cells


def _frame_writer(frame: pd.DataFrame, stage=None, marks: tuple[str, str] | None = None):
    def write(target, keep: np.ndarray, extra: dict | None) -> None:
        part = frame.loc[keep].copy()
        if extra is not None:
            for column, name in quarantine_names(frame.columns).items():
                part[name] = extra[column][keep]
        if marks is not None:  # CSV text cells: keep the input's BOM and line endings
            with contextlib.ExitStack() as stack:
                path = stage.path(target) if stage is not None else stack.enter_context(atomic_path(target))
                part.to_csv(path, index=False, encoding=marks[0], lineterminator=marks[1])
        elif stage is None:
            write_table_atomic(target, part)
        else:
            table_writer(part, table_format(target))(stage.path(target))
    return write


def _parquet_writer(source: Path, expected_rows: int, stage=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    if table.num_rows != expected_rows:
        raise OutputError(f"{source}: changed while it was being checked ({table.num_rows} rows now, "
                          f"{expected_rows} validated); accepted/quarantine not written")

    def write(target, keep: np.ndarray, extra: dict | None) -> None:
        part: pa.Table = table.filter(pa.array(keep))
        if extra is not None:
            names = quarantine_names(table.column_names)
            part = part.append_column(names["poison_score"], pa.array(extra["poison_score"][keep], pa.float64()))
            part = part.append_column(names["reasons"],
                                      pa.array([str(r) for r in extra["reasons"][keep]], pa.string()))
        if stage is not None:
            _write_parquet(part, stage.path(target))
            return
        with atomic_path(target) as tmp:
            _write_parquet(part, tmp)
    return write


def _write_parquet(table, path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
