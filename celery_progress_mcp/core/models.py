"""Sessions, sub-operations, snapshots, events and statistics.

Every model is immutable; the engine makes new ones instead of mutating, so a
session handed out by a store can never change under its reader, and a
rejected change leaves nothing half-written. Metadata and event data are
plain dicts, which a reader could change in place: sessions a store or the
tracker hands out, and events read back from a log, are therefore
:func:`detached` (:func:`detached_event`), sharing no dict or list with what
is kept. A live event is the one object every subscriber in the process
receives: treat its ``data`` as read-only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from ._base import FrozenModel
from .states import Percentage, ProgressState, percentage_of

__all__ = [
    "SUB_OPERATION_TRANSITIONS",
    "JsonDict",
    "ProgressEvent",
    "ProgressEventType",
    "ProgressSession",
    "ProgressSnapshot",
    "ProgressStats",
    "SubOperation",
    "SubOperationState",
    "SubOperationUpdate",
    "copy_json",
    "detached",
    "detached_event",
    "rollup_percentage",
]

#: Metadata: a JSON object. The engine checks it serialises and its size.
JsonDict = dict[str, Any]

Weight = Annotated[float, Field(gt=0.0, allow_inf_nan=False, strict=True)]


class SubOperationState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self not in (SubOperationState.PENDING, SubOperationState.ACTIVE)


#: Allowed sub-operation moves; terminal sub-operation states are final.
SUB_OPERATION_TRANSITIONS: dict[SubOperationState, frozenset[SubOperationState]] = {
    SubOperationState.PENDING: frozenset(SubOperationState) - {SubOperationState.PENDING},
    SubOperationState.ACTIVE: frozenset(SubOperationState) - {SubOperationState.PENDING},
    SubOperationState.COMPLETED: frozenset(),
    SubOperationState.FAILED: frozenset(),
    SubOperationState.SKIPPED: frozenset(),
    SubOperationState.CANCELLED: frozenset(),
}


class SubOperation(FrozenModel):
    """A stage of a task, or a member of a group/chord/chain, with its own progress."""

    id: Annotated[str, Field(min_length=1)]
    name: str
    state: SubOperationState = SubOperationState.PENDING
    percentage: Percentage = 0.0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    metadata: JsonDict = Field(default_factory=dict)
    weight: Weight = 1.0
    error: str | None = None


class SubOperationUpdate(FrozenModel):
    """A change to one sub-operation; ``None`` leaves a field as it is."""

    id: Annotated[str, Field(min_length=1)]
    state: SubOperationState | None = None
    percentage: Percentage | None = None
    metadata: JsonDict = Field(default_factory=dict)
    #: Recorded on the sub-operation when ``state`` is FAILED (or SKIPPED, as the reason).
    error: str | None = None


class ProgressSnapshot(FrozenModel):
    """One point of a session's history.

    ``index`` is the snapshot's position in the session's whole timeline
    (0 for the first); history thinning keeps an evenly spaced subset of
    indices, so gaps between kept indices tell what was thinned out.
    ``sub_operations`` is recorded only at Verbose granularity.
    """

    timestamp: datetime
    state: ProgressState
    metadata: JsonDict = Field(default_factory=dict)
    sub_operations: tuple[SubOperation, ...] | None = None
    index: Annotated[int, Field(ge=0)] = 0


class ProgressSession(FrozenModel):
    """The progress of one operation (for Celery: one task, group, chord or chain)."""

    id: Annotated[str, Field(min_length=1)]
    operation_id: Annotated[str, Field(min_length=1)]
    created_at: datetime
    updated_at: datetime
    state: ProgressState
    sub_operations: tuple[SubOperation, ...] = ()
    history: tuple[ProgressSnapshot, ...] = ()
    metadata: JsonDict = Field(default_factory=dict)
    parent_id: str | None = None
    heartbeat_at: datetime | None = None

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def percentage(self) -> float:
        """The state's own percentage or, where it gave none, the sub-operations' weighted mean."""
        own = percentage_of(self.state)
        if own is not None:
            return own
        return rollup_percentage(self.sub_operations)

    def sub_operation(self, sub_operation_id: str) -> SubOperation | None:
        for sub in self.sub_operations:
            if sub.id == sub_operation_id:
                return sub
        return None


def rollup_percentage(subs: tuple[SubOperation, ...]) -> float:
    """Weighted mean of sub-operation percentages; a finished one counts as 100 %."""
    total_weight = 0.0
    weighted = 0.0
    for sub in subs:
        done = 100.0 if sub.state.is_terminal else sub.percentage
        total_weight += sub.weight
        weighted += sub.weight * done
    if total_weight == 0.0:
        return 0.0
    return min(100.0, weighted / total_weight)


class ProgressEventType(StrEnum):
    SESSION_CREATED = "SessionCreated"
    PROGRESS_UPDATED = "ProgressUpdated"
    STATE_CHANGED = "StateChanged"
    SUB_OPERATION_ADDED = "SubOperationAdded"
    SUB_OPERATION_STARTED = "SubOperationStarted"
    SUB_OPERATION_UPDATED = "SubOperationUpdated"
    SUB_OPERATION_COMPLETED = "SubOperationCompleted"
    SUB_OPERATION_FAILED = "SubOperationFailed"
    SESSION_PAUSED = "SessionPaused"
    SESSION_RESUMED = "SessionResumed"
    SESSION_COMPLETED = "SessionCompleted"
    SESSION_FAILED = "SessionFailed"
    SESSION_CANCELLED = "SessionCancelled"
    SESSION_EXPIRED = "SessionExpired"


class ProgressEvent(FrozenModel):
    """One entry of the event log.

    ``seq`` is assigned by the store and strictly increases across the whole
    store, so a subscriber resumes with ``since=<last seq seen>``. ``data``
    holds what a viewer needs without a second look-up (``status``,
    ``percentage``, step fields as granularity allows, ``sub_operation_id``).
    """

    seq: Annotated[int, Field(ge=1)]
    session_id: str
    operation_id: str
    event_type: ProgressEventType
    timestamp: datetime
    data: JsonDict = Field(default_factory=dict)


class ProgressStats(FrozenModel):
    """Counts over the store. The ``total_*`` fields are lifetime totals."""

    active_sessions: int
    sessions_by_state: dict[str, int]
    avg_session_duration_seconds: float
    total_completed: int
    total_failed: int
    total_cancelled: int
    total_created: int = 0


_CONTAINERS = (dict, list)


def copy_json(value: Any) -> Any:
    """A copy of a JSON value that shares no dict or list with it."""
    if isinstance(value, dict):
        copy = dict(value)  # most values are scalars: copied with the dict
        for key, item in copy.items():
            if isinstance(item, _CONTAINERS):
                copy[key] = copy_json(item)
        return copy
    if isinstance(value, list):
        return [copy_json(item) if isinstance(item, _CONTAINERS) else item for item in value]
    return value


def _detached_sub(sub: SubOperation) -> SubOperation:
    return sub.replace(metadata=copy_json(sub.metadata))


def _detached_snapshot(snapshot: ProgressSnapshot) -> ProgressSnapshot:
    subs = snapshot.sub_operations
    return snapshot.replace(
        metadata=copy_json(snapshot.metadata),
        sub_operations=None if subs is None else tuple(_detached_sub(sub) for sub in subs),
    )


def detached(session: ProgressSession) -> ProgressSession:
    """``session`` for a reader: changing its metadata in place changes nothing kept."""
    return session.replace(
        metadata=copy_json(session.metadata),
        sub_operations=tuple(_detached_sub(sub) for sub in session.sub_operations),
        history=tuple(_detached_snapshot(snapshot) for snapshot in session.history),
    )


def detached_event(event: ProgressEvent) -> ProgressEvent:
    """``event`` for a reader: changing its data in place changes nothing kept."""
    return event.replace(data=copy_json(event.data))
