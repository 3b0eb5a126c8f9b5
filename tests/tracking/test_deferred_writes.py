"""Creations and transitions queued for the writer, on the SQL stores.

These trackers run on the system clock with their threads, as in production:
a creation, and every write of a session the tracker knows, is checked in
the caller, queued, and written by the writer with its next batch. Holding
the tracker's state lock keeps the writer from taking a batch, so a test
can look at what is queued before it is written.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from celery_progress_mcp import (
    CapacityExceeded,
    InProgress,
    InvalidProgress,
    InvalidTransition,
    ProgressConfig,
    ProgressError,
    ProgressEvent,
    ProgressSession,
    ProgressTracker,
    SessionNotFound,
    SubOperation,
)
from celery_progress_mcp.core.engine import Change
from celery_progress_mcp.store.sql import SqlStore
from celery_progress_mcp.testing import eventually
from celery_progress_mcp.tracking import write_path

Refusal = tuple[str, ProgressError, str, bool]


@pytest.fixture
def store(sql_store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sql_store_url)
    yield store
    store.close()


@pytest.fixture
def tracker(store: SqlStore) -> Iterator[ProgressTracker]:
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    yield tracker
    tracker.close()


@pytest.fixture
def elsewhere(sql_store_url: str) -> Iterator[ProgressTracker]:
    """A tracker of another process on the same database."""
    store = SqlStore(sql_store_url)
    tracker = ProgressTracker(ProgressConfig(update_interval_ms=0), store=store)
    yield tracker
    tracker.close()
    store.close()


def refusals_of(tracker: ProgressTracker) -> list[Refusal]:
    """What the tracker's refusal listener hears: the session, the error, the
    thread it was called from, and whether another thread could take the
    tracker's locks meanwhile (it is called holding none)."""
    heard: list[Refusal] = []
    locks = tracker._shared.locks

    def listener(session_id: str, error: ProgressError) -> None:
        free: list[bool] = []

        def try_locks() -> None:
            taken = locks.commit.acquire(timeout=5)
            if taken:
                locks.commit.release()
            free.append(taken)

        probe = threading.Thread(target=try_locks)
        probe.start()
        probe.join()
        heard.append((session_id, error, threading.current_thread().name, free[0]))

    tracker.add_refusal_listener(listener)
    return heard


def logged(store: SqlStore, session_id: str | None = None) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    since = 0
    while page := store.events_since(since, session_id=session_id):
        events.extend(page)
        since = page[-1].seq
    return events


# -- creation ---------------------------------------------------------------------------------


def test_a_creation_is_seen_here_at_once_and_written_by_the_writer(
    tracker: ProgressTracker, store: SqlStore
) -> None:
    dispatched = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with tracker._shared.locks.state:  # the writer cannot take it yet
        session_id = tracker.create_session("op", {"k": 1}, created_at=dispatched)
        assert store.get(session_id) is None
        seen = tracker.get_session(session_id)
        assert (seen.status, seen.metadata, seen.created_at) == (
            "initializing",
            {"k": 1},
            dispatched,
        )
    # Written by the writer, with no flush: it wakes at once.
    stored = eventually(lambda: store.get(session_id), what="the creation written")
    assert (stored.status, stored.created_at, stored.operation_id) == (
        "initializing",
        dispatched,
        "op",
    )
    assert [e.event_type.value for e in logged(store, session_id)] == ["SessionCreated"]
    assert tracker.get_session(session_id) == stored


def test_a_naive_created_at_is_refused(tracker: ProgressTracker) -> None:
    with pytest.raises(InvalidProgress, match="aware"):
        tracker.create_session("op", created_at=datetime(2026, 3, 1))


