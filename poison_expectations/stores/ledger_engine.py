"""Where the ledger lives and how it is opened: URLs, the SQLAlchemy engine,
and which database errors are transient.

The store is a SQLite file or any SQLAlchemy URL (PostgreSQL included).
When the config names none, the ledger is $POISON_EXPECTATIONS_LEDGER, else a
per-user data file (`default_ledger`): a stable place, so the reputation
history does not depend on (or get lost with) the folder a process started in. SQLite runs in
WAL mode with `synchronous=FULL`, a busy timeout, and `BEGIN IMMEDIATE`
transactions (a writer takes the write lock up front, so two writers never
deadlock on a read-to-write upgrade).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from poison_expectations.core.errors import ConfigError
from poison_expectations.core.params import SOURCES

DEFAULT_LEDGER = SOURCES["ledger"].default  # declared once, in core/params/sources.py: None = default_ledger()
LEDGER_ENV = "POISON_EXPECTATIONS_LEDGER"
BUSY_TIMEOUT_SECONDS = 30.0


def default_ledger() -> str:
    """The ledger used when none is configured: $POISON_EXPECTATIONS_LEDGER (a
    path or URL), else `poison-expectations/ledger.db` in the per-user data
    folder ($XDG_DATA_HOME or ~/.local/share; %LOCALAPPDATA% on Windows,
    ~/Library/Application Support on macOS), like platformdirs' user_data_dir."""
    configured = os.environ.get(LEDGER_ENV, "").strip()
    if configured:
        return configured
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share")
    return str(base / "poison-expectations" / "ledger.db")


def ledger_url(value: str | os.PathLike | None) -> str:
    """A SQLAlchemy URL from a URL or a SQLite file path (None: `default_ledger()`)."""
    value = str(value) if value is not None else default_ledger()
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
