"""MCP Tasks (2025-11-25 basic/utilities/tasks) over progress sessions: an SDK extension.

Task id = session id = Celery task id, and a task's status is read from its
session in the store, so an agent can start a task, disconnect, and collect
it later, from this server process or another one sharing the store.

Statuses: initializing, in progress and paused sessions are ``working``;
completed, failed and cancelled map to themselves. (``input_required`` has no
Celery counterpart.)

:class:`McpTasks` is an SDK extension (``mcp.server.extension.Extension``):
it serves ``tasks/get``, ``tasks/result``, ``tasks/list`` and
``tasks/cancel`` as the new request methods the SDK lets an extension add.
A task-augmented ``tools/call`` answers with a ``CreateTaskResult``, which
the SDK's ``tools/call`` result check refuses, so the server's middleware
hands such a call to :meth:`McpTasks.start`. (An MCP Task is the agent's
handle on one call; it runs as one Celery task, of the same id.)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import anyio.abc
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from pydantic import ValidationError

from ..core.errors import ProgressError, SessionNotFound
from ..core.models import ProgressSession
from ..core.states import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Cancelled,
    Completed,
    Failed,
    InProgress,
    Paused,
)
from ..tracking.subscription import AsyncSubscription
from .celery_tools import checked_arguments, tool_result
from .connections import notify_quietly
from .progress_notices import ProgressNotice
from .runner import TaskRunner
from .toolspec import TaskTool
from .visible_sessions import VisibleSessions

__all__ = [
    "EXTENSION_ID",
    "POLL_INTERVAL_MS",
    "RELATED_TASK_KEY",
    "TASKS_CAPABILITY",
    "McpTasks",
    "TaskLedger",
    "task_status",
    "task_view",
    "unknown_task",
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
#: Identifier of the extension serving the ``tasks/*`` methods.
EXTENSION_ID = "io.github.celery-progress-mcp/tasks"
#: Tasks per ``tasks/list`` page.
PAGE_SIZE = 50

logger = logging.getLogger(__name__)


def task_status(session: ProgressSession) -> str:
    if session.status in ACTIVE_STATUSES:
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


def _new_task_view(task_id: str, ttl_ms: int | None) -> dict[str, Any]:
    """The view of a task sent before its session was made (an untracked task)."""
    now = _iso(datetime.now(UTC))
    return {
        "taskId": task_id,
        "status": "working",
        "createdAt": now,
        "lastUpdatedAt": now,
        "ttl": ttl_ms,
        "pollInterval": POLL_INTERVAL_MS,
    }


class McpTasks(Extension):
    """The ``tasks/*`` methods, and task-augmented calls of the Celery tools."""

    identifier = EXTENSION_ID

    def __init__(
        self, tools: Mapping[str, TaskTool], runner: TaskRunner, sessions: VisibleSessions
    ) -> None:
        self._tools = tools
        self.runner = runner
        self.sessions = sessions
        self.ledger = TaskLedger()
        self._by_task = {tool.task_name: tool for tool in tools.values()}
        #: Where followers of started tasks run; set by the server's lifespan.
        self.task_group: anyio.abc.TaskGroup | None = None

    def methods(self) -> Sequence[MethodBinding]:
        return (
            MethodBinding("tasks/get", types.GetTaskRequestParams, self._get),
            MethodBinding("tasks/result", types.GetTaskPayloadRequestParams, self._result),
            MethodBinding("tasks/list", types.PaginatedRequestParams, self._list),
            MethodBinding("tasks/cancel", types.CancelTaskRequestParams, self._cancel),
        )

    async def start(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        """Answer a task-augmented ``tools/call``: send the task, answer with its view."""
        try:
            params = types.CallToolRequestParams.model_validate(ctx.params, by_name=False)
        except ValidationError:
            raise MCPError(types.INVALID_PARAMS, "Invalid request parameters") from None
        tool = self._tools.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS, f"Unknown tool (or no task support): {params.name}"
            )
        args, kwargs = checked_arguments(tool, params.arguments)
        ttl_ms = params.task.ttl if params.task is not None else None
        task_id = str(uuid.uuid4())
        subscription = await self.runner.subscribe(task_id)
        try:
            await self.runner.send(tool, args, kwargs, task_id)
        except BaseException:
            subscription.close()
            raise
        self.ledger.add(task_id, ttl_ms)
        token = progress_token_from_params(ctx.params)
        if self.task_group is not None:
            self.task_group.start_soon(self._follow, task_id, subscription, ctx.session, token)
        else:
            subscription.close()
        try:
            session = await self.runner.tracker.get_session(task_id)
        except ProgressError:  # an untracked task: no session yet
            return {"task": _new_task_view(task_id, ttl_ms)}
        return {"task": task_view(session, ttl_ms)}

    async def _follow(
        self,
        task_id: str,
        subscription: AsyncSubscription,
        session: ServerSession,
        token: str | int | None,
    ) -> None:
        """Progress on the connection's own channel, then ``notifications/tasks/status``."""

        async def report(notice: ProgressNotice) -> None:
            assert token is not None
            await notify_quietly(
                session.send_progress_notification(
                    token, notice.progress, notice.total, notice.message
                )
            )

        try:
            await self.runner.follow(task_id, subscription, report if token is not None else None)
            ended = await self.runner.tracker.get_session(task_id)
            params = task_view(ended, self.ledger.ttl(task_id))
            status = types.TaskStatusNotification(
                params=types.TaskStatusNotificationParams.model_validate(params)
            )
            # Not in the SDK's ServerNotification union (tasks are types-only
            # there), but sent like any notification: on the connection's channel.
            await notify_quietly(session.send_notification(cast(Any, status)))
        except ProgressError as exc:
            logger.debug("task %s: no final status to send: %s", task_id, exc)
        finally:
            subscription.close()

    async def _visible_session(self, task_id: str) -> ProgressSession:
        try:
            return await self.sessions.get(task_id)
        except SessionNotFound:
            raise unknown_task(task_id) from None

    async def _get(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        return task_view(session, self.ledger.ttl(session.id))

    async def _result(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetTaskPayloadRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        tool = self._by_task[session.operation_id]
        if session.status in TERMINAL_STATUSES:
            outcome = await self.runner.outcome_of(session.id)
        else:
            subscription = await self.runner.subscribe(session.id)
            try:
                outcome = await self.runner.follow(session.id, subscription, None)
            finally:
                subscription.close()
        result = tool_result(tool, outcome, session.id)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped.pop("resultType", None)  # a 2026-07-28 field; tasks are 2025-11-25
        dumped.setdefault("_meta", {})[RELATED_TASK_KEY] = {"taskId": session.id}
        return dumped

    async def _list(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> dict[str, Any]:
        try:
            offset = int(params.cursor or 0)
        except ValueError:
            raise MCPError(types.INVALID_PARAMS, "invalid cursor") from None
        sessions = await self.sessions.newest(limit=PAGE_SIZE + 1, offset=offset)
        listed: dict[str, Any] = {
            "tasks": [task_view(s, self.ledger.ttl(s.id)) for s in sessions[:PAGE_SIZE]]
        }
        if len(sessions) > PAGE_SIZE:
            listed["nextCursor"] = str(offset + PAGE_SIZE)
        return listed

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: types.CancelTaskRequestParams
    ) -> dict[str, Any]:
        session = await self._visible_session(params.task_id)
        if session.status in TERMINAL_STATUSES:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Cannot cancel task: already in terminal status {task_status(session)!r}",
            )
        await self.runner.cancel(session.id, "cancelled by the MCP client (tasks/cancel)")
        session = await self._visible_session(params.task_id)
        return task_view(session, self.ledger.ttl(session.id))
