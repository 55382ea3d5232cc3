"""Source-reputation ledger: every run's per-source counts, in a real database.

SQLAlchemy 2 Core. The default store is a SQLite file (`.poison/reputation.db`
under the working directory); any SQLAlchemy URL (PostgreSQL included) works.

Safety under concurrency and crashes:
- every write is ONE transaction (a run with all its sources, or a forget),
  so a process killed mid-write leaves either the whole run or nothing;
- SQLite runs in WAL mode with `synchronous=FULL`, a busy timeout, and
  `BEGIN IMMEDIATE` transactions (a writer takes the write lock up front,
  so two writers never deadlock on a read-to-write upgrade);
- transient failures ("database is locked", serialization failures, a
  concurrent migration) are retried with jittered exponential backoff;
- totals are never stored as counters that a lost update could corrupt:
  reputations are sums over the per-run records.

The schema is versioned (`schema_version` table, one row per applied
migration); `MIGRATIONS` upgrade an older ledger in place, inside the same
kind of transaction. A ledger newer than this code is refused.

Reputation: the prior on a source's bad-row rate is Beta(a, b) (default
Beta(1, 19): prior mean 5%, worth 20 rows). After d bad rows of n the
posterior is Beta(a + d, b + n - d); the reputation is 1 minus its upper
credible bound at `level` (default 95%), i.e. a lower credible bound of the
source's good-row rate. A "bad row" is a row flagged by any poisoning signal
(the union), as recorded by each run.
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

from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table,
                        UniqueConstraint, create_engine, delete, event, func, insert, inspect, select, text, update)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError

from poison_expectations.core.errors import ConfigError, OutputError

DEFAULT_LEDGER = ".poison/reputation.db"
SCHEMA_VERSION = 3
BUSY_TIMEOUT_SECONDS = 30.0
RETRY_DEADLINE_SECONDS = 120.0
PRIOR_BAD, PRIOR_GOOD, CREDIBLE_LEVEL = 1.0, 19.0, 0.95

T = TypeVar("T")


# -- schema (current version) ------------------------------------------------

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("data_path", String(1024)),
    Column("success", Boolean, nullable=False),
    Column("sources", Integer, nullable=False),  # source_runs rows written with this run
    Column("rows", Integer, nullable=False),  # sum of their rows
    Column("batch_key", String(64)),  # migration 3: content key of the batch (batch_key()); NULL before
)
runs_batch_key = Index("uq_runs_batch_key", runs.c.batch_key, unique=True)

source_runs = Table(
    "source_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("source", String(512), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("bad_rows", Integer, nullable=False),  # rows flagged by any signal
    Column("verdict", String(200), nullable=False),
    UniqueConstraint("run_id", "source", name="uq_source_runs_run_source"),
    Index("ix_source_runs_source", "source"),
)

# added by migration 2: per-signal flagged counts, one row per (source run, signal)
source_signal_flags = Table(
    "source_signal_flags", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_run_id", Integer, ForeignKey("source_runs.id", ondelete="CASCADE"), nullable=False),
    Column("signal", String(100), nullable=False),
    Column("flagged", Integer, nullable=False),
    UniqueConstraint("source_run_id", "signal", name="uq_source_signal_flags"),
)


def _migration_1(conn: Connection) -> None:
    """Runs and per-source run records (rows, bad rows, verdict)."""
    for table in (runs, source_runs):
        table.create(conn, checkfirst=True)


def _migration_2(conn: Connection) -> None:
    """Per-signal flagged counts of each source run."""
    source_signal_flags.create(conn, checkfirst=True)


def _migration_3(conn: Connection) -> None:
    """Runs keep their batch's content key, unique: a retried batch counts once."""
    if "batch_key" not in {c["name"] for c in inspect(conn).get_columns("runs")}:
        conn.execute(text("ALTER TABLE runs ADD COLUMN batch_key VARCHAR(64)"))
    runs_batch_key.create(conn, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migration_1, 2: _migration_2, 3: _migration_3}


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


@dataclass(frozen=True)
class Reputation:
    """Beta posterior of a source's bad-row rate."""

    rows: int
    bad_rows: int
    prior_bad: float
    prior_good: float
    level: float
    mean: float  # posterior mean bad-row rate
    upper: float  # upper credible bound of the bad-row rate
    reputation: float  # 1 - upper: lower credible bound of the good-row rate

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def reputation(rows: int, bad_rows: int, prior_bad: float = PRIOR_BAD, prior_good: float = PRIOR_GOOD,
               level: float = CREDIBLE_LEVEL) -> Reputation:
    """Posterior Beta(a + d, b + n - d) of the bad-row rate and its upper bound at `level`."""
    from scipy import stats  # late: writers (8 at once) need not pay for importing scipy

    good = max(rows - bad_rows, 0)
    a, b = prior_bad + bad_rows, prior_good + good
    upper = float(stats.beta.ppf(level, a, b))
    return Reputation(int(rows), int(bad_rows), prior_bad, prior_good, level, a / (a + b), upper, 1.0 - upper)


# -- the ledger -----------------------------------------------------------------

def ledger_url(value: str | os.PathLike | None) -> str:
    """A SQLAlchemy URL from a URL or a SQLite file path (None: the default file)."""
    value = str(value) if value is not None else DEFAULT_LEDGER
    if "://" in value:
        try:
            make_url(value)
        except ArgumentError:
            raise ConfigError(f"ledger {value!r}: not a valid SQLAlchemy URL") from None
        return value
    return f"sqlite:///{Path(value).expanduser()}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def ledger_exists(value: str | None) -> bool:
    """False only for a SQLite file that does not exist yet (reads then see no history)."""
    path = sqlite_path(ledger_url(value))
    return path is None or path.exists()


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
        self.engine = _engine(self.url, busy_timeout)
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
                transient = _transient(exc) or (retry_integrity and (
                    isinstance(exc, IntegrityError) or "already exists" in str(exc).lower()))
                if not transient or time.monotonic() + delay > deadline:
                    raise OutputError(f"ledger {_safe(self.url)}: {_first_line(exc)}") from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


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


def _engine(url: str, busy_timeout: float) -> Engine:
    try:
        if make_url(url).get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"ledger {_safe(url)}: {_first_line(exc)}") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_TRANSIENT = ("database is locked", "database is busy", "database table is locked", "could not serialize",
              "deadlock detected")


def _transient(exc: Exception) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return code in ("40001", "40P01") or any(token in message for token in _TRANSIENT) or bool(
        getattr(exc, "connection_invalidated", False))


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


def _first_line(exc: Exception) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0][:300] if message else type(exc).__name__


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def dumps_records(records: list[dict[str, Any]]) -> str:
    """JSON text of ledger records (datetimes as ISO 8601)."""
    return json.dumps(records, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


__all__ = ["Ledger", "SourceRecord", "SourceHistory", "Reputation", "reputation", "ledger_url", "ledger_exists",
           "batch_key", "DEFAULT_LEDGER", "SCHEMA_VERSION", "MIGRATIONS"]
