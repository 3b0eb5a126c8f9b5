"""A store used by a process that then forks (a Celery prefork worker) stays usable in
both: the child, once ``after_fork`` has run, writes and reads the same database while
the parent goes on, even when a thread of the parent was mid-write at the fork.

On SQLite the fork waits for that write to commit (a child that inherited a
connection mid-transaction could never write); on servers it goes ahead."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from celery_progress_mcp import ProgressSession
from celery_progress_mcp.core.engine import Change
from celery_progress_mcp.store.base import Mutation, Store
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.store.sql import SqlStore, sqlite_lock
from celery_progress_mcp.testing import eventually
from tests.forking import Forked

from .test_store_port import HISTORY, create, update

#: Bound on how long a parent's thread stays inside its write.
HOLD_S = 60.0


@contextmanager
def mid_write(store: Store, session_id: str) -> Iterator[None]:
    """A thread of this process inside ``store.apply`` on ``session_id`` (which then
    writes percentage 50) while the block runs: the store's locks, and a transaction
    with its connection, are held."""
    inside, release = threading.Event(), threading.Event()

    def held_open(session: ProgressSession) -> Change:
        inside.set()
        release.wait(HOLD_S)
        return update(50)(session)

    writer = threading.Thread(
        target=store.apply, args=(session_id, held_open), kwargs={"history_limit": HISTORY}
    )
    writer.start()
    try:
        assert inside.wait(HOLD_S)
        yield
    finally:
        release.set()
        writer.join(HOLD_S)


def apply_all(store: Store, session_id: str, mutations: list[Mutation]) -> None:
    for mutation in mutations:
        store.apply(session_id, mutation, history_limit=HISTORY)


def child_works(store: Store, sees_parent: Callable[[Store], None]) -> None:
    """In the forked child: renew the store, then write, read and close it."""
    store.after_fork()
    create(store, "child")
    apply_all(store, "child", [update(10), update(20), update(30)])
    session = store.get("child")
    assert session is not None
    assert session.percentage == 30
    assert [snapshot.index for snapshot in session.history][-1] == 3
    logged = store.events_since(0, session_id="child")
    assert [event.session_id for event in logged] == ["child"] * len(logged)
    assert store.last_seq() >= logged[-1].seq
    assert store.stats().total_created >= 2
    sees_parent(store)
    store.close()


def _sees_the_parent_as_it_was(store: Store) -> None:
    """A memory store forks with the sessions it had: the child's own copy."""
    parent = store.get("parent")
    assert parent is not None
    assert parent.percentage == 3


def _sees_what_the_parent_committed(store: Store) -> None:
    parent = store.get("parent")
    assert parent is not None
    assert parent.percentage is not None
    assert parent.percentage >= 3


def _sees_the_write_the_fork_waited_for(store: Store) -> None:
    parent = store.get("parent")
    assert parent is not None
    assert parent.percentage is not None
    assert parent.percentage >= 50


def fork_waiting_for_the_write(store: Store, sees_parent: Callable[[Store], None]) -> Forked:
    """SQLite: fork (from a thread of its own) while another thread is inside a write,
    and let the write go once the fork is waiting for it."""
    children: list[Forked] = []
    with mid_write(store, "parent"):
        forking = threading.Thread(
            target=lambda: children.append(Forked(child_works, store, sees_parent))
        )
        forking.start()
        # The fork hook holds the registry's guard while it waits for the writers' locks.
        eventually(sqlite_lock._locks_guard.locked, what="the fork to wait for the write")
    forking.join(HOLD_S)
    (child,) = children
    return child


def test_a_forked_child_writes_and_reads_an_sql_store_while_the_parent_goes_on(
    sql_store_url: str,
) -> None:
    store = SqlStore(sql_store_url)
    try:
        create(store, "parent")
        # Connections pooled, the session cached, the SQLite checkpoint thread running.
        apply_all(store, "parent", [update(1), update(2), update(3)])
        if store.engine.dialect.name == "sqlite":
            child = fork_waiting_for_the_write(store, _sees_the_write_the_fork_waited_for)
        else:
            with mid_write(store, "parent"):
                child = Forked(child_works, store, _sees_what_the_parent_committed)
        apply_all(store, "parent", [update(percentage) for percentage in range(51, 71)])
        child.succeeded()
        apply_all(store, "parent", [update(71)])

        parent = store.get("parent")
        assert parent is not None
        assert parent.percentage == 71
        made = store.get("child")
        assert made is not None
        assert made.percentage == 30
        logged = store.events_since(0, limit=10_000)
        assert [event.seq for event in logged] == list(range(1, len(logged) + 1))
        assert store.stats().total_created == 2
    finally:
        store.close()


def test_a_forked_child_uses_its_copy_of_a_memory_store() -> None:
    store = MemoryStore()
    create(store, "parent")
    apply_all(store, "parent", [update(1), update(2), update(3)])
    with mid_write(store, "parent"):  # the store's lock is held at the fork
        child = Forked(child_works, store, _sees_the_parent_as_it_was)
    apply_all(store, "parent", [update(60)])
    child.succeeded()
    parent = store.get("parent")
    assert parent is not None
    assert parent.percentage == 60
    assert store.get("child") is None  # the child's copy was its own


def test_on_sqlite_a_fork_waits_for_any_call_into_sqlite_in_flight(tmp_path: Path) -> None:
    """Not only a write: a read or a WAL checkpoint of another thread may hold the
    library's global mutexes (its allocator's), which a child would inherit locked."""
    store = SqlStore(f"sqlite:///{tmp_path / 'progress.db'}")
    try:
        create(store, "parent")
        apply_all(store, "parent", [update(1), update(2), update(3)])
        inside, release = threading.Event(), threading.Event()

        def reading() -> None:
            with sqlite_lock.sqlite_in_use:  # as every read and checkpoint is
                store.get("parent")
                inside.set()
                release.wait(HOLD_S)

        reader = threading.Thread(target=reading)
        reader.start()
        assert inside.wait(HOLD_S)
        children: list[Forked] = []
        forking = threading.Thread(
            target=lambda: children.append(
                Forked(child_works, store, _sees_what_the_parent_committed)
            )
        )
        forking.start()
        eventually(lambda: sqlite_lock.sqlite_in_use._forking, what="the fork to wait for the read")
        assert children == []
        release.set()
        reader.join(HOLD_S)
        forking.join(HOLD_S)
        (child,) = children
        child.succeeded()
        store.get("parent")  # new calls go on after the fork
    finally:
        release.set()
        store.close()
