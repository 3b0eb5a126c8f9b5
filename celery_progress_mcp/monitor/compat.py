"""celery-progress's JSON, so its front-end (``celery_progress.js``) works unchanged.

celery-progress's views answer ``Progress(AsyncResult(id)).get_info()`` and
``GroupProgress(GroupResult.restore(id)).get_info()``, read from the result
backend. The same answers are built here, as pure functions, from what this
package knows of a task (:mod:`.compat_reader` finds it):

* a task with no session: the result backend's state, read exactly as
  ``Progress.get_info`` reads it (:func:`from_backend`): PROGRESS with the
  meta given to ``update_state``, SUCCESS with the result's JSON value,
  FAILURE, RETRY, REVOKED, IGNORED, PENDING/STARTED, and any other state as
  celery-progress's "Unknown state";
* a session still running: its percentage, counts and step (the backend
  holds at most one progress state per window, and none from
  ``self.progress``);
* a finished session: the backend's own answer when the backend ended the
  same way (the result as its JSON value, as celery-progress gives it), else
  the session's (its result summary, error message or cancel reason);
* a group: ``GroupProgress``'s sum over its members' answers
  (:func:`group_answer`), plus one addition: ``result``, the members'
  results in order, once every member is complete.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import ProgressSession, SubOperation, SubOperationState
from ..core.states import Cancelled, Completed, Failed, Initializing, InProgress, Paused

__all__ = [
    "PROGRESS_STATE",
    "Answer",
    "BackendState",
    "from_backend",
    "from_session",
    "from_sub_operation",
    "group_answer",
    "pending",
]

#: One answer: the JSON object celery-progress's view would send.
Answer = dict[str, Any]

#: celery-progress's state for a running task that reports progress.
PROGRESS_STATE = "PROGRESS"
#: Characters of a retry's reason that celery-progress shows.
RETRY_MESSAGE_CHARS = 50
#: How Celery's retry traceback says when the next attempt runs (celery-progress reads it).
_RETRY_IN = re.compile(r"Retry in (\d{1,10})s")
#: The backend state that ends a task as each terminal session status does.
_SAME_END = {"completed": "SUCCESS", "failed": "FAILURE", "cancelled": "REVOKED"}


@dataclass(frozen=True, slots=True)
class BackendState:
    """A task as the result backend holds it (``backend.get_task_meta``)."""

    status: str
    #: The return value, the exception, or the meta given to ``update_state``.
    result: Any = None
    traceback: str | None = None


def pending() -> Answer:
    """An id nothing is known of: PENDING, as Celery says of any unknown task."""
    return _unfinished("PENDING")


def from_backend(meta: BackendState) -> Answer:
    """``Progress.get_info()`` of celery-progress, over the backend's state."""
    state, info = meta.status, meta.result
    match state:
        case "SUCCESS":
            return _finished(state, True, info if _is_json(info) else repr(info))
        case "FAILURE":
            return _finished(state, False, str(info))
        case "RETRY":
            found = _RETRY_IN.search(meta.traceback or "")
            result = {
                "next_retry_seconds": int(found.group(1)) if found else "Unknown",
                "message": f"{str(info)[:RETRY_MESSAGE_CHARS]}...",
            }
            return _finished(state, False, result)
        case "REVOKED":
            return _finished(state, False, f"Task {info}")
        case "IGNORED":
            return _finished(state, None, str(info))
        case "PENDING" | "STARTED":
            return _unfinished(state)
        case _ if state == PROGRESS_STATE:
            return _progressing(info if _is_json(info) else repr(info))
    return {
        "state": state,
        "complete": True,
        "success": False,
        "progress": _unknown_progress(state),
        "result": f"Unknown state {state}",
    }


def from_session(session: ProgressSession, backend: BackendState | None = None) -> Answer:
    """A tracked task's answer; ``backend``, for a finished one, supplies the result."""
    state = session.state
    if (
        backend is not None
        and backend.status == _SAME_END.get(state.status)
        and (backend.status != "SUCCESS" or _is_json(backend.result))
    ):
        return from_backend(backend)
    match state:
        case Initializing():
            return pending()
        case InProgress() | Paused():
            return _progressing(_running(session))
        case Completed(result_summary=summary):
            return _finished("SUCCESS", True, summary)
        case Failed(error_message=message):
            return _finished("FAILURE", False, message)
        case Cancelled(reason=reason):
            return _finished("REVOKED", False, f"Task revoked: {reason}".rstrip())
    raise AssertionError(f"unhandled state {state!r}")  # pragma: no cover