def test_writes_of_a_session_created_here_queue_behind_its_creation_in_order(
    tracker: ProgressTracker, store: SqlStore
) -> None:
    subscription = tracker.subscribe_to_events()
    with tracker._shared.locks.state:
        session_id = tracker.create_session("op")
        tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
        tracker.start_sub_operation(session_id, "a")
        tracker.update_progress(session_id, InProgress(percentage=10.0))
        tracker.pause_session(session_id, "wait")
        tracker.resume_session(session_id)
        tracker.heartbeat(session_id)
        tracker.update_progress(session_id, InProgress(percentage=60.0))
        tracker.complete_session(session_id, "done")
        assert store.get(session_id) is None
        assert tracker.get_session(session_id).status == "completed"
    tracker.flush()
    kinds = [e.event_type.value for e in logged(store, session_id)]
    assert kinds[0] == "SessionCreated"
    assert kinds.index("SessionPaused") < kinds.index("SessionResumed") < len(kinds) - 1
    assert kinds[-1] == "SessionCompleted"
    session = store.get(session_id)
    assert session is not None
    assert session.status == "completed"
    assert session.state.result_summary == "done"  # type: ignore[union-attr]
    # Published in sequence order, and the log replays every one of them.
    published = subscription.drain()
    assert [e.seq for e in published] == sorted(e.seq for e in published)
    assert published == logged(store, session_id)
    replayed = tracker.subscribe_to_events(session_id=session_id, since=0)
    assert replayed.drain() == published
    subscription.close()
    replayed.close()


def test_a_refused_transition_raises_in_the_caller_and_nothing_is_queued(
    tracker: ProgressTracker, store: SqlStore
) -> None:
    session_id = tracker.create_session("op")
    tracker.complete_session(session_id)
    # Refused by what this process sees, then by the store (which decides): the
    # completion queued before is written first.
    with pytest.raises(InvalidTransition):
        tracker.update_progress(session_id, InProgress(percentage=5.0))
    with pytest.raises(InvalidTransition):
        tracker.pause_session(session_id)
    with pytest.raises(InvalidTransition):
        tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    assert tracker._shared.windows.queued_count == 0
    tracker.flush()
    assert [e.event_type.value for e in logged(store, session_id)] == [
        "SessionCreated",
        "SessionCompleted",
    ]


def test_a_session_known_here_is_not_created_twice(tracker: ProgressTracker) -> None:
    session_id = tracker.create_session("op", session_id="s")
    with pytest.raises(InvalidProgress, match="already exists"):
        tracker.create_session("op", session_id=session_id)
    assert tracker.create_session("op", session_id=session_id, if_absent=True) == session_id
    tracker.flush()
    assert tracker.get_stats().total_created == 1


def test_if_absent_leaves_a_session_created_elsewhere_as_it_is(
    tracker: ProgressTracker, store: SqlStore, elsewhere: ProgressTracker
) -> None:
    first = datetime(2026, 3, 1, tzinfo=UTC)
    elsewhere.create_session("op", session_id="s", created_at=first)
    elsewhere.update_progress("s", InProgress(percentage=40.0))
    elsewhere.flush()
    heard = refusals_of(tracker)
    tracker.create_session(
        "op", session_id="s", created_at=first + timedelta(hours=1), if_absent=True
    )
    tracker.update_progress("s", InProgress(percentage=50.0))
    tracker.flush()
    session = store.get("s")
    assert session is not None
    assert (session.created_at, session.percentage) == (first, 50.0)
    assert store.stats().total_created == 1
    assert heard == []
    # Without if_absent the store refuses it when it is written: the listener hears it.
    tracker.create_session("op", session_id="t")
    elsewhere.create_session("op", session_id="u")
    elsewhere.flush()
    with tracker._shared.locks.state:
        tracker.create_session("op", session_id="u")
    tracker.flush()
    assert [(sid, type(error)) for sid, error, _, _ in heard] == [("u", InvalidProgress)]
    assert "already exists" in str(heard[0][1])


# -- capacity ---------------------------------------------------------------------------------


def test_capacity_exceeded_raises_in_the_caller(store: SqlStore) -> None:
    with ProgressTracker(ProgressConfig(max_concurrent_sessions=2), store=store) as tracker:
        first = tracker.create_session("a")
        second = tracker.create_session("b")
        tracker.pause_session(second)
        with pytest.raises(CapacityExceeded, match=r"max_concurrent_sessions.*2"):
            tracker.create_session("c")
        tracker.complete_session(first)
        third = tracker.create_session("c")
        with pytest.raises(CapacityExceeded):
            tracker.create_session("d")
        tracker.flush()
        assert tracker.get_stats().active_sessions == 2
        assert {s.id for s in tracker.list_sessions(status=["paused", "initializing"])} == {
            second,
            third,
        }


