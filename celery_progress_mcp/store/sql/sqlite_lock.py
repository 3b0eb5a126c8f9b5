"""SQLite writers queue on a lock instead of polling the database's.

SQLite lets one writer in at a time; the others get SQLITE_BUSY and its
busy handler sleeps (1, 2, 5 ... 100 ms) before trying again, so under
contention writers mostly sleep while the database is free. Here a writer
first takes, within its process, a thread lock, and across processes an
exclusive ``flock`` on ``<database>-writer.lock``: the kernel hands that
lock to the next waiter the moment it is released. SQLite's own lock is
then free when the writer reaches ``BEGIN IMMEDIATE``, and the busy
handler is left for writers that are not ours.

``flock`` belongs to an open file, which a forked child shares with its
parent, so each process opens the lock file for itself. Where the lock
file cannot be created (a read-only directory) the thread lock alone is
used.

A fork waits for the writes of this process in flight (it takes every
thread lock first, as ``logging`` does with its handlers' locks). SQLite
keeps the locks of a process's connections in that process's memory: a
child that inherited a connection in the middle of a write transaction
would find the database locked for ever, and closing that connection in
the child would be worse (its rollback edits the WAL index that the parent
is using). Between transactions, an inherited connection holds nothing.

Any other call into SQLite counts too: the library's own global mutexes
(its allocator's, taken on every allocation) are plain process memory, so
a fork made while a thread of the parent is inside SQLite (a read, a WAL
checkpoint) can leave one locked in the child for ever, and the child's
first connection then hangs (a pool process recycled by Celery did, at
the rate of a fork every few hundred milliseconds). So every SQLite call
of the store runs inside :data:`sqlite_in_use`, which a fork waits for
first, holding new calls back until it is made.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from types import TracebackType

__all__ = ["SqliteUse", "SqliteWriterLock", "sqlite_in_use", "writer_lock_for"]

logger = logging.getLogger(__name__)

_locks: dict[str, SqliteWriterLock] = {}
_locks_guard = threading.Lock()


def writer_lock_for(database: str) -> SqliteWriterLock:
    """The process's lock for writers of ``database`` (one per file, shared by stores)."""
    in_memory = database in ("", ":memory:")
    key = database if in_memory else os.path.realpath(database)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = SqliteWriterLock(None if in_memory else key + "-writer.lock")
        return lock


class SqliteWriterLock:
    def __init__(self, path: str | None) -> None:
        self._path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._fd_pid != os.getpid():
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                logger.debug("no writer lock file %s (%s): threads only", self._path, exc)
                self._path = None
                return None
            self._fd_pid = os.getpid()
        return self._fd

    def __enter__(self) -> SqliteWriterLock:
        self._thread_lock.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._fd is not None and self._fd_pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class SqliteUse:
    """The SQLite calls of this process in flight, which a fork waits for.

    Entered around every call into SQLite (re-entrant within a thread), before
    any writer lock; :meth:`hold` waits until none is in flight and holds new
    ones back until :meth:`release`.
    """

    def __init__(self) -> None:
        self.after_fork()

    def __enter__(self) -> SqliteUse:
        depth = getattr(self._depth, "value", 0)
        if not depth:
            with self._condition:
                while self._forking:
                    self._condition.wait()
                self._users += 1
        self._depth.value = depth + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth.value -= 1
        if not self._depth.value:
            with self._condition:
                self._users -= 1
                if not self._users:
                    self._condition.notify_all()

    def hold(self) -> None:
        with self._condition:
            self._forking = True
            while self._users:
                self._condition.wait()

    def release(self) -> None:
        with self._condition:
            self._forking = False
            self._condition.notify_all()

    def after_fork(self) -> None:
        """Start afresh (in a forked child: no thread but the one that forked, which
        is inside no call)."""
        self._condition = threading.Condition(threading.Lock())
        self._users = 0
        self._forking = False
        self._depth = threading.local()


#: This process's SQLite calls in flight (see the module's docstring).
sqlite_in_use = SqliteUse()


def _hold_before_fork() -> None:
    """Wait for this process's SQLite calls in flight; none starts until the fork is made."""
    _locks_guard.acquire()
    sqlite_in_use.hold()
    for lock in _locks.values():
        lock._thread_lock.acquire()


def _release_after_fork_in_parent() -> None:
    for lock in _locks.values():
        lock._thread_lock.release()
    sqlite_in_use.release()
    _locks_guard.release()


def _reset_after_fork_in_child() -> None:
    """A forked child starts with its parent's locks held by the thread that forked."""
    global _locks_guard
    sqlite_in_use.after_fork()
    _locks_guard = threading.Lock()
    for lock in _locks.values():
        lock._thread_lock = threading.Lock()
        if lock._fd is not None:
            os.close(lock._fd)  # the parent's lock, if held, stays the parent's
        lock._fd = None


os.register_at_fork(
    before=_hold_before_fork,
    after_in_parent=_release_after_fork_in_parent,
    after_in_child=_reset_after_fork_in_child,
)
