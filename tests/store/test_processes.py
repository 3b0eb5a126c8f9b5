"""Processes sharing one SQL store: many writers lose nothing, a killed writer
leaves nothing half-written. On SQLite and PostgreSQL (and MariaDB)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
from collections import defaultdict
from collections.abc import Iterator
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized

import pytest

from celery_progress_mcp import (
    ProgressConfig,
    ProgressEvent,
    ProgressEventType,
    ProgressTracker,
    SubOperation,
)
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.store.sql.statements import COUNT_BY_STATUS
from celery_progress_mcp.testing import eventually

from .workers import KILL_SESSIONS, STEPS_PER_MEMBER, member, steady_writer

pytestmark = pytest.mark.slow

#: Spawned, not forked: each process starts clean, as a worker on another machine would.
SPAWN = multiprocessing.get_context("spawn")
MEMBERS = 8
#: Rounds of start-a-writer-then-kill-it in the kill test.
KILL_ROUNDS = 3
#: Updates a writer must have made before it is killed.
WRITES_BEFORE_KILL = 40


def all_events(store: SqlStore, session_id: str | None = None) -> Iterator[ProgressEvent]:
    cursor = 0
    while page := store.events_since(cursor, session_id=session_id, limit=1000):
        yield from page
        cursor = page[-1].seq


@pytest.fixture
def shared_url(request: pytest.FixtureRequest) -> str:
    """An empty store of the kind the test is parametrised with, for processes to share."""
    from ..conftest import _empty_store_url

    return _empty_store_url(request, request.param)


@pytest.mark.parametrize("shared_url", ["sqlite", "postgresql"], indirect=True)
def test_eight_processes_on_one_session_lose_no_update(shared_url: str) -> None:
    store = SqlStore(shared_url)
    tracker = ProgressTracker(
        ProgressConfig(update_interval_ms=0, granularity_level="Verbose"), store=store
    )
    session_id = tracker.create_session("chord")
    members = [f"member-{index}" for index in range(MEMBERS)]
    tracker.add_sub_operations(session_id, [SubOperation(id=sub, name=sub) for sub in members])
    go = SPAWN.Event()
    processes = [
        SPAWN.Process(target=member, args=(shared_url, session_id, sub, go)) for sub in members
    ]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(timeout=600)
    assert [process.exitcode for process in processes] == [0] * MEMBERS
    tracker.complete_session(session_id, "all members done")

    session = tracker.get_session(session_id)
    assert session.status == "completed"
    assert {sub.id: (sub.state, sub.percentage) for sub in session.sub_operations} == dict.fromkeys(
        members, ("completed", 100.0)
    )
    logged = list(all_events(store))
    seqs = [event.seq for event in logged]
    assert seqs == sorted(set(seqs))  # strictly increasing, each once
    assert seqs == list(range(1, store.last_seq() + 1))
    steps: dict[str, list[float]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    for event in logged:
        sub_id = event.data.get("sub_operation_id")
        if sub_id is None:
            continue
        kinds[sub_id].append(event.event_type.value)
        if event.event_type == ProgressEventType.SUB_OPERATION_UPDATED:
            steps[sub_id].append(event.data["sub_operation_percentage"])
    expected = [step * 100 / STEPS_PER_MEMBER for step in range(1, STEPS_PER_MEMBER + 1)]
    for sub in members:
        # Every update of every process, exactly once, in the order it was made.
        assert steps[sub] == expected
        assert kinds[sub][0] == "SubOperationAdded"
        assert kinds[sub][1] == "SubOperationStarted"
        assert kinds[sub][-1] == "SubOperationCompleted"
    assert store.stats().sessions_by_state == {"completed": 1}
    tracker.close()
    store.close()


@pytest.mark.parametrize("shared_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_a_writer_killed_mid_write_leaves_every_session_consistent(shared_url: str) -> None:
    store = SqlStore(shared_url)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    for index in range(KILL_SESSIONS):
        session_id = tracker.create_session("steady", {"n": 0}, session_id=f"s{index}")
        tracker.add_sub_operations(session_id, [SubOperation(id="x", name="x")])
    tracker.close()
    for _ in range(KILL_ROUNDS):
        written = SPAWN.Value("i", 0)
        writer = SPAWN.Process(target=steady_writer, args=(shared_url, written))
        writer.start()
        eventually(
            functools.partial(_busy_or_gone, written, writer),
            timeout_s=120,
            what="the writer to be in the middle of its work",
        )
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=30)
        assert writer.exitcode == -signal.SIGKILL
        check_consistent(SqlStore(shared_url))
    store.close()


def _busy_or_gone(written: Synchronized[int], writer: SpawnProcess) -> bool:
    """The writer has made its first writes (or died, which the test then reports)."""
    return written.value >= WRITES_BEFORE_KILL or not writer.is_alive()


def check_consistent(store: SqlStore) -> None:
    """Each update wrote the session row, its sub-operation row, its snapshot and
    its event together: so they all agree on the last update's number ``n``."""
    try:
        total = 0
        for index in range(KILL_SESSIONS):
            session = store.get(f"s{index}")
            assert session is not None
            n = int(session.metadata["n"])
            total += n
            (sub,) = session.sub_operations
            assert sub.metadata == ({"n": n} if n else {})
            assert sub.percentage == n % 100
            if n:
                assert session.state.percentage == n % 100  # type: ignore[union-attr]
            # Snapshot 0 at creation, one per update; the latest is always kept.
            assert session.history[-1].index == n
            assert session.history[-1].metadata == ({"n": n} if n else {})
            updates = [
                event
                for event in all_events(store, session.id)
                if event.event_type == ProgressEventType.PROGRESS_UPDATED
            ]
            assert len(updates) == n
            assert [event.data["percentage"] for event in updates[-1:]] == ([n % 100] if n else [])
        assert total > 0
        # The live counts in the counters row moved in the same transactions.
        with store.engine.connect() as connection:
            grouped = {row[0]: row[1] for row in connection.execute(COUNT_BY_STATUS)}
        assert store.stats().sessions_by_state == grouped
    finally:
        store.close()
