"""Where the ledger lives and how it is opened: URLs, the SQLAlchemy engine,
and which database errors are transient.

The default store is a SQLite file (`.poison/reputation.db` under the working
directory); any SQLAlchemy URL (PostgreSQL included) works. SQLite runs in
WAL mode with `synchronous=FULL`, a busy timeout, and `BEGIN IMMEDIATE`
transactions (a writer takes the write lock up front, so two writers never
deadlock on a read-to-write upgrade).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from poison_expectations.core.errors import ConfigError
from poison_expectations.core.params import SOURCES

DEFAULT_LEDGER = SOURCES["ledger"].default  # declared once, in core/params/sources.py
BUSY_TIMEOUT_SECONDS = 30.0


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


def make_engine(url: str, busy_timeout: float) -> Engine:
    """An engine for `url`; on SQLite every connection gets the durability and locking settings above."""
    try:
        if make_url(url).get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"ledger {safe_url(url)}: {first_line(exc)}") from None

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


def is_transient(exc: Exception) -> bool:
    """A lock, busy, serialization or lost-connection error: worth retrying."""
    message = str(getattr(exc, "orig", exc)).lower()
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return code in ("40001", "40P01") or any(token in message for token in _TRANSIENT) or bool(
        getattr(exc, "connection_invalidated", False))


def first_line(exc: Exception) -> str:
    """The driver's own message, one line, for errors users read."""
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0][:300] if message else type(exc).__name__


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
