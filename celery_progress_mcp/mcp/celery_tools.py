"""The Celery tools: which they are, and one call of one, from its arguments to its result.

A plain ``tools/call`` sends the task with a fresh id (= session id),
follows the session and, when the request carries ``_meta.progressToken``,
sends ``notifications/progress`` on the way. ``notifications/cancelled``
(or the client going away) cancels the request's handler, which cancels
the session with the reason and revokes the task; the SDK then sends no
response. A task-augmented call (MCP Tasks) checks its arguments and ends
with its result the same way.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from ..core.errors import ConfigError, ProgressError
from ..core.states import SessionStatus
from .cancel_reasons import CLIENT_GONE_REASON, CancelReasons
from .progress_notices import ProgressNotice
from .runner import DispatchFailed, Outcome, TaskRunner
from .toolspec import InvalidToolArguments, TaskTool, structured_result, tool_from_task

__all__ = [
    "CANCEL_BUDGET_S",
    "SESSION_META_KEY",
    "CeleryTools",
    "checked_arguments",
    "resolve_tools",
    "tool_result",
]

#: ``_meta`` key of a tool result naming the task's progress session.
SESSION_META_KEY = "celery-progress-mcp/session-id"
#: Longest a cancelled handler spends recording the cancellation and revoking.
CANCEL_BUDGET_S = 15.0
#: Error code of a session whose task could not be sent.
_NOT_SENT = "NOT_SENT"


def checked_arguments(
    tool: TaskTool, arguments: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any]]:
    """``tool``'s positional and keyword arguments, or a JSON-RPC ``INVALID_PARAMS`` error."""
    try:
        return tool.validate(arguments)
    except InvalidToolArguments as exc:
        raise MCPError(types.INVALID_PARAMS, str(exc), data={"problems": exc.problems}) from None


def tool_result(tool: TaskTool, outcome: Outcome, session_id: str) -> types.CallToolResult:
    """The result of a call of ``tool`` ending in ``outcome``: ``isError`` unless completed."""
    meta = {SESSION_META_KEY: session_id}
    if not outcome.ok:
        code = f" [{outcome.error_code}]" if outcome.error_code else ""
        text = f"task {tool.task_name} {outcome.status}{code}: {outcome.error}"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=True, _meta=meta
        )
    try:
        text = json.dumps(outcome.value)
    except (TypeError, ValueError):
        text = str(outcome.value)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured_result(tool, outcome.value),
        _meta=meta,
    )


def resolve_tools(
    app: Any, tools: Sequence[str | TaskTool], reserved: Collection[str]
) -> dict[str, TaskTool]:
    """The tools by name: task names looked up in ``app``; no name twice, none ``reserved``."""
    resolved: dict[str, TaskTool] = {}
    for entry in tools:
        if isinstance(entry, TaskTool):
            tool = entry
        else:
            try:
                task = app.tasks[entry]
            except KeyError:
                raise ConfigError(f"no Celery task named {entry!r} in app {app.main!r}") from None
            tool = tool_from_task(task)
        if tool.name in resolved or tool.name in reserved:
            raise ConfigError(f"tool name {tool.name!r} is used twice")
        resolved[tool.name] = tool
    return resolved


class CeleryTools:
    """The allowlisted Celery tasks as tools, called through ``runner``."""

    def __init__(
        self, tools: Mapping[str, TaskTool], runner: TaskRunner, reasons: CancelReasons
    ) -> None:
        self.tools = tools
        self.runner = runner
        self._reasons = reasons

    def listed(self) -> list[types.Tool]:
        return [
            types.Tool(
                name=tool.name,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                execution=types.ToolExecution(task_support="optional"),
            )
            for tool in self.tools.values()
        ]

    async def call(
        self,
        tool: TaskTool,
        arguments: dict[str, Any],
        ctx: ServerRequestContext[Any, Any] | None,
    ) -> types.CallToolResult:
        """Send the task, follow it to its end, and answer its result.

        ``ctx`` is None for a call made in Python rather than over MCP.
        """
        args, kwargs = checked_arguments(tool, arguments)
        task_id = str(uuid.uuid4())
        wants_progress = ctx is not None and progress_token_from_params(ctx.params) is not None
        subscription = await self.runner.subscribe(task_id)
        try:
            sent_at_s = time.monotonic()
            await self.runner.send(tool, args, kwargs, task_id)

            async def report(notice: ProgressNotice) -> None:
                assert ctx is not None
                await ctx.session.report_progress(notice.progress, notice.total, notice.message)

            outcome = await self.runner.follow(
                task_id, subscription, report if wants_progress else None, sent_at_s=sent_at_s
            )
        except DispatchFailed as exc:
            outcome = Outcome(SessionStatus.FAILED, error=str(exc), error_code=_NOT_SENT)
            await self._fail_unsent(task_id, str(exc))
        except anyio.get_cancelled_exc_class():
            # Shielded, so the cancellation that ends this handler does not
            # also stop it from revoking; bounded, so a dead broker cannot hold it.
            with anyio.move_on_after(CANCEL_BUDGET_S, shield=True):
                reason = (
                    await self._reasons.reason_for(ctx) if ctx is not None else CLIENT_GONE_REASON
                )
                await self.runner.cancel(task_id, reason)
            raise
        finally:
            subscription.close()
        return tool_result(tool, outcome, task_id)

    async def _fail_unsent(self, task_id: str, message: str) -> None:
        """A session made at dispatch for a task that never left must not wait for ever."""
        with contextlib.suppress(ProgressError):
            await self.runner.tracker.fail_session(task_id, message, _NOT_SENT)
