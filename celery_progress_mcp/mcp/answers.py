"""What a Celery tool call answers: its checked arguments, then its result.

Shared by a plain ``tools/call`` and a task-augmented one (MCP Tasks), so
both refuse bad arguments with the same JSON-RPC error and end with the
same result.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from .runner import Outcome
from .toolspec import InvalidToolArguments, TaskTool, structured_result

__all__ = ["SESSION_META_KEY", "checked_arguments", "notify_quietly", "tool_result"]

logger = logging.getLogger(__name__)

#: ``_meta`` key of a tool result naming the task's progress session.
SESSION_META_KEY = "celery-progress-mcp/session-id"


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


async def notify_quietly(sending: Any) -> None:
    """Await a notification; a client gone away is not an error of ours."""
    try:
        await sending
    except Exception as exc:
        logger.debug("notification not delivered: %s", exc)
