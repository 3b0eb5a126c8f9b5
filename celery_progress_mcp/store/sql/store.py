"""``SqlStore``: the Store port on SQLAlchemy Core (SQLite, PostgreSQL, MySQL/MariaDB).

Semantics are those of :class:`~celery_progress_mcp.store.memory.MemoryStore`;
what differs is how they are kept across processes. The store is a facade
over its collaborators, which share one engine, one transactor
(:class:`~.transactions.Transactor`) and one session cache:

* :class:`~.writer.SessionWriter`: ``create``, ``apply``, ``apply_many``;
* :class:`~.reader.SessionReader`: sessions, pages, counts, stats, the log;
* :class:`~.purge.Purger`: finished sessions and old events;
* on an SQLite file, a :class:`~.checkpoint.WalCheckpointer` thread.

The store itself makes sure the schema is there before each call, reports
its health, and renews its parts in a forked child (:meth:`SqlStore.after_fork`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from ...core.engine import Change
from ...core.errors import StoreUnavailable
from ...core.models import ProgressEvent, ProgressSession, ProgressStats
from ..base import Applied, ExpiredEvent, Mutation, SessionQuery, Store, Write
from .checkpoint import WalCheckpointer
from .connect import engine_from_url, prepare_engine
from .failures import Failure, classify
from .migrate import ensure_schema
from .purge import Purger
from .reader import SessionReader
from .session_cache import SessionCache
from .transactions import Transactor
from .writer import SessionWriter

__all__ = ["SqlStore"]

logger = logging.getLogger(__name__)


class SqlStore(Store):
    """A durable store shared by every process that opens the same database.

    ``url_or_engine``: an SQLAlchemy URL (``sqlite:///progress.db``,
    ``postgresql://user@host/db``, ``mysql://user@host/db``; bare dialects get
    psycopg 3 and PyMySQL) or an Engine. The schema is created or upgraded
    on first use (if the database is down then, on the first call after it
    is back). Errors that mean the database cannot be reached become
    :class:`StoreUnavailable`; lost races are retried inside. An Engine of
    your own for MySQL/MariaDB should use ``isolation_level="READ COMMITTED"``,
    as the engines the store makes do.

    ``durable_progress``: on PostgreSQL, a write that only moves progress
    (no status or sub-operation state changes) commits without waiting for
    its WAL flush (``synchronous_commit = off`` for that transaction): it is
    visible at once and superseded by the next update, and a crash of the
    database server can lose at most the last fraction of a second of such
    updates, never a transition. True makes every write wait for the flush.
    (SQLite, with ``synchronous = NORMAL`` in WAL mode, keeps every commit
    across a crash of the process; a power cut can drop the latest ones.)
    """

    blocking: ClassVar[bool] = True

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        create_schema: bool = True,
        durable_progress: bool = False,
    ) -> None:
        if isinstance(url_or_engine, Engine):
            engine = url_or_engine
            self._owns_engine = False
            prepare_engine(engine)
        else:
            engine = engine_from_url(url_or_engine)
            self._owns_engine = True
        self.engine = engine
        self._tx = Transactor(engine)
        self._checkpointer = (
            WalCheckpointer(engine, self._tx.write_lock, in_use=self._tx.in_use)
            if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
            else None
        )
        self._cache = SessionCache()
        self._writer = SessionWriter(
            self._tx,
            self._cache,
            # PostgreSQL: plain progress commits without waiting for the WAL flush.
            relaxed_commit=engine.dialect.name == "postgresql" and not durable_progress,
        )
        self._reader = SessionReader(self._tx)
        self._purger = Purger(self._tx)
        self._schema_ready = False
        self._create_schema = create_schema
        self._identity = _identity_of(engine.url)
        if create_schema:
            # A database down at start-up is not an error: each call tries again first.
            with contextlib.suppress(StoreUnavailable):
                self._ensure_schema()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        try:
            ensure_schema(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            if classify(exc) is Failure.OTHER:
                raise
            logger.warning("progress store unavailable, schema not checked yet: %s", exc)
            raise StoreUnavailable(f"the progress store cannot be reached: {exc}") from exc
        self._schema_ready = True

    def _ready(self) -> None:
        if not self._schema_ready and self._create_schema:
            self._ensure_schema()
        if self._checkpointer is not None:
            self._checkpointer.ensure_running()

    # -- writing -----------------------------------------------------------

    def create(self, change: Change, *, max_active: int, history_limit: int) -> list[ProgressEvent]:
        self._ready()
        return self._writer.create(change, max_active=max_active)

    def apply(
        self, session_id: str, mutation: Mutation, *, history_limit: int
    ) -> tuple[ProgressSession, list[ProgressEvent]]:
        self._ready()
        return self._writer.apply(session_id, mutation, history_limit=history_limit)

    def apply_many(
        self,
        writes: Sequence[tuple[str, Sequence[Write]]],
        *,
        history_limit: int,
        max_active: int | None = None,
    ) -> list[Applied]:
        """Every run in one transaction: rows locked together, writes sent together."""
        self._ready()
        return self._writer.apply_many(writes, history_limit=history_limit, max_active=max_active)

    # -- reading -------------------------------------------------------------

    def get(self, session_id: str, *, with_history: bool = True) -> ProgressSession | None:
        self._ready()
        return self._reader.get(session_id, with_history=with_history)

    def list_sessions(self, query: SessionQuery) -> list[ProgressSession]:
        self._ready()
        return self._reader.list_sessions(query)

    def count_sessions(self, query: SessionQuery) -> int:
        self._ready()
        return self._reader.count_sessions(query)

    def stats(self) -> ProgressStats:
        self._ready()
        return self._reader.stats()

    def events_since(
        self, since: int, *, session_id: str | None = None, limit: int = 1000
    ) -> list[ProgressEvent]:
        self._ready()
        return self._reader.events_since(since, session_id=session_id, limit=limit)

    def last_seq(self) -> int:
        self._ready()
        return self._reader.last_seq()

    # -- housekeeping ----------------------------------------------------------

    def stale_sessions(self, heartbeat_before: datetime, *, limit: int = 500) -> list[str]:
        self._ready()
        return self._reader.stale_sessions(heartbeat_before, limit=limit)

    def purge_finished(
        self, ended_before: datetime, expired_event: ExpiredEvent, *, limit: int = 500
    ) -> list[ProgressEvent]:
        self._ready()
        return self._purger.purge_finished(ended_before, expired_event, limit=limit)

    def purge_events(self, before: datetime, *, limit: int = 5000) -> int:
        self._ready()
        return self._purger.purge_events(before, limit=limit)

    # -- lifecycle ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "store": type(self).__name__,
            "dialect": self.engine.dialect.name,
            "url": self.engine.url.render_as_string(hide_password=True),
        }
        try:
            self._ready()
            report["last_seq"] = self.last_seq()
        except StoreUnavailable as exc:
            report.update(status="unavailable", error=str(exc))
            return report
        report["status"] = "ok"
        return report

    def identity(self) -> str | None:
        """The database's URL without its password (an SQLite file's path made
        absolute); None for an in-memory SQLite database."""
        return self._identity

    def after_fork(self) -> None:
        """In a forked child, before any use: the parent's pooled connections and
        SQLite writer connection are let go without closing them (closing would
        tear down the parent's), the checkpoint thread is restarted on first use,
        and the session cache and the writes in doubt (the parent's) are dropped.

        An in-memory SQLite database lives in its one connection, which the child
        has its own copy of: that one is kept.
        """
        if not isinstance(self.engine.pool, StaticPool):
            self.engine.dispose(close=False)
        self._tx.after_fork()
        if self._checkpointer is not None:
            self._checkpointer.after_fork()
        self._cache.after_fork()
        self._writer.after_fork()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._tx.close()
        if self._owns_engine:
            self.engine.dispose()


def _identity_of(url: URL) -> str | None:
    """``SqlStore.identity``: the same database however a process was started (its
    working directory), never its password."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None  # in memory, or a URI whose meaning depends on its options
        return url.set(database=os.path.abspath(database)).render_as_string()
    without_password = URL.create(
        url.drivername, url.username, None, url.host, url.port, url.database, url.query
    )
    return without_password.render_as_string(hide_password=False)
