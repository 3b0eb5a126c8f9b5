"""MCP Tasks (2025-11-25 basic/utilities/tasks) over progress sessions.

Task id = session id = Celery task id, and a task's status is read from its
session in the store, so an agent can start a task, disconnect, and collect
it later, from this server process or another one sharing the store.

Statuses: initializing, in progress and paused sessions are ``working``;
completed, failed and cancelled map to themselves. (``input_required`` has no
Celery counterpart.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from ..core.errors import SessionNotFound
from ..core.models import ProgressSession
from ..core.states import Cancelled, Completed, Failed, InProgress, Paused, SessionStatus

__all__ = [
    "POLL_INTERVAL_MS",
    "RELATED_TASK_KEY",
    "TASKS_CAPABILITY",
    "TaskLedger",
    "task_status",
    "task_view",
]

#: The ``_meta`` key tying a message to its task.
RELATED_TASK_KEY = "io.modelcontextprotocol/related-task"
#: Polling interval suggested to requestors, in milliseconds.
POLL_INTERVAL_MS = 1000
#: What the server declares under ``capabilities.tasks``.
TASKS_CAPABILITY: dict[str, Any] = {
    "list": {},
    "cancel": {},
    "requests": {"tools": {"call": {}}},
}
#: Tasks per ``tasks/list`` page.
PAGE_SIZE = 50

_WORKING = frozenset({SessionStatus.INITIALIZING, SessionStatus.IN_PROGRESS, SessionStatus.PAUSED})


def task_status(session: ProgressSession) -> str:
    if session.status in _WORKING:
        return "working"
    return str(session.status)


def _status_message(session: ProgressSession) -> str | None:
    match session.state:
        case InProgress(current_step=step, percentage=percentage):
            shown = f"{session.percentage:.0f} %" if percentage is not None else None
            return " - ".join(part for part in (step, shown) if part) or None
        case Paused(reason=reason):
            return f"paused: {reason}" if reason else "paused"
        case Completed(result_summary=summary):
            return summary
        case Failed(error_message=message):
            return message
        case Cancelled(reason=reason):
            return reason or None
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def task_view(session: ProgressSession, ttl_ms: int | None) -> dict[str, Any]:
    """The wire form of a Task for ``session``."""
    view: dict[str, Any] = {
        "taskId": session.id,
        "status": task_status(session),
        "createdAt": _iso(session.created_at),
        "lastUpdatedAt": _iso(session.updated_at),
        "ttl": ttl_ms,
        "pollInterval": POLL_INTERVAL_MS,
    }
    message = _status_message(session)
    if message:
        view["statusMessage"] = message
    return view


class TaskLedger:
    """What this process knows of the tasks it created: their TTLs."""

    def __init__(self) -> None:
        self._ttls: dict[str, int | None] = {}

    def add(self, task_id: str, ttl_ms: int | None) -> None:
        self._ttls[task_id] = ttl_ms

    def ttl(self, task_id: str) -> int | None:
        return self._ttls.get(task_id)


def unknown_task(task_id: str) -> MCPError:
    return MCPError(
        code=types.INVALID_PARAMS, message=f"Failed to retrieve task: no task {task_id!r}"
    )


async def session_or_error(lookup: Any, task_id: str) -> ProgressSession:
    """``lookup(task_id)`` in a thread, mapping a missing session to the spec's error."""
    try:
        session: ProgressSession = await anyio.to_thread.run_sync(lookup, task_id)
    except SessionNotFound:
        raise unknown_task(task_id) from None
    return session
