"""Engines for SQLite (embedded default) and PostgreSQL, transactions, and migrations at start.

On SQLite every write transaction starts with `BEGIN IMMEDIATE`, so it holds the database's write
lock from its first statement: two writers never both read and then both try to write. Within one
process writers also queue on a lock, which keeps latency low instead of spinning on SQLITE_BUSY.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clicktune.jsontext import json_text

_WRITE_OPTION = "clicktune_write"
_sqlite_write_locks: dict[str, threading.Lock] = {}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


DATABASE_OUTAGES = (OperationalError, InterfaceError, PoolTimeout)
"""What the driver raises when the database refuses or drops connections (an outage, a restart):
the API answers `503 unavailable`, a worker skips what it only reports."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for clicktune's transaction discipline on either database."""
    kwargs.setdefault("json_serializer", json_text)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: the write lock from the start on SQLite; commit on success."""
    if is_sqlite(engine):
        lock = _sqlite_write_locks.setdefault(str(engine.url), threading.Lock())
        with lock, engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn
    else:
        with engine.begin() as conn:
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for several reads (one transaction, rolled back at the end)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes start at once."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with write_transaction(engine) as conn:
        if not is_sqlite(engine):
            conn.execute(text("SELECT pg_advisory_xact_lock(741852963)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def check_database(conn: Connection) -> None:
    """A round trip to the database (raises when it does not answer)."""
    conn.execute(text("SELECT 1"))
