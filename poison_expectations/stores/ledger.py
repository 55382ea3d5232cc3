"""Source-reputation ledger: every run's per-source counts, in a real database.

SQLAlchemy 2 Core. This module is the store's API (`Ledger`, its records,
and every public name of the ledger); the tables and migrations are in
`ledger_schema`, URLs and the engine in `ledger_engine`, the Beta-posterior
arithmetic in `reputation`.

Safety under concurrency and crashes:
- every write is ONE transaction (a run with all its sources, or a forget),
  so a process killed mid-write leaves either the whole run or nothing;
- SQLite runs in WAL mode with `synchronous=FULL`, a busy timeout, and
  `BEGIN IMMEDIATE` transactions (see `ledger_engine`);
- transient failures ("database is locked", serialization failures, a
  concurrent migration) are retried with jittered exponential backoff;
- totals are never stored as counters that a lost update could corrupt:
  reputations are sums over the per-run records.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from poison_expectations.core.errors import ConfigError, OutputError
from poison_expectations.stores.ledger_engine import (BUSY_TIMEOUT_SECONDS, DEFAULT_LEDGER, LEDGER_ENV,
                                                      default_ledger, first_line, is_transient, ledger_exists,
                                                      ledger_url, make_engine, safe_url, sqlite_path)
from poison_expectations.stores.ledger_schema import (MIGRATIONS, SCHEMA_VERSION, metadata, runs, runs_batch_key,
                                                      schema_version, source_runs, source_signal_flags)
from poison_expectations.stores.reputation import CREDIBLE_LEVEL, PRIOR_BAD, PRIOR_GOOD, Reputation, reputation

RETRY_DEADLINE_SECONDS = 120.0

T = TypeVar("T")


# -- records ------------------------------------------------------------------

@dataclass(frozen=True)
class SourceRecord:
    """One source's numbers in one run."""

    source: str
    rows: int
    bad_rows: int
    verdict: str
    flagged: dict[str, int] = field(default_factory=dict)  # signal -> flagged rows


@dataclass(frozen=True)
class SourceHistory:
    """A source's totals over the ledger."""

    source: str
    runs: int
    rows: int
    bad_rows: int
    first_seen: datetime | None
    last_seen: datetime | None
    last_verdict: str | None


# -- the ledger -----------------------------------------------------------------