def test_capacity_reached_through_another_process_is_refused_when_written(
    store: SqlStore, sql_store_url: str
) -> None:
    config = ProgressConfig(max_concurrent_sessions=2, update_interval_ms=0)
    other_store = SqlStore(sql_store_url)
    with (
        ProgressTracker(config, store=store) as tracker,
        ProgressTracker(config, store=other_store) as other,
    ):
        heard = refusals_of(tracker)
        other.create_session("x", session_id="theirs")
        other.flush()
        with tracker._shared.locks.state:
            tracker.create_session("a", session_id="a")
            tracker.update_progress("a", InProgress(percentage=1.0))
            tracker.create_session("b", session_id="b")
            tracker.update_progress("b", InProgress(percentage=1.0))
        eventually(lambda: heard, what="the refusal")
        assert [(sid, type(error)) for sid, error, _, _ in heard] == [("b", CapacityExceeded)]
        _, _, thread, free = heard[0]
        assert thread == "celery-progress-writer"
        assert free, "the listener was called holding the tracker's locks"
        assert store.get("b") is None
        with pytest.raises(SessionNotFound):
            tracker.get_session("b")
        assert tracker.get_session("a").percentage == 1.0
    other_store.close()


# -- refusals ---------------------------------------------------------------------------------


def test_a_write_refused_because_another_process_moved_the_session_on_is_told(
    tracker: ProgressTracker, store: SqlStore, elsewhere: ProgressTracker
) -> None:
    heard = refusals_of(tracker)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10.0))
    tracker.flush()
    with tracker._shared.locks.state:
        tracker.complete_session(session_id, "done")  # checked here: fine, and queued
        elsewhere.cancel_session(session_id, "stopped by an operator")
    eventually(lambda: heard, what="the refusal")
    assert [(sid, type(error)) for sid, error, _, _ in heard] == [(session_id, InvalidTransition)]
    assert heard[0][3], "the listener was called holding the tracker's locks"
    assert store.get(session_id).status == "cancelled"  # type: ignore[union-attr]
    assert tracker.get_session(session_id).status == "cancelled"
    assert "SessionCompleted" not in [e.event_type.value for e in logged(store, session_id)]


def test_a_deferred_mutation_of_a_session_not_known_here_is_queued_unchecked(
    tracker: ProgressTracker, store: SqlStore, elsewhere: ProgressTracker
) -> None:
    heard = refusals_of(tracker)
    session_id = elsewhere.create_session("op")
    elsewhere.flush()

    def start(session: ProgressSession) -> Change:
        return tracker.engine.update(session, InProgress(percentage=0.0), now=session.updated_at)

    with tracker._shared.locks.state:
        assert tracker.apply_mutation(session_id, start, deferred=True) is None
        assert tracker.apply_mutation("missing", start, deferred=True) is None
    tracker.flush()
    assert store.get(session_id).status == "in_progress"  # type: ignore[union-attr]
    assert [(sid, type(error)) for sid, error, _, _ in heard] == [("missing", SessionNotFound)]
    # Known here now: the next one is checked here, and refused here.
    with pytest.raises(InvalidTransition):
        tracker.apply_mutation(
            session_id, functools.partial(tracker.engine.resume, now=datetime.now(UTC))
        )


def test_a_write_of_a_session_not_known_here_is_written_at_once(
    tracker: ProgressTracker, store: SqlStore, elsewhere: ProgressTracker
) -> None:
    session_id = elsewhere.create_session("op")
    elsewhere.flush()
    with tracker._shared.locks.state:  # a write in the caller's thread needs no writer
        tracker.cancel_session(session_id, "from the dashboard")
        assert store.get(session_id).status == "cancelled"  # type: ignore[union-attr]


# -- many sessions, one batch -----------------------------------------------------------------