def from_sub_operation(sub: SubOperation) -> Answer:
    """A group member known only as its parent's sub-operation (no result of its own)."""
    match sub.state:
        case SubOperationState.PENDING:
            return pending()
        case SubOperationState.ACTIVE:
            percent = round(sub.percentage, 2)
            return _progressing(
                {
                    "pending": False,
                    "current": percent,
                    "total": 100,
                    "percent": percent,
                    "description": "",
                }
            )
        case SubOperationState.COMPLETED | SubOperationState.SKIPPED:
            return _finished("SUCCESS", True, None)
        case SubOperationState.FAILED:
            return _finished("FAILURE", False, sub.error or "")
        case SubOperationState.CANCELLED:
            return _finished("REVOKED", False, "Task revoked")
    raise AssertionError(f"unhandled sub-operation state {sub.state!r}")  # pragma: no cover


def group_answer(members: Sequence[Answer]) -> Answer:
    """``GroupProgress.get_info()``: the members' current and total summed.

    Where celery-progress fails (a PROGRESS meta without numbers, a total
    of 0) a member counts as its ``percent`` out of 100, or 0 out of 100.
    """
    counts = [_counts(member.get("progress")) for member in members]
    total = sum(member_total for _, member_total in counts)
    current = sum(member_current for member_current, _ in counts)
    complete = all(member["complete"] for member in members)
    answer: Answer = {
        "complete": complete,
        "success": all(member["success"] for member in members),
        "progress": {
            "total": total,
            "current": current,
            "percent": float(round(100 * current / total, 2)) if total else 0.0,
        },
    }
    if complete:
        answer["result"] = [member.get("result") for member in members]
    return answer


def _running(session: ProgressSession) -> Answer:
    """The meta celery-progress's ``ProgressRecorder`` would have sent."""
    state = session.state
    percent = round(session.percentage, 2)
    current, total = _session_counts(session, percent)
    if isinstance(state, InProgress):
        description = state.current_step or ""
    else:
        assert isinstance(state, Paused)
        description = f"paused: {state.reason}" if state.reason else "paused"
    return {
        "pending": False,
        "current": current,
        "total": total,
        "percent": percent,
        "description": description,
    }


def _session_counts(session: ProgressSession, percent: float) -> tuple[float, float]:
    """``current`` and ``total`` as the task reported them, else the percentage out of 100."""
    current = _number(session.metadata.get("current"))
    total = _number(session.metadata.get("total"))
    if current is not None and total is not None and total > 0:
        return current, total
    state = session.state
    if (
        isinstance(state, InProgress)
        and state.total_steps
        and state.current_step_number is not None
    ):
        return float(state.current_step_number), float(state.total_steps)
    return percent, 100.0


def _counts(progress: Any) -> tuple[float, float]:
    """A member's ``(current, total)`` for the group's sum."""
    if isinstance(progress, dict):
        current = _number(progress.get("current"))
        total = _number(progress.get("total"))
        if current is not None and total is not None and total > 0:
            return current, total
        percent = _number(progress.get("percent"))
        if percent is not None:
            return percent, 100.0
    return 0.0, 100.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _is_json(value: Any) -> bool:
    """Whether ``value`` is sent as JSON as it is (a pickled result may not be)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _finished(state: str, success: bool | None, result: Any) -> Answer:
    return {
        "state": state,
        "complete": True,
        "success": success,
        "progress": {"pending": False, "current": 100, "total": 100, "percent": 100},
        "result": result,
    }


def _progressing(progress: Any) -> Answer:
    return {"state": PROGRESS_STATE, "complete": False, "success": None, "progress": progress}


def _unfinished(state: str) -> Answer:
    progress = _unknown_progress(state)
    return {"state": state, "complete": False, "success": None, "progress": progress}


def _unknown_progress(state: str) -> Answer:
    return {"pending": state == "PENDING", "current": 0, "total": 100, "percent": 0}