class Ledger:
    """Open (creating and migrating when needed) the ledger at `url`."""

    def __init__(self, url: str | os.PathLike | None = None, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS,
                 retry_deadline: float = RETRY_DEADLINE_SECONDS):
        self.url = ledger_url(url)
        self.retry_deadline = retry_deadline
        path = sqlite_path(self.url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"ledger {path}: cannot create its folder ({exc.strerror})") from None
        fresh = path is not None and not path.exists()
        self.engine = make_engine(self.url, busy_timeout)
        try:
            # two processes migrating a fresh database at once: the loser's insert into
            # schema_version violates its primary key; it retries and finds the work done
            self.version = self._retrying(self._migrate, retry_integrity=True)
        except BaseException:
            self.engine.dispose()
            if fresh:  # a full disk must not leave an empty ledger.db (it would read as a valid, empty ledger)
                _remove_unfinished(path)
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------
    def record_run(self, run_id: str, records: Iterable[SourceRecord], *, success: bool,
                   data_path: str | None = None, recorded_at: datetime | None = None,
                   batch_key: str | None = None) -> bool:
        """Record one run with all its sources in one transaction.

        Idempotent: a run id, or a `batch_key` (see `batch_key()`), already in
        the ledger is left as it is (returns False), so a retried batch never
        counts twice.
        """
        records = list(records)
        for record in records:
            _check_record(record)
        if len({r.source for r in records}) != len(records):
            raise ValueError(f"ledger run {run_id}: a source appears twice")
        when = recorded_at or datetime.now(timezone.utc)

        def write(conn: Connection) -> bool:
            seen = runs.c.run_id == run_id
            if batch_key is not None:
                seen = seen | (runs.c.batch_key == batch_key)
            if conn.execute(select(runs.c.run_id).where(seen)).first():
                return False
            conn.execute(insert(runs).values(run_id=run_id, recorded_at=when, data_path=data_path,
                                             success=bool(success), sources=len(records),
                                             rows=sum(r.rows for r in records), batch_key=batch_key))
            if not records:
                return True
            conn.execute(insert(source_runs), [
                {"run_id": run_id, "source": r.source, "recorded_at": when, "rows": r.rows,
                 "bad_rows": r.bad_rows, "verdict": r.verdict[:200]} for r in records])
            ids = dict(conn.execute(select(source_runs.c.source, source_runs.c.id)
                                    .where(source_runs.c.run_id == run_id)).all())
            flags = [{"source_run_id": ids[r.source], "signal": signal, "flagged": int(count)}
                     for r in records for signal, count in sorted(r.flagged.items())]
            if flags:
                conn.execute(insert(source_signal_flags), flags)
            return True

        def attempt() -> bool:
            try:
                return self._in_transaction(write)
            except IntegrityError:  # a concurrent writer of the same run or batch won (PostgreSQL:
                return self._in_transaction(write)  # the unique key decides); now seen: False

        return self._retrying(attempt)

    def forget(self, source: str) -> int:
        """Delete every record of `source`; returns how many run records went."""

        def write(conn: Connection) -> int:
            found = conn.execute(select(source_runs.c.id, source_runs.c.run_id, source_runs.c.rows)
                                 .where(source_runs.c.source == source)).all()
            if not found:
                return 0
            ids = [row.id for row in found]
            for chunk in _chunks(ids, 500):
                conn.execute(delete(source_signal_flags).where(source_signal_flags.c.source_run_id.in_(chunk)))
                conn.execute(delete(source_runs).where(source_runs.c.id.in_(chunk)))
            for row in found:
                conn.execute(update(runs).where(runs.c.run_id == row.run_id)
                             .values(sources=runs.c.sources - 1, rows=runs.c.rows - row.rows))
            conn.execute(delete(runs).where(runs.c.sources <= 0))
            return len(found)

        return self._transaction(write)

    # -- reads -------------------------------------------------------------------
    def history(self, sources: Iterable[str] | None = None) -> dict[str, SourceHistory]:
        """Totals per source (all sources, or only those named)."""
        wanted = None if sources is None else sorted(set(map(str, sources)))

        def read(conn: Connection) -> dict[str, SourceHistory]:
            query = (select(source_runs.c.source, func.count().label("runs"), func.sum(source_runs.c.rows),
                            func.sum(source_runs.c.bad_rows), func.min(source_runs.c.recorded_at),
                            func.max(source_runs.c.recorded_at))
                     .group_by(source_runs.c.source))
            out: dict[str, SourceHistory] = {}
            for chunk in ([None] if wanted is None else _chunks(wanted, 500)):
                q = query if chunk is None else query.where(source_runs.c.source.in_(chunk))
                for row in conn.execute(q):
                    out[row[0]] = SourceHistory(row[0], int(row[1]), int(row[2] or 0), int(row[3] or 0),
                                                _aware(row[4]), _aware(row[5]), None)
            last = self._last_verdicts(conn, list(out))
            return {s: SourceHistory(**{**h.__dict__, "last_verdict": last.get(s)}) for s, h in sorted(out.items())}

        return self._transaction(read)

    def _last_verdicts(self, conn: Connection, sources: list[str]) -> dict[str, str]:
        latest = (select(source_runs.c.source, func.max(source_runs.c.id).label("last_id"))
                  .group_by(source_runs.c.source))
        out = {}
        for chunk in _chunks(sources, 500):
            sub = latest.where(source_runs.c.source.in_(chunk)).subquery()
            q = select(source_runs.c.source, source_runs.c.verdict).join(sub, source_runs.c.id == sub.c.last_id)
            out.update({row[0]: row[1] for row in conn.execute(q)})
        return out

    def records(self, source: str | None = None) -> list[dict[str, Any]]:
        """Every (run, source) record, oldest first, with per-signal flagged counts."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            q = (select(source_runs, runs.c.success, runs.c.data_path)
                 .join(runs, runs.c.run_id == source_runs.c.run_id)
                 .order_by(source_runs.c.id))
            if source is not None:
                q = q.where(source_runs.c.source == source)
            rows = [dict(r._mapping) for r in conn.execute(q)]
            flags: dict[int, dict[str, int]] = {}
            fq = select(source_signal_flags)
            if source is not None:
                fq = fq.join(source_runs, source_runs.c.id == source_signal_flags.c.source_run_id).where(
                    source_runs.c.source == source)
            for f in conn.execute(fq):
                flags.setdefault(f.source_run_id, {})[f.signal] = int(f.flagged)
            for row in rows:
                row["recorded_at"] = _aware(row["recorded_at"])
                row["flagged"] = flags.get(row.pop("id"), {})
            return rows

        return self._transaction(read)

    def integrity_problems(self) -> list[str]:
        """Empty when the ledger is consistent: the database's own check, foreign
        keys, and every run holding exactly the source records it announced."""

        def read(conn: Connection) -> list[str]:
            problems = []
            if self.engine.dialect.name == "sqlite":
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems.extend(f"sqlite integrity_check: {r}" for r in result[:10])
                for r in conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()[:10]:
                    problems.append(f"foreign key violation in table {r[0]} (rowid {r[1]})")
            per_run = (select(source_runs.c.run_id, func.count().label("n"), func.sum(source_runs.c.rows).label("r"))
                       .group_by(source_runs.c.run_id).subquery())
            q = (select(runs.c.run_id, runs.c.sources, runs.c.rows, per_run.c.n, per_run.c.r)
                 .outerjoin(per_run, per_run.c.run_id == runs.c.run_id))
            for row in conn.execute(q):
                if (row.n or 0) != row.sources or (row.r or 0) != row.rows:
                    problems.append(f"run {row.run_id}: announces {row.sources} sources / {row.rows} rows, "
                                    f"holds {row.n or 0} / {row.r or 0}")
            orphans = conn.execute(select(func.count()).select_from(source_runs).where(
                ~source_runs.c.run_id.in_(select(runs.c.run_id)))).scalar_one()
            if orphans:
                problems.append(f"{orphans} source records without their run")
            bad = conn.execute(select(func.count()).select_from(source_runs).where(
                (source_runs.c.bad_rows < 0) | (source_runs.c.bad_rows > source_runs.c.rows))).scalar_one()
            if bad:
                problems.append(f"{bad} source records with bad_rows outside [0, rows]")
            return problems

        return self._transaction(read)

    # -- plumbing ----------------------------------------------------------------
    def _migrate(self) -> int:
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise ConfigError(f"ledger {self.url}: schema version {current} is newer than this "
                                  f"poison-expectations understands ({SCHEMA_VERSION}); upgrade the package")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
                conn.execute(insert(schema_version).values(version=version,
                                                           applied_at=datetime.now(timezone.utc)))
            return SCHEMA_VERSION

    def _transaction(self, body: Callable[[Connection], T]) -> T:
        return self._retrying(lambda: self._in_transaction(body))

    def _in_transaction(self, body: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return body(conn)

    def _retrying(self, attempt: Callable[[], T], retry_integrity: bool = False) -> T:
        """Run `attempt`, retrying transient lock/serialization errors until the deadline."""
        deadline = time.monotonic() + self.retry_deadline
        delay = 0.02
        while True:
            try:
                return attempt()
            except DBAPIError as exc:
                transient = is_transient(exc) or (retry_integrity and (
                    isinstance(exc, IntegrityError) or "already exists" in str(exc).lower()))
                if not transient or time.monotonic() + delay > deadline:
                    raise OutputError(f"ledger {safe_url(self.url)}: {first_line(exc)}") from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


def batch_key(frame, source_column: str | None) -> str:
    """Content key of a batch: its column names and every cell (row order
    included) plus the source column, so the same rows recorded again (a
    retry after exit 2/130/143, an Airflow retry) are recognised."""
    import hashlib

    import pandas as pd

    try:
        rows = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (embedding lists): hash their text
        rows = pd.util.hash_pandas_object(frame.astype(str), index=False)
    digest = hashlib.sha256(repr((list(map(str, frame.columns)), source_column)).encode())
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()


def _remove_unfinished(path: Path) -> None:
    """Remove the empty SQLite file (and empty side files) that a failed
    first open left. A file with any byte in it is left alone: another
    process may be creating the same ledger at this moment."""
    for suffix in ("", "-wal", "-journal"):
        candidate = Path(f"{path}{suffix}")
        with contextlib.suppress(OSError):
            if candidate.stat().st_size:
                return
    for suffix in ("-wal", "-shm", "-journal", ""):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


def _check_record(record: SourceRecord) -> None:
    if record.rows < 0 or not 0 <= record.bad_rows <= record.rows:
        raise ValueError(f"ledger record for {record.source!r}: bad_rows {record.bad_rows} not in [0, "
                         f"{record.rows}]")


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _aware(value):
    """SQLite hands back naive datetimes; they were written in UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def dumps_records(records: list[dict[str, Any]]) -> str:
    """JSON text of ledger records (datetimes as ISO 8601)."""
    return json.dumps(records, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


__all__ = ["Ledger", "SourceRecord", "SourceHistory", "Reputation", "reputation", "ledger_url", "ledger_exists",
           "batch_key", "runs_batch_key",
           "sqlite_path", "dumps_records", "DEFAULT_LEDGER", "LEDGER_ENV", "default_ledger", "BUSY_TIMEOUT_SECONDS",
           "RETRY_DEADLINE_SECONDS", "SCHEMA_VERSION", "MIGRATIONS", "PRIOR_BAD", "PRIOR_GOOD", "CREDIBLE_LEVEL",
           "metadata", "schema_version", "runs", "source_runs", "source_signal_flags"]