def test_creations_updates_and_transitions_of_many_sessions_go_in_one_batch(
    tracker: ProgressTracker, store: SqlStore
) -> None:
    batches: list[int] = []
    apply_many = store.apply_many

    def counting(writes, **options):  # type: ignore[no-untyped-def]
        batches.append(len(writes))
        return apply_many(writes, **options)

    store.apply_many = counting  # type: ignore[method-assign]
    ids = [f"s{index:02d}" for index in range(20)]
    with tracker._shared.locks.state:
        for session_id in ids:
            tracker.create_session("op", session_id=session_id)
            tracker.update_progress(session_id, InProgress(percentage=50.0))
            if session_id.endswith(("0", "5")):
                tracker.fail_session(session_id, "boom")
            else:
                tracker.complete_session(session_id)
    tracker.flush()
    assert batches == [20]
    for session_id in ids:
        kinds = [e.event_type.value for e in logged(store, session_id)]
        assert kinds[0] == "SessionCreated"
        assert kinds[-1] in ("SessionCompleted", "SessionFailed")
    stats = store.stats()
    assert (stats.total_created, stats.total_completed, stats.total_failed) == (20, 16, 4)
    seqs = [e.seq for e in logged(store)]
    assert seqs == list(range(1, store.last_seq() + 1))


# -- closing ------------------------------------------------------------------------------------


def test_close_writes_every_queued_creation_and_transition(store: SqlStore) -> None:
    tracker = ProgressTracker(ProgressConfig(), store=store)
    with tracker._shared.locks.state:
        ids = [tracker.create_session("op") for _ in range(30)]
        for session_id in ids[:10]:
            tracker.complete_session(session_id)
    tracker.close()
    assert all(store.get(session_id) is not None for session_id in ids)
    assert store.stats().total_completed == 10


_EXITING_WITHOUT_CLOSE = """
import sys
from celery_progress_mcp import InProgress, ProgressTracker, ProgressConfig
from celery_progress_mcp.store.sql import SqlStore

tracker = ProgressTracker(ProgressConfig(), store=SqlStore(sys.argv[1]))
for index in range(int(sys.argv[2])):
    session_id = tracker.create_session("op", session_id=f"exit-{index}")
    tracker.update_progress(session_id, InProgress(percentage=50.0))
    if index % 2:
        tracker.complete_session(session_id)
print("created", flush=True)
"""


def test_a_process_that_exits_without_closing_loses_nothing(
    sql_store_url: str, store: SqlStore
) -> None:
    count = 200
    finished = subprocess.run(
        [sys.executable, "-c", _EXITING_WITHOUT_CLOSE, sql_store_url, str(count)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "created"
    for index in range(count):
        session = store.get(f"exit-{index}")
        assert session is not None, f"exit-{index} was not written"
        assert session.status == ("completed" if index % 2 else "in_progress")
    assert store.stats().total_created == count


def test_a_write_refused_by_a_stale_view_is_decided_by_the_store(
    tracker: ProgressTracker, store: SqlStore, elsewhere: ProgressTracker
) -> None:
    """Other processes write the session too: what this process sees of it is
    behind, and its refusal is not the last word."""
    session_id = tracker.create_session("op")
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    tracker.flush()
    elsewhere.add_sub_operations(session_id, [SubOperation(id="b", name="B")])
    elsewhere.flush()
    tracker.start_sub_operation(session_id, "b")  # unknown here, known to the store
    session = store.get(session_id)
    assert session is not None
    assert session.sub_operation("b").state == "active"  # type: ignore[union-attr]
    assert [sub.id for sub in tracker.get_session(session_id).sub_operations] == ["a", "b"]


def test_close_waits_a_bounded_time_for_a_store_that_hangs(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(write_path, "CLOSE_WAIT_S", 0.5)
    release = threading.Event()
    hanging = threading.Event()
    apply_many = store.apply_many

    def hang(writes, **options):  # type: ignore[no-untyped-def]
        hanging.set()
        release.wait(30)
        return apply_many(writes, **options)

    store.apply_many = hang  # type: ignore[method-assign]
    tracker = ProgressTracker(ProgressConfig(), store=store)
    try:
        tracker.create_session("op")
        assert hanging.wait(30)
        tracker.create_session("op")  # queued behind the batch the store holds
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="celery_progress_mcp.tracking.write_path"):
            tracker.close()
        assert time.monotonic() - started < 5
        assert "1 queued writes lost" in caplog.text
    finally:
        release.set()
