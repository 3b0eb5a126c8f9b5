"""Models: exact JSON round-trips, bad values named, the percentage property and rollup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from celery_progress_mcp import (
    Cancelled,
    Completed,
    Failed,
    Initializing,
    InProgress,
    InvalidProgress,
    Paused,
    ProgressError,
    ProgressEvent,
    ProgressEventType,
    ProgressGranularity,
    ProgressSession,
    ProgressSnapshot,
    ProgressState,
    ProgressStats,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)
from celery_progress_mcp.core.models import rollup_percentage
from celery_progress_mcp.core.states import state_adapter

from . import strategies as s

NOW = datetime(2025, 6, 18, 12, 0, tzinfo=UTC)


def assert_round_trips(model: BaseModel) -> None:
    encoded = model.model_dump_json()
    decoded = type(model).model_validate_json(encoded)
    assert decoded == model
    assert decoded.model_dump_json() == encoded


# -- JSON round-trips ---------------------------------------------------------------


@given(s.states)
def test_state_round_trips_through_the_discriminated_union(state: ProgressState) -> None:
    encoded = state_adapter.dump_json(state)
    decoded = state_adapter.validate_json(encoded)
    assert type(decoded) is type(state)
    assert decoded == state
    assert state_adapter.dump_json(decoded) == encoded


@given(s.sub_operations)
def test_sub_operation_round_trips(sub: SubOperation) -> None:
    assert_round_trips(sub)


@given(s.sub_operation_updates)
def test_sub_operation_update_round_trips(update: SubOperationUpdate) -> None:
    assert_round_trips(update)


@given(s.snapshots)
def test_snapshot_round_trips(snapshot: ProgressSnapshot) -> None:
    assert_round_trips(snapshot)


@given(s.sessions)
def test_session_round_trips(session: ProgressSession) -> None:
    assert_round_trips(session)


@given(s.events)
def test_event_round_trips(event: ProgressEvent) -> None:
    assert_round_trips(event)


@given(s.stats)
def test_stats_round_trip(stats: ProgressStats) -> None:
    assert_round_trips(stats)


def test_state_status_values_are_the_discriminator() -> None:
    required: list[tuple[str, dict[str, Any]]] = [
        ("initializing", {}),
        ("in_progress", {}),
        ("paused", {}),
        ("completed", {"completed_at": NOW}),
        ("failed", {"failed_at": NOW, "error_message": "x"}),
        ("cancelled", {"cancelled_at": NOW}),
    ]
    statuses = {
        state_adapter.validate_python({"status": status, **extra}).status
        for status, extra in required
    }
    assert statuses == {"initializing", "in_progress", "paused", "completed", "failed", "cancelled"}


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        state_adapter.validate_python({"status": "exploded"})


# -- bad values name their field -----------------------------------------------------

NAN = float("nan")
INF = float("inf")

BAD_VALUES: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (InProgress, {"percentage": NAN}, "percentage"),
    (InProgress, {"percentage": INF}, "percentage"),
    (InProgress, {"percentage": -INF}, "percentage"),
    (InProgress, {"percentage": -1}, "percentage"),
    (InProgress, {"percentage": 100.5}, "percentage"),
    (InProgress, {"total_steps": -1}, "total_steps"),
    (InProgress, {"current_step_number": -1}, "current_step_number"),
    (InProgress, {"eta_seconds": -1}, "eta_seconds"),
    (InProgress, {"eta_seconds": NAN}, "eta_seconds"),
    (InProgress, {"eta_seconds": INF}, "eta_seconds"),
    (Paused, {"paused_at_percentage": 100.5}, "paused_at_percentage"),
    (Paused, {"paused_at_percentage": NAN}, "paused_at_percentage"),
    (Completed, {"completed_at": NOW, "duration_seconds": -1}, "duration_seconds"),
    (
        Failed,
        {"failed_at": NOW, "error_message": "x", "failed_at_percentage": -1},
        "failed_at_percentage",
    ),
    (Cancelled, {"cancelled_at": NOW, "cancelled_at_percentage": INF}, "cancelled_at_percentage"),
    (SubOperation, {"id": "a", "name": "A", "percentage": NAN}, "percentage"),
    (SubOperation, {"id": "a", "name": "A", "percentage": 100.5}, "percentage"),
    (SubOperation, {"id": "a", "name": "A", "weight": 0}, "weight"),
    (SubOperation, {"id": "a", "name": "A", "weight": INF}, "weight"),
    (SubOperation, {"id": "", "name": "A"}, "id"),
    (SubOperationUpdate, {"id": "a", "percentage": -1}, "percentage"),
]


@pytest.mark.parametrize(
    ("model", "values", "field"),
    BAD_VALUES,
    ids=[f"{m.__name__}-{f}-{v.get(f)!r}" for m, v, f in BAD_VALUES],
)
def test_a_bad_value_raises_a_value_error_naming_the_field(
    model: type[BaseModel], values: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidProgress) as raised:
        model(**values)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, ProgressError)
    assert f"{field}:" in str(raised.value)
    assert model.__name__ in str(raised.value)


def test_models_are_immutable() -> None:
    state = InProgress(percentage=5)
    with pytest.raises(ValueError, match="frozen"):
        state.percentage = 6  # type: ignore[misc]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidProgress, match="colour"):
        InProgress(percentage=5, colour="red")  # type: ignore[call-arg]


def test_sub_operation_defaults() -> None:
    sub = SubOperation(id="a", name="A")
    assert sub.state is SubOperationState.PENDING
    assert (sub.percentage, sub.weight, sub.error, sub.metadata) == (0.0, 1.0, None, {})
    assert (sub.started_at, sub.ended_at) == (None, None)


# -- the percentage property -----------------------------------------------------------


def session_with(state: ProgressState, *subs: SubOperation) -> ProgressSession:
    return ProgressSession(
        id="s", operation_id="op", created_at=NOW, updated_at=NOW, state=state, sub_operations=subs
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (Initializing(), 0.0),
        (InProgress(percentage=42.5), 42.5),
        (Paused(paused_at_percentage=33.0), 33.0),
        (Completed(completed_at=NOW), 100.0),
        (Failed(failed_at=NOW, error_message="x", failed_at_percentage=12.0), 12.0),
        (Cancelled(cancelled_at=NOW, cancelled_at_percentage=7.0), 7.0),
    ],
)
def test_percentage_is_the_states_own(state: ProgressState, expected: float) -> None:
    assert session_with(state).percentage == expected


def test_own_percentage_wins_over_sub_operations() -> None:
    sub = SubOperation(id="a", name="A", state=SubOperationState.ACTIVE, percentage=90)
    assert session_with(InProgress(percentage=10), sub).percentage == 10


def test_without_own_percentage_sub_operations_roll_up_by_weight() -> None:
    done = SubOperation(id="a", name="A", state=SubOperationState.COMPLETED, weight=1.0)
    running = SubOperation(
        id="b", name="B", state=SubOperationState.ACTIVE, percentage=20, weight=3
    )
    assert session_with(InProgress(), done, running).percentage == pytest.approx(40.0)


@pytest.mark.parametrize(
    "ended", [SubOperationState.COMPLETED, SubOperationState.FAILED, SubOperationState.SKIPPED]
)
def test_a_finished_sub_operation_counts_as_whole(ended: SubOperationState) -> None:
    sub = SubOperation(id="a", name="A", state=ended, percentage=10)
    pending = SubOperation(id="b", name="B")
    assert session_with(InProgress(), sub, pending).percentage == pytest.approx(50.0)


def test_without_own_percentage_or_sub_operations_the_percentage_is_zero() -> None:
    assert session_with(InProgress()).percentage == 0.0


@given(st.lists(s.sub_operations, max_size=6))
def test_rollup_is_the_weighted_mean_within_bounds(subs: list[SubOperation]) -> None:
    rolled = rollup_percentage(tuple(subs))
    assert 0.0 <= rolled <= 100.0
    if subs:
        done = [100.0 if sub.state.is_terminal else sub.percentage for sub in subs]
        total = sum(sub.weight for sub in subs)
        expected = sum(sub.weight * d for sub, d in zip(subs, done, strict=True)) / total
        assert rolled == pytest.approx(min(100.0, expected))


# -- enumerations ------------------------------------------------------------------------


def test_event_type_members_are_upper_snake_with_the_seeds_names_as_values() -> None:
    expected = {
        "SESSION_CREATED": "SessionCreated",
        "PROGRESS_UPDATED": "ProgressUpdated",
        "STATE_CHANGED": "StateChanged",
        "SUB_OPERATION_ADDED": "SubOperationAdded",
        "SUB_OPERATION_STARTED": "SubOperationStarted",
        "SUB_OPERATION_UPDATED": "SubOperationUpdated",
        "SUB_OPERATION_COMPLETED": "SubOperationCompleted",
        "SUB_OPERATION_FAILED": "SubOperationFailed",
        "SESSION_PAUSED": "SessionPaused",
        "SESSION_RESUMED": "SessionResumed",
        "SESSION_COMPLETED": "SessionCompleted",
        "SESSION_FAILED": "SessionFailed",
        "SESSION_CANCELLED": "SessionCancelled",
        "SESSION_EXPIRED": "SessionExpired",
    }
    assert {member.name: member.value for member in ProgressEventType} == expected


def test_granularity_members() -> None:
    assert [(g.name, g.value) for g in ProgressGranularity] == [
        ("BASIC", "Basic"),
        ("STANDARD", "Standard"),
        ("DETAILED", "Detailed"),
        ("VERBOSE", "Verbose"),
    ]


def test_sub_operation_state_members() -> None:
    assert [m.name for m in SubOperationState] == [
        "PENDING",
        "ACTIVE",
        "COMPLETED",
        "FAILED",
        "SKIPPED",
        "CANCELLED",
    ]
