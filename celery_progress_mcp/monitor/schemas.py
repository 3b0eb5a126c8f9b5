"""What the JSON API answers, as pydantic models: they serialise it and describe it (OpenAPI).

``summarize`` turns a session into the row the list shows; ``detail`` adds
what the session page needs. Both are computed from the session alone, so
a page of 50 rows costs no further store look-up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..core.models import (
    ProgressEvent,
    ProgressSession,
    ProgressSnapshot,
    ProgressStats,
    SubOperation,
)
from ..core.states import (
    ACTIVE_STATUSES,
    Cancelled,
    Completed,
    Failed,
    InProgress,
    Paused,
    ProgressState,
    SessionStatus,
)

__all__ = [
    "WORKER_METADATA_KEYS",
    "ActionRequest",
    "ActionResult",
    "CeleryGroupProgress",
    "CeleryGroupProgressResponse",
    "CeleryProgressInfo",
    "CeleryProgressResponse",
    "ErrorResponse",
    "EventPage",
    "SessionDetail",
    "SessionPageResponse",
    "SessionSummary",
    "StatsResponse",
    "detail",
    "duration_s",
    "stats_response",
    "summarize",
    "worker_of",
]

#: Metadata keys that name the worker running a session, first found wins
#: (the Celery integration records the worker's hostname as ``celery_worker``).
WORKER_METADATA_KEYS = ("celery_worker", "worker", "hostname")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorResponse(_Out):
    """Every 4xx/5xx answer of the JSON API."""

    error: str = Field(description="A short machine-readable code, e.g. session_not_found.")
    detail: str


class SessionSummary(_Out):
    """One row of the session list."""

    id: str
    operation_id: str
    parent_id: str | None
    status: SessionStatus
    percentage: float = Field(ge=0.0, le=100.0)
    current_step: str | None
    current_step_number: int | None
    total_steps: int | None
    eta_seconds: float | None
    created_at: datetime
    updated_at: datetime
    duration_seconds: float = Field(ge=0.0)
    worker: str | None
    #: The failure's message, the cancellation's or pause's reason, or the result summary.
    message: str | None
    sub_operation_count: int = Field(ge=0)
    active: bool


class SessionDetail(SessionSummary):
    """One session in depth: sub-operations, metadata, history."""

    state: ProgressState
    sub_operations: list[SubOperation]
    metadata: dict[str, Any]
    history: list[ProgressSnapshot]
    heartbeat_at: datetime | None


class SessionPageResponse(_Out):
    sessions: list[SessionSummary]
    total: int = Field(ge=0, description="Sessions matching the filters, over all pages.")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


class StatsResponse(_Out):
    active_sessions: int
    sessions_by_state: dict[str, int]
    avg_session_duration_seconds: float
    total_created: int
    total_completed: int
    total_failed: int
    total_cancelled: int
    #: Completed over finished (completed + failed + cancelled), lifetime; 0 when none finished.
    completion_rate: float = Field(ge=0.0, le=1.0)
    failure_rate: float = Field(ge=0.0, le=1.0)


class EventPage(_Out):
    events: list[ProgressEvent]
    #: Pass as ``since`` to read on.
    next_since: int = Field(ge=0)


class ActionRequest(BaseModel):
    """Optional body of cancel and pause."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000)


class ActionResult(_Out):
    session: SessionSummary


class CeleryProgressInfo(_Out):
    """celery-progress's ``progress``: ``description`` while running, ``pending`` when unknown."""

    pending: bool
    current: float
    total: float
    percent: float
    description: str | None = None


class CeleryProgressResponse(_Out):
    """The JSON of celery-progress's ``Progress.get_info()``, so its front-end works unchanged.

    ``result`` comes with a finished state only. A PROGRESS state read from
    the result backend passes on the meta the task gave ``update_state``, as
    celery-progress does, whatever its shape.
    """

    state: str
    complete: bool
    success: bool | None
    progress: CeleryProgressInfo | Any
    result: Any = None


class CeleryGroupProgress(_Out):
    total: float
    current: float
    percent: float


class CeleryGroupProgressResponse(_Out):
    """celery-progress's ``GroupProgress.get_info()``; ``result``: the members' results, in
    order, once all are complete (an addition: celery-progress sends none)."""

    complete: bool
    success: bool
    progress: CeleryGroupProgress
    result: list[Any] | None = None


# -- building ------------------------------------------------------------------


def summarize(session: ProgressSession, now: datetime | None = None) -> SessionSummary:
    return SessionSummary.model_construct(**_summary_fields(session, now or datetime.now(UTC)))


def detail(session: ProgressSession, now: datetime | None = None) -> SessionDetail:
    fields = _summary_fields(session, now or datetime.now(UTC))
    return SessionDetail.model_construct(
        **fields,
        state=session.state,
        sub_operations=list(session.sub_operations),
        metadata=session.metadata,
        history=list(session.history),
        heartbeat_at=session.heartbeat_at,
    )


def stats_response(stats: ProgressStats) -> StatsResponse:
    finished = stats.total_completed + stats.total_failed + stats.total_cancelled
    by_state = {status.value: stats.sessions_by_state.get(status, 0) for status in SessionStatus}
    return StatsResponse(
        active_sessions=stats.active_sessions,
        sessions_by_state=by_state,
        avg_session_duration_seconds=stats.avg_session_duration_seconds,
        total_created=stats.total_created,
        total_completed=stats.total_completed,
        total_failed=stats.total_failed,
        total_cancelled=stats.total_cancelled,
        completion_rate=stats.total_completed / finished if finished else 0.0,
        failure_rate=stats.total_failed / finished if finished else 0.0,
    )


def _summary_fields(session: ProgressSession, now: datetime) -> dict[str, Any]:
    state = session.state
    step = state if isinstance(state, InProgress) else None
    return {
        "id": session.id,
        "operation_id": session.operation_id,
        "parent_id": session.parent_id,
        "status": SessionStatus(state.status),
        "percentage": session.percentage,
        "current_step": step.current_step if step else None,
        "current_step_number": step.current_step_number if step else None,
        "total_steps": step.total_steps if step else None,
        "eta_seconds": step.eta_seconds if step else None,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "duration_seconds": duration_s(session, now),
        "worker": worker_of(session),
        "message": _message(state),
        "sub_operation_count": len(session.sub_operations),
        "active": state.status in ACTIVE_STATUSES,
    }


def duration_s(session: ProgressSession, now: datetime) -> float:
    """Seconds from creation to the end, or to ``now`` while the session is active."""
    state = session.state
    match state:
        case Completed(duration_seconds=seconds):
            return seconds
        case Failed(failed_at=end) | Cancelled(cancelled_at=end):
            return max(0.0, (end - session.created_at).total_seconds())
    return max(0.0, (now - session.created_at).total_seconds())


def worker_of(session: ProgressSession) -> str | None:
    for key in WORKER_METADATA_KEYS:
        value = session.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _message(state: ProgressState) -> str | None:
    match state:
        case Failed(error_message=message, error_code=code):
            return f"{code}: {message}" if code else message
        case Cancelled(reason=reason) | Paused(reason=reason):
            return reason or None
        case Completed(result_summary=summary):
            return summary
    return None
