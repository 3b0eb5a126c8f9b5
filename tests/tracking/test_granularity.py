"""Granularity: which events and history each level records, and what event data carries."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_progress_mcp import (
    InProgress,
    ProgressEvent,
    ProgressEventType,
    ProgressGranularity,
    ProgressSession,
    ProgressTracker,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.testing import capture_events

from .conftest import TrackerFactory

E = ProgressEventType
G = ProgressGranularity

BASIC_EVENTS = {E.SESSION_CREATED, E.SESSION_COMPLETED, E.SESSION_FAILED, E.SESSION_CANCELLED}
LIFECYCLE_EVENTS = BASIC_EVENTS | {E.SESSION_PAUSED, E.SESSION_RESUMED, E.STATE_CHANGED}
STANDARD_EVENTS = LIFECYCLE_EVENTS | {E.PROGRESS_UPDATED}
SUB_OPERATION_EVENTS = {
    E.SUB_OPERATION_ADDED,
    E.SUB_OPERATION_STARTED,
    E.SUB_OPERATION_UPDATED,
    E.SUB_OPERATION_COMPLETED,
    E.SUB_OPERATION_FAILED,
}
Recorder = Callable[..., tuple[list[ProgressEvent], dict[str, ProgressSession]]]
STEP_FIELDS = {"current_step", "current_step_number", "total_steps", "eta_seconds"}


def run_workload(tracker: ProgressTracker) -> dict[str, str]:
    """Every kind of call, on three sessions that complete, fail and are cancelled."""
    done = tracker.create_session("done", {"k": 1})
    tracker.add_sub_operations(
        done, [SubOperation(id="a", name="A"), SubOperation(id="b", name="B")]
    )
    tracker.start_sub_operation(done, "a")
    tracker.update_progress(
        done,
        InProgress(
            percentage=25,
            current_step="loading",
            total_steps=4,
            current_step_number=1,
            eta_seconds=9,
        ),
        [SubOperationUpdate(id="a", percentage=50)],
        {"rows": 5},
    )
    tracker.complete_sub_operation(done, "a")
    tracker.start_sub_operation(done, "b")
    tracker.fail_sub_operation(done, "b", "flaky")
    tracker.pause_session(done, "maintenance")
    tracker.resume_session(done)
    tracker.update_progress(done, InProgress(percentage=75, current_step="saving"))
    tracker.complete_session(done, "ok")
    failed = tracker.create_session("failed")
    tracker.update_progress(failed, InProgress(percentage=10))
    tracker.fail_session(failed, "broken", "E1")
    cancelled = tracker.create_session("cancelled")
    tracker.cancel_session(cancelled, "stop")
    return {"done": done, "failed": failed, "cancelled": cancelled}


@pytest.fixture
def record(make_tracker: TrackerFactory) -> Recorder:
    def record(
        granularity: ProgressGranularity, detailed_events: bool = True
    ) -> tuple[list[ProgressEvent], dict[str, ProgressSession]]:
        tracker = make_tracker(
            update_interval_ms=0,
            granularity_level=granularity,
            enable_detailed_events=detailed_events,
        )
        with capture_events(tracker) as events:
            ids = run_workload(tracker)
        return events, {name: tracker.get_session(sid) for name, sid in ids.items()}

    return record


@pytest.mark.parametrize(
    ("granularity", "expected"),
    [
        (G.BASIC, BASIC_EVENTS),
        (G.STANDARD, STANDARD_EVENTS),
        (G.DETAILED, STANDARD_EVENTS),
        (G.VERBOSE, STANDARD_EVENTS | SUB_OPERATION_EVENTS),
    ],
)
def test_each_level_emits_its_event_set(
    record: Recorder, granularity: ProgressGranularity, expected: set[ProgressEventType]
) -> None:
    events, _ = record(granularity)
    assert {e.event_type for e in events} == expected


@pytest.mark.parametrize("granularity", list(G))
def test_without_detailed_events_lifecycle_events_are_kept(
    record: Recorder, granularity: ProgressGranularity
) -> None:
    """MagicTunnel's enable_detailed_events=False silenced everything; here it keeps
    the lifecycle (as far as the granularity records it) and drops the rest."""
    events, _ = record(granularity, False)
    kinds = {e.event_type for e in events}
    expected = BASIC_EVENTS if granularity is G.BASIC else LIFECYCLE_EVENTS
    assert kinds == expected


def test_every_event_carries_status_and_percentage(record: Recorder) -> None:
    events, _ = record(G.VERBOSE)
    for event in events:
        assert {"status", "percentage"} <= set(event.data), event
        assert 0 <= event.data["percentage"] <= 100
    completed = next(e for e in events if e.event_type is E.SESSION_COMPLETED)
    assert (completed.data["status"], completed.data["percentage"]) == ("completed", 100.0)
    failed = next(e for e in events if e.event_type is E.SESSION_FAILED)
    assert (failed.data["status"], failed.data["percentage"]) == ("failed", 10.0)
    assert failed.data["error_code"] == "E1"


@pytest.mark.parametrize(
    ("granularity", "has_steps"),
    [(G.STANDARD, False), (G.DETAILED, True), (G.VERBOSE, True)],
)
def test_step_fields_travel_with_updates_from_detailed_on(
    record: Recorder, granularity: ProgressGranularity, has_steps: bool
) -> None:
    events, _ = record(granularity)
    first_update = next(e for e in events if e.event_type is E.PROGRESS_UPDATED)
    assert first_update.data["percentage"] == 25
    if has_steps:
        assert {k: first_update.data[k] for k in STEP_FIELDS} == {
            "current_step": "loading",
            "current_step_number": 1,
            "total_steps": 4,
            "eta_seconds": 9,
        }
    else:
        assert STEP_FIELDS.isdisjoint(first_update.data)


def test_sub_operation_events_name_their_sub_operation(record: Recorder) -> None:
    events, _ = record(G.VERBOSE)
    subs = [e for e in events if e.event_type in SUB_OPERATION_EVENTS]
    assert [(e.event_type, e.data["sub_operation_id"]) for e in subs] == [
        (E.SUB_OPERATION_ADDED, "a"),
        (E.SUB_OPERATION_ADDED, "b"),
        (E.SUB_OPERATION_STARTED, "a"),
        (E.SUB_OPERATION_UPDATED, "a"),
        (E.SUB_OPERATION_COMPLETED, "a"),
        (E.SUB_OPERATION_STARTED, "b"),
        (E.SUB_OPERATION_FAILED, "b"),
    ]
    failed = subs[-1]
    assert failed.data["sub_operation_state"] == SubOperationState.FAILED
    assert failed.data["sub_operation_error"] == "flaky"


def test_basic_history_records_status_changes_only(record: Recorder) -> None:
    _, sessions = record(G.BASIC)
    statuses = [snap.state.status for snap in sessions["done"].history]
    assert statuses == ["initializing", "in_progress", "paused", "in_progress", "completed"]


def test_standard_history_records_percentages_without_steps(record: Recorder) -> None:
    _, sessions = record(G.STANDARD)
    in_progress = [s.state for s in sessions["done"].history if isinstance(s.state, InProgress)]
    assert [state.percentage for state in in_progress][-1] == 75
    assert all(state.current_step is None for state in in_progress)
    assert all(s.sub_operations is None for s in sessions["done"].history)


def test_detailed_history_records_steps(record: Recorder) -> None:
    _, sessions = record(G.DETAILED)
    steps = [
        s.state.current_step for s in sessions["done"].history if isinstance(s.state, InProgress)
    ]
    assert "loading" in steps
    assert "saving" in steps
    assert all(s.sub_operations is None for s in sessions["done"].history)


def test_verbose_history_records_sub_operations(record: Recorder) -> None:
    _, sessions = record(G.VERBOSE)
    history = sessions["done"].history
    assert all(s.sub_operations is not None for s in history)
    last = history[-1].sub_operations
    assert last is not None
    assert [(sub.id, sub.state) for sub in last] == [
        ("a", SubOperationState.COMPLETED),
        ("b", SubOperationState.FAILED),
    ]


def test_snapshot_records_the_metadata_of_its_update(record: Recorder) -> None:
    _, sessions = record(G.DETAILED)
    with_rows = [s for s in sessions["done"].history if s.metadata.get("rows") == 5]
    assert len(with_rows) == 1
    assert with_rows[0].state.current_step == "loading"  # type: ignore[union-attr]
    assert sessions["done"].metadata == {"k": 1, "rows": 5}


@pytest.mark.parametrize("limit", [2, 3, 10])
def test_history_is_bounded_first_and_latest_kept_and_evenly_spread(
    make_tracker: TrackerFactory, limit: int
) -> None:
    tracker = make_tracker(update_interval_ms=0, max_history_snapshots=limit)
    session_id = tracker.create_session("op")
    for step in range(1, 301):
        tracker.update_progress(
            session_id, InProgress(percentage=step / 3, current_step_number=step)
        )
        history = tracker.get_session(session_id).history
        assert len(history) <= limit
        assert history[0].state.status == "initializing"
        assert history[-1].state.current_step_number == step  # type: ignore[union-attr]
    indices = [snap.index for snap in tracker.get_session(session_id).history]
    assert indices[0] == 0
    assert indices[-1] == 300
    gaps = {b - a for a, b in itertools.pairwise(indices[:-1])}
    assert len(gaps) <= 1
    assert len(indices) >= limit // 2


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=12)
@given(
    updates=st.integers(min_value=0, max_value=400),
    limit=st.integers(min_value=2, max_value=30),
    granularity=st.sampled_from([G.STANDARD, G.DETAILED, G.VERBOSE]),
)
def test_history_shape_holds_for_any_number_of_updates(
    make_tracker: TrackerFactory, updates: int, limit: int, granularity: ProgressGranularity
) -> None:
    tracker = make_tracker(
        update_interval_ms=0, max_history_snapshots=limit, granularity_level=granularity
    )
    session_id = tracker.create_session("op")
    for step in range(1, updates + 1):
        tracker.update_progress(session_id, InProgress(percentage=step / 4))
    tracker.complete_session(session_id)
    history = tracker.get_session(session_id).history
    indices = [snap.index for snap in history]
    assert len(history) <= limit
    assert indices[0] == 0
    assert indices[-1] == updates + 1  # creation, every update, completion
    assert history[0].state.status == "initializing"
    assert history[-1].state.status == "completed"
    gaps = {b - a for a, b in itertools.pairwise(indices[:-1])}
    assert len(gaps) <= 1
    assert len(history) >= min(updates + 2, limit // 2)
