"""Hypothesis strategies for the package's models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from celery_progress_mcp import (
    Cancelled,
    Completed,
    Failed,
    Initializing,
    InProgress,
    Paused,
    ProgressEvent,
    ProgressEventType,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    SubOperation,
    SubOperationState,
    SubOperationUpdate,
)

__all__ = [
    "events",
    "json_objects",
    "percentages",
    "sessions",
    "snapshots",
    "states",
    "stats",
    "sub_operation_updates",
    "sub_operations",
]

percentages = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
seconds = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**31)
texts = st.text(max_size=20)
ids = st.text(min_size=1, max_size=12)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _within(numbers: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    """A step number and a total, the number not past the total where both are given."""
    number, total = numbers
    if number is None or total is None:
        return number, total
    return min(number, total), max(number, total)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)

states = st.one_of(
    st.builds(Initializing),
    st.tuples(st.none() | counts, st.none() | counts).flatmap(
        lambda numbers: st.builds(
            InProgress,
            percentage=st.none() | percentages,
            current_step=st.none() | texts,
            # A step number within its total.
            total_steps=st.just(_within(numbers)[1]),
            current_step_number=st.just(_within(numbers)[0]),
            eta_seconds=st.none() | seconds,
        )
    ),
    st.builds(Paused, reason=texts, paused_at_percentage=percentages),
    st.builds(
        Completed,
        completed_at=timestamps,
        result_summary=st.none() | texts,
        duration_seconds=seconds,
    ),
    st.builds(
        Failed,
        failed_at=timestamps,
        error_message=texts,
        error_code=st.none() | texts,
        failed_at_percentage=percentages,
    ),
    st.builds(
        Cancelled, cancelled_at=timestamps, reason=texts, cancelled_at_percentage=percentages
    ),
)

sub_operations = st.builds(
    SubOperation,
    id=ids,
    name=texts,
    state=st.sampled_from(SubOperationState),
    percentage=percentages,
    started_at=st.none() | timestamps,
    ended_at=st.none() | timestamps,
    metadata=json_objects,
    weight=st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
    error=st.none() | texts,
)

sub_operation_updates = st.builds(
    SubOperationUpdate,
    id=ids,
    state=st.none() | st.sampled_from(SubOperationState),
    percentage=st.none() | percentages,
    metadata=json_objects,
    error=st.none() | texts,
)

snapshots = st.builds(
    ProgressSnapshot,
    timestamp=timestamps,
    state=states,
    metadata=json_objects,
    sub_operations=st.none() | st.lists(sub_operations, max_size=3).map(tuple),
    index=st.integers(min_value=0, max_value=10**6),
)

sessions = st.builds(
    ProgressSession,
    id=ids,
    operation_id=ids,
    created_at=timestamps,
    updated_at=timestamps,
    state=states,
    sub_operations=st.lists(sub_operations, max_size=3).map(tuple),
    history=st.lists(snapshots, max_size=3).map(tuple),
    metadata=json_objects,
    parent_id=st.none() | ids,
    heartbeat_at=st.none() | timestamps,
)

events = st.builds(
    ProgressEvent,
    seq=st.integers(min_value=1, max_value=2**62),
    session_id=ids,
    operation_id=ids,
    event_type=st.sampled_from(ProgressEventType),
    timestamp=timestamps,
    data=json_objects,
)

stats = st.builds(
    ProgressStats,
    active_sessions=counts,
    sessions_by_state=st.dictionaries(st.sampled_from(["initializing", "completed"]), counts),
    avg_session_duration_seconds=seconds,
    total_completed=counts,
    total_failed=counts,
    total_cancelled=counts,
    total_created=counts,
)
