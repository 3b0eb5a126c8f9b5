"""Coalescing: within ``update_interval_ms`` only the latest update is written, and
it is written when the window ends, without a further call; transitions are never
coalesced and write out what is pending first, so order is kept."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from celery_progress_mcp import (
    Completed,
    InProgress,
    ProgressEvent,
    ProgressEventType,
    ProgressGranularity,
    ProgressTracker,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.core.clock import SystemClock
from celery_progress_mcp.testing import FakeClock, capture_events, eventually

from .conftest import TrackerFactory

E = ProgressEventType
WINDOW_S = 0.5


def committed_percentage(tracker: ProgressTracker, session_id: str) -> float:
    session = tracker.store.get(session_id)
    assert session is not None
    return session.percentage


def updates(events: list[ProgressEvent]) -> list[float]:
    return [e.data["percentage"] for e in events if e.event_type is E.PROGRESS_UPDATED]


def test_within_the_window_only_the_latest_update_is_written(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    session_id = tracker.create_session("op")
    with capture_events(tracker) as events:
        for percentage in (10, 20, 30, 40):
            tracker.update_progress(session_id, InProgress(percentage=percentage))
            clock.advance(0.1)
        # The first was written at once, the rest wait for the window.
        assert committed_percentage(tracker, session_id) == 10
        assert updates(events) == [10]
        # This process sees the latest at once.
        assert tracker.get_session(session_id).percentage == 40

        clock.advance(WINDOW_S)  # the window ends: no further call needed

        assert committed_percentage(tracker, session_id) == 40
    assert updates(events) == [10, 40]
    history = tracker.get_session(session_id).history
    assert [snap.state.status for snap in history] == ["initializing", "in_progress", "in_progress"]
    assert [snap.state.percentage for snap in history[1:]] == [10, 40]  # type: ignore[union-attr]


def test_the_pending_update_is_written_exactly_when_the_window_ends(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(0.2)
    tracker.update_progress(session_id, InProgress(percentage=50))
    clock.advance(WINDOW_S - 0.2 - 0.01)
    assert committed_percentage(tracker, session_id) == 10
    clock.advance(0.01)
    assert committed_percentage(tracker, session_id) == 50
    # Written with the time it was reported, not the time of the flush.
    updated_at = tracker.get_session(session_id).updated_at
    assert (updated_at - clock.now()).total_seconds() == pytest.approx(-(WINDOW_S - 0.2))


def test_coalesced_metadata_and_sub_operation_updates_merge(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, granularity_level=ProgressGranularity.VERBOSE)
    session_id = tracker.create_session("op", {"owner": "me"})
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    tracker.start_sub_operation(session_id, "a")  # a write: it opens a window
    clock.advance(WINDOW_S)
    tracker.update_progress(session_id, InProgress(percentage=1))
    tracker.update_progress(
        session_id,
        InProgress(percentage=5),
        [SubOperationUpdate(id="a", percentage=10, metadata={"x": 1})],
        {"rows": 10},
    )
    tracker.update_progress(
        session_id,
        InProgress(percentage=6),
        [SubOperationUpdate(id="a", percentage=20, metadata={"y": 2})],
        {"bytes": 99},
    )
    assert committed_percentage(tracker, session_id) == 1
    clock.advance(WINDOW_S)
    session = tracker.store.get(session_id)
    assert session is not None
    assert session.percentage == 6
    assert session.metadata == {"owner": "me", "rows": 10, "bytes": 99}
    sub = session.sub_operations[0]
    assert (sub.percentage, sub.metadata) == (20, {"x": 1, "y": 2})
    assert session.history[-1].metadata == {"rows": 10, "bytes": 99}


def test_after_a_quiet_window_the_next_update_is_written_at_once(
    make_tracker: TrackerFactory,
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(WINDOW_S)
    tracker.update_progress(session_id, InProgress(percentage=15))
    assert committed_percentage(tracker, session_id) == 15


def test_windows_are_per_session(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    first, second = tracker.create_session("a"), tracker.create_session("b")
    tracker.update_progress(first, InProgress(percentage=10))
    tracker.update_progress(first, InProgress(percentage=11))
    tracker.update_progress(second, InProgress(percentage=20))
    assert committed_percentage(tracker, first) == 10
    assert committed_percentage(tracker, second) == 20


TRANSITIONS: dict[str, Callable[[ProgressTracker, str], object]] = {
    "pause": lambda t, sid: t.pause_session(sid, "wait"),
    "complete": lambda t, sid: t.complete_session(sid, "done"),
    "fail": lambda t, sid: t.fail_session(sid, "broken", "E1"),
    "cancel": lambda t, sid: t.cancel_session(sid, "stop"),
    "complete via update_progress": lambda t, sid: t.update_progress(
        sid, Completed(completed_at=t.clock.now())
    ),
    "start sub-operation": lambda t, sid: t.start_sub_operation(sid, "b"),
    "complete sub-operation": lambda t, sid: t.complete_sub_operation(sid, "a"),
    "fail sub-operation": lambda t, sid: t.fail_sub_operation(sid, "a", "broken"),
    "sub-operation state in an update": lambda t, sid: t.update_progress(
        sid, InProgress(percentage=42), [SubOperationUpdate(id="b", state=SubOperationState.ACTIVE)]
    ),
    "apply_mutation": lambda t, sid: t.apply_mutation(
        sid, functools.partial(t.engine.pause, reason="wait", now=t.clock.now())
    ),
}
TRANSITION_EVENTS = {
    "pause": E.SESSION_PAUSED,
    "complete": E.SESSION_COMPLETED,
    "fail": E.SESSION_FAILED,
    "cancel": E.SESSION_CANCELLED,
    "complete via update_progress": E.SESSION_COMPLETED,
    "start sub-operation": E.SUB_OPERATION_STARTED,
    "complete sub-operation": E.SUB_OPERATION_COMPLETED,
    "fail sub-operation": E.SUB_OPERATION_FAILED,
    "sub-operation state in an update": E.SUB_OPERATION_STARTED,
    "apply_mutation": E.SESSION_PAUSED,
}


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_transitions_are_never_coalesced_and_flush_pending_first(
    make_tracker: TrackerFactory, name: str
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, granularity_level=ProgressGranularity.VERBOSE)
    session_id = tracker.create_session("op")
    tracker.add_sub_operations(
        session_id, [SubOperation(id="a", name="A"), SubOperation(id="b", name="B")]
    )
    tracker.start_sub_operation(session_id, "a")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(0.1)
    tracker.update_progress(session_id, InProgress(percentage=30), metadata={"pending": True})
    history_before = len(tracker.store.get(session_id).history)  # type: ignore[union-attr]
    with capture_events(tracker) as events:
        TRANSITIONS[name](tracker, session_id)  # no clock advance: still inside the window

    kinds = [e.event_type for e in events]
    # The pending update first, then the transition, in sequence order.
    assert kinds[0] is E.PROGRESS_UPDATED
    assert events[0].data["percentage"] == 30
    assert TRANSITION_EVENTS[name] in kinds[1:]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert len({e.seq for e in events}) == len(events)
    committed = tracker.store.get(session_id)
    assert committed is not None
    assert committed.metadata["pending"] is True
    new_snapshots = committed.history[history_before:]
    assert new_snapshots[0].state.status == "in_progress"
    assert new_snapshots[0].metadata == {"pending": True}
    assert [s.index for s in committed.history] == sorted(s.index for s in committed.history)
    if name in ("pause", "apply_mutation"):
        assert committed.state.paused_at_percentage == 30  # type: ignore[union-attr]


def test_a_window_of_zero_writes_every_update(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker(update_interval_ms=0, max_history_snapshots=1000)
    session_id = tracker.create_session("op")
    with capture_events(tracker) as events:
        for percentage in range(1, 101):
            tracker.update_progress(session_id, InProgress(percentage=percentage))
            assert committed_percentage(tracker, session_id) == percentage
    assert updates(events) == list(range(1, 101))
    assert len(tracker.get_session(session_id).history) == 101


def test_close_writes_out_what_is_pending(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    tracker.update_progress(session_id, InProgress(percentage=77))
    tracker.close()
    assert committed_percentage(tracker, session_id) == 77


def test_flush_writes_out_what_is_pending(make_tracker: TrackerFactory) -> None:
    tracker = make_tracker()
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    tracker.update_progress(session_id, InProgress(percentage=77))
    tracker.flush()
    assert committed_percentage(tracker, session_id) == 77


def test_with_the_real_clock_the_flusher_thread_writes_the_last_update(
    make_tracker: TrackerFactory,
) -> None:
    tracker = make_tracker(clock=SystemClock(), update_interval_ms=50)
    session_id = tracker.create_session("op")
    for percentage in range(1, 21):
        tracker.update_progress(session_id, InProgress(percentage=percentage))
    # No further call: only the flusher thread can write the last update.
    eventually(lambda: committed_percentage(tracker, session_id) == 20, what="the last update")
    assert committed_percentage(tracker, session_id) == 20
