"""Engines for the SQL store: URL spelling, per-dialect setup, fork safety.

* SQLite: WAL (readers never wait for the writer), a busy timeout, and
  transactions begun by us (``BEGIN`` or ``BEGIN IMMEDIATE``) instead of by
  the driver, so a writer takes the write lock up front and never has to
  upgrade a read lock, the source of "database is locked" errors that a
  busy timeout cannot cure.
* PostgreSQL through psycopg 3, MySQL/MariaDB through PyMySQL, both at READ
  COMMITTED: a statement that waited for a row lock sees the row as the
  holder committed it.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool, StaticPool

from ...core.errors import ConfigError

__all__ = [
    "BEGIN_OPTION",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "engine_from_url",
    "normalize_url",
    "prepare_engine",
]

#: Execution option naming how SQLite begins a transaction (``"IMMEDIATE"`` for writers).
BEGIN_OPTION = "celery_progress_begin"
#: How long an SQLite connection waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Connect timeout for server databases, unless the URL sets one: an outage
#: must be noticed quickly, not after the driver's default minutes.
DEFAULT_CONNECT_TIMEOUT_S = 3

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "sqlite": "sqlite+pysqlite",
}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, giving a bare dialect its driver (``postgresql://`` -> psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"store_url {str(url)!r} is not a database URL: {exc}") from exc
    if "+" not in parsed.drivername and parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ConfigError(
            f"store_url {parsed.render_as_string(hide_password=True)!r}: "
            "the SQL store supports sqlite, postgresql and mysql/mariadb"
        )
    return parsed


def engine_from_url(url: str | URL) -> Engine:
    """An engine configured for the store (see :func:`prepare_engine`)."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    # Every transaction ends in an explicit commit or rollback, so the pool's
    # own rollback on check-in would be a wasted round trip.
    options: dict[str, Any] = {"pool_reset_on_return": None}
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or each thread would see its own empty database.
            options["poolclass"] = StaticPool
            connect_args["check_same_thread"] = False
        else:
            connect_args["check_same_thread"] = False
            options["pool_size"] = 8
            options["max_overflow"] = 8
    else:
        options["isolation_level"] = "READ COMMITTED"
        options["pool_size"] = 5
        options["max_overflow"] = 10
        options["pool_timeout"] = 10
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    engine = create_engine(parsed, connect_args=connect_args, **options)
    prepare_engine(engine)
    return engine


def prepare_engine(engine: Engine) -> None:
    """Install the store's per-dialect hooks on an engine (also one given by the user)."""
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine)
    if not isinstance(engine.pool, NullPool | StaticPool):
        _dispose_after_fork(engine)


def _prepare_sqlite(engine: Engine) -> None:
    if getattr(engine, "_celery_progress_prepared", False):
        return
    engine._celery_progress_prepared = True  # type: ignore[attr-defined]
    if not isinstance(engine.pool, StaticPool):
        # Connections opened before the hooks existed would lack them.
        engine.dispose()
    in_memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to us: the driver would otherwise begin
        # deferred transactions on its own before the first write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # With WAL, NORMAL loses nothing when a process dies; only a
                # power cut can drop the last commits.
                cursor.execute("PRAGMA synchronous = NORMAL")
                # Checkpoints run in the store's background thread (see checkpoint.py).
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _dispose_after_fork(engine: Engine) -> None:
    """A forked child (a Celery prefork worker) must not reuse its parent's sockets."""
    reference = weakref.ref(engine)

    def _after_fork_in_child() -> None:
        alive = reference()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork_in_child)
