"""Heartbeats, cleanup (timeouts, retention, the background cleaner), lifetime stats,
capacity, and switching tracking off."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from celery_progress_mcp import (
    AsyncProgressTracker,
    CapacityExceeded,
    Completed,
    Failed,
    InProgress,
    ProgressConfig,
    ProgressEventType,
    ProgressSession,
    ProgressTracker,
    SessionNotFound,
    SubOperation,
    TrackingDisabled,
)
from celery_progress_mcp.core.engine import Change
from celery_progress_mcp.store.memory import MemoryStore
from celery_progress_mcp.testing import FakeClock, capture_events

from .api import run
from .conftest import TrackerFactory

E = ProgressEventType
TIMEOUT_S = 60.0
RETENTION_S = 600.0
CLEANUP_S = 30.0


def housekeeping_tracker(
    make_tracker: TrackerFactory, clock: FakeClock, **fields: Any
) -> ProgressTracker:
    settings = {
        "session_timeout_seconds": TIMEOUT_S,
        "finished_retention_seconds": RETENTION_S,
        "cleanup_interval_seconds": CLEANUP_S,
    }
    return make_tracker(clock=clock, **{**settings, **fields})


# -- heartbeats ----------------------------------------------------------------------


def test_every_write_refreshes_the_heartbeat(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0)
    session_id = tracker.create_session("op")
    assert tracker.get_session(session_id).heartbeat_at == clock.now()
    calls: list[Callable[[], None]] = [
        lambda: tracker.update_progress(session_id, InProgress(percentage=5)),
        lambda: tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")]),
        lambda: tracker.start_sub_operation(session_id, "a"),
        lambda: tracker.pause_session(session_id),
        lambda: tracker.resume_session(session_id),
        lambda: tracker.heartbeat(session_id),
    ]
    for call in calls:
        clock.advance(7)
        call()
        assert tracker.get_session(session_id).heartbeat_at == clock.now()


def test_heartbeat_records_no_progress(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    session_id = tracker.create_session("op")
    before = tracker.get_session(session_id)
    with capture_events(tracker) as events:
        clock.advance(5)
        tracker.heartbeat(session_id)
    after = tracker.get_session(session_id)
    assert events == []
    assert after.history == before.history
    assert after.state == before.state


# -- cleanup -------------------------------------------------------------------------------


def test_cleanup_fails_sessions_silent_too_long(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = housekeeping_tracker(make_tracker, clock, cleanup_interval_seconds=1e6)
    silent = tracker.create_session("silent")
    tracker.update_progress(silent, InProgress(percentage=40))
    paused = tracker.create_session("paused")
    tracker.pause_session(paused)
    alive = tracker.create_session("alive")
    clock.advance(TIMEOUT_S / 2)
    tracker.heartbeat(alive)
    clock.advance(TIMEOUT_S / 2 + 1)

    with capture_events(tracker) as events:
        result = tracker.cleanup_expired()

    assert sorted(result.timed_out) == sorted([silent, paused])
    state = tracker.get_session(silent).state
    assert isinstance(state, Failed)
    assert state.error_code == "TIMEOUT"
    assert state.failed_at_percentage == 40
    assert str(int(TIMEOUT_S)) in state.error_message
    assert tracker.get_session(alive).status == "initializing"
    failed_events = [e.session_id for e in events if e.event_type is E.SESSION_FAILED]
    assert sorted(failed_events) == sorted([silent, paused])
    assert tracker.get_stats().total_failed == 2


def test_cleanup_removes_finished_sessions_after_retention(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = housekeeping_tracker(make_tracker, clock, cleanup_interval_seconds=1e6)
    old = tracker.create_session("old")
    tracker.complete_session(old, "done")
    clock.advance(RETENTION_S / 2)
    recent = tracker.create_session("recent")
    tracker.cancel_session(recent, "stop")
    clock.advance(RETENTION_S / 2 + 1)

    with capture_events(tracker) as events:
        result = tracker.cleanup_expired()

    assert result.removed == 1
    with pytest.raises(SessionNotFound):
        tracker.get_session(old)
    assert tracker.get_session(recent).status == "cancelled"
    expired = [e for e in events if e.event_type is E.SESSION_EXPIRED]
    assert [(e.session_id, e.operation_id) for e in expired] == [(old, "old")]
    assert expired[0].data["status"] == "completed"


def test_stats_are_lifetime_totals(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = housekeeping_tracker(make_tracker, clock, cleanup_interval_seconds=1e6)
    for index in range(3):
        session_id = tracker.create_session("op")
        clock.advance(10 * (index + 1))
        tracker.complete_session(session_id)
    failed = tracker.create_session("op")
    tracker.fail_session(failed, "broken")
    cancelled = tracker.create_session("op")
    tracker.cancel_session(cancelled)
    tracker.create_session("op")
    clock.advance(RETENTION_S + 1)
    tracker.heartbeat(tracker.list_sessions(status="initializing")[0].id)
    assert tracker.cleanup_expired().removed == 5

    stats = tracker.get_stats()
    assert stats.total_completed == 3
    assert stats.total_failed == 1
    assert stats.total_cancelled == 1
    assert stats.total_created == 6
    assert stats.avg_session_duration_seconds == pytest.approx((10 + 20 + 30) / 3)
    assert stats.active_sessions == 1
    assert stats.sessions_by_state == {"initializing": 1}


def test_the_background_cleaner_runs_every_interval_and_stops_with_close(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = housekeeping_tracker(make_tracker, clock)
    session_id = tracker.create_session("op")
    clock.advance(TIMEOUT_S + 1)  # past the timeout, and past two cleanup intervals
    assert tracker.get_session(session_id).status == "failed"

    finished = tracker.create_session("finished")
    tracker.complete_session(finished)
    clock.advance(RETENTION_S + CLEANUP_S)
    with pytest.raises(SessionNotFound):
        tracker.get_session(finished)

    survivor = tracker.create_session("survivor")
    tracker.close()
    clock.advance(TIMEOUT_S + RETENTION_S + 10 * CLEANUP_S)
    assert tracker.store.get(survivor) is not None
    assert tracker.store.get(survivor).status == "initializing"  # type: ignore[union-attr]


def test_the_tracker_is_a_context_manager(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    with housekeeping_tracker(make_tracker, clock) as tracker:
        session_id = tracker.create_session("op")
        tracker.update_progress(session_id, InProgress(percentage=10))
        tracker.update_progress(session_id, InProgress(percentage=20))
    assert tracker.store.get(session_id).percentage == 20  # type: ignore[union-attr]
    clock.advance(TIMEOUT_S + 1)
    assert tracker.store.get(session_id).status == "in_progress"  # type: ignore[union-attr]


def test_cleanup_writes_out_pending_updates_before_judging_silence(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = housekeeping_tracker(make_tracker, clock, cleanup_interval_seconds=1e6)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(TIMEOUT_S - 0.1)
    tracker.update_progress(session_id, InProgress(percentage=11))
    clock.advance(0.2)
    assert tracker.cleanup_expired().timed_out == []
    assert tracker.get_session(session_id).heartbeat_at == clock.now() - timedelta(seconds=0.2)


def test_may_time_out_spares_the_sessions_it_refuses() -> None:
    clock = FakeClock()
    config = ProgressConfig(session_timeout_seconds=TIMEOUT_S, cleanup_interval_seconds=1e6)
    spared: list[str] = []

    def may_time_out(session: ProgressSession) -> bool:
        spared.append(session.id)
        return session.operation_id != "queued"

    with ProgressTracker(
        config, store=MemoryStore(), clock=clock, may_time_out=may_time_out
    ) as tracker:
        queued = tracker.create_session("queued")
        silent = tracker.create_session("silent")
        clock.advance(TIMEOUT_S + 1)
        assert tracker.cleanup_expired().timed_out == [silent]
        assert tracker.get_session(queued).status == "initializing"
        assert sorted(spared) == sorted([queued, silent])


def test_may_time_out_may_end_a_session_otherwise() -> None:
    clock = FakeClock()
    config = ProgressConfig(session_timeout_seconds=TIMEOUT_S, cleanup_interval_seconds=1e6)

    def may_time_out(session: ProgressSession) -> bool | Change:
        if session.operation_id == "done elsewhere":
            return tracker.engine.complete(session, "told", now=clock.now())
        return True

    with ProgressTracker(
        config, store=MemoryStore(), clock=clock, may_time_out=may_time_out
    ) as tracker:
        done = tracker.create_session("done elsewhere")
        silent = tracker.create_session("silent")
        clock.advance(TIMEOUT_S + 1)
        assert tracker.cleanup_expired().timed_out == [silent]
        state = tracker.get_session(done).state
        assert isinstance(state, Completed)
        assert state.result_summary == "told"


# -- capacity -------------------------------------------------------------------------------


def test_capacity_counts_active_sessions_only(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(max_concurrent_sessions=2)
    first = tracker.create_session("a")
    second = tracker.create_session("b")
    tracker.pause_session(second)  # paused is still active
    with pytest.raises(CapacityExceeded):
        tracker.create_session("c")
    tracker.complete_session(first)  # finished work never blocks new work
    third = tracker.create_session("c")
    tracker.fail_session(third, "x")
    tracker.create_session("d")
    with pytest.raises(CapacityExceeded):
        tracker.create_session("e")
    assert tracker.get_stats().active_sessions == 2


def test_capacity_holds_under_concurrent_creation(make_tracker: TrackerFactory) -> None:
    limit = 25
    tracker = make_tracker(max_concurrent_sessions=limit)
    created: list[str] = []
    refused: list[CapacityExceeded] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(20):
            try:
                session_id = tracker.create_session("op")
            except CapacityExceeded as exc:
                with lock:
                    refused.append(exc)
            else:
                with lock:
                    created.append(session_id)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == limit
    assert len(refused) == 8 * 20 - limit
    stats = tracker.get_stats()
    assert (stats.active_sessions, stats.total_created) == (limit, limit)


# -- switched off -----------------------------------------------------------------------------


def test_disabled_tracking_makes_every_call_a_no_op(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, enabled=False)
    session_id = tracker.create_session("op", {"k": 1})
    assert isinstance(session_id, str)
    assert session_id
    assert tracker.create_session("op", session_id="mine") == "mine"
    # Task code runs unchanged: every write is accepted and does nothing.
    tracker.update_progress(session_id, InProgress(percentage=50), metadata={"x": 1})
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    tracker.start_sub_operation(session_id, "a")
    tracker.update_sub_operation(session_id, "a", 50)
    tracker.complete_sub_operation(session_id, "a")
    tracker.fail_sub_operation(session_id, "a", "x")
    tracker.pause_session(session_id)
    tracker.resume_session(session_id)
    tracker.heartbeat(session_id)
    tracker.complete_session(session_id)
    tracker.fail_session("unknown", "x")
    tracker.cancel_session("unknown")
    tracker.flush()
    clock.advance(1e6)
    assert tracker.cleanup_expired().timed_out == []
    assert tracker.list_sessions() == []
    stats = tracker.get_stats()
    assert (stats.total_created, stats.active_sessions) == (0, 0)
    with pytest.raises(TrackingDisabled, match="disabled"):
        tracker.get_session(session_id)
    subscription = tracker.subscribe_to_events()
    assert subscription.get(timeout=0) is None
    assert list(subscription) == []
    assert tracker.store.last_seq() == 0


def test_disabled_async_tracking_is_a_no_op(make_tracker: TrackerFactory) -> None:
    async def scenario() -> None:
        tracker = AsyncProgressTracker(tracker=make_tracker(enabled=False))
        session_id = await tracker.create_session("op")
        await tracker.update_progress(session_id, InProgress(percentage=50))
        await tracker.complete_session(session_id)
        assert await tracker.list_sessions() == []
        subscription = tracker.subscribe_to_events()
        assert await subscription.get(timeout=0.01) is None
        assert [event async for event in subscription] == []

    run(scenario())
