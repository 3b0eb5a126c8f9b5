"""ETA through the tracker: estimated from the rate of progress when not given."""

from __future__ import annotations

import pytest

from celery_progress_mcp import (
    InProgress,
    ProgressEventType,
    ProgressTracker,
    SubOperation,
    SubOperationUpdate,
)
from celery_progress_mcp.testing import FakeClock, capture_events

from .conftest import TrackerFactory


def eta_of(tracker: ProgressTracker, session_id: str) -> float | None:
    state = tracker.get_session(session_id).state
    assert isinstance(state, InProgress)
    return state.eta_seconds


def test_eta_is_estimated_from_the_rate(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    assert eta_of(tracker, session_id) is None  # one sample gives no rate
    clock.advance(10)
    with capture_events(tracker) as events:
        tracker.update_progress(session_id, InProgress(percentage=20))
    # 1 % per second, 80 % to go.
    assert eta_of(tracker, session_id) == pytest.approx(80.0)
    update = next(e for e in events if e.event_type is ProgressEventType.PROGRESS_UPDATED)
    assert update.data["eta_seconds"] == pytest.approx(80.0)


@pytest.mark.parametrize(
    ("smoothing", "expected"),
    [
        # The whole-run average: 30 % in 20 s.
        (0.0, 70 / 1.5),
        # EMA of increments: dp = 0.3*20 + 0.7*(0.3*10), dt = 0.3*10 + 0.7*(0.3*10).
        (0.3, 70 / ((0.3 * 20 + 0.7 * 3) / (0.3 * 10 + 0.7 * 3))),
        # Only the latest rate: 20 % in 10 s.
        (1.0, 70 / 2.0),
    ],
)
def test_smoothing_chooses_between_recent_rate_and_whole_run_average(
    make_tracker: TrackerFactory, smoothing: float, expected: float
) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0, eta_smoothing=smoothing)
    session_id = tracker.create_session("op")
    for percentage in (0, 10, 30):
        tracker.update_progress(session_id, InProgress(percentage=percentage))
        clock.advance(10)
    assert eta_of(tracker, session_id) == pytest.approx(expected)


def test_a_given_eta_is_kept(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(10)
    tracker.update_progress(session_id, InProgress(percentage=20, eta_seconds=5))
    assert eta_of(tracker, session_id) == 5


def test_eta_with_the_default_window(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock)
    session_id = tracker.create_session("op")
    tracker.update_progress(session_id, InProgress(percentage=10))
    clock.advance(2)
    tracker.update_progress(session_id, InProgress(percentage=12))
    clock.advance(0.1)
    tracker.update_progress(session_id, InProgress(percentage=14))  # coalesced
    clock.advance(1)  # the window ends: the pending 14 % is written, timed when reported
    # The EMA over the samples as reported: +2 % in 2 s, then +2 % in 0.1 s (the
    # coalesced one is timed when reported, not when written); 86 % to go.
    assert eta_of(tracker, session_id) == pytest.approx(
        86 / ((0.3 * 2 + 0.7 * 0.3 * 2) / (0.3 * 0.1 + 0.7 * 0.3 * 2)), rel=1e-6
    )


def test_eta_follows_the_rollup_of_sub_operations(make_tracker: TrackerFactory) -> None:
    clock = FakeClock()
    tracker = make_tracker(clock=clock, update_interval_ms=0)
    session_id = tracker.create_session("op")
    tracker.add_sub_operations(session_id, [SubOperation(id="a", name="A")])
    tracker.start_sub_operation(session_id, "a")
    tracker.update_progress(session_id, InProgress(), [SubOperationUpdate(id="a", percentage=20)])
    clock.advance(4)
    tracker.update_progress(session_id, InProgress(), [SubOperationUpdate(id="a", percentage=40)])
    # 5 % per second, 60 % to go.
    assert eta_of(tracker, session_id) == pytest.approx(12.0)
