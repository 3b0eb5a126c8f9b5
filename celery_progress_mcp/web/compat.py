"""celery-progress's JSON, answered from a session, so its front-end works unchanged.

celery-progress (``Progress.get_info``) answers ``{"state", "complete",
"success", "progress": {"pending", "current", "total", "percent",
"description"}, "result"}`` from the result backend; here the same shape
comes from the session. An unknown id is PENDING, as an unknown
``AsyncResult`` is in Celery: the task may simply not have been seen yet.
"""

from __future__ import annotations

from typing import Any

from ..core.models import ProgressSession
from ..core.states import Cancelled, Completed, Failed, Initializing, InProgress, Paused
from .schemas import CeleryProgressInfo, CeleryProgressResponse

__all__ = ["group_progress", "pending_progress", "task_progress"]

#: celery-progress's state for a running task that reports progress.
PROGRESS_STATE = "PROGRESS"


def pending_progress() -> CeleryProgressResponse:
    return CeleryProgressResponse(
        state="PENDING", complete=False, success=None, progress=_unknown(pending=True)
    )


def task_progress(session: ProgressSession) -> CeleryProgressResponse:
    state = session.state
    match state:
        case Initializing():
            return pending_progress()
        case InProgress() | Paused():
            return CeleryProgressResponse(
                state=PROGRESS_STATE,
                complete=False,
                success=None,
                progress=_running(session),
            )
        case Completed(result_summary=summary):
            return _finished("SUCCESS", success=True, result=summary)
        case Failed(error_message=message):
            return _finished("FAILURE", success=False, result=message)
        case Cancelled(reason=reason):
            return _finished("REVOKED", success=False, result=f"Task revoked: {reason}".rstrip())
    raise AssertionError(f"unhandled state {state!r}")  # pragma: no cover


def group_progress(session: ProgressSession) -> dict[str, Any]:
    """celery-progress's ``GroupProgress.get_info()``: members' progress summed."""
    members = session.sub_operations
    total = 100.0 * max(1, len(members))
    current = (
        sum(100.0 if sub.state.is_terminal else sub.percentage for sub in members)
        if members
        else session.percentage
    )
    finished = session.state.status in ("completed", "failed", "cancelled")
    return {
        "complete": finished,
        "success": isinstance(session.state, Completed),
        "progress": {
            "total": total,
            "current": current,
            "percent": round(100.0 * current / total, 2),
        },
    }


def _running(session: ProgressSession) -> CeleryProgressInfo:
    state = session.state
    percent = round(session.percentage, 2)
    current, total = _counts(session, percent)
    if isinstance(state, InProgress):
        description = state.current_step or ""
    else:
        assert isinstance(state, Paused)
        description = f"paused: {state.reason}" if state.reason else "paused"
    return CeleryProgressInfo(
        pending=False, current=current, total=total, percent=percent, description=description
    )


def _counts(session: ProgressSession, percent: float) -> tuple[float, float]:
    """``current`` and ``total`` as the task reported them, else the percentage out of 100."""
    current = session.metadata.get("current")
    total = session.metadata.get("total")
    numbers = (int, float)
    if (
        isinstance(current, numbers)
        and isinstance(total, numbers)
        and not isinstance(current, bool)
        and not isinstance(total, bool)
        and total > 0
    ):
        return float(current), float(total)
    state = session.state
    if (
        isinstance(state, InProgress)
        and state.total_steps
        and state.current_step_number is not None
    ):
        return float(state.current_step_number), float(state.total_steps)
    return percent, 100.0


def _finished(state: str, *, success: bool, result: Any) -> CeleryProgressResponse:
    return CeleryProgressResponse(
        state=state,
        complete=True,
        success=success,
        progress=CeleryProgressInfo(
            pending=False, current=100, total=100, percent=100, description=""
        ),
        result=result,
    )


def _unknown(*, pending: bool) -> CeleryProgressInfo:
    return CeleryProgressInfo(pending=pending, current=0, total=100, percent=0, description="")
