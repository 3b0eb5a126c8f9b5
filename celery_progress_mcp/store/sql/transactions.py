"""Running a unit of work in one transaction, with retries and error mapping.

Two kinds of work:

* ``write``/``read_fast``: a function of an :class:`~.executor.Executor` on a
  pooled DBAPI connection (the hot path). Writers on SQLite begin with
  ``BEGIN IMMEDIATE`` (within a process they queue on a lock first, so
  threads do not poll SQLite's busy handler); writers on servers lock rows
  themselves (``SELECT ... FOR UPDATE``).
* ``read``: a function of an SQLAlchemy ``Connection`` (queries built per
  call). With ``snapshot=True`` servers run it at REPEATABLE READ, so its
  several reads agree.

A transaction that lost a race (busy, deadlock) is run again: the work is a
pure function of what it reads, so a rerun is safe. A dropped connection
before the commit is retried once on a fresh pool; after that, or if the
commit itself failed, the error becomes ``StoreUnavailable``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool

from ...core.errors import StoreUnavailable
from .connect import BEGIN_OPTION
from .executor import Executor, compile_for
from .failures import Failure, classify
from .sqlite_lock import sqlite_in_use, writer_lock_for

__all__ = ["CONTENTION_DEADLINE_S", "CommitInDoubt", "Transactor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a transaction that keeps losing races is retried before the
#: store is reported unavailable.
CONTENTION_DEADLINE_S = 60.0
#: First and largest pause between contention retries.
_BACKOFF_FIRST_S = 0.001
_BACKOFF_MAX_S = 0.1


class CommitInDoubt(StoreUnavailable):
    """The connection died after the commit was sent: it may or may not have happened."""


class _Attempt:
    """Bookkeeping of one run: whether the commit was reached."""

    __slots__ = ("committing", "executor")

    def __init__(self) -> None:
        self.committing = False
        self.executor: Executor | None = None

    @property
    def ambiguous(self) -> bool:
        """The commit was sent: whether it happened is unknown."""
        return self.committing or (self.executor is not None and self.executor.committing)


class Transactor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite = engine.dialect.name == "sqlite"
        self.pipelines = engine.dialect.driver == "psycopg"
        self._prepare = compile_for(engine.dialect)
        self.write_lock: AbstractContextManager[object] = (
            writer_lock_for(engine.url.database or "") if self.sqlite else nullcontext()
        )
        #: Around every call into SQLite, so that a fork waits for it (see ``sqlite_lock``).
        self.in_use: AbstractContextManager[object] = (
            sqlite_in_use if self.sqlite else nullcontext()
        )
        self._writer: Any = None
        self._writer_pid = 0
        self._forked_writers: list[Any] = []

    # -- entry points ----------------------------------------------------------

    def write(self, work: Callable[[Executor], T]) -> T:
        return self._retrying(lambda attempt: self._run_fast(work, attempt, write=True))

    def read_fast(self, work: Callable[[Executor], T]) -> T:
        """A read made of statements from ``statements.py``."""
        return self._retrying(lambda attempt: self._run_fast(work, attempt, write=False))

    def read(self, work: Callable[[Connection], T], *, snapshot: bool = False) -> T:
        """``snapshot``: the work makes several reads that must agree."""
        return self._retrying(lambda attempt: self._run_core(work, attempt, snapshot=snapshot))

    # -- running ---------------------------------------------------------------

    def _run_fast(self, work: Callable[[Executor], T], attempt: _Attempt, *, write: bool) -> T:
        with self.in_use, self.write_lock if write else nullcontext():
            keep = write and self.sqlite
            raw = self._writer_connection() if keep else self.engine.raw_connection()
            try:
                dbapi_connection = raw.driver_connection
                executor = Executor(
                    dbapi_connection,
                    self._prepare,
                    pipelines=self.pipelines,
                    commit_command=self.sqlite,
                )
                attempt.executor = executor
                try:
                    if self.sqlite:
                        executor.command("BEGIN IMMEDIATE" if write else "BEGIN")
                    result = work(executor)
                    if not executor.committed:
                        executor.commit()
                    return result
                except BaseException as error:
                    if self._abandon(raw, error) and keep:
                        self._writer = None
                    raise
            finally:
                if not keep:
                    raw.close()

    def _writer_connection(self) -> Any:
        """SQLite's writers take turns on the write lock, so they share one connection.

        Kept out of the pool, it saves a checkout and a check-in per write.
        """
        if self._writer is not None and self._writer_pid != os.getpid():
            self.after_fork()
        if self._writer is None:
            self._writer = self.engine.raw_connection()
            self._writer_pid = os.getpid()
        return self._writer

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's writer connection without closing
        it, since closing acts for the parent (a driver tells the server the session
        ends; SQLite rolls back and unlocks). It stays referenced, so that it is never
        garbage-collected, and so closed, either."""
        if self._writer is not None:
            self._forked_writers.append(self._writer)
            self._writer = None

    def close(self) -> None:
        with self.in_use:
            with self.write_lock:
                writer, self._writer = self._writer, None
            if writer is not None and self._writer_pid == os.getpid():
                writer.close()

    def _abandon(self, raw: Any, error: BaseException) -> bool:
        """Roll back; a connection that failed under us is invalidated (True), never reused."""
        dbapi_error = self.dialect.loaded_dbapi.Error
        if isinstance(error, dbapi_error) and self.dialect.is_disconnect(
            error, raw.driver_connection, None
        ):
            raw.invalidate(error)
            return True
        try:
            if self.sqlite:
                if raw.driver_connection.in_transaction:
                    raw.driver_connection.execute("ROLLBACK")
            else:
                raw.driver_connection.rollback()
        except dbapi_error as rollback_error:
            raw.invalidate(rollback_error)
            return True
        return False

    def _run_core(self, work: Callable[[Connection], T], attempt: _Attempt, *, snapshot: bool) -> T:
        with self.in_use, self.engine.connect() as conn:
            if snapshot and not self.sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            elif self.sqlite:
                conn.execution_options(**{BEGIN_OPTION: "DEFERRED"})
            with conn.begin() as transaction:
                result = work(conn)
                attempt.committing = True
                transaction.commit()
                return result

    def _retrying(self, run: Callable[[_Attempt], T]) -> T:
        deadline_s = time.monotonic() + CONTENTION_DEADLINE_S
        pause_s = _BACKOFF_FIRST_S
        reconnected = False
        while True:
            attempt = _Attempt()
            try:
                return run(attempt)
            except sa_exc.SQLAlchemyError as error:
                failure = classify(error)
                if failure is Failure.OTHER:
                    raise
                mapped: sa_exc.SQLAlchemyError = error
            except self.dialect.loaded_dbapi.Error as error:
                mapped = sa_exc.DBAPIError.instance(
                    None, None, error, self.dialect.loaded_dbapi.Error, dialect=self.dialect
                )
                failure = classify(mapped)
                if failure is Failure.OTHER:
                    raise mapped from error
            if failure is Failure.CONTENTION and time.monotonic() < deadline_s:
                time.sleep(pause_s * (0.5 + random.random()))
                pause_s = min(pause_s * 2, _BACKOFF_MAX_S)
                continue
            if not reconnected:
                reconnected = True
                self._drop_pool()
                if not attempt.ambiguous:
                    continue
            logger.debug("progress store unavailable: %s", mapped)
            message = f"the progress store cannot be reached: {mapped}"
            if attempt.ambiguous:
                raise CommitInDoubt(message) from mapped
            raise StoreUnavailable(message) from mapped

    def _drop_pool(self) -> None:
        """A server restart leaves every pooled connection dead: start afresh."""
        if not isinstance(self.engine.pool, StaticPool):
            self.close()
            self.engine.dispose()
