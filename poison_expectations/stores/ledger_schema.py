"""The ledger's tables (current version) and the migrations that build them.

The schema is versioned (`schema_version` table, one row per applied
migration); `MIGRATIONS[v]` brings a ledger at version v - 1 to version v, and
`Ledger` applies the missing ones in order, inside one transaction. A ledger
newer than `SCHEMA_VERSION` is refused.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table,
                        UniqueConstraint, inspect, text)
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 3

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
    Column("batch_key", String(64)),  # migration 3: content key of the batch (ledger.batch_key); NULL before
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
